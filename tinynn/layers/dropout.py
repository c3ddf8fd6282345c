from typing import Any

import numpy as np

from .. import kernels  # type: ignore[no-redef]  # kernels/ is tinynn.kernels by package_dir, which mypy does not map
from ..kernels import ops

from .._validation import check_float, check_probability, no_forward

_NO_FORWARD = object()                                               # M before any forward
from .base import Layer


class Dropout(Layer):
    r"""Inverted dropout.

    Train:  M = [U ≥ p] / (1 - p) with U ~ Uniform[0, 1) from the layer's own generator;  Y = X ⊙ M
    Eval:   Y = X (the 1/(1-p) scaling at train time keeps E[Y] = X, so nothing changes at test time)
    Backward: dX = dY ⊙ M   (the saved, already scaled mask)

    ``rng`` (a seed or np.random.Generator) makes the masks reproducible; reseed it to fix a mask.
    """

    M: Any = _NO_FORWARD                                                 # the saved mask; None: forward was identity

    def __init__(self, p=0.5, rng=None):
        self.p = check_probability(p, "Dropout: p")
        self.rng = np.random.default_rng(rng)

    def forward(self, X):
        X = check_float(X, "Dropout")
        if not self.training or self.p == 0.0:
            self.M = None
            return X
        U = self._ws("U", X.shape, X.dtype, X)
        kernels.random_uniform(self.rng, U)                          # U ~ Uniform[0, 1)
        self.M = ops.dropout_mask(U, self.p, out=U)                  # M = [U ≥ p] / (1-p), in place
        Y = self._ws("Y", X.shape, X.dtype, X)
        return ops.mul(X, self.M, out=Y)                             # Y = X ⊙ M

    def backward(self, dY):
        if self.M is None:
            return dY
        if self.M is _NO_FORWARD:
            raise no_forward("Dropout")
        dY = check_float(dY, "Dropout.backward", rows=self.M.shape[0], width=self.M.shape[len(self.M.shape) - 1])
        dX = self._ws("dX", dY.shape, dY.dtype, dY)
        return ops.mul(dY, self.M, out=dX)                           # dX = dY ⊙ M

    def __repr__(self):
        return f"Dropout(p={self.p})"
