"""Tests for the holes a round of planted bugs found (issue 30): each would let a real mistake pass.

Each test names the planted bug it catches."""
import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynn as tn
from tinynn import io, kernels, schedules
from tinynn.kernels import ops


# ------------------------------------------------------------- every schedule of the name table, by formula
def _lrs(name, T, S, lr=0.5, **kw):
    opt = tn.optim.SGD([tn.Parameter(np.zeros(3))], lr=lr)
    sch = schedules.make(name, opt, total_steps=T, steps_per_epoch=S, **kw)
    seq = [opt.lr]
    for _ in range(T):
        sch.step()
        seq.append(opt.lr)
    return np.array(seq)


def _cos(t, T):
    return 0.5 * (1 + math.cos(math.pi * t / T))


FORMULAS = {
    "cosine": lambda t, T, S, lr: lr * _cos(t, T),
    "step": lambda t, T, S, lr: lr * 0.1 ** (t // max(1, T // 3)),
    "exponential": lambda t, T, S, lr: lr * 0.01 ** (t / T),
    "warmup_cosine": lambda t, T, S, lr: lr * (t + 1) / S if t < S else lr * _cos(t - S, max(1, T - S)),
    "cosine_restarts": lambda t, T, S, lr: lr * _cos(t % -(-T // 5), -(-T // 5)),
    "swa": lambda t, T, S, lr: (0.1 * lr + (lr - 0.1 * lr) * _cos(min(t, round(0.75 * T)), round(0.75 * T))),
}


@pytest.mark.parametrize("name", sorted(FORMULAS))
@given(T=st.integers(4, 60), S=st.integers(1, 8))
def test_schedule_learning_rates_equal_their_formula(name, T, S):
    """Planted: warmup_cosine's cosine over total_steps instead of total_steps - steps_per_epoch."""
    S = min(S, T - 1)
    got = _lrs(name, T, S)
    want = np.array([FORMULAS[name](t, T, S, 0.5) for t in range(T + 1)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=name)


def test_every_closed_form_schedule_of_the_table_has_a_formula():
    untested = set(schedules.SCHEDULES) - set(FORMULAS) - {"constant", "none", "invscaling", "adaptive"}
    assert not untested, f"schedules without a formula test: {untested}"


# ------------------------------------------------------------- the reference softmax at large logits
def test_reference_softmax_subtracts_the_row_max():
    """Planted: the NumPy reference softmax without its max subtraction (e^1000 overflows to inf, inf/inf NaN)."""
    Z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 999.0], [30.0, 30.0, 30.0]])
    with kernels.use("numpy"):
        P = np.array(ops.softmax_rows(Z, out=np.empty_like(Z)))
    e = math.exp(-1.0)
    np.testing.assert_allclose(P, [[1, 0, 0], [0, 1 / (1 + e), e / (1 + e)], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-14)


# ------------------------------------------------------------- a lazy optimizer over several steps
@pytest.mark.parametrize("cls", ["Adam", "Adagrad"])
def test_lazy_optimizer_keeps_its_state_across_steps(cls):
    """Planted: a lazy (sparse-row) step that never writes its moments back. When every row is touched at every
    step, lazy and dense runs are the same run: 6 steps agree."""
    rng = np.random.default_rng(0)
    W0 = rng.standard_normal((5, 3))
    runs = {}
    for lazy in (False, True):
        emb = tn.Embedding(5, 3, dtype=np.float64)
        emb.weight.data[...] = W0
        opt = getattr(tn.optim, cls)(emb.parameters(), lr=0.1, lazy=lazy)
        for step in range(6):
            idx = np.arange(5)
            Y = emb.forward(idx)
            opt.zero_grad()
            emb.backward(np.asarray(Y) * (step + 1) + 1.0)
            opt.step()
        runs[lazy] = emb.weight.data.copy()
    np.testing.assert_allclose(runs[True], runs[False], rtol=1e-13)
    assert not np.allclose(runs[True], W0)


# ------------------------------------------------------------- partial_fit with its classes in any order
def test_partial_fit_classes_in_any_order_equal_sorted():
    """Planted: partial_fit keeping ``classes`` as given instead of sorted (sklearn sorts them)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = rng.integers(0, 3, 60)
    fits = []
    for classes in ([0, 1, 2], [2, 0, 1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = tn.MLPClassifier(hidden_layer_sizes=(5,), random_state=0).partial_fit(X, y, classes=classes)
        fits.append(clf)
    np.testing.assert_array_equal(fits[1].classes_, [0, 1, 2])
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))


# ------------------------------------------------------------- files: duplicate entries, samples_seen
def _rewrite_with_duplicate(path, dup_name):
    """A copy of the .npz at ``path`` whose zip holds ``dup_name`` twice (second copy: other values)."""
    import zipfile

    out = path.with_name("dup.npz")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info.filename))
        data = zin.read(dup_name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                   # zipfile warns about the duplicate name
            zout.writestr(dup_name, data[:-8] + np.float32(7.0).tobytes() * 2)
    return out


def test_a_file_with_a_repeated_entry_is_refused(tmp_path):
    """Planted: the loader without its duplicate-entry check (the second of two weights silently wins)."""
    model = tn.Sequential(tn.Linear(3, 2, rng=0))
    path = tmp_path / "m.npz"
    tn.training.save_model(path, model, dict(sizes=[3, 2], activation="relu", dropout=0.0, batch_norm=False,
                                              dtype="float32", input_dropout=0.0))
    import zipfile

    names = [n for n in zipfile.ZipFile(path).namelist() if n != "__meta__.npy"]
    bad = _rewrite_with_duplicate(path, names[0])
    with pytest.raises(tn.FileFormatError, match="(twice|duplicate|repeated|more than once)"):
        tn.training.load_model(bad)


def _checkpoint(tmp_path):
    model = tn.training.build_mlp([4, 5, 3], seed=0)
    opt = tn.optim.Adam(model.parameters(), lr=1e-2)
    trainer = tn.training.Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=8,
                                  rng=tn.training.stream(0, "shuffle"))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    trainer.train_epoch(X, y)
    path = tmp_path / "ckpt.npz"
    trainer.save_checkpoint(path, config={})
    return path, trainer


@pytest.mark.parametrize("value,says", [(-1, "samples_seen"), (2.5, "samples_seen"), ("40", "samples_seen"),
                                        (2**60, "samples_seen")])
def test_checkpoint_samples_seen_is_checked(tmp_path, value, says):
    """Planted: the checkpoint's samples_seen check dropped (a negative or fractional count resumed silently)."""
    path, _ = _checkpoint(tmp_path)
    arrays, meta = io.load_npz(path)
    meta = json.loads(json.dumps(dict(meta)))
    meta["samples_seen"] = value
    for k in ("format", "kind", "format_version"):
        meta.pop(k, None)
    bad = tmp_path / "bad.npz"
    io.save_npz(bad, arrays, meta, kind="checkpoint")
    with pytest.raises(tn.FileFormatError, match=says):
        io.load_npz(bad, kind="checkpoint")


# ------------------------------------------------------------- the divergence guard at small losses
def test_divergence_is_caught_when_the_loss_starts_below_one():
    """Planted: the guard comparing against max(first loss, 1) (every divergence test used losses above 1). A
    regression whose first loss is ~1e-3 and explodes a million-fold must stop."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float64)
    y = (X @ np.array([0.01, -0.02, 0.01]))[:, None]
    model = tn.Sequential(tn.Linear(3, 1, dtype=np.float64, rng=0))
    model.layers[0].weight.data[...] = np.array([[0.01], [-0.02], [0.01]]) + 1e-3
    opt = tn.optim.SGD(model.parameters(), lr=30.0)                # far past stability for this curvature
    trainer = tn.training.Trainer(model, tn.MSELoss(), opt, batch_size=16, rng=np.random.default_rng(0))
    with pytest.raises(tn.DivergenceError):
        for _ in range(40):
            trainer.train_epoch(X, y)
