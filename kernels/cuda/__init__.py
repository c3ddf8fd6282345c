"""numba.cuda backend: the same ops as kernels/reference, as CUDA kernels (``*_kernel``) with host wrappers
of the same signatures. Imported by ``kernels`` only when ``numba.cuda.is_available()`` (a GPU, or the
simulator under NUMBA_ENABLE_CUDASIM=1).
"""
from . import launch  # noqa: F401  (registers device-array types and the allocator)
from . import elementwise, matmul, normalization, optim, reduce  # noqa: F401  (registers the ops)
