"""Parity-test inputs for the augmentation ops of kernels/*/augment.py (same form as tests/kernel_cases.py:
name -> builder(rng, dtype, n, d) -> [(args, kwargs), ...]); ``tests/kernel_cases.py`` takes them in
(``CASES.update(AUGMENT_CASES)``), so test_kernels/test_cuda cover them on every backend.

A batch is n images of d x (d + 2) pixels (not square, so that a swapped row/column index shows).
"""
import numpy as np


def _a(rng, dtype, *shape, lo=-3, hi=3):
    return rng.uniform(lo, hi, shape).astype(dtype)


def _images(rng, dt, n, d):
    return _a(rng, dt, n, d, d + 2, lo=0, hi=1)


def _affine(rng, dt, n, d):
    """Per-image source maps: rotation, anisotropic scale, shear and a translation of up to d/3 pixels; the
    first image gets the identity (exact integer coordinates: the right/bottom neighbours get weight 0)."""
    th = rng.uniform(-0.8, 0.8, n)
    s = rng.uniform(0.7, 1.4, (n, 2))
    sh = rng.uniform(-0.3, 0.3, n)
    A = np.empty((n, 2, 3))
    A[:, 0, 0] = s[:, 0] * np.cos(th)
    A[:, 0, 1] = -s[:, 1] * np.sin(th) + sh
    A[:, 1, 0] = s[:, 0] * np.sin(th)
    A[:, 1, 1] = s[:, 1] * np.cos(th)
    A[:, :, 2] = rng.uniform(-d / 3, d / 3, (n, 2))
    A[0] = [[1, 0, 0], [0, 1, 0]]
    return A.astype(dt)


def warp_affine(rng, dt, n, d):
    far = _affine(rng, dt, n, d)
    far[:, :, 2] += dt(d + 3)                      # shifted off the image: zeros, no reads
    return [((_images(rng, dt, n, d), _affine(rng, dt, n, d)), dict(out=np.empty((n, d, d + 2), dt))),
            ((_images(rng, dt, n, d), far), dict(out=np.empty((n, d, d + 2), dt)))]


def warp_elastic(rng, dt, n, d):
    return [((_images(rng, dt, n, d), _affine(rng, dt, n, d), _a(rng, dt, n, 2, d, d + 2, lo=-2, hi=2)),
             dict(out=np.empty((n, d, d + 2), dt)))]


def _gaussian(sigma, r):
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return k / k.sum()


def blur_separable(rng, dt, n, d):
    # kernels shorter and longer than the image (r = 5 > d for small d: taps off both edges)
    return [((_a(rng, dt, n, d, d + 2, lo=-1, hi=1), _gaussian(s, r).astype(dt), scale),
             dict(out=np.empty((n, d, d + 2), dt))) for s, r, scale in [(1.0, 0, 1.0), (1.5, 3, 2.5), (4.0, 5, 30.0)]]


def brightness_contrast(rng, dt, n, d):
    return [((_images(rng, dt, n, d), _a(rng, dt, n, lo=0.5, hi=1.5), _a(rng, dt, n, lo=-0.3, hi=0.3), lo, hi),
             dict(out=np.empty((n, d, d + 2), dt))) for lo, hi in [(0.0, 1.0), (-10.0, 10.0)]]


def add_noise(rng, dt, n, d):
    return [((_images(rng, dt, n, d), _a(rng, dt, n, d, d + 2, lo=-0.5, hi=0.5), lo, hi),
             dict(out=np.empty((n, d, d + 2), dt))) for lo, hi in [(0.0, 1.0), (-10.0, 10.0)]]


AUGMENT_CASES = {"warp_affine": warp_affine, "warp_elastic": warp_elastic, "blur_separable": blur_separable,
                 "brightness_contrast": brightness_contrast, "add_noise": add_noise}
