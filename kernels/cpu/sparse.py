"""Numba twins of kernels/reference/sparse.py (formulas there).

spmm writes one row of Y per outer iteration; spmm_t walks the output columns in blocks of 64 so a block of
``out`` stays in cache while every nonzero adds into it."""
import numpy as np

from ..dispatch import ops
from ._jit import kernel


@kernel
def _spmm(indptr, indices, data, B, out):
    n, m = out.shape
    for i in range(n):
        for j in range(m):
            out[i, j] = 0
        for k in range(indptr[i], indptr[i + 1]):
            c = indices[k]
            v = data[k]
            for j in range(m):
                out[i, j] += v * B[c, j]


@ops.spmm.register("cpu")
def spmm(indptr, indices, data, B, out=None):
    _spmm(indptr, indices, data, B, out)
    return out


@kernel
def _spmm_t(indptr, indices, data, D, out, block):
    d, m = out.shape
    n = D.shape[0]
    for b in range((m + block - 1) // block):
        j0 = b * block
        j1 = min(j0 + block, m)
        for c in range(d):
            for j in range(j0, j1):
                out[c, j] = 0
        for i in range(n):
            for k in range(indptr[i], indptr[i + 1]):
                c = indices[k]
                v = data[k]
                for j in range(j0, j1):
                    out[c, j] += v * D[i, j]


@ops.spmm_t.register("cpu")
def spmm_t(indptr, indices, data, D, out):
    _spmm_t(indptr, indices, data, D, out, np.int64(64))
    return out
