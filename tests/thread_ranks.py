"""P ranks in one process: threads that share a ``ThreadGroup`` (the collectives of ``tinynn.parallel.Group``
over shared memory). Lets the data-parallel code be checked in-process on several ranks, so that a test can
compare what the ranks compute together with one process computing the whole batch.

``run_ranks(P, fn)`` calls ``fn(group)`` on P threads (group.rank = 0 … P-1) and returns their results in rank
order; an exception on any rank breaks the others' waits and is raised again here."""
import threading

import numpy as np


class _Shared:
    def __init__(self, size, timeout):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=timeout)
        self.slots = [None] * size


class ThreadGroup:
    """One rank's view of a group of threads: rank, size, is_root and the collectives that tinynn.parallel's
    Group offers (allreduce_, iallreduce_, bcast_, allsum, allgather_object, testall, waitall, barrier).
    Sums are taken in rank order, so every rank gets the same bits. A nonblocking allreduce is done when it is
    waited for (every rank waits for its requests in the order it started them, as MPI requires)."""

    def __init__(self, shared, rank):
        self._s, self.rank, self.size = shared, rank, shared.size
        self.calls = []                                      # (name, nbytes) of every collective, in order

    @property
    def is_root(self):
        return self.rank == 0

    def _exchange(self, value):
        s = self._s
        s.barrier.wait()
        s.slots[self.rank] = value
        s.barrier.wait()
        out = list(s.slots)
        s.barrier.wait()
        return out

    def allreduce_(self, a):
        self.calls.append(("allreduce_", a.nbytes))
        parts = self._exchange(np.array(a, copy=True))
        total = parts[0].copy()
        for p in parts[1:]:
            total += p
        a[...] = total
        return a

    def iallreduce_(self, a):
        self.calls.append(("iallreduce_", a.nbytes))
        return _Request(self, a)

    def bcast_(self, a, root=0):
        self.calls.append(("bcast_", a.nbytes))
        parts = self._exchange(np.array(a, copy=True))
        a[...] = parts[root]
        return a

    def allsum(self, value):
        self.calls.append(("allsum", 8))
        return float(sum(self._exchange(float(value))))

    def allgather_object(self, obj):
        return self._exchange(obj)

    def barrier(self):
        self._exchange(None)

    def testall(self, requests):
        return False                                         # nothing completes before it is waited for

    def waitall(self, requests):
        for r in requests:
            r.Wait()

    def abort(self, code=1):
        raise SystemExit(code)


class _Request:
    def __init__(self, group, a):
        self.group, self.a, self.done = group, a, False

    def Wait(self):
        if not self.done:
            parts = self.group._exchange(np.array(self.a, copy=True))
            total = parts[0].copy()
            for p in parts[1:]:
                total += p
            self.a[...] = total
            self.done = True


def run_ranks(size, fn, timeout=60):
    """[fn(ThreadGroup rank r) for r in range(size)], the ranks running at once on threads."""
    shared = _Shared(size, timeout)
    results, errors = [None] * size, [None] * size

    def body(r):
        try:
            results[r] = fn(ThreadGroup(shared, r))
        except BaseException as e:                           # noqa: BLE001 - re-raised below
            errors[r] = e
            shared.barrier.abort()

    threads = [threading.Thread(target=body, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = [e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)]
    if first:
        raise first[0]
    if any(e is not None for e in errors):
        raise errors[0] or next(e for e in errors if e is not None)
    return results
