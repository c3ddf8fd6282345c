"""numba.cuda twins of kernels/reference/sparse.py (formulas there): one thread per output element of a row
(spmm), and one thread per (row, column) adding into dW with atomics (spmm_t, after a zero fill)."""
from numba import cuda

from ..dispatch import ops
from .launch import kernel, launch


@kernel("int64[::1], int64[::1], {f}[::1], {f}[:, ::1], {f}[:, ::1]")
def spmm_kernel(indptr, indices, data, B, out):
    m = out.shape[1]
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for t in range(start, out.shape[0] * m, stride):
        i = t // m
        j = t - i * m
        acc = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            acc += data[k] * B[indices[k], j]
        out[i, j] = acc


@kernel("int64[::1], int64[::1], {f}[::1], {f}[:, ::1], {f}[:, ::1]")
def spmm_t_kernel(indptr, indices, data, D, out):
    m = D.shape[1]
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for t in range(start, D.shape[0] * m, stride):
        i = t // m
        j = t - i * m
        g = D[i, j]
        for k in range(indptr[i], indptr[i + 1]):
            cuda.atomic.add(out, (indices[k], j), data[k] * g)


@ops.spmm.register("cuda")
def spmm(indptr, indices, data, B, out=None):
    launch(spmm_kernel, out.shape[0] * out.shape[1], indptr, indices, data, B, out)
    return out


@ops.spmm_t.register("cuda")
def spmm_t(indptr, indices, data, D, out):
    ops.fill(out, 0.0)
    launch(spmm_t_kernel, D.shape[0] * D.shape[1], indptr, indices, data, D, out)
    return out
