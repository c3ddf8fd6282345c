import numpy as np

from tinynn.kernels import ops
from tinynn.kernels.config import IDENTITY

from .. import init as _init
from .._validation import check_float, check_positive_int
from ..parameter import Parameter
from .base import Layer


class Linear(Layer):
    r"""Fully connected layer.

    Forward:   Y = X W + b            X (n, d_in), W (d_in, d_out), b (d_out,), Y (n, d_out)
    Backward:  dW = Xᵀ dY,  db = Σ_n dY,  dX = dY Wᵀ        (dA means ∂L/∂A)

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    dtype : float32 (default) or float64
    init : str or callable, default "kaiming_uniform"
        A name of ``tinynn.init.INITIALIZERS`` (He-uniform, variance 2/fan_in, is the default) or a
        callable ``(shape, rng, dtype) -> array``. The bias starts at zero.
    rng : np.random.Generator or int or None
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, init="kaiming_uniform",
                 rng=None):
        self.in_features = check_positive_int(in_features, "Linear: in_features")
        self.out_features = check_positive_int(out_features, "Linear: out_features")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"Linear: dtype must be floating-point, got {self.dtype}")
        rng = np.random.default_rng(rng)
        W = _init.get(init)((self.in_features, self.out_features), rng, self.dtype)
        self.weight = Parameter(np.asarray(W, dtype=self.dtype))
        self.bias = Parameter(np.zeros(self.out_features, self.dtype)) if bias else None

    def forward(self, X):
        """Y = X W + b."""
        W = self.weight.data
        X = check_float(X, "Linear", ndim=2, width=self.in_features, dtype=W.dtype)
        self.X = X                                                    # saved for backward
        Y = self._ws("Y", (X.shape[0], self.out_features), W.dtype, X)
        ops.matmul(X, W, out=Y)                                       # Y = X W
        if self.bias is not None:
            ops.bias_act(Y, self.bias.data, IDENTITY, 0.0, out=Y)     # Y += b, in place
        return Y

    def backward(self, dY):
        """dW = Xᵀ dY, db = Σ_n dY, dX = dY Wᵀ."""
        X = self.X
        W = self.weight.data
        dY = check_float(dY, "Linear.backward", ndim=2, width=self.out_features, rows=X.shape[0])
        if self.weight.requires_grad:
            ops.matmul(X, dY, trans_a=True, out=self.weight.grad)     # dW = Xᵀ dY
        if self.bias is not None and self.bias.requires_grad:
            ops.sum_rows(dY, out=self.bias.grad)                      # db = Σ_n dY
        if not self.needs_input_grad:                                 # first layer: skip dX
            return None
        dX = self._ws("dX", X.shape, W.dtype, X)
        return ops.matmul(dY, W, trans_b=True, out=dX)                # dX = dY Wᵀ

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"
