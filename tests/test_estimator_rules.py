"""The estimators' rules, stated from their definitions and checked on small fits.

- the output layer: identity (squared error, absolute error, huber), exp (poisson's log link), logistic (binary,
  multi-label), softmax (multiclass), applied to the last hidden layer's activations (``transform``) times the
  last coefs_/intercepts_;
- sklearn's Glorot-uniform init: U(-a, a), a = sqrt(f / (fan_in + fan_out)), f = 2 for logistic, else 6;
- sklearn's stopping rule: an epoch does not improve when loss > best_loss - tol (validation: score <
  best + tol); the fit stops when more than n_iter_no_change epochs in a row did not;
- batch_size "auto" = min(200, n); SWA's start: round(0.75 max_iter), at least 1, at most max_iter - 1.
"""
import math

import numpy as np
import pytest
from scipy.special import expit, softmax

import tinynn as tn
from tinynn.estimator._averages import averaging_start

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.default_rng(2)
X = RNG.standard_normal((40, 4))
Y2 = (X[:, 0] > 0).astype(int)
Y3 = np.arange(40) % 3
YR = X @ np.array([1.0, -2.0, 0.5, 0.0])


def head(est, Xq):
    """The last Linear on the last hidden layer's activations: the raw output."""
    return est.transform(Xq) @ est.coefs_[-1] + est.intercepts_[-1]


@pytest.mark.parametrize("loss,link", [("squared_error", lambda z: z), ("absolute_error", lambda z: z),
                                       ("huber", lambda z: z), ("poisson", np.exp)])
def test_regressor_output_is_the_link_of_the_last_layer(loss, link):
    y = np.abs(YR) if loss == "poisson" else YR
    est = tn.MLPRegressor(loss=loss, hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y)
    np.testing.assert_allclose(est.predict(X), link(head(est, X))[:, 0], rtol=1e-10, atol=1e-12)
    assert est.predict(X).shape == (40,)


def test_regressor_with_two_outputs_predicts_two_columns():
    Y = np.c_[YR, -YR]
    est = tn.MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, Y)
    np.testing.assert_allclose(est.predict(X), head(est, X), rtol=1e-10, atol=1e-12)
    assert est.n_outputs_ == 2 and est.out_activation_ == "identity"


def test_binary_classifier_is_logistic_of_one_output():
    est = tn.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, np.where(Y2, "b", "a"))
    p = expit(head(est, X))[:, 0]
    P = est.predict_proba(X)
    np.testing.assert_allclose(P, np.c_[1 - p, p], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(est.predict(X), np.where(p > 0.5, "b", "a"))
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(P), rtol=1e-12)
    assert est.out_activation_ == "logistic" and est.n_outputs_ == 1


def test_multiclass_is_softmax():
    est = tn.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, Y3 + 10)
    P = softmax(head(est, X), axis=1)
    np.testing.assert_allclose(est.predict_proba(X), P, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(est.predict(X), 10 + np.argmax(P, axis=1))
    assert est.out_activation_ == "softmax" and est.n_outputs_ == 3


def test_multilabel_is_logistic_per_label():
    Y = np.c_[Y2, 1 - Y2, Y3 == 0].astype(int)
    est = tn.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, Y)
    P = expit(head(est, X))
    np.testing.assert_allclose(est.predict_proba(X), P, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(est.predict(X), (P > 0.5).astype(int))
    assert list(est.classes_) == [0, 1, 2] and est.out_activation_ == "logistic"


def test_binary_threshold_is_strictly_above_one_half():
    """predict is class 1 only where p > 0.5: a model whose output is exactly 0 (p = 0.5) predicts class 0."""
    est = tn.MLPClassifier(hidden_layer_sizes=(2,), max_iter=1, random_state=0).fit(X, Y2)
    for lin in est._linears:
        lin.weight.data[...] = 0
        lin.bias.data[...] = 0
    np.testing.assert_array_equal(est.predict_proba(X[:3]), np.full((3, 2), 0.5))
    np.testing.assert_array_equal(est.predict(X[:3]), [0, 0, 0])
    est._linears[-1].bias.data[...] = 1e-3
    np.testing.assert_array_equal(est.predict(X[:3]), [1, 1, 1])


def test_multilabel_threshold_is_strictly_above_one_half():
    est = tn.MLPClassifier(hidden_layer_sizes=(2,), max_iter=1, random_state=0).fit(X, np.c_[Y2, 1 - Y2])
    for lin in est._linears:
        lin.weight.data[...] = 0
        lin.bias.data[...] = 0
    est._linears[-1].bias.data[...] = [0.0, 1e-3]
    np.testing.assert_array_equal(est.predict(X[:2]), [[0, 1], [0, 1]])


@pytest.mark.parametrize("activation,f", [("relu", 6.0), ("tanh", 6.0), ("logistic", 2.0)])
def test_glorot_uniform_bound(activation, f):
    """After one step of a rate of 1e-12 the weights are the initial draws: inside (-a, a), reaching near both
    ends (2500 draws per layer)."""
    Xw = np.random.default_rng(0).standard_normal((60, 50))
    est = tn.MLPRegressor(hidden_layer_sizes=(50,), activation=activation, solver="sgd", learning_rate_init=1e-12,
                          max_iter=1, random_state=0, alpha=0).fit(Xw, np.c_[Xw[:, :50]])
    for W, b in zip(est.coefs_, est.intercepts_):
        a = np.sqrt(f / (W.shape[0] + W.shape[1]))
        assert np.abs(W).max() < a and W.max() > 0.98 * a and W.min() < -0.98 * a
        assert np.abs(b).max() < a and b.max() > 0.5 * a and b.min() < -0.5 * a


# ------------------------------------------------------------------ stopping rule
def _est(**kw):
    est = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, random_state=0, **kw)
    return est.fit(X, YR)


@pytest.mark.parametrize("loss,count,best", [(0.75, 0, 0.75), (0.7500001, 1, 0.7500001), (1.5, 1, 1.0),
                                              (0.5, 0, 0.5)])
def test_training_loss_rule(loss, count, best):
    """best = 1, tol = 0.25: a loss of 0.75 (exactly best - tol) is an improvement, anything above is not."""
    est = _est(tol=0.25)
    est.best_loss_, est._no_improvement_count = 1.0, 3
    est.loss_curve_ = [2.0, loss]
    est._update_no_improvement_count(None)
    assert est._no_improvement_count == (4 if count else 0) and est.best_loss_ == best


def test_validation_score_rule():
    """score s, tol = 0.25: best = s - 0.25 gives an improvement (s is not below best + tol) and becomes the new
    best with its weights; best = s - 0.125 does not improve enough but still becomes the best; best = s neither."""
    est = tn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=1, random_state=0, early_stopping=True, tol=0.25)
    est.fit(X, Y2)
    Xv, yv = X[:8], Y2[:8]
    T = yv.reshape(-1, 1).astype(float)
    s = np.mean(est.predict(Xv) == yv)                               # a multiple of 1/8: exact sums
    for best, count, new_best in [(s - 0.25, 0, s), (s - 0.125, 6, s), (s, 6, s)]:
        est.best_validation_score_, est._no_improvement_count = best, 5
        est._best = None
        n = len(est.validation_scores_)
        est._update_no_improvement_count((Xv, T, yv, None))
        assert est._no_improvement_count == count and est.best_validation_score_ == new_best
        assert (est._best is None) == (best == s)
        assert est.validation_scores_[n:] == [s] and len(est.validation_loss_curve_) == n + 1


def test_validation_loss_curve_is_the_loss_on_the_validation_set():
    Xv, yv = X[:10], Y2[:10]
    est = tn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0, early_stopping=True,
                           restore_best_weights=False).fit(X, Y2, X_val=Xv, y_val=yv)     # the last epoch's weights
    p = est.predict_proba(Xv)[:, 1]
    bce = -np.mean(yv * np.log(p) + (1 - yv) * np.log(1 - p))
    np.testing.assert_allclose(est.validation_loss_curve_[-1], bce, rtol=1e-10)
    assert est.validation_scores_[-1] == np.mean(est.predict(Xv) == yv)


def test_curves_after_a_fit():
    est = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=4, random_state=0).fit(X, YR)
    assert est.best_loss_ == min(est.loss_curve_) and len(est.loss_curve_) == 4
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    es = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=4, random_state=0, early_stopping=True).fit(X, YR)
    assert es.best_loss_ is None and len(es.validation_scores_) == 4 == len(es.validation_loss_curve_)
    assert es.best_validation_score_ == max(es.validation_scores_)
    lb = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=4, random_state=0, solver="lbfgs").fit(X, YR)
    assert not hasattr(lb, "loss_curve_") and not hasattr(lb, "validation_scores_")


def test_samples_seen_and_epochs_counted():
    est = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(X, YR)
    assert est.t_ == 3 * 40 and est.n_iter_ == 3
    est.partial_fit(X[:10], YR[:10])
    assert est.t_ == 130 and est.n_iter_ == 1
    es = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0, early_stopping=True,
                         validation_fraction=0.25).fit(X, YR)
    assert es.t_ == 3 * 30                                            # the validation rows are not trained on


# ------------------------------------------------------------------ sizes
@pytest.mark.parametrize("n,same_as", [(250, 200), (150, 150)])
def test_auto_batch_size(n, same_as):
    Xn = np.random.default_rng(3).standard_normal((n, 3))
    y = Xn.sum(axis=1)
    a = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, random_state=0, batch_size="auto").fit(Xn, y)
    b = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, random_state=0, batch_size=same_as).fit(Xn, y)
    c = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, random_state=0, batch_size=same_as - 1).fit(Xn, y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


@pytest.mark.parametrize("max_iter,start", [(1, 1), (2, 1), (3, 2), (4, 3), (8, 6), (12, 9), (100, 75)])
def test_swa_start(max_iter, start):
    assert averaging_start(max_iter) == start


def test_an_int_hidden_layer_size_is_one_layer():
    est = tn.MLPRegressor(hidden_layer_sizes=4, max_iter=1, random_state=0).fit(X, YR)
    assert [W.shape for W in est.coefs_] == [(4, 4), (4, 1)] and est.n_layers_ == 3


def test_a_generator_as_random_state_draws_from_it():
    def fit(rs):
        return tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, random_state=rs).fit(X, YR).coefs_[0]
    np.testing.assert_array_equal(fit(np.random.default_rng(5)), fit(np.random.default_rng(5)))
    assert not np.array_equal(fit(np.random.default_rng(5)), fit(np.random.default_rng(6)))
    seed = np.random.default_rng(5).integers(2**32, dtype=np.uint64)     # a RandomState seeded from one draw
    np.testing.assert_array_equal(fit(np.random.default_rng(5)), fit(np.random.RandomState(seed)))


def test_a_diverging_epoch_under_early_stopping_is_recorded_as_nan():
    """sklearn's bookkeeping of the epoch that diverged: it counts (n_iter_, a nan loss, a nan validation score
    and loss), trains no samples (t_), and counts as an epoch without improvement."""
    Xd = np.random.default_rng(4).standard_normal((60, 4))
    yd = Xd @ np.array([1.0, 2.0, 3.0, 4.0])
    est = tn.MLPRegressor(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=30.0, early_stopping=True,
                          validation_fraction=0.25, n_iter_no_change=1, max_iter=30, random_state=0).fit(Xd, yd)
    k = est.n_iter_
    assert len(est.loss_curve_) == len(est.validation_scores_) == len(est.validation_loss_curve_) == k
    assert np.isnan(est.loss_) and np.isnan(est.loss_curve_[-1])
    assert np.isnan(est.validation_scores_[-1]) and np.isnan(est.validation_loss_curve_[-1])
    assert all(np.isfinite(est.loss_curve_[:-1]))
    assert est.t_ == 45 * (k - 1)                                    # the diverged epoch trained nothing
    assert k == 3 and est.validation_scores_[1] < est.validation_scores_[0]   # worse, then diverged
    assert est._no_improvement_count == 2                             # both epochs after the best one


# ------------------------------------------------------------------ the explicit validation set
def _val_fit(X_val, y_val, est=None, **kw):
    est = est or tn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0, early_stopping=True, **kw)
    return est.fit(X, Y3, X_val=X_val, y_val=y_val)


@pytest.mark.parametrize("form", ["csr", "csc", "column y", "float32 X", "one row", "pandas y"])
def test_validation_set_forms_give_the_dense_1d_fit(form):
    import scipy.sparse as sp
    from sklearn.exceptions import DataConversionWarning

    Xv, yv = X[:9], Y3[:9]
    if form == "one row":
        Xv, yv = X[:1], Y3[:1]
    if form == "float32 X":                                         # the same values, cast to the fit's float64
        Xv = Xv.astype(np.float32).astype(np.float64)
    ref = _val_fit(Xv, yv)
    if form in ("csr", "csc"):
        got = _val_fit(getattr(sp, f"{form}_matrix")(Xv), yv)
    elif form == "column y":
        with pytest.warns(DataConversionWarning):
            got = _val_fit(Xv, yv.reshape(-1, 1))
    elif form == "float32 X":
        got = _val_fit(Xv.astype(np.float32), yv)
    elif form == "pandas y":
        pd = pytest.importorskip("pandas")
        got = _val_fit(Xv, pd.Series(yv))
    else:
        got = ref
    assert got.validation_scores_ == ref.validation_scores_ and len(ref.validation_scores_) == 2
    np.testing.assert_allclose(got.validation_loss_curve_, ref.validation_loss_curve_, rtol=1e-12)   # sparse: its own kernels


def test_validation_set_in_float32_fit_is_cast_to_float32():
    Xv, yv = X[:9], Y3[:9]
    a = tn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0, early_stopping=True, dtype=np.float32)
    b = tn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0, early_stopping=True, dtype=np.float32)
    _val_fit(Xv, yv, a)
    _val_fit(Xv.astype(np.float32), yv, b)
    np.testing.assert_array_equal(a.validation_loss_curve_, b.validation_loss_curve_)
    assert a.coefs_[0].dtype == np.float32


def test_warm_start_validation_set_may_hold_fewer_classes():
    """The validation rows need not show every class (the warm-start rule is about the training y)."""
    est = tn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0, early_stopping=True,
                           warm_start=True)
    sel = Y3[:12] < 2
    _val_fit(X[:12][sel], Y3[:12][sel], est)
    assert len(est.validation_scores_) == 2 and list(est.classes_) == [0, 1, 2]


@pytest.mark.parametrize("bad", ["short y", "extra class"])
def test_a_refused_validation_set_trains_nothing(bad):
    est = tn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0, early_stopping=True)
    yv = Y3[:5] if bad == "short y" else Y3[:9] + 1
    with pytest.raises(ValueError):
        est.fit(X, Y3, X_val=X[:9], y_val=yv)
    assert not hasattr(est, "n_iter_") and not hasattr(est, "loss_curve_")


def test_an_empty_validation_set_is_refused_by_sklearns_check():
    with pytest.raises(ValueError) as e:
        _val_fit(X[:0], Y3[:0])
    assert str(e.value) == ("Found array with 0 sample(s) (shape=(0, 4)) while a minimum of 1 is required by "
                            "MLPClassifier.")


def test_sklearn_sgd_defaults_are_sklearns():
    """SklearnSGD(params, lr) is sklearn's SGDOptimizer default: momentum 0.9 with Nesterov."""
    from tinynn.estimator._sklearn_optim import SklearnSGD

    opt = SklearnSGD(tn.Sequential(tn.Linear(3, 2)).parameters(), 0.1)
    assert opt.momentum == 0.9 and opt.nesterov is True and opt.lr == 0.1
    assert SklearnSGD(tn.Sequential(tn.Linear(3, 2)).parameters(), 0.1, momentum=0.0).nesterov is False


def _one_param(values):
    """A model whose only parameter is a bias vector of ``values`` (float64), and that parameter."""
    layer = tn.Linear(1, len(values), dtype=np.float64)
    layer.weight.data[...] = 0.0
    layer.bias.data[...] = values
    return layer


def test_sklearn_sgd_passes_l1_on_and_keeps_v_equal_minus_lr_b_when_the_rate_changes():
    from tinynn.estimator._sklearn_optim import SklearnSGD

    assert SklearnSGD(_one_param([1.0]).parameters(), 0.1, l1=0.25, l1_scope="weights").l1 == 0.25
    layer = _one_param([1.0, -2.0])
    opt = SklearnSGD([layer.bias], 0.5, momentum=0.5, nesterov=False)
    g1, g2, g3 = np.array([1.0, 2.0]), np.array([-1.0, 4.0]), np.array([3.0, 1.0])
    layer.bias.grad[...] = g1
    opt.step()                                     # sklearn: v = -0.5 g1, θ += v
    v = -0.5 * g1
    np.testing.assert_allclose(layer.bias.data, [1.0, -2.0] + v)
    opt.lr = 0.25                                  # sklearn keeps v; the torch buffer is rescaled to -v/η
    layer.bias.grad[...] = g2
    before = layer.bias.data.copy()
    opt.step()
    v = 0.5 * v - 0.25 * g2
    np.testing.assert_allclose(layer.bias.data, before + v)
    opt.lr = 0.0                                   # η = 0: the buffer -v/η has no value; it restarts from 0
    layer.bias.grad[...] = g3
    before = layer.bias.data.copy()
    opt.step()
    np.testing.assert_array_equal(layer.bias.data, before)
    np.testing.assert_allclose(opt.state["momentum_buffer"][0], g3)


@pytest.mark.parametrize("eps", [1e-8, 0.5])
def test_sklearn_adam_takes_sklearns_step_with_its_epsilon(eps):
    """sklearn: η_t = η √(1-β₂ᵗ)/(1-β₁ᵗ); θ -= η_t m / (√v + ε), ε outside the bias correction (a large ε
    shows where it sits)."""
    from tinynn.estimator._sklearn_optim import SklearnAdam

    layer = _one_param([0.5, -1.0, 2.0])
    opt = SklearnAdam([layer.bias], lr=0.1, betas=(0.9, 0.999), eps=eps)
    theta, m, v = layer.bias.data.copy(), np.zeros(3), np.zeros(3)
    for t, g in enumerate([np.array([1.0, -3.0, 0.5]), np.array([2.0, 1.0, -0.25])], start=1):
        layer.bias.grad[...] = g
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        lr_t = 0.1 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        theta = theta - lr_t * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(layer.bias.data, theta, rtol=1e-12)


@pytest.mark.parametrize("kw", [dict(momentum=0.0, learning_rate="invscaling", learning_rate_init=0.3),
                                dict(learning_rate="invscaling", learning_rate_init=0.1, batch_size=40),   # 1 step/epoch
                                dict(momentum=0.5, nesterovs_momentum=False, learning_rate="adaptive",
                                     learning_rate_init=0.2, tol=0.5, n_iter_no_change=1)])
def test_sgd_with_a_changing_rate_is_sklearns(kw):
    """sklearn's own MLPRegressor is the oracle: the same draws and steps give the same weights."""
    import warnings

    from sklearn.neural_network import MLPRegressor as SkRegressor

    args = dict(dict(hidden_layer_sizes=(6,), solver="sgd", max_iter=8, random_state=0, batch_size=10), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkRegressor(**args).fit(X, YR)
        ours = tn.MLPRegressor(**args).fit(X, YR)
    assert ours.n_iter_ == sk.n_iter_
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    assert ours._optimizer.learning_rate == pytest.approx(sk._optimizer.learning_rate, rel=1e-12)
    assert sk._optimizer.learning_rate < kw["learning_rate_init"]      # the rate did change during the fit


@pytest.mark.parametrize("kw", [dict(max_fun=12), dict(tol=1e-2, max_iter=200), dict(max_iter=5, alpha=0.1)])
@pytest.mark.parametrize("weighted", [False, True])
def test_lbfgs_is_sklearns(kw, weighted):
    """sklearn's own MLPRegressor is the oracle for L-BFGS's limits (max_fun, max_iter, tol as gtol) and for
    sample weights (the objective Σ w ℓ / Σ w + α/2 ‖W‖² / Σ w)."""
    import warnings

    from sklearn.neural_network import MLPRegressor as SkRegressor

    sw = np.random.default_rng(7).uniform(0.5, 2, 40) if weighted else None
    args = dict(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkRegressor(**args).fit(X, YR, sample_weight=sw)
        ours = tn.MLPRegressor(**args).fit(X, YR, sample_weight=sw)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.loss_, sk.loss_, rtol=1e-8)
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_poisson_accepts_zero_counts():
    """Poisson regression needs y >= 0: zero counts are valid targets (only negatives are refused)."""
    y = np.r_[np.zeros(20), np.arange(20.0)]
    est = tn.MLPRegressor(loss="poisson", hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y)
    assert np.all(est.predict(X) > 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_targets_are_regressed_as_floats(dtype):
    yi = np.round(YR).astype(np.int64)
    a = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X.astype(dtype), yi)
    b = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X.astype(dtype), yi.astype(float))
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert a.loss_ == b.loss_


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_validation_score_of_non_finite_predictions_is_nan(dtype):
    """sklearn's _score_with_function: nan when a prediction is not finite (r2_score would raise), in either
    float dtype; finite predictions get the score itself."""
    from tinynn import kernels

    rng = np.random.default_rng(2)
    Xf = rng.standard_normal((30, 3)).astype(dtype)
    yf = Xf @ np.array([1.0, -1.0, 0.5])
    est = tn.MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, dtype=dtype, random_state=0).fit(Xf, yf)
    assert est._score_arrays(Xf, yf) == pytest.approx(est.score(Xf, yf), rel=1e-12)
    flat = est._model.flat                          # weights so large that the output overflows the dtype
    kernels.assign(flat.data, kernels.to_host(flat.data) * (1e200 if dtype == np.float64 else 1e25))
    assert not np.isfinite(est.predict(Xf)).all()
    assert math.isnan(est._score_arrays(Xf, yf))
