"""CUDA twins of kernels/reference/augment.py (formulas there): one thread per output pixel, grid-stride.

Coordinates and bilinear weights in float64 as in the reference (float32 coordinates of a 28-pixel image
move a sample by ~1e-5 pixel, more than the parity tolerance on steep edges)."""
from numba import cuda

from ..cpu import augment as cpu_augment
from ..dispatch import ops
from .launch import kernel, launch


sample = cuda.jit(device=True)(cpu_augment.sample)


@cuda.jit(device=True)
def affine_source(A, k, i, j, cx, cy):
    """The source point (sx, sy) of output pixel (i, j) of image k under its affine matrix A[k] (about the centre)."""
    u = j - cx
    v = i - cy
    sx = float(A[k, 0, 0]) * u + float(A[k, 0, 1]) * v + float(A[k, 0, 2]) + cx
    sy = float(A[k, 1, 0]) * u + float(A[k, 1, 1]) * v + float(A[k, 1, 2]) + cy
    return sx, sy


@kernel("{f}[:, :, ::1], {f}[:, :, ::1], {f}[:, :, ::1]")
def warp_affine_kernel(X, A, out):
    n, H, W = X.shape
    cy = (H - 1) / 2.0
    cx = (W - 1) / 2.0
    for t in range(cuda.grid(1), n * H * W, cuda.gridsize(1)):
        k = t // (H * W)
        i = (t // W) % H
        j = t % W
        sx, sy = affine_source(A, k, i, j, cx, cy)
        out[k, i, j] = sample(X, k, sx, sy, H, W)


@kernel("{f}[:, :, ::1], {f}[:, :, ::1], {f}[:, :, :, ::1], {f}[:, :, ::1]")
def warp_elastic_kernel(X, A, D, out):
    """As warp_affine_kernel, the source point moved by the displacement field D[k] = (dx, dy)."""
    n, H, W = X.shape
    cy = (H - 1) / 2.0
    cx = (W - 1) / 2.0
    for t in range(cuda.grid(1), n * H * W, cuda.gridsize(1)):
        k = t // (H * W)
        i = (t // W) % H
        j = t % W
        sx, sy = affine_source(A, k, i, j, cx, cy)
        out[k, i, j] = sample(X, k, sx + float(D[k, 0, i, j]), sy + float(D[k, 1, i, j]), H, W)


@ops.warp_affine.register("cuda")
def warp_affine(X, A, out=None):
    if out is None:
        out = cuda.device_array_like(X)
    launch(warp_affine_kernel, X.size, X, A, out)
    return out


@ops.warp_elastic.register("cuda")
def warp_elastic(X, A, D, out=None):
    if out is None:
        out = cuda.device_array_like(X)
    launch(warp_elastic_kernel, X.size, X, A, D, out)
    return out


@kernel("{f}[:, :, ::1], {f}[::1], {f}[:, :, ::1]")
def blur_rows_kernel(F, k, tmp):
    m, H, W = F.shape
    K = k.shape[0]
    r = (K - 1) // 2
    for t in range(cuda.grid(1), m * H * W, cuda.gridsize(1)):
        f = t // (H * W)
        i = (t // W) % H
        j = t % W
        acc = 0.0
        for b in range(K):
            jj = j + b - r
            if 0 <= jj < W:
                acc += k[b] * F[f, i, jj]
        tmp[f, i, j] = acc


@kernel("{f}[:, :, ::1], {f}[::1], float64, {f}[:, :, ::1]")
def blur_cols_kernel(tmp, k, scale, out):
    m, H, W = tmp.shape
    K = k.shape[0]
    r = (K - 1) // 2
    for t in range(cuda.grid(1), m * H * W, cuda.gridsize(1)):
        f = t // (H * W)
        i = (t // W) % H
        j = t % W
        acc = 0.0
        for a in range(K):
            ii = i + a - r
            if 0 <= ii < H:
                acc += k[a] * tmp[f, ii, j]
        out[f, i, j] = scale * acc


@ops.blur_separable.register("cuda")
def blur_separable(F, k, scale, out=None):
    if out is None:
        out = cuda.device_array_like(F)
    d_tmp = cuda.device_array(F.shape, F.dtype)
    launch(blur_rows_kernel, F.size, F, k, d_tmp)
    launch(blur_cols_kernel, F.size, d_tmp, k, float(scale), out)
    return out


clip = cuda.jit(device=True)(cpu_augment.clip)


@kernel("{f}[:, :, ::1], {f}[::1], {f}[::1], float64, float64, {f}[:, :, ::1]")
def brightness_contrast_kernel(X, c, b, lo, hi, out):
    n, H, W = X.shape
    for t in range(cuda.grid(1), n * H * W, cuda.gridsize(1)):
        k = t // (H * W)
        i = (t // W) % H
        j = t % W
        out[k, i, j] = clip(c[k] * X[k, i, j] + b[k], lo, hi)


@ops.brightness_contrast.register("cuda")
def brightness_contrast(X, c, b, lo, hi, out=None):
    if out is None:
        out = cuda.device_array_like(X)
    launch(brightness_contrast_kernel, X.size, X, c, b, float(lo), float(hi), out)
    return out


@kernel("{f}[:, :, ::1], {f}[:, :, ::1], float64, float64, {f}[:, :, ::1]")
def noise_kernel(X, N, lo, hi, out):
    n, H, W = X.shape
    for t in range(cuda.grid(1), n * H * W, cuda.gridsize(1)):
        k = t // (H * W)
        i = (t // W) % H
        j = t % W
        out[k, i, j] = clip(X[k, i, j] + N[k, i, j], lo, hi)


@ops.add_noise.register("cuda")
def add_noise(X, N, lo, hi, out=None):
    if out is None:
        out = cuda.device_array_like(X)
    launch(noise_kernel, X.size, X, N, float(lo), float(hi), out)
    return out
