"""Device arrays through MPI: every transfer of a device (CUDA) array goes through a host buffer.

mpi4py's buffer methods read and write host memory (tinynn assumes no CUDA-aware MPI), so ``Group`` hands MPI
a host array: a host (NumPy) array as it is, with no copy (the path of CPU training); for a device array a host
buffer of its shape and dtype, filled from the device before a send or reduction (``take``) and copied back
into the device array when a receive or reduction is complete (``give_back``). The buffers come from a
``HostBuffers`` pool with a free list per (shape, dtype): a buffer is taken for one transfer and returned
when it is done, so after the first step no transfer allocates (a step's buckets, micro-batches and pulls
repeat their shapes). A nonblocking transfer returns a ``StagedRequest``: its ``Wait`` (or ``Group.waitall``)
completes the MPI request, then copies and returns the buffer.

The copies are the backend's own (``kernels.assign``: a synchronous device-to-host or host-to-device copy on
the compute stream, so every kernel queued before has finished writing the array).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import kernels
from ..model import host_copy


class HostBuffers:
    """Host twins of device arrays for MPI transfers, reused: a free list per (shape, dtype)."""

    def __init__(self) -> None:
        self._free: dict[tuple, list[np.ndarray]] = {}
        self.allocated = 0                             # buffers made so far (the tests check the reuse)

    def take(self, a: Any, fill: bool = True) -> np.ndarray:
        """A host buffer shaped like the device array ``a``; ``fill``: holding a's values (to send from)."""
        free = self._free.get((tuple(a.shape), np.dtype(a.dtype).str))
        if free:
            h = free.pop()
        else:
            h = np.empty(tuple(a.shape), np.dtype(a.dtype))
            self.allocated += 1
        if fill:
            kernels.assign(h, a)                       # device -> host
        return h

    def give_back(self, h: np.ndarray, a: Any = None) -> None:
        """Return ``h`` to the pool, first copying it into the device array ``a`` when given (a receive)."""
        if a is not None:
            kernels.assign(a, h)                       # host -> device
        self._free.setdefault((h.shape, h.dtype.str), []).append(h)


class StagedRequest:
    """The MPI request of a device array's transfer through host buffer ``host``: ``Wait``/``Test`` as an
    mpi4py request; when it is complete, ``host`` is copied into ``dev`` (a receive or reduction; None: a
    send) and returned to ``pool`` (once)."""

    __slots__ = ("request", "host", "dev", "pool", "done")

    def __init__(self, request, host, dev, pool):
        self.request, self.host, self.dev, self.pool, self.done = request, host, dev, pool, False

    def complete(self):
        """After the MPI request completed: the copy back and the buffer's return (idempotent)."""
        if not self.done:
            self.done = True
            self.pool.give_back(self.host, self.dev)

    def Wait(self, status=None):
        self.request.Wait(status)
        self.complete()

    def Test(self, status=None):
        if self.done:
            return True
        flag = self.request.Test(status)
        if flag:
            self.complete()
        return flag


def model_device(model) -> str:
    """The device of the model's parameters ("cpu" for a model without any)."""
    params = model.parameters()
    return kernels.device_of(params[0].data) if params else "cpu"


def mpi_requests(requests):
    """(the mpi4py requests of ``requests``, the StagedRequests among them) for Waitall/Testall."""
    staged = [r for r in requests if type(r) is StagedRequest]
    if not staged:
        return requests, staged
    return [r.request if type(r) is StagedRequest else r for r in requests], staged


__all__ = ["HostBuffers", "StagedRequest", "host_copy", "model_device", "mpi_requests"]
