"""The Numba decorator of the CPU backend (kernels read no globals: cached code freezes them).

``kernel`` compiles serial, GIL-free code with ``error_model="numpy"``: a division by zero gives inf/NaN as in
NumPy (the reference) instead of a per-element ZeroDivisionError test, and that test was what kept LLVM from
vectorising every loop with a division (Adam on 235k float32 parameters: 668 µs with it, 50 µs without).
Serial on purpose: a second thread pool between the 2-thread BLAS calls of a training step made every step
slower on 2 cores (docs/design.md), and ``parallel=True`` tripled the compile time of a kernel.

Aliasing: LLVM vectorises a loop over several arrays after a runtime overlap check and falls back to scalar
code when they overlap, so an in-place op is written with one array that is read and written (bias + ReLU
on (128, 256) float32: 24 µs through an aliased ``out``, 1.6 µs in place).

The kernel cache survives damage (``GuardedCache``): an entry that cannot be read — overwritten, truncated,
its index or data file missing, written by another Numba or tinynn — is removed and the kernel compiled and
cached again, with one ``KernelCacheWarning`` naming the cache folder; a cache that cannot be written (a
read-only or full disk) leaves the kernel compiled in memory only, with one warning. A fit, an import or a
prediction never fails because of the cache.
"""
import glob
import os
import warnings

import numba
from numba import njit
from numba.core.caching import FunctionCache

class KernelCacheWarning(UserWarning):
    """tinynn's kernel cache had a damaged entry (replaced) or could not be written (kernels compiled in memory)."""


_warned = set()                   # (folder, what): one warning per cache folder and kind of fault in a process
KERNELS = []                      # every CPU dispatcher made here, in definition order (tests read their stats)


def _warn_once(folder, what, message):
    if (folder, what) not in _warned:
        _warned.add((folder, what))
        warnings.warn(message, KernelCacheWarning, stacklevel=4)


class GuardedCache(FunctionCache):
    """Numba's per-function cache, with a damaged entry treated as a missing one (module docstring)."""

    def _discard(self, error):
        """Remove this function's index and data files (what a damaged entry leaves); warn once."""
        cf = self._cache_file
        folder = self._cache_path
        paths = [cf._index_path] + glob.glob(os.path.join(folder, glob.escape(cf._data_name_pattern)
                                                          .replace(glob.escape("{number:d}"), "*")))
        for path in paths:
            try:
                os.remove(path)
            except OSError:
                pass
        _warn_once(folder, "damaged", f"tinynn's kernel cache in {folder}: the entry of "
                   f"{self._py_func.__qualname__} could not be read ({type(error).__name__}: {str(error)[:120]}); "
                   f"it was removed and the kernel compiled again (further damaged entries there are replaced "
                   f"without a warning)")

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as e:        # any failure to read or rebuild an entry: a damaged entry, compile anew
            self._discard(e)
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except OSError as e:          # read-only, full, vanished folder: the kernel runs from memory
            _warn_once(self._cache_path, "write", f"tinynn's kernel cache in {self._cache_path} cannot be written "
                       f"({e.strerror or e}); kernels are compiled in memory for this process (set NUMBA_CACHE_DIR "
                       f"to a writable folder to keep them)")
        except Exception as e:        # an unreadable index met while adding to it: start the entry afresh
            self._discard(e)
            try:
                super().save_overload(sig, data)
            except Exception:         # noqa: BLE001 - caching is an optimisation: never fail a fit for it
                pass


def cached(**options):
    """``njit(cache=True, **options)`` with the guarded cache: the decorator of every CPU kernel."""

    def deco(fn):
        d = njit(cache=True, **options)(fn)
        d._cache = GuardedCache(fn)
        KERNELS.append(d)
        return d

    return deco


kernel = cached(nogil=True, error_model="numpy")

# ``inline``: a helper inlined into the kernels that call it. Used as ``_row = inline(row)`` on an undecorated
# function, it makes a *shared body*: kernels/cuda compiles the same ``row`` with ``cuda.jit(device=True)``, so
# one row formula serves both backends. A shared body uses only ``math`` and its arguments: CUDA resolves its
# globals in this package, where another helper would be a CPU dispatcher.
inline = cached(inline="always")

# Forked children. Numba's GNU OpenMP threading layer (its default where libgomp is found) cannot run in a child
# forked from a process whose pool has run: the child's first parallel kernel sends itself SIGTERM ("fork()
# called from a process already using GNU OpenMP"). multiprocessing forks by default on Linux, so a Pool made
# after a fit that augmented its data lost every worker. Such a child runs the parallel kernels serially.
_fork_unsafe = [False]
_serial = {}


def _after_fork_in_child():
    try:
        layer = numba.threading_layer()
    except ValueError:                 # no parallel kernel ran before the fork: the child starts its own pool
        return
    if layer == "omp":
        from numba.np.ufunc import omppool
        _fork_unsafe[0] = getattr(omppool, "openmp_vendor", "GNU") == "GNU"


os.register_at_fork(after_in_child=_after_fork_in_child)


def fork_safe(kernel):
    """A ``parallel=True`` kernel, or in a forked child where its thread pool cannot run (above) a serial
    compile of the same function (made once per child, not cached on disk: same loops, same results)."""
    if not _fork_unsafe[0]:
        return kernel
    serial = _serial.get(kernel)
    if serial is None:
        serial = _serial[kernel] = njit(nogil=True)(getattr(kernel, "py_func", kernel))
    return serial

