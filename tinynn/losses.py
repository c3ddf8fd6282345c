r"""Losses: ``forward(pred, target) -> float`` and ``backward() -> dpred`` (the gradient of that float).

SoftmaxCrossEntropy (fused, through log-sum-exp, so logits of ±1000 stay finite and exact):
    L = Σ_i w_i (lse(z_i) - z_{i,y_i}) / Σ_i w_i         (w_i = 1: the batch mean)
    ∂L/∂z_i = w_i / Σw · (softmax(z_i) - onehot(y_i))      = (P - Y)/n without weights
SigmoidCrossEntropy (binary / multi-label, on logits):
    L = Σ_i w_i Σ_j (softplus(z_ij) - t_ij z_ij) / Σ_i w_i,    ∂L/∂z = w_i/Σw (σ(z) - t)
MSELoss (PyTorch's default 'mean' reduction over all N = n·d elements):
    L = Σ (p - t)² / N,        ∂L/∂p = 2 (p - t) / N     (per-row weights: w_i/Σw · Σ_j (p-t)²/d)
L1Loss (mean absolute error, torch's 'mean' reduction), HuberLoss (torch's, ``delta``):
    L = Σ_i w_i/Σw · Σ_j ρ(p_ij - t_ij)/d,   ∂L/∂p = w_i/Σw · ρ'(p - t)/d
    ρ = |r| (ρ' = sign r, 0 at 0);  Huber: ρ = ½ r² for |r| < δ else δ(|r| - ½δ)  (ρ' = clip(r, -δ, δ))
SquaredError (scikit-learn's squared_loss, what its MLPRegressor reports and differentiates):
    L = ½ Σ_i w_i/Σw · mean_j (p_ij - t_ij)²,    "∂L/∂p" = w_i/Σw (p - t)
    sklearn's backward does not divide by d, so for d > 1 outputs the gradient it follows is d ∂L/∂p; this
    loss returns that same gradient, so that tinynn's estimator takes sklearn's steps.

Every loss computes per-row losses ``rows`` and row weights w on its device, and its value Σ_i w_i rows_i on the
host (``_finish``: one copy of n floats). On the GPU data path the Trainer sets ``_deferred`` to its loss log
(``tinynn._feed.LossLog``) for the epoch: the rows then stay on the device, ``forward`` returns None, and the
log computes the same value, by the same formula, when it reads the rows back every N steps.
"""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, Optional

from numpy.typing import ArrayLike

import numpy as np

from . import kernels  # type: ignore[no-redef]  # kernels/ is tinynn.kernels by package_dir, which mypy does not map
from .kernels import ops
from .kernels.config import HUBER, L1

from ._typing import Array
from ._validation import as_array, check_float, check_labels, no_forward
from ._workspace import WorkBuffers

if TYPE_CHECKING:
    from ._feed import LossLog


class Loss(WorkBuffers):
    P: Any = None             # what backward differentiates, saved by forward (None: no forward yet)
    _deferred: Optional[LossLog] = None   # the Trainer's loss log while it keeps the losses on the device (docstring)
    if TYPE_CHECKING:                                     # every loss defines it
        def forward(self, pred: Array, target: Any,  # target: array-like, checked here
                sample_weight: ArrayLike | None = None) -> float | None: ...

        def backward(self) -> Array: ...

    def __call__(self, pred: Array, target: ArrayLike, sample_weight: ArrayLike | None = None) -> float | None:
        """``forward``: the loss of ``pred`` against ``target`` (None while the Trainer keeps losses on a GPU)."""
        return self.forward(pred, target, sample_weight)

    def _row_weights(self, n, dtype, like, sample_weight, per_row_scale, device=True):
        """Host and device copies of w_i / Σw · per_row_scale (cached for the unweighted case; ``device=False``:
        the host copy only, the device one is None)."""
        if sample_weight is None:
            key = ("w", n, np.dtype(dtype), kernels.device_of(like), per_row_scale)
            cache = self.__dict__.setdefault("_wcache", {})
            if key not in cache:
                w_host = np.full(n, per_row_scale / n, dtype=dtype)
                cache[key] = (w_host, kernels.on_device_of(w_host, like))
            return cache[key]
        sw = np.asarray(kernels.to_host(sample_weight), dtype=np.float64)
        if sw.shape != (n,):
            raise ValueError(f"{type(self).__name__}: sample_weight: expected shape ({n},), got {sw.shape}")
        if not np.all(np.isfinite(sw)) or np.any(sw < 0) or sw.sum() <= 0:
            raise ValueError(f"{type(self).__name__}: sample_weight must be finite, >= 0, with a positive sum")
        w_host = (sw / sw.sum() * per_row_scale).astype(dtype)
        if not device:
            return w_host, None
        if self._deferred is not None and kernels.is_device_array(like):
            return w_host, self._deferred.stage(w_host)             # pinned staging, async on the compute stream
        return w_host, kernels.on_device_of(w_host, like)

    def _finish(self, loss_rows, w_host):
        """L = Σ_i w_i loss_i (the only device -> host copy of a step: n floats); None when the Trainer's loss log
        keeps the rows on the device (it computes this same sum when it reads them)."""
        if self._deferred is not None:
            self._deferred.add_rows(loss_rows, w_host)
            return None
        return float(np.dot(kernels.to_host(loss_rows), w_host))   # in the model's dtype: no array allocated


class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy on logits Z (n, C) and integer labels y (n,) in [0, C)."""

    def forward(self, Z: Array, y: Any,  # y: array-like, checked here
                sample_weight: ArrayLike | None = None) -> float | None:
        Z = check_float(Z, "SoftmaxCrossEntropy", ndim=2)
        n, C = Z.shape
        y = check_labels(y, "SoftmaxCrossEntropy: target", n=n, n_classes=C)
        self.P = self._ws("P", Z.shape, Z.dtype, Z)
        rows = self._ws("rows", (n,), Z.dtype, Z)
        ops.softmax_xent(Z, y, self.P, rows)                          # P = softmax(Z), rows_i = lse_i - z_{i,y_i}
        self.y = y
        self.w_host, self.w = self._row_weights(n, Z.dtype, Z, sample_weight, 1.0)
        return self._finish(rows, self.w_host)

    def backward(self) -> Array:
        if self.P is None:
            raise no_forward(type(self).__name__)
        dZ = self._ws("dZ", self.P.shape, self.P.dtype, self.P)
        return ops.softmax_xent_backward(self.P, self.y, self.w, out=dZ)   # dZ = w (P - onehot)


class SigmoidCrossEntropy(Loss):
    """Sigmoid + binary cross-entropy on logits Z (n, k) and 0/1 targets T (n, k) (binary, multi-label)."""

    def forward(self, Z: Array, T: Any,  # T: array-like, checked here
                sample_weight: ArrayLike | None = None) -> float | None:
        Z = check_float(Z, "SigmoidCrossEntropy", ndim=2)
        T = check_float(as_array(T, "SigmoidCrossEntropy: target"), "SigmoidCrossEntropy: target", ndim=2,
                        rows=Z.shape[0], width=Z.shape[1], dtype=Z.dtype)
        n = Z.shape[0]
        self.P = self._ws("P", Z.shape, Z.dtype, Z)
        rows = self._ws("rows", (n,), Z.dtype, Z)
        ops.sigmoid_xent(Z, T, self.P, rows)
        self.T = T
        self.w_host, self.w = self._row_weights(n, Z.dtype, Z, sample_weight, 1.0)
        return self._finish(rows, self.w_host)

    def backward(self) -> Array:
        if self.P is None:
            raise no_forward(type(self).__name__)
        dZ = self._ws("dZ", self.P.shape, self.P.dtype, self.P)
        return ops.diff_backward(self.P, self.T, self.w, out=dZ)      # dZ = w (σ(Z) - T)


class _MeanLoss(Loss):
    """A loss that is a mean over all N = n·d elements of ρ(p - t) (torch's 'mean' reduction); pred and target of
    one shape ((n,) or (n, d)). Per-row weights: L = value_scale · Σ_i w_i/Σw · Σ_j ρ(p_ij - t_ij)/d."""

    value_scale = 1.0
    if TYPE_CHECKING:                                     # each subclass defines its rows and their gradient
        def _rows(self, P: Any, T: Any, rows: Any) -> None: ...
        def _grad(self, *args: Any) -> None: ...

    def _grad_scale(self, d):
        return 1.0 / d

    def forward(self, P: Array, T: Any,  # T: array-like, checked here
                sample_weight: ArrayLike | None = None) -> float | None:
        who = type(self).__name__
        P = check_float(P, who)
        T = check_float(T, f"{who}: target")
        if tuple(P.shape) != tuple(T.shape):
            raise ValueError(f"{who}: prediction shape {tuple(P.shape)} and target shape {tuple(T.shape)} differ")
        if P.dtype != T.dtype:
            raise TypeError(f"{who}: prediction dtype {P.dtype} and target dtype {T.dtype} differ")
        self.shape = P.shape
        if len(P.shape) == 1:
            P, T = P.reshape(P.shape[0], 1), T.reshape(T.shape[0], 1)
        n, d = P.shape
        rows = self._ws("rows", (n,), P.dtype, P)
        self._rows(P, T, rows)                                        # rows_i = Σ_j ρ(p - t)
        self.P, self.T = P, T
        self.w_host, _ = self._row_weights(n, P.dtype, P, sample_weight, self.value_scale / d, device=False)
        _, self.w2 = self._row_weights(n, P.dtype, P, sample_weight, self._grad_scale(d))
        return self._finish(rows, self.w_host)

    def backward(self) -> Array:
        if self.P is None:
            raise no_forward(type(self).__name__)
        dP = self._ws("dP", self.P.shape, self.P.dtype, self.P)
        self._grad(self.P, self.T, self.w2, dP)                       # dP = w ρ'(P - T)
        return dP.reshape(self.shape)


class MSELoss(_MeanLoss):
    """Mean squared error over all elements: ρ(r) = r², dP = 2 w (P - T) / d."""

    def _grad_scale(self, d):
        return 2.0 / d

    def _rows(self, P, T, rows):
        ops.sq_err_rows(P, T, out=rows)

    def _grad(self, P, T, w, out):
        ops.diff_backward(P, T, w, out=out)


class L1Loss(_MeanLoss):
    """Mean absolute error over all elements (torch.nn.L1Loss): ρ(r) = |r|, dP = w sign(P - T) / d (0 where
    P = T, as torch)."""

    def _rows(self, P, T, rows):
        ops.robust_rows(P, T, L1, 0.0, out=rows)

    def _grad(self, P, T, w, out):
        ops.robust_backward(P, T, w, L1, 0.0, out=out)


class HuberLoss(_MeanLoss):
    """Huber loss over all elements (torch.nn.HuberLoss): ρ(r) = ½ r² where |r| < δ, δ (|r| - ½ δ) elsewhere;
    dP = w clip(P - T, -δ, δ) / d."""

    def __init__(self, delta: float = 1.0) -> None:
        if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0 < float(delta) < math.inf:
            raise ValueError(f"HuberLoss: delta must be a finite number > 0, got {delta!r}")
        self.delta: float = float(delta)

    def _rows(self, P, T, rows):
        ops.robust_rows(P, T, HUBER, self.delta, out=rows)

    def _grad(self, P, T, w, out):
        ops.robust_backward(P, T, w, HUBER, self.delta, out=out)

    def __repr__(self):
        return f"HuberLoss(delta={self.delta})"


class SquaredError(MSELoss):
    """scikit-learn's squared loss: value ½ · weighted mean over rows of the mean over outputs of (p - t)²;
    backward (p - t) w_i / Σw, sklearn's gradient (not divided by the number of outputs).

    The ½ is folded into the value's row weights (½ w_i/Σw/d): a power of two, so the value is bitwise ½ of
    MSELoss's."""

    value_scale = 0.5

    def _grad_scale(self, d):
        return 1.0                                        # dP = w (P - T)


class PoissonLoss(Loss):
    """Half the Poisson deviance on the log link (scikit-learn's poisson loss), on the raw output Z = log ŷ and
    counts T >= 0 (n, d):  L = Σ_j Σ_i w_i/Σw (t log t - t z - t + e^z),   ∂L/∂z = w_i/Σw (e^z - t)."""

    def forward(self, Z: Array, T: Any,  # T: array-like, checked here
                sample_weight: ArrayLike | None = None) -> float | None:
        Z = check_float(Z, "PoissonLoss")
        T = check_float(as_array(T, "PoissonLoss: target"), "PoissonLoss: target", rows=Z.shape[0], dtype=Z.dtype)
        self.shape = Z.shape
        if len(Z.shape) == 1:
            Z, T = Z.reshape(Z.shape[0], 1), T.reshape(T.shape[0], 1)
        n = Z.shape[0]
        self.P = self._ws("P", Z.shape, Z.dtype, Z)
        rows = self._ws("rows", (n,), Z.dtype, Z)
        ops.poisson_loss(Z, T, self.P, rows)                              # P = e^Z, rows_i = Σ_j (…)
        self.T = T
        self.w_host, self.w = self._row_weights(n, Z.dtype, Z, sample_weight, 1.0)
        return self._finish(rows, self.w_host)

    def backward(self) -> Array:
        if self.P is None:
            raise no_forward(type(self).__name__)
        dZ = self._ws("dZ", self.P.shape, self.P.dtype, self.P)
        ops.diff_backward(self.P, self.T, self.w, out=dZ)                 # dZ = w (e^Z - T)
        return dZ.reshape(self.shape)


class L2Penalty:
    r"""The estimators' weight penalty (α/2) ‖W‖² / n over every Linear weight (not the biases).

    Sequential keeps every Linear weight at the front of its flat buffer, so W = flat.data[:n_first] and one
    fused pass adds ∂/∂W = α W / n to the gradient and returns ‖W‖²."""

    def __init__(self, alpha):
        self.alpha = float(alpha)

    def __call__(self, model, n, grad=True):
        if not self.alpha:
            return 0.0
        flat = model.flat
        W = flat.data[:flat.n_first]
        if not grad:
            return 0.5 * self.alpha * ops.sumsq(W) / n
        return 0.5 * self.alpha * ops.add_l2(W, flat.grad[:flat.n_first], self.alpha / n) / n

    def defer(self, model, n, log):
        """As ``__call__`` on the GPU data path: the gradient term is added the same way, ‖W‖² stays on the
        device and ``log`` (tinynn._feed.LossLog) adds the penalty to the step's loss when it reads it back."""
        if not self.alpha:
            return
        flat, alpha = model.flat, self.alpha
        log.add_l2(flat.data[:flat.n_first], flat.grad[:flat.n_first], alpha / n,
                   lambda sumsq: 0.5 * alpha * sumsq / n)
