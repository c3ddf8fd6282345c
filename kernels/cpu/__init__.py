"""Numba CPU backend: the same ops as kernels/reference, compiled with @njit(cache=True).

GEMMs go to BLAS (NumPy's OpenBLAS, 2 threads here); the elementwise and row kernels are serial Numba
loops: on 2 cores, a Numba thread pool running between multi-threaded BLAS calls made every step slower
(DESIGN.md §4), so each kernel runs in the caller's thread and fuses as much as it can into one pass.
"""
from . import elementwise, matmul, normalization, optim, reduce  # noqa: F401  (registers the ops)
