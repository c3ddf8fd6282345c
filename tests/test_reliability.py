"""Failure modes end in a clear exception, never a crash, a hang or silent garbage."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.exceptions import ConvergenceWarning

import tinynn as tn
from tinynn.errors import DivergenceError

ALLOWED = (ValueError, TypeError, IndexError)

floats_with_specials = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=st.one_of(
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64, np.bool_]),
               hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6)),
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=6),
               elements=floats_with_specials),
    st.lists(st.lists(st.floats(-5, 5), min_size=2, max_size=2), max_size=6)),
    y=st.one_of(hnp.arrays(st.sampled_from([np.int64, np.float64]), st.integers(0, 7),
                           elements=st.integers(-1, 3)),
                st.lists(st.sampled_from(["a", "b", 1]), max_size=7)))
def test_fuzz_estimator_fit_predict(X, y):
    """Random shapes, dtypes, NaN/inf, empty arrays, lists: a fitted model or a documented exception."""
    clf = tn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            clf.fit(X, y)
        except ALLOWED:
            return
    Xa = np.asarray(X, dtype=np.float64)
    proba = clf.predict_proba(Xa)
    assert proba.shape == (Xa.shape[0], len(clf.classes_)) and np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(Xp=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5),
                     elements=floats_with_specials))
def test_fuzz_predict_after_fit(Xp):
    rng = np.random.default_rng(0)
    clf = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(rng.standard_normal((10, 4)), rng.standard_normal(10))
    try:
        out = clf.predict(Xp)
    except ALLOWED:
        return
    assert Xp.ndim == 2 and Xp.shape[1] == 4 and np.all(np.isfinite(Xp)) and out.shape == (Xp.shape[0],)


def test_train_mnist_divergence_exits_nonzero_and_keeps_checkpoint(mnist_path, tmp_path, monkeypatch, capsys):
    import sys
    import os

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
    import train_mnist
    from tinynn import io, training

    real = training.Trainer.train_epoch

    def diverge_in_epoch_2(self, X, y, *args, **kwargs):
        if self.epoch == 1:
            raise DivergenceError("the training loss became nan at epoch 2, step 3; try a lower learning rate")
        return real(self, X, y, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "train_epoch", diverge_in_epoch_2)
    out = tmp_path / "run"
    code = train_mnist.main(["--data-dir", mnist_path, "--epochs", "3", "--train-size", "500", "--val-size", "100",
                             "--hidden", "16", "--quiet", "--out", str(out)])
    assert code == 3
    assert "lower learning rate" in capsys.readouterr().err
    _, meta = io.load_npz(out / "checkpoint.npz", kind="checkpoint")
    assert meta["epoch"] == 1                                    # the last good epoch's checkpoint is kept
    arrays, _ = io.load_npz(out / "checkpoint.npz")
    assert all(np.all(np.isfinite(v)) for v in arrays.values())


def test_trainer_raises_on_real_divergence(mnist_path):
    from tinynn.training import Trainer, build_mlp, make_optimizer

    Xtr, ytr, _, _ = tn.data.load_mnist(mnist_path)
    model = build_mlp([784, 32, 10])
    before = model.flat.data.copy()
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), make_optimizer("sgd", model.parameters(), 1e6), batch_size=64)
    with pytest.raises(DivergenceError, match=r"epoch 1, step \d+"):
        trainer.train_epoch(Xtr[:3000], ytr[:3000])
    np.testing.assert_array_equal(model.flat.data, before)      # rolled back to the start of the epoch


# ----------------------------------------------------------------------------------------------- the wrong cause named
def _xy(n=40, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, (X[:, 0] > 0).astype(int), X[:, 0] - X[:, 1]


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_float64_values_beyond_float32_are_named_as_the_input(solver):
    """float64 input cast to float32 (dtype=np.float32) overflows to inf: the input is named, at any rate."""
    X, y, _ = _xy()
    clf = tn.MLPClassifier(solver=solver, dtype=np.float32, max_iter=3, learning_rate_init=1e-12)
    with pytest.raises(ValueError, match=r"X holds values beyond the range of float32.*cast to float32") as e:
        clf.fit(X * 1e39, y)
    assert "learning_rate_init" not in str(e.value)


def test_targets_beyond_float32_are_named():
    X, _, yr = _xy()
    with pytest.raises(ValueError, match=r"y holds values beyond the range of float32"):
        tn.MLPRegressor(dtype=np.float32, max_iter=3).fit(X, yr * 1e39)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("target", ["X", "y"])
def test_first_forward_overflow_names_the_input_not_the_learning_rate(solver, target):
    """float32 values near float32's maximum are finite, but the first forward pass (or its squared loss)
    overflows: the message says the input is the cause, even at a learning rate of 1e-12."""
    X, _, yr = _xy()
    X32 = (X * (3e37 if target == "X" else 1.0)).astype(np.float32)
    y = yr * (1.0 if target == "X" else 1e30)
    reg = tn.MLPRegressor(solver=solver, max_iter=3, learning_rate_init=1e-12, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)           # a refusal, not a warning
        with pytest.raises(ValueError, match=r"overflow float32.*The input is the cause, not the learning rate") as e:
            reg.fit(X32, y)
    assert not isinstance(e.value, DivergenceError)
    assert "largest |x|" in str(e.value) and "scale X and y" in str(e.value)


def test_a_real_divergence_still_blames_the_learning_rate():
    X, y, _ = _xy()
    with pytest.raises(DivergenceError, match="learning_rate_init"):
        tn.MLPClassifier(solver="sgd", learning_rate_init=1e12, max_iter=30, random_state=0).fit(X, y)


# ----------------------------------------------------------------------------------------------- silent non-training
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("weights, says", [
    (-np.ones(40), "Negative values in data passed to `sample_weight`"),
    (np.r_[-1.0, np.ones(39)], "Negative values in data passed to `sample_weight`"),
    (np.zeros(40), "sample_weight is all zero: there is nothing to train on"),
    (np.full(40, 1e308), "sample_weight sums to inf"),
    (np.r_[np.nan, np.ones(39)], "sample_weight"),
])
def test_sample_weights_that_cannot_train_are_refused(solver, weights, says):
    X, y, _ = _xy()
    with pytest.raises(ValueError, match=says):
        tn.MLPClassifier(solver=solver, max_iter=3).fit(X, y, sample_weight=weights)


def test_sample_weights_on_one_side_of_the_early_stopping_split():
    X, y, _ = _xy()
    w = np.zeros(40)
    w[0] = 1.0                                                      # one row of weight: one side gets none
    with pytest.raises(ValueError, match=r"sample_weight of the (training|validation) part.* is all zero"):
        tn.MLPClassifier(early_stopping=True, validation_fraction=0.5, max_iter=3, random_state=0).fit(
            X, y, sample_weight=w)


def test_some_zero_weights_still_train():
    X, y, _ = _xy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = tn.MLPClassifier(max_iter=3, random_state=0).fit(X, y, sample_weight=np.r_[np.zeros(20), np.ones(20)])
    assert all(v > 0 for v in clf.loss_curve_)


def test_lbfgs_squared_loss_overflow_is_refused_not_returned_untrained():
    """sklearn-style L-BFGS stops at once on an infinite objective; tinynn refuses instead of returning the
    initial weights with a ConvergenceWarning."""
    X, _, yr = _xy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ValueError, match=r"solver='lbfgs': the objective at the initial weights is inf.*"
                                             r"largest \|y\| = .*e\+200"):
            tn.MLPRegressor(solver="lbfgs", max_iter=3).fit(X, yr * 1e200)


def test_unsupported_estimator_dtype_is_a_type_error():
    X, y, _ = _xy()
    for dtype in (np.float16, "float16", "garbage", np.int32):
        with pytest.raises(TypeError, match="is not supported; expected None, np.float32 or np.float64"):
            tn.MLPClassifier(dtype=dtype, max_iter=2).fit(X, y)
