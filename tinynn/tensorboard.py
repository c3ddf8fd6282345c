"""TensorBoard logs of a training run: ``TensorBoardCallback``, a ``Trainer`` callback.

    from tinynn.tensorboard import TensorBoardCallback
    tb = TensorBoardCallback("runs/tb")
    trainer = Trainer(model, loss, optimizer, callbacks=[tb])
    ...                                          # train; then: tensorboard --logdir runs/tb
    tb.close()

Each completed epoch (step = the epoch number, 1, 2, ...) it writes, through tensorboardX's ``SummaryWriter``
(``pip install 'tinynn-fc[tensorboard]'``):

* the scalars of the epoch's record under their history names: ``train_loss``, ``train_accuracy`` (when
  measured), and whatever the caller adds with ``Trainer.record`` afterwards (``val_loss``, ``val_accuracy``,
  ``epoch_seconds``, ...: numbers only; None is skipped), so the event files hold the values of
  ``Trainer.history`` and of scripts/train_mnist.py's ``metrics.json``, rounded to float32 as TensorBoard
  stores scalars;
* ``learning_rate``: the optimizer's rate at the end of the epoch (after the schedule's step);
* a histogram per parameter of each layer, ``weights/<layer>.<name>`` and ``gradients/<layer>.<name>``
  (``<layer>`` the index in the Sequential: ``weights/0.weight``): the weights at the end of the epoch and
  the gradient of the epoch's last step.

The callback keeps no training state (nothing goes into checkpoints); a resumed run that logs into the same
folder continues the curves: the writer starts with ``purge_step`` at the first epoch it writes, so TensorBoard
drops what an interrupted run had logged for that epoch and later ones. Under a parallel strategy give the
callback to rank 0 only: it logs rank 0's model (the whole model under ``data``; its stage or shard under
``pipeline``/``tensor``).
"""
from __future__ import annotations

import math
import numbers
import os
import time
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

import numpy as np

from . import kernels

if TYPE_CHECKING:
    from .training import Trainer


class TensorBoardCallback:
    """Writes a Trainer's per-epoch scalars, learning rate and weight/gradient histograms as TensorBoard
    event files into ``logdir``.

    Parameters
    ----------
    logdir : folder of the event files (made if missing)
    histograms : bool, default True: write the weight and gradient histograms
    histogram_every : int, default 1: histograms every this many epochs (scalars every epoch)
    writer : an object with tensorboardX's ``add_scalar``/``add_histogram``/``flush``/``close`` instead of a
        new ``SummaryWriter`` (tests, or a writer shared with other logs)
    """

    def __init__(self, logdir: Union[str, "os.PathLike[str]"], *, histograms: bool = True,
                 histogram_every: int = 1, writer: Optional[Any] = None) -> None:
        if isinstance(histogram_every, bool) or not isinstance(histogram_every, numbers.Integral) \
                or histogram_every < 1:
            raise ValueError(f"TensorBoardCallback: histogram_every must be a positive integer, got "
                             f"{histogram_every!r}")
        if writer is None:
            try:
                import tensorboardX  # noqa: F401
            except ImportError as e:
                raise ImportError("TensorBoardCallback needs tensorboardX: pip install 'tinynn-fc[tensorboard]' "
                                  f"({e})") from e
        self.logdir: str = os.fspath(logdir)
        self.histograms: bool = bool(histograms)
        self.histogram_every: int = int(histogram_every)
        self.writer: Optional[Any] = writer

    def _writer(self, first_step: int) -> Any:
        if self.writer is None:
            from tensorboardX import SummaryWriter

            # purge_step: events an interrupted earlier run wrote for this epoch and later ones are dropped
            # filename_suffix: tensorboardX names a file by the second it was opened; a resume within the same
            # second would overwrite the first run's file (the suffix, nanoseconds, also keeps them in order)
            self.writer = SummaryWriter(self.logdir, purge_step=first_step, filename_suffix=f".{time.time_ns()}")
        return self.writer

    def _scalars(self, writer: Any, values: Mapping[str, object], step: int) -> None:
        for key, v in values.items():
            if isinstance(v, (numbers.Real, np.floating, np.integer)) and not isinstance(v, bool) \
                    and math.isfinite(float(v)):
                writer.add_scalar(key, float(v), step)

    def on_epoch_end(self, trainer: Trainer) -> None:
        """The epoch's record, the learning rate and (every ``histogram_every`` epochs) the histograms."""
        step = trainer.epoch
        writer = self._writer(step)
        self._scalars(writer, trainer.history[-1], step)
        lr = getattr(trainer.optimizer, "lr", None)
        if lr is not None:
            writer.add_scalar("learning_rate", float(lr), step)
        if self.histograms and step % self.histogram_every == 0:
            for i, layer in enumerate(trainer.model.layers):
                for name, p in layer.named_parameters():
                    if p is None:
                        continue
                    writer.add_histogram(f"weights/{i}.{name}", np.asarray(kernels.to_host(p.data)), step)
                    if p.requires_grad:
                        writer.add_histogram(f"gradients/{i}.{name}", np.asarray(kernels.to_host(p.grad)), step)
        writer.flush()

    def on_record(self, trainer: Trainer, values: Mapping[str, object]) -> None:
        """What the caller recorded for the last epoch (validation loss and accuracy, ...), as scalars."""
        writer = self._writer(trainer.epoch)
        self._scalars(writer, values, trainer.epoch)
        writer.flush()

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file (a later epoch opens a new one)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
