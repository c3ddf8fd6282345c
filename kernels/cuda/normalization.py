"""CUDA twins of kernels/reference/normalization.py.

Row-wise ops (softmax, layer norm) run one thread per row and column-wise ops (batch norm
statistics and gradients) one thread per column: for MLP widths (10 classes, up to a few thousand
features) that keeps every thread's loop short and the column loops coalesced.
"""
import math

from numba import cuda

from ..cpu import normalization as cpu_normalization
from ..dispatch import ops
from .launch import kernel, launch


@cuda.jit(device=True)
def row_max(Z, i):
    m = Z[i, 0]
    for j in range(1, Z.shape[1]):
        m = max(m, Z[i, j])          # may skip a NaN, but then exp(NaN - m) makes the sum, so the row, NaN
    return m


exp_row = cuda.jit(device=True)(cpu_normalization.exp_row)


@kernel("{f}[:, ::1], {f}[:, ::1]")
def softmax_rows_kernel(Z, out):
    for i in range(cuda.grid(1), Z.shape[0], cuda.gridsize(1)):
        _, s = exp_row(Z, i, out)
        for j in range(Z.shape[1]):
            out[i, j] /= s


@ops.softmax_rows.register("cuda")
def softmax_rows(Z, out=None):
    launch(softmax_rows_kernel, Z.shape[0], Z, out)
    return out


@kernel("{f}[:, ::1], {f}[::1], {f}[::1], float64, {f}[:, ::1], {f}[:, ::1], {f}[::1], {f}[::1], {f}[::1]")
def batchnorm_forward_kernel(X, gamma, beta, eps, Y, xhat, mean, var, inv_std):
    n, d = X.shape
    for j in range(cuda.grid(1), d, cuda.gridsize(1)):
        m = 0.0
        for i in range(n):
            m += X[i, j]
        m /= n
        v = 0.0
        for i in range(n):
            c = X[i, j] - m
            v += c * c
        v /= n
        r = 1 / math.sqrt(v + eps)
        mean[j], var[j], inv_std[j] = m, v, r
        for i in range(n):
            xh = (X[i, j] - m) * r
            xhat[i, j] = xh
            Y[i, j] = gamma[j] * xh + beta[j]


@ops.batchnorm_forward.register("cuda")
def batchnorm_forward(X, gamma, beta, eps, Y, xhat, mean, var, inv_std):
    launch(batchnorm_forward_kernel, X.shape[1], X, gamma, beta, float(eps), Y, xhat, mean, var,
           inv_std)
    return Y


@kernel("{f}[:, ::1], {f}[::1], {f}[::1], {f}[::1], {f}[::1], float64, {f}[:, ::1]")
def batchnorm_eval_kernel(X, gamma, beta, rmean, rvar, eps, out):
    n, d = X.shape
    for k in range(cuda.grid(1), n * d, cuda.gridsize(1)):
        i, j = k // d, k % d
        out[i, j] = gamma[j] * (X[i, j] - rmean[j]) / math.sqrt(rvar[j] + eps) + beta[j]


@ops.batchnorm_eval.register("cuda")
def batchnorm_eval(X, gamma, beta, rmean, rvar, eps, out=None):
    launch(batchnorm_eval_kernel, X.size, X, gamma, beta, rmean, rvar, float(eps), out)
    return out


@cuda.jit(device=True)
def affine_param_grads(dY, xhat, j, dgamma, dbeta):
    """Column j of dβ = Σ_i dY and dγ = Σ_i dY ⊙ x̂ (shared by batch norm and layer norm); returns both."""
    sb = 0.0
    sg = 0.0
    for i in range(dY.shape[0]):
        sb += dY[i, j]
        sg += dY[i, j] * xhat[i, j]
    dbeta[j], dgamma[j] = sb, sg
    return sb, sg


@kernel("{f}[:, ::1], {f}[:, ::1], {f}[::1], {f}[::1], {f}[:, ::1], {f}[::1], {f}[::1]")
def batchnorm_backward_kernel(dY, xhat, gamma, inv_std, dX, dgamma, dbeta):
    n, d = dY.shape
    for j in range(cuda.grid(1), d, cuda.gridsize(1)):
        sb, sg = affine_param_grads(dY, xhat, j, dgamma, dbeta)
        c = gamma[j] * inv_std[j] / n
        for i in range(n):
            dX[i, j] = c * (n * dY[i, j] - sb - xhat[i, j] * sg)


@ops.batchnorm_backward.register("cuda")
def batchnorm_backward(dY, xhat, gamma, inv_std, dX, dgamma, dbeta):
    launch(batchnorm_backward_kernel, dY.shape[1], dY, xhat, gamma, inv_std, dX, dgamma, dbeta)
    return dX


layernorm_row = cuda.jit(device=True)(cpu_normalization.layernorm_row)


@kernel("{f}[:, ::1], {f}[::1], {f}[::1], float64, {f}[:, ::1], {f}[:, ::1], {f}[::1]")
def layernorm_forward_kernel(X, gamma, beta, eps, Y, xhat, inv_std):
    for i in range(cuda.grid(1), X.shape[0], cuda.gridsize(1)):
        layernorm_row(X, gamma, beta, eps, Y, xhat, inv_std, i)


@ops.layernorm_forward.register("cuda")
def layernorm_forward(X, gamma, beta, eps, Y, xhat, inv_std):
    launch(layernorm_forward_kernel, X.shape[0], X, gamma, beta, float(eps), Y, xhat, inv_std)
    return Y


layernorm_dx_row = cuda.jit(device=True)(cpu_normalization.layernorm_dx_row)


@kernel("{f}[:, ::1], {f}[:, ::1], {f}[::1], {f}[::1], {f}[:, ::1]")
def layernorm_dx_kernel(dY, xhat, gamma, inv_std, dX):
    for i in range(cuda.grid(1), dY.shape[0], cuda.gridsize(1)):
        layernorm_dx_row(dY, xhat, gamma, inv_std, dX, i)


@kernel("{f}[:, ::1], {f}[:, ::1], {f}[::1], {f}[::1]")
def layernorm_dparams_kernel(dY, xhat, dgamma, dbeta):
    for j in range(cuda.grid(1), dY.shape[1], cuda.gridsize(1)):
        affine_param_grads(dY, xhat, j, dgamma, dbeta)


@ops.layernorm_backward.register("cuda")
def layernorm_backward(dY, xhat, gamma, inv_std, dX, dgamma, dbeta):
    launch(layernorm_dx_kernel, dY.shape[0], dY, xhat, gamma, inv_std, dX)       # rows: dX
    launch(layernorm_dparams_kernel, dY.shape[1], dY, xhat, dgamma, dbeta)      # columns: dγ, dβ
    return dX
