"""How the estimators wire tinynn's parts (tinynn/estimator/_base.py): the optimizer named by ``optimizer=``
with the estimator's hyper-parameters, the schedules of snapshots, swa and lr_schedule over the fit's steps,
the batch size, the progress bar, and what a refit, a partial_fit or an early stop keeps of the averages."""
import io
import warnings
from contextlib import redirect_stderr

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

import tinynn as tn
from tinynn import optim, schedules
from tinynn.estimator._averages import averaging_start

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.default_rng(5)
X = RNG.standard_normal((40, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.7)


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_optimizer_names_build_that_optimizer_with_the_estimators_hyperparameters(name):
    est = tn.MLPClassifier((5,), optimizer=name, max_iter=1, momentum=0.5, beta_1=0.8, beta_2=0.85,
                           epsilon=1e-5, learning_rate_init=0.01, random_state=0).fit(X, Y)
    opt = est._opt
    assert type(opt) is optim.OPTIMIZERS[name]
    assert opt.lr == 0.01 and opt.l1 == 0.0
    if name == "sgd":
        assert (opt.momentum, opt.nesterov) == (0.5, True)
    if name == "momentum":
        assert (opt.beta, opt.nesterov) == (0.5, True)
    if name in ("adam", "adamw"):
        assert opt.betas == (0.8, 0.85) and opt.eps == 1e-5


@pytest.mark.parametrize("momentum,nesterovs,expected", [(0.5, True, True), (0.0, True, False), (0.5, False, False),
                                                         (1.0, True, True)])
def test_nesterov_needs_momentum(momentum, nesterovs, expected):
    est = tn.MLPClassifier((5,), optimizer="sgd", max_iter=1, momentum=momentum, nesterovs_momentum=nesterovs,
                           learning_rate_init=1e-3, random_state=0).fit(X, Y)
    assert est._opt.nesterov is expected


def test_l1_reaches_the_named_optimizer_on_the_weights_only():
    est = tn.MLPClassifier((5,), optimizer="sgd", l1=0.01, l1_mode="proximal", max_iter=1, random_state=0).fit(X, Y)
    assert (est._opt.l1, est._opt.l1_scope, est._opt.l1_mode) == (0.01, "weights", "proximal")


@pytest.mark.parametrize("max_iter", [4, 10])
def test_the_averages_and_lr_schedule_run_over_the_fits_steps(max_iter):
    steps = -(-40 // 8)                             # batches per epoch
    total = max_iter * steps
    kw = dict(hidden_layer_sizes=(5,), max_iter=max_iter, batch_size=8, learning_rate_init=0.02, random_state=0)
    sched = tn.MLPClassifier(snapshots=3, **kw).fit(X, Y)._sched
    assert type(sched) is schedules.CosineRestarts and sched.cycle_steps == -(-total // 3)
    sched = tn.MLPClassifier(swa=True, **kw).fit(X, Y)._sched
    assert type(sched) is schedules.SWALR
    assert sched.swa_start == round(averaging_start(max_iter) / max_iter * total) and sched.swa_lr == 0.002
    sched = tn.MLPClassifier(lr_schedule="cosine", **kw).fit(X, Y)._sched
    assert type(sched) is schedules.CosineAnnealingLR and sched.T_max == total
    sched = tn.MLPClassifier(lr_schedule="warmup_cosine", **kw).fit(X, Y)._sched    # one epoch of warm-up
    assert type(sched) is schedules.LinearWarmup and sched.warmup_steps == steps
    assert type(sched.after) is schedules.CosineAnnealingLR and sched.after.T_max == total - steps


def test_batch_size_one_takes_a_step_per_row_and_a_larger_one_is_clipped():
    est = tn.MLPClassifier((5,), batch_size=1, max_iter=2, random_state=0).fit(X[:7], Y[:7])
    assert est._opt.t == 14
    with pytest.warns(UserWarning, match="It is going to be clipped"):
        est = tn.MLPClassifier((5,), batch_size=100, max_iter=2, random_state=0).fit(X[:7], Y[:7])
    assert est._opt.t == 2


def test_verbose_draws_one_bar_per_epoch_counting_its_samples(monkeypatch):
    import tqdm.auto

    bars = []

    class Recording(tqdm.auto.tqdm):
        def close(self):
            if not self.disable:                    # (a closed bar is disabled: counted once)
                bars.append((self.desc, self.n, self.total, self.unit, self.leave))
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    out = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stderr(io.StringIO()), redirect_stdout(out):
        tn.MLPClassifier((5,), max_iter=2, batch_size=10, verbose=True, random_state=0).fit(X, Y)
    assert bars == [("epoch 1", 40, 40, "smp", False), ("epoch 2", 40, 40, "smp", False)]
    assert out.getvalue().startswith("Iteration 1, loss = ")


def test_the_output_activation_is_applied_in_place():
    for est in (tn.MLPClassifier((5,), max_iter=1).fit(X, Y), tn.MLPClassifier((5,), max_iter=1).fit(X, Y > 0),
                tn.MLPRegressor(hidden_layer_sizes=(5,), max_iter=1).fit(X, X[:, 0])):
        Z = np.linspace(-2, 2, 2 * est.n_outputs_).reshape(2, -1).astype(est._dtype_)
        assert est._output(Z) is Z


def test_a_refit_without_snapshots_forgets_them_and_partial_fit_averages_nothing():
    kw = dict(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    est = tn.MLPClassifier(snapshots=3, **kw).fit(X, Y)
    assert len(est._snapshots) == 3
    est.set_params(snapshots=None).fit(X, Y)
    plain = tn.MLPClassifier(**kw).fit(X, Y)
    np.testing.assert_array_equal(est.predict_proba(X), plain.predict_proba(X))
    kw["batch_size"] = 8                            # 5 steps: their average is not the last iterate
    a = tn.MLPClassifier(ema=0.5, **kw).partial_fit(X, Y, classes=[0, 1, 2])
    b = tn.MLPClassifier(**kw).partial_fit(X, Y, classes=[0, 1, 2])
    for ca, cb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(ca, cb)


def test_a_callback_stop_still_applies_the_average():
    callback = pytest.importorskip("sklearn.callback")  # noqa: F841
    from test_estimator_callbacks import StopAfter

    kw = dict(hidden_layer_sizes=(5,), random_state=0, ema=0.8)
    stopped = tn.MLPClassifier(max_iter=10, **kw).set_callbacks(StopAfter(3)).fit(X, Y)
    short = tn.MLPClassifier(max_iter=3, **kw).fit(X, Y)
    assert stopped.n_iter_ == 3
    for a, b in zip(stopped.coefs_, short.coefs_):
        np.testing.assert_array_equal(a, b)


def test_prediction_takes_csc_input():
    est = tn.MLPClassifier((5,), max_iter=2, random_state=0).fit(X, Y)
    Xs = X.copy()
    Xs[np.abs(Xs) < 0.5] = 0
    np.testing.assert_allclose(est.predict_proba(sp.csc_matrix(Xs)), est.predict_proba(Xs), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_named_init_builds_every_layer_in_the_fit_dtype_reproducibly(dtype):
    """init= other than "auto": each Linear is drawn by that initializer from a seed of the estimator's
    RandomState (same random_state, same weights; the initializer's scale shows in the spread); batch norm
    layers in the same dtype."""
    from tinynn.layers import BatchNorm1d, Linear

    Xw = np.random.default_rng(1).standard_normal((64, 300))
    yw = (Xw[:, 0] > 0).astype(int)
    kw = dict(hidden_layer_sizes=(200,), max_iter=1, learning_rate_init=1e-12, batch_norm=True, dtype=dtype)
    a = tn.MLPClassifier(init="kaiming_uniform", random_state=3, **kw).fit(Xw, yw)
    b = tn.MLPClassifier(init="kaiming_uniform", random_state=3, **kw).fit(Xw, yw)
    c = tn.MLPClassifier(init="lecun_uniform", random_state=3, **kw).fit(Xw, yw)
    for layer in a._model.layers:
        if isinstance(layer, (Linear, BatchNorm1d)):
            assert all(p.data.dtype == dtype for p in layer.parameters())
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    # He: Var = 2/fan_in; LeCun: 1/fan_in (learning_rate_init 1e-12: the fit leaves the draw as it was)
    assert np.var(a.coefs_[0]) * 300 == pytest.approx(2.0, rel=0.05)
    assert np.var(c.coefs_[0]) * 300 == pytest.approx(1.0, rel=0.05)


def test_partial_fit_keeps_the_first_fits_dtype_and_is_one_task():
    est = tn.MLPClassifier((4,), random_state=0, dtype=np.float32).partial_fit(X, Y, classes=[0, 1, 2])
    est.partial_fit(X.astype(np.float64), Y)
    assert est.coefs_[0].dtype == np.float32 and est._dtype_ == np.float32
    auto = tn.MLPClassifier((4,), random_state=0).partial_fit(X.astype(np.float32), Y, classes=[0, 1, 2])
    auto.partial_fit(X.astype(np.float64), Y)                       # the first call chose float32: kept
    assert auto._dtype_ == np.float32 and auto.predict_proba(X).dtype == np.float32
    callback = pytest.importorskip("sklearn.callback")  # noqa: F841
    from test_estimator_callbacks import Recorder

    rec = Recorder()
    tn.MLPClassifier((4,), random_state=0).set_callbacks(rec).partial_fit(X, Y, classes=[0, 1, 2])
    assert [c[2] for c in rec.calls if c[1] == "fit"] == [1, 1]


def test_integer_X_fits_in_float64_and_a_regressor_refuses_text_targets():
    est = tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit((X * 10).astype(np.int64), X[:, 0])
    assert est._dtype_ == np.float64 and est.coefs_[0].dtype == np.float64
    with pytest.raises(ValueError):
        tn.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(X, np.array(["a", "b"] * 20))


def test_a_hidden_layer_of_one_unit_is_allowed():
    est = tn.MLPClassifier(hidden_layer_sizes=(1,), max_iter=2, random_state=0).fit(X, Y)
    assert [c.shape for c in est.coefs_] == [(4, 1), (1, 3)]


def test_class_labels_keep_their_kind_through_a_file(tmp_path):
    """Object-dtype string labels come back as objects, numpy strings as numpy strings, numbers as numbers;
    object labels that are not strings cannot be written without pickle and are refused before writing."""
    kinds = {"object": np.array(["cat", "dog", "emu"], dtype=object), "str": np.array(["cat", "dog", "emu"]),
             "int": np.array([3, 5, 7])}
    for name, labels in kinds.items():
        est = tn.MLPClassifier((4,), max_iter=2, random_state=0).fit(X, labels[Y])
        est.save(tmp_path / f"{name}.npz")
        back = tn.MLPClassifier.load(tmp_path / f"{name}.npz")
        assert back.classes_.dtype == est.classes_.dtype, name
        assert back.classes_.tolist() == labels.tolist()
        np.testing.assert_array_equal(back.predict(X), est.predict(X))
        assert back.predict(X).dtype == est.predict(X).dtype
    est = tn.MLPClassifier((4,), max_iter=2, random_state=0).fit(X, Y)
    est.classes_ = np.array(["cat", "dog", "emu"], dtype=object)     # sklearn's fit makes none: set by hand
    est.save(tmp_path / "hand.npz")
    back = tn.MLPClassifier.load(tmp_path / "hand.npz")
    assert back.classes_.dtype == object and back.classes_.tolist() == ["cat", "dog", "emu"]
    assert all(type(c) is str for c in back.classes_)
    est.classes_ = np.array([1, 2, 3], dtype=object)
    with pytest.raises(ValueError) as e:
        est.save(tmp_path / "objects.npz")
    assert str(e.value) == "save: classes_ must be numbers or strings to be written without pickle"
    assert not (tmp_path / "objects.npz").exists()
