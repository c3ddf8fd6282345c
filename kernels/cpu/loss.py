"""Numba twins of kernels/reference/loss.py (formulas there); one pass per row."""
import math

from ..dispatch import ops
from ._jit import kernel
from .normalization import exp_row


@kernel
def _softmax_xent(Z, y, P, loss):
    # One exp per element: P = e^(z-m) / s with s = Σ e^(z-m), and lse = m + log s (same math as the
    # reference's exp(z - lse); half the exponentials, 25 -> 13 us for a 200 x 10 batch).
    for i in range(Z.shape[0]):
        m, s = exp_row(Z, i, P)
        r = 1.0 / s
        for j in range(Z.shape[1]):
            P[i, j] *= r
        loss[i] = m + math.log(s) - Z[i, y[i]]


@ops.softmax_xent.register("cpu")
def softmax_xent(Z, y, P, loss):
    _softmax_xent(Z, y, P, loss)
    return loss


@kernel
def _softmax_xent_backward(P, y, w, out):
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            out[i, j] = w[i] * P[i, j]
        out[i, y[i]] -= w[i]


@ops.softmax_xent_backward.register("cpu")
def softmax_xent_backward(P, y, w, out=None):
    _softmax_xent_backward(P, y, w, out)
    return out


@kernel
def _sigmoid_xent(Z, T, P, loss):
    for i in range(Z.shape[0]):
        s = 0.0
        for j in range(Z.shape[1]):
            z = Z[i, j]
            e = math.exp(-abs(z))
            P[i, j] = 1 / (1 + e) if z >= 0 else e / (1 + e)
            s += (z if not (z <= 0) else 0.0) + math.log1p(e) - T[i, j] * z   # max(z, 0): NaN stays NaN
        loss[i] = s


@ops.sigmoid_xent.register("cpu")
def sigmoid_xent(Z, T, P, loss):
    _sigmoid_xent(Z, T, P, loss)
    return loss


@kernel
def _sq_err_rows(P, T, out):
    for i in range(P.shape[0]):
        s = 0.0
        for j in range(P.shape[1]):
            e = P[i, j] - T[i, j]
            s += e * e
        out[i] = s


@ops.sq_err_rows.register("cpu")
def sq_err_rows(P, T, out=None):
    _sq_err_rows(P, T, out)
    return out


@kernel
def _diff_backward(P, T, w, out):
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            out[i, j] = w[i] * (P[i, j] - T[i, j])


@ops.diff_backward.register("cpu")
def diff_backward(P, T, w, out=None):
    _diff_backward(P, T, w, out)
    return out


@kernel
def _poisson_loss(Z, T, P, loss):
    for i in range(Z.shape[0]):
        s = 0.0
        for j in range(Z.shape[1]):
            z, t = Z[i, j], T[i, j]
            p = math.exp(z)
            P[i, j] = p
            s += (t * math.log(t) if t > 0 else 0.0) - t * z - t + p
        loss[i] = s


@ops.poisson_loss.register("cpu")
def poisson_loss(Z, T, P, loss):
    _poisson_loss(Z, T, P, loss)
    return loss
