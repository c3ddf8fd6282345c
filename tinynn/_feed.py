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
