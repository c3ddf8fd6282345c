"""MPI plumbing for tinynn.parallel: the process group, abort-on-exception, start-up consistency checks.

Everything goes through mpi4py (the engine under Horovod): ``mpiexec -n 2 python train.py`` on a laptop and
``mpiexec -f hostfile -n 64 python train.py`` on a cluster run the same code. Arrays travel with mpi4py's
buffer methods (``Send``/``Recv``/``Allreduce``, upper case: no pickling, no copies; a device array through a
reused host buffer, ``tinynn.parallel.staging``); only small metadata at start-up (model signatures) goes through
the pickling ones.

Failure policy: a rank that raises must not leave the others waiting forever in a collective. ``world()``
installs a ``sys.excepthook`` that prints the traceback with the rank's number and calls ``MPI_Abort``, which
makes ``mpiexec`` end every rank of the job with a non-zero exit status. A rank killed by a signal is noticed
by ``mpiexec`` itself, which ends the job the same way.
"""
from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from typing import Any

import numpy as np

from .. import kernels
from .staging import HostBuffers, StagedRequest, mpi_requests

_MPI: Any = None                                 # the mpi4py.MPI module, once imported
_WORLD: Any = None


def mpi():
    """The ``mpi4py.MPI`` module, imported on first use (a clear ImportError when mpi4py is missing)."""
    global _MPI
    if _MPI is None:
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError(
                "tinynn.parallel needs mpi4py and an MPI library: pip install -e '.[mpi]' (installs mpi4py and "
                "the mpich wheel), then start the job with: mpiexec -n 2 python your_script.py "
                f"({type(e).__name__}: {e})") from e
        _MPI = MPI
    return _MPI


class Group:
    """The processes of one MPI communicator and the few operations tinynn needs on them.

    ``rank`` (0 … size-1), ``size``, ``is_root`` (rank 0: the one that writes files). Array methods work
    in place on C-contiguous NumPy arrays (the float32/float64 buffers of a model), given to MPI as they are,
    or on device arrays, staged through reused host buffers (``tinynn.parallel.staging``)."""

    def __init__(self, comm=None):
        MPI = mpi()
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._scalar = np.zeros(1, np.float64)
        self.staging = HostBuffers()

    def _host(self, a, who, fill=True):
        """What MPI reads and writes for ``a``: a itself (a NumPy array), or a host buffer for a device array
        (holding a's values when ``fill``)."""
        if kernels.is_device_array(a):
            return self.staging.take(a, fill)
        _check_buffer(a, who)
        return a

    def _done(self, a, h, back=True):
        """After a transfer through ``h`` (``_host(a)``): copy it into the device array ``a`` (``back``)."""
        if h is not a:
            self.staging.give_back(h, a if back else None)
        return a

    @property
    def is_root(self):
        return self.rank == 0

    # ------------------------------------------------------------------ collectives on arrays (in place)
    def allreduce_(self, a):
        """a ← Σ_ranks a, in place (every rank gets the same bits)."""
        h = self._host(a, "allreduce_")
        self.comm.Allreduce(_MPI.IN_PLACE, h, op=_MPI.SUM)
        return self._done(a, h)

    def iallreduce_(self, a):
        """Start a ← Σ_ranks a in place; returns the MPI request (``.Wait()`` or ``waitall`` before reading
        ``a``; for a device array a ``StagedRequest``, whose completion copies the sum into ``a``)."""
        h = self._host(a, "iallreduce_")
        request = self.comm.Iallreduce(_MPI.IN_PLACE, h, op=_MPI.SUM)
        return request if h is a else StagedRequest(request, h, a, self.staging)

    def bcast_(self, a, root=0):
        """a ← a of ``root``, in place."""
        h = self._host(a, "bcast_", fill=self.rank == root)
        self.comm.Bcast(h, root=root)
        return self._done(a, h, back=self.rank != root)

    # ------------------------------------------------------------------ point to point (arrays)
    def send(self, a, dest, tag=0):
        """MPI_Send of ``a`` (a non-contiguous NumPy array is sent from a contiguous copy)."""
        a = np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a
        h = self._host(a, "send")
        self.comm.Send(h, dest=dest, tag=tag)
        self._done(a, h, back=False)

    def isend(self, a, dest, tag=0):
        """MPI_Isend of ``a``; returns the request (a device array's values are copied out at once)."""
        h = self._host(a, "isend")
        request = self.comm.Isend(h, dest=dest, tag=tag)
        return request if h is a else StagedRequest(request, h, None, self.staging)

    def recv(self, a, source, tag=0, status=None):
        """MPI_Recv into ``a``; returns a."""
        h = self._host(a, "recv", fill=False)
        self.comm.Recv(h, source=source, tag=tag, status=status)
        return self._done(a, h)

    def allsum(self, value) -> float:
        """Σ_ranks value for a Python number (loss and accuracy reporting)."""
        self._scalar[0] = value
        self.comm.Allreduce(_MPI.IN_PLACE, self._scalar, op=_MPI.SUM)
        return float(self._scalar[0])

    def barrier(self):
        self.comm.Barrier()

    def testall(self, requests):
        """MPI_Testall: lets MPI progress the requests in flight (MPICH progresses only inside MPI calls)."""
        if not requests:
            return True
        raw, staged = mpi_requests(requests)
        done = _MPI.Request.Testall(raw)
        if done:
            for r in staged:
                r.complete()
        return done

    def waitall(self, requests):
        if requests:
            raw, staged = mpi_requests(requests)
            _MPI.Request.Waitall(raw)
            for r in staged:
                r.complete()

    def allgather_object(self, obj):
        """Small metadata only (pickled): one entry per rank."""
        return self.comm.allgather(obj)

    def abort(self, code=1):
        self.comm.Abort(code)

    def __repr__(self):
        return f"Group(rank={self.rank}, size={self.size})"


class LocalGroup:
    """A group of one process that needs no MPI: every collective is the identity. Lets the parallel layers
    run (and be gradient-checked) in a plain process."""

    rank, size, is_root = 0, 1, True

    class _Done:
        def Wait(self):
            return None

        def Test(self):
            return True

    def allreduce_(self, a):
        return a

    def iallreduce_(self, a):
        return self._Done()

    def bcast_(self, a, root=0):
        return a

    def allsum(self, value):
        return float(value)

    def barrier(self):
        pass

    def testall(self, requests):
        return True

    def waitall(self, requests):
        pass

    def allgather_object(self, obj):
        return [obj]

    def abort(self, code=1):
        raise SystemExit(code)

    def __repr__(self):
        return "LocalGroup()"


def _check_buffer(a, who):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"tinynn.parallel {who}: expected a NumPy or device array, got {type(a).__name__}")
    if not a.flags.c_contiguous:
        raise ValueError(f"tinynn.parallel {who}: expected a C-contiguous array, got strides {a.strides}")


def world(abort_on_exception=True, limit_threads=True) -> Group:
    """The group of every process of the job (``MPI.COMM_WORLD``), created once.

    With ``abort_on_exception`` (the default) an uncaught exception on any rank prints its traceback naming
    the rank and aborts the whole job, instead of leaving the other ranks hanging in a collective. With
    ``limit_threads`` each rank's BLAS thread pool is cut to its share of the node's cores
    (``limit_blas_threads``)."""
    global _WORLD
    if _WORLD is None:
        _WORLD = Group()
        if abort_on_exception:
            install_abort_hook(_WORLD)
        if limit_threads:
            limit_blas_threads(_WORLD)
    return _WORLD


def limit_blas_threads(group):
    """With k ranks on a node of c cores, give each rank's BLAS max(1, c // k) threads (threadpoolctl).

    Without it every rank starts a pool of c spinning OpenBLAS threads: on this 2-core VM two ranks then ran
    a 784-64-32-10 step in 70 ms instead of 0.5 ms. Left alone when OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or
    MKL_NUM_THREADS is set (the user decided). Returns the number of threads set, or None."""
    if any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return None
    try:
        local = group.comm.Split_type(mpi().COMM_TYPE_SHARED).Get_size()
    except Exception:
        local = group.size
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    n = max(1, cores // max(1, local))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    threadpool_limits(n, user_api="blas")
    return n


ABORT_GRACE_S = 0.5       # seconds between printing a rank's failure and MPI_Abort (install_abort_hook)


def install_abort_hook(group: Group):
    """sys.excepthook: traceback + 'rank R of N (host, pid) failed', then MPI_Abort of the whole job."""
    previous = sys.excepthook
    if getattr(previous, "_tinynn_abort", False):
        return

    def hook(etype, value, tb):
        try:
            where = f"rank {group.rank} of {group.size} (host {socket.gethostname()}, pid {os.getpid()})"
            text = "".join(traceback.format_exception(etype, value, tb))
            sys.stderr.write(f"{text}tinynn.parallel: {where} failed with {etype.__name__}: {value}\n"
                             f"tinynn.parallel: aborting all {group.size} ranks (MPI_Abort)\n")
            sys.stderr.flush()
            sys.stdout.flush()
            # mpiexec relays each rank's output through pipes and drops what it has not relayed when the job is
            # aborted: give it a moment, or the reason of the failure can vanish (seen with MPICH's hydra)
            time.sleep(ABORT_GRACE_S)
        finally:
            group.abort(1)

    setattr(hook, "_tinynn_abort", True)
    sys.excepthook = hook


# ---------------------------------------------------------------------- start-up checks
def model_signature(model):
    """A JSON-able description of a model: each layer's type and its parameter/state names, shapes, dtypes."""
    sig = []
    for i, layer in enumerate(getattr(model, "layers", [model])):
        entry: list[object] = [type(layer).__name__]
        for name, p in layer.named_parameters():
            entry.append((name, tuple(int(s) for s in p.shape), str(np.dtype(p.dtype))))
        for s in getattr(layer, "_state_names", ()):
            a = getattr(layer, s)
            entry.append((s, tuple(int(d) for d in a.shape), str(np.dtype(a.dtype))))
        sig.append(entry)
    return sig


def check_same(group: Group | LocalGroup, what: str, value: Any) -> None:
    """Every rank must pass an equal ``value``; otherwise every rank raises the same ValueError naming the
    first rank that differs (no rank is left waiting in a later collective).

    Call it at start-up with the model's signature and the batch size."""
    values = group.allgather_object(value)
    for r, v in enumerate(values):
        if v != values[0]:
            a, b, where = values[0], v, ""
            if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
                if len(a) != len(b):
                    where = f" ({len(a)} vs {len(b)} entries)"
                else:
                    i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
                    a, b, where = a[i], b[i], f" at entry {i}"
            raise ValueError(
                f"tinynn.parallel: the {what} differs across ranks{where}: rank 0 has {_short(a)}, rank {r} has "
                f"{_short(b)}; every rank must be started with the same arguments")
    return value


def _short(v, limit=300):
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + "…"


def check_replicas(group, array, what="parameters"):
    """Assert that ``array`` holds the same bits on every rank (replicated parameters have not drifted)."""
    import zlib

    digest = zlib.crc32(np.ascontiguousarray(kernels.to_host(array)).view(np.uint8).tobytes())
    digests = group.allgather_object(digest)
    bad = [r for r, d in enumerate(digests) if d != digests[0]]
    if bad:
        raise AssertionError(f"tinynn.parallel: the {what} on rank {bad[0]} differ from rank 0's")
    return True


def split_sizes(n: int, parts: int):
    """[n // parts + (r < n % parts) for r in range(parts)]: the sizes of an as-even-as-possible split."""
    q, rem = divmod(int(n), int(parts))
    return [q + (r < rem) for r in range(parts)]


def split_bounds(n: int, parts: int, r: int):
    """(lo, hi) of part ``r`` of ``split_sizes(n, parts)``."""
    q, rem = divmod(int(n), int(parts))
    lo = r * q + min(r, rem)
    return lo, lo + q + (r < rem)


def per_rank_dropout(model: Any, rank: int) -> Any:
    """Give each Dropout layer of ``model`` a generator for this rank: rank 0 keeps the layer's own stream
    (seeded from the run's seed), rank r > 0 uses it advanced by r·2¹²⁷ draws (``bit_generator.jumped(r)``),
    an independent stream derived from the same seed. Returns the number of layers changed."""
    from ..layers import Dropout

    k = 0
    for layer in model.layers:
        if isinstance(layer, Dropout):
            k += 1
            if rank > 0:
                rng = layer.rng.bit_generator
                layer.rng = np.random.Generator(rng.jumped(rank))  # type: ignore[attr-defined]  # PCG64 has it
    return k
