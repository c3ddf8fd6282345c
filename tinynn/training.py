"""The one training loop of tinynn: ``Trainer``.

MLPClassifier / MLPRegressor, scripts/train_mnist.py and tinynn.parallel all train through it. It owns

* the mini-batches: a shuffled order per epoch drawn from its own generator, gathered into reused buffers;
* the step: forward, loss, backward (with an optional per-layer hook), an optional gradient reduction across
  processes (``strategy``), an optional penalty (the estimators' L2 term), the optimizer and schedule steps;
* the divergence guard: a snapshot of the parameters at the start of each epoch, restored (and
  ``DivergenceError`` raised) when the loss becomes NaN/inf or a million-fold, or the weights non-finite;
* on a GPU, the data path (``tinynn._feed``): batches uploaded from pinned buffers on a second stream while the
  previous step computes, the losses kept on the device and read back every ``loss_every`` steps;
* progress (a tqdm-like bar), the epoch count and the history of per-epoch records;
* chunked prediction and evaluation in eval mode, on any device;
* its state for checkpoints (``state()``/``load_state()``, one format with ``tinynn.io.pack_state``).

Policy stays with the caller: which model, loss and optimizer; when to stop; what to record beyond the
training loss.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from . import kernels
from .kernels import ops
from . import _feed
from . import io, optim, schedules
from .errors import DivergenceError, DivergenceGuard
from .losses import L2Penalty, SoftmaxCrossEntropy  # noqa: F401  (L2Penalty re-exported)
from .model import Sequential
from .mlp import build_mlp, load_model, save_model  # noqa: F401  (re-exported)
from .sparse import is_scipy_sparse
from .streams import stream  # noqa: F401  (re-exported)
from .strategy import LocalStrategy
from ._typing import PathLike

PREDICT_CHUNK = 4096                      # rows per forward pass in prediction and evaluation


class Trainer:
    """Mini-batch training of ``model`` on ``loss`` with ``optimizer`` (and ``schedule``).

    Parameters
    ----------
    model : Sequential (with flat buffers)
    loss : a tinynn loss: ``loss(Z, T, sample_weight) -> float``, ``loss.backward() -> dZ``
    optimizer, schedule : tinynn.optim optimizer; a tinynn.schedules schedule or None
    batch_size : int
    rng : np.random.Generator or int, the shuffle stream (its own: see ``stream``)
    shuffle : bool, or a callable ``order -> new order`` applied to the previous epoch's order (which
        starts as arange(n)); True draws a fresh ``rng.permutation(n)`` per epoch
    penalty : callable(model, n, grad=True) -> float or None (e.g. ``L2Penalty``): added to each batch's loss
        after backward, its gradient added to the model's
    strategy : LocalStrategy or a tinynn.parallel strategy (data parallel)
    epoch, samples_seen : int, where a continued fit starts counting (messages, per-epoch schedules)
    augment : callable(Xb, rng) -> Xb or None: applied to each gathered training batch (host arrays, before the
        copy to the device); it draws from ``self.aug_rng`` (its own stream, saved in checkpoints)
    callbacks : objects with optional ``on_step_end(trainer)`` / ``on_epoch_end(trainer)`` (averaging of
        weights, snapshots, ...), called after each optimizer step / each completed epoch, in order, and
        ``on_record(trainer, values)``, called with what ``record`` added to the last epoch (the TensorBoard
        logs of ``tinynn.tensorboard``)
    loss_every : int or None, on a device (GPU): read the training losses back every ``loss_every`` steps
        (default ``tinynn._feed.DEFAULT_LOSS_EVERY`` = 20) instead of every step; they stay on the device in
        between, so a divergence is detected (and rolled back) up to ``loss_every`` - 1 steps after the step
        that produced it. No effect on the CPU, where the loss is a host value anyway, nor with a parallel
        strategy (its loss is all-reduced every step).
    feed : bool or a batch feed, on a device: True (default) uploads the batches through the backend's feed
        (pinned double buffers, a second stream; ``tinynn._feed``); False is the plain synchronous path (each
        batch copied from pageable memory, the loss read every step). No effect on the CPU.
    """

    def __init__(self, model, loss, optimizer, schedule=None, *, batch_size=128, rng=0, shuffle=True,
                 penalty=None, strategy=None, epoch=0, samples_seen=0, augment=None, callbacks=(),
                 aug_rng=None, loss_every=None, feed=True):
        if not isinstance(model, Sequential) or model.flat is None:
            raise TypeError("Trainer: expected a tinynn Sequential whose parameters share one dtype and device")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"Trainer: batch_size must be a positive integer, got {batch_size!r}")
        if loss_every is not None and (not isinstance(loss_every, (int, np.integer)) or isinstance(loss_every, bool)
                                       or loss_every < 1):
            raise ValueError(f"Trainer: loss_every must be a positive integer or None, got {loss_every!r}")
        if schedule is not None and not isinstance(schedule, schedules.Schedule):
            raise TypeError(f"Trainer: schedule must follow tinynn.schedules.Schedule (unit, step, epoch_end, "
                            f"state_dict), got {type(schedule).__name__}")
        self.model, self.loss, self.optimizer, self.schedule = model, loss, optimizer, schedule
        self.batch_size = int(batch_size)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.shuffle = shuffle if callable(shuffle) else bool(shuffle)
        self.penalty = penalty
        self._order = None
        self.strategy = strategy if strategy is not None else LocalStrategy()
        self.device = model.device
        self._epoch = int(epoch)                        # a caller continuing a fit starts from its count
        self._history = []
        self.samples_seen = int(samples_seen)
        self.guard = DivergenceGuard()
        self._snapshot = None
        self.augment = augment
        self.aug_rng = aug_rng if isinstance(aug_rng, np.random.Generator) else np.random.default_rng(aug_rng)
        self.callbacks = list(callbacks)
        self._step_hooks = [c.on_step_end for c in self.callbacks if hasattr(c, "on_step_end")]
        self._epoch_hooks = [c.on_epoch_end for c in self.callbacks if hasattr(c, "on_epoch_end")]
        self._record_hooks = [c.on_record for c in self.callbacks if hasattr(c, "on_record")]
        self.loss_every = _feed.DEFAULT_LOSS_EVERY if loss_every is None else int(loss_every)
        self.feed = feed                                # True/False, or a feed object (tests)
        self._feed_obj = None if isinstance(feed, bool) else feed
        self._log = None                                # the epoch's LossLog on the GPU data path

    # ------------------------------------------------------------------ read-only views
    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self._epoch

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict per completed epoch: what ``train_epoch`` measured plus what ``record`` added."""
        return [dict(h) for h in self._history]

    def curve(self, key: str) -> list[Any]:
        """The per-epoch values of ``key`` in the history (None where an epoch did not record it)."""
        return [h.get(key) for h in self._history]

    def record(self, **values: Any) -> None:
        """Add measurements (validation loss, accuracy, ...) to the last completed epoch's record."""
        if not self._history:
            raise RuntimeError("Trainer.record: no epoch completed yet")
        self._history[-1].update(values)
        for hook in self._record_hooks:
            hook(self, dict(values))

    # ------------------------------------------------------------------ the step
    def on_device(self, a):
        """A host batch on the model's device (itself on the CPU; sparse batches go as they are: the first
        Linear places them)."""
        return a if self.device == "cpu" or is_scipy_sparse(a) else kernels.to_device(np.ascontiguousarray(a), self.device)

    def loss_and_grad(self, Xb, Tb, sample_weight=None, n_global=None, weight_sum=None):
        """Forward, loss, backward (+ reduction across processes, + penalty): the batch's objective, with its
        gradient in ``model.flat.grad``. ``n_global``: rows of the whole batch when this process holds a shard."""
        model, strategy = self.model, self.strategy
        n_local = Xb.shape[0] if Xb is not None else (n_global or 0)
        n_global = n_local if n_global is None else n_global
        if n_local:
            if model.accumulates_grad:
                model.zero_grad()
            # rows weighing nothing here in a batch that weighs something: unweighted (a loss refuses all-zero
            # weights; the forward still runs for SyncBatchNorm), and the reduction weighs them by their share, 0
            sw = None if sample_weight is not None and strategy.parallel and not np.sum(sample_weight) > 0 \
                else sample_weight
            value = strategy.forward_backward(self, Xb, Tb, sw)             # None: left in self._log (GPU)
        else:                                                               # fewer rows than processes
            value = 0.0
            model.zero_grad()
        if strategy.parallel:
            # each process's loss is a (weighted) mean over its rows: weight it by its share of the batch
            w_local, w_global = (n_local, n_global) if sample_weight is None else \
                (float(np.sum(sample_weight)), weight_sum)
            strategy.reduce_gradients(model, w_local, w_global)
            value = strategy.allsum(value * w_local) / w_global
        log = self._log
        if log is not None and value is not None:                          # a loss that gave a host value
            log.add_value(value)
        if self.penalty is not None:
            n = n_global if sample_weight is None else weight_sum
            if log is not None:
                log.add_penalty(self.penalty, model, n)                    # ‖W‖² stays on the device
            else:
                value += self.penalty(model, n)
        return None if log is not None else value

    def step(self, Xb, Tb, sample_weight=None, n_global=None, weight_sum=None, where=""):
        """One optimizer step on a batch; returns the batch's loss (None on the GPU data path, where the loss
        log keeps it on the device until ``train_epoch`` reads it). Raises DivergenceError (parameters rolled
        back to the last snapshot) when the loss is NaN/inf or a million times the first batch's."""
        value = self.loss_and_grad(Xb, Tb, sample_weight, n_global, weight_sum)
        if value is not None:
            self._check(value, where)
        self.optimizer.step()
        if self.schedule is not None and self.schedule.unit == "step":
            self.schedule.step()
        for hook in self._step_hooks:
            hook(self)
        return value

    def _check(self, value, where, late=""):
        """The divergence guard on one step's loss: roll back and raise when it diverged."""
        if self.guard.diverged(value):
            self.rollback()
            raise DivergenceError(f"the training loss became {value} {where}{late}; the parameters of the last "
                                  "completed epoch were kept. Try a lower learning rate.", value)

    # ------------------------------------------------------------------ epochs
    def batches(self, n):
        """This epoch's mini-batches of indices into range(n) (the global batch; see ``strategy.shard``)."""
        if callable(self.shuffle):
            if self._order is None or len(self._order) != n:
                self._order = np.arange(n)
            order = self._order = self.shuffle(self._order)
        else:
            order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        return [order[s:s + self.batch_size] for s in range(0, n, self.batch_size)]

    def train_epoch(self, X: Any, T: Any, sample_weight: Optional[np.ndarray] = None, progress: Any = None,
                    accuracy: bool = False) -> dict[str, Any]:
        """One pass over (X, T); returns a dict with the mean training loss ("train_loss") and, when
        ``accuracy`` (CPU, integer labels), the running accuracy of the training forward passes
        ("train_accuracy"). Appends that dict to the history.

        The one epoch loop: the strategy's batch source (``tinynn.batches``; on a device with a batch feed the
        GPU data path, ``tinynn._feed.FedBatches``, whose result is the same to float rounding) gives the
        batches, ``step`` trains on each, the source settles the losses (at once, or read back from the device)."""
        n = X.shape[0]
        if n == 0:
            raise ValueError("Trainer.train_epoch: no training samples")
        self.snapshot()
        self.model.train()
        source = self.strategy.batches(self, X, T, sample_weight, accuracy)
        total, seen = 0.0, 0
        try:
            for batch in source:
                value = self.step(batch.X, batch.T, batch.weights, n_global=batch.rows, weight_sum=batch.weight_sum,
                                  where=f"at epoch {self._epoch + 1}, step {batch.step + 1}")
                settled = source.settle(batch, value)
                for v, rows in settled:
                    total += v * rows
                    seen += rows
                if progress is not None:
                    progress.update(batch.rows)
                    if settled and (source.deferred or batch.step % 20 == 0):
                        progress.set_postfix(loss=f"{settled[-1][0]:.4f}", refresh=False)
            for v, rows in source.finish():
                total += v * rows
                seen += rows
        except BaseException:
            source.abort()
            raise
        finally:
            source.close()
        measured = (self.strategy.allsum(source.correct) / max(seen, 1) if seen else None) if source.counting else False
        return self._end_epoch(n, total, seen, measured)

    def _end_epoch(self, n, total, seen, accuracy):
        """The end-of-epoch check of the weights, the counters, the schedule, the history record and hooks."""
        assert self.model.flat is not None                                   # checked in __init__
        if not math.isfinite(ops.sumsq(self.model.flat.data)):               # weights blew up, loss not yet
            self.rollback()
            raise DivergenceError(f"the weights became non-finite during epoch {self._epoch + 1}; the parameters "
                                  "of the last completed epoch were kept. Try a lower learning rate.")
        self._epoch += 1
        self.samples_seen += n
        rec = {"train_loss": total / max(seen, 1)}
        if accuracy is not False:
            rec["train_accuracy"] = accuracy
        if self.schedule is not None:
            self.schedule.epoch_end(self.samples_seen, dict(rec))
        self._history.append(rec)
        for hook in self._epoch_hooks:
            hook(self)
        return dict(rec)

    # ------------------------------------------------------------------ the GPU data path
    @property
    def batch_feed(self):
        """The device batch feed this Trainer uses (None on the CPU, with ``feed=False``, or before the first
        epoch); its counters (``syncs``, ``reads``, ``uploads``, ``pinned_allocs``) show the schedule."""
        return self._feed_obj if self.feed is not False else None

    def _batch_feed(self):
        """The device's batch feed, made on first use and kept: its pinned and device buffers are reused from
        epoch to epoch (allocated again only when the batch shape changes)."""
        if self.feed is False:
            return None
        if self._feed_obj is None:
            self._feed_obj = kernels.batch_feed(self.device)
            if self._feed_obj is None:                 # a device backend without a feed: the plain path
                self.feed = False
        return self._feed_obj

    # ------------------------------------------------------------------ rollback
    @staticmethod
    def capture(model, into=None):
        """A host copy of the model's parameters and running statistics (``restore`` puts it back); ``into``,
        an earlier capture of the same model, is overwritten instead of allocating a new parameter copy."""
        flat = model.flat.data
        params = into[0] if into is not None and into[0].shape == flat.shape else np.empty(flat.shape, flat.dtype)
        kernels.assign(params, flat)
        return params, [np.array(kernels.to_host(getattr(l, s))) for l in model.layers for s in l._state_names]

    def restore(self, captured):
        params, states = captured
        assert self.model.flat is not None
        kernels.assign(self.model.flat.data, params)
        it = iter(states)
        for l in self.model.layers:
            for s in l._state_names:
                kernels.assign(getattr(l, s), next(it))

    def snapshot(self):
        """Keep a copy of the parameters and running statistics (restored by ``rollback``); the copy's buffer
        is reused from epoch to epoch."""
        self._snapshot = self.capture(self.model, into=self._snapshot)

    def rollback(self):
        """Back to the last snapshot (the start of the current epoch)."""
        if self._snapshot is not None:
            self.restore(self._snapshot)

    # ------------------------------------------------------------------ prediction
    def predict_raw(self, X: Any, chunk: int = PREDICT_CHUNK) -> np.ndarray:
        """The network's output (logits) for X on the host, in eval mode, ``chunk`` rows at a time."""
        return predict_raw(self.model, X, chunk)

    def evaluate(self, X: Any, y: Any, chunk: int = PREDICT_CHUNK) -> tuple[float, Optional[float]]:
        """(mean loss, accuracy) of the model on (X, y) in eval mode (accuracy for integer labels only)."""
        return evaluate(self.model, X, y, chunk, loss=type(self.loss)())

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, meta) for a checkpoint: model, optimizer, schedule, generators, epoch and history."""
        arrays, meta = io.pack_state(self.model, self.optimizer, self.schedule,
                                     rngs={"shuffle": self.rng, "augment": self.aug_rng})
        for i, c in enumerate(self.callbacks):                             # averages, snapshots: their arrays
            if hasattr(c, "state"):
                c_arrays, c_meta = c.state()
                arrays.update({f"callback{i}/{k}": v for k, v in c_arrays.items()})
                meta[f"callback{i}"] = c_meta
        meta.update(epoch=self._epoch, history=self._history, samples_seen=self.samples_seen)
        return arrays, meta

    def load_state(self, arrays, meta):
        # callbacks' states (averages, snapshots) and unknown entries, against this trainer, before anything is set
        io.check_trainer_state(getattr(meta, "source", None) or "tinynn state", arrays, meta, self)
        io.unpack_state(arrays, meta, self.model, self.optimizer, self.schedule,
                        rngs={"shuffle": self.rng, "augment": self.aug_rng})
        for i, c in enumerate(self.callbacks):
            if hasattr(c, "load_state"):
                p = f"callback{i}/"
                c.load_state({k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}, meta[f"callback{i}"])
        self._epoch = int(meta["epoch"])
        self._history = [dict(h) for h in meta["history"]]
        self.samples_seen = int(meta.get("samples_seen", 0))
        if hasattr(self.strategy, "on_load"):                          # e.g. per-process dropout streams
            self.strategy.on_load()
        return self

    def save_checkpoint(self, path: PathLike, config: dict[str, Any]) -> None:
        """Write ``state()`` with the run's ``config`` to ``path``, atomically."""
        arrays, meta = self.state()
        meta["config"] = config
        io.save_npz(path, arrays, meta, kind="checkpoint")


def predict_raw(model, X, chunk=PREDICT_CHUNK, upto=None):
    """Model output for X (host array) on the host, in eval mode, ``chunk`` rows at a time; with ``upto``, the
    output of the plan's nodes before layer index ``upto`` (a hidden layer's activations: ``transform``)."""
    nodes = None if upto is None else [node for i, node in model.plan if i < upto]
    was = model.training
    model.eval()
    try:
        out = None
        for s in range(0, X.shape[0], chunk):
            xb = X[s:s + chunk]
            if model.device != "cpu" and not is_scipy_sparse(xb):
                xb = kernels.to_device(np.ascontiguousarray(xb), model.device)
            h = model.forward(xb) if nodes is None else xb
            for node in nodes or ():
                h = node.forward(h)
            Z = kernels.to_host(h)
            if out is None:
                out = np.empty((X.shape[0],) + Z.shape[1:], Z.dtype)
            out[s:s + chunk] = Z
    finally:
        model.train(was)
    return out


def evaluate(model, X, y, chunk=PREDICT_CHUNK, loss=None):
    """(mean loss, accuracy) of a classifier in eval mode, in chunks; softmax cross-entropy by default."""
    Z = predict_raw(model, X, chunk)
    loss = SoftmaxCrossEntropy() if loss is None else loss
    value = loss(Z, y)
    acc = float(np.mean(np.argmax(Z, axis=1) == y)) if np.asarray(y).ndim == 1 else None
    return value, acc


def make_optimizer(name, params, lr, weight_decay=0.0, **hyper):
    """The script's optimizer: ``optim.make`` with torch's defaults (SGD with momentum 0.9)."""
    hyper.setdefault("momentum", 0.9)
    return optim.make(name, params, lr=lr, weight_decay=weight_decay, **hyper)


def steps_per_epoch(n, batch_size):
    return -(-n // batch_size)


__all__ = ["Trainer", "L2Penalty", "LocalStrategy", "build_mlp", "evaluate", "predict_raw", "make_optimizer",
           "save_model", "load_model", "stream", "schedules"]
