"""The optimizer base class: parameter and state bookkeeping, the flat-buffer fast path, the L1 term, state
saving. The update rules, and the formulas of all of this, are in :mod:`tinynn.optim`."""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable

import numpy as np

from . import kernels
from .kernels import ops

from .parameter import Parameter

Params = Iterable[Parameter]          # what an optimizer updates: model.parameters(), or any list of them


def _check_params(params, who):
    params = list(params)
    if not params:
        raise ValueError(f"{who}: got an empty parameter list")
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"{who}: params[{i}] is a {type(p).__name__}, expected tinynn.Parameter")
    return params


def _check_nonneg(value, name, who):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{who}: {name} must be a non-negative finite number, got {value!r}")
    return float(value)


def _check_unit(value, name, who):
    if not isinstance(value, numbers.Real) or not 0 <= float(value) < 1:
        raise ValueError(f"{who}: {name} must be in [0, 1), got {value!r}")
    return float(value)


class Optimizer:
    """Base class: parameter bookkeeping, state buffers, fused dispatch, state_dict."""

    state_names: tuple[str, ...] = ()
    l1, l1_scope, l1_mode = 0.0, "all", "subgradient"   # class defaults: optimizers pickled before L1 existed
    l1_modes: tuple = ("subgradient",)                   # SGD adds "proximal"

    def __init__(self, params: Params, lr: float, l1: float = 0.0, l1_scope: str = "all",
                 l1_mode: str = "subgradient") -> None:
        who = type(self).__name__
        self.params = _check_params(params, who)
        self.lr = _check_nonneg(lr, "lr", who)
        self.t = 0
        self._init_l1(l1, l1_scope, l1_mode)
        group = self.params[0].flat
        self._group = group if group is not None and group.params == self.params else None
        self.state = {name: self._alloc_state() for name in self.state_names}
        self.init_state()

    def init_state(self):
        """Fill state buffers with their initial values (zeros unless overridden)."""
        for bufs in self.state.values():
            for b in bufs:
                ops.fill(b, 0.0)

    def _alloc_state(self):
        """One state tensor per parameter; views into one flat buffer when the parameters are flat."""
        if self._group is not None:
            g = self._group
            flat = kernels.empty(g.data.shape, g.data.dtype, like=g.data)    # filled by init_state, as below
            views = [flat[o:o + s].reshape(p.shape) for (o, s), p in zip(g.offsets, self.params)]
            return _StateList(views, flat, list(g.offsets))
        return _StateList([kernels.empty(p.shape, p.dtype, like=p.data) for p in self.params], None)

    # ------------------------------------------------------------------ the step
    def zero_grad(self) -> None:
        if self._group is not None:
            ops.fill(self._group.grad, 0.0)
        else:
            for p in self.params:
                ops.fill(p.grad, 0.0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every trainable parameter; returns closure() if given (called first)."""
        loss = closure() if closure is not None else None
        if self._group is not None and self.params[0].flat is not self._group:
            raise RuntimeError(f"{type(self).__name__}: the model's parameters were moved or re-flattened "
                               "(model.to(device)) after this optimizer was built, so it would update the old "
                               "buffers; build the optimizer after model.to(device)")
        self.t += 1
        scalars = self._scalars()
        if self.l1 and self.l1_mode == "subgradient":
            for data, grad in self._l1_targets():
                ops.add_l1(data, grad, self.l1)                       # g += c sign(θ)
        if self._group is not None and all(p.requires_grad and p.rows is None for p in self.params):
            flat_state = [self.state[n].flat for n in self.state_names]
            self._update(self._group.data, self._group.grad, *flat_state, **scalars)
        else:
            for i, p in enumerate(self.params):
                if not p.requires_grad:
                    continue
                st = [self.state[n][i] for n in self.state_names]
                if p.rows is not None and getattr(self, "lazy", False):
                    self._lazy_update(p, st, scalars)
                else:
                    self._update(p.data, p.grad, *st, **scalars)
        if self.l1 and self.l1_mode == "proximal":
            for data, _ in self._l1_targets():
                ops.l1_prox(data, self.lr * self.l1)                  # θ = sign(θ) max(|θ| - ηc, 0)
        return loss

    # ------------------------------------------------------------------ L1 (see the module docstring)
    def _init_l1(self, l1, scope, mode):
        who = type(self).__name__
        self.l1 = _check_nonneg(l1, "l1", who)
        if scope not in ("all", "weights"):
            raise ValueError(f"{who}: l1_scope must be 'all' or 'weights', got {scope!r}")
        if mode not in self.l1_modes:
            raise ValueError(f"{who}: l1_mode must be one of {self.l1_modes}, got {mode!r}"
                             + ("" if "proximal" in self.l1_modes else " (the proximal form is SGD's)"))
        self.l1_scope, self.l1_mode = scope, mode
        self._l1_cache = {}

    def _l1_targets(self):
        """(data, grad) array pairs the L1 term applies to: slices of the flat buffers when the step is one
        fused call (contiguous runs of penalised parameters merged: Sequential keeps its Linear weights
        first, so "weights" is one slice), else one pair per penalised trainable parameter."""
        flat = self._group is not None and all(p.requires_grad and p.rows is None for p in self.params)
        key = (flat,) + tuple(p.requires_grad for p in self.params)
        where = self._l1_cache.get(key)      # index ranges only: views are taken afresh (pickling stays safe)
        if where is None:
            chosen = [self.l1_scope == "all" or len(p.shape) >= 2 for p in self.params]
            if flat:
                assert self._group is not None
                where = []
                for (o, size), c in sorted(zip(self._group.offsets, chosen)):
                    if c and size:
                        if where and where[-1][1] == o:
                            where[-1] = (where[-1][0], o + size)
                        else:
                            where.append((o, o + size))
            else:
                where = [i for i, (p, c) in enumerate(zip(self.params, chosen)) if c and p.requires_grad]
            self._l1_cache[key] = where
        if flat:
            g = self._group
            assert g is not None
            return [(g.data[a:b], g.grad[a:b]) for a, b in where]
        return [(self.params[i].data, self.params[i].grad) for i in where]

    def _lazy_update(self, p, st, scalars):
        """Update only the rows an Embedding touched (torch's SparseAdam behaviour); host arrays only."""
        if kernels.is_device_array(p.data):
            raise NotImplementedError(f"{type(self).__name__}(lazy=True) runs on host parameters only")
        rows = p.rows
        data, grad = p.data[rows], p.grad[rows]
        sub = [s[rows] for s in st]
        self._update(data, grad, *sub, **scalars)
        p.data[rows] = data
        for s, v in zip(st, sub):
            s[rows] = v

    def _scalars(self) -> dict:
        raise NotImplementedError

    def _update(self, p, g, *state, **scalars):
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Plain data: step count, lr, hyper-parameters and every state array (host copies)."""
        sd = {"t": self.t, "lr": self.lr}
        for name in self.state_names:
            for i, a in enumerate(self.state[name]):
                sd[f"{name}.{i}"] = np.array(kernels.to_host(a))
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> Optimizer:
        for name in self.state_names:
            for i, a in enumerate(self.state[name]):
                key = f"{name}.{i}"
                if key not in sd:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: missing {key!r}")
                v = np.asarray(sd[key])
                if v.shape != tuple(a.shape):
                    raise ValueError(f"{type(self).__name__}.load_state_dict: {key}: expected shape "
                                     f"{tuple(a.shape)}, got {v.shape}")
                kernels.assign(a, v.astype(a.dtype, copy=False))
        self.t = int(sd["t"])
        self.lr = float(sd["lr"])
        return self

    def __repr__(self):
        return f"{type(self).__name__}(lr={self.lr})"


class _StateList(list):
    """Per-parameter state views, plus the flat buffer they share (or None)."""

    def __init__(self, views, flat, offsets=None):
        super().__init__(views)
        self.flat = flat
        self.offsets = offsets

    def __reduce__(self):  # pickle the flat buffer once and rebuild the views from it
        if self.flat is None:
            return (_StateList, (list(self), None))
        return (_StateList._rebuild, (self.flat, self.offsets, [tuple(v.shape) for v in self]))

    @staticmethod
    def _rebuild(flat, offsets, shapes):
        return _StateList([flat[o:o + s].reshape(shape) for (o, s), shape in zip(offsets, shapes)], flat, offsets)
