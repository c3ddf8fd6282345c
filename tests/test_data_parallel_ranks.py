"""tinynn.parallel.data on several ranks in one process (threads sharing a ThreadGroup, tests/thread_ranks.py):
what the ranks compute together against one process computing the whole batch, and the data-parallel
strategy's bookkeeping (shards, weights, buckets, dropout and augmentation streams, checks, measurements)
against plain statements. The same code under mpiexec is in test_parallel_mpi.py."""
import numpy as np
import pytest

import tinynn as tn
from tinynn import parallel
from tinynn.parallel.comm import LocalGroup
from tinynn.parallel.data import DataParallel, SyncBatchNorm, _merge, convert_sync_batchnorm
from tinynn.training import Trainer, build_mlp
from tests.thread_ranks import run_ranks

F64 = np.float64
EPS = 1e-5


def _bn_reference(X, gamma, beta, G):
    """BatchNorm over the whole batch from its definition: Y, x̂, σ², and the backward of upstream G."""
    N = X.shape[0]
    mu, var = X.mean(axis=0), X.var(axis=0)
    xhat = (X - mu) / np.sqrt(var + EPS)
    Y = gamma * xhat + beta
    dxhat = G * gamma
    dX = (N * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0)) / (N * np.sqrt(var + EPS))
    return Y, mu, var, dX, (G * xhat).sum(0), G.sum(0)


# ---------------------------------------------------------------------- SyncBatchNorm on several ranks
@pytest.mark.parametrize("rows", [[3, 2, 4], [1, 1]])
def test_sync_batchnorm_on_ranks_is_batchnorm_of_the_global_batch(rows):
    """[1, 1]: each rank's own variance is 0; the global one comes from the means alone (Chan's update)."""
    rng = np.random.default_rng(0)
    N, d = sum(rows), 4
    X = rng.standard_normal((N, d)) * 3 + 1
    G = rng.standard_normal((N, d))
    gamma, beta = rng.uniform(0.5, 2, d), rng.standard_normal(d)
    Y, mu, var, dX, dgamma, dbeta = _bn_reference(X, gamma, beta, G)
    bounds = np.cumsum([0] + rows)

    def rank(group):
        r = group.rank
        lo, hi = bounds[r], bounds[r + 1]
        w = (hi - lo) / N
        layer = SyncBatchNorm(d, group, eps=EPS, momentum=0.25, dtype=F64)
        layer.weight.data[...] = gamma
        layer.bias.data[...] = beta
        y = layer.forward(X[lo:hi]).copy()
        dx = layer.backward(G[lo:hi] / w).copy()            # rank r's loss L_r = L / w_r
        return y, dx, layer.weight.grad.copy(), layer.bias.grad.copy(), w, layer.running_mean.copy(), \
            layer.running_var.copy()

    out = run_ranks(len(rows), rank)
    np.testing.assert_allclose(np.concatenate([o[0] for o in out]), Y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([o[1] * o[4] for o in out]), dX, rtol=1e-9, atol=1e-12)
    # the parameter gradients stay local; DataParallel's reduction weighs them by w_r
    np.testing.assert_allclose(sum(o[2] * o[4] for o in out), dgamma, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sum(o[3] * o[4] for o in out), dbeta, rtol=1e-10, atol=1e-12)
    for o in out:                                           # running statistics from 0 and 1, momentum 1/4
        np.testing.assert_allclose(o[5], 0.25 * mu, rtol=1e-6)
        np.testing.assert_allclose(o[6], 0.75 + 0.25 * var * N / (N - 1), rtol=1e-6)


def test_sync_batchnorm_refuses_a_global_batch_of_one_row():
    layer = SyncBatchNorm(3, LocalGroup(), dtype=F64)
    with pytest.raises(ValueError) as e:
        layer.forward(np.ones((1, 3)))
    assert str(e.value) == "SyncBatchNorm: expected more than 1 row per global batch in training mode, got 1"


def test_sync_batchnorm_in_eval_mode_uses_the_running_statistics():
    layer = SyncBatchNorm(2, LocalGroup(), eps=0.5, dtype=F64)
    assert (layer.eps, layer.momentum, layer.group.size) == (0.5, 0.1, 1)
    layer.running_mean[...] = [1.0, -1.0]
    layer.running_var[...] = [3.5, 0.5]
    layer.weight.data[...] = [2.0, 1.0]
    layer.bias.data[...] = [0.5, 0.0]
    layer.eval()
    np.testing.assert_allclose(layer.forward(np.array([[3.0, 0.0]])), [[2.5, 1.0]])   # 2(3-1)/2+.5, (0+1)/1
    assert repr(layer) == "SyncBatchNorm(2, eps=0.5, momentum=0.1)"


def test_convert_sync_batchnorm_shares_the_parameters_and_replans():
    model = build_mlp([4, 6, 5, 3], batch_norm=True, dtype=F64)
    bns = [l for l in model.layers if type(l) is tn.BatchNorm1d]
    bns[0].running_mean[...] = 7.0
    group = LocalGroup()
    assert convert_sync_batchnorm(model, group) is model
    sync = [l for l in model.layers if isinstance(l, SyncBatchNorm)]
    assert len(sync) == 2 and not any(type(l) is tn.BatchNorm1d for l in model.layers)
    for old, new in zip(bns, sync):
        assert new.weight is old.weight and new.bias is old.bias and new.group is group
        assert new.running_mean is old.running_mean and new.eps == old.eps and new.momentum == old.momentum
    assert [node for _, node in model.plan if isinstance(node, SyncBatchNorm)] == sync
    plain = build_mlp([4, 6, 3], dtype=F64)
    layers = list(plain.layers)
    assert convert_sync_batchnorm(plain, group).layers == layers


# ---------------------------------------------------------------------- training on several ranks
def _train(strategy_of, P, X, y, sample_weight=None, epochs=2, batch_size=5, **model_kw):
    """Parameters and history after ``epochs`` epochs: one process (P = 0) or P ranks with DataParallel."""
    def one(group):
        model = build_mlp([X.shape[1], 6, 3], dtype=F64, seed=3, **model_kw)
        strategy = strategy_of(model, group) if group is not None else None
        opt = tn.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
        t = Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=batch_size, rng=1, strategy=strategy)
        for _ in range(epochs):
            t.train_epoch(X, y, sample_weight=sample_weight, accuracy=True)
        return model.flat.data.copy(), t.history, strategy
    return one(None) if P == 0 else run_ranks(P, one)


def _data(n=13, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, 3, n)


@pytest.mark.parametrize("P, options", [
    (2, {}),
    (3, {"overlap": False}),
    (3, {"bucket_bytes": 10 ** 9}),
])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_ranks_train_as_one_process(P, options, batch_norm):
    X, y = _data()
    params, hist, _ = _train(lambda m, g: None, 0, X, y, batch_norm=batch_norm)
    for p, h, dp in _train(lambda m, g: DataParallel(m, g, batch_size=5, **options), P, X, y, batch_norm=batch_norm):
        np.testing.assert_allclose(p, params, rtol=1e-9, atol=1e-12)
        for a, b in zip(h, hist):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-9)
            assert a["train_accuracy"] == pytest.approx(b["train_accuracy"], abs=1e-12)
        assert dp.has_sync_bn is batch_norm


def test_ranks_train_as_one_process_with_sample_weights():
    X, y = _data()
    sw = np.random.default_rng(5).uniform(0.1, 2.0, len(y))
    params, hist, _ = _train(lambda m, g: None, 0, X, y, sample_weight=sw)
    for p, h, _ in _train(lambda m, g: DataParallel(m, g), 2, X, y, sample_weight=sw):
        np.testing.assert_allclose(p, params, rtol=1e-9, atol=1e-12)
        assert [a["train_loss"] for a in h] == pytest.approx([b["train_loss"] for b in hist], rel=1e-9)


def test_a_rank_without_rows_contributes_nothing():
    """A global batch of 2 rows on 3 ranks: rank 2 has no rows, the gradient is still the batch's."""
    X, y = _data(n=2)
    params, hist, _ = _train(lambda m, g: None, 0, X, y, epochs=3)
    out = _train(lambda m, g: DataParallel(m, g), 3, X, y, epochs=3)
    for p, h, _ in out:
        np.testing.assert_allclose(p, params, rtol=1e-9, atol=1e-12)
        assert [a["train_loss"] for a in h] == pytest.approx([b["train_loss"] for b in hist], rel=1e-9)


def test_sync_batchnorm_refuses_a_rank_without_rows():
    def rank(group):
        dp = DataParallel(build_mlp([3, 4, 2], batch_norm=True, dtype=F64), group)
        return dp.shard(np.arange(2))

    with pytest.raises(ValueError) as e:
        run_ranks(3, rank)
    assert str(e.value) == ("DataParallel: a global batch of 2 rows leaves rank 2 of 3 without rows, which "
                            "SyncBatchNorm cannot handle; use a batch size that is at least the number of ranks "
                            "(and drop or merge a smaller last batch)")


# ---------------------------------------------------------------------- shards and weights
def test_shards_are_an_even_split_with_the_first_ranks_one_row_longer():
    idx = np.array([9, 4, 7, 1, 0, 3, 8])

    def rank(group):
        dp = DataParallel(build_mlp([3, 2], dtype=F64), group)
        return list(dp.shard(idx)), dp._w

    out = run_ranks(3, rank)
    assert [o[0] for o in out] == [[9, 4, 7], [1, 0], [3, 8]]
    assert [o[1] for o in out] == pytest.approx([3 / 7, 2 / 7, 2 / 7], rel=1e-15)


def test_weighted_shares_are_the_ranks_part_of_the_weight():
    sw = np.array([1.0, 3.0, 0.0, 4.0, 2.0, 0.0])
    dp = DataParallel(build_mlp([3, 2], dtype=F64), LocalGroup())
    assert list(dp.shard(np.array([1, 3, 4]), sw)) == [1, 3, 4] and dp._w == 1.0
    assert list(dp.shard(np.array([2, 5]), sw)) == [2, 5] and dp._w == 0.0         # a batch of zero weight

    def rank(group):
        d = DataParallel(build_mlp([3, 2], dtype=F64), group)
        d.shard(np.array([0, 1, 2, 3, 4]), sw)
        return d._w

    assert run_ranks(2, rank) == pytest.approx([4 / 10, 6 / 10], rel=1e-15)        # rows [0,1,2] and [3,4]


# ---------------------------------------------------------------------- buckets and the reduction
def _ranges(model, layer):
    where = {id(p): r for p, r in zip(model.flat.params, model.flat.offsets)}
    return _merge([where[id(p)] for p in layer.parameters()])


@pytest.mark.parametrize("bucket_bytes, buckets", [(0, 2), (168, 2), (169, 1), (10 ** 6, 1)])
def test_buckets_close_at_bucket_bytes_in_backward_order(bucket_bytes, buckets):
    model = build_mlp([4, 6, 3], dtype=F64)               # the last Linear holds 21 values: 168 bytes
    dp = DataParallel(model, LocalGroup(), bucket_bytes=bucket_bytes)
    first, last = model.layers[0], model.layers[-1]
    assert dp.bucket_bytes == bucket_bytes and len(dp.buckets) == buckets
    if buckets == 2:
        assert dp.buckets == [_ranges(model, last), _ranges(model, first)]
        assert dp._bucket_of == {2: 0, 1: 1} and dp._members == [[2], [1]]     # plan index: Linear+ReLU is 1
    else:
        assert dp.buckets == [[(0, 51)]] and dp._bucket_of == {2: 0, 1: 0} and dp._members == [[2, 1]]


def test_frozen_parameters_are_not_reduced():
    model = build_mlp([4, 6, 3], dtype=F64)
    for p in model.layers[0].parameters():
        p.requires_grad = False
    dp = DataParallel(model, LocalGroup())
    assert dp.buckets == [_ranges(model, model.layers[-1])] and dp._bucket_of == {2: 0}


def test_a_parameter_outside_the_plan_gets_one_bucket_of_everything():
    model = build_mlp([4, 6, 3], dtype=F64)
    model.plan = [(i, n) for i, n in model.plan if i != 1]   # the first Linear's parameters are not planned
    dp = DataParallel(model, LocalGroup())
    assert dp.buckets == [[(0, 51)]] and dp._members == [[]] and dp._bucket_of == {}
    assert dp._pending == [0] and dp._next == 0 and dp._reqs == []


def test_without_a_plan_the_layers_are_the_nodes():
    model = build_mlp([4, 6, 3], dtype=F64)
    del model.plan
    dp = DataParallel(model, LocalGroup())
    assert dp._nodes() == list(enumerate(model.layers)) and len(dp.buckets) == 2


def test_merge_joins_touching_ranges_only():
    assert _merge([(5, 2), (0, 3), (3, 2), (10, 1), (8, 1)]) == [(0, 7), (8, 1), (10, 1)]
    assert _merge([]) == []


def _collectives_of_one_step(overlap, P=2, bucket_bytes=0):
    X, y = _data(n=4)

    def rank(group):
        model = build_mlp([4, 6, 3], dtype=F64)
        dp = DataParallel(model, group, overlap=overlap, bucket_bytes=bucket_bytes)
        loss = tn.SoftmaxCrossEntropy()
        idx = np.arange(4)
        local = dp.shard(idx)
        start = len(group.calls)
        loss(model.forward(X[local]), y[local])
        model.backward(loss.backward(), hook=dp.grad_ready)
        during = group.calls[start:]
        dp.reduce_gradients(model, len(local), len(idx))
        after = group.calls[start:]
        return during, after, dp.finish(), dp, model

    return run_ranks(P, rank)


def test_overlap_starts_each_bucket_from_the_backward_hook_last_layer_first():
    for during, after, fin, dp, model in _collectives_of_one_step(True):
        # the last Linear (weight, then bias: not adjacent in the flat buffer), then the first
        assert during == after == [("iallreduce_", 144), ("iallreduce_", 24), ("iallreduce_", 192),
                                   ("iallreduce_", 48)]
        assert fin["buckets"] == 2 and fin["bytes_per_step"] == 408
        assert 0 <= fin["allreduce_wait_s_per_step"] < 60
        assert dp.stats["steps"] == 1 and dp._w is None and dp._next == 0 and dp._reqs == []


def test_without_overlap_one_allreduce_of_the_whole_gradient_after_backward():
    for during, after, fin, dp, model in _collectives_of_one_step(False):
        assert during == [] and after == [("allreduce_", 408)]
        assert fin["bytes_per_step"] == 408 and fin["buckets"] == 2


def test_measurements_before_any_step():
    dp = DataParallel(build_mlp([4, 6, 3], dtype=F64), LocalGroup())
    assert dp.finish() == {"allreduce_wait_s_per_step": 0.0, "buckets": 2, "bytes_per_step": 0.0}
    assert repr(dp) == "DataParallel(rank=0, size=1, buckets=2, overlap=True)"
    assert (dp.rank, dp.size, dp.is_root, dp.allsum(2.5)) == (0, 1, True, 2.5)


def test_the_hook_waits_for_shard_before_starting_buckets():
    model = build_mlp([4, 6, 3], dtype=F64)
    dp = DataParallel(model, LocalGroup())
    assert dp._pending == [1, 1]
    dp.grad_ready(2)
    dp.grad_ready(1)
    assert dp._next == 0 and dp._pending == [0, 0]        # counted down, nothing started without a share
    dp.grad_ready(0)                                       # not a node of the plan: no bucket
    assert dp._pending == [0, 0]
    off = DataParallel(model, LocalGroup(), overlap=False)
    off.shard(np.arange(4))
    off.grad_ready(2)
    assert off._pending == [1, 1] and off._next == 0       # without overlap the hook does nothing


def test_reduce_gradients_scales_by_the_given_share_on_one_rank():
    model = build_mlp([4, 6, 3], dtype=F64)
    for overlap in (True, False):
        dp = DataParallel(model, LocalGroup(), overlap=overlap)
        model.flat.grad[...] = 2.0
        dp.reduce_gradients(model, 1, 4)                  # no shard(): the share is given
        np.testing.assert_array_equal(model.flat.grad, 0.5)
        model.flat.grad[...] = 2.0
        dp.reduce_gradients(None, 0, 4)                   # a share of 0 with no bucket started: zeros
        np.testing.assert_array_equal(model.flat.grad, 0.0)
        model.flat.grad[...] = 2.0
        dp.shard(np.arange(3))
        dp.reduce_gradients()                             # the share shard() recorded: 1
        np.testing.assert_array_equal(model.flat.grad, 2.0)


def test_reduce_gradients_errors():
    model = build_mlp([4, 6, 3], dtype=F64)
    dp = DataParallel(model, LocalGroup())
    with pytest.raises(ValueError) as e:
        dp.reduce_gradients(build_mlp([4, 6, 3], dtype=F64), 1, 2)
    assert str(e.value) == "DataParallel.reduce_gradients: got a different model than the one it was built for"
    for bad in (0, -1):
        with pytest.raises(ValueError) as e:
            dp.reduce_gradients(model, 1, bad)
        assert str(e.value) == f"DataParallel.reduce_gradients: n_global must be positive, got {bad}"
    with pytest.raises(RuntimeError) as e:
        dp.reduce_gradients(model)
    assert str(e.value) == "DataParallel.reduce_gradients: call shard(idx) first, or pass n_local and n_global"
    with pytest.raises(RuntimeError):
        dp.reduce_gradients(model, 1, None)
    X, y = _data(n=4)
    loss = tn.SoftmaxCrossEntropy()
    dp.shard(np.arange(4))
    loss(model.forward(X), y)
    model.backward(loss.backward(), hook=dp.grad_ready)   # the buckets started with a share of 1
    with pytest.raises(ValueError) as e:
        dp.reduce_gradients(model, 1, 2)
    assert str(e.value) == ("DataParallel.reduce_gradients: n_local/n_global = 1/2, but shard() gave this rank a "
                            "fraction 1.0 of the batch")
    dp.reduce_gradients(model, 4, 4)                       # the same share: accepted


# ---------------------------------------------------------------------- set-up, streams, checks
def test_construction_errors():
    with pytest.raises(TypeError) as e:
        DataParallel(tn.Linear(3, 2), LocalGroup())
    assert str(e.value) == ("DataParallel: expected a Sequential whose parameters share one flat buffer (one dtype, "
                            "one device), got Linear without one")
    with pytest.raises(ValueError) as e:
        DataParallel(build_mlp([3, 2]), LocalGroup(), dropout="rank")
    assert str(e.value) == "DataParallel: dropout must be 'per_rank' or 'same', got 'rank'"


def test_ranks_must_agree_on_the_batch_size_and_the_model():
    with pytest.raises(ValueError) as e:
        run_ranks(2, lambda g: DataParallel(build_mlp([3, 2]), g, batch_size=4 + g.rank))
    assert str(e.value) == ("tinynn.parallel: the batch size differs across ranks: rank 0 has 4, rank 1 has 5; "
                            "every rank must be started with the same arguments")
    with pytest.raises(ValueError, match="the model \\(layers, parameter shapes and dtypes\\) differs across ranks"):
        run_ranks(2, lambda g: DataParallel(build_mlp([3, 2 + g.rank]), g))
    assert all(isinstance(d, DataParallel) for d in run_ranks(2, lambda g: DataParallel(build_mlp([3, 2]), g)))


def test_every_rank_starts_from_rank_0s_parameters_and_statistics():
    def rank(group):
        model = build_mlp([3, 4, 2], batch_norm=True, dtype=F64, seed=group.rank)
        model.layers[1].running_var[...] = 1.0 + group.rank
        dp = DataParallel(model, group, sync_batchnorm=False)
        return model.flat.data.copy(), model.layers[1].running_var.copy(), dp.has_sync_bn, type(model.layers[1])

    (p0, v0, s0, t0), (p1, v1, s1, t1) = run_ranks(2, rank)
    np.testing.assert_array_equal(p1, p0)
    np.testing.assert_array_equal(p0, build_mlp([3, 4, 2], batch_norm=True, dtype=F64, seed=0).flat.data)
    np.testing.assert_array_equal(v1, 1.0) and np.testing.assert_array_equal(v0, 1.0)
    assert (s0, s1, t0, t1) == (False, False, tn.BatchNorm1d, tn.BatchNorm1d)


def _dropout_states(model):
    return [l.rng.bit_generator.state for l in model.layers if isinstance(l, tn.Dropout)]


def test_dropout_streams_per_rank_or_the_same():
    fresh = build_mlp([3, 4, 4, 2], dropout=0.5, seed=7)

    def rank(group, mode):
        model = build_mlp([3, 4, 4, 2], dropout=0.5, seed=7)
        dp = DataParallel(model, group, dropout=mode)
        return dp, model

    for mode in ("per_rank", "same"):
        out = run_ranks(2, lambda g: rank(g, mode))
        assert _dropout_states(out[0][1]) == _dropout_states(fresh)
        jumped = [np.random.Generator(l.rng.bit_generator.jumped(1)).bit_generator.state
                  for l in fresh.layers if isinstance(l, tn.Dropout)]
        assert _dropout_states(out[1][1]) == (jumped if mode == "per_rank" else _dropout_states(fresh))
        assert out[1][0].dropout == mode
    dp = DataParallel(build_mlp([3, 4, 2], dropout=0.5, seed=7), LocalGroup())
    assert dp.dropout == "per_rank"


def test_on_load_derives_the_rank_streams_again_and_checks_the_replicas():
    def rank(group):
        model = build_mlp([3, 4, 2], dropout=0.5, seed=7)
        dp = DataParallel(model, group)
        loaded = build_mlp([3, 4, 2], dropout=0.5, seed=7)   # what a checkpoint holds: rank 0's streams
        for l, src in zip(model.layers, loaded.layers):
            if isinstance(l, tn.Dropout):
                l.rng = src.rng
        dp._aug_ranked = True
        dp.on_load()
        return _dropout_states(model), dp._aug_ranked, dp.check_replicas()

    (s0, a0, c0), (s1, a1, c1) = run_ranks(2, rank)
    fresh = build_mlp([3, 4, 2], dropout=0.5, seed=7)
    assert s0 == _dropout_states(fresh)
    assert s1 == [np.random.Generator(l.rng.bit_generator.jumped(1)).bit_generator.state
                  for l in fresh.layers if isinstance(l, tn.Dropout)]
    assert (a0, a1, c0, c1) == (False, False, True, True)

    def drifted(group):
        model = build_mlp([3, 4, 2], dtype=F64)
        dp = DataParallel(model, group, dropout="same")
        model.flat.data[0] += group.rank
        dp.on_load()

    with pytest.raises(AssertionError) as e:
        run_ranks(2, drifted)
    assert str(e.value) == "tinynn.parallel: the parameters on rank 1 differ from rank 0's"


def test_rank_r_augments_from_the_augmentation_stream_jumped_r_times():
    X, y = _data(n=6)

    def rank(group):
        model = build_mlp([4, 3], dtype=F64)
        dp = DataParallel(model, group)
        t = Trainer(model, tn.SoftmaxCrossEntropy(), tn.optim.SGD(model.parameters(), lr=0.1), strategy=dp,
                    aug_rng=11)
        dp.batches(t, X, y)
        first = t.aug_rng.bit_generator.state
        dp.batches(t, X, y)                               # once per run, not per epoch
        second = t.aug_rng.bit_generator.state
        dp.on_load()                                      # a loaded checkpoint holds rank 0's stream again
        t.aug_rng.bit_generator.state = np.random.default_rng(11).bit_generator.state
        dp.batches(t, X, y)
        return first, second, t.aug_rng.bit_generator.state

    out = run_ranks(3, rank)
    for r, (first, second, third) in enumerate(out):
        bg = np.random.default_rng(11).bit_generator
        expected = (bg.jumped(r) if r else bg).state
        assert first == second == third == expected


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_rank_whose_rows_weigh_nothing_contributes_nothing(batch_norm):
    """Rank 0's rows of the batch weigh 0, rank 1's do not: the step is the weighted step of the whole batch,
    which is one process's step on rank 1's rows alone (before, rank 0's loss refused its all-zero weights
    with a ValueError). With SyncBatchNorm rank 0 still takes part in the statistics' collectives."""
    X = np.random.default_rng(0).standard_normal((8, 3))
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    sw = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.5, 1.0])

    def fit(group, X, y, sw):
        model = build_mlp([3, 4, 2], dtype=F64, batch_norm=batch_norm)
        dp = DataParallel(model, group) if group is not None else None
        t = Trainer(model, tn.SoftmaxCrossEntropy(), tn.optim.SGD(model.parameters(), lr=0.1), batch_size=len(y),
                    shuffle=False, strategy=dp)
        for _ in range(2):
            t.train_epoch(X, y, sample_weight=sw)
        if dp is not None:
            dp.check_replicas()
        return model.flat.data.copy(), t.curve("train_loss")

    out = run_ranks(2, lambda g: fit(g, X, y, sw))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    if not batch_norm:                                     # batch norm's statistics would include rank 0's rows
        params, losses = fit(None, X[4:], y[4:], sw[4:])
        for p, curve in out:
            np.testing.assert_allclose(p, params, rtol=1e-10, atol=1e-13)
            assert curve == pytest.approx(losses, rel=1e-10)


# ---------------------------------------------------------------------- SyncBatchNorm: float32, checks, defaults
def test_sync_batchnorm_in_float32_on_ranks_stays_float32():
    rng = np.random.default_rng(1)
    rows = [3, 2]
    X = rng.standard_normal((5, 3))
    G = rng.standard_normal((5, 3))
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    Y, _, _, dX, dgamma, _ = _bn_reference(X, gamma, beta, G)

    def rank(group):
        lo, hi = (0, 3) if group.rank == 0 else (3, 5)
        w = (hi - lo) / 5
        layer = SyncBatchNorm(3, group)                    # float32 by default
        layer.weight.data[...] = gamma
        layer.bias.data[...] = beta
        y = layer.forward(X[lo:hi].astype(np.float32))
        ydt, y = y.dtype, y.copy()
        dx = layer.backward((G[lo:hi] / w).astype(np.float32))
        return y, ydt, dx.copy(), dx.dtype, layer.weight.grad.copy() * w, layer.running_var.dtype

    out = run_ranks(len(rows), rank)
    assert all(o[1] == np.float32 and o[3] == np.float32 and o[5] == np.float32 for o in out)
    np.testing.assert_allclose(np.concatenate([o[0] for o in out]), Y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([o[2] * (len(o[2]) / 5) for o in out]), dX, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(sum(o[4] for o in out), dgamma, rtol=1e-4, atol=1e-5)


def test_sync_batchnorm_checks_its_inputs():
    layer = SyncBatchNorm(3, LocalGroup())
    cases = [
        (np.ones((4, 3)), TypeError, "SyncBatchNorm: expected dtype float32, got float64; convert with "
                                     "X.astype(np.float32)"),
        (np.ones(3, np.float32), ValueError, "SyncBatchNorm: expected a 2-D array, got shape (3,)"),
        (np.ones((4, 5), np.float32), ValueError, "SyncBatchNorm: expected 3 features (last axis), got shape (4, 5)"),
    ]
    for X, kind, msg in cases:
        with pytest.raises(kind) as e:
            layer.forward(X)
        assert str(e.value) == msg
    with pytest.raises(AssertionError) as e:
        layer.backward(np.ones((4, 3), np.float32))
    assert str(e.value) == "SyncBatchNorm.backward before a training-mode forward"
    layer.forward(np.arange(12, dtype=np.float32).reshape(4, 3))
    cases = [
        (np.ones((3, 3), np.float32), "SyncBatchNorm.backward: batch-size mismatch: expected 4 rows, got 3"),
        (np.ones((4, 2), np.float32), "SyncBatchNorm.backward: expected 3 features (last axis), got shape (4, 2)"),
        (np.ones(12, np.float32), "SyncBatchNorm.backward: expected a 2-D array, got shape (12,)"),
    ]
    for dY, msg in cases:
        with pytest.raises(ValueError) as e:
            layer.backward(dY)
        assert str(e.value) == msg


def test_sync_batchnorm_defaults_and_the_world_group(monkeypatch):
    from tinynn.parallel import data

    everyone = LocalGroup()
    monkeypatch.setattr(data, "world", lambda: everyone)
    layer = SyncBatchNorm(4)
    assert layer.group is everyone and (layer.eps, layer.momentum) == (1e-5, 0.1)
    assert layer.weight.dtype == np.float32 and layer.running_mean.dtype == np.float32
    X = np.array([[0.0], [2.0]], np.float32)
    one = SyncBatchNorm(1, LocalGroup())
    np.testing.assert_allclose(one.forward(X), [[-1 / np.sqrt(1 + 1e-5)], [1 / np.sqrt(1 + 1e-5)]], rtol=1e-6)
    np.testing.assert_allclose(one.running_mean, [0.1], rtol=1e-6)    # momentum 0.1: 0.9·0 + 0.1·1
    np.testing.assert_allclose(one.running_var, [0.9 + 0.1 * 2], rtol=1e-6)   # unbiased σ² = 2
    dp = DataParallel(build_mlp([3, 2]), None)
    assert dp.group is everyone


def test_a_converted_layer_has_its_own_work_buffers():
    bn = tn.BatchNorm1d(2, dtype=F64)
    X1 = np.array([[0.0, 1.0], [2.0, 5.0]])
    Y1 = bn.forward(X1)
    expected = Y1.copy()
    model = tn.Sequential(tn.Linear(2, 2, dtype=F64), bn)
    convert_sync_batchnorm(model, LocalGroup())
    sync = model.layers[1]
    sync.forward(np.array([[9.0, -1.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(Y1, expected)            # bn's output is not overwritten by the new layer


def test_the_batches_of_data_parallel_count_only_when_asked():
    X, y = _data(n=6)
    model = build_mlp([4, 3], dtype=F64)
    dp = DataParallel(model, LocalGroup())
    t = Trainer(model, tn.SoftmaxCrossEntropy(), tn.optim.SGD(model.parameters(), lr=0.1), strategy=dp)
    assert dp.batches(t, X, y).counting is False and dp.batches(t, X, y, accuracy=True).counting is True


def test_measurements_are_per_step():
    X, y = _data(n=8)

    def rank(group):
        model = build_mlp([4, 6, 3], dtype=F64)
        dp = DataParallel(model, group)
        t = Trainer(model, tn.SoftmaxCrossEntropy(), tn.optim.SGD(model.parameters(), lr=0.1), strategy=dp,
                    batch_size=3)
        t.train_epoch(X, y)                                # 3 steps
        return dp.finish(), dict(dp.stats)

    for fin, st in run_ranks(2, rank):
        assert st["steps"] == 3 and st["bytes"] == 3 * 408 and st["wait_s"] > 0
        assert fin == {"allreduce_wait_s_per_step": st["wait_s"] / 3, "buckets": 2, "bytes_per_step": 408.0}


# ---------------------------------------------------------------------- bucket edges, shares, the reduction's edges
@pytest.mark.parametrize("sizes, dtype, bucket_bytes, members", [
    ([4, 6, 3], np.float32, 84, [[2], [1]]),               # plan indices (Linear+ReLU: 1, 3, ...); float32: the last Linear's 21 values are 84 bytes
    ([4, 6, 3], np.float32, 85, [[2, 1]]),
    ([4, 6, 5, 3], F64, 300, [[4, 3], [1]]),               # 144 + 280 bytes close the first bucket
    ([4, 2, 6, 3], F64, 145, [[4], [3, 1]]),               # 168 closes; a new bucket counts from 0: 144 < 145
])
def test_bucket_membership(sizes, dtype, bucket_bytes, members):
    model = build_mlp(sizes, dtype=dtype)
    dp = DataParallel(model, LocalGroup(), bucket_bytes=bucket_bytes)
    assert dp._members == members
    nodes = dict(model.plan)
    assert dp.buckets == [_merge([r for i in m for r in _ranges(model, nodes[i])]) for m in members]


def test_a_weight_below_one_is_still_shared():
    sw = np.array([0.25, 0.25, 0.0])

    def rank(group):
        d = DataParallel(build_mlp([3, 2], dtype=F64), group)
        d.shard(np.array([0, 1]), sw)
        return d._w

    assert run_ranks(2, rank) == [0.5, 0.5]


def test_reduce_gradient_edges_on_one_rank():
    model = build_mlp([4, 6, 3], dtype=F64)
    dp = DataParallel(model, LocalGroup())
    model.flat.grad[...] = 2.0
    dp.reduce_gradients(model, 1, 1)                       # one row of one: accepted, unscaled
    np.testing.assert_array_equal(model.flat.grad, 2.0)
    model.flat.grad[...] = np.nan                          # a stale buffer of a rank without rows
    dp.reduce_gradients(model, 0, 4)
    np.testing.assert_array_equal(model.flat.grad, 0.0)
    model.flat.grad[...] = 2.0
    dp.shard(np.arange(4))                                 # shard() said 1, but no bucket has started yet:
    dp.reduce_gradients(model, 1, 2)                       # the given share wins
    np.testing.assert_array_equal(model.flat.grad, 1.0)
    one = DataParallel(model, LocalGroup(), bucket_bytes=10 ** 9)      # one bucket, started by the backward
    X, y = _data(n=4)
    loss = tn.SoftmaxCrossEntropy()
    one.shard(np.arange(4))
    loss(model.forward(X), y)
    model.backward(loss.backward(), hook=one.grad_ready)
    with pytest.raises(ValueError, match="shard\\(\\) gave this rank a fraction 1.0"):
        one.reduce_gradients(model, 3, 4)


def test_wait_time_adds_up_over_steps(monkeypatch):
    from tinynn.parallel import data

    class Clock:
        t = 0.0

        def perf_counter(self):
            self.t += 0.5
            return self.t

    monkeypatch.setattr(data, "time", Clock())
    X, y = _data(n=9)
    for overlap in (True, False):
        model = build_mlp([4, 6, 3], dtype=F64)
        dp = DataParallel(model, LocalGroup(), overlap=overlap)
        t = Trainer(model, tn.SoftmaxCrossEntropy(), tn.optim.SGD(model.parameters(), lr=0.1), strategy=dp,
                    batch_size=3)
        t.train_epoch(X, y)
        assert dp.stats == {"steps": 3, "wait_s": 1.5, "bytes": 3 * 408}
        assert dp.finish()["allreduce_wait_s_per_step"] == 0.5
