"""One launch helper for every 1-D grid-stride kernel, device allocation, device-array detection."""
import math

import numpy as np
from numba import cuda

from .. import config
from ..dispatch import register_allocator, register_device_array_types

MAX_BLOCKS = 1024


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
    return types


register_device_array_types(*_device_array_types())
register_allocator("cuda", lambda shape, dtype: cuda.device_array(shape, dtype=np.dtype(dtype)))


def blocks_for(n, threads=None):
    """Blocks for n work items at ``config.THREADS_PER_BLOCK`` (read now, so tests can patch it)."""
    tpb = threads or config.THREADS_PER_BLOCK
    return max(1, min(MAX_BLOCKS, math.ceil(n / tpb))), tpb


def launch(kernel, n, *args):
    """kernel[blocks, threads](*args) over n items; the kernel loops grid-stride over the rest."""
    if n == 0:
        return
    blocks, tpb = blocks_for(n)
    kernel[blocks, tpb](*args)


def flat(a):
    """A 1-D view of a contiguous device array."""
    return a.reshape(a.size) if len(a.shape) != 1 else a
