"""L1 regularisation in the optimizers, and the kernel parity of the ops added with it and with Adadelta.

* ``add_l1`` (g += c sign θ) is the gradient of c Σ|θ|: checked against central differences, alone and
  through a model's loss with ``l1_scope`` "all" and "weights".
* The proximal SGD step against a NumPy recurrence written here, and full-batch proximal gradient against
  scikit-learn's Lasso (coordinate descent, a different algorithm): same solution, same exact zeros.
* ``adadelta_update``, ``add_l1``, ``l1_prox``: cpu (and cuda) == the NumPy reference, on the inputs of
  tests/optim_cases.py (drawn shapes too).
"""
import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynn as tn
from tinynn import kernels, optim
from tinynn.kernels import ops
from tests.optim_cases import OPTIM_CASES

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}


# --------------------------------------------------------------------------- kernel parity
def _run(name, backend, args, kwargs, to=lambda a: a, back=lambda a: a):
    args = [to(copy.deepcopy(a)) if isinstance(a, np.ndarray) else a for a in args]
    kwargs = {k: to(copy.deepcopy(v)) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with kernels.use(backend if backend in ("numpy", "cpu") else "cpu"):
        ops[name](*args, **kwargs)
    return [back(a) for a in args if hasattr(a, "shape")] + [back(v) for v in kwargs.values() if hasattr(v, "shape")]


def assert_parity(name, backend, dtype, n, d, seed, **conv):
    for args, kwargs in OPTIM_CASES[name](np.random.default_rng(seed), dtype, n, d):
        ref = _run(name, "numpy", args, kwargs)
        got = _run(name, backend, args, kwargs, **conv)
        for i, (r, g) in enumerate(zip(ref, got)):
            np.testing.assert_allclose(g, r, **TOL[dtype], err_msg=f"{name} on {backend}: array argument {i}")
            np.testing.assert_array_equal(g == 0, r == 0, err_msg=f"{name} on {backend}: exact zeros differ")


@pytest.mark.parametrize("name", sorted(OPTIM_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,d", [(1, 1), (7, 3), (33, 10)])
def test_cpu_matches_reference(name, dtype, n, d):
    assert_parity(name, "cpu", dtype, n, d, seed=n * 100 + d)


@pytest.mark.parametrize("name", sorted(OPTIM_CASES))
@given(n=st.integers(1, 40), d=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_cpu_matches_reference_drawn(name, n, d, seed):
    assert_parity(name, "cpu", np.float32, n, d, seed)


def test_new_ops_registered_on_host_backends():
    for name in OPTIM_CASES:
        assert {"numpy", "cpu"} <= set(ops[name].impls), name


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(OPTIM_CASES))
@pytest.mark.parametrize("n,d", [(1, 1), (5, 3), (9, 13)])
def test_cuda_matches_reference(name, n, d, monkeypatch):
    from tinynn.kernels import config

    monkeypatch.setattr(config, "THREADS_PER_BLOCK", 8)          # several blocks, ragged edges
    assert "cuda" in ops[name].impls
    assert_parity(name, "cuda", np.float32, n, d, seed=7 * n + d,
                  to=lambda a: kernels.to_device(a, "cuda"), back=kernels.to_host)


# --------------------------------------------------------------------------- the subgradient
def penalty(theta, c):
    return c * np.sum(np.abs(theta))


@given(n=st.integers(1, 30), c=st.floats(0.01, 10), seed=st.integers(0, 2**16))
def test_add_l1_is_the_gradient_of_the_penalty(n, c, seed):
    """Away from the kink (|θ_i| > h), c sign(θ) equals the central difference of c Σ|θ| coordinatewise."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.1, 2, n) * rng.choice([-1, 1], n)
    G0 = rng.standard_normal(n)
    for backend in ("numpy", "cpu"):
        G = G0.copy()
        with kernels.use(backend):
            ops.add_l1(theta, G, c)
        h = 1e-6
        fd = np.array([(penalty(theta + h * e, c) - penalty(theta - h * e, c)) / (2 * h) for e in np.eye(n)])
        np.testing.assert_allclose(G - G0, fd, rtol=1e-8, atol=1e-8)


def test_add_l1_sign_of_zero_is_zero():
    G = np.ones(3)
    ops.add_l1(np.array([0.0, -0.0, 2.0]), G, 0.5)
    np.testing.assert_array_equal(G, [1.0, 1.0, 1.5])


def _model(seed=0):
    """4-5-3 tanh net in float64 with nonzero biases (sign(0) = 0 would hide an L1 term on a zero bias)."""
    m = tn.Sequential(tn.Linear(4, 5, dtype=np.float64, rng=seed), tn.Tanh(), tn.Linear(5, 3, dtype=np.float64,
                                                                                       rng=seed + 1))
    m.flat.data[m.flat.n_first:] = np.random.default_rng(seed).uniform(-0.5, 0.5, m.flat.data.size - m.flat.n_first)
    return m


def _objective(model, X, y, c, scope):
    """L(θ) + c Σ|θ| over the penalised parameters (a fresh loss object: no shared buffers)."""
    value = tn.SoftmaxCrossEntropy()(model.forward(X), y)
    return value + sum(penalty(p.data, c) for p in model.parameters() if scope == "all" or p.data.ndim >= 2)


@pytest.mark.parametrize("scope", ["all", "weights"])
@pytest.mark.parametrize("flat", [True, False], ids=["flat", "per-tensor"])
@pytest.mark.parametrize("make", [
    lambda p, **k: optim.SGD(p, lr=0.0, momentum=0.9, **k), lambda p, **k: optim.Adam(p, lr=0.0, **k),
    lambda p, **k: optim.AdamW(p, lr=0.0, **k), lambda p, **k: optim.RMSprop(p, lr=0.0, **k),
    lambda p, **k: optim.Adagrad(p, lr=0.0, **k), lambda p, **k: optim.Adadelta(p, lr=0.0, **k),
    lambda p, **k: optim.Momentum(p, lr=0.0, **k)], ids=["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta",
                                                         "momentum"])
def test_optimizer_gradient_is_that_of_loss_plus_penalty(make, flat, scope):
    """After step() (lr = 0: nothing moves) p.grad holds ∇(L + c Σ|θ|), checked by central differences of
    the regularised objective, in the model's flat buffer and per tensor; biases are free with "weights"."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((12, 4)), rng.integers(0, 3, 12)
    model, c = _model(), 0.05
    params = model.parameters() if flat else model.parameters()[::-1]
    opt = make(params, l1=c, l1_scope=scope)
    assert (opt._group is not None) == flat
    loss = tn.SoftmaxCrossEntropy()
    loss(model.forward(X), y)
    model.backward(loss.backward())
    opt.step()
    theta = model.flat.data
    h = 1e-6
    for i in range(theta.size):
        t0 = theta[i]
        theta[i] = t0 + h
        up = _objective(model, X, y, c, scope)
        theta[i] = t0 - h
        down = _objective(model, X, y, c, scope)
        theta[i] = t0
        assert model.flat.grad[i] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-8), i


def test_weights_scope_is_one_slice_of_the_flat_buffer():
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1, l1=0.1, l1_scope="weights")
    (data, grad), = opt._l1_targets()
    assert data.shape == (model.flat.n_first,) == (4 * 5 + 5 * 3,)
    assert np.shares_memory(data, model.flat.data) and np.shares_memory(grad, model.flat.grad)


def test_frozen_parameters_get_no_l1():
    model = _model()
    model[0].weight.requires_grad = False
    before = model[0].weight.data.copy()
    opt = optim.SGD(model.parameters(), lr=0.1, l1=100.0, l1_mode="proximal")   # threshold 10 > every |w|
    opt.step()
    np.testing.assert_array_equal(model[0].weight.data, before)
    assert np.all(model[2].weight.data == 0)


def test_no_l1_is_the_plain_step_bitwise():
    runs = []
    for kw in (dict(), dict(l1=0.0), dict(l1=0.0, l1_mode="proximal", l1_scope="weights")):
        model = _model()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, **kw)
        model.flat.grad[...] = np.linspace(-1, 1, model.flat.grad.size)
        opt.step()
        opt.step()
        runs.append(model.flat.data.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


# --------------------------------------------------------------------------- the proximal step
A = np.array([[3.0, 0.5, 0.0, 0.1], [0.5, 1.0, 0.2, 0.0], [0.0, 0.2, 0.5, 0.0], [0.1, 0.0, 0.0, 0.8]])
B = np.array([1.0, -2.0, 0.05, -0.02])
THETA0 = np.array([1.0, -2.0, 0.3, 0.4])


def grad(theta):
    """∇ of ½ θᵀAθ - bᵀθ."""
    return A @ theta - B


def rec_prox_sgd(lr, c, momentum=0.0, wd=0.0, steps=150):
    """θ ← θ - η (μ b + g + λθ) (torch's momentum buffer), then θ ← sign(θ) max(|θ| - ηc, 0)."""
    th, b, out = THETA0.copy(), None, []
    for _ in range(steps):
        d = grad(th) + wd * th
        if momentum:
            b = d.copy() if b is None else momentum * b + d
            d = b
        th = th - lr * d
        th = np.sign(th) * np.maximum(np.abs(th) - lr * c, 0.0)
        out.append(th)
    return np.array(out)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.9, 0.0), (0.5, 0.1)])
def test_proximal_sgd_matches_recurrence(backend, flat, momentum, wd):
    p = tn.Parameter(THETA0.copy())
    if flat:
        tn.parameter.FlatParameters([p])
    opt = optim.SGD([p], lr=0.1, momentum=momentum, weight_decay=wd, l1=0.3, l1_mode="proximal")
    got = []
    with kernels.use(backend):
        for _ in range(150):
            p.grad[...] = grad(p.data)
            opt.step()
            got.append(p.data.copy())
    expected = rec_prox_sgd(0.1, 0.3, momentum, wd)
    np.testing.assert_allclose(np.array(got), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(np.array(got) == 0, expected == 0)        # the same exact zeros, step by step
    if momentum == 0:
        assert np.sum(expected[-1] == 0) == 1                                # θ₄ (b₄ = -0.02 < c) ends at 0


def test_subgradient_sgd_matches_recurrence():
    p = tn.Parameter(THETA0.copy())
    opt = optim.SGD([p], lr=0.1, l1=0.3)
    th = THETA0.copy()
    for _ in range(20):
        p.grad[...] = grad(p.data)
        opt.step()
        th = th - 0.1 * (grad(th) + 0.3 * np.sign(th))
        np.testing.assert_allclose(p.data, th, rtol=1e-12, atol=1e-14)
    # the subgradient oscillates around 0 instead of reaching it: the small coordinates are not exactly 0
    assert np.all(p.data != 0)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_proximal_gradient_reaches_the_lasso_solution_with_exact_zeros(momentum):
    """Full-batch proximal gradient (ISTA) on ½n⁻¹‖Xw - y‖² + c‖w‖₁ == scikit-learn's Lasso(alpha=c).
    With momentum μ the threshold stays ηc while the steady step is η/(1-μ) times the gradient, so the
    fixed point is the Lasso of strength c(1-μ) (as the SGD docstring says)."""
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    n, d = 200, 12
    X = rng.standard_normal((n, d))
    w_true = np.zeros(d)
    w_true[:4] = [2.0, -1.5, 1.0, 0.5]
    y = X @ w_true + 0.1 * rng.standard_normal(n)
    c = 0.1
    lin = tn.Linear(d, 1, bias=False, dtype=np.float64, rng=1)
    loss = tn.MSELoss()                                       # mean over n of (p - t)²: the gradient is 2x ours
    opt = optim.SGD(lin.parameters(), lr=0.25 * (1 - momentum), momentum=momentum, l1=2 * c / (1 - momentum),
                    l1_mode="proximal")                     # so both terms doubled
    for _ in range(3000):
        loss(lin.forward(X), y[:, None])
        lin.backward(loss.backward())
        opt.step()
    w = lin.weight.data[:, 0]
    ref = linear_model.Lasso(alpha=c, fit_intercept=False, tol=1e-14, max_iter=100000).fit(X, y).coef_
    np.testing.assert_allclose(w, ref, atol=1e-8)
    np.testing.assert_array_equal(w == 0, ref == 0)
    assert (w == 0).sum() >= 4


@given(n=st.integers(1, 50), t=st.floats(0, 5), seed=st.integers(0, 2**16))
def test_prox_is_soft_thresholding(n, t, seed):
    """Properties: |θ'| = max(|θ| - t, 0), signs kept, exactly zero where |θ| <= t."""
    W0 = np.random.default_rng(seed).uniform(-3, 3, n).astype(np.float32)
    W = W0.copy()
    ops.l1_prox(W, t)
    assert np.all((W == 0) == (np.abs(W0) <= np.float32(t)))
    assert np.all(np.sign(W) * np.sign(W0) >= 0)
    np.testing.assert_allclose(np.abs(W), np.maximum(np.abs(W0) - np.float32(t), 0), rtol=1e-6, atol=1e-6)


def test_model_proximal_sgd_makes_exact_zeros():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)), rng.integers(0, 3, 64)
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, l1=0.1, l1_mode="proximal", l1_scope="weights")
    loss = tn.SoftmaxCrossEntropy()
    for _ in range(100):
        opt.zero_grad()
        loss(model.forward(X), y)
        model.backward(loss.backward())
        opt.step()
    W = model.flat.data[:model.flat.n_first]
    assert 0.2 < np.mean(W == 0) < 1.0
    assert np.all(model[0].bias.data != 0)                                  # biases not penalised


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("cls,kw,match", [
    (optim.SGD, dict(l1=-1.0), "SGD: l1 must be a non-negative finite number, got -1.0"),
    (optim.Adam, dict(l1=float("nan")), "Adam: l1 must be"),
    (optim.SGD, dict(l1=0.1, l1_scope="biases"), "SGD: l1_scope must be 'all' or 'weights', got 'biases'"),
    (optim.SGD, dict(l1=0.1, l1_mode="prox"), r"SGD: l1_mode must be one of \('subgradient', 'proximal'\)"),
])
def test_invalid_l1_arguments(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls([tn.Parameter(np.zeros(2))], **kw)


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad, optim.Adadelta, optim.Momentum])
def test_proximal_is_sgd_only(cls):
    with pytest.raises((ValueError, TypeError), match="l1_mode"):
        cls([tn.Parameter(np.zeros(2))], l1=0.1, l1_mode="proximal")


@pytest.mark.gpu
@pytest.mark.parametrize("make", [
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9, l1=0.05, l1_mode="proximal", l1_scope="weights"),
    lambda p: optim.Adadelta(p, l1=0.01), lambda p: optim.Adam(p, lr=0.01, l1=0.01)], ids=["sgd-prox", "adadelta",
                                                                                          "adam"])
def test_three_steps_on_cuda_equal_cpu(make):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((7, 4)).astype(np.float32), rng.integers(0, 3, 7)
    nets = []
    for device in ("cpu", "cuda"):
        m = tn.Sequential(tn.Linear(4, 5, rng=0), tn.ReLU(), tn.Linear(5, 3, rng=1))
        if device == "cuda":
            m.to("cuda")
        opt, loss = make(m.parameters()), tn.SoftmaxCrossEntropy()
        xb, yb = (X, y) if device == "cpu" else (kernels.to_device(X), kernels.to_device(y))
        for _ in range(3):
            opt.zero_grad()
            loss(m.forward(xb), yb)
            m.backward(loss.backward())
            opt.step()
        nets.append(np.array(kernels.to_host(m.flat.data)))
    np.testing.assert_allclose(nets[1], nets[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(nets[1] == 0, nets[0] == 0)


def test_l1_sparsity_script_quick_mode(mnist_path, tmp_path):
    import json
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
    import l1_sparsity

    assert l1_sparsity.main(["--quick", "--quiet", "--data-dir", mnist_path, "--out", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "l1_sparsity.json").read_text())
    off, on = r["runs"]
    assert off["l1"] == 0 and off["zero_share"] == 0 and on["zero_share"] > 0
    for run in r["runs"]:
        assert 0 <= run["test_accuracy"] <= 1 and run["weights"] == 784 * 256 + 256 * 10
