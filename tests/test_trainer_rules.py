"""tinynn.training.Trainer's rules stated independently: argument checks and their messages, defaults seen in
behaviour, the step (loss, penalty, reduction across processes, optimizer, schedule, hooks), the epoch's
mean loss and accuracy (with a learning rate of 0 they are the full-data loss and accuracy, computed here from
the definitions), divergence and roll-back, the history, prediction in chunks, checkpoints."""
import math

import numpy as np
import pytest
import scipy.sparse as sp

import tinynn as tn
from tinynn import schedules
from tinynn.errors import DivergenceError
from tinynn.strategy import Strategy
from tinynn.training import (PREDICT_CHUNK, Trainer, build_mlp, evaluate, make_optimizer, predict_raw,
                             steps_per_epoch)

F64 = np.float64


def _model(sizes=(4, 6, 3), **kw):
    return build_mlp(list(sizes), dtype=F64, **kw)


def _trainer(model=None, lr=0.1, loss=None, **kw):
    model = model if model is not None else _model()
    return Trainer(model, loss or tn.SoftmaxCrossEntropy(), tn.optim.SGD(model.parameters(), lr=lr), **kw)


def _data(n=10, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, classes, n)


def _cross_entropy(Z, y, w=None):
    Z = Z - Z.max(axis=1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    per_row = -logp[np.arange(len(y)), y]
    return float(np.average(per_row, weights=w))


# ---------------------------------------------------------------------- arguments
def test_the_model_must_be_a_sequential_with_a_flat_buffer():
    msg = "Trainer: expected a tinynn Sequential whose parameters share one dtype and device"
    lin = tn.Linear(3, 2)
    with pytest.raises(TypeError) as e:
        Trainer(lin, tn.SoftmaxCrossEntropy(), tn.optim.SGD(lin.parameters(), lr=0.1))
    assert str(e.value) == msg
    mixed = tn.Sequential(tn.Linear(3, 2, dtype=np.float32), tn.Linear(2, 2, dtype=np.float64))
    assert mixed.flat is None
    with pytest.raises(TypeError) as e:
        Trainer(mixed, tn.SoftmaxCrossEntropy(), tn.optim.SGD(mixed.parameters(), lr=0.1))
    assert str(e.value) == msg


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "8", None])
def test_batch_size_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError) as e:
        _trainer(batch_size=bad)
    assert str(e.value) == f"Trainer: batch_size must be a positive integer, got {bad!r}"


@pytest.mark.parametrize("bad", [0, -1, 1.0, False, "3"])
def test_loss_every_must_be_a_positive_integer_or_none(bad):
    with pytest.raises(ValueError) as e:
        _trainer(loss_every=bad)
    assert str(e.value) == f"Trainer: loss_every must be a positive integer or None, got {bad!r}"


def test_the_smallest_accepted_values():
    t = _trainer(batch_size=1, loss_every=1)
    assert (t.batch_size, t.loss_every) == (1, 1)
    t = _trainer(batch_size=np.int64(7), loss_every=np.int32(3))
    assert (t.batch_size, t.loss_every) == (7, 3) and type(t.batch_size) is int and type(t.loss_every) is int


def test_the_schedule_must_follow_the_protocol():
    with pytest.raises(TypeError) as e:
        _trainer(schedule={"lr": 0.1})
    assert str(e.value) == ("Trainer: schedule must follow tinynn.schedules.Schedule (unit, step, epoch_end, "
                            "state_dict), got dict")


# ---------------------------------------------------------------------- defaults, seen in behaviour
def test_defaults():
    t = _trainer()
    assert [len(b) for b in t.batches(300)] == [128, 128, 44]                 # batch_size=128
    np.testing.assert_array_equal(np.concatenate(_trainer().batches(300)), np.random.default_rng(0).permutation(300))
    assert (t.epoch, t.samples_seen, t.history, t.loss_every, t.feed) == (0, 0, [], 20, True)
    assert type(t.strategy) is Strategy and t.device == "cpu" and t.penalty is None and t.augment is None
    assert t.callbacks == [] and t.batch_feed is None                         # no feed on the CPU


def test_generators_given_or_seeded():
    g, a = np.random.default_rng(4), np.random.default_rng(5)
    t = _trainer(rng=g, aug_rng=a)
    assert t.rng is g and t.aug_rng is a
    t = _trainer(rng=4, aug_rng=5)
    assert t.rng.bit_generator.state == np.random.default_rng(4).bit_generator.state
    assert t.aug_rng.bit_generator.state == np.random.default_rng(5).bit_generator.state


def test_shuffle_false_keeps_the_order_and_a_callable_reorders_the_previous_order():
    t = _trainer(batch_size=4, shuffle=False)
    assert t.shuffle is False
    assert [list(b) for b in t.batches(10)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert _trainer(shuffle=0).shuffle is False and _trainer(shuffle=1).shuffle is True
    roll = _trainer(batch_size=3, shuffle=lambda order: np.roll(order, 1))
    assert [list(b) for b in roll.batches(5)] == [[4, 0, 1], [2, 3]]          # arange(5) rolled once
    assert [list(b) for b in roll.batches(5)] == [[3, 4, 0], [1, 2]]          # ... twice
    assert [list(b) for b in roll.batches(4)] == [[3, 0, 1], [2]]             # a new n starts from arange again


def test_an_epoch_counts_from_where_a_continued_fit_starts():
    X, y = _data(10)
    t = _trainer(epoch=3, samples_seen=100, batch_size=4)
    assert (t.epoch, t.samples_seen) == (3, 100)
    t.train_epoch(X, y)
    assert (t.epoch, t.samples_seen) == (4, 110)
    t.train_epoch(X[:6], y[:6])
    assert (t.epoch, t.samples_seen) == (5, 116) and len(t.history) == 2


# ---------------------------------------------------------------------- history
def test_record_history_and_curves():
    t = _trainer()
    with pytest.raises(RuntimeError) as e:
        t.record(val=1.0)
    assert str(e.value) == "Trainer.record: no epoch completed yet"
    seen = []

    class Logger:
        def on_record(self, trainer, values):
            seen.append((trainer, values))

    t = _trainer(callbacks=[Logger()])
    X, y = _data(6)
    t.train_epoch(X, y)
    t.record(val=0.5, acc=0.75)
    t.train_epoch(X, y)
    assert seen == [(t, {"val": 0.5, "acc": 0.75})]
    assert t.curve("val") == [0.5, None] and len(t.curve("train_loss")) == 2
    h = t.history
    h[0]["val"] = 99
    assert t.history[0]["val"] == 0.5                                         # copies


# ---------------------------------------------------------------------- the step
class Recording(Strategy):
    """A strategy that records what the Trainer asks of it; ``parallel`` pretends other processes add
    ``others`` to every allsum."""

    def __init__(self, parallel=False, value=0.5, others=0.0):
        super().__init__()
        self.parallel, self.value, self.others, self.calls = parallel, value, others, []

    def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
        self.calls.append(("fb", None if Xb is None else len(Xb), sample_weight,
                           float(np.abs(trainer.model.flat.grad).sum())))
        trainer.model.flat.grad[...] = 1.0
        return self.value

    def reduce_gradients(self, model, n_local, n_global):
        self.calls.append(("reduce", model, n_local, n_global))

    def allsum(self, value):
        self.calls.append(("allsum", value))
        return value + self.others


def test_the_local_step_is_the_loss_of_the_batch_plus_the_penalty():
    X, y = _data(6)
    model = _model()
    Z = model.forward(X)
    penalties = []

    def penalty(m, n, grad=True):
        penalties.append((m, n))
        return 0.25

    t = _trainer(model, lr=0.0, penalty=penalty)
    assert t.loss_and_grad(X, y) == pytest.approx(_cross_entropy(Z, y) + 0.25, rel=1e-12)
    w = np.array([1.0, 2.0, 0.0, 1.0, 0.5, 0.5])
    assert t.loss_and_grad(X, y, w, n_global=6, weight_sum=5.0) == pytest.approx(_cross_entropy(Z, y, w) + 0.25,
                                                                                  rel=1e-12)
    assert penalties == [(model, 6), (model, 5.0)]                  # rows, or the batch's weight


def test_a_parallel_step_weighs_this_process_by_its_share():
    model = _model()
    s = Recording(parallel=True, value=0.5, others=2.5)
    t = _trainer(model, strategy=s)
    X, y = _data(3)
    assert t.loss_and_grad(X, y, n_global=8) == pytest.approx((0.5 * 3 + 2.5) / 8)
    assert s.calls[1:] == [("reduce", model, 3, 8), ("allsum", 1.5)]
    s.calls.clear()
    w = np.array([1.0, 2.0, 0.5])
    assert t.loss_and_grad(X, y, w, n_global=8, weight_sum=10.0) == pytest.approx((0.5 * 3.5 + 2.5) / 10)
    assert s.calls[0][2] is w and s.calls[1:] == [("reduce", model, 3.5, 10.0), ("allsum", 1.75)]
    s.calls.clear()
    small = np.array([0.25, 0.0, 0.25])                               # a share below 1 is still weighted
    assert t.loss_and_grad(X, y, small, n_global=8, weight_sum=2.0) == pytest.approx((0.5 * 0.5 + 2.5) / 2)
    assert s.calls[0][2] is small and s.calls[1] == ("reduce", model, 0.5, 2.0)
    s.calls.clear()
    assert t.loss_and_grad(X, y, np.zeros(3), n_global=8, weight_sum=2.0) == pytest.approx(2.5 / 2)
    assert s.calls[0][2] is None and s.calls[1] == ("reduce", model, 0.0, 2.0)   # rows of no weight: unweighted


def test_a_process_without_rows_contributes_zero_and_zero_gradients():
    model = _model()
    s = Recording(parallel=True, others=3.0)
    t = _trainer(model, strategy=s)
    model.flat.grad[...] = 7.0
    X, y = _data(4)
    assert t.loss_and_grad(X[:0], y[:0], n_global=4) == pytest.approx(3.0 / 4)
    assert s.calls == [("reduce", model, 0, 4), ("allsum", 0.0)]
    np.testing.assert_array_equal(model.flat.grad, 0.0)
    local = Recording()
    t = _trainer(model, strategy=local)
    model.flat.grad[...] = 7.0
    assert t.loss_and_grad(None, None) == 0.0                          # no inputs, no rows given: nothing
    assert local.calls == []
    np.testing.assert_array_equal(model.flat.grad, 0.0)


def test_a_stage_without_inputs_still_computes_its_rows():
    """A strategy whose process gets no X (a later pipeline stage) trains on ``n_global`` rows."""
    s = Recording(parallel=False, value=0.75)
    t = _trainer(strategy=s)
    assert t.loss_and_grad(None, None, n_global=5) == 0.75
    assert s.calls[0][:2] == ("fb", None)


def test_gradients_are_zeroed_before_backward_only_when_layers_accumulate():
    emb = tn.Sequential(tn.Embedding(5, 3, dtype=F64), tn.Linear(3, 2, dtype=F64))
    assert emb.accumulates_grad
    s = Recording()
    t = _trainer(emb, strategy=s)
    emb.flat.grad[...] = 4.0
    t.loss_and_grad(np.array([1, 2]), np.array([0, 1]))
    assert s.calls[-1][3] == 0.0                                       # zeroed before the backward
    s2 = Recording()
    plain = _model()
    t2 = _trainer(plain, strategy=s2)
    plain.flat.grad[...] = 4.0
    t2.loss_and_grad(*_data(2))
    assert s2.calls[-1][3] == 4.0 * plain.flat.grad.size             # the backward overwrites: not zeroed


def test_the_gpu_loss_log_keeps_the_values():
    class Log:
        def __init__(self):
            self.calls = []

        def add_value(self, v):
            self.calls.append(("value", v))

        def add_penalty(self, penalty, model, n):
            self.calls.append(("penalty", penalty, model, n))

    model = _model()

    def penalty(m, n, grad=True):
        return 1.0

    t = _trainer(model, strategy=Recording(value=0.5), penalty=penalty)
    t._log = log = Log()
    X, y = _data(3)
    assert t.loss_and_grad(X, y, np.ones(3), n_global=3, weight_sum=2.5) is None
    assert log.calls == [("value", 0.5), ("penalty", penalty, model, 2.5)]
    t.strategy = Recording(value=None)
    log.calls.clear()
    assert t.loss_and_grad(X, y) is None
    assert log.calls == [("penalty", penalty, model, 3)]


def test_a_step_runs_the_optimizer_the_step_schedule_and_the_hooks_in_order():
    order = []

    class Opt:
        lr = 0.1

        def step(self):
            order.append("optimizer")

    class PerStep(schedules.Schedule):
        unit = "step"

        def step(self):
            order.append("schedule")

    class PerEpoch(PerStep):
        unit = "epoch"

        def epoch_end(self, samples_seen, record=None):
            order.append(("epoch_end", samples_seen, record))

    class Hook:
        def on_step_end(self, trainer):
            order.append("hook" if isinstance(trainer, Trainer) else None)

        def on_epoch_end(self, trainer):
            order.append("epoch hook" if isinstance(trainer, Trainer) else None)

    model = _model()
    opt = Opt()
    t = Trainer(model, tn.SoftmaxCrossEntropy(), opt, PerStep(opt), callbacks=[Hook(), Hook()], strategy=Recording())
    assert t.step(*_data(2)) == 0.5
    assert order == ["optimizer", "schedule", "hook", "hook"]
    order.clear()
    t = Trainer(model, tn.SoftmaxCrossEntropy(), opt, PerEpoch(opt), callbacks=[Hook()], strategy=Recording(),
                batch_size=2)
    rec = t.train_epoch(*_data(3))
    assert order == ["optimizer", "hook", "optimizer", "hook", ("epoch_end", 3, {"train_loss": 0.5}), "epoch hook"]
    assert rec == {"train_loss": 0.5}


def test_a_diverged_loss_rolls_back_and_names_where():
    X, y = _data(8)
    model = _model()
    start = model.flat.data.copy()
    values = iter([1.0, 2.0, float("nan")])

    class Diverging(Strategy):
        def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
            trainer.model.flat.grad[...] = 1.0
            return next(values)

    t = _trainer(model, strategy=Diverging(), batch_size=2, shuffle=False)
    with pytest.raises(DivergenceError) as e:
        t.train_epoch(X, y)
    assert str(e.value) == ("the training loss became nan at epoch 1, step 3; the parameters of the last completed "
                            "epoch were kept. Try a lower learning rate.")
    assert math.isnan(e.value.value)
    np.testing.assert_array_equal(model.flat.data, start)
    assert t.epoch == 0 and t.history == []


def test_a_loss_a_million_times_the_first_diverges_too():
    values = iter([2.0, 2.0e6 + 1])

    class Climbing(Strategy):
        def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
            return next(values)

    t = _trainer(strategy=Climbing(), batch_size=2, shuffle=False, epoch=4)
    with pytest.raises(DivergenceError) as e:
        t.train_epoch(*_data(4))
    assert e.value.value == 2.0e6 + 1 and "at epoch 5, step 2;" in str(e.value)


def test_non_finite_weights_at_the_end_of_an_epoch_roll_back():
    model = _model()
    start = model.flat.data.copy()

    class Blow:
        lr = 0.1

        def step(self):
            model.flat.data[0] = np.inf

    t = Trainer(model, tn.SoftmaxCrossEntropy(), Blow(), batch_size=16)
    with pytest.raises(DivergenceError) as e:
        t.train_epoch(*_data(5))
    assert str(e.value) == ("the weights became non-finite during epoch 1; the parameters of the last completed "
                            "epoch were kept. Try a lower learning rate.")
    assert math.isnan(e.value.value)
    np.testing.assert_array_equal(model.flat.data, start)
    assert (t.epoch, t.samples_seen, t.history) == (0, 0, [])


# ---------------------------------------------------------------------- the epoch
def test_with_a_zero_learning_rate_the_epoch_measures_the_full_data_loss_and_accuracy():
    X, y = _data(11)
    model = _model()
    Z = model.forward(X)
    t = _trainer(model, lr=0.0, batch_size=4)
    rec = t.train_epoch(X, y, accuracy=True)
    assert rec["train_loss"] == pytest.approx(_cross_entropy(Z, y), rel=1e-12)
    assert rec["train_accuracy"] == pytest.approx(np.mean(np.argmax(Z, axis=1) == y), abs=1e-15)
    assert t.history == [rec] and rec is not t._history[0]
    rec2 = t.train_epoch(X, y)                                         # not asked: no accuracy
    assert set(rec2) == {"train_loss"}
    w = np.random.default_rng(2).uniform(0.5, 1.5, 11)
    rec3 = t.train_epoch(X, y, sample_weight=w)
    g = np.random.default_rng(0)                                       # the shuffle stream: its third epoch
    order = [g.permutation(11) for _ in range(3)][2]
    parts = [order[s:s + 4] for s in (0, 4, 8)]
    # each batch's weighted mean, averaged over the epoch by rows
    expected = sum(len(b) * _cross_entropy(Z[b], y[b], w[b]) for b in parts) / 11
    assert rec3["train_loss"] == pytest.approx(expected, rel=1e-12)


def test_an_epoch_is_the_rows_weighted_mean_of_the_batch_losses():
    values = iter([1.0, 2.0, 4.0])

    class Fixed(Strategy):
        def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
            return next(values)

    t = _trainer(strategy=Fixed(), batch_size=4)
    rec = t.train_epoch(*_data(10))                                    # rows 4, 4, 2
    assert rec == {"train_loss": pytest.approx((4 * 1.0 + 4 * 2.0 + 2 * 4.0) / 10)}


def test_an_epoch_without_samples_is_refused():
    t = _trainer()
    X, y = _data(3)
    with pytest.raises(ValueError) as e:
        t.train_epoch(X[:0], y[:0])
    assert str(e.value) == "Trainer.train_epoch: no training samples"


def test_an_epoch_whose_batches_all_weigh_nothing():
    t = _trainer(batch_size=2)
    rec = t.train_epoch(*_data(4), sample_weight=np.zeros(4), accuracy=True)
    assert rec == {"train_loss": 0.0, "train_accuracy": None} and t.epoch == 1


class Progress:
    def __init__(self):
        self.updates, self.postfix = [], []

    def update(self, n):
        self.updates.append(n)

    def set_postfix(self, refresh=True, **kw):
        self.postfix.append((kw, refresh))


def test_progress_every_batch_and_the_loss_every_20_steps():
    values = [0.001 * (i + 1) for i in range(45)]
    it = iter(values)

    class Fixed(Strategy):
        def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
            return next(it)

    t = _trainer(strategy=Fixed(), batch_size=2)
    p = Progress()
    t.train_epoch(*_data(89), progress=p)
    assert p.updates == [2] * 44 + [1]
    assert p.postfix == [({"loss": "0.0010"}, False), ({"loss": "0.0210"}, False), ({"loss": "0.0410"}, False)]


class Source:
    """A batch source that gives its losses back late (as the GPU data path does)."""

    counting, correct = True, 3

    def __init__(self, fail=False, deferred=True):
        self.deferred, self.fail, self.events = deferred, fail, []

    def __iter__(self):
        for step in range(3):
            X, y = _data(2, seed=step)
            yield tn.batches.Batch(step, np.arange(2), np.arange(2), X, y)

    def settle(self, batch, value):
        if self.fail and batch.step == 1:
            raise KeyboardInterrupt
        return ((2.0, 2),) if batch.step == 1 else ()

    def finish(self):
        self.events.append("finish")
        return ((4.0, 2), (6.0, 2))

    def abort(self):
        self.events.append("abort")

    def close(self):
        self.events.append("close")


class SourceStrategy(Strategy):
    def __init__(self, source):
        super().__init__()
        self.source = source

    def batches(self, trainer, X, T, sample_weight=None, accuracy=False):
        return self.source

    def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
        return 1.0

    def allsum(self, value):
        return value * 2                                               # two processes counting alike


def test_late_losses_are_settled_and_finished():
    src = Source()
    t = _trainer(strategy=SourceStrategy(src))
    p = Progress()
    rec = t.train_epoch(*_data(6), progress=p)
    assert rec == {"train_loss": pytest.approx((2.0 * 2 + 4.0 * 2 + 6.0 * 2) / 6), "train_accuracy": 1.0}
    assert src.events == ["finish", "close"]
    assert p.updates == [2, 2, 2] and p.postfix == [({"loss": "2.0000"}, False)]   # deferred: when one settles


def test_an_interrupted_epoch_aborts_and_closes_its_source():
    src = Source(fail=True)
    t = _trainer(strategy=SourceStrategy(src))
    with pytest.raises(KeyboardInterrupt):
        t.train_epoch(*_data(6))
    assert src.events == ["abort", "close"] and t.epoch == 0


# ---------------------------------------------------------------------- rollback
def test_capture_restore_and_rollback():
    model = _model(batch_norm=True)
    bn = model.layers[1]
    bn.running_mean[...] = 3.0
    t = _trainer(model)
    t.rollback()                                                       # no snapshot yet: nothing happens
    params0 = model.flat.data.copy()
    t.snapshot()
    first = t._snapshot[0]
    model.flat.data[...] = 5.0
    bn.running_mean[...] = -1.0
    bn.running_var[...] = 9.0
    t.rollback()
    np.testing.assert_array_equal(model.flat.data, params0)
    np.testing.assert_array_equal(bn.running_mean, 3.0)
    np.testing.assert_array_equal(bn.running_var, 1.0)
    t.snapshot()
    assert t._snapshot[0] is first                                     # the copy's buffer is reused
    params, states = Trainer.capture(model)
    assert params is not model.flat.data and params.dtype == F64
    np.testing.assert_array_equal(params, model.flat.data)
    assert len(states) == 2 and np.all(states[0] == 3.0) and states[0] is not bn.running_mean
    other = Trainer.capture(_model((4, 5, 3)))
    again = Trainer.capture(model, into=other)
    assert again[0] is not other[0] and again[0].shape == model.flat.data.shape


# ---------------------------------------------------------------------- prediction and evaluation
def test_prediction_in_chunks_is_the_eval_forward_pass_and_keeps_the_mode():
    X, y = _data(10)
    model = _model(batch_norm=True, dropout=0.5)
    model.layers[1].running_mean[...] = 0.5
    model.eval()
    Z = model.forward(X).copy()
    model.train()
    for chunk in (3, 10, PREDICT_CHUNK):
        out = predict_raw(model, X, chunk)
        np.testing.assert_allclose(out, Z, rtol=1e-12)
        assert out.shape == (10, 3) and out.dtype == F64 and model.training
    model.eval()
    np.testing.assert_allclose(_trainer(model).predict_raw(X, chunk=4), Z, rtol=1e-12)
    assert not model.training


def test_prediction_up_to_a_layer_gives_the_hidden_activations():
    X, _ = _data(7)
    model = _model()
    lin = model.layers[0]
    hidden = np.maximum(X @ lin.weight.data + lin.bias.data, 0)
    np.testing.assert_allclose(predict_raw(model, X, 3, upto=2), hidden, rtol=1e-12)
    np.testing.assert_allclose(predict_raw(model, X, 3, upto=3), predict_raw(model, X), rtol=1e-12)


def test_prediction_restores_the_mode_after_an_error():
    model = _model()
    with pytest.raises(ValueError):
        predict_raw(model, np.ones((3, 5)))                            # 5 columns for 4 inputs
    assert model.training


def test_sparse_rows_are_predicted_as_they_are():
    X, _ = _data(6)
    model = _model()
    np.testing.assert_allclose(predict_raw(model, sp.csr_matrix(X), 4), predict_raw(model, X), rtol=1e-12)
    t = _trainer(model)
    S = sp.csr_matrix(X)
    assert t.on_device(S) is S and t.on_device(X) is X


def test_evaluate_is_the_mean_loss_and_the_accuracy():
    X, y = _data(9)
    model = _model()
    Z = model.forward(X)
    value, acc = evaluate(model, X, y, 4)
    assert value == pytest.approx(_cross_entropy(Z, y), rel=1e-12)
    assert acc == np.mean(np.argmax(Z, axis=1) == y)
    T = np.random.default_rng(0).standard_normal((9, 3))
    t = _trainer(model, loss=tn.MSELoss())
    value, acc = t.evaluate(X, T)
    assert acc is None and value == pytest.approx(np.mean((Z - T) ** 2), rel=1e-12)


def test_make_optimizer_has_torch_s_momentum_by_default():
    params = _model().parameters()
    opt = make_optimizer("sgd", params, 0.05)
    assert (opt.lr, opt.momentum, opt.weight_decay) == (0.05, 0.9, 0.0)
    opt = make_optimizer("sgd", params, 0.05, weight_decay=1e-4, momentum=0.0)
    assert (opt.lr, opt.momentum, opt.weight_decay) == (0.05, 0.0, 1e-4)


@pytest.mark.parametrize("n, bs, steps", [(10, 4, 3), (8, 4, 2), (1, 4, 1), (0, 4, 0), (128, 128, 1)])
def test_steps_per_epoch_is_the_ceiling(n, bs, steps):
    assert steps_per_epoch(n, bs) == steps


# ---------------------------------------------------------------------- checkpoints
class Counter:
    """A callback with a state: the number of steps it saw."""

    def __init__(self):
        self.n, self.loaded = 0, None

    def on_step_end(self, trainer):
        self.n += 1

    def state(self):
        return {"count": np.array([self.n])}, {"n": self.n}

    def load_state(self, arrays, meta):
        self.loaded = (dict(arrays), meta)
        self.n = int(arrays["count"][0])


def test_state_round_trip_through_a_checkpoint(tmp_path):
    X, y = _data(10)
    plain = object()
    t = _trainer(batch_size=4, callbacks=[plain, Counter()], aug_rng=3)
    t.train_epoch(X, y)
    t.record(val=0.5)
    arrays, meta = t.state()
    assert np.all(arrays["callback1/count"] == 3) and meta["callback1"] == {"n": 3} and "callback0" not in meta
    assert (meta["epoch"], meta["samples_seen"], meta["history"]) == (1, 10, t._history)

    loads = []

    class OnLoad(Strategy):
        def on_load(self):
            loads.append(True)

    counter = Counter()
    u = _trainer(batch_size=4, callbacks=[object(), counter], strategy=OnLoad())
    assert u.load_state(arrays, meta) is u
    assert (u.epoch, u.samples_seen, u.history) == (1, 10, t.history) and loads == [True]
    assert counter.n == 3 and list(counter.loaded[0]) == ["count"] and counter.loaded[1] == {"n": 3}
    np.testing.assert_array_equal(u.model.flat.data, t.model.flat.data)

    assert u.rng.bit_generator.state == t.rng.bit_generator.state
    assert u.aug_rng.bit_generator.state == t.aug_rng.bit_generator.state
    u.train_epoch(X, y)
    t.train_epoch(X, y)
    np.testing.assert_array_equal(u.model.flat.data, t.model.flat.data)

    path = tmp_path / "ckpt.npz"
    t = _trainer(batch_size=4)
    t.train_epoch(X, y)
    t.save_checkpoint(path, {"lr": 0.1})
    arrays, meta = tn.io.load_npz(path, kind="checkpoint")
    assert meta["config"] == {"lr": 0.1} and meta["epoch"] == 1
    v = _trainer(batch_size=4).load_state(arrays, meta)
    assert v.history == t.history and v.samples_seen == 10
    np.testing.assert_array_equal(v.model.flat.data, t.model.flat.data)


def test_a_direct_step_names_no_place():
    class NaN(Strategy):
        def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
            return float("inf")

    t = _trainer(strategy=NaN())
    with pytest.raises(DivergenceError) as e:
        t.step(*_data(2))
    assert str(e.value) == ("the training loss became inf ; the parameters of the last completed epoch were kept. "
                            "Try a lower learning rate.")


def test_an_epoch_of_one_row():
    X, y = _data(1)
    model = _model()
    Z = model.forward(X)
    rec = _trainer(model, lr=0.0).train_epoch(X, y, accuracy=True)
    assert rec["train_loss"] == pytest.approx(_cross_entropy(Z, y), rel=1e-12)
    assert rec["train_accuracy"] == float(np.argmax(Z[0]) == y[0])
    y2 = np.array([(np.argmax(Z[0]) + 1) % 3])                         # a wrong label: accuracy 0
    assert _trainer(_model(), lr=0.0).train_epoch(X, y2, accuracy=True)["train_accuracy"] == 0.0
    right = np.array([np.argmax(Z[0])])
    assert _trainer(_model(), lr=0.0).train_epoch(X, right, accuracy=True)["train_accuracy"] == 1.0


def test_the_device_batch_feed_is_made_once_and_kept(monkeypatch):
    from tinynn import training

    made = []

    def batch_feed(device):
        made.append(device)
        return None if device == "nofeed" else ("feed", device)

    monkeypatch.setattr(training.kernels, "batch_feed", batch_feed)
    t = _trainer()
    t.device = "gpu0"
    assert t._batch_feed() == ("feed", "gpu0") and t._batch_feed() == ("feed", "gpu0") and made == ["gpu0"]
    assert t.batch_feed == ("feed", "gpu0")
    t = _trainer()
    t.device = "nofeed"
    assert t._batch_feed() is None and t.feed is False and t.batch_feed is None and made == ["gpu0", "nofeed"]
    t = _trainer(feed=False)
    t.device = "gpu0"
    assert t._batch_feed() is None and made == ["gpu0", "nofeed"]
    mine = object()
    t = _trainer(feed=mine)
    t.device = "gpu0"
    assert t._batch_feed() is mine and t.batch_feed is mine and len(made) == 2


def test_a_float32_model_is_captured_and_predicted_in_float32():
    model = build_mlp([4, 6, 3], seed=0)                                # float32
    params, _ = Trainer.capture(model)
    assert params.dtype == np.float32
    X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    assert predict_raw(model, X).dtype == np.float32


def test_prediction_goes_chunk_by_chunk():
    X, y = _data(10)
    model = _model()
    expected = model.forward(X).copy()
    sizes = []
    forward = model.forward

    def recording(xb):
        sizes.append(len(xb))
        return forward(xb)

    model.forward = recording
    np.testing.assert_allclose(predict_raw(model, X, 4), expected, rtol=1e-12)
    assert sizes == [4, 4, 2]
    sizes.clear()
    t = _trainer(model)
    t.predict_raw(X, chunk=3)
    assert sizes == [3, 3, 3, 1]
    sizes.clear()
    evaluate(model, X, y, 6)
    assert sizes == [6, 4]
    sizes.clear()
    t.evaluate(X, y, chunk=7)
    assert sizes == [7, 3]


def test_optimizer_and_schedule_state_travel_with_the_trainer(tmp_path):
    X, y = _data(10)

    def make():
        model = _model()
        opt = tn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return Trainer(model, tn.SoftmaxCrossEntropy(), opt, schedules.StepLR(opt, step_size=3, gamma=0.5),
                       batch_size=4)

    t = make()
    t.train_epoch(X, y)
    arrays, meta = t.state()
    assert "schedule" in meta and any(k.startswith("optim/") for k in arrays)
    u = make().load_state(arrays, meta)
    assert u.optimizer.lr == t.optimizer.lr == 0.05                  # 3 steps: halved once
    for _ in range(2):
        t.train_epoch(X, y)
        u.train_epoch(X, y)
    np.testing.assert_array_equal(u.model.flat.data, t.model.flat.data)
    assert u.optimizer.lr == t.optimizer.lr


def test_load_state_names_where_the_state_came_from(tmp_path):
    from tinynn.errors import FileFormatError

    t = _trainer()
    t.train_epoch(*_data(4))
    arrays, meta = t.state()
    meta["surprise"] = 1
    with pytest.raises(FileFormatError) as e:
        _trainer().load_state(arrays, meta)
    assert str(e.value).startswith("tinynn state: ")
    path = tmp_path / "c.npz"
    t.save_checkpoint(path, {})
    arrays, meta = tn.io.load_npz(path, kind="checkpoint")
    meta["surprise"] = 1
    with pytest.raises(FileFormatError) as e:
        _trainer().load_state(arrays, meta)
    assert str(e.value).startswith(f"{path}: ")


def test_a_state_without_samples_seen_counts_from_zero():
    t = _trainer(samples_seen=50)
    t.train_epoch(*_data(4))
    arrays, meta = t.state()
    del meta["samples_seen"]
    u = _trainer(samples_seen=9).load_state(arrays, meta)
    assert (u.samples_seen, u.epoch) == (0, 1)


def test_a_callable_shuffle_starts_from_arange_even_for_no_rows():
    seen = []

    def shuffle(order):
        seen.append(order.copy())
        return order

    t = _trainer(shuffle=shuffle)
    assert t.batches(0) == [] and len(seen) == 1 and seen[0].dtype.kind == "i" and seen[0].shape == (0,)


class _Device:
    """A stand-in device backend: to_device tags a contiguous copy with the device, to_host takes it back."""

    def __init__(self, monkeypatch):
        from tinynn import training

        self.uploads = []
        monkeypatch.setattr(training.kernels, "to_device", self.to_device)
        monkeypatch.setattr(training.kernels, "to_host", self.to_host)

    def to_device(self, a, device):
        assert a.flags.c_contiguous
        self.uploads.append((a.shape, device))
        return ("on", device, a.copy())

    @staticmethod
    def to_host(h):
        return h[2] if isinstance(h, tuple) else h


def test_on_a_device_batches_are_uploaded_contiguous_and_sparse_rows_stay(monkeypatch):
    dev = _Device(monkeypatch)
    t = _trainer()
    t.device = "gpu0"
    X = np.arange(12.0).reshape(3, 4)[:, ::2]                           # not contiguous
    up = t.on_device(X)
    assert up[:2] == ("on", "gpu0") and dev.uploads == [((3, 2), "gpu0")]
    np.testing.assert_array_equal(up[2], X)
    S = sp.csr_matrix(X)
    assert t.on_device(S) is S and len(dev.uploads) == 1


def test_prediction_on_a_device_uploads_each_chunk_and_reads_back(monkeypatch):
    dev = _Device(monkeypatch)

    class Model:
        device, training = "gpu0", True
        plan = []

        def eval(self):
            self.training = False

        def train(self, mode=True):
            self.training = mode

        def forward(self, h):
            assert h[:2] == ("on", "gpu0") and not self.training
            return ("on", "gpu0", h[2] * 2.0)

    X = np.arange(10.0).reshape(5, 2)
    m = Model()
    out = predict_raw(m, X, 2)
    np.testing.assert_array_equal(out, 2 * X)
    assert dev.uploads == [((2, 2), "gpu0"), ((2, 2), "gpu0"), ((1, 2), "gpu0")] and m.training
    dev.uploads.clear()

    class SparseModel(Model):
        def forward(self, h):
            assert sp.issparse(h)
            return h.toarray()

    np.testing.assert_array_equal(predict_raw(SparseModel(), sp.csr_matrix(X), 3), X)
    assert dev.uploads == []                                            # sparse rows go as they are
