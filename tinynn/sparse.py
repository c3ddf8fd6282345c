r"""Sparse input: a batch of CSR rows, the only input the first Linear layer takes besides dense arrays.

For text classification on TF-IDF or hashed features (say 2^18 columns at density 1e-3) the input is never
densified: the first layer computes Z = X W with a CSR-times-dense kernel and dW = Xᵀ dZ with its transpose
(``ops.spmm``, ``ops.spmm_t``); no input gradient is formed for it (nothing upstream of the data).

``CSR.from_scipy`` takes any scipy.sparse matrix or array, validates it (Numba kernels check no bounds) and
places its three arrays on the model's device. scipy is needed only by whoever hands in scipy matrices.
"""
from __future__ import annotations

import sys

import numpy as np

from . import kernels


def is_scipy_sparse(X) -> bool:
    """True for a scipy.sparse matrix or array (without importing scipy when nobody has)."""
    sp = sys.modules.get("scipy.sparse")
    return sp is not None and sp.issparse(X)


class CSR:
    """Rows of a sparse matrix on one device: ``indptr`` (n+1,), ``indices`` (nnz,), ``data`` (nnz,)."""

    __slots__ = ("indptr", "indices", "data", "shape")

    def __init__(self, indptr, indices, data, shape):
        self.indptr, self.indices, self.data, self.shape = indptr, indices, data, tuple(shape)

    @property
    def dtype(self):
        return np.dtype(self.data.dtype)

    @classmethod
    def from_scipy(cls, X, dtype=None, device="cpu"):
        """A validated CSR copy of the scipy sparse matrix ``X`` (any format), in ``dtype``, on ``device``."""
        X = X.tocsr()
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        n, d = X.shape
        indptr = np.asarray(X.indptr, dtype=np.int64)
        indices = np.asarray(X.indices, dtype=np.int64)
        data = np.asarray(X.data, dtype=dtype if dtype is not None else X.dtype)
        if data.dtype.kind != "f":
            raise TypeError(f"sparse input: expected floating-point values, got {data.dtype}")
        if indptr.shape != (n + 1,) or indptr[0] != 0 or indptr[-1] != len(indices) or len(data) != len(indices) \
                or np.any(np.diff(indptr) < 0):
            raise ValueError(f"sparse input: corrupt CSR structure for shape {X.shape} (indptr, indices and data "
                             "do not agree)")
        if len(indices) and (indices.min() < 0 or indices.max() >= d):
            raise IndexError(f"sparse input: column index {int(indices.max())} out of range for {d} columns")
        if not np.all(np.isfinite(data)):
            raise ValueError("sparse input: Input X contains NaN or infinity")
        if device != "cpu":
            indptr, indices, data = (kernels.to_device(a, device) for a in (indptr, indices, data))
        return cls(indptr, indices, data, (n, d))

    def __repr__(self):
        return f"CSR(shape={self.shape}, nnz={self.indices.shape[0]}, dtype={self.dtype})"


def as_batch(X, dtype=None, device="cpu"):
    """X as the first layer takes it: a CSR for sparse input (scipy or CSR), else X itself."""
    if isinstance(X, CSR):
        return X
    if is_scipy_sparse(X):
        return CSR.from_scipy(X, dtype, device)
    return X
