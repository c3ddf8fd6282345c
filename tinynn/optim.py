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
Adadelta  d = g + λθ;  s = ρ s + (1-ρ) d²;  δ = √(a + ε)/√(s + ε) · d;  a = ρ a + (1-ρ) δ²;  θ -= η δ
Newton    θ -= η H⁻¹ g  (H from central differences of the gradient; small problems only)

L1 regularisation (every optimizer but Newton; torch has none): ``l1=c`` adds the penalty c Σ|θ_i| to the
loss (c = λ/2 in the lectures' λ/2 ‖w‖₁). The default ``l1_mode="subgradient"`` adds its subgradient to the
gradient before the update rule sees it,

          g ← g + c sign(θ)      (sign(0) = 0; in place in ``p.grad``, as the estimator's L2 term is added)

so it passes through momentum and adaptive scalings like any loss term. ``SGD(..., l1_mode="proximal")``
instead takes the plain step and then the proximal step of η c Σ|θ| (soft thresholding; ISTA),

          θ ← sign(θ) max(|θ| - η c, 0)

which sets every weight that lands within η c of zero to exactly 0 (the subgradient only makes weights
oscillate around 0). ``l1_scope="all"`` (default, as ``weight_decay``) penalises every parameter the
optimizer updates; ``l1_scope="weights"`` only those with two or more dimensions (Linear weight matrices,
Embedding tables), leaving biases and normalisation scales/shifts free. With ``l1=0`` (default) nothing
runs: the step is the unregularised one, at the same speed.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import kernels
from .kernels import ops

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
    l1, l1_scope, l1_mode = 0.0, "all", "subgradient"   # class defaults: optimizers pickled before L1 existed
    l1_modes: tuple = ("subgradient",)                   # SGD adds "proximal"

    def __init__(self, params, lr, l1=0.0, l1_scope="all", l1_mode="subgradient"):
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
    """torch.optim.SGD (see the module docstring); ``lr`` is required, as in torch.

    ``l1=c, l1_mode="proximal"``: after the step, θ ← sign(θ) max(|θ| - η c, 0): proximal gradient (ISTA)
    when momentum = 0, converging (full batch, η ≤ 1/Lipschitz) to the minimiser of L + c Σ|θ|, zeros exact.
    With momentum μ (and dampening τ) the threshold stays η c, the usual heuristic; its steady step is
    η(1-τ)/(1-μ) times the gradient, so its fixed points are those of the penalty c (1-μ)/(1-τ) Σ|θ|.
    """

    state_names = ("momentum_buffer",)
    l1_modes = ("subgradient", "proximal")

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *, l1=0.0,
                 l1_scope="all", l1_mode="subgradient"):
        who = "SGD"
        self.momentum = _check_nonneg(momentum, "momentum", who)
        self.dampening = _check_nonneg(dampening, "dampening", who)
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay", who)
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        self.nesterov = bool(nesterov)
        super().__init__(params, lr, l1, l1_scope, l1_mode)

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

    def __init__(self, params, lr=1e-2, beta=0.9, unbias=False, nesterov=False, *, l1=0.0, l1_scope="all"):
        self.beta = _check_unit(beta, "beta", "Momentum")
        self.unbias = bool(unbias)
        self.nesterov = bool(nesterov)
        super().__init__(params, lr, l1, l1_scope)

    def _scalars(self):
        corr = 1.0 / (1.0 - self.beta ** self.t) if self.unbias and self.beta > 0 else 1.0
        return dict(lr=self.lr, beta=self.beta, corr=corr, nesterov=self.nesterov)

    def _update(self, p, g, u, **s):
        ops.momentum_update(p, g, u, s["lr"], s["beta"], s["corr"], s["nesterov"])


class Adagrad(Optimizer):
    """torch.optim.Adagrad. ``lazy=True`` updates only the rows an Embedding touched in the step."""

    state_names = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 lazy=False, *, l1=0.0, l1_scope="all"):
        who = "Adagrad"
        self.lr_decay = _check_nonneg(lr_decay, "lr_decay", who)
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay", who)
        self.initial_accumulator_value = _check_nonneg(initial_accumulator_value, "initial_accumulator_value", who)
        self.eps = _check_nonneg(eps, "eps", who)
        self.lazy = bool(lazy)
        super().__init__(params, lr, l1, l1_scope)

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

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 l1=0.0, l1_scope="all"):
        who = "RMSprop"
        self.alpha = _check_nonneg(alpha, "alpha", who)
        self.eps = _check_nonneg(eps, "eps", who)
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay", who)
        self.momentum = _check_nonneg(momentum, "momentum", who)
        self.centered = bool(centered)
        super().__init__(params, lr, l1, l1_scope)

    def _scalars(self):
        return dict(lr=self.lr, alpha=self.alpha, eps=self.eps, wd=self.weight_decay, momentum=self.momentum,
                    centered=self.centered)

    def _update(self, p, g, sq, gavg, buf, **s):
        ops.rmsprop_update(p, g, sq, gavg, buf, s["lr"], s["alpha"], s["eps"], s["wd"], s["momentum"], s["centered"])


class Adam(Optimizer):
    """torch.optim.Adam (bias correction; eps added to √v̂). ``lazy=True``: SparseAdam-style row updates."""

    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, lazy=False, *,
                 l1=0.0, l1_scope="all"):
        who = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check_unit(betas[0], "betas[0]", who), _check_unit(betas[1], "betas[1]", who))
        self.eps = _check_nonneg(eps, "eps", who)
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay", who)
        self.amsgrad = bool(amsgrad)
        self.lazy = bool(lazy)
        if not self.amsgrad:                      # no max_exp_avg_sq buffer: a model's worth of memory saved
            self.state_names = ("exp_avg", "exp_avg_sq")
        super().__init__(params, lr, l1, l1_scope)

    def _scalars(self):
        b1, b2 = self.betas
        return dict(lr=self.lr, b1=b1, b2=b2, eps=self.eps, wd=self.weight_decay, bc1=1 - b1 ** self.t,
                    bc2=1 - b2 ** self.t)

    def _update(self, p, g, m, v, vmax=None, **s):
        # without amsgrad the kernel never touches vmax: v stands in for the buffer that is not allocated
        ops.adam_update(p, g, m, v, v if vmax is None else vmax, s["lr"], s["b1"], s["b2"], s["eps"], s["wd"], s["bc1"], s["bc2"],
                        self.amsgrad, self.decoupled)


class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay θ *= 1 - ηλ (default λ = 1e-2)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, lazy=False, *,
                 l1=0.0, l1_scope="all"):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, lazy, l1=l1, l1_scope=l1_scope)


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


def make(name, params, lr, **hyper):
    """The optimizer called ``name`` in ``OPTIMIZERS`` on ``params``. ``hyper`` may hold the hyper-parameters
    of several optimizers (momentum, nesterov, betas, eps, weight_decay, ...): each optimizer takes those its
    constructor names and ignores the rest."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    import inspect

    cls = OPTIMIZERS[name]
    accepted = inspect.signature(cls.__init__).parameters
    return cls(params, lr=lr, **{k: v for k, v in hyper.items() if k in accepted})


class Adadelta(Optimizer):
    r"""torch.optim.Adadelta (Zeiler 2012, "an adaptive learning rate method"), step for step.

        d_t = g_t + λ θ_{t-1}                                   (weight_decay λ, coupled, as torch)
        s_t = ρ s_{t-1} + (1-ρ) d_t²                             (running average of squared gradients)
        δ_t = √(a_{t-1} + ε) / √(s_t + ε) · d_t                  (RMS of past updates / RMS of gradients)
        a_t = ρ a_{t-1} + (1-ρ) δ_t²                             (running average of squared updates)
        θ_t = θ_{t-1} - η δ_t                                    (s_0 = a_0 = 0)

    The ratio of the two RMS terms gives the update the units of θ, so Zeiler's rule needs no learning
    rate: η = 1 (the default) is his method; torch keeps η as a multiplier. Defaults as torch: η = 1,
    ρ = 0.9, ε = 1e-6, λ = 0. State: ``square_avg`` (s) and ``acc_delta`` (a).
    """

    state_names = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, *, l1=0.0, l1_scope="all"):
        who = "Adadelta"
        if not isinstance(rho, numbers.Real) or isinstance(rho, bool) or not 0 <= rho <= 1:
            raise ValueError(f"{who}: rho must be in [0, 1], got {rho!r}")
        self.rho = float(rho)
        self.eps = _check_nonneg(eps, "eps", who)
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay", who)
        super().__init__(params, lr, l1, l1_scope)

    def _scalars(self):
        return dict(lr=self.lr, rho=self.rho, eps=self.eps, wd=self.weight_decay)

    def _update(self, p, g, sq, acc, **s):
        ops.adadelta_update(p, g, sq, acc, s["lr"], s["rho"], s["eps"], s["wd"])


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}
OPTIMIZERS["adadelta"] = Adadelta
