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

from .. import kernels
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
    """Rank 0's side of the protocol, in steps that ``run()`` and ``AsyncSGD`` (the Trainer's strategy) share:
    ``start`` sends θ₀ to every worker; ``receive`` takes the next pushed gradient (``grad_in``, header ``hdr`` =
    [t_pull, loss, rows, correct, worker clock]) and books it as applied at step ``t`` (staleness τ = t - t_pull);
    ``release(w)`` lets worker w and every held-back worker the SSP bound allows pull the new θ; ``stop_all(w)``
    stops every worker, discarding the gradients still in flight. ``run()`` serves until ``total_steps``
    gradients were applied, applying each with ``optimizer``.

    ``on_step(t, info)`` is called after every gradient ``run`` applied (``info``: worker, loss, rows, correct,
    staleness) — e.g. to step a schedule or evaluate at epoch ends."""

    def __init__(self, model, optimizer, group, total_steps=None, staleness_bound=None, on_step=None):
        self.model, self.optimizer, self.group = model, optimizer, group
        self.total_steps = None if total_steps is None else int(total_steps)
        self.bound = None if staleness_bound is None else int(staleness_bound)
        if self.bound is not None and self.bound < 0:
            raise ValueError(f"ParameterServer: staleness_bound must be >= 0 or None, got {staleness_bound!r}")
        self.on_step = on_step
        self.workers = list(range(1, group.size))
        if not self.workers:
            raise ValueError("asynchronous SGD needs at least 2 ranks (a server and a worker): mpiexec -n 2 or more")
        self.log = StalenessLog(self.bound, len(self.workers))
        self.t = 0
        self.started = False
        self.stats = {"apply_s": 0.0, "recv_s": 0.0, "send_s": 0.0, "idle_s": 0.0}

    def _send_params(self, w, stop=False):
        comm = self.group.comm
        t0 = time.perf_counter()
        comm.Send(np.array([self.t, int(stop)], np.int64), dest=w, tag=TAG_REPLY)
        if not stop:
            self.group.send(self.model.flat.data, dest=w, tag=TAG_PARAMS)
        self.stats["send_s"] += time.perf_counter() - t0

    def start(self):
        """θ₀ to every worker; the clocks and buffers of the run."""
        self.started = True
        self.clock = {w: 0 for w in self.workers}
        self.active, self.deferred = set(self.workers), set[int]()
        g = self.model.flat.grad                       # gradients arrive in host memory (then ``apply``)
        self.grad_in = np.empty(tuple(g.shape), np.dtype(g.dtype))
        self.hdr = np.empty(5, np.float64)
        for w in self.workers:
            self._send_params(w)

    def receive(self, book=True):
        """The next pushed gradient into ``grad_in`` (header in ``hdr``); returns its worker. ``book``: count it
        as the gradient of step ``t`` (its staleness logged, ``t`` and the worker's clock advanced)."""
        from .comm import mpi

        MPI = mpi()
        status = MPI.Status()
        t0 = time.perf_counter()
        self.group.comm.Recv(self.hdr, source=MPI.ANY_SOURCE, tag=TAG_PUSH, status=status)
        w = status.Get_source()
        t1 = time.perf_counter()
        self.group.comm.Recv(self.grad_in, source=w, tag=TAG_GRAD)
        self.stats["idle_s"] += t1 - t0
        self.stats["recv_s"] += time.perf_counter() - t1
        if book:
            self.log.add(self.t - int(self.hdr[0]))
            self.t += 1
            self.clock[w] += 1
        return w

    def apply(self):
        """The received gradient into the model's gradient buffer (on its device)."""
        kernels.assign(self.model.flat.grad, self.grad_in)

    def release(self, w):
        """Worker w waits for θ: send it to w and to every held-back worker within the SSP bound of the slowest."""
        self.deferred.add(w)
        slowest = min(self.clock[v] for v in self.active)
        for v in sorted(self.deferred):
            if self.bound is None or self.clock[v] - slowest <= self.bound:
                self.deferred.discard(v)
                self._send_params(v)

    def stop_all(self, last=None):
        """Stop every worker: the held-back ones and ``last`` at once, the others as their next push (discarded)
        arrives."""
        for v in sorted(self.deferred | ({last} if last is not None else set())):
            self._send_params(v, stop=True)
            self.active.discard(v)
        self.deferred.clear()
        while self.active:
            w = self.receive(book=False)
            self._send_params(w, stop=True)
            self.active.discard(w)

    def run(self):
        """Serve until ``total_steps`` gradients were applied (each with ``optimizer``), then stop the workers."""
        if self.optimizer is None or self.total_steps is None:
            raise ValueError("ParameterServer.run needs an optimizer and total_steps")
        self.start()
        w = None
        while self.t < self.total_steps:
            w = self.receive()
            t0 = time.perf_counter()
            self.apply()
            self.optimizer.step()                       # θ ← update(θ, g(θ_{t-τ}))
            self.stats["apply_s"] += time.perf_counter() - t0
            if self.on_step is not None:
                self.on_step(self.t, {"worker": w, "loss": float(self.hdr[1]), "rows": int(self.hdr[2]),
                                      "correct": int(self.hdr[3]), "staleness": self.log.values[-1]})
            if self.t < self.total_steps:
                self.release(w)
        self.stop_all(w)
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
            self.group.recv(flat.data, source=0, tag=TAG_PARAMS)   # pull θ_t
            t1 = time.perf_counter()
            self.stats["wait_s"] += t1 - t0
            loss, rows, correct = compute()
            t2 = time.perf_counter()
            self.stats["compute_s"] += t2 - t1
            hdr[:] = (reply[0], loss, rows, correct, self.stats["pushes"])
            comm.Send(hdr, dest=0, tag=TAG_PUSH)
            self.group.send(flat.grad, dest=0, tag=TAG_GRAD)       # push g(θ_t)
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

    name, devices = "async", ("cpu", "cuda")

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
        # the protocol (θ out, gradients in, the SSP hold-back): the Trainer applies each gradient as one step
        self.server = ParameterServer(model, None, self.group, staleness_bound=self.bound)
        self.log, self.stats = self.server.log, self.server.stats
        self.resumed_epoch = 0
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

    def next_batch(self, step):
        """The next pushed gradient as a batch of the Trainer's loop (after θ went to the worker of the last)."""
        server = self.server
        if not server.started:
            server.start()
        if self._last is not None:
            server.release(self._last)
        self._last = server.receive()
        hdr = server.hdr
        batch = Batch(step, None, None, None, None, rows=int(hdr[2]))
        batch.value, batch.correct = float(hdr[1]), int(hdr[3])
        self._value = batch.value
        return batch

    def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
        t0 = time.perf_counter()
        self.server.apply()                                         # θ ← update(θ, g(θ_{t-τ})) follows
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
        pred = kernels.empty((trainer.batch_size,), np.int64, like=model.flat.data)
        model.train()

        def compute():
            idx = next(batches)
            Xb, yb = X[idx], T[idx]
            if trainer.augment is not None:
                Xb = trainer.augment(Xb, aug_rng)
            value = loss(model.forward(trainer.on_device(Xb)), trainer.on_device(yb))
            if not np.isfinite(value):
                raise FloatingPointError(f"asynchronous SGD: the training loss became {value} on worker rank "
                                         f"{self.group.rank}; try a lower learning rate")
            correct = int(np.count_nonzero(kernels.to_host(ops.argmax_rows(loss.P, out=pred[:len(idx)])) == yb))
            model.backward(loss.backward())
            return value, len(idx), correct

        self.stats = {"worker": Worker(model, self.group).run(compute)}

    def finish(self):
        """Rank 0 stops every worker (discarding the gradients still in flight); all ranks: the measurements."""
        if self.trains_here and self.server.started:
            self.server.stop_all(self._last)
            self._last = None
        stats = self.group.allgather_object(self.stats)
        if not self.trains_here:
            return {}
        return {"gradient_staleness": self.log.summary(), "staleness_text": self.log.text(), "server": stats[0],
                "workers": [s["worker"] for s in stats[1:]], "staleness_bound": self.bound}


class ServerBatches(BatchSource):
    """Rank 0's batch source under ``AsyncSGD``: ``steps`` pushed gradients (their loss, rows and right answers
    come with them)."""

    def __init__(self, strategy, steps, accuracy):
        self.strategy, self.steps, self.counting, self.correct = strategy, steps, bool(accuracy), 0

    def __iter__(self):
        for step in range(self.steps):
            yield self.strategy.next_batch(step)

    def settle(self, batch, value):
        self.correct += batch.correct
        return super().settle(batch, value)


__all__ = ["AsyncSGD", "ServerBatches", "ParameterServer", "Worker", "StalenessLog", "worker_batches", "check_start", "worker_stream", "world"]
