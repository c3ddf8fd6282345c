"""numba.cuda backend: the same ops as kernels/reference, as CUDA kernels (``*_kernel``) with host wrappers
of the same signatures, and its Backend record (memory.py: device arrays, allocation, copies; random.py:
device-side uniform numbers; feed.py: the GPU data path's pinned buffers, copy stream, events and loss log).

``import tinynn`` runs only this file, which *declares* the backend to the dispatcher without importing
numba.cuda (that import and the driver probe cost ~40 ms). ``_load`` imports the kernels and registers
the record the first time a device is needed: ``to_device(x, "cuda")``, a numba.cuda device array given
to an op or to ``is_device_array``, or ``kernels.cuda_available()``. It runs on a GPU, or on the
simulator under NUMBA_ENABLE_CUDASIM=1.
"""
from ..dispatch import Backend, declare_backend, register_backend

UNAVAILABLE = (
    "CUDA is not available here (no GPU/driver found by numba.cuda); install the extra with "
    "`pip install -e .[cuda]` on a machine with an NVIDIA GPU, or set NUMBA_ENABLE_CUDASIM=1 to run the "
    "CUDA backend on the simulator"
)


def _probe():
    from numba import cuda

    return bool(cuda.is_available())


def _owns_type(t):
    """numba.cuda defines its device arrays (real and simulated) in its own modules: a test by module name
    needs no import of numba.cuda."""
    module = getattr(t, "__module__", None) or ""
    return module.startswith(("numba.cuda.", "numba_cuda."))


def _load():
    # importing a module registers its ops
    from . import augment, elementwise, loss, matmul, normalization, optim, reduce, sparse  # noqa: F401
    from . import feed, memory, random

    register_backend(Backend(name="cuda", device="cuda", empty=memory.empty, to_device=memory.to_device,
                             to_host=memory.to_host, copy=memory.copy, uniform=random.uniform,
                             array_types=memory.ARRAY_TYPES, feed=feed.CudaFeed))


declare_backend("cuda", device="cuda", probe=_probe, load=_load, owns_type=_owns_type, unavailable=UNAVAILABLE)
