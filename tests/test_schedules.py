"""The schedule protocol: every schedule of tinynn.schedules (found by introspection, so a new one is covered
without editing this file) follows ``tinynn.schedules.Schedule`` and trains through the Trainer, checkpoint
round trip included; every name of ``SCHEDULES`` does too."""
import inspect
import math

import numpy as np
import pytest

import tinynn as tn
from tinynn import schedules
from tinynn.training import Trainer, build_mlp

# a value for each required constructor argument a schedule may have (a new name fails the test below, which
# asks for one here)
EXAMPLE_ARGS = {"step_size": 2, "gamma": 0.5, "T_max": 6, "k": 0.1, "warmup_steps": 2, "cycle_steps": 3,
                "swa_start": 3, "swa_lr": 1e-3, "base_lr": 1e-3, "max_lr": 1e-2}
EXAMPLE_KWARGS = {"ReduceLROnPlateau": {"patience": 0}}


def schedule_classes():
    """Every public class defined in tinynn.schedules that is, or claims to be, a schedule."""
    out = []
    for name, obj in vars(schedules).items():
        if name.startswith("_") or not inspect.isclass(obj) or obj.__module__ != schedules.__name__:
            continue
        if name in ("Schedule", "ClosedFormSchedule"):
            continue
        out.append(obj)
    return out


def data(n=120, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 1)


def build(cls, opt):
    params = inspect.signature(cls).parameters
    kwargs = dict(EXAMPLE_KWARGS.get(cls.__name__, {}))
    for name, p in list(params.items())[1:]:
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            assert name in EXAMPLE_ARGS, f"{cls.__name__}: add an example value for {name!r} to EXAMPLE_ARGS"
            kwargs[name] = EXAMPLE_ARGS[name]
    return cls(opt, **kwargs)


def trainer_for(make_schedule, seed=0):
    model = build_mlp([6, 8, 3], seed=seed)
    opt = tn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = make_schedule(opt)
    return Trainer(model, tn.SoftmaxCrossEntropy(), opt, sched, batch_size=32, rng=seed), opt, sched


def test_the_classes_are_found():
    names = {c.__name__ for c in schedule_classes()}
    assert {"StepLR", "CosineAnnealingLR", "ReduceLROnPlateau", "InvScaling", "Adaptive", "CyclicLR"} <= names


@pytest.mark.parametrize("cls", schedule_classes(), ids=lambda c: c.__name__)
def test_every_schedule_trains_through_the_trainer(cls):
    X, y = data()
    assert issubclass(cls, schedules.Schedule), f"{cls.__name__} must subclass tinynn.schedules.Schedule"
    assert cls.unit in ("step", "epoch")
    trainer, opt, sched = trainer_for(lambda o: build(cls, o))
    lrs = []
    for _ in range(3):
        trainer.train_epoch(X, y)
        lrs.append(opt.lr)
    assert all(math.isfinite(v) and v >= 0 for v in lrs)
    assert sched.get_last_lr() == opt.lr
    if cls.unit == "step":                                     # one step() per optimizer step (4 batches/epoch)
        assert sched.last_epoch == 12
    # the checkpoint round trip: two more epochs from the saved state equal two more straight on
    arrays, meta = trainer.state()
    trainer.train_epoch(X, y)
    trainer.train_epoch(X, y)
    again, opt2, sched2 = trainer_for(lambda o: build(cls, o))
    again.load_state(arrays, meta)
    again.train_epoch(X, y)
    again.train_epoch(X, y)
    np.testing.assert_array_equal(again.model.flat.data, trainer.model.flat.data)
    assert opt2.lr == opt.lr and sched2.state_dict() == sched.state_dict()


@pytest.mark.parametrize("name", sorted(schedules.SCHEDULES))
def test_every_named_schedule_trains_through_the_trainer(name):
    X, y = data()
    trainer, opt, sched = trainer_for(lambda o: schedules.make(name, o, total_steps=12, steps_per_epoch=4))
    assert sched is None or isinstance(sched, schedules.Schedule)
    for _ in range(3):
        trainer.train_epoch(X, y)
    assert math.isfinite(opt.lr) and opt.lr >= 0


def test_reduce_on_plateau_is_driven_by_the_epoch_record():
    """Trainer(..., ReduceLROnPlateau(opt)).train_epoch used to raise AttributeError (no ``unit``)."""
    X, y = data()
    trainer, opt, sched = trainer_for(lambda o: schedules.ReduceLROnPlateau(o, patience=0, factor=0.5))
    opt.lr = 0.0                                               # nothing learns: the loss stays on its plateau
    sched.best = -math.inf                                     # no epoch counts as an improvement
    trainer.train_epoch(X, y)
    trainer.train_epoch(X, y)
    assert sched.last_epoch == 2 and sched.num_bad_epochs == 0 and opt.lr == 0.0
    trainer2, opt2, sched2 = trainer_for(lambda o: schedules.ReduceLROnPlateau(o, patience=0, factor=0.5))
    sched2.best = -math.inf
    trainer2.train_epoch(X, y)
    assert opt2.lr == 0.025                                    # 0.05 · 0.5 after one epoch without improvement
    manual, opt3, sched3 = trainer_for(lambda o: schedules.ReduceLROnPlateau(o, monitor=None))
    manual.train_epoch(X, y)
    assert sched3.last_epoch == 0                              # monitor=None: the caller steps it


def test_reduce_on_plateau_names_a_missing_record_entry():
    X, y = data()
    trainer, _, _ = trainer_for(lambda o: schedules.ReduceLROnPlateau(o, monitor="val_loss"))
    with pytest.raises(KeyError, match="val_loss"):
        trainer.train_epoch(X, y)


def test_the_trainer_refuses_an_object_outside_the_protocol():
    model = build_mlp([6, 8, 3])
    opt = tn.optim.SGD(model.parameters(), lr=0.05)

    class NotASchedule:
        def step(self):
            pass

    with pytest.raises(TypeError, match="tinynn.schedules.Schedule"):
        Trainer(model, tn.SoftmaxCrossEntropy(), opt, NotASchedule())
