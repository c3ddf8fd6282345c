"""The Numba decorator of the CPU backend (kernels read no globals: cached code freezes them).

``kernel`` compiles serial, GIL-free code with ``error_model="numpy"``: a division by zero gives inf/NaN as in
NumPy (the reference) instead of a per-element ZeroDivisionError test, and that test was what kept LLVM from
vectorising every loop with a division (Adam on 235k float32 parameters: 668 µs with it, 50 µs without).
Serial on purpose: a second thread pool between the 2-thread BLAS calls of a training step made every step
slower on 2 cores (DESIGN.md §4), and ``parallel=True`` tripled the compile time of a kernel.

Aliasing: LLVM vectorises a loop over several arrays after a runtime overlap check and falls back to scalar
code when they overlap, so an in-place op is written with one array that is read and written (bias + ReLU
on (128, 256) float32: 24 µs through an aliased ``out``, 1.6 µs in place).
"""
from numba import njit

kernel = njit(cache=True, nogil=True, error_model="numpy")

# ``inline``: a helper inlined into the kernels that call it. Used as ``_row = inline(row)`` on an undecorated
# function, it makes a *shared body*: kernels/cuda compiles the same ``row`` with ``cuda.jit(device=True)``, so
# one row formula serves both backends. A shared body uses only ``math`` and its arguments: CUDA resolves its
# globals in this package, where another helper would be a CPU dispatcher.
inline = njit(cache=True, inline="always")
