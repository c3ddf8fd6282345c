import numpy as np

from .. import kernels  # type: ignore[no-redef]  # kernels/ is tinynn.kernels by package_dir, which mypy does not map
from ..kernels import ops
from ..kernels.config import IDENTITY

from .. import init as _init
from .._validation import check_dtype, check_float, check_positive_int, no_forward
from ..parameter import Parameter
from ..sparse import CSR, as_batch
from .base import Layer


def check_input(X, who, width, W):
    """A dense float array or a sparse CSR batch (``tinynn.sparse``) of ``width`` columns in W's dtype."""
    if type(X) is np.ndarray:                                     # the common case: no sparse conversion to try
        return check_float(X, who, ndim=2, width=width, dtype=W.dtype)
    X = as_batch(X, W.dtype, kernels.device_of(W))
    if isinstance(X, CSR):
        if X.shape[1] != width or X.dtype != W.dtype:
            raise ValueError(f"{who}: expected sparse input of {width} columns in {W.dtype}, got {X.shape[1]} "
                             f"columns in {X.dtype}")
        return X
    return check_float(X, who, ndim=2, width=width, dtype=W.dtype)


def xw(X, W, out):
    """out = X W, for a dense X (a GEMM) or a sparse CSR X (ops.spmm: no densifying)."""
    if isinstance(X, CSR):
        return ops.spmm(X.indptr, X.indices, X.data, W, out=out)
    return ops.matmul(X, W, out=out)


def xt_dy(X, dY, out):
    """out = Xᵀ dY, dense or sparse X."""
    if isinstance(X, CSR):
        return ops.spmm_t(X.indptr, X.indices, X.data, dY, out)
    return ops.matmul(X, dY, trans_a=True, out=out)


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

    X = None                                                          # the saved input (None: no forward yet)

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, init="kaiming_uniform",
                 rng=None):
        self.in_features = check_positive_int(in_features, "Linear: in_features")
        self.out_features = check_positive_int(out_features, "Linear: out_features")
        self.dtype = check_dtype(dtype, "Linear")
        rng = np.random.default_rng(rng)
        W = _init.get(init)((self.in_features, self.out_features), rng, self.dtype)
        self.weight = Parameter(np.asarray(W, dtype=self.dtype))
        self.bias = Parameter(np.zeros(self.out_features, self.dtype)) if bias else None

    def forward(self, X):
        """Y = X W + b."""
        W = self.weight.data
        X = check_input(X, "Linear", self.in_features, W)
        self.X = X                                                    # saved for backward
        Y = self._ws("Y", (X.shape[0], self.out_features), W.dtype, W)
        xw(X, W, Y)                                                   # Y = X W
        if self.bias is not None:
            ops.bias_act(Y, self.bias.data, IDENTITY, out=Y)          # Y += b, in place
        return Y

    def backward(self, dY):
        """dW = Xᵀ dY, db = Σ_n dY, dX = dY Wᵀ."""
        X = self.X
        if X is None:
            raise no_forward("Linear")
        W = self.weight.data
        dY = check_float(dY, "Linear.backward", ndim=2, width=self.out_features, rows=X.shape[0])
        if self.weight.requires_grad:
            xt_dy(X, dY, self.weight.grad)                            # dW = Xᵀ dY
        if self.bias is not None and self.bias.requires_grad:
            ops.sum_rows(dY, out=self.bias.grad)                      # db = Σ_n dY
        if not self.needs_input_grad or isinstance(X, CSR):           # first layer, or data: no dX
            return None
        dX = self._ws("dX", X.shape, W.dtype, X)
        return ops.matmul(dY, W, trans_b=True, out=dX)                # dX = dY Wᵀ

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"
