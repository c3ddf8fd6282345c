"""The CUDA backend beyond the per-op parity (tests/test_kernels.py runs every op on every registered
backend, CUDA included): device-array detection, the tiled and naive matmuls on an odd shape, and whole
networks, estimators and the training loop against the CPU.

Runs on a real GPU, or on the simulator: ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m gpu`` (the variable
must be set before Numba is imported). Shapes stay tiny, and THREADS_PER_BLOCK is patched small so that
multi-block grid-stride paths and ragged edges run.
"""
import warnings

import numpy as np
import pytest

from tinynn import kernels
from tinynn.kernels import config, ops

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(config, "THREADS_PER_BLOCK", 8)


def dev(a):
    return kernels.to_device(a, "cuda")


def host(a):
    return kernels.to_host(a)


def test_device_arrays_detected_and_mixing_refused():
    x = dev(np.ones(3, np.float32))
    assert kernels.is_device_array(x) and kernels.backend_of(x) == "cuda"
    with pytest.raises(TypeError, match="host and device arrays mixed"):
        ops.mul(x, np.ones(3, np.float32), out=x)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
def test_matmul_odd_shape_equals_cpu(ta, tb):
    from tinynn.kernels.cuda.matmul import matmul_naive

    rng = np.random.default_rng(0)
    m, k, n = 45, 67, 35
    A = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    B = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    expected = ops.matmul(A, B, trans_a=ta, trans_b=tb)
    got = host(ops.matmul(dev(A), dev(B), trans_a=ta, trans_b=tb))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    if not ta and not tb:
        np.testing.assert_allclose(host(matmul_naive(dev(A), dev(B))), expected, rtol=1e-4, atol=1e-4)


def _net(seed=0):
    import tinynn as tn

    return tn.Sequential(tn.Linear(6, 8, rng=seed), tn.ReLU(), tn.LayerNorm(8), tn.Linear(8, 5, rng=seed + 1),
                         tn.Tanh(), tn.BatchNorm1d(5), tn.Linear(5, 3, rng=seed + 2))


def test_small_network_three_adam_steps_equal_cpu():
    import tinynn as tn

    rng = np.random.default_rng(1)
    X = rng.standard_normal((7, 6)).astype(np.float32)
    y = rng.integers(0, 3, 7)
    cpu, gpu = _net(), _net().to("cuda")
    opt_c, opt_g = tn.optim.Adam(cpu.parameters(), lr=0.01), tn.optim.Adam(gpu.parameters(), lr=0.01)
    loss_c, loss_g = tn.SoftmaxCrossEntropy(), tn.SoftmaxCrossEntropy()
    Xd, yd = dev(X), dev(y)
    for _ in range(3):
        values = []
        for model, opt, loss, xb, yb in ((cpu, opt_c, loss_c, X, y), (gpu, opt_g, loss_g, Xd, yd)):
            opt.zero_grad()
            values.append(loss(model.forward(xb), yb))
            model.backward(loss.backward())
            opt.step()
        assert values[1] == pytest.approx(values[0], rel=1e-4)
    np.testing.assert_allclose(host(gpu.forward(Xd)), cpu.forward(X), rtol=1e-4, atol=1e-4)
    for (name, pc), (_, pg) in zip(cpu.named_parameters(), gpu.named_parameters()):
        np.testing.assert_allclose(host(pg.data), pc.data, rtol=1e-4, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(host(pg.grad), pc.grad, rtol=1e-4, atol=1e-4, err_msg=name)


def test_device_labels_out_of_range_give_nan_not_a_crash():
    import tinynn as tn

    Z = dev(np.zeros((3, 4), np.float32))
    value = tn.SoftmaxCrossEntropy()(Z, dev(np.array([0, 9, 1])))
    assert np.isnan(value)


def test_device_indices_at_the_size_are_out_of_range():
    """The first index past the end is out of range on the device as -1 is: a label equal to the class count
    gives NaN, an embedding row equal to the row count gathers NaN and scatters nothing (no read or write past
    the end)."""
    import tinynn as tn

    assert np.isnan(tn.SoftmaxCrossEntropy()(dev(np.zeros((2, 4), np.float32)), dev(np.array([0, 4]))))
    W = dev(np.arange(6, dtype=np.float32).reshape(3, 2))
    out = host(ops.embedding_gather(W, dev(np.array([0, 3, 2], np.int64))))
    assert out[0].tolist() == [0, 1] and np.isnan(out[1]).all() and out[2].tolist() == [4, 5]
    dW = dev(np.full((3, 2), 7, np.float32))
    ops.embedding_scatter(dev(np.ones((2, 2), np.float32)), dev(np.array([3, 1], np.int64)), dW)
    assert host(dW).tolist() == [[0, 0], [1, 1], [0, 0]]


@pytest.mark.parametrize("name, args", [("act_forward", (1, 0.0)), ("bias_act", (np.zeros(3, np.float32), 1, 0.0))])
def test_device_relu_of_negative_zero_is_positive_zero(name, args):
    """max(-0.0, 0) is +0.0 in the reference (numpy.maximum); the CUDA kernel agrees to the sign bit."""
    X = np.array([[-0.0, 0.0, -1.0]], np.float32)
    dargs = [dev(a) if isinstance(a, np.ndarray) else a for a in args]
    got = host(ops[name](dev(X), *dargs, dev(np.empty_like(X))))
    assert got.tolist() == [[0.0, 0.0, 0.0]] and not np.signbit(got).any()


def test_dropout_on_device_draws_a_mask():
    import tinynn as tn

    d = tn.Dropout(0.5, rng=0)
    Y = host(d.forward(dev(np.ones((16, 8), np.float32))))
    assert set(np.unique(Y)) <= {0.0, 2.0} and 0.2 < (Y == 0).mean() < 0.8


def test_device_uniforms_are_the_documented_counter_hash():
    """kernels/cuda/random.py's formula, stated here in NumPy, bit for bit (float32 and float64)."""
    from tinynn.kernels.cuda import random as R

    for dt in (np.float32, np.float64):
        out = dev(np.empty(77, dt))
        R.uniform(np.random.default_rng(5), out)
        key = np.random.default_rng(5).integers(2**64, dtype=np.uint64)
        with np.errstate(over="ignore"):
            z = key + (np.arange(77, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        np.testing.assert_array_equal(host(out), ((z >> np.uint64(11)) * 2.0 ** -53).astype(dt))


def test_device_dropout_masks_follow_the_host_generator_alone():
    """What exact resume needs: a layer whose Generator is restored to a saved state draws the masks the
    uninterrupted layer draws (nothing of the stream lives on the device)."""
    import tinynn as tn
    from tinynn.io import rng_state, set_rng_state

    X = dev(np.ones((9, 8), np.float32))
    a = tn.Dropout(0.5, rng=3)
    a.forward(X)
    saved = rng_state(a.rng)
    first = host(a.forward(X))
    b = tn.Dropout(0.5, rng=99)
    b.forward(X)
    set_rng_state(b.rng, saved)
    np.testing.assert_array_equal(host(b.forward(X)), first)
    assert not np.array_equal(host(a.forward(X)), first)        # and the stream moves on


@pytest.mark.parametrize("early_stopping,solver", [(False, "adam"), (True, "adam"), (False, "lbfgs")])
def test_estimator_on_cuda_matches_cpu(early_stopping, solver):
    import tinynn as tn
    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    kw = dict(hidden_layer_sizes=(6,), max_iter=3, batch_size=12, random_state=0, learning_rate_init=0.01,
              early_stopping=early_stopping, validation_fraction=0.25, solver=solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cpu = tn.MLPClassifier(**kw).fit(X, y)
        gpu = tn.MLPClassifier(device="cuda", **kw).fit(X, y)
    np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), rtol=1e-4, atol=1e-4)


def test_trainer_on_cuda_matches_cpu():
    """The one training loop (estimators and train_mnist.py --device cuda): batch uploads, device loss,
    evaluation."""
    import tinynn as tn
    from tinynn.training import Trainer, build_mlp, evaluate, make_optimizer

    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 6)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    runs = {}
    for device in ("cpu", "cuda"):
        model = build_mlp([6, 5, 3], seed=1)
        if device == "cuda":
            model.to("cuda")
        trainer = Trainer(model, tn.SoftmaxCrossEntropy(), make_optimizer("adam", model.parameters(), 0.01),
                          batch_size=8, rng=2)
        losses = [trainer.train_epoch(X, y)["train_loss"] for _ in range(2)]
        runs[device] = (losses, evaluate(model, X, y, chunk=7))
    np.testing.assert_allclose(runs["cuda"][0], runs["cpu"][0], rtol=1e-4)
    np.testing.assert_allclose(runs["cuda"][1], runs["cpu"][1], rtol=1e-4)
