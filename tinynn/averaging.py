r"""Model averaging: snapshot ensembles, stochastic weight averaging and an exponential moving average of the
weights, as ``Trainer`` callbacks (``callbacks=[...]``; their state goes into checkpoints).

SnapshotEnsemble (Huang et al. 2017)
    With the cyclic cosine schedule ``schedules.CosineRestarts`` (``"cosine_restarts"``: M cycles of
    ⌈T/M⌉ steps), the weights at the end of each cycle, where the rate is lowest, are kept (M snapshots, with
    their BatchNorm statistics). Prediction averages their softmax outputs: p(y|x) = (1/M) Σ_m softmax(f_m(x)).
SWA (Izmailov et al. 2018)
    From epoch ``start`` on (with ``schedules.SWALR``'s constant rate there), the running mean of the weights
    at the end of every epoch: w̄ ← (n w̄ + w) / (n + 1). One network predicts, with the averaged weights.
EMA
    After every optimizer step: w̄ ← decay w̄ + (1 - decay) w (``ops.lerp``, on the model's device), starting
    from the weights at the first step. One network predicts, with the averaged weights.

Averaged weights are not weights any batch saw, so the BatchNorm running statistics that go with them are
recomputed (``recompute_batchnorm``): one pass over training data in train mode with a cumulative average
(momentum 1/t at batch t), as torch.optim.swa_utils.update_bn, with dropout off.

``averaged_model`` (a copy of the model holding SWA/EMA weights, statistics recomputed) and
``ensemble_proba`` (snapshots' mean softmax) are the prediction helpers.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Optional

import numpy as np

from . import kernels
from ._filecheck import COUNTER_MAX, _listed, check_array
from .errors import FileFormatError
from .kernels import ops

from .layers import BatchNorm1d
from .model import host_copy
from .training import PREDICT_CHUNK, predict_raw


def _softmax(Z):
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def _capture(model):
    """Host copies of (flat parameters, [running statistics]) of the model."""
    return (np.array(kernels.to_host(model.flat.data)),
            [np.array(kernels.to_host(getattr(l, s))) for l in model.layers for s in l._state_names])


def _capture_layout(model):
    """((shape, dtype) of the flat parameters, [(shape, dtype) of each running statistic]) as ``_capture``
    gives them."""
    flat = model.flat.data if model.flat is not None else np.zeros(0, np.float32)
    return ((tuple(flat.shape), flat.dtype),
            [(tuple(getattr(l, s).shape), getattr(l, s).dtype) for l in model.layers for s in l._state_names])


def _restore(model, captured):
    params, states = captured
    flat_layout, stat_layout = _capture_layout(model)
    if (params.shape, params.dtype) != flat_layout or [(s.shape, s.dtype) for s in states] != stat_layout:
        raise ValueError("weights_of: the captured parameters and statistics do not fit the model (another model's "
                         "snapshot)")
    kernels.assign(model.flat.data, params)
    it = iter(states)
    for l in model.layers:
        for s in l._state_names:
            kernels.assign(getattr(l, s), next(it))


@contextlib.contextmanager
def weights_of(model, captured):
    """Temporarily give ``model`` the parameters and statistics ``captured`` (``_capture``'s form)."""
    saved = _capture(model)
    _restore(model, captured)
    try:
        yield model
    finally:
        _restore(model, saved)


def has_batchnorm(model):
    return any(isinstance(l, BatchNorm1d) for l in model.layers)


def recompute_batchnorm(model, X, batch_size=256, augment=None, rng=None):
    """Recompute every BatchNorm1d's running mean and variance for the model's current weights: reset, then
    one pass over X (host array) in train mode for the BatchNorm layers only (dropout off), each batch
    weighted equally (momentum 1/t at batch t: the cumulative average, torch's update_bn). ``augment`` (with
    ``rng``) transforms the batches as in training. Leaves the model in its previous mode; returns it."""
    bns = [l for l in model.layers if isinstance(l, BatchNorm1d)]
    if not bns:
        return model
    was = model.training
    momenta = [bn.momentum for bn in bns]
    model.eval()
    for bn in bns:
        bn.train(True)
        ops.fill(bn.running_mean, 0.0)
        ops.fill(bn.running_var, 1.0)
    try:
        t = 0
        for s in range(0, X.shape[0], batch_size):
            xb = X[s:s + batch_size]
            if xb.shape[0] < 2:                               # a batch of one has no variance
                continue
            if augment is not None:
                xb = augment(np.ascontiguousarray(xb), rng if rng is not None else np.random.default_rng(0))
            t += 1
            for bn in bns:
                bn.momentum = 1.0 / t
            if model.device != "cpu":
                xb = kernels.to_device(np.ascontiguousarray(xb), model.device)
            model.forward(xb)
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        model.train(was)
    return model


class _WeightAverage:
    """Shared parts of SWA and EMA: the average on the model's device, its checkpoint state, a model copy."""

    def __init__(self):
        self.avg = None                                         # like model.flat.data, once started
        self.count = 0

    def _start(self, trainer):
        flat = trainer.model.flat.data
        self.avg = kernels.empty(flat.shape, flat.dtype, like=flat)
        kernels.assign(self.avg, flat)

    def state(self):
        arrays = {} if self.avg is None else {"avg": np.array(kernels.to_host(self.avg))}
        return arrays, {"count": self.count, **self._meta()}

    def check_state(self, path, arrays, r, model, prefix=""):
        """Refuse (FileFormatError naming ``path``) a saved state that does not fit ``model``: the average must
        be one float per parameter of the model, in its dtype, finite; the count an integer >= 0 (>= 1 with an
        average); no other entries. Called before ``load_state``, so no kernel ever sees a wrong size."""
        r.only(("count",) + tuple(self._meta()))
        count = r.int("count", lo=0, hi=COUNTER_MAX)
        self._check_meta(r)
        extra = sorted(set(arrays) - {"avg"})
        if extra:
            raise FileFormatError(path, f"unexpected array(s) {_listed(extra, prefix)} in the state of the "
                                        f"{type(self).__name__} average")
        flat = None if model.flat is None else model.flat.data
        if "avg" in arrays:
            if flat is None:
                raise FileFormatError(path, f"array '{prefix}avg': the model has no parameters to average")
            check_array(path, prefix + "avg", arrays["avg"], flat.shape, flat.dtype)
            if count < 1:
                r.fail(f"{r.name('count')} is 0, but the file holds an average")
        elif count:
            r.fail(f"{r.name('count')} is {count}, but the file holds no average ({prefix}avg)")

    def _check_meta(self, r):
        pass

    def _check_fits(self, model):
        """The running average has the model's flat parameter shape and dtype (else a kernel would read or write
        past the end of one of them)."""
        flat = model.flat.data
        if self.avg is not None and (tuple(self.avg.shape) != tuple(flat.shape) or self.avg.dtype != flat.dtype):
            raise ValueError(f"{type(self).__name__}: the average holds {self.avg.shape} {self.avg.dtype} values but "
                             f"the model's parameters are {tuple(flat.shape)} {flat.dtype}; it belongs to another "
                             "model")

    def load_state(self, arrays, meta):
        self.count = int(meta["count"])
        self._load_meta(meta)
        if "avg" in arrays:
            a = np.asarray(arrays["avg"])
            if self.avg is None or self.avg.shape != a.shape or self.avg.dtype != a.dtype:
                self.avg = np.array(a)                            # moved to the model's device at the next update
            else:
                kernels.assign(self.avg, a)
        else:
            self.avg = None

    def _on_device_of(self, model):
        self._check_fits(model)
        if self.avg is not None and kernels.device_of(self.avg) != model.device:
            self.avg = kernels.to_device(np.asarray(kernels.to_host(self.avg)), model.device)

    def _meta(self):
        return {}

    def _load_meta(self, meta):
        pass

    def averaged_model(self, model, X=None, batch_size=256):
        """A copy of ``model`` holding the averaged weights, BatchNorm statistics recomputed on X (required
        when the model has BatchNorm layers). The model itself is not changed."""
        if self.avg is None:
            raise RuntimeError(f"{type(self).__name__}: nothing averaged yet")
        if has_batchnorm(model) and X is None:
            raise ValueError("averaged_model: the model has BatchNorm layers; pass training data X to recompute "
                             "their statistics for the averaged weights")
        self._check_fits(model)
        m = copy.deepcopy(model) if model.device == "cpu" else host_copy(model).to(model.device)
        kernels.assign(m.flat.data, kernels.to_host(self.avg) if m.device == "cpu" else self.avg)
        if X is not None:
            recompute_batchnorm(m, X, batch_size)
        return m


class SWA(_WeightAverage):
    """Stochastic weight averaging: the mean of the weights at the end of epochs ``start``, ``start``+1, ...
    (1-based: start=16 averages after epochs 16, 17, ...), every ``every`` epochs."""

    def __init__(self, start, every=1):
        super().__init__()
        if int(start) < 1 or int(every) < 1:
            raise ValueError(f"SWA: start and every must be >= 1, got {start!r}, {every!r}")
        self.start, self.every = int(start), int(every)

    def on_epoch_end(self, trainer):
        self._on_device_of(trainer.model)
        if trainer.epoch < self.start or (trainer.epoch - self.start) % self.every:
            return
        if self.avg is None:
            self._start(trainer)
        else:                                                     # w̄ ← w̄ + (w - w̄)/(n+1)
            ops.lerp(self.avg, trainer.model.flat.data, 1.0 / (self.count + 1), 1.0)
        self.count += 1

    def _meta(self):
        return {"start": self.start, "every": self.every}

    def _check_meta(self, r):
        r.int("start", lo=1, hi=COUNTER_MAX)
        r.int("every", lo=1, hi=COUNTER_MAX)


class EMA(_WeightAverage):
    """Exponential moving average of the weights after every optimizer step: w̄ ← decay w̄ + (1 - decay) w."""

    def __init__(self, decay):
        super().__init__()
        if not 0 < float(decay) < 1:
            raise ValueError(f"EMA: decay must be in (0, 1), got {decay!r}")
        self.decay = float(decay)

    def on_step_end(self, trainer):
        self._on_device_of(trainer.model)
        if self.avg is None:
            self._start(trainer)
        else:
            ops.lerp(self.avg, trainer.model.flat.data, 1.0 - self.decay, 1.0)
        self.count += 1

    def _meta(self):
        return {"decay": self.decay}

    def _check_meta(self, r):
        d = r.number("decay", lo=0, hi=1, hi_open=True)
        if d == 0:
            r.fail(f"{r.name('decay')} must be in (0, 1), got 0")


class SnapshotEnsemble:
    """Keep the weights (and BatchNorm statistics) at the end of each cosine cycle of ``cycle_steps`` optimizer
    steps and at the last step ``total_steps``: M snapshots for ``schedules.make("cosine_restarts", ...,
    cycles=M)`` (use ``SnapshotEnsemble.for_schedule``). Snapshots are host copies."""

    def __init__(self, cycle_steps, total_steps):
        self.cycle_steps, self.total_steps = int(cycle_steps), int(total_steps)
        if self.cycle_steps < 1 or self.total_steps < 1:
            raise ValueError("SnapshotEnsemble: cycle_steps and total_steps must be >= 1")
        self.steps = 0
        self.snapshots = []                                       # [(flat params, [statistics])]

    @classmethod
    def for_schedule(cls, schedule, total_steps):
        return cls(schedule.cycle_steps, total_steps)

    def on_step_end(self, trainer):
        self.steps += 1
        if self.steps % self.cycle_steps == 0 or self.steps == self.total_steps:
            self.snapshots.append(_capture(trainer.model))

    def state(self):
        arrays = {}
        for i, (params, states) in enumerate(self.snapshots):
            arrays[f"snap{i}/params"] = params
            arrays.update({f"snap{i}/state{j}": s for j, s in enumerate(states)})
        return arrays, {"steps": self.steps, "count": len(self.snapshots), "cycle_steps": self.cycle_steps,
                        "total_steps": self.total_steps}

    def check_state(self, path, arrays, r, model, prefix=""):
        """Refuse (FileFormatError naming ``path``) a saved state that does not fit ``model``: ``count``
        snapshots, each its flat parameters (the model's count and dtype) and one array per running statistic
        of the model (its shape), finite; no other entries; counters integers >= 0."""
        r.only(("steps", "count", "cycle_steps", "total_steps"))
        r.int("steps", lo=0, hi=COUNTER_MAX)
        r.int("cycle_steps", lo=1, hi=COUNTER_MAX)
        r.int("total_steps", lo=1, hi=COUNTER_MAX)
        count = r.int("count", lo=0, hi=len(arrays))
        params, stats = _capture_layout(model)
        want = {}
        for i in range(count):
            want[f"snap{i}/params"] = params
            want.update({f"snap{i}/state{j}": s for j, s in enumerate(stats)})
        missing, extra = sorted(set(want) - set(arrays)), sorted(set(arrays) - set(want))
        if missing or extra:
            raise FileFormatError(path, f"the snapshots do not fit the model ({count} snapshot(s) of "
                                        f"{1 + len(stats)} array(s) each): "
                                        + "; ".join(p for p in (f"missing {_listed(missing, prefix)}" if missing
                                                                else "", f"unexpected {_listed(extra, prefix)}"
                                                                if extra else "") if p))
        for k, (shape, dtype) in want.items():
            check_array(path, prefix + k, arrays[k], shape, dtype)

    def load_state(self, arrays, meta):
        self.steps = int(meta["steps"])
        self.snapshots = []
        for i in range(int(meta["count"])):
            n_states = sum(1 for k in arrays if k.startswith(f"snap{i}/state"))
            self.snapshots.append((np.array(arrays[f"snap{i}/params"]),
                                   [np.array(arrays[f"snap{i}/state{j}"]) for j in range(n_states)]))

    def predict_proba(self, model, X, chunk=PREDICT_CHUNK):
        """The mean of the snapshots' softmax outputs on X (host), (n, classes); the model is left as it was."""
        return ensemble_proba(model, self.snapshots, X, chunk)


def ensemble_proba(model, snapshots, X, chunk=PREDICT_CHUNK):
    """(1/M) Σ_m softmax(f(X; w_m)) over the snapshots [(flat params, [statistics])]."""
    if not snapshots:
        raise RuntimeError("ensemble_proba: no snapshots")
    P: Optional[np.ndarray] = None
    for snap in snapshots:
        with weights_of(model, snap):
            Pm = _softmax(predict_raw(model, X, chunk).astype(np.float64))
        P = Pm if P is None else P + Pm
    assert P is not None
    return P / len(snapshots)


def accuracy_of_proba(P, y):
    return float(np.mean(np.argmax(P, axis=1) == np.asarray(y)))


__all__ = ["SnapshotEnsemble", "SWA", "EMA", "recompute_batchnorm", "ensemble_proba", "weights_of",
           "has_batchnorm", "accuracy_of_proba"]
