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
