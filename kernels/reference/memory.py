"""Host memory, shared by the host backends ("numpy" and "cpu"): NumPy arrays in the process's memory.

``record(name)`` is the :class:`~tinynn.kernels.dispatch.Backend` record of a host backend: arrays are
already on the host, so the transfers return them as they are.
"""
import numpy as np

from ..dispatch import Backend


empty = np.empty  # empty(shape, dtype)


def to_device(x):
    """A host array "moved" to the host: itself, no copy."""
    return x


def to_host(a, out=None):
    if out is None:
        return a
    out[...] = a
    return out


def copy(dst, src):
    """dst[...] = src (src a host array)."""
    dst[...] = src
    return dst


def uniform(rng, out):
    """out[...] ~ Uniform[0, 1) from the NumPy Generator ``rng`` (float32 or float64 ``out``)."""
    rng.random(out=out, dtype=out.dtype)
    return out


def record(name):
    return Backend(name=name, device="cpu", empty=empty, to_device=to_device, to_host=to_host, copy=copy,
                   uniform=uniform)
