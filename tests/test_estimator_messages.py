"""Every refusal and warning of the estimators, word for word.

tinynn promises errors that name what was expected and what came: each message here is the whole text (not a
fragment), so a refusal that loses its subject, its numbers or its advice fails. The fits are tiny (a few
rows, a hidden layer of 3, one or two epochs).
"""
import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import tinynn as tn

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.default_rng(0)
X = RNG.standard_normal((24, 3))
Y2 = np.arange(24) % 2
Y3 = np.arange(24) % 3
YR = X @ np.array([1.0, -2.0, 0.5])
SMALL = dict(hidden_layer_sizes=(3,), max_iter=2, random_state=0)


def message(exc, fn, *args, **kw):
    with pytest.raises(exc) as e:
        fn(*args, **kw)
    return str(e.value)


# ------------------------------------------------------------------ refusals at fit, one table
def _fit(est, *args, **kw):
    return lambda: est.fit(*args, **kw)


FIT_REFUSALS = [
    ("hidden_layer_sizes", lambda: tn.MLPClassifier([3, 0], max_iter=1).fit(X, Y2),
     "hidden_layer_sizes must be positive integers, got [3, 0]."),
    ("partial_fit early stopping", lambda: tn.MLPClassifier(early_stopping=True, **SMALL).partial_fit(X, Y2, classes=[0, 1]),
     "partial_fit does not support early_stopping=True"),
    ("sample_weight_val alone", lambda: tn.MLPClassifier(early_stopping=True, **SMALL).fit(X, Y2, sample_weight_val=np.ones(24)),
     "sample_weight_val is provided, but X_val and y_val were not provided."),
    ("X_val alone", lambda: tn.MLPClassifier(early_stopping=True, **SMALL).fit(X, Y2, X_val=X),
     "X_val is provided, but y_val was not provided."),
    ("y_val alone", lambda: tn.MLPClassifier(early_stopping=True, **SMALL).fit(X, Y2, y_val=Y2),
     "y_val is provided, but X_val was not provided."),
    ("X_val without early stopping", lambda: tn.MLPClassifier(**SMALL).fit(X, Y2, X_val=X, y_val=Y2),
     "X_val and y_val are passed to fit while at the same time early_stopping is False. When passing X_val and "
     "y_val to fit, early_stopping should be set to True (they are the early-stopping set: validation_scores_, "
     "validation_loss_curve_)."),
    ("X_val with lbfgs", lambda: tn.MLPClassifier(early_stopping=True, solver="lbfgs", **SMALL).fit(X, Y2, X_val=X, y_val=Y2),
     "X_val and y_val are passed to fit, but solver='lbfgs' does no early stopping; use solver='sgd' or 'adam'."),
    ("y_val with a new class", lambda: tn.MLPClassifier(early_stopping=True, **SMALL).fit(X, Y2, X_val=X, y_val=Y3),
     "y_val: `y` has classes not in `self.classes_`. `self.classes_` has [0 1]. 'y' has [0 1 2]."),
    ("all-zero sample_weight_val", lambda: tn.MLPClassifier(early_stopping=True, **SMALL).fit(
        X, Y2, X_val=X[:4], y_val=Y2[:4], sample_weight_val=np.zeros(4)),
     "MLPClassifier: sample_weight is all zero: there is nothing to train on (expected at least one positive weight)"),
    ("proximal with adam", lambda: tn.MLPClassifier(l1=0.1, l1_mode="proximal", **SMALL).fit(X, Y2),
     "MLPClassifier: l1_mode='proximal' is the proximal SGD step (soft thresholding after each step); it needs "
     "solver='sgd' (or optimizer='sgd'), got solver='adam'. Use l1_mode='subgradient' with solver='adam'."),
    ("proximal with an optimizer", lambda: tn.MLPRegressor(l1=0.1, l1_mode="proximal", solver="sgd", optimizer="adamw",
                                                           **SMALL).fit(X, YR),
     "MLPRegressor: l1_mode='proximal' is the proximal SGD step (soft thresholding after each step); it needs "
     "solver='sgd' (or optimizer='sgd'), got optimizer='adamw'. Use l1_mode='subgradient' with optimizer='adamw'."),
    # lbfgs has no optimizer: optimizer='sgd' does not make the proximal step available to it
    ("proximal with lbfgs", lambda: tn.MLPRegressor(l1=0.1, l1_mode="proximal", solver="lbfgs", optimizer="sgd",
                                                    **SMALL).fit(X, YR),
     "MLPRegressor: l1_mode='proximal' is the proximal SGD step (soft thresholding after each step); it needs "
     "solver='sgd' (or optimizer='sgd'), got optimizer='sgd'. Use l1_mode='subgradient' with optimizer='sgd'."),
    ("two averages", lambda: tn.MLPClassifier(snapshots=2, swa=True, **SMALL).fit(X, Y2),
     "choose at most one of snapshots, swa and ema; got ['snapshots', 'swa']"),
    ("three averages", lambda: tn.MLPClassifier(snapshots=2, swa=True, ema=0.9, **SMALL).fit(X, Y2),
     "choose at most one of snapshots, swa and ema; got ['snapshots', 'swa', 'ema']"),
    ("swa and ema", lambda: tn.MLPClassifier(swa=True, ema=0.9, **SMALL).fit(X, Y2),
     "choose at most one of snapshots, swa and ema; got ['swa', 'ema']"),
    ("snapshots and a schedule", lambda: tn.MLPClassifier(snapshots=2, lr_schedule="cosine", **SMALL).fit(X, Y2),
     "snapshots sets its own learning-rate schedule; leave lr_schedule=None"),
    ("swa and a schedule", lambda: tn.MLPClassifier(swa=True, lr_schedule="cosine", **SMALL).fit(X, Y2),
     "swa sets its own learning-rate schedule; leave lr_schedule=None"),
    ("multiclass-multioutput", lambda: tn.MLPClassifier(**SMALL).fit(X, np.stack([Y3, Y2], axis=1)),
     "MLPClassifier: multiclass-multioutput targets are not supported"),
    ("warm start with other classes", lambda: tn.MLPClassifier(warm_start=True, **SMALL).fit(X, Y3).fit(X, Y2),
     "warm_start can only be used where `y` has the same classes as in the previous call to fit. Previously got "
     "[0 1 2], `y` has [0 1]"),
    ("partial_fit with a new class", lambda: tn.MLPClassifier(**SMALL).partial_fit(X, Y2, classes=[0, 1]).partial_fit(X, Y3),
     "`y` has classes not in `self.classes_`. `self.classes_` has [0 1]. 'y' has [0 1 2]."),
    ("partial_fit without classes", lambda: tn.MLPClassifier(**SMALL).partial_fit(X, Y2),
     "classes must be passed on the first call to partial_fit."),
    ("partial_fit with other classes", lambda: tn.MLPClassifier(**SMALL).partial_fit(X, Y2, classes=[0, 1]).partial_fit(
        X, Y2, classes=[0, 1, 2]),
     "`classes=[0, 1, 2]` is not the same as on the first call to partial_fit, which was [0 1]"),
    ("multi-label columns", lambda: tn.MLPClassifier(**SMALL).partial_fit(X, np.stack([Y2, 1 - Y2], 1)).partial_fit(
        X, np.stack([Y2, 1 - Y2, Y2], 1)),
     "expected a multi-label indicator with 2 columns"),
    ("multi-label dict class_weight", lambda: tn.MLPClassifier(class_weight={0: 2.0}, **SMALL).fit(X, np.stack([Y2, 1 - Y2], 1)),
     "MLPClassifier: class_weight for multi-label targets must be None or 'balanced' (a dict gives one weight per "
     "class of a single target), got {0: 2.0}"),
    ("balanced in partial_fit", lambda: tn.MLPClassifier(class_weight="balanced", **SMALL).partial_fit(X, Y2, classes=[0, 1]),
     "class_weight 'balanced' is not supported for partial_fit. In order to use 'balanced' weights, use "
     "compute_class_weight('balanced', classes=classes, y=y). In place of y you can use a large enough sample of the "
     "full training set target to properly estimate the class frequency distributions. Pass the resulting weights "
     "as the class_weight parameter."),
    ("poisson with negative y", lambda: tn.MLPRegressor(loss="poisson", **SMALL).fit(X, YR),
     "Some value(s) of y are negative which is not allowed for Poisson regression."),
    ("regressor outputs", lambda: tn.MLPRegressor(**SMALL).partial_fit(X, YR).partial_fit(X, np.stack([YR, YR], 1)),
     "y has 2 outputs, but the model was fitted with 1"),
    ("validation set too small", lambda: tn.MLPRegressor(early_stopping=True, **SMALL).fit(X[:10], YR[:10]),
     "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."),
    ("all-zero sample_weight", lambda: tn.MLPRegressor(**SMALL).fit(X, YR, sample_weight=np.zeros(24)),
     "MLPRegressor: sample_weight is all zero: there is nothing to train on (expected at least one positive weight)"),
    ("overflowing sample_weight", lambda: tn.MLPRegressor(**SMALL).fit(X, YR, sample_weight=np.full(24, 1e308)),
     "MLPRegressor: sample_weight sums to inf (overflow); scale the weights down"),
    ("dtype int32", lambda: tn.MLPRegressor(dtype=np.int32, **SMALL).fit(X, YR),
     "MLPRegressor: dtype=int32 is not supported; expected None, np.float32 or np.float64 (the dtypes tinynn's "
     "kernels run on)"),
    ("dtype float16", lambda: tn.MLPClassifier(dtype="float16", **SMALL).fit(X, Y2),
     "MLPClassifier: dtype=float16 is not supported; expected None, np.float32 or np.float64 (the dtypes tinynn's "
     "kernels run on)"),
    ("dtype not a dtype", lambda: tn.MLPClassifier(dtype="no-such-type", **SMALL).fit(X, Y2),
     "MLPClassifier: dtype='no-such-type' is not supported; expected None, np.float32 or np.float64 (the dtypes "
     "tinynn's kernels run on)"),
    ("X beyond float32", lambda: tn.MLPRegressor(dtype=np.float32, **SMALL).fit(np.where(X > 1, 1e300, X), YR),
     "MLPRegressor: X holds values beyond the range of float32 (largest finite 3.4e+38): they became inf when cast to "
     "float32, the fit dtype. Scale X (e.g. StandardScaler) or fit in float64 (dtype=np.float64)."),
    ("y beyond float32", lambda: tn.MLPRegressor(dtype=np.float32, **SMALL).fit(X, np.where(YR > 1, 1e300, YR)),
     "MLPRegressor: y holds values beyond the range of float32 (largest finite 3.4e+38): they became inf when cast to "
     "float32, the fit dtype. Scale y or fit in float64 (dtype=np.float64)."),
]


@pytest.mark.parametrize("fn,expected", [c[1:] for c in FIT_REFUSALS], ids=[c[0] for c in FIT_REFUSALS])
def test_fit_refusal_message(fn, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # the overflow of the casts refused here
        got = message((ValueError, TypeError), fn)
    assert got == expected


def test_two_validation_rows_are_enough():
    est = tn.MLPRegressor(early_stopping=True, **SMALL).fit(X[:11], YR[:11])     # 10 % of 11 rounds up to 2
    assert len(est.validation_scores_) == 2


def test_a_split_that_leaves_one_side_without_weight():
    """One row of positive weight: wherever the early-stopping split puts it, the other side weighs nothing."""
    got = set()
    for row in range(24):
        sw = (np.arange(24) == row).astype(float)
        est = tn.MLPRegressor(early_stopping=True, validation_fraction=0.25, **SMALL)
        got.add(message(ValueError, est.fit, X, YR, sample_weight=sw))
    assert got == {
        "MLPRegressor: sample_weight of the training part (after the early-stopping split) is all zero: there is "
        "nothing to train on (expected at least one positive weight)",
        "MLPRegressor: sample_weight of the validation part (early_stopping) is all zero: there is nothing to score "
        "on; lower validation_fraction or spread the weights (expected at least one positive weight)"}


def test_partial_fit_of_lbfgs_is_absent_and_says_why():
    est = tn.MLPClassifier(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError) as e:
        est.partial_fit(X, Y2)
    assert str(e.value.__cause__) == ("partial_fit is only available for stochastic optimizers. lbfgs is not "
                                      "stochastic.")
    assert hasattr(tn.MLPClassifier(solver="sgd"), "partial_fit") and hasattr(tn.MLPRegressor(), "partial_fit")


@pytest.mark.parametrize("attr", ["coefs_", "intercepts_", "_optimizer", "_n_features_out"])
def test_unfitted_attributes_say_so(attr):
    expected = {"_optimizer": "_optimizer: no stochastic fit yet"}.get(attr, f"{attr}: the estimator is not fitted yet")
    assert message(AttributeError, getattr, tn.MLPRegressor(), attr) == expected


def test_lbfgs_fit_has_no_stochastic_optimizer():
    est = tn.MLPRegressor(solver="lbfgs", **SMALL).fit(X, YR)
    assert message(AttributeError, getattr, est, "_optimizer") == "_optimizer: no stochastic fit yet"


@pytest.mark.parametrize("layer", [2, -3, 1.0, True])
def test_transform_layer_outside_the_network(layer):
    est = tn.MLPClassifier(hidden_layer_sizes=(4, 3), max_iter=1, random_state=0).fit(X, Y2)
    est.set_params(transform_layer=layer)
    assert message(ValueError, est.transform, X) == (
        f"MLPClassifier: transform_layer={layer!r} is not a hidden layer of this network: it has 2 hidden layer(s) "
        "(4, 3), so expected an integer in [-2, 1]")


@pytest.mark.parametrize("layer,width", [(-2, 4), (-1, 3), (0, 4), (1, 3)])
def test_transform_layer_at_the_ends_of_the_range(layer, width):
    est = tn.MLPClassifier(hidden_layer_sizes=(4, 3), max_iter=1, random_state=0, transform_layer=layer).fit(X, Y2)
    assert est.transform(X).shape == (24, width)
    assert list(est.get_feature_names_out()) == [f"mlpclassifier{i}" for i in range(width)]


# ------------------------------------------------------------------ warnings, word for word
def test_max_iter_warning():
    with pytest.warns(ConvergenceWarning) as w:
        tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0, tol=0).fit(X, YR)
    assert [str(m.message) for m in w if m.category is ConvergenceWarning] == [
        "Stochastic Optimizer: Maximum iterations (2) reached and the optimization hasn't converged yet."]


def test_no_max_iter_warning_when_stopped_early():
    # tol=1e9: no epoch after the first improves by more than tol; sklearn's rule stops when the count of such
    # epochs exceeds n_iter_no_change=1, i.e. after the third
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=50, random_state=0, tol=1e9,
                              n_iter_no_change=1).fit(X, YR)
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3


def test_lbfgs_warning():
    with pytest.warns(ConvergenceWarning) as w:
        est = tn.MLPRegressor(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=1, random_state=0).fit(X, YR)
    (text,) = [str(m.message) for m in w if m.category is ConvergenceWarning]
    assert re.fullmatch(r"lbfgs failed to converge after 1 iteration\(s\) \(status=1\): .+\. Increase max_iter or "
                        r"max_fun, or scale the data\.", text), text
    assert est.n_iter_ == 1


@pytest.mark.parametrize("batch_size,warns", [(24, False), (25, True)])
def test_batch_size_larger_than_the_data_warns_and_is_clipped(batch_size, warns):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        a = tn.MLPRegressor(batch_size=batch_size, **SMALL).fit(X, YR)
    texts = [str(m.message) for m in w if m.category is UserWarning]
    expected = ["Got `batch_size` less than 1 or larger than sample size. It is going to be clipped"]
    assert texts == (expected if warns else [])
    b = tn.MLPRegressor(batch_size=24, **SMALL).fit(X, YR)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])         # clipped to the 24 rows


def test_verbose_lines(capsys):
    est = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=20, random_state=0, tol=1e9, n_iter_no_change=1,
                          verbose=True).fit(X, YR)
    lines = capsys.readouterr().out.splitlines()
    c = est.loss_curve_
    assert lines == [f"Iteration 1, loss = {c[0]:.8f}", f"Iteration 2, loss = {c[1]:.8f}",
                     f"Iteration 3, loss = {c[2]:.8f}",
                     "Training loss did not improve more than tol=1000000000.000000 for 1 consecutive epochs. "
                     "Stopping."]


def test_verbose_lines_with_early_stopping(capsys):
    est = tn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=20, random_state=0, tol=1e9, n_iter_no_change=1,
                           early_stopping=True, validation_fraction=0.25, verbose=True).fit(X, Y2)
    lines = capsys.readouterr().out.splitlines()
    c, s = est.loss_curve_, est.validation_scores_
    assert lines == [f"Iteration 1, loss = {c[0]:.8f}, validation score = {s[0]:.6f}",
                     f"Iteration 2, loss = {c[1]:.8f}, validation score = {s[1]:.6f}",
                     f"Iteration 3, loss = {c[2]:.8f}, validation score = {s[2]:.6f}",
                     "Validation score did not improve more than tol=1000000000.000000 for 1 consecutive epochs. "
                     "Stopping."]


def test_verbose_adaptive_rate_line(capsys):
    # sgd's "adaptive" rate divides the rate by 5 instead of stopping (sklearn), and says so
    est = tn.MLPRegressor(hidden_layer_sizes=(3,), solver="sgd", learning_rate="adaptive", learning_rate_init=0.01,
                          max_iter=3, random_state=0, tol=1e9, n_iter_no_change=1, verbose=True).fit(X, YR)
    lines = capsys.readouterr().out.splitlines()
    assert lines[3] == ("Training loss did not improve more than tol=1000000000.000000 for 1 consecutive epochs. "
                        "Setting learning rate to 0.002000")
    assert est.n_iter_ == 3


@pytest.mark.parametrize("lr,dtype,head", [
    (3.0, np.float64, ""),                                        # a finite loss above the guard's ceiling
    (1e10, np.float32, "Solver produced non-finite parameter weights. The input data may contain large values and "
                       "need to be preprocessed. ")])             # a loss that overflowed: sklearn's sentence first
def test_divergence_message(lr, dtype, head):
    Xd = np.random.default_rng(4).standard_normal((60, 4))
    yd = Xd @ np.array([1.0, 2.0, 3.0, 4.0])
    est = tn.MLPRegressor(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=lr, max_iter=30, random_state=0,
                          dtype=dtype, batch_size=10)
    with pytest.raises(tn.DivergenceError) as e:
        est.fit(Xd, yd)
    text = str(e.value)
    m = re.fullmatch(re.escape(head + "MLPRegressor: the training loss became ") + r"(\S+) (.+)"
                     + re.escape(f" (learning_rate_init={lr}: try a lower learning_rate_init)"), text)
    assert m, text
    assert float(m.group(1)) == e.value.value and np.isfinite(e.value.value) == (head == "")


def test_validation_targets_beyond_float32_are_refused():
    with pytest.raises(ValueError) as e:
        tn.MLPRegressor(early_stopping=True, dtype=np.float32, **SMALL).fit(X, YR, X_val=X[:5],
                                                                             y_val=np.full(5, 1e300))
    assert str(e.value) == (
        "MLPRegressor: y holds values beyond the range of float32 (largest finite 3.4e+38): they became inf when cast "
        "to float32, the fit dtype. Scale y or fit in float64 (dtype=np.float64).")


def test_validation_targets_of_another_width_after_warm_start():
    est = tn.MLPRegressor(early_stopping=True, warm_start=True, **SMALL).fit(X, YR)
    with pytest.raises(ValueError) as e:
        est.fit(X, YR, X_val=X[:5], y_val=np.c_[YR[:5], YR[:5]])
    assert str(e.value) == "y_val: y has 2 outputs, but the model was fitted with 1"


def test_validation_targets_are_checked_against_this_fits_targets():
    """A refit (not warm) may change the number of outputs, its y_val with it; a y_val of another width than this
    fit's y is refused before anything trains (it used to be compared with the previous model, or not at all)."""
    Y = np.c_[YR, -YR]
    est = tn.MLPRegressor(early_stopping=True, **SMALL).fit(X, YR)
    est.fit(X, Y, X_val=X[:5], y_val=Y[:5])
    assert est.n_outputs_ == 2 and len(est.validation_scores_) == 2
    fresh = tn.MLPRegressor(early_stopping=True, **SMALL)
    with pytest.raises(ValueError) as e:
        fresh.fit(X, YR, X_val=X[:5], y_val=Y[:5])
    assert str(e.value) == "y_val: y has 2 outputs, but the model was fitted with 1"
    assert not hasattr(fresh, "n_iter_")


def test_loaded_regressor_keeps_its_width_for_partial_fit(tmp_path):
    est = tn.MLPRegressor(**SMALL).fit(X, YR)
    back = tn.MLPRegressor.load(est.save(tmp_path / "reg"))
    with pytest.raises(ValueError) as e:
        back.partial_fit(X, np.c_[YR, YR])
    assert str(e.value) == "y has 2 outputs, but the model was fitted with 1"
    back.partial_fit(X, YR)
