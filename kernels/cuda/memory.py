"""CUDA device memory for the cuda Backend record: the device-array classes, allocation, and the copies
between host and device (every one explicit: kernels never copy)."""
import numpy as np
from numba import cuda


def _device_array_types():
    types = []
    try:
        from numba.cuda.cudadrv.devicearray import DeviceNDArray

        types.append(DeviceNDArray)
    except Exception:  # the simulator has no real device arrays
        pass
    try:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        types.append(FakeCUDAArray)
    except Exception:
        pass
    return tuple(types)


ARRAY_TYPES = _device_array_types()


def empty(shape, dtype):
    return cuda.device_array(shape, dtype=np.dtype(dtype))


def to_device(x):
    """A device copy of the host array (or array-like) x."""
    return cuda.to_device(np.ascontiguousarray(x))


def to_host(a, out=None):
    """A host copy of the device array a (written into the host array ``out`` when given)."""
    return a.copy_to_host() if out is None else a.copy_to_host(out)


def copy(dst, src):
    """dst[...] = src for a device array dst and a host or device array src of the same shape."""
    dst.copy_to_device(src)
    return dst
