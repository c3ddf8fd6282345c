"""How a training run is spread over processes: the ``Strategy`` protocol of ``tinynn.training.Trainer``.

A strategy is one object the Trainer asks, at a few points of its one loop, what this process does:

``module``                 the Sequential this process trains (the whole model; a tensor-parallel shard; a
                           pipeline stage): build the optimizer over ``module.parameters()``
``batches(trainer, X, T, sample_weight, accuracy)``   the epoch's batch source (``tinynn.batches``)
``shard(idx, sample_weight)``   this process's rows of a global batch
``forward_backward(trainer, Xb, Tb, sample_weight)``   the loss of this process's rows, gradients in
                           ``module.flat.grad`` (default: forward, loss, backward with the ``grad_ready`` hook)
``parallel`` + ``reduce_gradients`` / ``allsum``   the reduction of the gradient and loss across processes
``count_correct(trainer, batch)``   right answers of the batch's training forward pass (running accuracy)
``gather(trainer)``        the whole model on the root process (collective), for evaluation and model files
``save_checkpoint`` / ``load_checkpoint``   where the state of a run goes (one file, or one per rank)
``trains_here``, ``work(X, T)``   False on processes that only serve the ones that train (async workers)
``finish()``               end of the run (collective): the strategy's measurements for metrics.json

``Strategy`` itself is one process computing everything (``LocalStrategy``). ``STRATEGIES`` is the one table
of names (``scripts/train_mnist.py --parallel`` reads it); ``make(name, model, **options)`` builds one.
"""
from __future__ import annotations

import glob
import importlib
import os
from typing import Any, Callable, Optional

import numpy as np

from . import io
from .kernels import ops


class Strategy:
    """One process computes the whole batch (the default). ``tinynn.parallel`` provides the others."""

    name = "none"
    parallel = False                                    # True: gradients are reduced across processes
    grad_ready: Optional[Callable[..., Any]] = None      # per-layer backward hook (data parallel: bucketing)
    devices: tuple[str, ...] = ("cpu", "cuda")                          # where the module may live
    trains_here = True                                  # False: this process serves the ones that train
    rank, size = 0, 1

    def __init__(self, model=None):
        self.model = model                              # the whole model (what model files hold)
        self.module = model                             # what this process trains

    @property
    def is_root(self):
        return self.rank == 0

    # ------------------------------------------------------------------ the loop
    def batches(self, trainer, X, T, sample_weight=None, accuracy=False):
        """The epoch's batch source: host batches, or the GPU data path on a device with a batch feed."""
        from .batches import HostBatches

        feed = trainer._batch_feed() if trainer.device != "cpu" and not _sparse(X) else None
        if feed is not None:
            from ._feed import FedBatches

            return FedBatches(trainer, feed, X, T, sample_weight)
        return HostBatches(trainer, X, T, sample_weight, accuracy)

    def shard(self, idx, sample_weight=None):
        return idx

    def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
        """The loss of this process's rows (None when the GPU data path keeps it on the device), with the
        gradient written into ``module.flat.grad``."""
        value = trainer.loss(trainer.model.forward(Xb), Tb, sample_weight)
        trainer.model.backward(trainer.loss.backward(), hook=self.grad_ready)      # overwrites every gradient
        return value

    def reduce_gradients(self, model, n_local, n_global):
        pass

    def allsum(self, value):
        return value

    def count_correct(self, trainer, batch):
        """Rows of ``batch`` whose training forward pass put the largest output on the label."""
        m = len(batch.local)
        return int(np.count_nonzero(ops.argmax_rows(trainer.loss.P, out=batch.pred[:m]) == batch.T))

    def on_load(self):
        """After a checkpoint was loaded into the Trainer."""

    # ------------------------------------------------------------------ the whole model, files
    def gather(self, trainer):
        """The whole model on the root process (collective; None elsewhere): here, the trained model itself."""
        return trainer.model

    def save_checkpoint(self, trainer, path, config):
        """Rank 0 writes the Trainer's state (replicated strategies: one file, resumable under any count)."""
        if self.is_root:
            trainer.save_checkpoint(path, config)

    def load_checkpoint(self, trainer, path, arrays=None, meta=None):
        """Every training process loads the checkpoint ``path`` (``arrays``, ``meta``: its contents, when the
        caller read it already)."""
        if arrays is None or meta is None:
            arrays, meta = io.load_npz(path, kind="checkpoint")
        trainer.load_state(arrays, meta)
        return meta

    def describe(self):
        """What metrics.json and checkpoints record about the strategy."""
        return {"parallel": self.name, "ranks": self.size}

    def work(self, trainer, X, T):
        """The loop of a process that does not train (``trains_here`` False); nothing here."""

    def finish(self):
        """The end of the run (collective): the strategy's measurements for metrics.json."""
        return {}


LocalStrategy = Strategy


class ShardedStrategy(Strategy):
    """A strategy whose ranks hold different parts of the state. ``checkpoint.npz`` (rank 0) holds the whole
    model, the configuration, epoch and history (a checkpoint like any other: its arrays are the model the
    configuration describes); every rank r of P writes its own part of the training state (its shard or stage,
    optimizer state, dropout and shuffle streams) beside it first, ``checkpoint.rank<r>of<P>.epoch<N>.npz``. A
    resume loads each rank's part: under the same strategy and number of ranks, bitwise.

    The whole file is the commit point: the parts of epoch N are all written (a barrier) before rank 0 replaces
    ``checkpoint.npz``, and the parts of epoch N-1 are removed only after it did (a second barrier). A run
    stopped anywhere (a signal, a failed write, a killed rank) leaves ``checkpoint.npz`` at some epoch with every
    rank's part of that same epoch beside it: one consistent checkpoint."""

    group: Any                                          # the process group (tinynn.parallel), set by a subclass

    def part_path(self, path, epoch):
        root, ext = os.path.splitext(os.fspath(path))
        return f"{root}.rank{self.rank}of{self.size}.epoch{int(epoch)}{ext or '.npz'}"

    def save_checkpoint(self, trainer, path, config):
        part = self.part_path(path, trainer.epoch)
        trainer.save_checkpoint(part, config)
        whole = self.gather(trainer)                   # collective; every part is written before the whole
        if self.is_root:
            arrays, meta = io.pack_state(whole)
            meta.update(epoch=trainer.epoch, history=trainer.history, samples_seen=trainer.samples_seen,
                        config=config)
            io.save_npz(path, arrays, meta, kind="checkpoint")     # the commit point
        self.group.barrier()
        root, ext = os.path.splitext(os.fspath(path))
        for old in glob.glob(f"{glob.escape(root)}.rank{self.rank}of{self.size}.epoch*{ext or '.npz'}"):
            if old != part:
                try:
                    os.remove(old)                     # the parts of earlier epochs, now superseded
                except OSError:
                    pass

    def load_checkpoint(self, trainer, path, arrays=None, meta=None):
        from .parallel.comm import check_same

        if meta is None:
            _, meta = io.load_npz(path, kind="checkpoint")
        part_path = self.part_path(path, int(meta["epoch"]))
        saved = (meta.get("config") or {}).get("parallel")
        if saved != self.name or not os.path.exists(part_path):
            raise ValueError(f"{path}: not a checkpoint of --parallel {self.name} on {self.size} ranks (no "
                             f"{os.path.basename(part_path)}; it was written by --parallel {saved}): {self.name} "
                             "resumes only from its own checkpoints, under the same number of ranks")
        arrays, part = io.load_npz(part_path, kind="checkpoint")
        check_same(self.group, "checkpoint epoch", int(part["epoch"]))
        if int(part["epoch"]) != int(meta["epoch"]):
            raise ValueError(f"{part_path}: epoch {part['epoch']}, but {path} is at epoch {meta['epoch']}")
        trainer.load_state(arrays, part)
        return part


def _sparse(X):
    from .sparse import is_scipy_sparse

    return is_scipy_sparse(X)


# name -> "module:class" (imported on use: the MPI strategies need mpi4py only when chosen)
STRATEGIES = {
    "none": "tinynn.strategy:Strategy",
    "data": "tinynn.parallel.data:DataParallel",
    "async": "tinynn.parallel.async_sgd:AsyncSGD",
    "pipeline": "tinynn.parallel.pipeline:PipelineParallel",
    "tensor": "tinynn.parallel.tensor:TensorParallel",
}


def strategy_class(name: str) -> type[Strategy]:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {sorted(STRATEGIES)}")
    module, cls = STRATEGIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make(name: str, model: Any, **options: Any) -> Strategy:
    """The strategy ``name`` of ``STRATEGIES`` for ``model`` (the whole model, the same on every process);
    ``options`` are its keyword arguments (batch_size, microbatches, ...); those a strategy does not take are
    ignored, so one set of options serves every name."""
    import inspect

    cls = strategy_class(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        options = {k: v for k, v in options.items() if k in params}
    return cls(model, **options)


__all__ = ["Strategy", "LocalStrategy", "ShardedStrategy", "STRATEGIES", "strategy_class", "make"]
