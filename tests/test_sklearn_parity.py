"""Same code, same random_state, same data: tinynn's estimators fit scikit-learn's model.

sklearn's draws (Glorot init with its factor, the early-stopping split, the per-epoch shuffle) come from the
same RandomState in the same order, and the estimator takes sklearn's SGD/Adam steps, so coefs_, intercepts_,
loss_curve_ and n_iter_ agree to rounding (asked: about 1e-8 relative after 20 epochs in float64)."""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkRegressor  # noqa: E402

import tinynn as tn  # noqa: E402

CASES = [
    dict(solver="sgd"),
    dict(solver="sgd", nesterovs_momentum=False),
    dict(solver="sgd", momentum=0.0),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5, power_t=0.3),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.2, nesterovs_momentum=False),
    dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.05, tol=0.05, n_iter_no_change=2),
    dict(solver="adam"),
    dict(solver="adam", activation="logistic", alpha=1e-2, beta_1=0.8, epsilon=1e-6),
    dict(solver="adam", activation="tanh", batch_size=64, shuffle=False),
    dict(solver="adam", early_stopping=True, validation_fraction=0.2),
    dict(solver="sgd", early_stopping=True, learning_rate="invscaling", learning_rate_init=0.3),
    dict(solver="adam", early_stopping=True, n_iter_no_change=1, tol=0.005, learning_rate_init=0.02),  # best: epoch 3 of 5
    dict(solver="lbfgs"),
    dict(solver="lbfgs", activation="logistic", alpha=1e-3),
]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _rel(a, b):
    return max(np.max(np.abs(x - z)) / np.max(np.abs(x)) for x, z in zip(a, b))


def _fit_both(est_sk, est_tn, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est_sk(**kw).fit(X, y), est_tn(**kw).fit(X, y)


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_classifier_fits_sklearns_model(digits, kw):
    X, y = digits
    sk, ours = _fit_both(SkClassifier, tn.MLPClassifier, X, y, hidden_layer_sizes=(24, 12), max_iter=20,
                         random_state=3, **kw)
    assert ours.n_iter_ == sk.n_iter_
    assert _rel(sk.coefs_ + sk.intercepts_, ours.coefs_ + ours.intercepts_) < 1e-8
    if kw["solver"] != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-8)
    else:
        np.testing.assert_allclose(ours.loss_, sk.loss_, rtol=1e-8)
    if kw.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))


@pytest.mark.parametrize("kw", [dict(solver="sgd", learning_rate_init=0.01), dict(solver="adam"),
                                dict(solver="lbfgs")], ids=["sgd", "adam", "lbfgs"])
def test_regressor_fits_sklearns_model(digits, kw):
    X, y = digits
    Y = np.c_[y, X[:, 20] * 3]                                        # two outputs
    sk, ours = _fit_both(SkRegressor, tn.MLPRegressor, X, Y, hidden_layer_sizes=(16,), max_iter=20,
                         random_state=1, **kw)
    assert ours.n_iter_ == sk.n_iter_
    assert _rel(sk.coefs_ + sk.intercepts_, ours.coefs_ + ours.intercepts_) < 1e-8


def test_partial_fit_and_warm_start_follow_sklearn(digits):
    X, y = digits
    sk = SkClassifier((16,), random_state=0, solver="sgd", learning_rate="invscaling", warm_start=True, max_iter=3)
    ours = tn.MLPClassifier((16,), random_state=0, solver="sgd", learning_rate="invscaling", warm_start=True,
                            max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in (sk, ours):
            est.fit(X, y)
            est.fit(X[:900], y[:900])
    assert ours.n_iter_ == sk.n_iter_ == 3 and ours.t_ == sk.t_
    assert _rel(sk.coefs_, ours.coefs_) < 1e-8
    sk2 = SkClassifier((16,), random_state=0)
    ours2 = tn.MLPClassifier((16,), random_state=0)
    for s in range(0, 1797, 400):
        sk2.partial_fit(X[s:s + 400], y[s:s + 400], classes=np.arange(10))
        ours2.partial_fit(X[s:s + 400], y[s:s + 400], classes=np.arange(10))
    assert _rel(sk2.coefs_, ours2.coefs_) < 1e-8


def test_float32_fits_in_float32_close_to_sklearn(digits):
    X, y = digits
    X = X.astype(np.float32)
    sk, ours = _fit_both(SkClassifier, tn.MLPClassifier, X, y, hidden_layer_sizes=(24,), max_iter=10, random_state=0)
    assert ours.coefs_[0].dtype == sk.coefs_[0].dtype == np.float32
    assert _rel(sk.coefs_ + sk.intercepts_, ours.coefs_ + ours.intercepts_) < 1e-3
    assert np.mean(ours.predict(X) == sk.predict(X)) > 0.99


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_poisson_regressor_fits_sklearns_model(solver):
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (200, 3))
    y = rng.poisson(np.exp(X @ [1.0, -0.5, 0.3] + 0.5))
    kw = dict(loss="poisson", hidden_layer_sizes=(8,), solver=solver, max_iter=20, random_state=0)
    sk, ours = _fit_both(SkRegressor, tn.MLPRegressor, X, y, **kw)
    assert ours.out_activation_ == sk.out_activation_ == "exp" and ours.n_iter_ == sk.n_iter_
    assert _rel(sk.coefs_ + sk.intercepts_, ours.coefs_ + ours.intercepts_) < 1e-8
    np.testing.assert_allclose(ours.predict(X), sk.predict(X), rtol=1e-8)
    with pytest.raises(ValueError, match="negative"):
        tn.MLPRegressor(loss="poisson").fit(X, -y)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_binary_early_stopping_splits_stratified_as_sklearn(digits, solver):
    """One output column (binary): sklearn stratifies the validation split on the target; string labels and
    unbalanced classes (3 in 10) make a split that ignored the classes, or scored labels as numbers, differ."""
    X, y = digits
    labels = np.where(y < 3, "low", "high")
    kw = dict(hidden_layer_sizes=(8,), max_iter=6, random_state=1, solver=solver, early_stopping=True,
              validation_fraction=0.15, n_iter_no_change=50, learning_rate_init=0.01)
    sk, ours = _fit_both(SkClassifier, tn.MLPClassifier, X[:300], labels[:300], **kw)
    assert ours.n_iter_ == sk.n_iter_ == 6
    np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=0, atol=1e-12)
    assert _rel(sk.coefs_ + sk.intercepts_, ours.coefs_ + ours.intercepts_) < 1e-8


@pytest.mark.parametrize("kw", [dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.2),
                                dict(solver="sgd", learning_rate="constant", learning_rate_init=0.05)],
                         ids=["invscaling", "constant"])
def test_partial_fit_keeps_sklearns_learning_rate_across_calls(digits, kw):
    """partial_fit's rate goes on from call to call (invscaling decays with the samples seen so far)."""
    X, y = digits
    sk, ours = SkClassifier((16,), random_state=0, **kw), tn.MLPClassifier((16,), random_state=0, **kw)
    for s in range(0, 1600, 400):
        sk.partial_fit(X[s:s + 400], y[s:s + 400], classes=np.arange(10))
        ours.partial_fit(X[s:s + 400], y[s:s + 400], classes=np.arange(10))
    assert ours.t_ == sk.t_
    assert _rel(sk.coefs_, ours.coefs_) < 1e-8
