"""tinynn.parallel in one process (no MPI needed): the new layers' gradient checks, the partition, the
pipeline schedules, the bucket plan, the cost model. The multi-process runs are in test_parallel_mpi.py."""
import itertools
import sys

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinynn as tn
from tinynn.gradcheck import gradcheck
from tests.strategies import dims, finite_arrays
from tinynn import parallel
from tinynn.parallel import cost_model as cm
from tinynn.parallel.comm import LocalGroup, split_bounds, split_sizes
from tinynn.parallel.pipeline import node_cost, partition, schedule_order
from tinynn.training import build_mlp

F64 = np.float64
LOCAL = LocalGroup()


@st.composite
def batch(draw, n_lo=1, d_lo=1):
    n, d = draw(dims(n_lo, 6)), draw(dims(d_lo, 7))
    return draw(finite_arrays((n, d)))


# ---------------------------------------------------------------------- gradient checks of the new layers
@pytest.mark.parametrize("cls", [parallel.ColumnParallelLinear, parallel.RowParallelLinear])
@given(X=batch(), d_out=dims(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_tensor_parallel_layer_gradients(cls, X, d_out, bias, seed):
    """On a group of one the shard is the whole matrix: forward/backward against central differences. The
    sharded composition (the allreduces) is checked the same way under mpiexec (test_parallel_mpi.py)."""
    layer = cls(X.shape[1], d_out, LOCAL, bias=bias, dtype=F64, init="xavier_normal", rng=seed)
    gradcheck(layer, X, rng=np.random.default_rng(seed))


@given(X=batch(), d_out=dims(), seed=st.integers(0, 2**16))
def test_tensor_parallel_layers_equal_linear_on_one_rank(X, d_out, seed):
    lin = tn.Linear(X.shape[1], d_out, dtype=F64, rng=seed)
    for cls in (parallel.ColumnParallelLinear, parallel.RowParallelLinear):
        shard = cls.from_linear(lin, LOCAL)
        with tn.use("numpy"):
            np.testing.assert_allclose(shard.forward(X), lin.forward(X), rtol=1e-12, atol=1e-12)
        fresh = cls(X.shape[1], d_out, LOCAL, dtype=F64, rng=seed)       # drawn exactly as Linear draws
        np.testing.assert_array_equal(fresh.weight.data, lin.weight.data)


@given(X=batch(n_lo=2), seed=st.integers(0, 2**16))
def test_sync_batchnorm_gradients_on_one_rank(X, seed):
    assume(np.all(X.var(axis=0) > 1e-2))
    layer = parallel.SyncBatchNorm(X.shape[1], LOCAL, dtype=F64)
    rng = np.random.default_rng(seed)
    layer.weight.data[...] = rng.uniform(0.5, 2, X.shape[1])
    layer.bias.data[...] = rng.standard_normal(X.shape[1])
    gradcheck(layer, X, rng=rng)


@given(X=batch(n_lo=2), seed=st.integers(0, 2**16))
def test_sync_batchnorm_is_batchnorm_on_one_rank(X, seed):
    assume(np.all(X.var(axis=0) > 1e-2))
    bn = tn.BatchNorm1d(X.shape[1], dtype=F64)
    sbn = parallel.SyncBatchNorm.from_batchnorm(tn.BatchNorm1d(X.shape[1], dtype=F64), LOCAL)
    sbn.n_local = None
    R = np.random.default_rng(seed).standard_normal(X.shape)
    with tn.use("numpy"):
        np.testing.assert_allclose(sbn.forward(X), bn.forward(X), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(sbn.backward(R), bn.backward(R), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sbn.running_var, bn.running_var, rtol=1e-12)
    np.testing.assert_allclose(sbn.weight.grad, bn.weight.grad, rtol=1e-10, atol=1e-12)


def test_convert_sync_batchnorm_keeps_parameters_and_names():
    model = build_mlp([6, 5, 3], batch_norm=True, seed=0)
    before = model.state_dict()
    w = model.layers[1].weight
    parallel.convert_sync_batchnorm(model, LOCAL)
    assert type(model.layers[1]) is parallel.SyncBatchNorm
    assert model.layers[1].weight is w and w.data.base is not None        # still a view of the flat buffer
    assert any(node is model.layers[1] for _, node in model.plan)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_tensor_parallel_model_on_one_rank_is_the_model():
    model = build_mlp([8, 6, 5, 4, 3], seed=1)
    tp = parallel.tensor_parallel(model, LOCAL)
    kinds = [type(l).__name__ for l in tp.layers]
    assert kinds == ["ColumnParallelLinear", "ReLU", "RowParallelLinear", "ReLU", "ColumnParallelLinear", "ReLU",
                     "RowParallelLinear"]
    X = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    np.testing.assert_allclose(tp.forward(X), model.forward(X), rtol=1e-6, atol=1e-6)
    assert tp.state_dict().keys() == model.state_dict().keys()
    odd = parallel.tensor_parallel(build_mlp([8, 6, 5, 3], seed=1), LOCAL)
    assert [type(l).__name__ for l in odd.layers][-1] == "Linear"        # unpaired last layer: replicated


def test_tensor_parallel_refuses_more_ranks_than_units():
    class Two(LocalGroup):
        rank, size = 0, 5

    with pytest.raises(ValueError, match="cannot be split over 5 ranks"):
        parallel.ColumnParallelLinear(4, 3, Two())


# ---------------------------------------------------------------------- splits, partition, schedules
@given(n=st.integers(0, 100), parts=st.integers(1, 9))
def test_split_sizes(n, parts):
    sizes = split_sizes(n, parts)
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert [split_bounds(n, parts, r)[1] - split_bounds(n, parts, r)[0] for r in range(parts)] == sizes


@given(costs=st.lists(st.floats(0.1, 100), min_size=1, max_size=8), parts=st.integers(1, 4))
def test_partition_is_optimal(costs, parts):
    assume(parts <= len(costs))
    bounds = partition(costs, parts)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(costs)
    assert all(a < b for a, b in bounds) and all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))
    worst = max(sum(costs[a:b]) for a, b in bounds)
    best = min(max(sum(costs[a:b]) for a, b in zip((0,) + cuts, cuts + (len(costs),)))
               for cuts in itertools.combinations(range(1, len(costs)), parts - 1))
    assert worst == pytest.approx(best)


def test_partition_of_the_mnist_mlp():
    model = build_mlp([784, 256, 128, 10], seed=0)
    costs = [node_cost(node) for _, node in model.plan]
    assert partition(costs, 2) == [(0, 1), (1, 3)]                   # the 784x256 GEMM alone on stage 0
    with pytest.raises(ValueError, match="need at least 4 layers"):
        partition(costs, 4)


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
@pytest.mark.parametrize("P,M", [(1, 1), (2, 1), (2, 4), (3, 2), (3, 5), (4, 8)])
def test_schedule_orders(schedule, P, M):
    for s in range(P):
        order = schedule_order(schedule, P, s, M)
        assert sorted(order) == sorted([("F", m) for m in range(M)] + [("B", m) for m in range(M)])
        assert [m for k, m in order if k == "F"] == list(range(M))       # forwards in order (dropout streams)
        in_flight, peak = 0, 0
        for k, m in order:
            if k == "B":
                assert ("F", m) in order[:order.index(("B", m))]
            in_flight += 1 if k == "F" else -1
            peak = max(peak, in_flight)
        assert peak == (M if schedule == "gpipe" else min(M, P - s))   # 1F1B bounds stored activations


# ---------------------------------------------------------------------- data parallel on one rank
def test_data_parallel_buckets_cover_the_gradient_once():
    model = build_mlp([10, 8, 6, 4], batch_norm=True, seed=0)
    dp = parallel.DataParallel(model, LOCAL, batch_size=4)
    ranges = sorted(r for b in dp.buckets for r in b)
    covered = np.zeros(len(model.flat.grad), int)
    for o, s in ranges:
        covered[o:o + s] += 1
    assert np.all(covered == 1)
    assert len(dp.buckets) == 5                                   # 3 Linear + 2 batch norms, one bucket each
    big = parallel.DataParallel(build_mlp([10, 8, 6, 4], seed=0), LOCAL, bucket_bytes=10 ** 9)
    assert len(big.buckets) == 1 and len(big.buckets[0]) == 1     # everything in one merged range


def test_data_parallel_on_one_rank_is_plain_training():
    X = np.random.default_rng(0).standard_normal((40, 10)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 4, 40)

    def run(strategy):
        model = build_mlp([10, 8, 4], seed=2)
        dp = parallel.DataParallel(model, LOCAL) if strategy else None
        opt = tn.optim.Adam(model.parameters(), lr=1e-2)
        loss = tn.SoftmaxCrossEntropy()
        for s in range(0, 40, 16):
            idx = np.arange(s, min(s + 16, 40))
            local = dp.shard(idx) if dp else idx
            loss(model.forward(X[local]), y[local])
            model.backward(loss.backward(), hook=dp.grad_ready if dp else None)
            if dp:
                dp.reduce_gradients(model, len(local), len(idx))
            opt.step()
        return model.flat.data.copy()

    np.testing.assert_array_equal(run(True), run(False))


def test_data_parallel_refuses_models_without_a_flat_buffer():
    with pytest.raises(TypeError, match="flat buffer"):
        parallel.DataParallel(tn.Linear(3, 2), LOCAL)


def test_missing_mpi4py_is_a_clear_error(monkeypatch):
    from tinynn.parallel import comm

    monkeypatch.setattr(comm, "_MPI", None)
    monkeypatch.setattr(comm, "_WORLD", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[mpi\]'"):
        comm.world()


# ---------------------------------------------------------------------- asynchronous SGD bookkeeping
def test_staleness_log():
    log = parallel.StalenessLog(bound=1, workers=3)
    for t in [0, 1, 1, 2, 3, 1]:
        log.add(t)
    s = log.summary()
    assert s["count"] == 6 and s["max"] == 3 and s["histogram"] == {"0": 1, "1": 3, "2": 1, "3": 1}
    assert s["implied_max"] == 6 and s["mean"] == pytest.approx(8 / 6)
    assert "mean 1.33" in log.text()


# ---------------------------------------------------------------------- the cost model
def test_ring_allreduce_cost():
    net = cm.Network("x", 1e9, 1e-5)
    assert float(cm.allreduce_time(1e6, 1, net)) == 0.0
    assert float(cm.allreduce_time(1e6, 2, net)) == pytest.approx(2e-5 + 1e-3)       # 2α + S/β
    assert float(cm.allreduce_time(1e6, 64, net)) == pytest.approx(126e-5 + 2 * 63 / 64 * 1e-3)
    t = cm.allreduce_time(1e6, np.array([2, 4, 8, 16]), net)
    assert np.all(np.diff(t) > 0)


def test_pipeline_cost_is_the_bubble_formula_for_balanced_stages():
    spec = cm.ModelSpec("m", 1e6, cm.Compute(0.0, 1e-3), activation_bytes_per_row=0)
    net = cm.Network("free", 1e30, 0.0)
    for P, M in [(2, 4), (4, 4), (4, 16)]:
        t = float(cm.pipeline_step(spec, P, net, 64, M))
        assert t == pytest.approx((M + P - 1) / M * 64e-3 / P)
        assert float(cm.pipeline_step(spec, P, net, 64, M, stage_shares=[1 / P] * P)) == pytest.approx(t)


def test_compute_fit_and_scaling_limits():
    c = cm.Compute.fit([16, 32, 64, 128], [1e-3 + 2e-5 * b for b in (16, 32, 64, 128)])
    assert c.c0 == pytest.approx(1e-3) and c.c1 == pytest.approx(2e-5)
    spec = cm.mlp_spec("mlp", [784, 256, 128, 10], c)
    assert spec.grad_bytes == 4 * 235146
    slow, fast = cm.NETWORKS[0], cm.NETWORKS[2]
    e_slow = cm.data_parallel_speedup(spec, 64, slow, 128) / 64
    e_fast = cm.data_parallel_speedup(spec, 64, fast, 128) / 64
    assert 0 < e_slow < e_fast <= 1
    strong = cm.data_parallel_speedup(spec, np.array([2, 64]), fast, 128, weak=False)
    assert strong[1] < 64 * 0.5                                  # a batch of 2 rows per worker: far from linear
