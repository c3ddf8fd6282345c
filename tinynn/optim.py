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
from typing import Any

import numpy as np

from . import kernels
from .kernels import ops

from ._optimizer import Optimizer, Params, _StateList, _check_nonneg, _check_params, _check_unit  # noqa: F401


class SGD(Optimizer):
    """torch.optim.SGD (see the module docstring); ``lr`` is required, as in torch.

    ``l1=c, l1_mode="proximal"``: after the step, θ ← sign(θ) max(|θ| - η c, 0): proximal gradient (ISTA)
    when momentum = 0, converging (full batch, η ≤ 1/Lipschitz) to the minimiser of L + c Σ|θ|, zeros exact.
    With momentum μ (and dampening τ) the threshold stays η c, the usual heuristic; its steady step is
    η(1-τ)/(1-μ) times the gradient, so its fixed points are those of the penalty c (1-μ)/(1-τ) Σ|θ|.
    """

    state_names = ("momentum_buffer",)
    l1_modes = ("subgradient", "proximal")

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, l1: float = 0.0, l1_scope: str = "all",
                 l1_mode: str = "subgradient") -> None:
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

    def __init__(self, params: Params, lr: float = 1e-2, beta: float = 0.9, unbias: bool = False,
                 nesterov: bool = False, *, l1: float = 0.0, l1_scope: str = "all") -> None:
        self.beta = _check_unit(beta, "beta", "Momentum")
        self.unbias = bool(unbias)
        self.nesterov = bool(nesterov)
        super().__init__(params, lr, l1, l1_scope)

    def _scalars(self):
        corr = 1.0 / (1.0 - self.beta ** self.t) if self.unbias else 1.0   # β = 0: 1/(1 - 0ᵗ) = 1 (t >= 1)
        return dict(lr=self.lr, beta=self.beta, corr=corr, nesterov=self.nesterov)

    def _update(self, p, g, u, **s):
        ops.momentum_update(p, g, u, s["lr"], s["beta"], s["corr"], s["nesterov"])


class Adagrad(Optimizer):
    """torch.optim.Adagrad. ``lazy=True`` updates only the rows an Embedding touched in the step."""

    state_names = ("sum",)

    def __init__(self, params: Params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, lazy: bool = False, *, l1: float = 0.0,
                 l1_scope: str = "all") -> None:
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

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *, l1: float = 0.0,
                 l1_scope: str = "all") -> None:
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

    state_names: tuple[str, ...] = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled = False

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, lazy: bool = False, *, l1: float = 0.0,
                 l1_scope: str = "all") -> None:
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

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, lazy: bool = False, *, l1: float = 0.0,
                 l1_scope: str = "all") -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, lazy, l1=l1, l1_scope=l1_scope)


class Newton(Optimizer):
    r"""Newton's method for small problems: θ ← θ - η H⁻¹ ∇L, with η = lr (1 = the full step).

    ``step(closure)``: the closure zeroes the gradients, runs forward and backward, and returns the loss.
    The Hessian H of the flattened parameters comes from central differences of the gradient (2 closure
    calls per parameter: exact for quadratic losses such as a linear layer with MSE). Refuses with
    ValueError above ``max_params`` (default 2000) parameters rather than build a huge matrix.
    """

    MAX_PARAMS = 2000

    def __init__(self, params: Params, lr: float = 1.0, h: float = 1e-4, max_params: int = MAX_PARAMS) -> None:
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


def clip_grad_norm_(params: Params, max_norm: float) -> float:
    """Scale all gradients by min(1, max_norm / (‖g‖ + 1e-6)) (as torch); returns the total norm ‖g‖₂."""
    params = [p for p in _check_params(params, "clip_grad_norm_") if p.requires_grad]
    max_norm = _check_nonneg(max_norm, "max_norm", "clip_grad_norm_")
    total = math.sqrt(sum(ops.sumsq(p.grad) for p in params))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:                                                # min(1, coef): scale only when it shrinks
        for p in params:
            ops.scale(p.grad, coef)
    return total


def make(name: str, params: Params, lr: float, **hyper: Any) -> Optimizer:
    """The optimizer called ``name`` in ``OPTIMIZERS`` on ``params``. ``hyper`` may hold the hyper-parameters
    of several optimizers (momentum, nesterov, betas, eps, weight_decay, ...): each optimizer takes those its
    constructor names and ignores the rest."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    import inspect

    cls = OPTIMIZERS[name]
    accepted = inspect.signature(cls).parameters
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

    def __init__(self, params: Params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0,
                 *, l1: float = 0.0, l1_scope: str = "all") -> None:
        who = "Adadelta"
        if not isinstance(rho, numbers.Real) or isinstance(rho, bool) or not 0 <= float(rho) <= 1:
            raise ValueError(f"{who}: rho must be in [0, 1], got {rho!r}")
        self.rho: float = float(rho)
        self.eps: float = _check_nonneg(eps, "eps", who)
        self.weight_decay: float = _check_nonneg(weight_decay, "weight_decay", who)
        super().__init__(params, lr, l1, l1_scope)

    def _scalars(self):
        return dict(lr=self.lr, rho=self.rho, eps=self.eps, wd=self.weight_decay)

    def _update(self, p, g, sq, acc, **s):
        ops.adadelta_update(p, g, sq, acc, s["lr"], s["rho"], s["eps"], s["wd"])


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}
OPTIMIZERS["adadelta"] = Adadelta
