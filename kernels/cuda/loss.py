"""CUDA twins of kernels/reference/loss.py (formulas there): one thread per row for the row losses, one
per element for the gradients."""
import math

from numba import cuda

from ..cpu import loss as cpu_loss
from ..dispatch import ops
from .launch import kernel, launch
from .normalization import row_max


@kernel("{f}[:, ::1], int64[::1], {f}[:, ::1], {f}[::1]")
def softmax_xent_kernel(Z, y, P, loss):
    n, d = Z.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        m = row_max(Z, i)
        s = 0.0
        for j in range(d):
            s += math.exp(Z[i, j] - m)
        log_s = math.log(s)
        for j in range(d):
            P[i, j] = math.exp(Z[i, j] - m - log_s)
        c = y[i]
        # log s - (z_c - m), not (m + log s) - z_c: the digits of log s survive logits of any size
        loss[i] = log_s - (Z[i, c] - m) if 0 <= c < d else math.nan   # a bad label gives NaN, never a bad read


@ops.softmax_xent.register("cuda")
def softmax_xent(Z, y, P, loss):
    launch(softmax_xent_kernel, Z.shape[0], Z, y, P, loss)
    return loss


@kernel("{f}[:, ::1], int64[::1], {f}[::1], {f}[:, ::1]")
def softmax_xent_backward_kernel(P, y, w, out):
    n, d = P.shape
    for k in range(cuda.grid(1), n * d, cuda.gridsize(1)):
        i, j = k // d, k % d
        out[i, j] = w[i] * (P[i, j] - (1.0 if j == y[i] else 0.0))


@ops.softmax_xent_backward.register("cuda")
def softmax_xent_backward(P, y, w, out=None):
    launch(softmax_xent_backward_kernel, P.size, P, y, w, out)
    return out


sigmoid_xent_row = cuda.jit(device=True)(cpu_loss.sigmoid_xent_row)


@kernel("{f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[::1]")
def sigmoid_xent_kernel(Z, T, P, loss):
    for i in range(cuda.grid(1), Z.shape[0], cuda.gridsize(1)):
        loss[i] = sigmoid_xent_row(Z, T, P, i)


@ops.sigmoid_xent.register("cuda")
def sigmoid_xent(Z, T, P, loss):
    launch(sigmoid_xent_kernel, Z.shape[0], Z, T, P, loss)
    return loss


sq_err_row = cuda.jit(device=True)(cpu_loss.sq_err_row)


@kernel("{f}[:, ::1], {f}[:, ::1], {f}[::1]")
def sq_err_rows_kernel(P, T, out):
    for i in range(cuda.grid(1), P.shape[0], cuda.gridsize(1)):
        out[i] = sq_err_row(P, T, i)


@ops.sq_err_rows.register("cuda")
def sq_err_rows(P, T, out=None):
    launch(sq_err_rows_kernel, P.shape[0], P, T, out)
    return out


@kernel("{f}[:, ::1], {f}[:, ::1], {f}[::1], {f}[:, ::1]")
def diff_backward_kernel(P, T, w, out):
    n, d = P.shape
    for k in range(cuda.grid(1), n * d, cuda.gridsize(1)):
        i, j = k // d, k % d
        out[i, j] = w[i] * (P[i, j] - T[i, j])


@ops.diff_backward.register("cuda")
def diff_backward(P, T, w, out=None):
    launch(diff_backward_kernel, P.size, P, T, w, out)
    return out


robust_row = cuda.jit(device=True)(cpu_loss.robust_row)
robust_psi = cuda.jit(device=True)(cpu_loss.robust_psi)


@kernel("{f}[:, ::1], {f}[:, ::1], int64, float64, {f}[::1]")
def robust_rows_kernel(P, T, kind, delta, out):
    for i in range(cuda.grid(1), P.shape[0], cuda.gridsize(1)):
        out[i] = robust_row(P, T, i, kind, delta)


@ops.robust_rows.register("cuda")
def robust_rows(P, T, kind, delta, out=None):
    launch(robust_rows_kernel, P.shape[0], P, T, int(kind), float(delta), out)
    return out


@kernel("{f}[:, ::1], {f}[:, ::1], {f}[::1], int64, float64, {f}[:, ::1]")
def robust_backward_kernel(P, T, w, kind, delta, out):
    n, d = P.shape
    for k in range(cuda.grid(1), n * d, cuda.gridsize(1)):
        i, j = k // d, k % d
        out[i, j] = w[i] * robust_psi(P[i, j] - T[i, j], kind, delta)


@ops.robust_backward.register("cuda")
def robust_backward(P, T, w, kind, delta, out=None):
    launch(robust_backward_kernel, P.size, P, T, w, int(kind), float(delta), out)
    return out


poisson_row = cuda.jit(device=True)(cpu_loss.poisson_row)


@kernel("{f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[::1]")
def poisson_loss_kernel(Z, T, P, loss):
    for i in range(cuda.grid(1), Z.shape[0], cuda.gridsize(1)):
        loss[i] = poisson_row(Z, T, P, i)


@ops.poisson_loss.register("cuda")
def poisson_loss(Z, T, P, loss):
    launch(poisson_loss_kernel, Z.shape[0], Z, T, P, loss)
    return loss
