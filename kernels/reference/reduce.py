"""Reductions over rows and over whole arrays. NaN propagates: a sum with a NaN term is NaN, and
argmax_rows returns the index of a row's first NaN (numpy.argmax's rule: NaN counts as the maximum)."""
import numpy as np

from ..dispatch import define_op


@define_op(alloc=lambda X, **_: ((X.shape[1],), X.dtype))
def sum_rows(X, out=None):
    """out[j] = Σ_i X[i, j]   (the bias gradient db = Σ_n dY)."""
    np.sum(X, axis=0, out=out)
    return out


@define_op
def sumsq(X):
    """Σ X² as a Python float (gradient norms)."""
    return float(np.vdot(X, X))


@define_op(alloc=lambda X, **_: ((X.shape[0],), np.int64))
def argmax_rows(X, out=None):
    """out[i] = argmax_j X[i, j]   (the first maximum; the first NaN if the row has one)."""
    out[...] = np.argmax(X, axis=1)
    return out
