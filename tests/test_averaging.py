"""tinynn.averaging and its schedules: the cyclic cosine schedule (torch's), SWALR, the snapshot ensemble
(M snapshots, mean softmax), SWA (mean of epoch-end weights), EMA (moving average per step), BatchNorm
statistics recomputed for averaged weights, and their checkpoint state."""
import numpy as np
import pytest

import tinynn as tn
from tinynn import averaging, schedules
from tinynn.training import Trainer, build_mlp


def _opt(lr=0.1):
    return tn.optim.SGD([tn.parameter.Parameter(np.zeros(3, np.float32))], lr=lr)


def test_cosine_restarts_matches_torch():
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(3))
    topt = torch.optim.SGD([p], lr=0.1)
    tsched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=7, T_mult=1, eta_min=0.001)
    opt = _opt()
    sched = schedules.CosineRestarts(opt, cycle_steps=7, eta_min=0.001)
    for _ in range(30):
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
        topt.step()
        tsched.step()
        sched.step()


def test_cosine_restarts_table_entry():
    opt = _opt()
    s = schedules.make("cosine_restarts", opt, total_steps=100, steps_per_epoch=10, cycles=3)
    assert s.cycle_steps == 34                                     # ⌈100/3⌉ (Huang et al.)
    rates = [s.lr_at(t) for t in range(100)]
    assert rates[0] == 0.1 and rates[34] == 0.1 and rates[68] == 0.1
    assert rates[33] < 0.001 and rates[33] < rates[32]


def test_swalr():
    opt = _opt()
    s = schedules.make("swa", opt, total_steps=100, steps_per_epoch=10, swa_start=0.75, swa_lr_ratio=0.1)
    assert s.swa_start == 75 and s.swa_lr == pytest.approx(0.01)
    assert s.lr_at(0) == pytest.approx(0.1) and s.lr_at(75) == s.lr_at(99) == pytest.approx(0.01)
    assert all(s.lr_at(t) > s.lr_at(t + 1) for t in range(74))


def _data(n=256, d=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X[:, :3].sum(axis=1) > 0).astype(np.int64) + 2 * (X[:, 3] > 0)
    return X, y


def _trainer(callbacks, batch_norm=False, schedule=None, total=None):
    model = build_mlp([20, 16, 4], batch_norm=batch_norm, seed=0)
    opt = tn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = schedules.make(schedule, opt, total or 1, 8) if schedule else None
    return Trainer(model, tn.SoftmaxCrossEntropy(), opt, sched, batch_size=32, rng=0, callbacks=callbacks)


def test_ema_is_the_moving_average():
    X, y = _data()
    ema = averaging.EMA(0.9)
    t = _trainer([ema])
    seen = []
    t._step_hooks.insert(0, lambda tr: seen.append(np.array(tr.model.flat.data)))     # weights after each step
    t.train_epoch(X, y)
    expected = seen[0].astype(np.float64)
    for w in seen[1:]:
        expected = 0.9 * expected + 0.1 * w
    np.testing.assert_allclose(ema.avg, expected, rtol=1e-5, atol=1e-6)
    assert ema.count == len(seen) == 8


def test_swa_is_the_mean_of_epoch_end_weights():
    X, y = _data()
    swa = averaging.SWA(start=2)
    t = _trainer([swa])
    ends = []
    for _ in range(4):
        t.train_epoch(X, y)
        ends.append(np.array(t.model.flat.data, np.float64))
    np.testing.assert_allclose(swa.avg, np.mean(ends[1:], axis=0), rtol=1e-5, atol=1e-6)
    assert swa.count == 3


def test_snapshot_ensemble_keeps_m_snapshots_and_averages_softmax():
    X, y = _data()
    total = 5 * 8
    t = _trainer([], schedule="cosine_restarts", total=total)
    t.schedule = schedules.make("cosine_restarts", t.optimizer, total, 8, cycles=3)
    snaps = averaging.SnapshotEnsemble.for_schedule(t.schedule, total)
    t.callbacks.append(snaps)
    t._step_hooks.append(snaps.on_step_end)
    for _ in range(5):
        t.train_epoch(X, y)
    assert len(snaps.snapshots) == 3                               # steps 14, 28 and the last (40)
    np.testing.assert_array_equal(snaps.snapshots[-1][0], t.model.flat.data)
    P = snaps.predict_proba(t.model, X)
    manual = 0
    for params, _ in snaps.snapshots:
        m = build_mlp([20, 16, 4], seed=0)
        m.flat.data[...] = params
        Z = tn.training.predict_raw(m, X).astype(np.float64)
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        manual = manual + E / E.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(P, manual / 3, rtol=1e-6)
    np.testing.assert_array_equal(t.model.flat.data, snaps.snapshots[-1][0])   # the model is left as it was


def test_recompute_batchnorm_is_the_cumulative_average():
    X, _ = _data(n=128)
    model = build_mlp([20, 8, 4], batch_norm=True, dropout=0.5, seed=0)
    bn = model.layers[1]
    averaging.recompute_batchnorm(model, X, batch_size=32)
    Z = X @ model.layers[0].weight.data + model.layers[0].bias.data
    batches = Z.reshape(4, 32, 8).astype(np.float64)
    np.testing.assert_allclose(bn.running_mean, batches.mean(axis=1).mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_var, batches.var(axis=1, ddof=1).mean(axis=0), rtol=1e-4)
    assert bn.momentum == 0.1 and model.training                    # restored


def test_averaged_model_needs_data_with_batchnorm():
    X, y = _data()
    ema = averaging.EMA(0.5)
    t = _trainer([ema], batch_norm=True)
    t.train_epoch(X, y)
    with pytest.raises(ValueError, match="BatchNorm"):
        ema.averaged_model(t.model)
    m = ema.averaged_model(t.model, X)
    np.testing.assert_array_equal(m.flat.data, ema.avg)
    assert not np.array_equal(m.layers[1].running_mean, t.model.layers[1].running_mean)
    assert m is not t.model


@pytest.mark.parametrize("make", [lambda: averaging.EMA(0.8), lambda: averaging.SWA(start=1),
                                  lambda: averaging.SnapshotEnsemble(3, 16)])
def test_state_round_trip_resumes_exactly(make):
    """Two epochs straight == one epoch, state() -> load_state() into fresh objects, one more epoch."""
    X, y = _data()
    a = make()
    ta = _trainer([a], batch_norm=True)
    ta.train_epoch(X, y)
    ta.train_epoch(X, y)
    b = make()
    tb = _trainer([b], batch_norm=True)
    tb.train_epoch(X, y)
    arrays, meta = tb.state()
    c = make()
    tc = _trainer([c], batch_norm=True)
    tc.load_state(arrays, meta)
    tc.train_epoch(X, y)
    sa, sc = a.state(), c.state()
    assert sa[1] == sc[1] and sa[0].keys() == sc[0].keys()
    for k in sa[0]:
        np.testing.assert_array_equal(sa[0][k], sc[0][k], err_msg=k)


def test_bad_arguments():
    with pytest.raises(ValueError, match="decay"):
        averaging.EMA(1.0)
    with pytest.raises(ValueError, match="start"):
        averaging.SWA(0)
    with pytest.raises(RuntimeError, match="nothing averaged"):
        averaging.EMA(0.9).averaged_model(build_mlp([2, 2]))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kw", [dict(snapshots=3), dict(swa=True), dict(ema=0.99), dict(swa=True, batch_norm=True)])
def test_estimator_averaging_options(kw, tmp_path):
    from sklearn.base import clone
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    est = tn.MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, learning_rate_init=0.01, random_state=0,
                           **kw).fit(X, y)
    P = est.predict_proba(X)
    np.testing.assert_allclose(P.sum(1), 1, rtol=1e-6)
    assert est.score(X, y) > 0.85
    plain = tn.MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, learning_rate_init=0.01, random_state=0,
                             batch_norm=kw.get("batch_norm", False)).fit(X, y)
    assert not np.allclose(P, plain.predict_proba(X))            # the average is not the last iterate
    assert clone(est).get_params()["swa"] == kw.get("swa", False)
    if "snapshots" in kw:
        assert len(est._snapshots) == 3
    else:
        est.save(tmp_path / "m.npz")
        np.testing.assert_allclose(tn.MLPClassifier.load(tmp_path / "m.npz").predict_proba(X), P, rtol=1e-6)


def test_estimator_averaging_refuses_two_at_once():
    X = np.random.default_rng(0).standard_normal((30, 3))
    with pytest.raises(ValueError, match="at most one"):
        tn.MLPClassifier(max_iter=2, swa=True, ema=0.9).fit(X, np.arange(30) % 2)
    with pytest.raises(ValueError, match="own learning-rate schedule"):
        tn.MLPClassifier(max_iter=2, snapshots=2, lr_schedule="cosine").fit(X, np.arange(30) % 2)


@pytest.mark.gpu
@pytest.mark.parametrize("cls", [averaging.SWA, averaging.EMA])
def test_averaged_model_of_a_cuda_model_stays_on_cuda(cls):
    """averaged_model copies a CUDA model with its arrays on the device (a deepcopy gave host arrays on the
    simulator and is not defined for a GPU's), holding the average; the model itself is unchanged."""
    from tinynn import kernels

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((24, 5)).astype(np.float32), rng.integers(0, 3, 24)
    model = build_mlp([5, 6, 3], seed=0).to("cuda")
    avg = cls(start=1) if cls is averaging.SWA else cls(decay=0.5)
    t = Trainer(model, tn.SoftmaxCrossEntropy(), tn.optim.SGD(model.parameters(), lr=0.1), batch_size=8, rng=0,
                callbacks=[avg])
    Xd, yd = kernels.to_device(X, "cuda"), kernels.to_device(y, "cuda")
    before = None
    for _ in range(2):
        t.train_epoch(Xd, yd)
        before = kernels.to_host(model.flat.data).copy()
    m = avg.averaged_model(model)
    assert m.device == "cuda" and kernels.is_device_array(m.flat.data) and m is not model
    np.testing.assert_array_equal(kernels.to_host(m.flat.data), kernels.to_host(avg.avg))
    np.testing.assert_array_equal(kernels.to_host(model.flat.data), before)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_snapshot_estimator_predicts_the_mean_of_its_members_in_its_dtype(dtype):
    from tinynn.training import predict_raw

    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 5)).astype(dtype)
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 0.8)
    est = tn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=6, batch_size=10, snapshots=3, random_state=0,
                           learning_rate_init=0.05, dtype=dtype).fit(X, y)
    members = []
    for snap in est._snapshots:
        with averaging.weights_of(est._model, snap):
            members.append(est._output(predict_raw(est._model, X)).astype(np.float64))
    P = est.predict_proba(X)
    assert P.dtype == dtype and len(members) == 3
    np.testing.assert_allclose(P, np.mean(members, axis=0), rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert not np.allclose(P, members[-1], rtol=1e-4)              # the mean, not the last member alone


def test_swa_in_the_estimators_averages_the_epochs_after_three_quarters_of_max_iter():
    for max_iter, first in [(1, 2), (2, 2), (4, 4), (8, 7), (10, 9), (100, 76)]:
        (cb,) = tn.MLPClassifier(swa=True, max_iter=max_iter)._make_averages(steps_per_epoch=3).values()
        assert isinstance(cb, averaging.SWA) and (cb.start, cb.every) == (first, 1), max_iter


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_ema_keeps_the_users_schedule():
    """snapshots and swa set their own learning rates and refuse lr_schedule; ema averages any run."""
    X = np.random.default_rng(0).standard_normal((30, 3))
    est = tn.MLPClassifier(max_iter=2, ema=0.9, lr_schedule="cosine", random_state=0).fit(X, np.arange(30) % 2)
    assert est.n_iter_ == 2
    (cb,) = est._make_averages(steps_per_epoch=3).values()
    assert isinstance(cb, averaging.EMA) and cb.decay == 0.9
