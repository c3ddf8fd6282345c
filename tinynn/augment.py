r"""Data augmentation on the fly: random shifted, rotated, scaled, sheared, elastically distorted, noisy and
re-lit copies of each training mini-batch (Bishop's figure; Simard, Steinkraus and Platt 2003).

``Augment`` is the callable for ``Trainer(augment=...)``: ``aug(Xb, rng) -> Xb'``. It draws every random
number on the host from the generator it is given (the Trainer's ``aug_rng``, saved in checkpoints, so a
resumed run draws the same distortions), and does the pixel work with kernels' ops, on the device of Xb:

    geometry     one affine map per image, output -> source, composed from
                 translate  (tx, ty) ~ U(-t, t)² pixels
                 rotate     θ ~ U(-r, r) degrees
                 scale      (s_x, s_y) ~ (1 + U(-s, s))², independent per axis
                 shear      h ~ U(-h₀, h₀):  x ← x + h y
                 forward  p_out = R(θ) Sh(h) S(s_x, s_y) p_src + t,  so the op gets A = [L⁻¹ | -L⁻¹ t]
    elastic      (Simard et al.) a field U ~ U(-1, 1) per pixel and axis, smoothed by a Gaussian of width σ
                 (truncated at 3σ) and scaled by α: D = α G_σ ⊛ U, in pixels; added to the source points
    resampling   ops.warp_affine / ops.warp_elastic: one fused bilinear pass per batch, zero outside
    brightness   b ~ U(-β, β) added;   contrast  c ~ 1 + U(-γ, γ) multiplied:  ops.brightness_contrast
    noise        N ~ N(0, σ_n²) per pixel added: ops.add_noise;   both clip to [0, 1] (MNIST's pixel range)

The draws are taken in that order (geometry, elastic field, brightness/contrast, noise), only for the
transforms switched on. Augmentation works on raw pixels in [0, 1]; standardise afterwards, not before.

Transforms are named in ``TRANSFORMS`` with a default strength each; ``PRESETS["mnist"]`` is the recipe used
for the 99.3 % MLP (README). ``Augment.from_spec("mnist")``, ``from_spec("rotate,elastic")`` or
``from_spec("rotate=15,elastic=34:4,noise=0.05")`` build one from the script's ``--augment`` text.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import kernels
from .kernels import ops

# name -> default strength (elastic: (alpha, sigma) in pixels)
TRANSFORMS = {
    "translate": 2.0,          # pixels
    "rotate": 12.0,            # degrees
    "scale": 0.12,             # relative, per axis
    "shear": 0.15,             # shear factor
    "elastic": (34.0, 4.0),    # Simard et al.'s alpha and sigma for MNIST
    "brightness": 0.1,         # added, pixel units
    "contrast": 0.2,           # relative
    "noise": 0.1,              # standard deviation, pixel units
}

PRESETS: dict[str, dict[str, Any]] = {
    # Simard et al.'s elastic distortion plus mild affine jitter (Ciresan et al. 2010 combine both)
    "mnist": dict(elastic=(34.0, 4.0), rotate=8.0, scale=0.08, shear=0.1, translate=1.0),
    # the geometric transforms only (no elastic field): cheaper, weaker
    "affine": dict(rotate=12.0, scale=0.12, shear=0.15, translate=2.0),
}


def gaussian_taps(sigma, truncate=3.0, dtype=np.float32):
    """The normalised 1-D Gaussian of width sigma on the integers -r..r, r = ceil(truncate sigma)."""
    r = max(1, int(math.ceil(truncate * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return (k / k.sum()).astype(dtype)


def compose_inverse(tx, ty, theta, sx, sy, shear, dtype=np.float32):
    """A (n, 2, 3): the output -> source maps of the forward maps p_out = R(θ) Sh(h) S(sx, sy) p_src + t
    (angles in radians), for ops.warp_affine (coordinates centred on the image)."""
    n = len(tx)
    c, s = np.cos(theta), np.sin(theta)
    # L = R Sh S = [[c, -s], [s, c]] [[1, h], [0, 1]] [[sx, 0], [0, sy]]
    l00, l01 = c * sx, (c * shear - s) * sy
    l10, l11 = s * sx, (s * shear + c) * sy
    det = l00 * l11 - l01 * l10
    A = np.empty((n, 2, 3))
    A[:, 0, 0], A[:, 0, 1] = l11 / det, -l01 / det
    A[:, 1, 0], A[:, 1, 1] = -l10 / det, l00 / det
    A[:, 0, 2] = -(A[:, 0, 0] * tx + A[:, 0, 1] * ty)
    A[:, 1, 2] = -(A[:, 1, 0] * tx + A[:, 1, 1] * ty)
    return A.astype(dtype)


class Augment:
    """Random transforms of each mini-batch, for ``Trainer(augment=Augment(...))``.

    Parameters (0 or None: off) — see the module docstring for the distributions:
    translate (pixels), rotate (degrees), scale (relative), shear (factor), elastic ((alpha, sigma) pixels),
    brightness, contrast, noise; shape: (H, W) of the images in a flat row (MNIST: (28, 28)); lo, hi: the
    pixel range the photometric transforms clip to.

    ``aug(Xb, rng)`` returns the transformed batch, shape and dtype of Xb, in a buffer reused from call to
    call (the Trainer uses it for one step only)."""

    def __init__(self, translate=0.0, rotate=0.0, scale=0.0, shear=0.0, elastic=None, brightness=0.0, contrast=0.0,
                 noise=0.0, shape=(28, 28), lo=0.0, hi=1.0):
        for name, v in dict(translate=translate, rotate=rotate, scale=scale, shear=shear, brightness=brightness,
                            contrast=contrast, noise=noise).items():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"Augment: {name} must be a finite number >= 0, got {v!r}")
        if scale >= 1 or contrast >= 1:
            raise ValueError("Augment: scale and contrast must be < 1 (a factor 1 ± value must stay positive)")
        if elastic is not None:
            elastic = tuple(float(v) for v in elastic)
            if len(elastic) != 2 or not all(math.isfinite(v) and v > 0 for v in elastic):
                raise ValueError(f"Augment: elastic must be (alpha > 0, sigma > 0), got {elastic!r}")
        self.translate, self.rotate, self.scale, self.shear = map(float, (translate, rotate, scale, shear))
        self.elastic = elastic
        self.brightness, self.contrast, self.noise = map(float, (brightness, contrast, noise))
        self.shape = tuple(int(v) for v in shape)
        self.lo, self.hi = float(lo), float(hi)
        self._buffers = {}

    # ------------------------------------------------------------------ construction from text
    @classmethod
    def from_spec(cls, spec, shape=(28, 28)):
        """``"mnist"`` (a preset), or a comma list of transforms from TRANSFORMS, each ``name`` (default
        strength) or ``name=value`` (``elastic=alpha:sigma``); a preset may start the list."""
        kw: dict[str, Any] = {}
        for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
            name, _, value = part.partition("=")
            name = name.strip()
            if name in PRESETS and not value:
                kw.update(PRESETS[name])
                continue
            if name not in TRANSFORMS:
                raise ValueError(f"unknown augmentation {name!r}; expected a preset {sorted(PRESETS)} or "
                                 f"transforms from {sorted(TRANSFORMS)} (name or name=value, comma separated)")
            if not value:
                kw[name] = TRANSFORMS[name]
            elif name == "elastic":
                try:
                    alpha, sigma = (float(v) for v in value.split(":"))
                except ValueError:
                    raise ValueError(f"augmentation elastic=ALPHA:SIGMA expected, got {part!r}") from None
                kw[name] = (alpha, sigma)
            else:
                try:
                    kw[name] = float(value)
                except ValueError:
                    raise ValueError(f"augmentation {name}=NUMBER expected, got {part!r}") from None
        if not kw:
            raise ValueError(f"empty augmentation spec {spec!r}")
        return cls(shape=shape, **kw)

    def config(self):
        """The parameters as plain JSON values (for metrics and checkpoints)."""
        return dict(translate=self.translate, rotate=self.rotate, scale=self.scale, shear=self.shear,
                    elastic=list(self.elastic) if self.elastic else None, brightness=self.brightness,
                    contrast=self.contrast, noise=self.noise, shape=list(self.shape), lo=self.lo, hi=self.hi)

    def __repr__(self):
        on = {k: v for k, v in self.config().items() if v and k not in ("shape", "lo", "hi")}
        return f"Augment({', '.join(f'{k}={v}' for k, v in on.items())})"

    @property
    def geometric(self):
        return bool(self.translate or self.rotate or self.scale or self.shear)

    # ------------------------------------------------------------------ the draws
    def draw_affine(self, rng, n, dtype=np.float32):
        """A (n, 2, 3) from the geometric transforms switched on (identity maps when none is)."""
        zeros, ones = np.zeros(n), np.ones(n)
        tx = rng.uniform(-self.translate, self.translate, n) if self.translate else zeros
        ty = rng.uniform(-self.translate, self.translate, n) if self.translate else zeros
        theta = np.deg2rad(rng.uniform(-self.rotate, self.rotate, n)) if self.rotate else zeros
        sx = 1 + rng.uniform(-self.scale, self.scale, n) if self.scale else ones
        sy = 1 + rng.uniform(-self.scale, self.scale, n) if self.scale else ones
        h = rng.uniform(-self.shear, self.shear, n) if self.shear else zeros
        return compose_inverse(tx, ty, theta, sx, sy, h, dtype)

    def _buffer(self, name, shape, dtype, like):
        """A reused buffer of at least shape[0] rows on the device of ``like`` (host for like=None)."""
        b = self._buffers.get(name)
        if b is None or b.shape[0] < shape[0] or b.shape[1:] != shape[1:] or b.dtype != dtype \
                or (like is not None and kernels.device_of(b) != kernels.device_of(like)):
            b = np.empty(shape, dtype) if like is None else kernels.empty(shape, dtype, like=like)
            self._buffers[name] = b
        return b[:shape[0]]

    def __call__(self, Xb, rng):
        n = Xb.shape[0]
        H, W = self.shape
        if Xb.shape[1:] not in ((H * W,), (H, W)):
            raise ValueError(f"Augment: expected images of {H}x{W} pixels (rows of {H * W}), got shape {Xb.shape}")
        dt = np.dtype(Xb.dtype)
        on_device = kernels.is_device_array(Xb)
        dev = (lambda a: kernels.on_device_of(a, Xb)) if on_device else (lambda a: a)
        if dt not in (np.float32, np.float64):
            raise TypeError(f"Augment: expected float32 or float64 pixels, got {dt}")
        X = Xb.reshape(n, H, W) if on_device else np.ascontiguousarray(Xb).reshape(n, H, W)
        cur = X
        out = self._buffer("out", (n, H, W), dt, Xb if on_device else None)
        if self.geometric or self.elastic:
            A = dev(self.draw_affine(rng, n, dt))
            if self.elastic:
                alpha, sigma = self.elastic
                U = self._buffer("field", (n, 2, H, W), dt, None)
                rng.random(dtype=dt, out=U.reshape(-1))
                U *= 2
                U -= 1                                                   # U ~ U(-1, 1)
                D = ops.blur_separable(dev(U.reshape(n * 2, H, W)), dev(gaussian_taps(sigma, dtype=dt)), alpha,
                                       out=self._buffer("disp", (n * 2, H, W), dt, Xb if on_device else None))
                ops.warp_elastic(cur, A, D.reshape(n, 2, H, W), out=out)
            else:
                ops.warp_affine(cur, A, out=out)
            cur = out
        if self.brightness or self.contrast:
            c = (1 + rng.uniform(-self.contrast, self.contrast, n) if self.contrast else np.ones(n)).astype(dt)
            b = (rng.uniform(-self.brightness, self.brightness, n) if self.brightness else np.zeros(n)).astype(dt)
            ops.brightness_contrast(cur, dev(c), dev(b), self.lo, self.hi, out=out)
            cur = out
        if self.noise:
            N = self._buffer("noise", (n, H, W), dt, None)
            rng.standard_normal(dtype=dt, out=N.reshape(-1))
            N *= dt.type(self.noise)
            ops.add_noise(cur, dev(N), self.lo, self.hi, out=out)
            cur = out
        if cur is X:                                                     # nothing switched on
            return Xb
        return cur.reshape(Xb.shape)


def make(spec, shape=(28, 28)):
    """An Augment from the script's --augment text, or None for None/""/"none"."""
    if spec is None or str(spec).strip().lower() in ("", "none", "off"):
        return None
    return Augment.from_spec(spec, shape)


__all__ = ["Augment", "PRESETS", "TRANSFORMS", "gaussian_taps", "compose_inverse", "make"]
