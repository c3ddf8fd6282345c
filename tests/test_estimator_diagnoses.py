"""The estimators' diagnoses of a fit that cannot train (tinynn/estimator/_checks.py), word for word.

A diverging or refused fit names its cause: the input (its values overflow the dtype in the forward pass, in the
loss) or else the learning rate; an L-BFGS run that ended non-finite or never moved. The functions are called
here as ``_base`` and ``_lbfgs`` call them, on a fitted model and on scipy-like results.
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

import tinynn as tn
from tinynn.errors import DivergenceError
from tinynn.estimator import _checks

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.default_rng(1)
X = RNG.standard_normal((16, 3))
YR = X @ np.array([1.0, -2.0, 0.5])
HEAD = ("Solver produced non-finite parameter weights. The input data may contain large values and need to be "
        "preprocessed. MLPRegressor: ")
WHEN = "with the weights at the start of the failing epoch"


def ones(est):
    """Every weight 1 and every bias 0 (views of the flat parameter vector): a hidden unit is the sum of x."""
    for lin in est._linears:
        lin.weight.data[...] = 1
        lin.bias.data[...] = 0
    return est


def fitted(dtype):
    return ones(tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0, dtype=dtype).fit(X, YR))


def test_the_weights_are_ones():
    est = fitted(np.float64)
    np.testing.assert_allclose(est.predict(X), 3 * np.maximum(X.sum(axis=1), 0))


def test_an_input_that_trains_is_not_the_cause():
    est = fitted(np.float64)
    assert _checks.input_overflow(est, X, YR.reshape(-1, 1), None) is None
    assert _checks.input_overflow(est, X, YR.reshape(-1, 1), np.ones(16)) is None


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_output_overflowing_float32_in_the_forward_pass():
    est = fitted(np.float32)
    Xb = (np.abs(X) * 1e38).astype(np.float32)                            # the first Linear overflows float32
    T = YR.reshape(-1, 1).astype(np.float32)
    err = _checks.input_overflow(est, Xb, T, None)
    facts = f"largest |x| = {np.abs(Xb).max():.3g}, largest |y| = {np.abs(T).max():.3g}"
    assert str(err) == (HEAD + f"the network's output on X is not finite {WHEN}: the input's values ({facts}) "
                        "overflow float32 in the forward pass. The input is the cause, not the learning rate: scale X "
                        "and y (e.g. StandardScaler) or fit in float64 (dtype=np.float64).")
    assert isinstance(err, ValueError)


@pytest.mark.parametrize("dtype,scale", [(np.float32, 1e19), (np.float64, 1e160)])
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_loss_overflowing_with_a_finite_output(dtype, scale):
    """The output fits the dtype, its square (the squared error) does not."""
    est = fitted(dtype)
    Xb = (np.abs(X) * scale).astype(dtype)
    T = YR.reshape(-1, 1).astype(dtype)
    Z = est.predict(Xb)
    assert np.isfinite(Z).all()
    name = np.dtype(dtype).name
    facts = f"largest |x| = {np.abs(Xb).max():.3g}, largest |y| = {np.abs(T).max():.3g}"
    advice = "scale X and y (e.g. StandardScaler)" + (" or fit in float64 (dtype=np.float64)" if dtype == np.float32
                                                      else "")
    err = _checks.input_overflow(est, Xb, T, np.ones(16))
    assert str(err) == (HEAD + f"the loss on (X, y) is inf {WHEN}, although the network's output is finite (largest "
                        f"|output| = {np.abs(Z).max():.3g}; {facts}): the values overflow {name} in the loss. The "
                        f"input is the cause, not the learning rate: {advice}.")


def test_sparse_input_is_described_by_its_stored_values():
    est = fitted(np.float32)
    Xb = sp.csr_matrix((np.abs(X) * 1e38).astype(np.float32))
    T = YR.reshape(-1, 1).astype(np.float32)
    assert f"largest |x| = {np.abs(Xb.data).max():.3g}," in str(_checks.input_overflow(est, Xb, T, None))


def test_integer_targets_are_not_described():
    """A classifier's class indices are no values that can overflow: only |x| is named."""
    est = ones(tn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0, dtype=np.float32).fit(
        X, np.arange(16) % 3))
    Xb = (np.abs(X) * 1e38).astype(np.float32)
    text = str(_checks.input_overflow(est, Xb, (np.arange(16) % 3).astype(np.int64), None))
    assert f"(largest |x| = {np.abs(Xb).max():.3g}) overflow float32 in the forward pass" in text


def test_the_diagnosis_leaves_the_model_as_it_was():
    est = fitted(np.float32)
    before = [w.copy() for w in est.coefs_ + est.intercepts_]
    _checks.input_overflow(est, (X * 1e19).astype(np.float32), YR.reshape(-1, 1).astype(np.float32), None)
    for a, b in zip(before, est.coefs_ + est.intercepts_):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ L-BFGS
def test_guard_refuses_a_non_finite_start_only():
    est = fitted(np.float64)
    T = YR.reshape(-1, 1)
    calls = []

    def fun(theta):
        calls.append(theta)
        return float("nan"), np.zeros(2)

    guarded = _checks.guard_lbfgs(est, fun, X, T, None)
    with pytest.raises(ValueError) as e:
        guarded(np.zeros(2))
    assert str(e.value) == "MLPRegressor: solver='lbfgs': the objective at the initial weights is nan; scale X and y."
    value, grad = guarded(np.ones(2))                               # later calls: scipy's line search decides
    assert math.isnan(value) and len(calls) == 2


@pytest.mark.parametrize("value,grad,refused", [(1.0, [0.0, np.inf], True), (np.inf, [0.0, 0.0], True),
                                                (1.0, [0.0, 1.0], False)])
def test_guard_checks_value_and_gradient(value, grad, refused):
    est = fitted(np.float64)
    guarded = _checks.guard_lbfgs(est, lambda th: (value, np.array(grad)), X, YR.reshape(-1, 1), None)
    if refused:
        with pytest.raises(ValueError, match=r"^MLPRegressor: solver='lbfgs': the objective at the initial weights is "):
            guarded(np.zeros(2))
    else:
        assert guarded(np.zeros(2))[0] == value


def test_guard_names_the_input_when_it_is_the_cause():
    est = fitted(np.float32)
    Xb = (np.abs(X) * 1e38).astype(np.float32)
    T = YR.reshape(-1, 1).astype(np.float32)
    guarded = _checks.guard_lbfgs(est, lambda th: (float("inf"), np.zeros(2)), Xb, T, None)
    with pytest.raises(ValueError) as e:
        guarded(np.zeros(2))
    facts = f"largest |x| = {np.abs(Xb).max():.3g}, largest |y| = {np.abs(T).max():.3g}"
    assert str(e.value) == (
        "MLPRegressor: solver='lbfgs': the objective at the initial weights is inf; the network's output on X is not "
        f"finite at the initial weights: the input's values ({facts}) overflow float32 in the forward pass. The input "
        "is the cause, not the learning rate: scale X and y (e.g. StandardScaler) or fit in float64 "
        "(dtype=np.float64).")


def res(x=(1.0, 2.0), fun=0.5, status=0, nit=3, message="CONVERGENCE"):
    return SimpleNamespace(x=np.array(x), fun=fun, status=status, nit=nit, message=message)


@pytest.mark.parametrize("r,shown", [(res(x=(1.0, np.nan)), "0.5"), (res(fun=np.inf), "inf"),
                                     (res(fun=np.nan, status=2, nit=0), "nan")])
def test_lbfgs_result_not_finite(r, shown):
    with pytest.raises(DivergenceError) as e:
        _checks.check_lbfgs_result(tn.MLPClassifier(), r)
    assert str(e.value) == (f"MLPClassifier: solver='lbfgs' ended with a non-finite objective ({shown}) or weights; "
                            "scale X and y, or raise alpha")


def test_lbfgs_result_that_never_moved():
    with pytest.raises(ValueError) as e:
        _checks.check_lbfgs_result(tn.MLPRegressor(), res(fun=1.25, status=2, nit=0, message="ABNORMAL"))
    assert str(e.value) == (
        "MLPRegressor: solver='lbfgs' could not take a single step from the initial weights (ABNORMAL; objective "
        "1.25), so nothing was trained. Usual causes: X or y too large (scale them, e.g. StandardScaler) or float32 "
        "precision (fit in float64)")


@pytest.mark.parametrize("r", [res(status=2, nit=1), res(status=1, nit=0), res(status=0, nit=0)])
def test_lbfgs_results_that_are_trained_models(r):
    assert _checks.check_lbfgs_result(tn.MLPRegressor(), r) is None


# ------------------------------------------------------------------ dtype and weights
@pytest.mark.parametrize("given,dtype,expected", [
    (None, np.float32, np.float32), (None, np.float64, np.float64), (None, np.int64, np.float64),
    (np.float32, np.float64, np.float32), ("float64", np.float32, np.float64), (np.dtype("float32"), np.int64, np.float32)])
def test_fit_dtype(given, dtype, expected):
    est = tn.MLPRegressor(dtype=given)
    assert _checks.fit_dtype(est, X.astype(dtype)) == np.dtype(expected)


def test_fit_dtype_of_a_list_is_float64():
    assert _checks.fit_dtype(tn.MLPRegressor(), [[1.0, 2.0]]) == np.dtype(np.float64)


def test_sample_weight_is_returned_as_float64():
    sw = _checks.check_sample_weight(tn.MLPRegressor(), np.array([1, 0, 2], dtype=np.int32), X[:3])
    assert sw.dtype == np.float64 and list(sw) == [1.0, 0.0, 2.0]


@pytest.mark.parametrize("sw", [[1.0, -1.0, 1.0], [np.nan, 1.0, 1.0], [np.inf, 1.0, 1.0]])
def test_negative_or_non_finite_weights_are_refused(sw):
    with pytest.raises(ValueError):
        _checks.check_sample_weight(tn.MLPRegressor(), np.array(sw), X[:3])


def test_split_weights_without_weights_pass():
    assert _checks.check_split_weights(tn.MLPRegressor(), None, None) is None
    assert _checks.check_split_weights(tn.MLPRegressor(), np.array([0.0, 1.0]), np.array([1e-300])) is None


@pytest.mark.parametrize("w", [np.inf, np.nan])
def test_a_non_finite_scalar_weight_is_refused(w):
    """A scalar sample_weight is spread over the rows by sklearn without its finiteness check: tinynn's."""
    with pytest.raises(ValueError) as e:
        tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1).fit(X, YR, sample_weight=w)
    assert str(e.value) == "MLPRegressor: sample_weight holds NaN or infinite values; expected finite weights >= 0"


def test_an_older_sklearn_without_the_weight_keywords(monkeypatch):
    """scikit-learn before ensure_non_negative/allow_all_zero_weights: the plain check, then tinynn's own."""
    import sklearn.utils.validation as v

    real = v._check_sample_weight

    def older(sample_weight, X, dtype=None):                       # no sign check, all zeros allowed
        return real(sample_weight, X, dtype=dtype, ensure_non_negative=False, allow_all_zero_weights=True)

    monkeypatch.setattr(v, "_check_sample_weight", older)
    est = tn.MLPRegressor()
    with pytest.raises(ValueError) as e:
        _checks.check_sample_weight(est, np.array([1.0, -0.5, 2.0]), X[:3])
    assert str(e.value) == ("Negative values in data passed to `sample_weight` (MLPRegressor: expected weights >= 0, "
                            "got -0.5)")
    np.testing.assert_array_equal(_checks.check_sample_weight(est, np.array([1, 0, 2]), X[:3]), [1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="^MLPRegressor: sample_weight is all zero"):
        _checks.check_sample_weight(est, np.zeros(3), X[:3])


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float64])
def test_sample_weight_comes_back_float64(dtype):
    sw = _checks.check_sample_weight(tn.MLPRegressor(), np.array([1, 0, 2], dtype=dtype), X[:3])
    assert sw.dtype == np.float64 and list(sw) == [1.0, 0.0, 2.0]


def test_negative_weights_are_sklearns_refusal():
    with pytest.raises(ValueError) as e:
        tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1).fit(X, YR, sample_weight=np.r_[-1.0, np.ones(15)])
    assert str(e.value) == "Negative values in data passed to `sample_weight`."


def test_a_total_that_overflows_is_refused_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError) as e:
            _checks.check_sample_weight(tn.MLPClassifier(), np.full(3, 1e308), X[:3])
    assert str(e.value) == "MLPClassifier: sample_weight sums to inf (overflow); scale the weights down"


def test_an_older_sklearn_keeps_float64_weights(monkeypatch):
    import sklearn.utils.validation as v

    real = v._check_sample_weight
    monkeypatch.setattr(v, "_check_sample_weight", lambda sample_weight, X, dtype=None: real(
        sample_weight, X, dtype=dtype, ensure_non_negative=False, allow_all_zero_weights=True))
    sw = _checks.check_sample_weight(tn.MLPRegressor(), np.array([1, 3], dtype=np.float32), X[:2])
    assert sw.dtype == np.float64 and list(sw) == [1.0, 3.0]


def _tiny_first_layer(est):
    """First Linear 1e-30, the rest 1: the output is 9e-30 Σx, but dL/dW1 = x (dL/dZ) is of the order x·Z."""
    ones(est)
    est._linears[0].weight.data[...] = 1e-30
    return est


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("sw", [None, np.ones(16)])
def test_gradient_overflowing_float32_with_a_finite_loss(sw):
    est = _tiny_first_layer(fitted(np.float32))
    Xb = (np.abs(X) * 1e34).astype(np.float32)
    T = YR.reshape(-1, 1).astype(np.float32)
    assert np.isfinite(est.predict(Xb)).all() and est.predict(Xb).max() < 1e6
    before = [w.copy() for w in est.coefs_ + est.intercepts_]
    err = _checks.input_overflow(est, Xb, T, sw)
    facts = f"largest |x| = {np.abs(Xb).max():.3g}, largest |y| = {np.abs(T).max():.3g}"
    assert str(err) == (HEAD + f"the gradient on (X, y) is not finite {WHEN}, although the output and the loss are: "
                        f"the input's values ({facts}) overflow float32 in the backward pass. The input is the cause, "
                        "not the learning rate: scale X and y (e.g. StandardScaler) or fit in float64 "
                        "(dtype=np.float64).")
    for a, b in zip(before, est.coefs_ + est.intercepts_):                 # the weights are left as they were
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_an_all_zero_sparse_input_has_largest_value_zero():
    est = fitted(np.float64)
    Xb = sp.csr_matrix((16, 3))
    T = np.full((16, 1), 1e200)
    Z = est.predict(Xb)
    err = _checks.input_overflow(est, Xb, T, None)
    assert str(err) == (HEAD + f"the loss on (X, y) is inf {WHEN}, although the network's output is finite (largest "
                        f"|output| = {np.abs(Z).max():.3g}; largest |x| = 0, largest |y| = 1e+200): the values overflow "
                        "float64 in the loss. The input is the cause, not the learning rate: scale X and y (e.g. "
                        "StandardScaler).")


def test_rows_of_zero_weight_are_not_the_cause():
    """Rows whose backward pass would overflow float32 do not count when their weight is 0 (they add nothing
    to the gradient); unweighted, they are the cause."""
    est = _tiny_first_layer(fitted(np.float32))
    Xb = np.abs(X).astype(np.float32)
    Xb[:4] = Xb[:4] * np.float32(1e35)
    T = YR.reshape(-1, 1).astype(np.float32)
    assert _checks.input_overflow(est, Xb, T, np.r_[np.zeros(4), np.ones(12)]) is None
    assert "the gradient on (X, y) is not finite" in str(_checks.input_overflow(est, Xb, T, None))


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_the_diagnosis_weighs_the_rows_as_the_fit_does(solver):
    """A row whose squared error overflows float32 gives an infinite loss; weighted 0 it gives 0 · inf = nan
    (as numpy's weighted mean, and sklearn's, does): the diagnosis evaluates the loss the fit evaluated."""
    rng = np.random.default_rng(0)
    X32 = rng.standard_normal((20, 3)).astype(np.float32)
    y = rng.standard_normal(20)
    y[0] = 1e20
    for sw, value in [(None, "inf"), (np.r_[0.0, np.ones(19)], "nan"), (np.r_[2.0, np.ones(19)], "inf")]:
        with pytest.raises(ValueError) as e:
            tn.MLPRegressor(solver=solver, max_iter=3, dtype=np.float32, random_state=0).fit(X32, y, sample_weight=sw)
        assert f"the loss on (X, y) is {value} " in str(e.value), (sw, str(e.value))
        if solver == "lbfgs":
            assert f"the objective at the initial weights is {value};" in str(e.value)
