r"""The CUDA side of the GPU data path (``tinynn._feed`` drives it): pinned host buffers, a second stream for
the host→device copies of the mini-batches, events that order the two streams, and a device-side log of the
per-step losses that the host reads every N steps.

Two streams:

* the **compute stream** is the default stream, where every kernel of tinynn is launched (forward, loss,
  backward, optimizer) and where the small per-step uploads (a weighted batch's row weights) and the loss log
  live, so they are ordered with the kernels by the stream itself;
* the **copy stream** carries the batch uploads, so that the copy of batch k+1 runs while step k computes. It
  is created *non-blocking* (``CU_STREAM_NON_BLOCKING``) where the driver allows: numba's ``cuda.stream()``
  makes blocking streams, and a copy on a blocking stream waits implicitly for all the work queued before it
  on the legacy default stream, i.e. for step k, which would serialise copy and compute again. Nothing
  relies on implicit ordering: every dependency between the streams is an explicit event (below), so a
  blocking stream (the fallback) is correct too, only without the overlap.

Per batch slot s (two slots, used by alternate steps) there are one pinned host buffer and one device buffer
per array (X, T) and two events:

* ``copied[s]``: recorded on the copy stream after the slot's upload. The compute stream waits for it
  (``begin``: a wait *on the device*, the host does not block) before the step that reads the slot, so the
  kernels never read a half-copied batch.
* ``consumed[s]``: recorded on the compute stream after the step that read the slot (``end``). Before the
  host writes the slot's pinned buffer again (for the batch two steps later) it waits for this event
  (``wait_free``: the one host synchronisation per step): when step k-1 is done, (a) its device buffers are
  no longer read, so the new upload may overwrite them, and (b) the upload from the pinned buffer into them
  is complete (step k-1 waited for it), so the pinned buffer may be refilled: a pinned buffer is never
  written while a copy from it may be in flight. The same wait frees the slot's staging buffers (row weights
  uploaded on the compute stream during step k-1).

A read of the loss log synchronises the compute stream, so everything queued until then is done: every slot
is known free and the next ``wait_free`` is skipped (one synchronisation per step at most, reads included).

Everything here also runs on Numba's CUDA simulator, where streams and events are no-ops and every copy is
immediate; the counters (``syncs``, ``reads``, ``uploads``, ``pinned_allocs``) let the tests observe the
schedule there.
"""
import ctypes
import weakref

import numba
import numpy as np
from numba import cuda
from numba.core import config as numba_config

from .elementwise import add_l2_kernel
from .launch import blocks_for, flat, kernel

SIMULATOR = bool(numba_config.ENABLE_CUDASIM)
CU_STREAM_NON_BLOCKING = 1
MAX_THREADS = 1024                              # the largest block: the size of the reduction's shared array


def _compute_stream(simulator=SIMULATOR):
    """The stream tinynn's kernels run on: the default stream (a dummy stream on the simulator)."""
    return cuda.stream() if simulator else cuda.default_stream()


def _copy_stream(simulator=SIMULATOR, drv=None, ctx=None):
    """(stream, non_blocking): a stream for the uploads that does not synchronise implicitly with the legacy
    default stream. numba has no public call for one, so it is made as numba's ``Context.create_stream`` does,
    with the CU_STREAM_NON_BLOCKING flag and the same finalizer; a blocking ``cuda.stream()`` if that fails.
    ``drv`` and ``ctx`` (numba's driver module and the current context by default) let the tests check the
    driver calls on the simulator, which has no driver."""
    if simulator:
        return cuda.stream(), False
    try:
        if drv is None:
            from numba.cuda.cudadrv import driver as drv
        if ctx is None:
            ctx = cuda.current_context()
        if drv.USE_NV_BINDING:
            handle = drv.driver.cuStreamCreate(CU_STREAM_NON_BLOCKING)
        else:
            handle = drv.drvapi.cu_stream()
            drv.driver.cuStreamCreate(ctypes.byref(handle), CU_STREAM_NON_BLOCKING)
        return drv.Stream(weakref.proxy(ctx), handle, drv._stream_finalizer(ctx.deallocations, handle)), True
    except Exception:  # another numba-cuda layout: correct (explicit events) but copies do not overlap
        return cuda.stream(), False


def _event(simulator=SIMULATOR):
    """An event for ordering only: no timestamps (cheaper to record) on a GPU."""
    return cuda.event() if simulator else cuda.event(timing=False)


@kernel("float64[::1], {f}[:, ::1], int64, int64")
def sum_into_kernel(partial, out, i, j):
    """out[i, j] = Σ partial, in one block: thread t sums partial[t::threads], thread 0 adds the threads' sums
    (no atomics, no host copy)."""
    t = cuda.threadIdx.x
    threads = cuda.blockDim.x
    s = 0.0
    for k in range(t, partial.size, threads):
        s += partial[k]
    sums = cuda.shared.array(MAX_THREADS, numba.float64)
    sums[t] = s
    cuda.syncthreads()
    if t == 0:
        total = 0.0
        for k in range(threads):
            total += sums[k]
        out[i, j] = total


class CudaFeed:
    """Double-buffered batch uploads and the device-side loss log for one Trainer (see the module docstring for
    the ordering). The host side of the schedule is ``tinynn._feed``; this class only issues the copies, waits
    and records, and counts them."""

    SLOTS = 2

    def __init__(self):
        self.compute = _compute_stream()
        self.copy_stream, self.non_blocking = _copy_stream()
        self.copied = [_event() for _ in range(self.SLOTS)]
        self.consumed = [_event() for _ in range(self.SLOTS)]
        self._free = [True] * self.SLOTS          # slot known free: no step queued since the host last synced
        self._specs = None
        self._host = self._dev = None
        self._stage = [[] for _ in range(self.SLOTS)]   # per slot: [pinned, device] row-weight buffers
        self._staged = 0
        self._slot = 0
        self._ring = self._ring_host = None
        self._partial = None
        # what the tests observe
        self.syncs = 0                            # host waits: wait_free's event syncs and the reads
        self.reads = 0                            # loss-log read-backs
        self.uploads = 0                          # batch uploads issued on the copy stream
        self.pinned_allocs = 0                    # (re)allocations of the batch buffers

    # ------------------------------------------------------------------ batch buffers
    def reserve(self, specs):
        """Pinned host and device buffers for full batches of arrays ``specs`` = ((shape, dtype), ...), in
        every slot; allocated again only when the specs change (a new data shape or batch size). Call it when
        no copy is in flight (between epochs: the last read or ``drain`` made sure)."""
        specs = tuple((tuple(shape), np.dtype(dtype)) for shape, dtype in specs)
        if specs == self._specs:
            return
        self._host = [[cuda.pinned_array(shape, dtype) for shape, dtype in specs] for _ in range(self.SLOTS)]
        self._dev = [[cuda.device_array(shape, dtype) for shape, dtype in specs] for _ in range(self.SLOTS)]
        self._specs = specs
        self.pinned_allocs += 1

    def host(self, slot):
        """The slot's pinned host buffers (full batch size), to gather the next batch into; ``wait_free(slot)``
        first."""
        return self._host[slot]

    def wait_free(self, slot):
        """Block the host until the step that last read ``slot`` is done (skipped when a read since then made
        that known): afterwards the slot's pinned buffers may be written and its device buffers overwritten."""
        if not self._free[slot]:
            self.consumed[slot].synchronize()
            self.syncs += 1
            self._free[slot] = True

    def upload(self, slot, m):
        """Issue the copies of the first ``m`` rows of the slot's pinned buffers into its device buffers on the
        copy stream, and record ``copied[slot]`` after them. Returns the device arrays (views of m rows)."""
        out = []
        for h, d in zip(self._host[slot], self._dev[slot]):
            if m != h.shape[0]:
                h, d = h[:m], d[:m]
            self._copy(d, h, self.copy_stream)
            out.append(d)
        self.copied[slot].record(self.copy_stream)
        self.uploads += 1
        return out

    @staticmethod
    def _copy(dst, src, stream):
        """dst[...] = src issued on ``stream``: asynchronous from pinned memory (tests put a lazy stream here)."""
        dst.copy_to_device(src, stream=stream)

    def begin(self, slot):
        """Before the kernels of the step that reads ``slot``: the compute stream waits (on the device) for the
        slot's upload."""
        self.copied[slot].wait(self.compute)
        self._slot, self._staged = slot, 0
        self._free[slot] = False

    def end(self, slot):
        """After the kernels of that step: ``consumed[slot]`` marks when they are done."""
        self.consumed[slot].record(self.compute)

    def stage(self, w_host):
        """A device copy of the small host array ``w_host`` (a weighted batch's row weights) for the current
        step: copied into the slot's pinned staging buffer and uploaded on the compute stream, so the kernels
        after it see it; the staging buffer is reused two steps later, after ``wait_free`` of this slot."""
        bufs = self._stage[self._slot]
        n = w_host.shape[0]
        if self._staged == len(bufs):
            bufs.append(None)
        pair = bufs[self._staged]
        if pair is None or pair[0].shape[0] < n or pair[0].dtype != w_host.dtype:
            pair = bufs[self._staged] = (cuda.pinned_array(max(n, 1), w_host.dtype),
                                         cuda.device_array(max(n, 1), w_host.dtype))
        self._staged += 1
        pin, dev = pair[0][:n], pair[1][:n]
        np.copyto(pin, w_host)
        dev.copy_to_device(pin, stream=self.compute)
        return dev

    def drain(self):
        """Wait for both streams (after an error or interruption mid-epoch, so that no copy from a pinned buffer
        is in flight when the next epoch refills it)."""
        self.copy_stream.synchronize()
        self.compute.synchronize()
        self._free = [True] * self.SLOTS

    # ------------------------------------------------------------------ the loss log
    def log_reserve(self, steps, width, dtype):
        """A device ring of ``steps`` rows of ``width`` + 1 values (the row losses of a step, then its ‖W‖²)
        and its pinned host mirror."""
        shape = (steps, width + 1)
        if self._ring is None or self._ring.shape != shape or self._ring.dtype != np.dtype(dtype):
            self._ring = cuda.device_array(shape, dtype)
            self._ring_host = cuda.pinned_array(shape, dtype)

    def log_rows(self, j, rows):
        """ring[j, :n] = rows: a device-to-device copy on the compute stream (after the loss kernel wrote
        ``rows``, before the next step overwrites them)."""
        self._ring[j, :rows.shape[0]].copy_to_device(rows, stream=self.compute)

    def log_l2(self, j, W, G, a):
        """G += a W (the L2 penalty's gradient) and ring[j, -1] = ‖W‖², on the device: the penalty's value is
        read with the losses instead of costing a host copy per step."""
        blocks, tpb = blocks_for(W.size)
        if self._partial is None or self._partial.size != blocks * tpb:
            self._partial = cuda.device_array(blocks * tpb, np.float64)
        add_l2_kernel[blocks, tpb](flat(W), flat(G), float(a), self._partial)
        sum_into_kernel[1, min(tpb, MAX_THREADS)](self._partial, self._ring, int(j), self._ring.shape[1] - 1)

    def log_read(self, steps):
        """The first ``steps`` rows of the ring on the host (a pinned view, valid until the next read): a copy
        on the compute stream and one synchronisation of it, after which every step queued so far is done."""
        out = self._ring_host[:steps]
        self._ring[:steps].copy_to_host(out, stream=self.compute)
        self.compute.synchronize()
        self.syncs += 1
        self.reads += 1
        self._free = [True] * self.SLOTS
        return out
