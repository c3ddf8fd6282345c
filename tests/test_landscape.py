"""tinynn.landscape against independent constructions on small float64 models.

The dense Hessian here is built column by column from central differences of the model's gradient,
written in this file (not through tinynn.landscape): the Hessian-vector products and the top eigenvalue
are checked against it and numpy.linalg.eigvalsh.
"""
import json
import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynn as tn
from tinynn import landscape
from tinynn.training import build_mlp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_problem(seed=0, d_in=3, hidden=4, classes=3, n=20):
    """A d_in-hidden-classes tanh net (smooth: finite differences are clean) with nonzero biases."""
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((n, d_in)), rng.integers(0, classes, n)
    m = tn.Sequential(tn.Linear(d_in, hidden, dtype=np.float64, rng=seed), tn.Tanh(),
                      tn.Linear(hidden, classes, dtype=np.float64, rng=seed + 1))
    m.flat.data[m.flat.n_first:] = rng.uniform(-0.5, 0.5, m.flat.data.size - m.flat.n_first)
    return m, tn.SoftmaxCrossEntropy(), X, y


def dense_hessian(model, loss, X, y, h=1e-5):
    """H[:, j] = (g(θ + h e_j) - g(θ - h e_j)) / 2h, symmetrised; θ restored."""
    theta = model.flat.data
    t0 = theta.copy()

    def g():
        loss(model.forward(X), y)
        model.backward(loss.backward())
        return model.flat.grad.copy()

    H = np.empty((t0.size, t0.size))
    for j in range(t0.size):
        theta[j] = t0[j] + h
        gp = g()
        theta[j] = t0[j] - h
        H[:, j] = (gp - g()) / (2 * h)
        theta[j] = t0[j]
    return (H + H.T) / 2


# --------------------------------------------------------------------------- Hessian
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hvp_equals_dense_hessian_times_v(seed):
    m, loss, X, y = small_problem(seed)
    H = dense_hessian(m, loss, X, y)
    v = np.random.default_rng(seed).standard_normal(H.shape[0]) * 3.0          # not a unit vector
    Hv = landscape.hessian_vector_product(m, loss, X, y, v)
    np.testing.assert_allclose(Hv, H @ v, rtol=1e-6, atol=1e-7 * np.abs(H @ v).max())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_top_eigenvalue_equals_dense(seed):
    m, loss, X, y = small_problem(seed)
    before = m.flat.data.copy()
    m.flat.grad[...] = 7.0
    m.train()
    lam, v, iters, converged = landscape.top_hessian_eigenvalue(m, loss, X, y, iters=2000, tol=1e-13, rng=seed,
                                                                full_output=True)
    np.testing.assert_array_equal(m.flat.data, before)                          # θ restored bit for bit
    assert np.all(m.flat.grad == 7.0) and m.training                            # gradients and mode too
    H = dense_hessian(m, loss, X, y)
    top = np.linalg.eigvalsh(H)[-1]
    assert converged and lam == pytest.approx(top, rel=1e-7)
    np.testing.assert_allclose(H @ v, lam * v, atol=1e-5 * abs(lam))           # and v is its eigenvector


def test_top_eigenvalue_at_a_saddle_is_the_largest_not_the_largest_magnitude():
    """tanh(w x + b) fitted to targets far outside (-1, 1): both Hessian eigenvalues are negative; power
    iteration alone would return the most negative one; the shifted run must give the larger."""
    X = np.array([[1.0], [2.0], [-0.5]])
    Y = np.array([[-5.0], [-4.0], [-6.0]])
    m = tn.Sequential(tn.Linear(1, 1, dtype=np.float64, rng=0), tn.Tanh())
    m.flat.data[:] = [0.4, 0.3]
    loss = tn.MSELoss()
    H = dense_hessian(m, loss, X, Y)
    ev = np.linalg.eigvalsh(H)
    assert ev[-1] < 0 and abs(ev[0]) > abs(ev[-1])                              # the case meant
    lam = landscape.top_hessian_eigenvalue(m, loss, X, Y, iters=2000, tol=1e-13, rng=0)
    assert lam == pytest.approx(ev[-1], rel=1e-6)


def test_hvp_of_a_quadratic_is_exact_in_float64():
    """Linear + MSE: L is quadratic, H = 2/n [X 1]ᵀ[X 1] exactly, whatever the step."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((15, 3)), rng.standard_normal((15, 1))
    m = tn.Sequential(tn.Linear(3, 1, dtype=np.float64, rng=0))
    Xa = np.hstack([X, np.ones((15, 1))])
    H = 2 / 15 * Xa.T @ Xa                                                     # layout: W (3×1) first, then b
    v = rng.standard_normal(4)
    for h in (1e-4, 1.0, 100.0):
        np.testing.assert_allclose(landscape.hessian_vector_product(m, tn.MSELoss(), X, Y, v, h=h), H @ v,
                                   rtol=1e-9, atol=1e-9)
    assert landscape.top_hessian_eigenvalue(m, tn.MSELoss(), X, Y, iters=500, tol=1e-14, rng=1) == \
        pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-10)


def test_chunked_equals_whole():
    m, loss, X, y = small_problem(0, n=23)
    v = np.random.default_rng(1).standard_normal(m.flat.data.size)
    whole = landscape.hessian_vector_product(m, loss, X, y, v)
    chunked = landscape.hessian_vector_product(m, loss, X, y, v, batch_size=5)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-9)
    assert landscape.flat_loss(m, loss, X, y, batch_size=4) == pytest.approx(landscape.flat_loss(m, loss, X, y),
                                                                             rel=1e-13)


def test_frozen_parameters_are_never_moved():
    m, loss, X, y = small_problem(0)
    m[0].weight.requires_grad = False
    o, size = m.flat.offsets[0]
    v = landscape.top_hessian_eigenvalue(m, loss, X, y, iters=50, rng=0, full_output=True)[1]
    assert np.all(v[o:o + size] == 0)
    r = landscape.epsilon_sharpness(m, loss, X, y, epsilon=1e-2, rng=0)
    assert np.all(r.delta[o:o + size] == 0) and np.all(r.bound[o:o + size] == 0)
    assert np.all(landscape.filter_normalized_direction(m, rng=0)[o:o + size] == 0)


# --------------------------------------------------------------------------- ε-sharpness
@settings(max_examples=10)
@given(seed=st.integers(0, 1000), eps=st.floats(1e-4, 0.1), start=st.sampled_from(["random", "zero"]))
def test_epsilon_sharpness_is_nonnegative_and_inside_the_box(seed, eps, start):
    m, loss, X, y = small_problem(seed % 7)
    before = m.flat.data.copy()
    r = landscape.epsilon_sharpness(m, loss, X, y, epsilon=eps, iters=5, start=start, rng=seed)
    np.testing.assert_array_equal(m.flat.data, before)
    np.testing.assert_array_equal(r.bound, eps * (np.abs(before) + 1))
    assert np.all(np.abs(r.delta) <= r.bound)
    assert r.sharpness >= 0 and r.max_loss >= r.loss
    assert r.loss == pytest.approx(landscape.flat_loss(m, loss, X, y), rel=1e-13)
    m.flat.data[:] = before + r.delta                                           # the reported point is real
    assert landscape.flat_loss(m, loss, X, y) == pytest.approx(r.max_loss, rel=1e-12)
    assert r.sharpness == pytest.approx(100 * (r.max_loss - r.loss) / (1 + r.loss))


def test_epsilon_sharpness_finds_the_corner_of_a_convex_problem():
    """Linear + MSE is convex, so the maximum over the box is at a corner: enumerate all 2⁴ corners."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 3)), rng.standard_normal((30, 1))
    m = tn.Sequential(tn.Linear(3, 1, dtype=np.float64, rng=0))
    loss = tn.MSELoss()
    theta = m.flat.data.copy()
    r = landscape.epsilon_sharpness(m, loss, X, Y, epsilon=0.2, iters=20, rng=0)
    best = -np.inf
    for corner in np.array(np.meshgrid(*[[-1, 1]] * 4)).reshape(4, -1).T:
        m.flat.data[:] = theta + corner * r.bound
        best = max(best, landscape.flat_loss(m, loss, X, Y))
    m.flat.data[:] = theta
    assert r.max_loss == pytest.approx(best, rel=1e-12)


def test_sharper_minimum_has_larger_sharpness_and_eigenvalue():
    """Scaling the curvature of a quadratic by 10 scales λ_max by 10 and raises the ε-sharpness."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 2)), rng.standard_normal((30, 1))
    out = []
    for scale in (1.0, np.sqrt(10.0)):
        Xs = X * scale
        m = tn.Sequential(tn.Linear(2, 1, dtype=np.float64, rng=0))
        Xa = np.hstack([Xs, np.ones((30, 1))])
        m.flat.data[:] = np.linalg.lstsq(Xa, Y, rcond=None)[0].ravel()             # at the minimum
        out.append((landscape.top_hessian_eigenvalue(m, tn.MSELoss(), Xs, Y, iters=500, tol=1e-12, rng=0),
                    landscape.epsilon_sharpness(m, tn.MSELoss(), Xs, Y, epsilon=1e-2, rng=0).sharpness))
    assert out[1][0] > 5 * out[0][0] and out[1][1] > out[0][1] > 0


# --------------------------------------------------------------------------- filter-normalised direction
@settings(max_examples=15)
@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4), seed=st.integers(0, 2**16))
def test_filter_normalized_direction_has_the_weights_norms(sizes, seed):
    m = build_mlp(sizes, dtype=np.float64, seed=seed)
    m.flat.data[m.flat.n_first:] = 1.0                                          # biases: must not matter
    d = landscape.filter_normalized_direction(m, rng=seed)
    assert d.shape == m.flat.data.shape and d.dtype == np.float64
    for p, (o, size) in zip(m.flat.params, m.flat.offsets):
        D = d[o:o + size].reshape(p.shape)
        if p.data.ndim == 2:                                                    # W (in, out): one unit per column
            np.testing.assert_allclose(np.linalg.norm(D, axis=0), np.linalg.norm(p.data, axis=0), rtol=1e-12)
        else:
            assert np.all(D == 0)                                               # biases: zero (Li et al.)
    d2 = landscape.filter_normalized_direction(m, rng=seed)
    np.testing.assert_array_equal(d, d2)                                        # seeded


def test_loss_curve_matches_the_curvature_along_the_direction():
    """(L(α) + L(-α) - 2 L(0)) / α² → dᵀ H d: the curve and the Hessian-vector product agree."""
    m, loss, X, y = small_problem(1)
    d = landscape.filter_normalized_direction(m, rng=0)
    before = m.flat.data.copy()
    a = 1e-3
    c = landscape.loss_curve(m, loss, X, y, direction=d, alphas=[-a, 0.0, a])
    np.testing.assert_array_equal(m.flat.data, before)
    assert c["loss"][1] == pytest.approx(landscape.flat_loss(m, loss, X, y), rel=1e-14)
    curvature = (c["loss"][0] + c["loss"][2] - 2 * c["loss"][1]) / a ** 2
    assert curvature == pytest.approx(d @ landscape.hessian_vector_product(m, loss, X, y, d), rel=1e-4)
    full = landscape.loss_curve(m, loss, X, y, rng=0)
    assert full["alpha"].shape == full["loss"].shape == (41,) and np.all(np.isfinite(full["loss"]))


# --------------------------------------------------------------------------- arguments
def test_clear_errors():
    m, loss, X, y = small_problem(0)
    n = m.flat.data.size
    with pytest.raises(ValueError, match=rf"v must be a vector of the flat parameter length \({n},\), got shape \(3,"):
        landscape.hessian_vector_product(m, loss, X, y, np.ones(3))
    with pytest.raises(ValueError, match="iters must be a positive integer, got 0"):
        landscape.top_hessian_eigenvalue(m, loss, X, y, iters=0)
    with pytest.raises(ValueError, match="epsilon must be a positive finite number, got -1"):
        landscape.epsilon_sharpness(m, loss, X, y, epsilon=-1)
    with pytest.raises(ValueError, match="start must be 'random' or 'zero'"):
        landscape.epsilon_sharpness(m, loss, X, y, start="middle")
    with pytest.raises(ValueError, match="same positive number of rows, got 20 and 19"):
        landscape.flat_loss(m, loss, X, y[:-1])
    with pytest.raises(TypeError, match="expected a tinynn Sequential"):
        landscape.top_hessian_eigenvalue(tn.Linear(3, 2), loss, X, y)
    with pytest.raises(TypeError, match="expected a tinynn loss"):
        landscape.flat_loss(m, np.mean, X, y)


# --------------------------------------------------------------------------- the script
def test_sharpness_script_quick_mode_writes_valid_files(mnist_path, tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import sharpness

    assert sharpness.main(["--quick", "--data-dir", mnist_path, "--out", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "sharpness.json").read_text())
    assert [run["batch_size"] for run in r["runs"]] == sorted(run["batch_size"] for run in r["runs"])
    assert len(r["runs"]) == 2
    for run in r["runs"]:
        for key in ("top_eigenvalue", "epsilon_sharpness", "train_accuracy", "test_accuracy", "train_loss",
                    "test_loss", "curve"):
            assert key in run, key
        assert np.isfinite(run["top_eigenvalue"]) and run["epsilon_sharpness"] >= 0
        assert 0 <= run["train_accuracy"] <= 1 and 0 <= run["test_accuracy"] <= 1
        assert len(run["curve"]["alpha"]) == len(run["curve"]["loss"]) > 2
    assert (tmp_path / "sharpness.png").stat().st_size > 10_000
