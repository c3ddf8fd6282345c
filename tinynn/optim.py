r"""Optimizers: each implements only its update rule, as one fused elementwise kernel.

Every optimizer takes ``params`` (a list of ``tn.Parameter``), keeps per-parameter state aligned with it,
and updates in place at ``step()``. When the parameters are exactly the flat buffer of a ``Sequential``
(``model.parameters()``), the whole model is updated by one kernel call; otherwise one call per tensor.
``lr`` is an attribute read at every step: a schedule (``tinynn.schedules``) or the user may change it.
Frozen parameters (``requires_grad=False``) are skipped. Names shared with ``torch.optim`` follow its
update rules step for step (same defaults, first step, eps and weight-decay placement):

SGD       d = g + λθ;  b₁ = d, b_t = μ b_{t-1} + (1-τ) d;  d = d + μ b (nesterov) or b;  θ -= η d
Momentum  (the lectures' EMA form) u = β u + (1-β) g;  θ -= η c u,  c = 1/(1-βᵗ) if unbias else 1
Adagrad   d = g + λθ;  s += d²;  θ -= η/(1+(t-1)·decay) · d / (√s + ε)
RMSprop   d = g + λθ;  v = α v + (1-α) d²;  [ḡ = α ḡ + (1-α) d;  v - ḡ²];  b = μ b + d/(√v+ε);  θ -= η b
Adam      d = g + λθ;  m = β₁m + (1-β₁)d;  v = β₂v + (1-β₂)d²;  θ -= η/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε)
AdamW     as Adam with θ *= 1 - ηλ first and d = g (decoupled weight decay)
Newton    θ -= η H⁻¹ g  (H from central differences of the gradient; small problems only)
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from tinynn import kernels
from tinynn.kernels import ops

from .parameter import Parameter


def _check_params(params, who):
    params = list(params)
    if not params:
        raise ValueError(f"{who}: got an empty parameter list")
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"{who}: params[{i}] is a {type(p).__name__}, expected tinynn.Parameter")
    return params


def _check_nonneg(value, name, who, positive=False):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or \
            value < 0 or (positive and value == 0):
        raise ValueError(f"{who}: {name} must be a {'positive' if positive else 'non-negative'} finite number, "
                         f"got {value!r}")
    return float(value)


def _check_unit(value, name, who):
    if not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{who}: {name} must be in [0, 1), got {value!r}")
    return float(value)


class Optimizer:
    """Base class: parameter bookkeeping, state buffers, fused dispatch, state_dict."""

    state_names: tuple = ()

    def __init__(self, params, lr):
        who = type(self).__name__
        self.params = _check_params(params, who)
        self.lr = _check_nonneg(lr, "lr", who)
        self.t = 0
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
            flat = kernels.empty(g.data.shape, g.data.dtype, like=g.data)
            ops.fill(flat, 0.0)
            views = [flat[o:o + s].reshape(p.shape) for (o, s), p in zip(g.offsets, self.params)]
            return _StateList(views, flat, list(g.offsets))
        return _StateList([kernels.empty(p.shape, p.dtype, like=p.data) for p in self.params], None)

    # ------------------------------------------------------------------ the step
    def zero_grad(self):
        if self._group is not None:
            ops.fill(self._group.grad, 0.0)
        else:
            for p in self.params:
                ops.fill(p.grad, 0.0)

    def step(self, closure=None):
        """One update of every trainable parameter; returns closure() if given (called first)."""
        loss = closure() if closure is not None else None
        self.t += 1
        scalars = self._scalars()
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
        return loss

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
    def state_dict(self):
        """Plain data: step count, lr, hyper-parameters and every state array (host copies)."""
        sd = {"t": self.t, "lr": self.lr}
        for name in self.state_names:
            for i, a in enumerate(self.state[name]):
                sd[f"{name}.{i}"] = np.array(kernels.to_host(a))
        return sd

    def load_state_dict(self, sd):
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


class SGD(Optimizer):
    """torch.optim.SGD (see the module docstring); ``lr`` is required, as in torch."""

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        who = "SGD"
        self.momentum = _check_nonneg(momentum, "momentum", who)
        self.dampening = _check_nonneg(dampening, "dampening", who)
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay", who)
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        self.nesterov = bool(nesterov)
        super().__init__(params, lr)

    def _scalars(self):
        return dict(lr=self.lr, momentum=self.momentum, dampening=self.dampening, wd=self.weight_decay,
                    nesterov=self.nesterov, first=self.t == 1)

    def _update(self, p, g, buf, **s):
        ops.sgd_update(p, g, buf, s["lr"], s["momentum"], s["dampening"], s["wd"], s["nesterov"], s["first"])


class Momentum(Optimizer):
    r"""The lectures' momentum: an exponential moving average of gradients.

        u_t = β u_{t-1} + (1-β) g_t,  u_0 = 0;     θ_t = θ_{t-1} - η c_t u_t
        c_t = 1/(1-βᵗ) with ``unbias=True`` (u_t/(1-βᵗ) is an unbiased average of the g's), else 1.

    ``nesterov=True``: the gradient is taken at the look-ahead point θ - ηβu. tinynn stores that look-ahead
    point φ = θ - ηβu as the parameter (the usual change of variables), which makes the update

        u_t = β u_{t-1} + (1-β) g(φ_{t-1});    φ_t = φ_{t-1} - η c_t (β u_t + (1-β) g(φ_{t-1}))

    Proof: φ_t - φ_{t-1} = (θ_t - θ_{t-1}) - ηβ(u_t - u_{t-1}) = -ηu_t - ηβu_t + ηβu_{t-1}, and
    u_t - βu_{t-1} = (1-β) g gives -η(βu_t + (1-β)g). So with c = 1 this is exactly the lecture's
    "gradient at the look-ahead" rule, evaluated with one gradient per step at the stored point.
    """

    state_names = ("u",)

    def __init__(self, params, lr=1e-2, beta=0.9, unbias=False, nesterov=False):
        self.beta = _check_unit(beta, "beta", "Momentum")
        self.unbias = bool(unbias)
        self.nesterov = bool(nesterov)
        super().__init__(params, lr)

    def _scalars(self):
        corr = 1.0 / (1.0 - self.beta ** self.t) if self.unbias and self.beta > 0 else 1.0
        return dict(lr=self.lr, beta=self.beta, corr=corr, nesterov=self.nesterov)

    def _update(self, p, g, u, **s):
        ops.momentum_update(p, g, u, s["lr"], s["beta"], s["corr"], s["nesterov"])


class Adagrad(Optimizer):
    """torch.optim.Adagrad. ``lazy=True`` updates only the rows an Embedding touched in the step."""

    state_names = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 lazy=False):
        who = "Adagrad"
        self.lr_decay = _check_nonneg(lr_decay, "lr_decay", who)
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay", who)
        self.initial_accumulator_value = _check_nonneg(initial_accumulator_value, "initial_accumulator_value", who)
        self.eps = _check_nonneg(eps, "eps", who)
        self.lazy = bool(lazy)
        super().__init__(params, lr)

    def init_state(self):
        for s in self.state["sum"]:
            ops.fill(s, self.initial_accumulator_value)

    def _scalars(self):
        return dict(clr=self.lr / (1 + (self.t - 1) * self.lr_decay), wd=self.weight_decay, eps=self.eps)

    def _update(self, p, g, s, **k):
        ops.adagrad_update(p, g, s, k["clr"], k["wd"], k["eps"])


class RMSprop(Optimizer):
    """torch.optim.RMSprop (square_avg, grad_avg when centered, momentum_buffer when momentum > 0)."""

    state_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        who = "RMSprop"
        self.alpha = _check_nonneg(alpha, "alpha", who)
        self.eps = _check_nonneg(eps, "eps", who)
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay", who)
        self.momentum = _check_nonneg(momentum, "momentum", who)
        self.centered = bool(centered)
        super().__init__(params, lr)

    def _scalars(self):
        return dict(lr=self.lr, alpha=self.alpha, eps=self.eps, wd=self.weight_decay, momentum=self.momentum,
                    centered=self.centered)

    def _update(self, p, g, sq, gavg, buf, **s):
        ops.rmsprop_update(p, g, sq, gavg, buf, s["lr"], s["alpha"], s["eps"], s["wd"], s["momentum"], s["centered"])


class Adam(Optimizer):
    """torch.optim.Adam (bias correction; eps added to √v̂). ``lazy=True``: SparseAdam-style row updates."""

    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, lazy=False):
        who = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check_unit(betas[0], "betas[0]", who), _check_unit(betas[1], "betas[1]", who))
        self.eps = _check_nonneg(eps, "eps", who)
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay", who)
        self.amsgrad = bool(amsgrad)
        self.lazy = bool(lazy)
        super().__init__(params, lr)

    def _scalars(self):
        b1, b2 = self.betas
        return dict(lr=self.lr, b1=b1, b2=b2, eps=self.eps, wd=self.weight_decay, bc1=1 - b1 ** self.t,
                    bc2=1 - b2 ** self.t)

    def _update(self, p, g, m, v, vmax, **s):
        ops.adam_update(p, g, m, v, vmax, s["lr"], s["b1"], s["b2"], s["eps"], s["wd"], s["bc1"], s["bc2"],
                        self.amsgrad, self.decoupled)


class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay θ *= 1 - ηλ (default λ = 1e-2)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, lazy=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, lazy)


class Newton(Optimizer):
    r"""Newton's method for small problems: θ ← θ - η H⁻¹ ∇L, with η = lr (1 = the full step).

    ``step(closure)``: the closure zeroes the gradients, runs forward and backward, and returns the loss.
    The Hessian H of the flattened parameters comes from central differences of the gradient (2 closure
    calls per parameter: exact for quadratic losses such as a linear layer with MSE). Refuses with
    ValueError above ``max_params`` (default 2000) parameters rather than build a huge matrix.
    """

    MAX_PARAMS = 2000

    def __init__(self, params, lr=1.0, h=1e-4, max_params=MAX_PARAMS):
        super().__init__(params, lr)
        n = sum(int(np.prod(p.shape)) for p in self.params)
        if n > max_params:
            raise ValueError(f"Newton: {n} parameters would need a {n}x{n} Hessian; the limit is max_params="
                             f"{max_params} (use a first-order optimizer, or raise max_params)")
        self.n, self.h = n, float(h)

    def _flat_grad(self):
        return np.concatenate([np.asarray(kernels.to_host(p.grad), np.float64).ravel() for p in self.params])

    def _get(self):
        return np.concatenate([np.asarray(kernels.to_host(p.data), np.float64).ravel() for p in self.params])

    def _set(self, theta):
        o = 0
        for p in self.params:
            size = int(np.prod(p.shape))
            kernels.assign(p.data, theta[o:o + size].reshape(p.shape).astype(p.dtype))
            o += size

    def step(self, closure=None):
        if closure is None:
            raise ValueError("Newton.step needs a closure that zeroes gradients, runs forward/backward and returns the loss")
        loss = closure()
        g = self._flat_grad()
        theta = self._get()
        H = np.empty((self.n, self.n))
        for j in range(self.n):                                   # H[:, j] = (∇L(θ + h e_j) - ∇L(θ - h e_j)) / 2h
            e = np.zeros(self.n)
            e[j] = self.h
            self._set(theta + e)
            closure()
            gp = self._flat_grad()
            self._set(theta - e)
            closure()
            H[:, j] = (gp - self._flat_grad()) / (2 * self.h)
        H = (H + H.T) / 2
        try:
            delta = np.linalg.solve(H, g)                         # H δ = g
        except np.linalg.LinAlgError:
            delta = np.linalg.lstsq(H, g, rcond=None)[0]          # singular H: the least-norm step
        self._set(theta - self.lr * delta)                        # θ ← θ - η H⁻¹ g
        self.t += 1
        return loss


def clip_grad_norm_(params, max_norm):
    """Scale all gradients by min(1, max_norm / (‖g‖ + 1e-6)) (as torch); returns the total norm ‖g‖₂."""
    params = [p for p in _check_params(params, "clip_grad_norm_") if p.requires_grad]
    max_norm = _check_nonneg(max_norm, "max_norm", "clip_grad_norm_")
    total = math.sqrt(sum(ops.sumsq(p.grad) for p in params))
    coef = min(1.0, max_norm / (total + 1e-6))
    if coef < 1.0:
        for p in params:
            ops.scale(p.grad, coef)
    return total


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}
