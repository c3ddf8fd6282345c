r"""The GPU data path, host side: the schedule of ``Trainer.train_epoch`` on a device whose backend has a batch
feed (CUDA: ``kernels/cuda/feed.py`` issues the copies, waits and records; see its docstring for what each
event orders).

Step k of an epoch, with batch k in slot s = k mod 2 (``feed_batches``):

1. ``begin(s)``: the compute stream waits, on the device, for batch k's upload (the host does not block);
2. the Trainer queues step k's kernels (forward, loss, backward, optimizer) on the compute stream; the loss
   rows and the penalty's ‖W‖² go into the device loss log (``LossLog``), nothing is copied back;
3. every ``loss_every`` steps the Trainer reads the log: one synchronisation, after which all queued work is
   done (the divergence guard checks the values now: a divergence is seen at most ``loss_every`` - 1 steps
   after the step that produced it);
4. ``end(s)`` records that step k's kernels are queued up to here;
5. ``wait_free(1-s)``: the host waits until step k-1 is done (skipped after a read): its slot is then free on
   both sides, so batch k+1 is gathered into that slot's pinned buffers, while the device computes step k, and
   its upload is issued on the copy stream, where it overlaps step k's kernels.

So there is at most one host synchronisation per step (a read or the ``wait_free``), the host runs at most one
step ahead of the device, and no buffer is written while a copy or kernel may still read it.
"""
from __future__ import annotations

import numpy as np

from .batches import Batch, BatchSource

DEFAULT_LOSS_EVERY = 20          # steps between loss read-backs on a device (the Trainer's ``loss_every``)


def feed_batches(feed, items, fill):
    """Yield ``(item, device_arrays)`` for each of ``items``, uploading item k+1 while the caller's step k runs.

    ``fill(item, host_buffers) -> m`` gathers an item's m rows into the slot's pinned buffers. The caller queues
    its step between receiving an item and asking for the next one (and may read the loss log there)."""
    items = iter(items)
    item = next(items, None)
    if item is None:
        return
    slot = 0
    feed.wait_free(slot)
    arrays = feed.upload(slot, fill(item, feed.host(slot)))
    while item is not None:
        feed.begin(slot)
        yield item, arrays                           # the caller queues step k
        feed.end(slot)
        item = next(items, None)                     # host work for batch k+1 overlaps step k on the device
        if item is None:
            break
        slot = 1 - slot
        feed.wait_free(slot)                         # step k-1 done: pinned and device buffers of slot free
        arrays = feed.upload(slot, fill(item, feed.host(slot)))


class LossLog:
    """Per-step losses kept on the device and read back every ``every`` steps (and at the end of the epoch).

    A step's entry is what the synchronous path would have summed on the host: the loss Σ_i w_i rows_i (rows on
    the device, in ring row j; w on the host) plus the penalty (L2: ½ α ‖W‖² / n with ‖W‖² on the device, in the
    ring row's last cell; any other penalty: its host value). ``read`` computes each step's value with the same
    formulas, in the same order, as ``Loss._finish`` and ``Trainer.loss_and_grad`` do."""

    def __init__(self, feed, every, width, dtype):
        """``width``: the most rows a batch has; ``dtype``: the model's (that of the loss rows)."""
        self.feed, self.every = feed, int(every)
        feed.log_reserve(self.every, int(width), dtype)
        self.pending = []                            # one dict per step since the last read
        self._cur = None

    # ------------------------------------------------------------------ filled during a step
    def _entry(self):
        if self._cur is None:
            self._cur = {"w": None, "rows": 0, "loss": None, "l2": None, "penalty": None}
        return self._cur

    def stage(self, w_host):
        """A device copy of a weighted batch's row weights, uploaded on the compute stream (Loss._row_weights)."""
        return self.feed.stage(w_host)

    def add_rows(self, rows, w_host):
        """The loss's row losses (device) and row weights (host): Loss._finish."""
        e = self._entry()
        self.feed.log_rows(len(self.pending), rows)
        e["w"], e["rows"] = w_host, rows.shape[0]

    def add_value(self, value):
        """A loss value that is already on the host (a loss that does not defer)."""
        self._entry()["loss"] = float(value)

    def add_penalty(self, penalty, model, n):
        """The penalty of this step: left on the device when it can (``penalty.defer``), else its host value."""
        if hasattr(penalty, "defer"):
            penalty.defer(model, n, self)
        else:
            self._entry()["penalty"] = penalty(model, n)

    def add_l2(self, W, G, a, finish):
        """G += a W on the device and ‖W‖² into the ring; the step's penalty is ``finish(‖W‖²)``."""
        self.feed.log_l2(len(self.pending), W, G, a)
        self._entry()["l2"] = finish

    def end_step(self, tag):
        """Close the step's entry; ``tag`` comes back with its value from ``read``."""
        e = self._entry()
        if e["w"] is None and e["loss"] is None:      # no rows this step (a shard without rows)
            e["loss"] = 0.0
        e["tag"] = tag
        self.pending.append(e)
        self._cur = None

    # ------------------------------------------------------------------ read back
    def due(self):
        return len(self.pending) >= self.every

    def read(self):
        """[(value, tag), ...] of the pending steps, in order: one copy of the ring and one synchronisation (none
        when nothing is pending)."""
        if not self.pending:
            return []
        ring = self.feed.log_read(len(self.pending))
        out = []
        for j, e in enumerate(self.pending):
            value = float(np.dot(ring[j, :e["rows"]], e["w"])) if e["w"] is not None else e["loss"]
            if e["l2"] is not None:
                value += e["l2"](float(ring[j, -1]))
            if e["penalty"] is not None:
                value += e["penalty"]
            out.append((value, e["tag"]))
        self.pending = []
        return out


class FedBatches(BatchSource):
    """The GPU data path as a batch source of ``Trainer.train_epoch``: each batch is gathered into a pinned
    buffer and uploaded on the feed's copy stream while the previous step computes (``feed_batches``); the
    losses stay in a device ``LossLog`` read every ``loss_every`` steps (every step with a parallel strategy,
    whose loss is all-reduced), where the divergence guard checks them in step order (``settle``)."""

    def __init__(self, trainer, feed, X, T, sample_weight=None):
        from .losses import Loss

        self.trainer, self.feed, self.X, self.T, self.sample_weight = trainer, feed, X, T, sample_weight
        bs = min(trainer.batch_size, X.shape[0])
        feed.reserve((((bs,) + X.shape[1:], X.dtype), ((bs,) + T.shape[1:], T.dtype)))
        self.log = None if trainer.strategy.parallel else LossLog(feed, trainer.loss_every, bs,
                                                                  trainer.model.flat.data.dtype)
        self.deferred = self.log is not None
        self.epoch = trainer.epoch + 1
        self._loss = trainer.loss if isinstance(trainer.loss, Loss) else None
        trainer._log = self.log
        if self.log is not None and self._loss is not None:
            self._loss._deferred = self.log

    def _items(self):                                  # the host work of a batch before its gather
        t = self.trainer
        for step, idx, local, swb, wsum, skip in self._plan():
            if skip:                                   # its augmentation draws as the host path's does
                if t.augment is not None:
                    t.augment(self.X[local], t.aug_rng)
                continue
            yield step, idx, local, swb, wsum

    def _fill(self, item, buffers):                    # gather into the slot's pinned buffers
        t, local = self.trainer, item[2]
        m = len(local)
        xb, tb = (b if m == b.shape[0] else b[:m] for b in buffers)
        np.take(self.X, local, axis=0, out=xb, mode="clip")
        np.take(self.T, local, axis=0, out=tb, mode="clip")
        if t.augment is not None:
            xa = t.augment(xb, t.aug_rng)
            if xa is not xb:
                np.copyto(xb, xa)
        return m

    def __iter__(self):
        for (step, idx, local, swb, wsum), (Xd, Td) in feed_batches(self.feed, self._items(), self._fill):
            yield Batch(step, idx, local, Xd, Td, swb, wsum)

    def settle(self, batch, value):
        if self.log is None:                           # a parallel strategy: the value is on the host
            return ((value, batch.rows),)
        self.log.end_step((batch.step, batch.rows))
        return self._read(batch.step) if self.log.due() else ()

    def finish(self):
        return self._read(None) if self.log is not None else ()

    def _read(self, now):                              # the pending losses, checked in step order
        log = self.log
        assert log is not None                         # only the deferred path reads
        late = (f" (read back at step {now + 1}" if now is not None else " (read back at the end of the epoch") \
            + f": the losses are read every {log.every} steps on the device)"
        out = []
        for value, (step, rows) in log.read():
            self.trainer._check(value, f"at epoch {self.epoch}, step {step + 1}", late)
            out.append((value, rows))
        return out

    def abort(self):
        self.feed.drain()                              # no copy from a pinned buffer left in flight

    def close(self):
        self.trainer._log = None
        if self._loss is not None:
            self._loss._deferred = None
