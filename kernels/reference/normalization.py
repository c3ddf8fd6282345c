r"""Row-wise normalisations: softmax (+ cross-entropy), batch norm, layer norm.

Softmax cross-entropy through log-sum-exp, so that logits like ±1000 give exact finite values:

    m_i = max_j z_ij,   lse_i = m_i + log Σ_j exp(z_ij - m_i),   p_ij = exp(z_ij - lse_i),
    loss_i = lse_i - z_{i, y_i},       ∂loss_i/∂z_ij = p_ij - [j = y_i]
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
def softmax_xent(Z, y, P, loss):
    """P = softmax(Z) row-wise and loss[i] = lse(Z[i]) - Z[i, y[i]] (labels already validated)."""
    m = Z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True))
    P[...] = np.exp(Z - lse)
    loss[...] = lse[:, 0] - Z[np.arange(Z.shape[0]), y]
    return loss


@define_op(alloc=same_as("P"))
def softmax_xent_backward(P, y, w, out=None):
    """out[i, j] = w[i] (P[i, j] - [j = y[i]])   (w = 1/n for the batch mean, or per-row weights)."""
    out[...] = P
    out[np.arange(P.shape[0]), y] -= 1
    out *= w[:, None]
    return out


@define_op
def sigmoid_xent(Z, T, P, loss):
    """P = σ(Z); loss[i] = Σ_j softplus(z) - t z   (= -t log p - (1-t) log(1-p), stable form)."""
    e = np.exp(-np.abs(Z))
    P[...] = np.where(Z >= 0, 1 / (1 + e), e / (1 + e))
    loss[...] = (np.maximum(Z, 0) + np.log1p(e) - T * Z).sum(axis=1)
    return loss


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
