"""Numba twins of kernels/reference/augment.py (formulas there): one image per ``prange`` iteration.

Compiled with parallel=True (no aliasing assumed: the inner loops vectorise) and run on
``config.CPU_THREADS`` threads: 2 threads measured slower here, the BLAS threads of the training step being the
other users of the 2 cores.
"""
import math

import numba
import numpy as np
from numba import prange

from .. import config
from ..dispatch import ops
from ._jit import _fork_unsafe, cached, fork_safe, inline

parallel_kernel = cached(parallel=True, nogil=True)


def _threads():
    if not _fork_unsafe[0]:             # a forked child runs them serially (kernels/cpu/_jit.py)
        numba.set_num_threads(config.CPU_THREADS)


def sample(X, k, sx, sy, H, W):
    """Bilinear sample of X[k] at (sx, sy) (float64), 0 outside, NaN at NaN coordinates."""
    if sx != sx or sy != sy:
        return math.nan
    if sx <= -1.0 or sx >= W or sy <= -1.0 or sy >= H:
        return 0.0
    fx0 = math.floor(sx)
    fy0 = math.floor(sy)
    fx = sx - fx0
    fy = sy - fy0
    x0 = int(fx0)
    y0 = int(fy0)
    v00 = 0.0
    v01 = 0.0
    v10 = 0.0
    v11 = 0.0
    if y0 >= 0:
        if x0 >= 0:
            v00 = X[k, y0, x0]
        if x0 + 1 < W:
            v01 = X[k, y0, x0 + 1]
    if y0 + 1 < H:
        if x0 >= 0:
            v10 = X[k, y0 + 1, x0]
        if x0 + 1 < W:
            v11 = X[k, y0 + 1, x0 + 1]
    top = (1 - fx) * v00 + fx * v01
    bottom = (1 - fx) * v10 + fx * v11
    return (1 - fy) * top + fy * bottom


_sample = inline(sample)


@parallel_kernel
def _warp(X, A, D, elastic, out):
    n, H, W = X.shape
    cy = (H - 1) / 2.0
    cx = (W - 1) / 2.0
    for k in prange(n):
        a00 = np.float64(A[k, 0, 0])
        a01 = np.float64(A[k, 0, 1])
        a02 = np.float64(A[k, 0, 2])
        a10 = np.float64(A[k, 1, 0])
        a11 = np.float64(A[k, 1, 1])
        a12 = np.float64(A[k, 1, 2])
        for i in range(H):
            v = i - cy
            bx = a01 * v + a02 + cx
            by = a11 * v + a12 + cy
            for j in range(W):
                u = j - cx
                sx = a00 * u + bx
                sy = a10 * u + by
                if elastic:
                    sx += np.float64(D[k, 0, i, j])
                    sy += np.float64(D[k, 1, i, j])
                out[k, i, j] = _sample(X, k, sx, sy, H, W)


@ops.warp_affine.register("cpu")
def warp_affine(X, A, out=None):
    if out is None:
        out = np.empty_like(X)
    _threads()
    fork_safe(_warp)(X, A, X[:, None, :1, :1], False, out)
    return out


@ops.warp_elastic.register("cpu")
def warp_elastic(X, A, D, out=None):
    if out is None:
        out = np.empty_like(X)
    _threads()
    fork_safe(_warp)(X, A, D, True, out)
    return out


@parallel_kernel
def _blur(F, k, scale, out):
    # Batch-innermost layout: the fields are transposed to (H, W, m) so that every tap is one long
    # contiguous multiply-add over the m fields (SIMD), instead of a 28-wide row (2.3 -> ~0.6 ms for
    # 256 fields of 28x28 with 25 taps, one thread).
    m, H, W = F.shape
    K = k.shape[0]
    r = (K - 1) // 2
    T = F.dtype.type
    s = T(scale)
    Ft = np.empty((H, W, m), F.dtype)
    for f in range(m):
        for i in range(H):
            for j in range(W):
                Ft[i, j, f] = F[f, i, j]
    tmp = np.zeros((H, W, m), F.dtype)                  # rows pass: tmp[i, j] = Σ_b k[b] F[i, j+b-r]
    for i in prange(H):
        for j in range(W):
            for b in range(K):
                jj = j + b - r
                if jj < 0 or jj >= W:
                    continue
                kb = T(k[b])
                for f in range(m):
                    tmp[i, j, f] += kb * Ft[i, jj, f]
    acc = np.zeros((H, W, m), F.dtype)                  # columns pass: out[i, j] = s Σ_a k[a] tmp[i+a-r, j]
    for i in prange(H):
        for a in range(K):
            ii = i + a - r
            if ii < 0 or ii >= H:
                continue
            ka = T(k[a])
            for j in range(W):
                for f in range(m):
                    acc[i, j, f] += ka * tmp[ii, j, f]
    for f in range(m):
        for i in range(H):
            for j in range(W):
                out[f, i, j] = s * acc[i, j, f]


@ops.blur_separable.register("cpu")
def blur_separable(F, k, scale, out=None):
    if out is None:
        out = np.empty_like(F)
    _threads()
    fork_safe(_blur)(F, k, scale, out)
    return out


def clip(v, lo, hi):
    if v < lo:                                           # NaN fails both tests: NaN out, as numpy.clip
        return lo
    if v > hi:
        return hi
    return v


_clip = inline(clip)


@parallel_kernel
def _bc(X, c, b, lo, hi, out):
    n, H, W = X.shape
    T = X.dtype.type
    lo_, hi_ = T(lo), T(hi)
    for k in prange(n):
        ck = c[k]
        bk = b[k]
        for i in range(H):
            for j in range(W):
                out[k, i, j] = _clip(ck * X[k, i, j] + bk, lo_, hi_)


@ops.brightness_contrast.register("cpu")
def brightness_contrast(X, c, b, lo, hi, out=None):
    if out is None:
        out = np.empty_like(X)
    _threads()
    fork_safe(_bc)(X, c, b, lo, hi, out)
    return out


@parallel_kernel
def _noise(X, N, lo, hi, out):
    n, H, W = X.shape
    T = X.dtype.type
    lo_, hi_ = T(lo), T(hi)
    for k in prange(n):
        for i in range(H):
            for j in range(W):
                out[k, i, j] = _clip(X[k, i, j] + N[k, i, j], lo_, hi_)


@ops.add_noise.register("cpu")
def add_noise(X, N, lo, hi, out=None):
    if out is None:
        out = np.empty_like(X)
    _threads()
    fork_safe(_noise)(X, N, lo, hi, out)
    return out
