"""tn.MLPClassifier / tn.MLPRegressor: sklearn's contract, tinynn's extras, safe files, failure modes."""
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tinynn as tn


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")   # short fits


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_digits_pipeline_with_early_stopping(digits, seed):
    Xtr, Xte, ytr, yte = digits
    pipe = make_pipeline(StandardScaler(), tn.MLPClassifier(early_stopping=True, random_state=seed))
    pipe.fit(Xtr, ytr)
    assert pipe.score(Xte, yte) >= 0.93
    clf = pipe[-1]
    assert len(clf.validation_scores_) == clf.n_iter_ == len(clf.validation_loss_curve_)
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_gridsearch_clone_cross_val(digits):
    Xtr, _, ytr, _ = digits
    est = tn.MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, learning_rate_init=0.01, random_state=0)
    c = clone(est)
    assert c.get_params() == est.get_params() and c is not est
    gs = GridSearchCV(est, {"alpha": [1e-4, 1e-2], "dropout": [0.0, 0.2]}, cv=2).fit(Xtr / 16, ytr)
    assert gs.best_score_ > 0.85
    scores = cross_val_score(est, Xtr / 16, ytr, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85


def test_same_random_state_same_model_bitwise(digits):
    Xtr, _, ytr, _ = digits
    kw = dict(hidden_layer_sizes=(20, 10), max_iter=5, random_state=7, dropout=0.1)
    a = tn.MLPClassifier(**kw).fit(Xtr, ytr)
    b = tn.MLPClassifier(**kw).fit(Xtr, ytr)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(ca, cb)
    assert a.loss_curve_ == b.loss_curve_


def test_binary_multiclass_multilabel_shapes():
    X, y = make_classification(200, 8, n_classes=2, random_state=0)
    clf = tn.MLPClassifier((16,), max_iter=50, random_state=0).fit(X, np.where(y, "yes", "no"))
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1
    assert clf.predict_proba(X).shape == (200, 2) and set(clf.predict(X)) <= {"yes", "no"}
    np.testing.assert_allclose(clf.predict_proba(X).sum(1), 1)
    assert clf.score(X, np.where(y, "yes", "no")) >= 0.85            # sklearn's model, the same, scores 0.85
    X, Y = make_multilabel_classification(200, 10, n_classes=4, random_state=0)
    ml = tn.MLPClassifier((32,), max_iter=100, learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert ml.predict(X).shape == (200, 4) and ml.predict_proba(X).shape == (200, 4)
    assert ml.score(X, Y) > 0.45  # subset accuracy (sklearn with the same arguments: 0.545)


def test_regressor_1d_and_2d():
    X, y = make_regression(300, 5, n_targets=1, noise=0.1, random_state=0)
    r = tn.MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, y / 100)
    assert r.predict(X).shape == (300,) and r.score(X, y / 100) > 0.95
    X, Y = make_regression(300, 5, n_targets=3, noise=0.1, random_state=0)
    r2 = tn.MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, Y / 100)
    assert r2.predict(X).shape == (300, 3) and r2.score(X, Y / 100) > 0.9


@pytest.mark.parametrize("extra", [dict(dropout=0.2), dict(batch_norm=True), dict(init="kaiming_normal"),
                                   dict(optimizer="rmsprop"), dict(optimizer="adamw"), dict(optimizer="momentum", learning_rate_init=0.1),
                                   dict(optimizer="adagrad", learning_rate_init=0.05), dict(lr_schedule="cosine"),
                                   dict(lr_schedule="warmup_cosine"), dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5, power_t=0.25),
                                   dict(solver="sgd", learning_rate="adaptive"), dict(solver="lbfgs"),
                                   dict(dtype=np.float32)])
def test_extras_train(digits, extra):
    Xtr, Xte, ytr, yte = digits
    kw = dict(learning_rate_init=0.01, **extra) if "learning_rate_init" not in extra else extra
    clf = tn.MLPClassifier((64,), max_iter=40, random_state=0, **kw).fit(Xtr / 16, ytr)
    assert clf.score(Xte / 16, yte) > 0.9
    if "dtype" in extra:
        assert clf.coefs_[0].dtype == np.float32


def test_dtype_follows_input(digits):
    Xtr, _, ytr, _ = digits
    a = tn.MLPClassifier((8,), max_iter=2).fit(Xtr.astype(np.float32), ytr)
    b = tn.MLPClassifier((8,), max_iter=2).fit(Xtr.astype(np.int64), ytr)
    assert a.coefs_[0].dtype == np.float32 and b.coefs_[0].dtype == np.float64


def test_save_load_roundtrip(tmp_path, digits):
    Xtr, Xte, ytr, yte = digits
    clf = tn.MLPClassifier((32,), max_iter=20, random_state=0, dropout=0.1, batch_norm=True,
                           early_stopping=True).fit(Xtr, ytr)
    path = tmp_path / "clf.npz"
    clf.save(path)
    with np.load(path, allow_pickle=False) as z:  # every array reads without pickle
        assert all(z[k].dtype.kind != "O" for k in z.files)
    back = tn.MLPClassifier.load(path)
    np.testing.assert_array_equal(back.predict_proba(Xte), clf.predict_proba(Xte))
    assert back.get_params() == clf.get_params()
    assert back.validation_scores_ == clf.validation_scores_ and back.n_iter_ == clf.n_iter_
    unpickled = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(unpickled.predict_proba(Xte), clf.predict_proba(Xte))
    with pytest.raises(ValueError, match="holds a 'MLPClassifier', expected a 'MLPRegressor'"):
        tn.MLPRegressor.load(path)


def test_partial_fit_after_save_load_is_exact(tmp_path, digits):
    Xtr, _, ytr, _ = digits
    kw = dict(hidden_layer_sizes=(16,), random_state=3, dropout=0.2)
    a = tn.MLPClassifier(**kw)
    b = tn.MLPClassifier(**kw)
    for est in (a, b):
        est.partial_fit(Xtr, ytr, classes=np.arange(10))
    b.save(tmp_path / "b.npz")
    b = tn.MLPClassifier.load(tmp_path / "b.npz")
    for est in (a, b):
        est.partial_fit(Xtr, ytr)
        est.partial_fit(Xtr, ytr)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(ca, cb)


def test_partial_fit_needs_classes_and_stochastic_solver(digits):
    Xtr, _, ytr, _ = digits
    with pytest.raises(ValueError, match="classes must be passed"):
        tn.MLPClassifier().partial_fit(Xtr, ytr)
    assert not hasattr(tn.MLPClassifier(solver="lbfgs"), "partial_fit")


def test_not_fitted():
    with pytest.raises(NotFittedError):
        tn.MLPClassifier().predict(np.ones((2, 3)))
    with pytest.raises(NotFittedError):
        tn.MLPRegressor().predict(np.ones((2, 3)))


@pytest.mark.parametrize("bad,match", [
    (dict(learning_rate_init=-0.1), "learning_rate_init"), (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(validation_fraction=0.0), "validation_fraction"), (dict(activation="mish"), "activation"),
    (dict(solver="newton"), "solver"), (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes"),
    (dict(dropout=1.0), "dropout"), (dict(optimizer="lion"), "optimizer"), (dict(init="he"), "init"),
    (dict(batch_size=0), "batch_size"), (dict(momentum=1.5), "momentum"), (dict(max_iter=0), "max_iter"),
])
def test_invalid_parameters(bad, match):
    X, y = np.random.default_rng(0).standard_normal((20, 3)), np.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        tn.MLPClassifier(**bad).fit(X, y)


@pytest.mark.parametrize("make_bad,exc,match", [
    (lambda X, y: (np.where(X > 1, np.nan, X), y), ValueError, "NaN"),
    (lambda X, y: (np.where(X > 1, np.inf, X), y), ValueError, "infinity"),
    (lambda X, y: (X, y[:-1]), ValueError, "inconsistent numbers of samples"),
    (lambda X, y: (X[:0], y[:0]), ValueError, "0 sample"),
])
def test_bad_data(make_bad, exc, match):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 4)), np.arange(30) % 3
    Xb, yb = make_bad(X, y)
    with pytest.raises(exc, match=match):
        tn.MLPClassifier(max_iter=2).fit(Xb, yb)


def test_wrong_feature_count_at_predict(digits):
    Xtr, _, ytr, _ = digits
    clf = tn.MLPClassifier((8,), max_iter=2).fit(Xtr, ytr)
    with pytest.raises(ValueError, match="features"):
        clf.predict(Xtr[:, :10])


def test_divergence_raises_and_keeps_finite_weights(digits):
    Xtr, _, ytr, _ = digits
    clf = tn.MLPClassifier((32,), learning_rate_init=1e8, solver="sgd", momentum=0.9, max_iter=20, random_state=0)
    with pytest.raises(tn.DivergenceError, match=r"epoch \d+, step \d+.*lower learning_rate_init") as e:
        clf.fit(Xtr, ytr)
    assert isinstance(e.value, FloatingPointError) and isinstance(e.value, ValueError)
    assert all(np.all(np.isfinite(w)) for w in clf.coefs_ + clf.intercepts_)


def test_divergence_with_early_stopping_ends_training_and_keeps_the_best(digits):
    """As sklearn: a diverging fit with early stopping ends, records nan as that epoch's validation score and
    keeps the best finite parameters (the initial ones when no epoch was finite)."""
    Xtr, _, ytr, _ = digits
    clf = tn.MLPClassifier((32,), learning_rate_init=1e8, solver="sgd", early_stopping=True, n_iter_no_change=1,
                           max_iter=50, random_state=0)
    clf.fit(Xtr, ytr)
    assert np.isnan(clf.validation_scores_[-1]) and isinstance(clf.validation_scores_[-1], float)
    assert clf.n_iter_ < 50
    assert all(np.all(np.isfinite(w)) for w in clf.coefs_ + clf.intercepts_)
    assert clf.score(Xtr, ytr) > 0                                  # it predicts with finite weights


def test_single_class_is_fitted_as_sklearn_does():
    X = np.random.default_rng(0).standard_normal((12, 3))
    clf = tn.MLPClassifier((4,), max_iter=5, random_state=0).fit(X, np.full(12, "only"))
    assert list(clf.classes_) == ["only"] and clf.n_outputs_ == 1
    assert (clf.predict(X) == "only").all() and clf.score(X, np.full(12, "only")) == 1.0


def test_keyboard_interrupt_keeps_last_epoch(digits, monkeypatch):
    Xtr, Xte, ytr, _ = digits
    clf = tn.MLPClassifier((16,), max_iter=10, random_state=0)
    calls = {"n": 0}
    real_step = tn.optim.Adam.step

    def step(self, closure=None):
        calls["n"] += 1
        if calls["n"] == 3 * 7 + 2:  # in the 4th epoch (7 batches an epoch)
            raise KeyboardInterrupt
        return real_step(self, closure)

    monkeypatch.setattr(tn.optim.Adam, "step", step)
    with pytest.warns(UserWarning, match="last completed epoch \\(3\\)"):
        clf.fit(Xtr, ytr)
    ref = tn.MLPClassifier((16,), max_iter=3, random_state=0).fit(Xtr, ytr)
    monkeypatch.setattr(tn.optim.Adam, "step", real_step)
    np.testing.assert_array_equal(clf.predict_proba(Xte), ref.predict_proba(Xte))


def test_verbose_progress(digits, capsys):
    Xtr, _, ytr, _ = digits
    tn.MLPClassifier((8,), max_iter=2, verbose=True, early_stopping=True).fit(Xtr, ytr)
    out = capsys.readouterr().out
    assert "Iteration 1, loss =" in out and "validation score" in out


def test_coefs_layout_like_sklearn(digits):
    Xtr, _, ytr, _ = digits
    clf = tn.MLPClassifier((20, 7), max_iter=2).fit(Xtr, ytr)
    assert [c.shape for c in clf.coefs_] == [(64, 20), (20, 7), (7, 10)]
    assert [b.shape for b in clf.intercepts_] == [(20,), (7,), (10,)]
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 10 and clf.out_activation_ == "softmax"


def test_pickled_estimator_keeps_training_correctly(digits):
    """Unpickling must rebuild the flat-buffer views: otherwise the optimizer would update a copy."""
    Xtr, Xte, ytr, _ = digits
    a = tn.MLPClassifier((16,), random_state=0, dropout=0.1)
    a.partial_fit(Xtr, ytr, classes=np.arange(10))
    b = pickle.loads(pickle.dumps(a))
    flat = b._model.flat
    assert np.shares_memory(b._model[0].weight.data, flat.data)
    assert np.shares_memory(b._opt.state["exp_avg"][0], b._opt.state["exp_avg"].flat)
    for est in (a, b):
        est.partial_fit(Xtr, ytr)
    np.testing.assert_array_equal(a.predict_proba(Xte), b.predict_proba(Xte))
