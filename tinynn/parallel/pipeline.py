r"""Pipeline parallelism (GPipe, and the 1F1B schedule of PipeDream-Flush / Megatron-LM).

A Sequential is cut into P contiguous stages, one per rank, balanced by cost (the partition that minimises the
most expensive stage; cuts fall between the nodes of the execution plan, so a Linear stays fused with its
activation). A mini-batch of N rows is split into M micro-batches of n_m rows (as even as possible); stage s
receives micro-batch m's activations from stage s-1, runs its layers, sends them to stage s+1; backward runs
in reverse, gradients travelling from the last stage to the first. The global loss and gradient are

    L = Σ_m (n_m/N) L_m,      ∇θ_s L = Σ_m (n_m/N) ∇θ_s L_m

so the last stage scales each micro-batch's output gradient by n_m/N and every stage sums its parameter
gradients over the micro-batches, then steps its own optimizer (elementwise: the same update as one process).

Schedules, for stage s of P with M micro-batches (F = forward, B = backward of one micro-batch):

* ``gpipe``: F_0 … F_{M-1}, then B_{M-1} … B_0. Every stage keeps the activations of all M micro-batches.
* ``1f1b``: min(P-s-1, M) warm-up forwards, then alternate one forward and one backward, then the remaining
  backwards. At most P - s micro-batches are in flight on stage s, whatever M: activation memory is bounded
  by the depth of the pipeline rather than by the number of micro-batches. Same bubble, (P-1)/(M+P-1).

Layers keep their saved activations and outputs in per-layer work buffers, so each micro-batch in flight runs
on its own replica of the stage: shallow copies of the layers that share the Parameters (and the dropout
generator and running statistics) but own their buffers. Activations travel with nonblocking ``Isend`` and
blocking ``Recv`` (tag = 2m forward, 2m+1 backward), so no two stages can wait on each other's sends.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import copy
import time

import numpy as np

from .. import kernels
from ..kernels import ops

from ..losses import SoftmaxCrossEntropy
from ..parameter import Parameter
from ..strategy import ShardedStrategy
from .comm import check_same, model_signature, split_sizes, world
from .staging import host_copy, model_device

if TYPE_CHECKING:
    from ..model import Sequential
    from .comm import Group

SCHEDULES = ("gpipe", "1f1b")


def node_cost(node) -> float:
    """Multiply-adds per row, forward (backward is about twice that for every layer alike): d_in·d_out for a
    Linear (fused or not, sharded or not), the width for elementwise and normalisation layers."""
    w = getattr(node, "linear", node)
    if hasattr(w, "in_features") and hasattr(w, "out_features"):
        return float(w.in_features * w.out_features + w.out_features)
    for attr in ("num_features", "out_features"):
        if hasattr(w, attr):
            return float(getattr(w, attr))
    return 1.0


def partition(costs: Sequence[float], parts: int) -> list[tuple[int, int]]:
    """Contiguous (lo, hi) ranges over ``costs`` into ``parts`` non-empty groups minimising the largest group
    sum (the linear-partition dynamic programme, O(n² parts))."""
    n = len(costs)
    if parts > n:
        raise ValueError(f"pipeline: {parts} stages need at least {parts} layers (plan nodes), the model has {n}")
    pre = np.concatenate([[0.0], np.cumsum(costs)])
    INF = float("inf")
    best = [[INF] * (n + 1) for _ in range(parts + 1)]
    cut = [[0] * (n + 1) for _ in range(parts + 1)]
    best[0][0] = 0.0
    for p in range(1, parts + 1):
        for j in range(p, n + 1):
            for i in range(p - 1, j):
                c = max(best[p - 1][i], pre[j] - pre[i])
                if c < best[p][j]:
                    best[p][j], cut[p][j] = c, i
    bounds, j = [], n
    for p in range(parts, 0, -1):
        i = cut[p][j]
        bounds.append((i, j))
        j = i
    return bounds[::-1]


def schedule_order(schedule, P, s, M):
    """Stage s of P, M micro-batches: the list of ("F"|"B", m) it runs (see the module docstring)."""
    if schedule == "gpipe":
        return [("F", m) for m in range(M)] + [("B", m) for m in reversed(range(M))]
    if schedule != "1f1b":
        raise ValueError(f"unknown pipeline schedule {schedule!r}; expected one of {SCHEDULES}")
    warm = min(P - s - 1, M)
    order = [("F", m) for m in range(warm)]
    for j in range(M - warm):
        order += [("F", warm + j), ("B", j)]
    return order + [("B", m) for m in range(M - warm, M)]


def _widths(layers):
    """Input width of every layer (None where no layer before or after says)."""
    w, out = None, []
    for layer in layers:
        inner = getattr(layer, "linear", layer)
        if hasattr(inner, "in_features"):
            w = inner.in_features
        elif hasattr(inner, "num_features"):
            w = inner.num_features
        out.append(w)
        if hasattr(inner, "out_features"):
            w = inner.out_features
    for i in range(len(out) - 2, -1, -1):           # leading layers without a width (input Dropout): backfill
        if out[i] is None:
            out[i] = out[i + 1]
    return out + [w]


def _clone(node):
    """A copy of a layer that shares its Parameters, generator and running statistics but owns its work
    buffers and saved activations (``WorkBuffers.__getstate__`` leaves the buffers out of the copy)."""
    c = copy.copy(node)
    c.__dict__.pop("_ws_cache", None)
    return c


class Pipeline:
    """This rank's stage of a pipeline-parallel Sequential.

    Parameters
    ----------
    model : Sequential — the same on every rank (checked); it is not changed (the stage is built from a copy)
        and rank 0 uses it as the target of ``gather``
    group : tinynn.parallel.Group (default: the whole job); stage s = rank s
    microbatches : int, M (a batch of fewer rows uses one micro-batch per row)
    schedule : "gpipe" or "1f1b"
    loss : the last stage's loss class (default SoftmaxCrossEntropy)
    bounds : optional [(lo, hi)] plan-node ranges per stage, instead of the cost-balanced partition
    batch_size : optional, checked equal on every rank

    Build the optimizer over ``pipeline.parameters()`` (this stage's flat buffer) and call ``step(X, y)``
    on every rank with the same global batch (X is read on the first stage, y on the last), then
    ``optimizer.step()``.
    """

    def __init__(self, model: Sequential, group: Group | None = None, *, microbatches: int = 4, schedule: str = "gpipe",
                 loss: Any = SoftmaxCrossEntropy, bounds: Sequence[tuple[int, int]] | None = None,
                 batch_size: int | None = None) -> None:
        from ..model import Sequential

        self.group = g = world() if group is None else group
        if schedule not in SCHEDULES:
            raise ValueError(f"Pipeline: schedule must be one of {SCHEDULES}, got {schedule!r}")
        if not isinstance(microbatches, (int, np.integer)) or microbatches < 1:
            raise ValueError(f"Pipeline: microbatches must be a positive integer, got {microbatches!r}")
        check_same(g, "model (layers, parameter shapes and dtypes)", model_signature(model))
        check_same(g, "pipeline settings (micro-batches, schedule, batch size)",
                   (int(microbatches), schedule, None if batch_size is None else int(batch_size)))
        self.full, self.microbatches, self.schedule = model, int(microbatches), schedule
        self.P, self.s = g.size, g.rank
        plan = list(model.plan) if hasattr(model, "plan") else list(enumerate(model.layers))
        starts = [0] + [end + 1 for end, _ in plan[:-1]]
        spans = [(a, end + 1) for a, (end, _) in zip(starts, plan)]          # layer range of each plan node
        self.node_bounds = list(bounds) if bounds is not None else partition([node_cost(n) for _, n in plan], self.P)
        if len(self.node_bounds) != self.P:
            raise ValueError(f"Pipeline: {len(self.node_bounds)} stage bounds for {self.P} ranks")
        self.layer_bounds = [(spans[a][0], spans[b - 1][1]) for a, b in self.node_bounds]
        lo, hi = self.layer_bounds[self.s]
        src = host_copy(model)
        self.stage = Sequential(*src.layers[lo:hi])
        if model_device(model) != "cpu":
            self.stage.to(model_device(model))
        self.stage.needs_input_grad = self.s > 0                             # later stages send dX upstream
        widths = _widths(model.layers)
        self.width_in, self.width_out = widths[lo], widths[hi]
        self.first, self.last = self.s == 0, self.s == self.P - 1
        self.loss_cls = loss
        self._replicas, self._losses = [self.stage], [loss()]
        flat = self.stage.flat
        self._acc = None if flat is None else kernels.empty(flat.data.shape, flat.data.dtype, like=flat.data)
        self._recv_bufs: dict[Any, Any] = {}
        self._send_reqs: dict[Any, Any] = {}
        self.stats = {"steps": 0, "compute_s": 0.0, "wait_s": 0.0, "peak_in_flight": 0, "bytes_sent": 0}

    # ------------------------------------------------------------------ the pieces
    def parameters(self):
        return self.stage.parameters()

    @property
    def is_root(self):
        return self.group.rank == 0

    def train(self, mode=True):
        for r in self._replicas:
            r.train(mode)
        return self

    def _replica(self, k):
        while len(self._replicas) <= k:
            r = _clone(self.stage)
            r.plan = [(i, _clone(node)) for i, node in self.stage.plan]
            r._outputs = {}
            self._replicas.append(r)
            self._losses.append(self.loss_cls())
        return self._replicas[k], self._losses[k]

    def order(self, M):
        """The schedule for this stage: a list of ("F"|"B", micro-batch)."""
        return schedule_order(self.schedule, self.P, self.s, M)

    def slots(self, M):
        """Replicas (sets of stored activations) this stage needs: M for GPipe, min(M, P - s) for 1F1B."""
        return M if self.schedule == "gpipe" else min(M, self.P - self.s)

    def _buf(self, key, shape, dtype):
        b = self._recv_bufs.get(key)
        if b is None or b.shape != shape:                  # on the stage's device (a device array is staged)
            b = self._recv_bufs[key] = kernels.empty(shape, dtype, like=self._acc)
        return b

    def _wait_slot(self, k):
        reqs = self._send_reqs.pop(k, None)
        if reqs:
            t0 = time.perf_counter()
            self.group.waitall(reqs)
            self.stats["wait_s"] += time.perf_counter() - t0

    # ------------------------------------------------------------------ one mini-batch
    def step(self, X=None, y=None):
        """Forward and backward of one global mini-batch through the pipeline; afterwards this stage's
        ``parameters()`` hold the batch's mean gradient. X is needed on the first stage, y on the last (pass
        both everywhere if simpler). Returns the batch's mean loss on every rank."""
        if self.stage.flat is None:
            raise TypeError("Pipeline: the stage's parameters must share one flat buffer (one dtype)")
        ref = X if X is not None else y
        if ref is None or (self.first and X is None) or (self.last and y is None):
            raise ValueError(f"Pipeline.step: stage {self.s} needs {'X' if self.first else 'y'}")
        N = int(ref.shape[0])
        M = min(self.microbatches, N)
        sizes = split_sizes(N, M)
        offs = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        K = self.slots(M)
        dtype = self.stage.flat.data.dtype
        group = self.group
        stats = self.stats
        ops.fill(self._acc, 0.0)
        total, in_flight = 0.0, 0
        labels = self.last and y.ndim == 1 and y.dtype.kind in "iu"
        self.correct = 0                                   # right answers of the batch (last stage; running accuracy)
        t_step = time.perf_counter()
        wait0 = stats["wait_s"]
        for kind, m in self.order(M):
            k = m % K
            rep, loss = self._replica(k)
            rows = slice(offs[m], offs[m + 1])
            if kind == "F":
                self._wait_slot(k)                          # the slot's previous sends are done before reuse
                if self.first:
                    xin = X[rows]
                else:
                    xin = self._buf(("x", k), (sizes[m], self.width_in), dtype)
                    t0 = time.perf_counter()
                    group.recv(xin, source=self.s - 1, tag=2 * m)
                    stats["wait_s"] += time.perf_counter() - t0
                out = rep.forward(xin)
                in_flight += 1
                stats["peak_in_flight"] = max(stats["peak_in_flight"], in_flight)
                if self.last:
                    total += loss(out, y[rows]) * (sizes[m] / N)             # L = Σ_m (n_m/N) L_m
                    if labels:
                        self.correct += self._count_correct(out, y[rows])
                else:
                    self._send_reqs.setdefault(k, []).append(group.isend(out, dest=self.s + 1, tag=2 * m))
                    stats["bytes_sent"] += out.nbytes
            else:
                if self.last:
                    dY = ops.scale(loss.backward(), sizes[m] / N)             # ∂L/∂Z_m = (n_m/N) ∂L_m/∂Z_m
                else:
                    dY = self._buf(("dy", k), (sizes[m], self.width_out), dtype)
                    t0 = time.perf_counter()
                    group.recv(dY, source=self.s + 1, tag=2 * m + 1)
                    stats["wait_s"] += time.perf_counter() - t0
                dX = rep.backward(dY)
                ops.accumulate(self._acc, self.stage.flat.grad)               # Σ_m over micro-batches
                in_flight -= 1
                if not self.first:
                    self._send_reqs.setdefault(k, []).append(group.isend(dX, dest=self.s - 1, tag=2 * m + 1))
                    stats["bytes_sent"] += dX.nbytes
        for k in list(self._send_reqs):
            self._wait_slot(k)
        kernels.assign(self.stage.flat.grad, self._acc)
        stats["steps"] += 1
        stats["compute_s"] += (time.perf_counter() - t_step) - (stats["wait_s"] - wait0)
        return self.group.allsum(total if self.last else 0.0)

    def _count_correct(self, out, y):
        """Rows of the micro-batch whose largest output is the label (on the host: argmax first on a device)."""
        if not kernels.is_device_array(out):
            return int(np.count_nonzero(np.argmax(out, axis=1) == y))
        return int(np.count_nonzero(kernels.to_host(ops.argmax_rows(out)) == kernels.to_host(y)))

    # ------------------------------------------------------------------ the whole model
    def gather(self, root=0):
        """Copy every stage's parameters and running statistics into ``model`` (the one given at construction)
        on ``root``: the whole model, same arrays under the same names as one process. Collective. Returns the
        model on root, None elsewhere."""
        g = self.group
        for s, (lo, hi) in enumerate(self.layer_bounds):
            for i in range(lo, hi):
                names = [n for n, _ in self.full.layers[i].named_parameters()] + list(self.full.layers[i]._state_names)
                for j, name in enumerate(names):
                    tag = 100000 + 1000 * i + j
                    if s == g.rank == root:
                        kernels.assign(_array(self.full.layers[i], name), _array(self.stage.layers[i - lo], name))
                    elif g.rank == s:
                        g.send(_array(self.stage.layers[i - lo], name), dest=root, tag=tag)
                    elif g.rank == root:
                        dst = _array(self.full.layers[i], name)
                        host = isinstance(dst, np.ndarray) and not dst.flags.c_contiguous
                        buf = np.empty_like(dst) if host else dst
                        g.recv(buf, source=s, tag=tag)
                        if buf is not dst:
                            dst[...] = buf
        return self.full if g.rank == root else None

    def __repr__(self):
        lo, hi = self.layer_bounds[self.s]
        return f"Pipeline(stage {self.s} of {self.P}: layers {lo}:{hi}, {self.schedule}, M={self.microbatches})"


def _array(layer, name):
    a = getattr(layer, name)
    return a.data if isinstance(a, Parameter) else a


class PipelineParallel(ShardedStrategy):
    """The pipeline strategy of ``tinynn.training.Trainer``: every rank trains its stage (``module``: build
    the optimizer over its parameters) and ``Pipeline.step`` replaces the forward/backward of each batch (every
    rank gathers the same global batch; the first stage reads X, the last y). The loss is the batch's, summed
    from the last stage onto every rank; the running accuracy is counted on the last stage. ``gather`` copies
    the stages into the whole model on rank 0; every rank writes its own checkpoint (its stage, optimizer state
    and dropout streams): resumed under the same number of ranks, bitwise."""

    name, devices = "pipeline", ("cpu", "cuda")

    def __init__(self, model, group=None, *, microbatches=4, schedule="gpipe", batch_size=None):
        self.pipe = Pipeline(model, group, microbatches=microbatches, schedule=schedule, batch_size=batch_size)
        self.group, self.model, self.module = self.pipe.group, model, self.pipe.stage

    rank = property(lambda self: self.group.rank)
    size = property(lambda self: self.group.size)

    def batches(self, trainer, X, T, sample_weight=None, accuracy=False):
        if sample_weight is not None:
            raise NotImplementedError("PipelineParallel: sample weights are not supported")
        self.pipe.train()
        return super().batches(trainer, X, T, sample_weight, accuracy)

    def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
        return self.pipe.step(Xb, Tb)

    def allsum(self, value):
        return self.group.allsum(value)

    def count_correct(self, trainer, batch):
        return self.pipe.correct if self.pipe.last else 0

    def gather(self, trainer):
        return self.pipe.gather()

    def describe(self):
        return {"parallel": self.name, "ranks": self.size, "stages": self.pipe.layer_bounds,
                "schedule": self.pipe.schedule, "microbatches": self.pipe.microbatches}

    def finish(self):
        return {"stages": self.group.allgather_object(dict(self.pipe.stats, stage=self.rank,
                                                           layers=self.pipe.layer_bounds[self.rank]))}
