"""Estimators under drawn parameters and inputs: a sane fit, or an exception of tinynn's documented set.

Hypothesis draws the constructor's parameters (valid ones from every table, and invalid ones), the data
(sizes down to zero rows, float32/float64/int input, magnitudes from 1e-30 to float32's and float64's edge,
NaN/inf, one class, string labels, multi-label and multi-output targets) and sample weights (zero, negative,
mixed, infinite, huge). ``fit`` (or ``partial_fit``) must then either give a model whose predictions are of the
right shape and finite, probabilities summing to 1, or raise an exception of ``tinynn.errors.DOCUMENTED``
(ValueError, TypeError, IndexError, FileNotFoundError, RuntimeError but not NotImplementedError) with a
message. KeyError, AttributeError, ZeroDivisionError, a Numba error, or a fit that trained on negative or
all-zero sample weights (sklearn refuses them; tinynn's loop would return a loss curve of zeros) fail.
"""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import tinynn as tn
from tinynn import init as tn_init
from tinynn import optim as tn_optim
from tinynn.errors import documented

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.filter_too_much])

VALID = {
    "hidden_layer_sizes": st.lists(st.integers(1, 6), max_size=2).map(tuple),
    "activation": st.sampled_from(sorted(tn.ACTIVATIONS)),
    "solver": st.sampled_from(["lbfgs", "sgd", "adam"]),
    "alpha": st.sampled_from([0.0, 1e-4, 1.0, 1e10]),
    "batch_size": st.sampled_from(["auto", 1, 7, 1000]),
    "learning_rate": st.sampled_from(["constant", "invscaling", "adaptive"]),
    "learning_rate_init": st.sampled_from([1e-12, 1e-3, 0.1, 10.0, 1e6]),
    "max_iter": st.integers(1, 4),
    "shuffle": st.booleans(),
    "random_state": st.integers(0, 3),
    "early_stopping": st.booleans(),
    "validation_fraction": st.sampled_from([0.1, 0.3, 0.5]),
    "n_iter_no_change": st.sampled_from([1, 10]),
    "momentum": st.sampled_from([0.0, 0.9]),
    "dropout": st.sampled_from([0.0, 0.3]),
    "batch_norm": st.booleans(),
    "init": st.sampled_from(["auto"] + sorted(tn_init.INITIALIZERS)),
    "optimizer": st.sampled_from([None] + sorted(tn_optim.OPTIMIZERS)),
    "lr_schedule": st.sampled_from([None, "cosine", "step", "warmup_cosine"]),
    "dtype": st.sampled_from([None, np.float32, np.float64]),
}
INVALID = {
    "hidden_layer_sizes": st.sampled_from([(0,), (-3,), (2.5,), "5", None]),
    "activation": st.sampled_from(["mish", "", None, 3]),
    "solver": st.sampled_from(["newton", None]),
    "alpha": st.sampled_from([-1.0, float("nan"), "big"]),
    "batch_size": st.sampled_from([0, -5, 2.5, "all"]),
    "learning_rate_init": st.sampled_from([0.0, -1.0, float("inf"), float("nan")]),
    "max_iter": st.sampled_from([0, -1, 2.5]),
    "validation_fraction": st.sampled_from([0.0, 1.0, 2.0]),
    "dropout": st.sampled_from([1.0, -0.1, 5]),
    "init": st.sampled_from(["he_magic", 7]),
    "optimizer": st.sampled_from(["adamax", 3]),
    "lr_schedule": st.sampled_from(["sometimes", "constant"]),
    "dtype": st.sampled_from([np.float16, np.int32, "float16", "garbage", np.complex64]),
    "device": st.sampled_from(["tpu", 0]),
    "epsilon": st.sampled_from([0.0, -1e-8]),
}


@st.composite
def params(draw):
    kw = {k: draw(s) for k, s in VALID.items() if draw(st.booleans())}
    if draw(st.sampled_from([False] * 7 + [True])):                   # now and then one invalid parameter
        k = draw(st.sampled_from(sorted(INVALID)))
        kw[k] = draw(INVALID[k])
    kw.setdefault("max_iter", 3)
    return kw


SCALES = [1.0, 1e-30, 1e6, 1e20, 1e37, 3e38, 1e300]


@st.composite
def data(draw, classifier):
    n = draw(st.sampled_from([0, 1, 2, 3, 8, 25, 25, 25, 25]))
    d = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from(SCALES + [1.0] * 6))
    X = rng.standard_normal((n, d)) * scale
    kind = draw(st.sampled_from(["float64", "float64", "float32", "int", "special", "sparse"]))
    if kind == "float32":
        with np.errstate(over="ignore"):
            X = X.astype(np.float32)
    elif kind == "int":
        X = np.clip(X, -1e9, 1e9).astype(np.int64)
    elif kind == "special" and X.size:
        X.flat[draw(st.integers(0, X.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "sparse":
        import scipy.sparse as sp

        X = sp.csr_matrix(X * (rng.random(X.shape) < 0.4))
    if classifier:
        target = draw(st.sampled_from(["binary", "binary", "multiclass", "multiclass", "one_class", "strings",
                                       "multilabel", "float"]))
        if target == "binary":
            y = rng.integers(0, 2, n)
        elif target == "multiclass":
            y = rng.integers(0, 4, n)
        elif target == "one_class":
            y = np.full(n, 7)
        elif target == "strings":
            y = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
        elif target == "multilabel":
            y = rng.integers(0, 2, (n, 3))
        else:
            y = rng.standard_normal(n)                                     # continuous: not a classification
    else:
        yscale = draw(st.sampled_from([1.0, 1e30, 1e39, 1e300]))
        y = rng.standard_normal((n, draw(st.sampled_from([1, 2])))) * yscale
        if y.shape[1] == 1 and draw(st.booleans()):
            y = y[:, 0]
    w = draw(st.sampled_from([None] * 8 + ["ones", "zeros", "negative", "mixed", "one_negative", "inf", "huge",
                                           "random", "random", "short"]))
    sw = {None: None, "ones": np.ones(n), "zeros": np.zeros(n), "negative": -np.ones(n),
          "mixed": np.where(np.arange(n) % 2, 1.0, 0.0), "one_negative": np.r_[-1.0, np.ones(max(n - 1, 0))][:n],
          "inf": np.full(n, np.inf), "huge": np.full(n, 1e308), "random": rng.random(n),
          "short": np.ones(max(n - 1, 0))}[w]
    return X, y, sw, scale


def _moderate(X, scale):
    values = X.data if hasattr(X, "tocsr") else X
    return scale <= 1e6 and np.all(np.isfinite(np.asarray(values, dtype=np.float64)))


def _check(est, X, y, sw, scale, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if method == "partial_fit" and not hasattr(est, "partial_fit"):   # lbfgs: sklearn's AttributeError
                return
            if method == "partial_fit" and est._is_classifier:
                classes = np.unique(y) if np.ndim(y) == 1 else None
                est.partial_fit(X, y, sample_weight=sw, classes=classes)
            elif method == "partial_fit":
                est.partial_fit(X, y, sample_weight=sw)
            elif method == "warm_start":
                est.set_params(warm_start=True)
                est.fit(X, y, sample_weight=sw)
                est.fit(X, y, sample_weight=sw)
            else:
                est.fit(X, y, sample_weight=sw)
        except Exception as e:  # noqa: BLE001 - the point: only the documented set may come out
            event(f"refused: {type(e).__name__}")
            assert documented(e), f"{type(e).__name__} is not in tinynn's documented set: {e}"
            assert str(e).strip(), f"{type(e).__name__} without a message"
            return
        event("fitted")
        if sw is not None and len(sw) == X.shape[0]:
            w = np.asarray(sw, dtype=np.float64)
            assert np.all(w >= 0) and np.sum(w) > 0, f"trained with sample weights that cannot train: {w}"
        assert all(np.all(np.isfinite(c)) for c in est.coefs_ + est.intercepts_)
        curve = getattr(est, "loss_curve_", None)        # nan marks an epoch that diverged under early stopping
        assert curve is None or all(isinstance(v, float) for v in curve), curve
        if not _moderate(X, scale):
            est.predict(X)                                              # runs; extreme inputs may overflow
            return
        pred = est.predict(X)
        assert pred.shape[0] == X.shape[0]
        if est._is_classifier:
            P = est.predict_proba(X)
            assert P.shape[0] == X.shape[0] and np.all(np.isfinite(P)), P
            if est._y_type != "multilabel":
                np.testing.assert_allclose(P.sum(1), 1, rtol=1e-4)
                assert set(np.unique(pred)) <= set(est.classes_)
        else:
            assert np.all(np.isfinite(pred))


@SETTINGS
@given(kw=params(), xy=data(classifier=True), method=st.sampled_from(["fit", "fit", "partial_fit", "warm_start"]))
def test_fuzz_classifier(kw, xy, method):
    X, y, sw, scale = xy
    try:
        est = tn.MLPClassifier(**kw)
    except Exception as e:  # noqa: BLE001 (the constructor only stores; sklearn validates at fit)
        assert documented(e), f"{type(e).__name__}: {e}"
        return
    _check(est, X, y, sw, scale, method)


@SETTINGS
@given(kw=params(), xy=data(classifier=False), method=st.sampled_from(["fit", "fit", "partial_fit", "warm_start"]))
def test_fuzz_regressor(kw, xy, method):
    X, y, sw, scale = xy
    est = tn.MLPRegressor(**kw)
    _check(est, X, y, sw, scale, method)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
@settings(max_examples=40, deadline=None)
@given(Xp=st.one_of(
    st.builds(lambda n, d, s: np.random.default_rng(0).standard_normal((n, d)) * s, st.integers(0, 4),
              st.integers(1, 5), st.sampled_from(SCALES)),
    st.sampled_from([None, "text", [[1, 2, 3, 4]], [[1, 2], [3]], np.ones(4), np.ones((2, 4), np.float16),
                     np.ones((2, 4), np.complex128), np.full((2, 4), np.nan), np.ones((2, 4, 1))])))
def test_fuzz_prediction_input(method, Xp):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = tn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, np.arange(30) % 3)
        try:
            if method == "score":
                out = clf.score(Xp, np.arange(len(Xp)) % 3 if hasattr(Xp, "__len__") else Xp)
            else:
                out = getattr(clf, method)(Xp)
        except Exception as e:  # noqa: BLE001
            assert documented(e) and str(e), f"{type(e).__name__}: {e}"
            return
    assert out is not None
