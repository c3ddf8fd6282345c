"""The one training loop of tinynn: ``Trainer``.

MLPClassifier / MLPRegressor, scripts/train_mnist.py and tinynn.parallel all train through it. It owns

* the mini-batches: a shuffled order per epoch drawn from its own generator, gathered into reused buffers;
* the step: forward, loss, backward (with an optional per-layer hook), an optional gradient reduction across
  processes (``strategy``), an optional penalty (the estimators' L2 term), the optimizer and schedule steps;
* the divergence guard: a snapshot of the parameters at the start of each epoch, restored (and
  ``DivergenceError`` raised) when the loss becomes NaN/inf or a million-fold, or the weights non-finite;
* on a GPU, the data path (``tinynn._feed``): batches gathered into pinned buffers and uploaded on a second
  stream while the previous step computes, the losses kept on the device and read back every ``loss_every``
  steps;
* progress (a tqdm-like bar), the epoch count and the history of per-epoch records;
* chunked prediction and evaluation in eval mode, on any device;
* its state for checkpoints (``state()``/``load_state()``, one format with ``tinynn.io.pack_state``).

Policy stays with the caller: which model, loss and optimizer; when to stop; what to record beyond the
training loss.
"""
from __future__ import annotations

import math
import zlib

import numpy as np

from . import kernels
from .kernels import ops

from . import _feed
from . import init as _init
from . import io, optim, schedules
from .errors import DivergenceError, DivergenceGuard
from .layers import ACTIVATIONS, BatchNorm1d, Dropout, Linear
from .losses import Loss, SoftmaxCrossEntropy
from .model import Sequential
from .sparse import is_scipy_sparse

PREDICT_CHUNK = 4096                      # rows per forward pass in prediction and evaluation


def stream(seed, *key) -> np.random.Generator:
    """An independent generator for one random consumer, e.g. ``stream(seed, "init", 2)``.

    Streams with different keys are independent (SeedSequence spawn keys), so the shuffle order never
    shares a stream with the initialisation of a layer or a dropout mask."""
    spawn_key = tuple(k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in key)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=spawn_key))


def build_mlp(sizes, activation="relu", dropout=0.0, batch_norm=False, init="kaiming_uniform", dtype=np.float32,
              seed=0, input_dropout=0.0):
    """Linear → [BatchNorm1d] → activation → [Dropout] per hidden layer, then a Linear output layer.

    ``sizes`` = [d_in, h_1, …, h_k, d_out]. Layer i is initialised from ``stream(seed, "init", i)`` and each
    Dropout draws its masks from ``stream(seed, "dropout", i)``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
    _init.get(init)                                                      # unknown names fail here, listed
    layers = []
    if input_dropout:
        layers.append(Dropout(input_dropout, rng=stream(seed, "dropout", "input")))
    for i in range(len(sizes) - 1):
        layers.append(Linear(sizes[i], sizes[i + 1], dtype=dtype, init=init, rng=stream(seed, "init", i)))
        if i == len(sizes) - 2:
            break
        if batch_norm:
            layers.append(BatchNorm1d(sizes[i + 1], dtype=dtype))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(Dropout(dropout, rng=stream(seed, "dropout", i)))
    return Sequential(*layers)


class L2Penalty:
    r"""The estimators' weight penalty (α/2) ‖W‖² / n over every Linear weight (not the biases).

    Sequential keeps every Linear weight at the front of its flat buffer, so W = flat.data[:n_first] and one
    fused pass adds ∂/∂W = α W / n to the gradient and returns ‖W‖²."""

    def __init__(self, alpha):
        self.alpha = float(alpha)

    def __call__(self, model, n, grad=True):
        if not self.alpha:
            return 0.0
        flat = model.flat
        W = flat.data[:flat.n_first]
        if not grad:
            return 0.5 * self.alpha * ops.sumsq(W) / n
        return 0.5 * self.alpha * ops.add_l2(W, flat.grad[:flat.n_first], self.alpha / n) / n

    def defer(self, model, n, log):
        """As ``__call__`` on the GPU data path: the gradient term is added the same way, ‖W‖² stays on the
        device and ``log`` (tinynn._feed.LossLog) adds the penalty to the step's loss when it reads it back."""
        if not self.alpha:
            return
        flat, alpha = model.flat, self.alpha
        log.add_l2(flat.data[:flat.n_first], flat.grad[:flat.n_first], alpha / n,
                   lambda sumsq: 0.5 * alpha * sumsq / n)


class LocalStrategy:
    """One process computes the whole batch (the default). ``tinynn.parallel`` provides the others."""

    is_root = True
    parallel = False                                    # True: gradients are reduced across processes
    grad_ready = None                                   # per-layer backward hook (data parallel: bucketing)

    def shard(self, idx, sample_weight=None):
        return idx

    def reduce_gradients(self, model, n_local, n_global):
        pass

    def allsum(self, value):
        return value


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
        weights, snapshots, ...), called after each optimizer step / each completed epoch, in order
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
        self.loss_every = _feed.DEFAULT_LOSS_EVERY if loss_every is None else int(loss_every)
        self.feed = feed                                # True/False, or a feed object (tests)
        self._feed_obj = None if isinstance(feed, bool) else feed
        self._log = None                                # the epoch's LossLog on the GPU data path

    # ------------------------------------------------------------------ read-only views
    @property
    def epoch(self):
        """Completed epochs."""
        return self._epoch

    @property
    def history(self):
        """One dict per completed epoch: what ``train_epoch`` measured plus what ``record`` added."""
        return [dict(h) for h in self._history]

    def curve(self, key):
        """The per-epoch values of ``key`` in the history (None where an epoch did not record it)."""
        return [h.get(key) for h in self._history]

    def record(self, **values):
        """Add measurements (validation loss, accuracy, ...) to the last completed epoch's record."""
        if not self._history:
            raise RuntimeError("Trainer.record: no epoch completed yet")
        self._history[-1].update(values)

    # ------------------------------------------------------------------ the step
    def on_device(self, a):
        """A host batch on the model's device (itself on the CPU; sparse batches go as they are: the first
        Linear places them)."""
        return a if self.device == "cpu" or is_scipy_sparse(a) else kernels.to_device(np.ascontiguousarray(a), self.device)

    def loss_and_grad(self, Xb, Tb, sample_weight=None, n_global=None, weight_sum=None):
        """Forward, loss, backward (+ reduction across processes, + penalty): the batch's objective, with its
        gradient in ``model.flat.grad``. ``n_global``: rows of the whole batch when this process holds a shard."""
        model, loss, strategy = self.model, self.loss, self.strategy
        n_local = Xb.shape[0]
        n_global = n_local if n_global is None else n_global
        if n_local:
            if model.accumulates_grad:
                model.zero_grad()
            value = loss(model.forward(Xb), Tb, sample_weight)            # None: left in self._log (GPU)
            model.backward(loss.backward(), hook=strategy.grad_ready)      # overwrites every gradient
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

    def train_epoch(self, X, T, sample_weight=None, progress=None, accuracy=False):
        """One pass over (X, T); returns a dict with the mean training loss ("train_loss") and, when
        ``accuracy`` (CPU, integer labels), the running accuracy of the training forward passes
        ("train_accuracy"). Appends that dict to the history.

        On a device with a batch feed (CUDA; ``feed=True``) the epoch runs on the GPU data path
        (``_train_epoch_fed``); the result is the same to float rounding."""
        n = X.shape[0]
        if n == 0:
            raise ValueError("Trainer.train_epoch: no training samples")
        bs = min(self.batch_size, n)
        self.snapshot()
        self.model.train()
        sparse = is_scipy_sparse(X)
        if self.device != "cpu" and not sparse:
            feed = self._batch_feed()
            if feed is not None:
                total, seen = self._train_epoch_fed(feed, X, T, sample_weight, progress, bs)
                return self._end_epoch(n, total, seen)
        xbuf = None if sparse else np.empty((bs,) + X.shape[1:], X.dtype)
        tbuf = np.empty((bs,) + T.shape[1:], T.dtype)
        count_correct = accuracy and self.device == "cpu" and T.ndim == 1 and T.dtype.kind in "iu"
        pred = np.empty(bs, np.int64) if count_correct else None
        total, seen, correct = 0.0, 0, 0
        for step, idx in enumerate(self.batches(n)):
            local = self.strategy.shard(idx, sample_weight)
            if len(local) == bs and not sparse:          # gather into reused buffers (mode="clip": unbuffered)
                Xb = np.take(X, local, axis=0, out=xbuf, mode="clip")
                Tb = np.take(T, local, axis=0, out=tbuf, mode="clip")
            else:                                          # a short last batch, or CSR rows (the first Linear
                Xb, Tb = X[local], T[local]                # takes those as they are)
            if self.augment is not None:
                Xb = self.augment(Xb, self.aug_rng)
            swb, wsum = self._batch_weights(sample_weight, idx, local)
            if wsum is not None and wsum <= 0:
                continue                                   # a batch of zero weight teaches nothing
            value = self.step(self.on_device(Xb), self.on_device(Tb), swb, n_global=len(idx), weight_sum=wsum,
                              where=f"at epoch {self._epoch + 1}, step {step + 1}")
            if count_correct and len(local):
                correct += int(np.count_nonzero(ops.argmax_rows(self.loss.P, out=pred[:len(local)]) == Tb))
            total += value * len(idx)
            seen += len(idx)
            if progress is not None:
                progress.update(len(idx))
                if step % 20 == 0:
                    progress.set_postfix(loss=f"{value:.4f}", refresh=False)
        accuracy = (self.strategy.allsum(correct) / max(seen, 1) if seen else None) if count_correct else False
        return self._end_epoch(n, total, seen, accuracy)

    @staticmethod
    def _batch_weights(sample_weight, idx, local):
        """(this process's row weights, the whole batch's weight sum), or (None, None) without weights."""
        if sample_weight is None:
            return None, None
        return sample_weight[local], float(np.sum(sample_weight[idx]))

    def _end_epoch(self, n, total, seen, accuracy=False):
        """The end-of-epoch check of the weights, the counters, the schedule, the history record and hooks."""
        if not math.isfinite(ops.sumsq(self.model.flat.data)):               # weights blew up, loss not yet
            self.rollback()
            raise DivergenceError(f"the weights became non-finite during epoch {self._epoch + 1}; the parameters "
                                  "of the last completed epoch were kept. Try a lower learning rate.")
        self._epoch += 1
        self.samples_seen += n
        if self.schedule is not None:
            self.schedule.epoch_end(self.samples_seen)
        rec = {"train_loss": total / max(seen, 1)}
        if accuracy is not False:
            rec["train_accuracy"] = accuracy
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

    def _train_epoch_fed(self, feed, X, T, sample_weight, progress, bs):
        """The epoch's steps on the GPU data path (schedule and ordering: ``tinynn._feed``). Each batch is
        gathered into a pinned buffer and uploaded on the feed's copy stream while the previous step computes;
        the losses stay in a device log read every ``loss_every`` steps (every step with a parallel strategy,
        whose loss is all-reduced), where the divergence guard checks them in step order. Returns (Σ loss·rows,
        rows) for ``_end_epoch``, summed in the same order as the synchronous path."""
        n = X.shape[0]
        feed.reserve((((bs,) + X.shape[1:], X.dtype), ((bs,) + T.shape[1:], T.dtype)))
        log = None if self.strategy.parallel else _feed.LossLog(feed, self.loss_every, bs, self.model.flat.data.dtype)
        sums = [0.0, 0]                                  # Σ loss·rows, rows
        epoch = self._epoch + 1

        def items():                                     # the host work of a batch before its gather
            for step, idx in enumerate(self.batches(n)):
                local = self.strategy.shard(idx, sample_weight)
                swb, wsum = self._batch_weights(sample_weight, idx, local)
                if wsum is not None and wsum <= 0:       # a batch of zero weight teaches nothing; its
                    if self.augment is not None:         # augmentation draws as the synchronous path does
                        self.augment(X[local], self.aug_rng)
                    continue
                yield step, idx, local, swb, wsum

        def fill(item, buffers):                         # gather into the slot's pinned buffers
            local = item[2]
            m = len(local)
            xb, tb = (b if m == b.shape[0] else b[:m] for b in buffers)
            np.take(X, local, axis=0, out=xb, mode="clip")
            np.take(T, local, axis=0, out=tb, mode="clip")
            if self.augment is not None:
                xa = self.augment(xb, self.aug_rng)
                if xa is not xb:
                    np.copyto(xb, xa)
            return m

        def read(now):                                   # the pending losses, checked and summed in step order
            late = (f" (read back at step {now + 1}" if now is not None else " (read back at the end of the epoch") \
                + f": the losses are read every {log.every} steps on the device)"
            last = None
            for value, (step, rows) in log.read():
                self._check(value, f"at epoch {epoch}, step {step + 1}", late)
                sums[0] += value * rows
                sums[1] += rows
                last = value
            if progress is not None and last is not None:
                progress.set_postfix(loss=f"{last:.4f}", refresh=False)

        self._log = log
        if log is not None and isinstance(self.loss, Loss):
            self.loss._deferred = log
        try:
            for (step, idx, local, swb, wsum), (Xd, Td) in _feed.feed_batches(feed, items(), fill):
                value = self.step(Xd, Td, swb, n_global=len(idx), weight_sum=wsum,
                                  where=f"at epoch {epoch}, step {step + 1}")
                if progress is not None:
                    progress.update(len(idx))
                if log is None:                          # a parallel strategy: the value is on the host
                    sums[0] += value * len(idx)
                    sums[1] += len(idx)
                    if progress is not None and step % 20 == 0:
                        progress.set_postfix(loss=f"{value:.4f}", refresh=False)
                    continue
                log.end_step((step, len(idx)))
                if log.due():
                    read(step)
            if log is not None:
                read(None)
        except BaseException:
            feed.drain()                                 # no copy from a pinned buffer left in flight
            raise
        finally:
            self._log = None
            if isinstance(self.loss, Loss):
                self.loss._deferred = None
        return sums

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
    def predict_raw(self, X, chunk=PREDICT_CHUNK):
        """The network's output (logits) for X on the host, in eval mode, ``chunk`` rows at a time."""
        return predict_raw(self.model, X, chunk)

    def evaluate(self, X, y, chunk=PREDICT_CHUNK):
        """(mean loss, accuracy) of the model on (X, y) in eval mode (accuracy for integer labels only)."""
        return evaluate(self.model, X, y, chunk, loss=type(self.loss)())

    # ------------------------------------------------------------------ checkpoints
    def state(self):
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

    def save_checkpoint(self, path, config):
        arrays, meta = self.state()
        meta["config"] = config
        io.save_npz(path, arrays, meta, kind="checkpoint")


def predict_raw(model, X, chunk=PREDICT_CHUNK):
    """Model output for X (host array) on the host, in eval mode, ``chunk`` rows at a time."""
    was = model.training
    model.eval()
    try:
        out = None
        for s in range(0, X.shape[0], chunk):
            xb = X[s:s + chunk]
            if model.device != "cpu" and not is_scipy_sparse(xb):
                xb = kernels.to_device(np.ascontiguousarray(xb), model.device)
            Z = kernels.to_host(model.forward(xb))
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


def save_model(path, model, spec):
    """model.npz: the parameters and running statistics as arrays, the architecture ``spec`` as JSON."""
    arrays, meta = io.pack_state(model)
    meta["spec"] = spec
    io.save_npz(path, arrays, meta, kind="sequential")


def load_model(path):
    """A working Sequential back from ``save_model``'s file (read with allow_pickle=False).

    The architecture ``spec`` is checked (sizes, activation from tinynn.ACTIVATIONS, dropout, batch_norm,
    dtype) and every array against it (names, dtype, shapes, finite values) before the model is built; any
    mismatch raises ``tinynn.errors.FileFormatError`` (a ValueError) naming the file and the entry."""
    arrays, meta = io.load_npz(path, kind="sequential")
    path = meta.source
    spec = io.MetaReader(path, meta).sub("spec")
    sizes = spec.list("sizes")
    if len(sizes) < 2 or not all(io._is_int(v) and v >= 1 for v in sizes):
        spec.fail(f"{spec.name('sizes')} must list at least 2 positive integers (input, ..., output), got {sizes!r}")
    activation = spec.str("activation", ACTIVATIONS, table=" (tinynn.ACTIVATIONS)")
    dropout = spec.number("dropout", lo=0, hi=1, hi_open=True)
    batch_norm = spec.bool("batch_norm")
    dtype = np.dtype(spec.str("dtype", io.FLOAT_DTYPES))
    input_dropout = spec.number("input_dropout", lo=0, hi=1, hi_open=True, default=0.0)
    io.check_model_arrays(path, arrays, io.mlp_state_layout(sizes, batch_norm, dropout, input_dropout), dtype)
    extra = sorted(k for k in arrays if not k.startswith("model/"))
    if extra:
        raise io.FileFormatError(path, f"unexpected array(s) {extra} in a model file")
    model = build_mlp(sizes, activation, dropout, batch_norm, dtype=dtype, input_dropout=input_dropout)
    io.unpack_state(arrays, meta, model)
    return model


def steps_per_epoch(n, batch_size):
    return -(-n // batch_size)


__all__ = ["Trainer", "L2Penalty", "LocalStrategy", "build_mlp", "evaluate", "predict_raw", "make_optimizer",
           "save_model", "load_model", "stream", "schedules"]
