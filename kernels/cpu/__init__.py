"""Numba CPU backend: the same ops as kernels/reference, compiled with @njit(cache=True).

GEMMs go to BLAS (NumPy's OpenBLAS, 2 threads here); the elementwise and row kernels are serial Numba
loops: on 2 cores, a Numba thread pool running between multi-threaded BLAS calls made every step slower
(DESIGN.md §4), so each kernel runs in the caller's thread and fuses as much as it can into one pass.
Its arrays are NumPy arrays, so its Backend record is the host memory of kernels/reference/memory.py.
"""
from ..dispatch import register_backend
from ..reference.memory import record
# importing a module registers its ops
from . import augment, elementwise, loss, matmul, normalization, optim, reduce, sparse  # noqa: F401

register_backend(record("cpu"))
