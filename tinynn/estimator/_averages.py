"""Model averaging in the estimators (``snapshots=``, ``swa=``, ``ema=``): the Trainer callbacks of
tinynn.averaging chosen from the arguments, and what the fitted estimator predicts with afterwards."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import kernels

from .. import averaging
from ..training import predict_raw


def averaging_start(max_iter):
    """SWA averages the epochs after the first three quarters of max_iter (at least one epoch before it)."""
    return min(max_iter - 1, max(1, int(round(0.75 * max_iter)))) if max_iter > 1 else 1


class AveragingMixin:
    _snapshots: Optional[list[Any]]                 # the snapshot ensemble's members (None: no snapshots)

    def _make_averages(self, steps_per_epoch):
        chosen = [k for k in ("snapshots", "swa", "ema") if getattr(self, k) not in (None, False)]
        if len(chosen) > 1:
            raise ValueError(f"choose at most one of snapshots, swa and ema; got {chosen}")
        if chosen and chosen[0] != "ema" and self.lr_schedule is not None:
            raise ValueError(f"{chosen[0]} sets its own learning-rate schedule; leave lr_schedule=None")
        if self.snapshots:
            return {"snapshots": averaging.SnapshotEnsemble(self._sched.cycle_steps, self.max_iter * steps_per_epoch)}
        if self.swa:
            return {"swa": averaging.SWA(start=averaging_start(self.max_iter) + 1)}
        if self.ema:
            return {"ema": averaging.EMA(self.ema)}
        return {}

    def _finish_averages(self, averages, X):
        for name, cb in averages.items():
            if name == "snapshots":
                self._snapshots = list(cb.snapshots)
            elif cb.avg is not None:
                kernels.assign(self._model.flat.data, cb.avg)
                if averaging.has_batchnorm(self._model):
                    averaging.recompute_batchnorm(self._model, X)

    def _forward_pass_fast(self, X):
        """sklearn's name: the output after the output activation; with snapshots, their outputs averaged."""
        snaps = getattr(self, "_snapshots", None)
        if not snaps:
            return self._output(predict_raw(self._model, X))
        P: Optional[np.ndarray] = None
        for snap in snaps:
            with averaging.weights_of(self._model, snap):
                Pm = self._output(predict_raw(self._model, X)).astype(np.float64)
            P = Pm if P is None else P + Pm
        assert P is not None
        return (P / len(snaps)).astype(self._dtype_)
