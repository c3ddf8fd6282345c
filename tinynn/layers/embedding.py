from typing import Any

import numpy as np

from .. import kernels  # type: ignore[no-redef]  # kernels/ is tinynn.kernels by package_dir, which mypy does not map
from ..kernels import ops

from .. import init as _init
from .._validation import as_array, check_dtype, check_float, check_positive_int, no_forward
from ..parameter import Parameter
from .base import Layer


class Embedding(Layer):
    r"""A lookup table: integer index i -> row W[i] of ``weight`` (num_embeddings, embedding_dim).

    Forward:  Y[n] = W[idx[n]]          idx (n,) -> Y (n, dim);  idx (n, k) -> Y (n, k·dim) (rows concatenated)
    Backward: dW = 0, then dW[idx[n]] += dY[n]   (repeated indices add up); no gradient w.r.t. integer
              indices, so backward returns None. ``weight.rows`` records the touched rows, so a lazy
              optimizer (Adam/Adagrad ``lazy=True``) updates only those: the rare-word, sparse-gradient case.
    Default init: N(0, 1), as torch.nn.Embedding.
    """

    accumulates_grad = True                                           # dW[idx] += dY
    idx: Any = None                                                       # the saved indices (None: no forward yet)

    def __init__(self, num_embeddings, embedding_dim, dtype=np.float32, init=None, rng=None):
        self.num_embeddings = check_positive_int(num_embeddings, "Embedding: num_embeddings")
        self.embedding_dim = check_positive_int(embedding_dim, "Embedding: embedding_dim")
        dtype = check_dtype(dtype, "Embedding")
        rng = np.random.default_rng(rng)
        shape = (self.num_embeddings, self.embedding_dim)
        W = rng.standard_normal(shape) if init is None else _init.get(init)(shape, rng, dtype)   # cast below
        self.weight = Parameter(np.asarray(W, dtype=dtype))
        self.needs_input_grad = False

    def _check_indices(self, idx):
        idx = as_array(idx, "Embedding")
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"Embedding: expected integer indices, got dtype {np.dtype(idx.dtype)}")
        if len(idx.shape) not in (1, 2) or idx.shape[0] == 0:
            raise ValueError(f"Embedding: expected a non-empty 1-D (n,) or 2-D (n, k) index array, got shape {idx.shape}")
        if not kernels.is_device_array(idx):
            if idx.min() < 0 or idx.max() >= self.num_embeddings:
                bad = idx[(idx < 0) | (idx >= self.num_embeddings)].flat[0]
                raise IndexError(f"Embedding: index {bad} out of range; expected indices in [0, {self.num_embeddings})")
            idx = idx.astype(np.int64, copy=False)
        return idx

    def forward(self, idx):
        idx = self._check_indices(idx)
        flat = idx.ravel()
        self.idx = flat                                               # saved for backward
        W = self.weight.data
        Y = self._ws("Y", (flat.shape[0], self.embedding_dim), W.dtype, W)
        ops.embedding_gather(W, flat, out=Y)                          # Y[n] = W[idx[n]]
        return Y.reshape(idx.shape[0], Y.size // idx.shape[0])       # (n, dim), or (n, k·dim) for (n, k) indices

    def backward(self, dY):
        if self.idx is None:
            raise no_forward("Embedding")
        dY = check_float(dY, "Embedding.backward", dtype=self.weight.data.dtype)
        if self.weight.requires_grad:
            d = self.embedding_dim
            if dY.shape[0] * (dY.shape[1] if len(dY.shape) == 2 else 1) != self.idx.shape[0] * d:
                raise ValueError(f"Embedding.backward: expected dY with {self.idx.shape[0] * d} elements, got shape {dY.shape}")
            ops.embedding_scatter(dY.reshape(self.idx.shape[0], d), self.idx, self.weight.grad)  # dW[idx] += dY
            self.weight.rows = np.unique(kernels.to_host(self.idx))   # rows a lazy optimizer updates
        return None

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"
