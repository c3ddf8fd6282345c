r"""Asynchronous SGD with a parameter server (Downpour SGD, Dean et al. 2012), with an optional staleness bound
(stale-synchronous parallel, Ho et al. 2013).

Rank 0 is the server: it holds the parameters θ and the optimizer. Ranks 1 … W (W = P - 1 workers) each loop:
pull θ, compute the gradient of the loss on their own mini-batch, push it; they never wait for each other.
The server applies each gradient the moment it arrives (one optimizer step per gradient) and answers the
worker with the new θ:

    θ_{t+1} = θ_t - η · update(∇L(θ_{t-τ}; batch)),    τ = staleness = server steps between the pull and the push

With one worker τ = 0 always: plain SGD, identical to one process. With W workers τ is typically about W - 1.

Stale-synchronous bound s (``staleness_bound``): each worker's clock c_w counts its pushes; the server holds
back the reply to a worker whose clock is more than s ahead of the slowest active worker
(c_w - min_v c_v > s), releasing it when the slow one catches up. While a worker computes, every other worker
can push at most 2s + 1 times, so τ ≤ (W - 1)(2s + 1); s = 0 makes the workers advance in lock-step.

Each worker reads its own contiguous shard of the training set in shuffled mini-batches; training stops after
``epochs · ⌈n / batch_size⌉`` server steps (the same number of updates as synchronous training of the same
epochs); gradients pushed after that are discarded.
"""
from __future__ import annotations

import time

import numpy as np

from ..batches import Batch, BatchSource
from ..strategy import Strategy
from .comm import check_same, model_signature, split_bounds, world

TAG_PUSH, TAG_GRAD, TAG_REPLY, TAG_PARAMS = 11, 12, 13, 14


class StalenessLog:
    """The staleness τ of every applied gradient: histogram and summary."""

    def __init__(self, bound=None, workers=1):
        self.values = []
        self.bound = bound
        self.workers = workers

    def add(self, tau):
        self.values.append(int(tau))

    def summary(self):
        v = np.asarray(self.values, dtype=np.int64)
        if v.size == 0:
            return {"count": 0}
        hist = np.bincount(v)
        return {
            "count": int(v.size), "mean": float(v.mean()), "median": float(np.median(v)),
            "p90": float(np.percentile(v, 90)), "p99": float(np.percentile(v, 99)), "max": int(v.max()),
            "histogram": {str(k): int(c) for k, c in enumerate(hist) if c},
            "bound": self.bound,
            "implied_max": None if self.bound is None else (self.workers - 1) * (2 * self.bound + 1),
            "workers": self.workers,
        }

    def text(self):
        s = self.summary()
        if not s["count"]:
            return "staleness: no gradients applied"
        hist = ", ".join(f"{k}: {c}" for k, c in s["histogram"].items())
        bound = "none" if s["bound"] is None else f"{s['bound']} (so tau <= {s['implied_max']})"
        return (f"gradient staleness (server steps between pull and push) over {s['count']} updates from "
                f"{s['workers']} workers: mean {s['mean']:.2f}, median {s['median']:.0f}, p90 {s['p90']:.0f}, "
                f"max {s['max']}; SSP bound {bound}; histogram {{{hist}}}")


class ParameterServer:
    """Rank 0's side. ``run()`` serves until ``total_steps`` gradients were applied and every worker stopped.

    ``on_step(t, info)`` is called after every applied gradient (``info``: worker, loss, rows, correct,
    staleness) — e.g. to step a schedule or evaluate at epoch ends."""

    def __init__(self, model, optimizer, group, total_steps, staleness_bound=None, on_step=None):
        self.model, self.optimizer, self.group = model, optimizer, group
        self.total_steps = int(total_steps)
        self.bound = None if staleness_bound is None else int(staleness_bound)
        if self.bound is not None and self.bound < 0:
            raise ValueError(f"ParameterServer: staleness_bound must be >= 0 or None, got {staleness_bound!r}")
        self.on_step = on_step
        self.workers = list(range(1, group.size))
        if not self.workers:
            raise ValueError("asynchronous SGD needs at least 2 ranks (a server and a worker): mpiexec -n 2 or more")
        self.log = StalenessLog(self.bound, len(self.workers))
        self.t = 0
        self.stats = {"apply_s": 0.0, "recv_s": 0.0, "send_s": 0.0, "idle_s": 0.0}

    def _send_params(self, w, stop=False):
        comm = self.group.comm
        t0 = time.perf_counter()
        comm.Send(np.array([self.t, int(stop)], np.int64), dest=w, tag=TAG_REPLY)
        if not stop:
            comm.Send(self.model.flat.data, dest=w, tag=TAG_PARAMS)
        self.stats["send_s"] += time.perf_counter() - t0

    def run(self):
        from .comm import mpi

        MPI = mpi()
        comm = self.group.comm
        flat = self.model.flat
        grad_in = np.empty_like(flat.grad)
        hdr = np.empty(5, np.float64)                      # [t_pull, loss, rows, correct, worker clock]
        clock = {w: 0 for w in self.workers}
        active, deferred = set(self.workers), set[int]()
        status = MPI.Status()
        for w in self.workers:
            self._send_params(w)
        while active:
            t0 = time.perf_counter()
            comm.Recv(hdr, source=MPI.ANY_SOURCE, tag=TAG_PUSH, status=status)
            w = status.Get_source()
            t1 = time.perf_counter()
            comm.Recv(grad_in, source=w, tag=TAG_GRAD)
            t2 = time.perf_counter()
            self.stats["idle_s"] += t1 - t0
            self.stats["recv_s"] += t2 - t1
            if self.t < self.total_steps:
                tau = self.t - int(hdr[0])
                self.log.add(tau)
                flat.grad[...] = grad_in
                self.optimizer.step()                       # θ ← update(θ, g(θ_{t-τ}))
                self.t += 1
                clock[w] += 1
                self.stats["apply_s"] += time.perf_counter() - t2
                if self.on_step is not None:
                    self.on_step(self.t, {"worker": w, "loss": float(hdr[1]), "rows": int(hdr[2]),
                                          "correct": int(hdr[3]), "staleness": tau})
            if self.t >= self.total_steps:
                for v in sorted(deferred | {w}):
                    self._send_params(v, stop=True)
                    active.discard(v)
                deferred.clear()
                continue
            deferred.add(w)
            slowest = min(clock[v] for v in active)
            for v in sorted(deferred):
                if self.bound is None or clock[v] - slowest <= self.bound:
                    deferred.discard(v)
                    self._send_params(v)
        return self.log


class Worker:
    """A worker rank's side: ``run(batches, compute)`` pulls θ, calls ``compute()`` (forward + backward on the next
    mini-batch, returning (loss, rows, correct)), pushes ``model.flat.grad`` with the step it pulled at,
    until the server says stop."""

    def __init__(self, model, group):
        self.model, self.group = model, group
        self.stats = {"compute_s": 0.0, "wait_s": 0.0, "pushes": 0}

    def run(self, compute):
        comm = self.group.comm
        flat = self.model.flat
        reply = np.empty(2, np.int64)
        hdr = np.empty(5, np.float64)
        while True:
            t0 = time.perf_counter()
            comm.Recv(reply, source=0, tag=TAG_REPLY)
            if reply[1]:
                self.stats["wait_s"] += time.perf_counter() - t0
                return self.stats
            comm.Recv(flat.data, source=0, tag=TAG_PARAMS)   # pull θ_t
            t1 = time.perf_counter()
            self.stats["wait_s"] += t1 - t0
            loss, rows, correct = compute()
            t2 = time.perf_counter()
            self.stats["compute_s"] += t2 - t1
            hdr[:] = (reply[0], loss, rows, correct, self.stats["pushes"])
            comm.Send(hdr, dest=0, tag=TAG_PUSH)
            comm.Send(flat.grad, dest=0, tag=TAG_GRAD)         # push g(θ_t)
            self.stats["pushes"] += 1
            self.stats["wait_s"] += time.perf_counter() - t2


def worker_batches(n, batch_size, group, rng):
    """Endless mini-batches of this worker's shard of range(n) (worker k of W takes the k-th contiguous part),
    reshuffled by ``rng`` at every pass."""
    W = group.size - 1
    lo, hi = split_bounds(n, W, group.rank - 1)
    shard = np.arange(lo, hi)
    if len(shard) == 0:
        raise ValueError(f"asynchronous SGD: {n} training rows cannot be shared by {W} workers")
    while True:
        order = rng.permutation(len(shard))
        for s in range(0, len(shard), batch_size):
            yield shard[order[s:s + batch_size]]


def check_start(group, model, batch_size):
    """Same model and batch size everywhere (a clear ValueError on every rank otherwise)."""
    check_same(group, "model (layers, parameter shapes and dtypes)", model_signature(model))
    check_same(group, "batch size", int(batch_size))


def worker_stream(rng, group):
    """Worker k (rank k+1) draws from ``rng`` jumped k times: worker 0's stream is ``rng`` itself, so with one
    worker the run is the single-process run."""
    k = group.rank - 1
    return rng if k <= 0 else np.random.Generator(rng.bit_generator.jumped(k))


class AsyncSGD(Strategy):
    """Asynchronous SGD as a strategy of ``tinynn.training.Trainer``. Rank 0 trains: its batch source
    (``ServerBatches``) is the stream of gradients the workers push, one Trainer step (optimizer, schedule,
    callbacks, divergence guard) per gradient, ⌈n / batch_size⌉ of them per epoch; after each step the worker
    that pushed gets the new θ (held back under the SSP bound as ``ParameterServer`` does). Ranks 1…W do not
    train (``trains_here`` False): ``work`` computes gradients on their shard until rank 0 stops them
    (``finish``, at the end of the run or of ``--stop-after``). Rank 0 writes the checkpoint; a resumed run
    continues from it (the workers' batch streams start afresh, so not bitwise)."""

    name, devices = "async", ("cpu",)

    def __init__(self, model, group=None, *, batch_size=None, staleness_bound=None):
        self.group = world() if group is None else group
        check_start(self.group, model, 1 if batch_size is None else batch_size)
        if self.group.size < 2:
            raise ValueError("asynchronous SGD needs at least 2 ranks (a server and a worker): mpiexec -n 2 or more")
        self.model = self.module = model
        self.bound = None if staleness_bound is None else int(staleness_bound)
        if self.bound is not None and self.bound < 0:
            raise ValueError(f"AsyncSGD: staleness_bound must be >= 0 or None, got {staleness_bound!r}")
        self.trains_here = self.group.is_root
        self.workers = list(range(1, self.group.size))
        self.log = StalenessLog(self.bound, len(self.workers))
        self.stats = {"apply_s": 0.0, "recv_s": 0.0, "send_s": 0.0, "idle_s": 0.0}
        self.started, self.resumed_epoch, self.t = False, 0, 0
        self._last = self._value = None
        if not self.trains_here:
            from .data import per_rank_dropout

            per_rank_dropout(model, self.group.rank - 1)           # worker 0 (rank 1) keeps the seed's streams

    rank = property(lambda self: self.group.rank)
    size = property(lambda self: self.group.size)

    # ------------------------------------------------------------------ rank 0: the server
    def batches(self, trainer, X, T, sample_weight=None, accuracy=False):
        if sample_weight is not None:
            raise NotImplementedError("AsyncSGD: sample weights are not supported")
        return ServerBatches(self, -(-X.shape[0] // trainer.batch_size), accuracy)

    def _send(self, w, stop=False):
        t0 = time.perf_counter()
        self.group.comm.Send(np.array([self.t, int(stop)], np.int64), dest=w, tag=TAG_REPLY)
        if not stop:
            self.group.comm.Send(self.model.flat.data, dest=w, tag=TAG_PARAMS)
        self.stats["send_s"] += time.perf_counter() - t0

    def _reply(self):
        """θ to the worker of the last step, and to every held-back worker the SSP bound now lets go."""
        if not self.started:
            self.started, self.clock = True, {w: 0 for w in self.workers}
            self.active, self.deferred = set(self.workers), set()
            self._grad = np.empty_like(self.model.flat.grad)
            self._hdr = np.empty(5, np.float64)
            for w in self.workers:
                self._send(w)
        if self._last is None:
            return
        self.deferred.add(self._last)
        self._last = None
        slowest = min(self.clock[v] for v in self.active)
        for v in sorted(self.deferred):
            if self.bound is None or self.clock[v] - slowest <= self.bound:
                self.deferred.discard(v)
                self._send(v)

    def _receive(self):
        """The next pushed gradient (into a buffer: the Trainer zeroes the model's gradient before the step)."""
        from .comm import mpi

        status = mpi().Status()
        t0 = time.perf_counter()
        self.group.comm.Recv(self._hdr, source=mpi().ANY_SOURCE, tag=TAG_PUSH, status=status)
        w = status.Get_source()
        t1 = time.perf_counter()
        self.group.comm.Recv(self._grad, source=w, tag=TAG_GRAD)
        self.stats["idle_s"] += t1 - t0
        self.stats["recv_s"] += time.perf_counter() - t1
        return w

    def next_batch(self, step):
        self._reply()
        w = self._receive()
        self.log.add(self.t - int(self._hdr[0]))
        self.t += 1
        self.clock[w] += 1
        self._last = w
        batch = Batch(step, None, None, None, None, rows=int(self._hdr[2]))
        batch.value, batch.correct = float(self._hdr[1]), int(self._hdr[3])
        self._value = batch.value
        return batch

    def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
        t0 = time.perf_counter()
        trainer.model.flat.grad[...] = self._grad                  # θ ← update(θ, g(θ_{t-τ})) follows
        self.stats["apply_s"] += time.perf_counter() - t0
        return self._value

    # ------------------------------------------------------------------ ranks 1…W: the workers
    def load_checkpoint(self, trainer, path, arrays=None, meta=None):
        if self.trains_here:
            return super().load_checkpoint(trainer, path, arrays, meta)
        if meta is None:
            from .. import io

            _, meta = io.load_npz(path, kind="checkpoint")
        self.resumed_epoch = int(meta["epoch"])
        return meta

    def work(self, trainer, X, T):
        """Pull θ, compute the gradient of this worker's next batch (augmented as the Trainer would), push it;
        until rank 0 says stop."""
        from ..kernels import ops

        model, loss = self.model, trainer.loss
        rng, aug_rng = worker_stream(trainer.rng, self.group), worker_stream(trainer.aug_rng, self.group)
        if self.resumed_epoch:                                      # a fresh stream for the rest of the run
            rng = np.random.default_rng(np.random.SeedSequence(int(rng.integers(2 ** 62)),
                                                               spawn_key=(self.resumed_epoch,)))
        batches = worker_batches(X.shape[0], trainer.batch_size, self.group, rng)
        pred = np.empty(trainer.batch_size, np.int64)
        model.train()

        def compute():
            idx = next(batches)
            Xb, yb = X[idx], T[idx]
            if trainer.augment is not None:
                Xb = trainer.augment(Xb, aug_rng)
            value = loss(model.forward(Xb), yb)
            if not np.isfinite(value):
                raise FloatingPointError(f"asynchronous SGD: the training loss became {value} on worker rank "
                                         f"{self.group.rank}; try a lower learning rate")
            correct = int(np.count_nonzero(ops.argmax_rows(loss.P, out=pred[:len(idx)]) == yb))
            model.backward(loss.backward())
            return value, len(idx), correct

        self.stats = {"worker": Worker(model, self.group).run(compute)}

    def finish(self):
        """Rank 0 stops every worker (discarding the gradients still in flight); all ranks: the measurements."""
        if self.trains_here and self.started:
            for v in sorted(self.deferred | ({self._last} if self._last is not None else set())):
                self._send(v, stop=True)
                self.active.discard(v)
            self._last = None
            while self.active:
                w = self._receive()
                self._send(w, stop=True)
                self.active.discard(w)
        stats = self.group.allgather_object(self.stats)
        if not self.trains_here:
            return {}
        return {"gradient_staleness": self.log.summary(), "staleness_text": self.log.text(), "server": stats[0],
                "workers": [s["worker"] for s in stats[1:]], "staleness_bound": self.bound}


class ServerBatches(BatchSource):
    """Rank 0's batch source under ``AsyncSGD``: ``steps`` pushed gradients (their loss, rows and right answers
    come with them)."""

    deferred = False

    def __init__(self, strategy, steps, accuracy):
        self.strategy, self.steps, self.counting, self.correct = strategy, steps, bool(accuracy), 0

    def __iter__(self):
        for step in range(self.steps):
            yield self.strategy.next_batch(step)

    def settle(self, batch, value):
        self.correct += batch.correct
        return super().settle(batch, value)


__all__ = ["AsyncSGD", "ServerBatches", "ParameterServer", "Worker", "StalenessLog", "worker_batches", "check_start", "worker_stream", "world"]
