r"""Row-wise normalisations: softmax, batch norm, layer norm (the losses are in loss.py).

A NaN anywhere in a softmax row, a batch-norm column or a layer-norm row makes every output of that
row/column NaN: they all go through its max, mean or variance.
"""
import numpy as np

from ..dispatch import define_op, same_as


@define_op(alloc=same_as("Z"))
def softmax_rows(Z, out=None):
    """out[i] = softmax(Z[i]) (max-subtracted)."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    out[...] = E / E.sum(axis=1, keepdims=True)
    return out


@define_op
def batchnorm_forward(X, gamma, beta, eps, Y, xhat, mean, var, inv_std):
    r"""Training-mode batch norm over the rows (batch) of X, per column:

    mean = Σ_i x_i / n,  var = Σ_i (x_i - mean)² / n (biased),  inv_std = 1/√(var + eps),
    xhat = (x - mean) inv_std,  Y = gamma xhat + beta.
    """
    mean[...] = X.mean(axis=0)
    var[...] = ((X - mean) ** 2).mean(axis=0)
    inv_std[...] = 1 / np.sqrt(var + eps)
    xhat[...] = (X - mean) * inv_std
    Y[...] = gamma * xhat + beta
    return Y


@define_op(alloc=same_as("X"))
def batchnorm_eval(X, gamma, beta, rmean, rvar, eps, out=None):
    """Eval-mode batch norm: each row normalised with the running statistics alone."""
    out[...] = gamma * (X - rmean) / np.sqrt(rvar + eps) + beta
    return out


@define_op
def batchnorm_backward(dY, xhat, gamma, inv_std, dX, dgamma, dbeta):
    r"""dbeta = Σ_i dY,  dgamma = Σ_i dY ⊙ xhat,  dxhat = dY ⊙ gamma,
    dX = inv_std / n · (n dxhat - Σ_i dxhat - xhat Σ_i (dxhat ⊙ xhat))."""
    n = dY.shape[0]
    dbeta[...] = dY.sum(axis=0)
    dgamma[...] = (dY * xhat).sum(axis=0)
    dxhat = dY * gamma
    dX[...] = inv_std / n * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
    return dX


@define_op
def layernorm_forward(X, gamma, beta, eps, Y, xhat, inv_std):
    r"""Layer norm over the columns (features) of each row: the batch-norm formulas along axis 1."""
    mean = X.mean(axis=1, keepdims=True)
    var = ((X - mean) ** 2).mean(axis=1, keepdims=True)
    inv_std[...] = 1 / np.sqrt(var[:, 0] + eps)
    xhat[...] = (X - mean) * inv_std[:, None]
    Y[...] = gamma * xhat + beta
    return Y


@define_op
def layernorm_backward(dY, xhat, gamma, inv_std, dX, dgamma, dbeta):
    r"""dbeta = Σ_i dY,  dgamma = Σ_i dY ⊙ xhat,  dxhat = dY ⊙ gamma,
    dX_i = inv_std_i / d · (d dxhat_i - Σ_j dxhat_ij - xhat_i Σ_j dxhat_ij xhat_ij)."""
    d = dY.shape[1]
    dbeta[...] = dY.sum(axis=0)
    dgamma[...] = (dY * xhat).sum(axis=0)
    dxhat = dY * gamma
    s1 = dxhat.sum(axis=1, keepdims=True)
    s2 = (dxhat * xhat).sum(axis=1, keepdims=True)
    dX[...] = inv_std[:, None] / d * (d * dxhat - s1 - xhat * s2)
    return dX
