"""CUDA twins of kernels/reference/reduce.py."""
import numpy as np
from numba import cuda

from ..cpu import reduce as cpu_reduce
from ..dispatch import ops
from .launch import blocks_for, flat, kernel, launch


@kernel("{f}[:, ::1], {f}[::1]")
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


@kernel("{f}[::1], float64[::1]")
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


argmax_row = cuda.jit(device=True)(cpu_reduce.argmax_row)


@kernel("{f}[:, ::1], int64[::1]")
def argmax_rows_kernel(X, out):
    """One thread per row; a row with a NaN answers its first NaN (numpy.argmax), as the CPU kernel."""
    for i in range(cuda.grid(1), X.shape[0], cuda.gridsize(1)):
        out[i] = argmax_row(X, i)


@ops.argmax_rows.register("cuda")
def argmax_rows(X, out=None):
    launch(argmax_rows_kernel, X.shape[0], X, out)
    return out
