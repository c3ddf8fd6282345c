"""Reductions over rows."""
import numpy as np

from ..dispatch import define_op, same_as


@define_op(alloc=lambda X, **_: ((X.shape[1],), X.dtype))
def sum_rows(X, out=None):
    """out[j] = Σ_i X[i, j]   (the bias gradient db = Σ_n dY)."""
    np.sum(X, axis=0, out=out)
    return out


@define_op
def sumsq(X):
    """Σ X² as a Python float (gradient norms)."""
    return float(np.vdot(X, X))


@define_op(alloc=lambda P, **_: ((P.shape[0],), P.dtype))
def sq_err_rows(P, T, out=None):
    """out[i] = Σ_j (P[i, j] - T[i, j])²."""
    np.sum((P - T) ** 2, axis=1, out=out)
    return out


@define_op(alloc=same_as("P"))
def diff_backward(P, T, w, out=None):
    """out[i, j] = w[i] (P[i, j] - T[i, j]): the gradient of MSE (w = 2/N) and of sigmoid + binary
    cross-entropy w.r.t. the logits (w = 1/n), with per-row weights folded into w."""
    out[...] = w[:, None] * (P - T)
    return out


@define_op(alloc=lambda X, **_: ((X.shape[0],), np.int64))
def argmax_rows(X, out=None):
    """out[i] = argmax_j X[i, j]."""
    out[...] = np.argmax(X, axis=1)
    return out
