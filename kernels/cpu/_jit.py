"""The one Numba decorator of the CPU backend (kernels read no globals: cached code freezes them)."""
from numba import njit

kernel = njit(cache=True, nogil=True)
