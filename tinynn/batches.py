"""Batch sources: what ``Trainer.train_epoch``'s one loop iterates over.

A source yields ``Batch`` objects (this process's rows of one global mini-batch, ready on the model's device)
and, after each step, ``settle(batch, value)`` gives back the (loss, rows) pairs that are known by then, in
step order: at once on the host; every ``loss_every`` steps on the GPU data path, whose losses stay on the
device (``tinynn._feed.FedBatches``); ``finish()`` gives the rest. ``correct`` counts the right answers of the
training forward passes when ``counting``.

* ``HostBatches``: the shuffled index batches of ``Trainer.batches``, this process's share of each
  (``strategy.shard``) gathered into reused buffers, augmented, with the batch's row weights;
* ``tinynn._feed.FedBatches``: the same batches through pinned buffers and a copy stream (CUDA);
* ``tinynn.parallel.async_sgd.ServerBatches``: the gradients that asynchronous workers push.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .sparse import is_scipy_sparse


class Batch:
    """One step's batch: ``rows`` of the global batch ``idx`` (step ``step`` of the epoch), this process's
    ``local`` indices, ``X``/``T`` on the model's device, row ``weights`` and the global ``weight_sum`` (None
    without sample weights). ``value``/``correct``: a loss and count computed elsewhere (async workers)."""

    __slots__ = ("step", "idx", "local", "rows", "X", "T", "weights", "weight_sum", "value", "correct", "pred")

    def __init__(self, step, idx, local, X, T, weights=None, weight_sum=None, rows=None, pred=None):
        self.step, self.idx, self.local, self.X, self.T = step, idx, local, X, T
        self.weights, self.weight_sum = weights, weight_sum
        self.rows = len(idx) if rows is None else int(rows)
        self.value = self.correct = None
        self.pred = pred


def batch_weights(sample_weight, idx, local):
    """(this process's row weights, the whole batch's weight sum), or (None, None) without weights."""
    if sample_weight is None:
        return None, None
    return sample_weight[local], float(np.sum(sample_weight[idx]))


class BatchSource:
    """The protocol of a batch source (module docstring): iterate for ``Batch`` objects; ``settle`` after each
    step, ``finish`` after the last, ``abort`` when the epoch stops early, ``close`` at the end. The defaults
    are a host source's: a step's loss is known at once, nothing is pending, nothing to release."""

    counting = False
    correct = 0
    deferred = False                                  # True: losses come back later than their step (GPU log)
    trainer: Any                                      # the sources that plan host batches (``_plan``) set these
    X: Any
    sample_weight: Any

    def _plan(self):
        """(step, idx, local, row weights, weight sum, skip) per batch of the epoch: this process's share of the
        shuffled batch and its weights; ``skip``: a batch of zero weight, which teaches nothing (its
        augmentation still draws, so the random streams do not depend on the weights)."""
        t, sw = self.trainer, self.sample_weight
        for step, idx in enumerate(t.batches(self.X.shape[0])):
            local = t.strategy.shard(idx, sw)
            swb, wsum = batch_weights(sw, idx, local)
            yield step, idx, local, swb, wsum, wsum is not None and wsum <= 0

    def settle(self, batch, value):
        return ((value, batch.rows),)

    def finish(self):
        return ()

    def abort(self):
        pass

    def close(self):
        pass


class HostBatches(BatchSource):
    """The epoch's batches gathered on the host (then ``trainer.on_device``)."""

    def __init__(self, trainer, X, T, sample_weight=None, accuracy=False):
        self.trainer, self.X, self.T, self.sample_weight = trainer, X, T, sample_weight
        n = X.shape[0]
        self.bs = bs = min(trainer.batch_size, n)
        self.sparse = is_scipy_sparse(X)
        self.xbuf = None if self.sparse else np.empty((bs,) + X.shape[1:], X.dtype)
        self.tbuf = np.empty((bs,) + T.shape[1:], T.dtype)
        self.counting = bool(accuracy and trainer.device == "cpu" and T.ndim == 1 and T.dtype.kind in "iu")
        self.pred = np.empty(bs, np.int64) if self.counting else None
        self.correct = 0

    def __iter__(self):
        t, X, T = self.trainer, self.X, self.T
        for step, idx, local, swb, wsum, skip in self._plan():
            if len(local) == self.bs and not self.sparse:  # gather into reused buffers (mode="clip": unbuffered)
                Xb = np.take(X, local, axis=0, out=self.xbuf, mode="clip")
                Tb = np.take(T, local, axis=0, out=self.tbuf, mode="clip")
            else:                                          # a short last batch, or CSR rows (the first Linear
                Xb, Tb = X[local], T[local]                # takes those as they are)
            if t.augment is not None:
                Xb = t.augment(Xb, t.aug_rng)
            if not skip:
                yield Batch(step, idx, local, t.on_device(Xb), t.on_device(Tb), swb, wsum, pred=self.pred)

    def settle(self, batch, value):
        if self.counting and len(batch.local):
            self.correct += self.trainer.strategy.count_correct(self.trainer, batch)
        return super().settle(batch, value)


__all__ = ["Batch", "BatchSource", "HostBatches", "batch_weights"]
