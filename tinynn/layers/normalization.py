import numbers

import numpy as np

from ..kernels import ops

from .._validation import check_dtype, check_float, check_positive_int, no_forward
from ..parameter import Parameter
from .base import Layer


def _check_eps(eps, who):
    if not isinstance(eps, numbers.Real) or not float(eps) > 0:
        raise ValueError(f"{who}: eps must be > 0, got {eps!r}")
    return float(eps)


class BatchNorm1d(Layer):
    r"""Batch normalisation over the batch axis, PyTorch's semantics.

    Train:  μ = mean_n X,  σ² = mean_n (X - μ)² (biased),  x̂ = (X - μ) / √(σ² + eps),  Y = γ x̂ + β;
            running_mean ← (1-m) running_mean + m μ,
            running_var  ← (1-m) running_var  + m σ² n/(n-1)   (unbiased);   starts 0 and 1.
    Eval:   Y = γ (X - running_mean) / √(running_var + eps) + β   (each row on its own).
    Backward (train): dβ = Σ_n dY,  dγ = Σ_n dY ⊙ x̂,  dx̂ = dY ⊙ γ,
            dX = (1/√(σ²+eps)) / n · (n dx̂ - Σ_n dx̂ - x̂ Σ_n dx̂ ⊙ x̂)
    Saves x̂ and 1/√(σ²+eps) only.
    """

    _state_names = ("running_mean", "running_var")
    xhat = None                                      # saved by a training-mode forward (None: none to differentiate)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        self.num_features = check_positive_int(num_features, "BatchNorm1d: num_features")
        dtype = check_dtype(dtype, "BatchNorm1d")
        self.eps = _check_eps(eps, "BatchNorm1d")
        if not isinstance(momentum, numbers.Real) or not 0 <= float(momentum) <= 1:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        d = self.num_features
        self.weight = Parameter(np.ones(d, dtype))    # γ
        self.bias = Parameter(np.zeros(d, dtype))     # β
        self.running_mean = np.zeros(d, dtype)
        self.running_var = np.ones(d, dtype)

    def forward(self, X):
        g = self.weight.data
        X = check_float(X, "BatchNorm1d", ndim=2, width=self.num_features, dtype=g.dtype)
        n, d = X.shape
        Y = self._ws("Y", X.shape, X.dtype, X)
        if not self.training:
            self.xhat = None                         # backward differentiates the training-mode formula only
            return ops.batchnorm_eval(X, g, self.bias.data, self.running_mean, self.running_var, self.eps, out=Y)
        if n < 2:
            raise ValueError(f"BatchNorm1d: expected more than 1 row per batch in training mode, got shape {X.shape}")
        self.xhat = self._ws("xhat", X.shape, X.dtype, X)
        self.inv_std = self._ws("inv_std", (d,), X.dtype, X)
        mean = self._ws("mean", (d,), X.dtype, X)
        var = self._ws("var", (d,), X.dtype, X)
        ops.batchnorm_forward(X, g, self.bias.data, self.eps, Y, self.xhat, mean, var, self.inv_std)
        ops.lerp(self.running_mean, mean, self.momentum, 1.0)           # r ← (1-m) r + m μ
        ops.lerp(self.running_var, var, self.momentum, n / (n - 1))     # r ← (1-m) r + m σ² n/(n-1)
        return Y

    def backward(self, dY):
        if self.xhat is None:
            raise no_forward("BatchNorm1d", "a training-mode forward (backward after an eval-mode forward is not "
                                            "supported)")
        dY = check_float(dY, "BatchNorm1d.backward", ndim=2, width=self.num_features, rows=self.xhat.shape[0])
        dX = self._ws("dX", dY.shape, dY.dtype, dY)
        return ops.batchnorm_backward(dY, self.xhat, self.weight.data, self.inv_std, dX,
                                      self._grad_out(self.weight, "dg"), self._grad_out(self.bias, "db"))

    def __repr__(self):
        return f"BatchNorm1d({self.num_features}, eps={self.eps}, momentum={self.momentum})"


class LayerNorm(Layer):
    r"""Layer normalisation over the features of each row (same in train and eval).

    μ_i = mean_j X_ij,  σ²_i = mean_j (X_ij - μ_i)²,  x̂ = (X - μ) / √(σ² + eps),  Y = γ x̂ + β
    Backward: dβ = Σ_i dY,  dγ = Σ_i dY ⊙ x̂,  dx̂ = dY ⊙ γ,
              dX_i = (1/√(σ²_i+eps)) / d · (d dx̂_i - Σ_j dx̂_ij - x̂_i Σ_j dx̂_ij x̂_ij)
    """

    xhat = None                                      # saved by forward (None: no forward yet)

    def __init__(self, num_features, eps=1e-5, dtype=np.float32):
        self.num_features = check_positive_int(num_features, "LayerNorm: num_features")
        dtype = check_dtype(dtype, "LayerNorm")
        self.eps = _check_eps(eps, "LayerNorm")
        self.weight = Parameter(np.ones(self.num_features, dtype))
        self.bias = Parameter(np.zeros(self.num_features, dtype))

    def forward(self, X):
        g = self.weight.data
        X = check_float(X, "LayerNorm", ndim=2, width=self.num_features, dtype=g.dtype)
        Y = self._ws("Y", X.shape, X.dtype, X)
        self.xhat = self._ws("xhat", X.shape, X.dtype, X)
        self.inv_std = self._ws("inv_std", (X.shape[0],), X.dtype, X)
        return ops.layernorm_forward(X, g, self.bias.data, self.eps, Y, self.xhat, self.inv_std)

    def backward(self, dY):
        if self.xhat is None:
            raise no_forward("LayerNorm")
        dY = check_float(dY, "LayerNorm.backward", ndim=2, width=self.num_features, rows=self.xhat.shape[0])
        dX = self._ws("dX", dY.shape, dY.dtype, dY)
        return ops.layernorm_backward(dY, self.xhat, self.weight.data, self.inv_std, dX,
                                      self._grad_out(self.weight, "dg"), self._grad_out(self.bias, "db"))

    def __repr__(self):
        return f"LayerNorm({self.num_features}, eps={self.eps})"
