r"""Learning-rate schedules: each sets ``optimizer.lr`` from the step count t (closed forms).

Construct after the optimizer (its ``lr`` is the base η₀; the schedule sets lr for t = 0 at once) and
call ``.step()`` once per epoch or per batch, after ``optimizer.step()``, as in PyTorch. Where PyTorch has
the same name, the sequence of learning rates is PyTorch's:

StepLR             η_t = η₀ γ^⌊t / step_size⌋
ExponentialLR      η_t = η₀ γᵗ
CosineAnnealingLR  η_t = η_min + (η₀ - η_min) (1 + cos(π t / T_max)) / 2
InverseTimeLR      η_t = η₀ / (1 + k t)                      (the lectures' 1/t decay)
LinearWarmup       η_t = η₀ (t + 1) / warmup_steps for t < warmup_steps, then ``after`` takes over
CosineRestarts     η_t = η_min + (η₀ - η_min) (1 + cos(π (t mod T) / T)) / 2   (SGDR with T_mult = 1; snapshots)
SWALR              cosine to swa_lr over swa_start steps, then constant swa_lr   (stochastic weight averaging)
CyclicLR           triangular: η rises linearly base_lr → max_lr in step_size_up steps, falls back in step_size_down
ReduceLROnPlateau  η ← max(η·factor, min_lr) after more than ``patience`` epochs without a relative improvement
                   of ``threshold`` in the metric (``.step(metric)``)

scikit-learn's two learning-rate policies for solver='sgd' live here too, as schedules of unit "epoch" (the
training loop calls ``epoch_end(samples_seen)`` after each epoch, and ``trigger_stopping()`` when the
estimator sees no improvement):

InvScaling         η = η₀ / (t + 1)^power_t,  t = samples seen, set at the end of each epoch      ('invscaling')
Adaptive           η constant; η ← η/5 each time there is no improvement; stop once η <= 1e-6    ('adaptive')

``SCHEDULES`` is the one table of schedule names: name -> builder(optimizer, total_steps, steps_per_epoch,
**options) returning a schedule (or None for a constant rate). The estimators' parameter constraints, the
script's --schedule choices and every factory read it.
"""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._optimizer import Optimizer


def _positive(v, name, who, integer=False):
    ok = isinstance(v, numbers.Integral) if integer else isinstance(v, numbers.Real)
    if not ok or isinstance(v, bool) or not v > 0:
        raise ValueError(f"{who}: {name} must be a positive {'integer' if integer else 'number'}, got {v!r}")
    return int(v) if integer else float(v)


class Schedule:
    """The protocol every schedule follows (the training loop, ``tinynn.training.Trainer``, uses only this).

    ``unit``            "step": the loop calls ``step()`` after every optimizer step;
                        "epoch": it calls only ``epoch_end(samples_seen, record)`` after each epoch
    ``step()``          advance one step and set ``optimizer.lr`` (per-step schedules)
    ``epoch_end(samples_seen, record)``   after every completed epoch, whatever the unit: ``samples_seen`` counts
                        the rows trained on so far, ``record`` is the epoch's measurements (``train_loss``, …)
    ``trigger_stopping()``   the estimator saw no improvement for n_iter_no_change epochs: True means stop
    ``get_last_lr()``, ``state_dict()``, ``load_state_dict(sd)``   the rate now; the state for checkpoints
                        (JSON scalars: the attributes other than the optimizer and nested schedules)

    A new schedule subclasses this (or ``ClosedFormSchedule`` for η_t = f(t)); tests/test_schedules.py trains
    every one through the Trainer."""

    unit = "step"

    def __init__(self, optimizer: Optimizer) -> None:
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}: expected a tinynn optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer

    def step(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.step")

    def epoch_end(self, samples_seen: int, record: dict[str, Any] | None = None) -> None:
        """Called by the training loop after each epoch (per-epoch schedules act here)."""

    def trigger_stopping(self) -> bool:
        """The estimator saw no improvement for n_iter_no_change epochs: True means stop training."""
        return True

    def get_last_lr(self) -> float:
        return self.optimizer.lr

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "optimizer" and not isinstance(v, Schedule)}

    def load_state_dict(self, sd: dict[str, Any]) -> Schedule:
        for k, v in sd.items():
            setattr(self, k, v)
        return self


class ClosedFormSchedule(Schedule):
    """A schedule whose rate is a closed form of the step count: η_t = ``lr_at(t)``, t = ``last_epoch``."""

    def __init__(self, optimizer: Optimizer) -> None:
        super().__init__(optimizer)
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, t: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)
        return self.optimizer.lr


class StepLR(ClosedFormSchedule):
    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = _positive(step_size, "step_size", "StepLR", integer=True)
        self.gamma = _positive(gamma, "gamma", "StepLR")
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        return self.base_lr * self.gamma ** (t // self.step_size)


class ExponentialLR(ClosedFormSchedule):
    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = _positive(gamma, "gamma", "ExponentialLR")
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        return self.base_lr * self.gamma ** t


class CosineAnnealingLR(ClosedFormSchedule):
    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = _positive(T_max, "T_max", "CosineAnnealingLR", integer=True)
        self.eta_min = float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class InverseTimeLR(ClosedFormSchedule):
    def __init__(self, optimizer: Optimizer, k: float) -> None:
        if not isinstance(k, numbers.Real) or k < 0:
            raise ValueError(f"InverseTimeLR: k must be >= 0, got {k!r}")
        self.k: float = float(k)
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        return self.base_lr / (1 + self.k * t)


class LinearWarmup(ClosedFormSchedule):
    """Linear warm-up over ``warmup_steps``, then ``after`` (a schedule built on the same optimizer before
    this one, so that it saw the base lr) continues from its own step 0, or the base lr stays."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int, after: ClosedFormSchedule | None = None) -> None:
        self.warmup_steps = _positive(warmup_steps, "warmup_steps", "LinearWarmup", integer=True)
        self.after = after
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        if t < self.warmup_steps:
            return self.base_lr * (t + 1) / self.warmup_steps
        if self.after is None:
            return self.base_lr
        return self.after.lr_at(t - self.warmup_steps)

    def step(self):
        lr = super().step()
        if self.after is not None and self.last_epoch >= self.warmup_steps:
            self.after.last_epoch = self.last_epoch - self.warmup_steps
        return lr

    def state_dict(self):
        sd = super().state_dict()                    # without ``after`` (a Schedule): its state goes nested
        if self.after is not None:
            sd["after_state"] = self.after.state_dict()
        return sd

    def load_state_dict(self, sd):
        sd = dict(sd)
        after = sd.pop("after_state", None)
        super().load_state_dict(sd)
        if after is not None and self.after is not None:
            self.after.load_state_dict(after)
        return self


class CosineRestarts(ClosedFormSchedule):
    r"""Cosine annealing with warm restarts of equal length (SGDR, Loshchilov and Hutter 2017, with T_mult = 1;
    the schedule of snapshot ensembles, Huang et al. 2017):

        η_t = η_min + (η₀ - η_min) (1 + cos(π (t mod T) / T)) / 2,     T = cycle_steps

    so the rate falls to near η_min at the end of each cycle (where a snapshot is taken) and jumps back to η₀.
    torch's CosineAnnealingWarmRestarts(T_0=T, T_mult=1) gives the same sequence."""

    def __init__(self, optimizer: Optimizer, cycle_steps: int, eta_min: float = 0.0) -> None:
        self.cycle_steps = _positive(cycle_steps, "cycle_steps", "CosineRestarts", integer=True)
        self.eta_min = float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        tc = t % self.cycle_steps
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * tc / self.cycle_steps)) / 2


class SWALR(ClosedFormSchedule):
    r"""The schedule of stochastic weight averaging (Izmailov et al. 2018): cosine from η₀ down to
    ``swa_lr`` over the first ``swa_start`` steps, then constant ``swa_lr`` while the weights are averaged:

        η_t = swa_lr + (η₀ - swa_lr) (1 + cos(π t / swa_start)) / 2   for t < swa_start,   swa_lr after."""

    def __init__(self, optimizer: Optimizer, swa_start: int, swa_lr: float) -> None:
        self.swa_start = _positive(swa_start, "swa_start", "SWALR", integer=True)
        self.swa_lr = _positive(swa_lr, "swa_lr", "SWALR")
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        if t >= self.swa_start:
            return self.swa_lr
        return self.swa_lr + (self.base_lr - self.swa_lr) * (1 + math.cos(math.pi * t / self.swa_start)) / 2


class CyclicLR(ClosedFormSchedule):
    """torch.optim.lr_scheduler.CyclicLR, mode 'triangular' (momentum cycling not included)."""

    def __init__(self, optimizer: Optimizer, base_lr: float, max_lr: float, step_size_up: int = 2000,
                 step_size_down: int | None = None) -> None:
        self.min_lr = _positive(base_lr, "base_lr", "CyclicLR")
        self.max_lr = _positive(max_lr, "max_lr", "CyclicLR")
        up = _positive(step_size_up, "step_size_up", "CyclicLR", integer=True)
        down = up if step_size_down is None else _positive(step_size_down, "step_size_down", "CyclicLR", integer=True)
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle
        scale = x / self.step_ratio if x <= self.step_ratio else (x - 1) / (self.step_ratio - 1)
        return self.min_lr + (self.max_lr - self.min_lr) * scale


class ReduceLROnPlateau(Schedule):
    """torch.optim.lr_scheduler.ReduceLROnPlateau (mode 'min' or 'max', threshold_mode 'rel').

    A schedule of unit "epoch": ``step(metric)`` once per epoch. ``monitor`` names the entry of the epoch's record
    that the training loop passes at each epoch end (default "train_loss"; "train_accuracy" with mode "max");
    ``monitor=None`` leaves the calls to you, as in torch (e.g. ``step(val_loss)`` after each evaluation)."""

    unit = "epoch"

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0, eps: float = 1e-8,
                 monitor: str | None = "train_loss") -> None:
        super().__init__(optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(factor, numbers.Real) or not 0 < float(factor) < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        if monitor is not None and not isinstance(monitor, str):
            raise ValueError(f"ReduceLROnPlateau: monitor must be a record key (str) or None, got {monitor!r}")
        self.mode: str = mode
        self.factor: float = float(factor)
        self.patience: int = int(patience)
        self.threshold: float = float(threshold)
        self.cooldown: int = int(cooldown)
        self.min_lr: float = float(min_lr)
        self.eps: float = float(eps)
        self.best: float = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs: int = 0
        self.cooldown_counter: int = 0
        self.last_epoch: int = 0
        self.monitor: str | None = monitor

    def _better(self, a):
        if self.mode == "min":
            return a < self.best * (1 - self.threshold)
        return a > self.best * (1 + self.threshold)

    def step(self, metric):  # type: ignore[override]  # the monitored value: the Trainer calls epoch_end
        current = float(metric)
        self.last_epoch += 1
        if self._better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.optimizer.lr

    def epoch_end(self, samples_seen: int, record: dict[str, Any] | None = None) -> None:
        if self.monitor is None:
            return
        value = (record or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"ReduceLROnPlateau: the epoch's record has no {self.monitor!r} (it has "
                           f"{sorted(record or {})}); pass monitor= one of those, or monitor=None and call "
                           "step(metric) yourself")
        self.step(value)


class InvScaling(ClosedFormSchedule):
    """scikit-learn's learning_rate='invscaling': η = η₀ / (t + 1)^power_t with t the samples seen so far,
    updated at the end of each epoch."""

    unit = "epoch"

    def __init__(self, optimizer: Optimizer, power_t: float = 0.5) -> None:
        if not isinstance(power_t, numbers.Real) or power_t < 0:
            raise ValueError(f"InvScaling: power_t must be >= 0, got {power_t!r}")
        self.power_t: float = float(power_t)
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        return self.base_lr / (t + 1) ** self.power_t

    def epoch_end(self, samples_seen: int, record: dict[str, Any] | None = None) -> None:
        self.last_epoch = int(samples_seen)
        self.optimizer.lr = self.lr_at(self.last_epoch)


class Adaptive(ClosedFormSchedule):
    """scikit-learn's learning_rate='adaptive': η stays η₀ while training improves; each time the estimator
    reports n_iter_no_change epochs without improvement, η ← η / 5, and training stops once η <= 1e-6."""

    unit = "epoch"

    def lr_at(self, t: int) -> float:
        return self.base_lr / 5.0 ** t

    def trigger_stopping(self) -> bool:
        if self.optimizer.lr <= 1e-6:
            return True
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)
        return False


def _warmup_cosine(opt, total_steps, steps_per_epoch, **_):
    after = CosineAnnealingLR(opt, T_max=max(1, total_steps - steps_per_epoch))
    return LinearWarmup(opt, warmup_steps=max(1, steps_per_epoch), after=after)


SCHEDULES = {
    "constant": lambda opt, total_steps, steps_per_epoch, **_: None,
    "none": lambda opt, total_steps, steps_per_epoch, **_: None,
    "cosine": lambda opt, total_steps, steps_per_epoch, **_: CosineAnnealingLR(opt, T_max=max(1, total_steps)),
    "step": lambda opt, total_steps, steps_per_epoch, **_: StepLR(opt, step_size=max(1, total_steps // 3), gamma=0.1),
    "exponential": lambda opt, total_steps, steps_per_epoch, **_: ExponentialLR(
        opt, gamma=0.01 ** (1.0 / max(1, total_steps))),                  # down to 1 % of η₀ at the end
    "warmup_cosine": _warmup_cosine,                                     # one epoch of warm-up, then cosine
    "invscaling": lambda opt, total_steps, steps_per_epoch, power_t=0.5, **_: InvScaling(opt, power_t),
    "adaptive": lambda opt, total_steps, steps_per_epoch, **_: Adaptive(opt),
    # snapshot ensembles: ``cycles`` equal cosine cycles of ⌈total/cycles⌉ steps (Huang et al.'s ⌈T/M⌉)
    "cosine_restarts": lambda opt, total_steps, steps_per_epoch, cycles=5, **_: CosineRestarts(
        opt, cycle_steps=max(1, -(-total_steps // int(cycles)))),
    # SWA: cosine to swa_lr = ratio · η₀ over the first swa_start (fraction) of the steps, then constant
    "swa": lambda opt, total_steps, steps_per_epoch, swa_start=0.75, swa_lr_ratio=0.1, **_: SWALR(
        opt, swa_start=max(1, int(round(swa_start * total_steps))), swa_lr=swa_lr_ratio * opt.lr),
}


def make(name, optimizer, total_steps=1, steps_per_epoch=1, **options):
    """The schedule called ``name`` in ``SCHEDULES`` on ``optimizer`` (None for a constant rate)."""
    if name is None:
        return None
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {sorted(SCHEDULES)}")
    return SCHEDULES[name](optimizer, total_steps, steps_per_epoch, **options)
