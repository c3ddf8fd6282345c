"""CUDA twins of kernels/reference/reduce.py."""
import numpy as np
from numba import cuda

from ..dispatch import ops
from .launch import blocks_for, flat, launch


@cuda.jit
def sum_rows_kernel(X, out):
    """One thread per column: coalesced reads across the threads of a warp."""
    n, d = X.shape
    for j in range(cuda.grid(1), d, cuda.gridsize(1)):
        s = 0.0
        for i in range(n):
            s += X[i, j]
        out[j] = s


@ops.sum_rows.register("cuda")
def sum_rows(X, out=None):
    launch(sum_rows_kernel, X.shape[1], X, out)
    return out


@cuda.jit
def sumsq_kernel(x, partial):
    """Each thread sums a grid-stride slice into partial[thread] (no atomics); the host adds the partials."""
    t = cuda.grid(1)
    s = 0.0
    for i in range(t, x.size, cuda.gridsize(1)):
        s += x[i] * x[i]
    partial[t] = s


@ops.sumsq.register("cuda")
def sumsq(X):
    blocks, tpb = blocks_for(X.size)
    partial = cuda.device_array(blocks * tpb, dtype=np.float64)
    sumsq_kernel[blocks, tpb](flat(X), partial)
    return float(partial.copy_to_host().sum())


@cuda.jit
def sq_err_rows_kernel(P, T, out):
    n, d = P.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        s = 0.0
        for j in range(d):
            e = P[i, j] - T[i, j]
            s += e * e
        out[i] = s


@ops.sq_err_rows.register("cuda")
def sq_err_rows(P, T, out=None):
    launch(sq_err_rows_kernel, P.shape[0], P, T, out)
    return out


@cuda.jit
def diff_backward_kernel(P, T, w, out):
    n, d = P.shape
    for k in range(cuda.grid(1), n * d, cuda.gridsize(1)):
        i, j = k // d, k % d
        out[i, j] = w[i] * (P[i, j] - T[i, j])


@ops.diff_backward.register("cuda")
def diff_backward(P, T, w, out=None):
    launch(diff_backward_kernel, P.size, P, T, w, out)
    return out


@cuda.jit
def argmax_rows_kernel(X, out):
    n, d = X.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        best = 0
        for j in range(1, d):
            if X[i, j] > X[i, best]:
                best = j
        out[i] = best


@ops.argmax_rows.register("cuda")
def argmax_rows(X, out=None):
    launch(argmax_rows_kernel, X.shape[0], X, out)
    return out
