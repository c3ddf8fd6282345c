"""The Numba decorators of the CPU backend (kernels read no globals: cached code freezes them).

``kernel``: serial, for row/column loops. ``vector_kernel``: for flat elementwise loops written with
``prange``: compiled with parallel=True, which lets Numba assume the arrays do not alias so the loop
vectorises, but run on ``config.CPU_THREADS`` threads (1: a second thread pool between 2-thread BLAS calls
made every step slower here, DESIGN.md §4). Call ``threads()`` before launching one.
"""
import numba
from numba import njit

from .. import config

kernel = njit(cache=True, nogil=True)
vector_kernel = njit(cache=True, parallel=True)


def threads():
    numba.set_num_threads(config.CPU_THREADS)
