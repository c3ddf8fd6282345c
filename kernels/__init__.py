"""tinynn's numerical engine: each op defined once (NumPy reference) and implemented per backend.

    from tinynn.kernels import ops, use, backend_of, to_device, to_host

Each backend package registers one record with the dispatcher (kernels/dispatch.py: ``Backend``): its
ops, its array types, allocation, host/device copies and a uniform random filler. The functions below
only look up the record of an array's backend; none of them knows a device by name. The CUDA backend is
declared here but imported on first need (see kernels/cuda/__init__.py), so ``import tinynn`` never
imports numba.cuda; ``cuda_available()`` (or ``CUDA_AVAILABLE``) probes for it.
"""
from . import config  # noqa: F401
from . import dispatch
from . import reference  # noqa: F401  (defines every op; the "numpy" backend)
from . import cpu  # noqa: F401  (Numba CPU backend)
from . import cuda  # noqa: F401  (numba.cuda backend: declared now, loaded on first need)
from .dispatch import backend_of, device_of, empty, is_device_array, ops, use


def cuda_available() -> bool:
    """True when the CUDA backend can run here (a GPU, or the simulator under NUMBA_ENABLE_CUDASIM=1);
    the first call probes numba.cuda and loads the backend."""
    return dispatch.available("cuda")


def __getattr__(name):
    # Computed on first access, so that importing tinynn does not probe for a GPU.
    if name == "CUDA_AVAILABLE":
        return cuda_available()
    if name == "BACKENDS":
        return tuple(dispatch.backend_devices())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_device(x, device: str = "cuda"):
    """Copy an array to ``device`` ("cpu" or "cuda"); an array already there is returned as it is."""
    try:
        target = dispatch.backend_for_device(device)
    except RuntimeError as e:  # the device exists but cannot run here
        raise RuntimeError(f"to_device(..., {device!r}): {e}") from None
    source = dispatch.backend_record_of(x)
    if source.device == target.device:
        return x
    return target.to_device(source.to_host(x))


def to_host(x):
    """Copy a device array to a NumPy array (NumPy arrays are returned unchanged)."""
    return dispatch.backend_record_of(x).to_host(x)


def on_device_of(x, like):
    """The host array ``x`` placed on the device of ``like`` (itself when ``like`` is a host array)."""
    return to_device(x, device_of(like))


def assign(dst, src):
    """dst[...] = src, where dst and src may each live on the host or the device (an explicit copy)."""
    source = dispatch.backend_record_of(src)
    if not source.is_host and not is_device_array(dst):
        source.to_host(src, out=dst)                      # device -> host
    else:
        dispatch.backend_record_of(dst).copy(dst, src)    # host -> host, host -> device, device -> device
    return dst


def batch_feed(device: str):
    """A new batch feed for ``device`` (``tinynn._feed`` drives it: pinned double buffers, a copy stream, a device
    loss log), or None where the device's backend has none (the CPU: batches are already where they are used)."""
    make = dispatch.backend_for_device(device).feed
    return None if make is None else make()


def random_uniform(rng, out):
    """Fill ``out`` with Uniform[0, 1) draws driven by the NumPy Generator ``rng``, on out's device (device
    arrays are filled by device-side streams seeded once from ``rng``: no host->device copy per step)."""
    dispatch.backend_record_of(out).uniform(rng, out)
    return out


__all__ = ["batch_feed", "random_uniform", "assign", "on_device_of", "ops", "use", "backend_of", "device_of",
           "empty", "is_device_array", "to_device", "to_host", "cuda_available", "CUDA_AVAILABLE", "BACKENDS"]
