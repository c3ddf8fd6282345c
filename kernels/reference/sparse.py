r"""Sparse rows times dense matrices: the first Linear layer on a CSR batch (TF-IDF, hashed features).

A CSR matrix X (n, d) is (indptr (n+1,), indices (nnz,), data (nnz,)): row i holds data[k] at column
indices[k] for k in [indptr[i], indptr[i+1]). Nothing is ever densified.

spmm     Y = X B            Y_ij = Σ_{k in row i} data_k B_{indices_k, j}          (forward:  Z = X W)
spmm_t   G = Xᵀ D           G_cj = Σ_i Σ_{k in row i, indices_k = c} data_k D_ij   (backward: dW = Xᵀ dZ)
"""
import numpy as np

from ..dispatch import define_op


def _rows(indptr):
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


@define_op(alloc=lambda indptr, B, **_: ((len(indptr) - 1, B.shape[1]), B.dtype))
def spmm(indptr, indices, data, B, out=None):
    """out = X B for the CSR matrix X = (indptr, indices, data)."""
    out[...] = 0
    np.add.at(out, _rows(indptr), data[:, None] * B[indices])
    return out


@define_op
def spmm_t(indptr, indices, data, D, out):
    """out = Xᵀ D for the CSR matrix X = (indptr, indices, data); out (d, D.shape[1]) is overwritten."""
    out[...] = 0
    np.add.at(out, indices, data[:, None] * D[_rows(indptr)])
    return out
