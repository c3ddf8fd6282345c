"""tinynn's numerical engine: each op defined once (NumPy reference) and implemented per backend.

    from kernels import ops, use, backend_of, to_device, to_host

The CUDA backend is imported only when ``numba.cuda.is_available()`` (a GPU, or the simulator under
``NUMBA_ENABLE_CUDASIM=1``).
"""
from . import config  # noqa: F401
from . import reference  # noqa: F401  (defines every op and the "numpy" backend)
from . import cpu  # noqa: F401  (Numba CPU backend)
from .dispatch import backend_of, device_of, empty, is_device_array, ops, use


def _cuda_available() -> bool:
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # no numba.cuda at all, or a broken driver: the host backends still work
        return False


CUDA_AVAILABLE = _cuda_available()
if CUDA_AVAILABLE:
    from . import cuda  # noqa: F401

BACKENDS = ("numpy", "cpu", "cuda")


def to_device(x, device: str = "cuda"):
    """Copy a host array to ``device`` ("cuda" or "cpu"); arrays already there are returned as they are."""
    import numpy as np

    if device == "cpu":
        return to_host(x)
    if device != "cuda":
        raise ValueError(f"to_device: expected device 'cpu' or 'cuda', got {device!r}")
    if not CUDA_AVAILABLE:
        raise RuntimeError(
            "to_device(..., 'cuda'): CUDA is not available here (no GPU/driver found by numba.cuda); "
            "install the extra with `pip install -e .[cuda]` on a machine with an NVIDIA GPU, "
            "or set NUMBA_ENABLE_CUDASIM=1 to run the CUDA backend on the simulator"
        )
    if is_device_array(x):
        return x
    from numba import cuda as _cuda

    return _cuda.to_device(np.ascontiguousarray(x))


def to_host(x):
    """Copy a device array to a NumPy array (NumPy arrays are returned unchanged)."""
    if is_device_array(x):
        return x.copy_to_host()
    return x


def on_device_of(x, like):
    """The host array ``x`` placed on the device of ``like`` (itself when ``like`` is a host array)."""
    return to_device(x, "cuda") if is_device_array(like) else x


def assign(dst, src):
    """dst[...] = src, where dst and src may each live on the host or the device (an explicit copy)."""
    if is_device_array(dst):
        dst.copy_to_device(src)
    elif is_device_array(src):
        src.copy_to_host(dst)
    else:
        dst[...] = src
    return dst


def random_uniform(rng, out):
    """Fill ``out`` with Uniform[0, 1) draws from the NumPy Generator ``rng``. Device arrays are filled on the
    device by xoroshiro128+ streams seeded once from ``rng`` (no host->device copy in the training step)."""
    if is_device_array(out):
        from .cuda.random import uniform

        uniform(rng, out)
    else:
        rng.random(out=out, dtype=out.dtype)
    return out


__all__ = ["random_uniform", "assign", "on_device_of", "ops", "use", "backend_of", "device_of", "empty", "is_device_array", "to_device", "to_host",
           "CUDA_AVAILABLE", "BACKENDS"]
