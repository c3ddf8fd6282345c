"""Numba twins of kernels/reference/reduce.py."""
import numpy as np

from ..dispatch import ops
from ._jit import inline, kernel


@kernel
def _sum_rows(X, out):
    out[:] = 0
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            out[j] += X[i, j]


@ops.sum_rows.register("cpu")
def sum_rows(X, out=None):
    _sum_rows(X, out)
    return out


@ops.sumsq.register("cpu")
def sumsq(X):
    # BLAS dot: vectorised and threaded (a serial Numba loop with a float accumulator cannot vectorise);
    # 0.09 ms -> 0.01 ms for the 200k weights of MNIST's first layer.
    x = X.reshape(-1)
    return float(np.dot(x, x))


def argmax_row(X, i):
    """argmax_j X[i, j]: the first maximum, or the first NaN if the row has one (numpy.argmax's answer)."""
    # The running maximum stays in a register and the update compiles to selects (no branch to mispredict):
    # 57 -> 41 us on 10000 x 10 float32. NaN is only flagged in the loop; a row that has one is searched
    # again for its first NaN, with a flag rather than a ``break`` (an early loop exit in this function, once
    # inlined, made the whole kernel 3x slower: 41 -> 130 us).
    best = 0
    m = X[i, 0]
    nan = m != m
    for j in range(1, X.shape[1]):
        x = X[i, j]
        nan |= x != x
        if x > m:
            best = j
            m = x
    if nan:
        found = False
        for j in range(X.shape[1]):
            if not found and X[i, j] != X[i, j]:
                best = j
                found = True
    return best


_argmax_row = inline(argmax_row)


@kernel
def _argmax_rows(X, out):
    for i in range(X.shape[0]):
        out[i] = _argmax_row(X, i)


@ops.argmax_rows.register("cpu")
def argmax_rows(X, out=None):
    _argmax_rows(X, out)
    return out
