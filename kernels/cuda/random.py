"""Uniform random numbers on the device for dropout masks: a counter-based generator keyed by the host Generator.

Each call draws one 64-bit key from the layer's ``np.random.Generator`` (on the host) and fills ``out`` with

    u_i = (splitmix64(key + (i + 1)·φ) >> 11) · 2⁻⁵³,        φ = 0x9E3779B97F4A7C15 (the golden-ratio increment)

splitmix64's finalizer (Steele, Lea and Flood 2014; the seeding generator of xoroshiro) is a bijection of 64-bit
words that passes BigCrush as a counter hash, so every element is an independent-looking draw with no per-thread
state. No state lives on the device: the masks are a function of the host Generator alone, which checkpoints
save, so a CUDA run with dropout stopped and resumed draws the masks of the uninterrupted run (the
xoroshiro128+ states this replaced lived on the device only and were re-seeded on resume).
"""
import warnings

import numpy as np
from numba import cuda, uint64

from .launch import flat, kernel, launch

_PHI = uint64(0x9E3779B97F4A7C15)
_M1 = uint64(0xBF58476D1CE4E5B9)
_M2 = uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = uint64(30), uint64(27), uint64(31), uint64(11)
_ONE = uint64(1)
_TWO_M53 = 1.0 / 9007199254740992.0


@kernel("uint64, {f}[::1]")
def uniform_kernel(key, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        z = key + (uint64(i) + _ONE) * _PHI
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        z = z ^ (z >> _S31)
        out[i] = (z >> _S11) * _TWO_M53


def uniform(rng, out):
    key = rng.integers(2**64, dtype=np.uint64)
    with warnings.catch_warnings():              # the simulator computes the wrapping products in NumPy, in
        warnings.simplefilter("ignore", RuntimeWarning)     # its threads (np.errstate would not reach them)
        launch(uniform_kernel, out.size, key, flat(out))
    return out
