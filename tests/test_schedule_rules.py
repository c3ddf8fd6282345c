"""The schedules' rules, each against a statement written here from its definition (torch's and scikit-learn's
documentation), on values where an off-by-one or a flipped comparison shows: exact binary fractions that land
on the thresholds, nonzero floors, cycles with unequal halves. Written for the mutants that survived
tests/test_schedules.py (docs/mutation.md): the torch-parity tests there skip where torch is not installed,
as in CI.
"""
import inspect
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynn as tn
from tinynn import schedules as S


def opt(lr=1.0):
    return tn.optim.SGD([tn.Parameter(np.zeros(2))], lr=lr)


def rates(sched, steps):
    return [sched.optimizer.lr] + [sched.step() for _ in range(steps)]


# ----------------------------------------------------------------------------------------- arguments
POSITIVE = [  # (class, other arguments, parameter, integer?)
    (S.StepLR, dict(step_size=2), "step_size", True), (S.StepLR, dict(step_size=2), "gamma", False),
    (S.ExponentialLR, dict(gamma=0.5), "gamma", False),
    (S.CosineAnnealingLR, dict(T_max=4), "T_max", True),
    (S.LinearWarmup, dict(warmup_steps=3), "warmup_steps", True),
    (S.CosineRestarts, dict(cycle_steps=3), "cycle_steps", True),
    (S.SWALR, dict(swa_start=3, swa_lr=0.1), "swa_start", True), (S.SWALR, dict(swa_start=3, swa_lr=0.1), "swa_lr", False),
    (S.CyclicLR, dict(base_lr=0.1, max_lr=1.0), "base_lr", False),
    (S.CyclicLR, dict(base_lr=0.1, max_lr=1.0), "max_lr", False),
    (S.CyclicLR, dict(base_lr=0.1, max_lr=1.0), "step_size_up", True),
    (S.CyclicLR, dict(base_lr=0.1, max_lr=1.0), "step_size_down", True),
]


@pytest.mark.parametrize("cls,kw,name,integer", POSITIVE, ids=[f"{c.__name__}-{n}" for c, _, n, _ in POSITIVE])
def test_positive_arguments_are_checked_with_their_names(cls, kw, name, integer):
    bad = [0, -1, True, "2"] + ([None] if name != "step_size_down" else []) + ([2.5, 1.0] if integer else [0.0, -1e-9])
    for v in bad:
        with pytest.raises(ValueError) as e:
            cls(opt(), **{**kw, name: v})
        kind = "integer" if integer else "number"
        assert str(e.value) == f"{cls.__name__}: {name} must be a positive {kind}, got {v!r}", v
    good = [1, np.int64(3)] if integer else [1e-9, 2, np.float32(0.5)]
    for v in good:
        s = cls(opt(), **{**kw, name: v})
        stored = getattr(s, {"base_lr": "min_lr"}.get(name, name), None)   # CyclicLR keeps base_lr as min_lr
        if stored is not None:
            assert stored == v and type(stored) is (int if integer else float)


@pytest.mark.parametrize("cls,name", [(S.InverseTimeLR, "k"), (S.InvScaling, "power_t")])
def test_nonnegative_arguments(cls, name):
    assert getattr(cls(opt(), **{name: 0}), name) == 0.0                     # 0 allowed: a constant rate
    for v in (-1e-9, "0.5", None):
        with pytest.raises(ValueError, match=rf"^{cls.__name__}: {name} must be >= 0, got {v!r}$"):
            cls(opt(), **{name: v})


def test_plateau_arguments():
    with pytest.raises(ValueError, match=r"^ReduceLROnPlateau: mode must be 'min' or 'max', got 'MAX'$"):
        S.ReduceLROnPlateau(opt(), mode="MAX")
    assert S.ReduceLROnPlateau(opt(), mode="max").best == -math.inf
    assert S.ReduceLROnPlateau(opt(), mode="min").best == math.inf
    for f in (0, 1, 1.5, -0.5, "0.5"):
        with pytest.raises(ValueError, match=r"^ReduceLROnPlateau: factor must be in \(0, 1\), got "):
            S.ReduceLROnPlateau(opt(), factor=f)
    with pytest.raises(ValueError, match="monitor must be a record key"):
        S.ReduceLROnPlateau(opt(), monitor=3)


def test_not_an_optimizer():
    with pytest.raises(TypeError, match=r"^StepLR: expected a tinynn optimizer, got list$"):
        S.StepLR([], step_size=1)


def test_the_protocol_defaults():
    s = S.Schedule(opt())
    with pytest.raises(NotImplementedError, match=r"^Schedule\.step$"):
        s.step()
    assert s.trigger_stopping() is True and s.unit == "step" and s.get_last_lr() == 1.0
    assert s.epoch_end(10, {}) is None


def test_defaults_are_torch_and_sklearn_defaults():
    """The defaults users expect from the names (torch.optim.lr_scheduler, sklearn's power_t)."""
    def defaults(f):
        return {k: p.default for k, p in inspect.signature(f).parameters.items() if p.default is not p.empty}
    assert defaults(S.StepLR) == dict(gamma=0.1)
    assert defaults(S.CosineAnnealingLR) == dict(eta_min=0.0)
    assert defaults(S.CyclicLR) == dict(step_size_up=2000, step_size_down=None)
    assert defaults(S.ReduceLROnPlateau) == dict(mode="min", factor=0.1, patience=10, threshold=1e-4, cooldown=0,
                                                 min_lr=0.0, eps=1e-8, monitor="train_loss")
    assert defaults(S.InvScaling) == dict(power_t=0.5)
    assert defaults(S.make) == dict(total_steps=1, steps_per_epoch=1)
    assert rates(S.make("cosine", opt()), 3) == rates(S.CosineAnnealingLR(opt(), T_max=1), 3)
    # and in behaviour (a signature can say one thing and the body use another)
    assert rates(S.StepLR(opt(1.0), step_size=1), 1) == [1.0, 0.1]
    cyc = S.CyclicLR(opt(), base_lr=0.5, max_lr=1.5)
    assert (cyc.lr_at(1000), cyc.lr_at(2000), cyc.lr_at(4000)) == (1.0, 1.5, 0.5)
    s = S.InvScaling(opt(1.0))
    s.epoch_end(3)
    assert s.optimizer.lr == 0.5
    assert rates(S.make("warmup_cosine", opt()), 4) == rates(S.make("warmup_cosine", opt(), 1, 1), 4)
    plateau = S.ReduceLROnPlateau(opt(1.0))
    lrs = [plateau.step(1.0) for _ in range(23)]
    assert lrs.index(0.1) == 11 and lrs.index(0.1 * 0.1) == 22      # patience 10, no cooldown
    with pytest.raises(ValueError, match=r"^unknown schedule 'nope'; expected one of \['adaptive', 'constant', "):
        S.make("nope", opt())


# ----------------------------------------------------------------------------------------- closed forms
@given(eta_min=st.sampled_from([0.0, 0.25, 0.1]), T=st.integers(1, 9), steps=st.integers(1, 25))
def test_cosine_with_a_floor(eta_min, T, steps):
    got = rates(S.CosineAnnealingLR(opt(2.0), T_max=T, eta_min=eta_min), steps)
    want = [eta_min + (2.0 - eta_min) * (1 + math.cos(math.pi * t / T)) / 2 for t in range(steps + 1)]
    np.testing.assert_allclose(got, want, rtol=1e-13)


@given(eta_min=st.sampled_from([0.0, 0.25]), T=st.integers(1, 6), steps=st.integers(1, 25))
def test_restarts_with_a_floor(eta_min, T, steps):
    got = rates(S.CosineRestarts(opt(2.0), cycle_steps=T, eta_min=eta_min), steps)
    want = [eta_min + (2.0 - eta_min) * (1 + math.cos(math.pi * (t % T) / T)) / 2 for t in range(steps + 1)]
    np.testing.assert_allclose(got, want, rtol=1e-13)


def triangular(t, lo, hi, up, down):
    """torch's CyclicLR 'triangular', stated by position in the cycle: up for ``up`` steps, down for ``down``."""
    pos = t % (up + down)
    frac = pos / up if pos <= up else 1 - (pos - up) / down
    return lo + (hi - lo) * frac


@given(up=st.integers(1, 7), down=st.one_of(st.none(), st.integers(1, 7)), steps=st.integers(1, 40))
def test_cyclic_triangle_with_unequal_halves(up, down, steps):
    got = rates(S.CyclicLR(opt(), base_lr=0.25, max_lr=2.0, step_size_up=up, step_size_down=down), steps)
    want = [triangular(t, 0.25, 2.0, up, up if down is None else down) for t in range(steps + 1)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_swa_reaches_its_rate_at_swa_start():
    got = rates(S.SWALR(opt(1.0), swa_start=4, swa_lr=0.5), 6)
    want = [0.5 + 0.5 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(4)] + [0.5] * 3
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_warmup_then_step_decay_continues_from_its_step_zero():
    o = opt(1.0)
    after = S.StepLR(o, step_size=2, gamma=0.5)
    w = S.LinearWarmup(o, warmup_steps=3, after=after)
    got = rates(w, 9)
    np.testing.assert_allclose(got, [1 / 3, 2 / 3, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125])
    assert after.last_epoch == 9 - 3
    sd = w.state_dict()
    assert "after" not in sd and sd["after_state"]["last_epoch"] == 6
    import json
    json.dumps(sd)                                   # checkpoints hold JSON scalars only
    o2 = opt(1.0)
    w2 = S.LinearWarmup(o2, 3, after=S.StepLR(o2, step_size=2, gamma=0.5)).load_state_dict(sd)
    assert rates(w2, 3)[1:] == rates(w, 3)[1:]
    plain = S.LinearWarmup(opt(1.0), 3).load_state_dict(S.LinearWarmup(opt(1.0), 3).state_dict())
    assert plain.after is None                       # a state without a nested schedule loads into one without


def test_inverse_time_and_invscaling():
    np.testing.assert_allclose(rates(S.InverseTimeLR(opt(1.0), k=0.5), 4), [1 / (1 + 0.5 * t) for t in range(5)])
    s = S.InvScaling(opt(1.0), power_t=0.5)
    s.epoch_end(15)
    assert s.optimizer.lr == pytest.approx(1 / 4) and s.last_epoch == 15 and s.unit == "epoch"


def test_adaptive_divides_by_five_and_stops_at_one_millionth():
    s = S.Adaptive(opt(1.25e-5))
    assert s.trigger_stopping() is False and s.optimizer.lr == pytest.approx(2.5e-6)
    assert s.trigger_stopping() is False and s.optimizer.lr == pytest.approx(5e-7)
    assert s.trigger_stopping() is True and s.optimizer.lr == pytest.approx(5e-7)
    edge = S.Adaptive(opt(1e-6))
    assert edge.trigger_stopping() is True and edge.optimizer.lr == 1e-6


# ----------------------------------------------------------------------------------------- plateau
def plateau_rates(metrics, lr, mode, factor, patience, threshold, cooldown, min_lr, eps):
    """torch's ReduceLROnPlateau (threshold_mode 'rel'), from its documentation, as a plain loop."""
    best = math.inf if mode == "min" else -math.inf
    bad = cool = 0
    out = []
    for m in metrics:
        improved = m < best * (1 - threshold) if mode == "min" else m > best * (1 + threshold)
        if improved:
            best, bad = m, 0
        else:
            bad += 1
        if cool > 0:
            cool, bad = cool - 1, 0
        if bad > patience:
            new = max(lr * factor, min_lr)
            if lr - new > eps:
                lr = new
            cool, bad = cooldown, 0
        out.append(lr)
    return out


@given(metrics=st.lists(st.sampled_from([4.0, 2.0, 1.0, 0.5, 3.0, 1.5]), min_size=1, max_size=30),
       mode=st.sampled_from(["min", "max"]), patience=st.integers(0, 3), threshold=st.sampled_from([0.0, 0.5, 0.25]),
       cooldown=st.integers(0, 2), min_lr=st.sampled_from([0.0, 0.25]), eps=st.sampled_from([0.0, 0.5, 0.25]))
def test_plateau_against_its_definition(metrics, mode, patience, threshold, cooldown, min_lr, eps):
    """Binary fractions: metrics land exactly on best·(1 ± threshold) and reductions exactly on eps."""
    s = S.ReduceLROnPlateau(opt(1.0), mode=mode, factor=0.5, patience=patience, threshold=threshold,
                            cooldown=cooldown, min_lr=min_lr, eps=eps)
    assert [s.step(m) for m in metrics] == plateau_rates(metrics, 1.0, mode, 0.5, patience, threshold, cooldown,
                                                         min_lr, eps)
    assert s.last_epoch == len(metrics)


def test_plateau_boundaries_by_hand():
    s = S.ReduceLROnPlateau(opt(1.0), factor=0.5, patience=0, threshold=0.5)
    assert s.step(1.0) == 1.0                        # best = 1
    assert s.step(0.5) == 0.5                        # 0.5 = best·(1 - 0.5) is not better (strict): reduced
    e = S.ReduceLROnPlateau(opt(1.0), factor=0.5, patience=0, eps=0.5)
    e.step(1.0)
    assert e.step(1.0) == 1.0                        # a reduction of exactly eps is not made
    with pytest.raises(KeyError, match=r"has no 'val_loss' \(it has \['train_loss'\]\); pass monitor= one of those, "
                                       r"or monitor=None and call step\(metric\) yourself"):
        S.ReduceLROnPlateau(opt(), monitor="val_loss").epoch_end(1, {"train_loss": 1.0})
    with pytest.raises(KeyError, match=r"\(it has \[\]\)"):
        S.ReduceLROnPlateau(opt(), monitor="val_loss").epoch_end(1, None)
    assert S.ReduceLROnPlateau(opt(), monitor=None).epoch_end(1, None) is None
    nan = S.ReduceLROnPlateau(opt(1.0), patience=1, factor=0.5)     # a NaN is never an improvement, from the start
    assert [nan.step(float("nan")) for _ in range(2)] == [1.0, 0.5]


def test_a_nested_state_into_a_warmup_without_one():
    o = opt(1.0)
    sd = S.LinearWarmup(o, 2, after=S.StepLR(o, step_size=1)).state_dict()
    w = S.LinearWarmup(opt(1.0), 2).load_state_dict(sd)         # the nested state has nowhere to go: ignored
    assert w.after is None and w.last_epoch == 0
