"""Numba twins of kernels/reference/normalization.py (formulas there); one pass per row where possible."""
import math

from ..dispatch import ops
from ._jit import inline, kernel


def exp_row(Z, i, out):
    """out[i] = e^(Z[i] - m) with m = max_j Z[i, j]; returns (m, Σ_j out[i, j]) (softmax and log-sum-exp)."""
    m = Z[i, 0]
    for j in range(1, Z.shape[1]):
        m = max(m, Z[i, j])          # may skip a NaN, but then exp(NaN - m) makes the sum, so the row, NaN
    s = 0.0
    for j in range(Z.shape[1]):
        e = math.exp(Z[i, j] - m)
        out[i, j] = e
        s += e
    return m, s


_exp_row = inline(exp_row)


@kernel
def _softmax_rows(Z, out):
    for i in range(Z.shape[0]):
        _, s = _exp_row(Z, i, out)
        for j in range(Z.shape[1]):
            out[i, j] /= s


@ops.softmax_rows.register("cpu")
def softmax_rows(Z, out=None):
    _softmax_rows(Z, out)
    return out


@kernel
def _batchnorm_forward(X, gamma, beta, eps, Y, xhat, mean, var, inv_std):
    n, d = X.shape
    mean[:] = 0
    var[:] = 0
    for i in range(n):
        for j in range(d):
            mean[j] += X[i, j]
    for j in range(d):
        mean[j] /= n
    for i in range(n):
        for j in range(d):
            c = X[i, j] - mean[j]
            var[j] += c * c
    for j in range(d):
        var[j] /= n
        inv_std[j] = 1 / math.sqrt(var[j] + eps)
    for i in range(n):
        for j in range(d):
            xh = (X[i, j] - mean[j]) * inv_std[j]
            xhat[i, j] = xh
            Y[i, j] = gamma[j] * xh + beta[j]


@ops.batchnorm_forward.register("cpu")
def batchnorm_forward(X, gamma, beta, eps, Y, xhat, mean, var, inv_std):
    _batchnorm_forward(X, gamma, beta, eps, Y, xhat, mean, var, inv_std)
    return Y


@kernel
def _batchnorm_eval(X, gamma, beta, rmean, rvar, eps, out):
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            out[i, j] = gamma[j] * (X[i, j] - rmean[j]) / math.sqrt(rvar[j] + eps) + beta[j]


@ops.batchnorm_eval.register("cpu")
def batchnorm_eval(X, gamma, beta, rmean, rvar, eps, out=None):
    _batchnorm_eval(X, gamma, beta, rmean, rvar, eps, out)
    return out


@inline
def _affine_param_grads(dY, xhat, dgamma, dbeta):
    """dbeta = Σ_i dY and dgamma = Σ_i dY ⊙ xhat (batch norm and layer norm), accumulated row by row in place."""
    dgamma[:] = 0
    dbeta[:] = 0
    for i in range(dY.shape[0]):
        for j in range(dY.shape[1]):
            dbeta[j] += dY[i, j]
            dgamma[j] += dY[i, j] * xhat[i, j]


@kernel
def _batchnorm_backward(dY, xhat, gamma, inv_std, dX, dgamma, dbeta):
    n, d = dY.shape
    _affine_param_grads(dY, xhat, dgamma, dbeta)
    # Σ_i dxhat = gamma Σ dY = gamma dbeta;  Σ_i dxhat xhat = gamma dgamma
    for i in range(n):
        for j in range(d):
            dX[i, j] = gamma[j] * inv_std[j] / n * (n * dY[i, j] - dbeta[j] - xhat[i, j] * dgamma[j])


@ops.batchnorm_backward.register("cpu")
def batchnorm_backward(dY, xhat, gamma, inv_std, dX, dgamma, dbeta):
    _batchnorm_backward(dY, xhat, gamma, inv_std, dX, dgamma, dbeta)
    return dX


def layernorm_row(X, gamma, beta, eps, Y, xhat, inv_std, i):
    """Row i: m = mean, v = biased variance, inv_std_i = 1 / sqrt(v + eps), xhat = (X_i - m) inv_std_i,
    Y_i = gamma xhat + beta."""
    d = X.shape[1]
    m = 0.0
    for j in range(d):
        m += X[i, j]
    m /= d
    v = 0.0
    for j in range(d):
        c = X[i, j] - m
        v += c * c
    r = 1 / math.sqrt(v / d + eps)
    inv_std[i] = r
    for j in range(d):
        xh = (X[i, j] - m) * r
        xhat[i, j] = xh
        Y[i, j] = gamma[j] * xh + beta[j]


_layernorm_row = inline(layernorm_row)


@kernel
def _layernorm_forward(X, gamma, beta, eps, Y, xhat, inv_std):
    for i in range(X.shape[0]):
        _layernorm_row(X, gamma, beta, eps, Y, xhat, inv_std, i)


@ops.layernorm_forward.register("cpu")
def layernorm_forward(X, gamma, beta, eps, Y, xhat, inv_std):
    _layernorm_forward(X, gamma, beta, eps, Y, xhat, inv_std)
    return Y


def layernorm_dx_row(dY, xhat, gamma, inv_std, dX, i):
    """Row i of dX = inv_std_i / d · (d dxhat_i - Σ_j dxhat_ij - xhat_i Σ_j dxhat_ij xhat_ij), dxhat = dY ⊙ gamma
    (g below; s1, s2 the two sums)."""
    d = dY.shape[1]
    s1 = 0.0
    s2 = 0.0
    for j in range(d):
        g = dY[i, j] * gamma[j]
        s1 += g
        s2 += g * xhat[i, j]
    for j in range(d):
        dX[i, j] = inv_std[i] / d * (d * dY[i, j] * gamma[j] - s1 - xhat[i, j] * s2)


_layernorm_dx_row = inline(layernorm_dx_row)


@kernel
def _layernorm_backward(dY, xhat, gamma, inv_std, dX, dgamma, dbeta):
    _affine_param_grads(dY, xhat, dgamma, dbeta)
    for i in range(dY.shape[0]):
        _layernorm_dx_row(dY, xhat, gamma, inv_std, dX, i)


@ops.layernorm_backward.register("cpu")
def layernorm_backward(dY, xhat, gamma, inv_std, dX, dgamma, dbeta):
    _layernorm_backward(dY, xhat, gamma, inv_std, dX, dgamma, dbeta)
    return dX
