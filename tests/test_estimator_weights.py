"""class_weight (MLPClassifier) and the L1 penalty (l1=, l1_mode=) on both estimators.

class_weight is checked against scikit-learn's meaning: LogisticRegression(class_weight=cw).fit(X, y, sw) is the
fit with sample weights sw * compute_class_weight(cw, classes, y, sample_weight=sw)[class of each row] (checked
here on LogisticRegression itself), and tinynn's fit with class_weight must equal, to the last bit, its fit
with those sample weights. L1: the proximal and subgradient steps against the update written out here, the
objective L-BFGS minimises, exact zeros, refusals.
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, recall_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight

import tinynn as tn


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")   # short fits


def sklearn_weights(cw, y, sw=None):
    """The sample weights LogisticRegression fits with for class_weight=cw (sklearn/linear_model/_logistic.py)."""
    sw = np.ones(len(y)) if sw is None else np.asarray(sw, dtype=float)
    classes = np.unique(y)
    per_class = compute_class_weight(cw, classes=classes, y=y, sample_weight=sw)
    return sw * per_class[LabelEncoder().fit(classes).transform(y)]


def data(n_classes=2, n=120, seed=0):
    weights = [0.75, 0.25] if n_classes == 2 else [0.6, 0.3, 0.1]
    return make_classification(n, 6, n_informative=4, n_classes=n_classes, weights=weights, random_state=seed)


CASES = ["balanced", {0: 1.0, 1: 4.0}]


@pytest.mark.parametrize("cw", CASES)
def test_helper_is_logistic_regressions_meaning(cw):
    """The reference weights are what LogisticRegression does with class_weight (so the next test compares
    tinynn with sklearn's meaning, not with a guess)."""
    X, y = data()
    sw = np.random.default_rng(0).uniform(0.5, 2, len(y))
    a = LogisticRegression(class_weight=cw, tol=1e-10, max_iter=1000).fit(X, y, sample_weight=sw)
    b = LogisticRegression(tol=1e-10, max_iter=1000).fit(X, y, sample_weight=sklearn_weights(cw, y, sw))
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("cw", CASES + [{0: 2.0, 1: 1.0, 2: 0.5}])
@pytest.mark.parametrize("with_sw", [False, True])
@pytest.mark.parametrize("kw", [dict(solver="adam"), dict(solver="lbfgs"), dict(early_stopping=True)])
def test_class_weight_is_the_sample_weight_sklearn_uses(n_classes, cw, with_sw, kw):
    X, y = data(n_classes)
    if isinstance(cw, dict):
        cw = {k: v for k, v in cw.items() if k < n_classes}
    sw = np.random.default_rng(1).uniform(0.5, 2, len(y)) if with_sw else None
    args = dict(hidden_layer_sizes=(7,), max_iter=8, random_state=0, **kw)
    a = tn.MLPClassifier(class_weight=cw, **args).fit(X, y, sample_weight=sw)
    b = tn.MLPClassifier(**args).fit(X, y, sample_weight=sklearn_weights(cw, y, sw))
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(ca, cb)
    assert a.loss_curve_ == b.loss_curve_ if kw.get("solver") != "lbfgs" else a.loss_ == b.loss_


def test_class_weight_changes_the_fit_and_balanced_raises_minority_recall():
    X, y = make_classification(600, 8, n_informative=3, weights=[0.92, 0.08], flip_y=0.05, random_state=3)
    args = dict(hidden_layer_sizes=(16,), max_iter=60, random_state=0, alpha=1e-3)
    plain = tn.MLPClassifier(**args).fit(X, y)
    bal = tn.MLPClassifier(class_weight="balanced", **args).fit(X, y)
    assert recall_score(y, bal.predict(X)) > recall_score(y, plain.predict(X)) + 0.05


def test_string_labels_and_dict_keys():
    X, y = data(3)
    labels = np.array(["cat", "dog", "eel"])[y]
    cw = {"cat": 1.0, "dog": 2.0, "eel": 5.0}
    args = dict(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    a = tn.MLPClassifier(class_weight=cw, **args).fit(X, labels)
    b = tn.MLPClassifier(**args).fit(X, labels, sample_weight=sklearn_weights(cw, labels))
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])


def test_partial_fit_refuses_balanced_as_sgdclassifier():
    from sklearn.linear_model import SGDClassifier

    X, y = data()
    with pytest.raises(ValueError) as ours:
        tn.MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError) as theirs:
        SGDClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1])
    assert str(ours.value) == str(theirs.value)
    assert "compute_class_weight" in str(ours.value)


def test_partial_fit_with_a_dict_is_weighted_batches():
    X, y = data(3)
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    a, b = (tn.MLPClassifier(hidden_layer_sizes=(5,), random_state=0, **k) for k in (dict(class_weight=cw), {}))
    for s in (slice(0, 60), slice(60, 120)):
        a.partial_fit(X[s], y[s], classes=[0, 1, 2])
        b.partial_fit(X[s], y[s], classes=[0, 1, 2], sample_weight=np.array([cw[c] for c in y[s]]))
    np.testing.assert_array_equal(a.coefs_[1], b.coefs_[1])


def test_bad_class_weight_is_refused_naming_it():
    X, y = data()
    with pytest.raises(ValueError, match=r"classes, \[5\], are not in class_weight|class_weight"):
        tn.MLPClassifier(class_weight={5: 2.0}, max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="class_weight"):
        tn.MLPClassifier(class_weight="even").fit(X, y)
    with pytest.raises(ValueError, match="multi-label"):
        tn.MLPClassifier(class_weight={0: 2.0}, max_iter=2).fit(X, np.c_[y, 1 - y])


def test_class_weight_survives_save_and_load(tmp_path):
    X, y = data(3)
    labels = np.array(["a", "b", "c"])[y]
    for cw, yy in (({0: 1.0, 1: 2.5, 2: 1.0}, y), ({"a": 3.0, "b": 1.0, "c": 1.0}, labels), ("balanced", y)):
        clf = tn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0, class_weight=cw).fit(X, yy)
        back = tn.MLPClassifier.load(clf.save(tmp_path / "m.npz"))
        assert back.class_weight == cw
        np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


# --------------------------------------------------------------------------- L1
def one_step(est_kw, lr):
    """The weights after one full-batch SGD step without momentum (partial_fit on all rows)."""
    X, y = make_regression(40, 5, random_state=0)
    est = tn.MLPRegressor(hidden_layer_sizes=(6,), solver="sgd", momentum=0.0, batch_size=40, shuffle=False,
                          random_state=0, learning_rate_init=lr, **est_kw)
    est.partial_fit(X, y / 100)
    return est


def test_proximal_step_is_soft_thresholding_of_the_plain_step():
    lr, c = 0.05, 2.0
    plain, prox = one_step({}, lr), one_step(dict(l1=c, l1_mode="proximal"), lr)
    for Wp, Wq in zip(plain.coefs_, prox.coefs_):
        np.testing.assert_allclose(Wq, np.sign(Wp) * np.maximum(np.abs(Wp) - lr * c, 0), rtol=1e-12, atol=1e-15)
    for bp, bq in zip(plain.intercepts_, prox.intercepts_):            # biases are not penalised
        np.testing.assert_array_equal(bp, bq)
    assert sum((W == 0).sum() for W in prox.coefs_) > 0


def test_subgradient_step_adds_l1_sign_of_the_weights():
    lr, c = 0.05, 0.3
    W0 = one_step({}, 1e-300).coefs_                                    # the initial weights (a null step)
    plain, sub = one_step({}, lr), one_step(dict(l1=c), lr)
    for w0, Wp, Ws in zip(W0, plain.coefs_, sub.coefs_):
        np.testing.assert_allclose(Ws, Wp - lr * c * np.sign(w0), rtol=1e-12, atol=1e-15)


def test_lbfgs_minimises_loss_plus_l2_plus_l1():
    X, y = data()
    alpha, c = 1e-3, 1e-2
    clf = tn.MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", alpha=alpha, l1=c, max_iter=50,
                           random_state=0).fit(X, y)
    W = clf.coefs_
    want = (log_loss(y, clf.predict_proba(X)) + alpha / (2 * len(y)) * sum((w ** 2).sum() for w in W)
            + c * sum(np.abs(w).sum() for w in W))
    assert clf.loss_ == pytest.approx(want, rel=1e-9)


def test_l1_shrinks_the_weights_and_proximal_gives_exact_zeros():
    X, y = data(n=300)
    args = dict(hidden_layer_sizes=(20,), max_iter=40, random_state=0, solver="sgd", learning_rate_init=0.05)
    norms = {}
    zeros = {}
    for c in (0.0, 1e-2, 1e-1):
        clf = tn.MLPClassifier(l1=c, l1_mode="proximal", **args).fit(X, y)
        norms[c] = sum(np.abs(w).sum() for w in clf.coefs_)
        zeros[c] = sum((w == 0).sum() for w in clf.coefs_)
        assert clf.score(X, y) > 0.9
    assert norms[0.0] > norms[1e-2] > norms[1e-1]
    assert zeros[0.0] == 0 < zeros[1e-2] < zeros[1e-1]
    sub = tn.MLPClassifier(l1=3e-2, **dict(args, solver="adam", learning_rate_init=0.01)).fit(X, y)
    ref = tn.MLPClassifier(**dict(args, solver="adam", learning_rate_init=0.01)).fit(X, y)
    assert sum(np.abs(w).sum() for w in sub.coefs_) < 0.8 * sum(np.abs(w).sum() for w in ref.coefs_)


def test_l1_in_the_reported_loss():
    X, y = make_regression(60, 4, random_state=0)
    y = y / 100
    args = dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=60, shuffle=False, random_state=0,
                learning_rate_init=1e-300, max_iter=1)
    a, b = tn.MLPRegressor(**args).fit(X, y), tn.MLPRegressor(l1=0.5, **args).fit(X, y)
    assert b.loss_ - a.loss_ == pytest.approx(0.5 * sum(np.abs(w).sum() for w in a.coefs_), rel=1e-9)


@pytest.mark.parametrize("kw,what", [(dict(solver="adam"), "solver='adam'"), (dict(solver="lbfgs"), "solver='lbfgs'"),
                                     (dict(solver="sgd", optimizer="rmsprop"), "optimizer='rmsprop'")])
def test_proximal_needs_sgd(kw, what):
    X, y = data()
    with pytest.raises(ValueError, match=f"l1_mode='proximal'.*{what}"):
        tn.MLPClassifier(l1=0.1, l1_mode="proximal", max_iter=2, **kw).fit(X, y)


def test_bad_l1_values_are_refused():
    X, y = data()
    with pytest.raises(ValueError, match="'l1' parameter"):
        tn.MLPClassifier(l1=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="'l1_mode' parameter"):
        tn.MLPRegressor(l1_mode="lasso").fit(X, y)


@pytest.mark.parametrize("optimizer", sorted(tn.optim.OPTIMIZERS))
def test_l1_with_every_optimizer(optimizer):
    X, y = data()
    clf = tn.MLPClassifier(hidden_layer_sizes=(4,), optimizer=optimizer, l1=1e-2, max_iter=3, random_state=0)
    assert np.isfinite(clf.fit(X, y).loss_)


# --------------------------------------------------------------------------- fit(..., X_val=, y_val=, sample_weight_val=)
def test_explicit_validation_set_is_the_early_stopping_set():
    X, y = data(3, n=300)
    Xtr, ytr, Xv, yv = X[:200], y[:200], X[200:], y[200:]
    swv = np.random.default_rng(0).uniform(0.2, 3, len(yv))
    clf = tn.MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=15, n_iter_no_change=3,
                           random_state=0).fit(Xtr, ytr, X_val=Xv, y_val=yv, sample_weight_val=swv)
    assert clf.t_ == clf.n_iter_ * 200                                  # every training row trained: no split
    assert len(clf.validation_scores_) == len(clf.validation_loss_curve_) == clf.n_iter_
    best = int(np.argmax(clf.validation_scores_))
    # the best epoch's weights are kept: its scores are the given set's, weighted by sample_weight_val
    assert clf.score(Xv, yv, sample_weight=swv) == clf.best_validation_score_ == clf.validation_scores_[best]
    assert clf.validation_loss_curve_[best] == pytest.approx(log_loss(yv, clf.predict_proba(Xv), sample_weight=swv),
                                                             rel=1e-10)


def test_explicit_validation_set_regressor():
    X, y = make_regression(200, 4, noise=5, random_state=0)
    y = y / 50
    reg = tn.MLPRegressor(hidden_layer_sizes=(8,), early_stopping=True, max_iter=10, random_state=0)
    reg.fit(X[:150], y[:150], X_val=X[150:], y_val=y[150:])
    assert reg.t_ == reg.n_iter_ * 150
    assert reg.score(X[150:], y[150:]) == reg.best_validation_score_


def test_explicit_validation_set_through_a_pipeline():
    """HistGradientBoosting's recipe: the Pipeline transforms X_val as X (metadata routing, transform_input)."""
    import sklearn
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data(3, n=300)
    X = X * 50 + 10
    with sklearn.config_context(enable_metadata_routing=True):
        clf = tn.MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=10, random_state=0)
        pipe = Pipeline([("scale", StandardScaler()), ("mlp", clf.set_fit_request(X_val=True, y_val=True))],
                        transform_input=["X_val"])
        pipe.fit(X[:200], y[:200], X_val=X[200:], y_val=y[200:])
    assert pipe.score(X[200:], y[200:]) == clf.best_validation_score_


@pytest.mark.parametrize("kw,fit_kw,match", [
    (dict(early_stopping=True), dict(X_val="X"), "X_val is provided, but y_val was not provided"),
    (dict(early_stopping=True), dict(y_val="y"), "y_val is provided, but X_val was not provided"),
    ({}, dict(X_val="X", y_val="y"), "early_stopping is False"),
    (dict(early_stopping=True, solver="lbfgs"), dict(X_val="X", y_val="y"), "solver='lbfgs'"),
    (dict(early_stopping=True), dict(sample_weight_val="w"), "X_val and y_val were not provided"),
    (dict(early_stopping=True), dict(X_val="X3", y_val="y"), "X has 3 features, but MLPClassifier is expecting 6"),
    (dict(early_stopping=True), dict(X_val="X", y_val="y7"), r"y_val: `y` has classes not in `self.classes_`"),
    (dict(early_stopping=True), dict(X_val="X", y_val="y", sample_weight_val="w0"), "all zero"),
    (dict(early_stopping=True), dict(X_val="X", y_val="y[:5]"), "inconsistent numbers of samples"),
])
def test_bad_validation_sets_are_refused(kw, fit_kw, match):
    X, y = data()
    given = {"X": X, "y": y, "X3": X[:, :3], "y7": np.where(y == 1, 7, y), "w": np.ones(len(y)),
             "w0": np.zeros(len(y)), "y[:5]": y[:5]}
    with pytest.raises(ValueError, match=match):
        tn.MLPClassifier(max_iter=2, **kw).fit(X, y, **{k: given[v] for k, v in fit_kw.items()})
