r"""Data-augmentation ops on a batch of images X (n, H, W) (an MNIST batch (n, 784) viewed as (n, 28, 28)).

Every random number is drawn on the host by tinynn.augment from the run's generator and passed in; the ops
are deterministic functions of their arguments.

Geometry (``warp_affine``, ``warp_elastic``): output pixel (i, j) (row, column) reads the input at

    (u, v) = (j - cx, i - cy),   cx = (W-1)/2,  cy = (H-1)/2          centred output coordinates
    sx = A[k,0,0] u + A[k,0,1] v + A[k,0,2] + cx  (+ D[k,0,i,j])      source column
    sy = A[k,1,0] u + A[k,1,1] v + A[k,1,2] + cy  (+ D[k,1,i,j])      source row

by bilinear interpolation between its four neighbours, a neighbour outside the image counting as 0:

    x0 = ⌊sx⌋, y0 = ⌊sy⌋, fx = sx - x0, fy = sy - y0
    out = (1-fy)((1-fx) X[y0,x0] + fx X[y0,x0+1]) + fy((1-fx) X[y0+1,x0] + fx X[y0+1,x0+1])

A (n, 2, 3) is the inverse map (output -> source) of the per-image translation/rotation/scale/shear; D
(n, 2, H, W) is an elastic displacement field (Simard et al. 2003) in pixels. Coordinates and weights are
computed in float64 on every backend. A source point whose coordinates are NaN gives NaN; one with no
neighbour inside (sx <= -1 or sx >= W or sy <= -1 or sy >= H) gives 0 without reading X; otherwise every
neighbour inside is read and weighted (a NaN neighbour makes the pixel NaN even at weight 0).

``blur_separable`` smooths fields (Simard's Gaussian): out = scale · (k ⊛ rows)(k ⊛ columns) F with zero
padding, k of odd length K = 2r+1 centred on the pixel (out[i, j] = Σ_a Σ_b k[a] k[b] F[i+a-r, j+b-r]); taps
that fall outside the image are skipped (a NaN tap weight reaches only the pixels it weights).

``brightness_contrast``: out = clip(c[k] X + b[k], lo, hi);  ``add_noise``: out = clip(X + N, lo, hi).
NaN passes through clip (numpy.clip).
"""
import numpy as np

from ..dispatch import define_op, same_as


def _bilinear(X, sx, sy):
    """Bilinear samples of images X (n, H, W) at float64 coordinates sx, sy (n, H, W), zero outside."""
    n, H, W = X.shape
    nan = np.isnan(sx) | np.isnan(sy)
    outside = ~nan & ((sx <= -1) | (sx >= W) | (sy <= -1) | (sy >= H))
    sx = np.where(nan | outside, 0.0, sx)                         # keep floor() away from NaN/huge values
    sy = np.where(nan | outside, 0.0, sy)
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    k = np.arange(n)[:, None, None]
    Xd = X.astype(np.float64)

    def pix(yy, xx):                                              # X[k, yy, xx], 0 outside
        inside = (xx >= 0) & (xx < W) & (yy >= 0) & (yy < H)
        return np.where(inside, Xd[k, np.clip(yy, 0, H - 1), np.clip(xx, 0, W - 1)], 0.0)

    top = (1 - fx) * pix(y0, x0) + fx * pix(y0, x0 + 1)
    bottom = (1 - fx) * pix(y0 + 1, x0) + fx * pix(y0 + 1, x0 + 1)
    val = (1 - fy) * top + fy * bottom
    val = np.where(outside, 0.0, val)
    return np.where(nan, np.nan, val)


def _source(A, H, W):
    """The affine source coordinates (sx, sy), each (n, H, W) float64, of every output pixel."""
    A = A.astype(np.float64)
    cy, cx = (H - 1) / 2, (W - 1) / 2
    v, u = np.meshgrid(np.arange(H) - cy, np.arange(W) - cx, indexing="ij")      # (H, W)
    sx = A[:, 0, 0, None, None] * u + A[:, 0, 1, None, None] * v + A[:, 0, 2, None, None] + cx
    sy = A[:, 1, 0, None, None] * u + A[:, 1, 1, None, None] * v + A[:, 1, 2, None, None] + cy
    return sx, sy


@define_op(alloc=same_as("X"))
def warp_affine(X, A, out=None):
    """out[k] = X[k] resampled (bilinear, zero outside) at the affine source points of A[k] (module doc)."""
    sx, sy = _source(A, X.shape[1], X.shape[2])
    out[...] = _bilinear(X, sx, sy)
    return out


@define_op(alloc=same_as("X"))
def warp_elastic(X, A, D, out=None):
    """out[k] = X[k] resampled at the affine source points of A[k] moved by the displacement D[k] (module doc)."""
    sx, sy = _source(A, X.shape[1], X.shape[2])
    out[...] = _bilinear(X, sx + D[:, 0].astype(np.float64), sy + D[:, 1].astype(np.float64))
    return out


@define_op(alloc=same_as("F"))
def blur_separable(F, k, scale, out=None):
    """out = scale · (k ⊛ rows)(k ⊛ columns) F, zero padding, k of odd length 2r+1 (module doc)."""
    m, H, W = F.shape
    K = len(k)
    r = (K - 1) // 2
    kd = k.astype(np.float64)
    Fd = F.astype(np.float64)
    rows = np.zeros((m, H, W))                     # rows[:, i, j] = Σ_b k[b] F[:, i, j+b-r]  (taps inside only)
    for b in range(K):
        lo, hi = max(0, r - b), min(W, W + r - b)
        if lo < hi:
            rows[:, :, lo:hi] += kd[b] * Fd[:, :, lo + b - r:hi + b - r]
    both = np.zeros((m, H, W))                     # both[:, i, j] = Σ_a k[a] rows[:, i+a-r, j]
    for a in range(K):
        lo, hi = max(0, r - a), min(H, H + r - a)
        if lo < hi:
            both[:, lo:hi, :] += kd[a] * rows[:, lo + a - r:hi + a - r, :]
    out[...] = scale * both
    return out


@define_op(alloc=same_as("X"))
def brightness_contrast(X, c, b, lo, hi, out=None):
    """out[k] = clip(c[k] X[k] + b[k], lo, hi): per-image contrast c and brightness b."""
    out[...] = np.clip(c[:, None, None] * X + b[:, None, None], lo, hi)
    return out


@define_op(alloc=same_as("X"))
def add_noise(X, N, lo, hi, out=None):
    """out = clip(X + N, lo, hi): additive noise N drawn on the host (already scaled)."""
    out[...] = np.clip(X + N, lo, hi)
    return out
