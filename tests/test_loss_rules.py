"""Losses: values and gradients on hand-worked examples from the formulas of tinynn.losses' docstring (plain,
with sample weights, 1-D and 2-D), the weighted L2 penalty, and every refusal with the message it promises
(who refuses, what was expected, what came)."""
import math

import numpy as np
import pytest

import tinynn as tn
from tinynn.losses import L2Penalty, PoissonLoss, SquaredError

F64 = np.float64
LN2 = math.log(2.0)


def value_and_grad(loss, P, T, w=None):
    v = loss(np.asarray(P, F64), T, w)
    return v, np.array(loss.backward())


# --------------------------------------------------------------------------- worked values and gradients
def test_softmax_cross_entropy():
    # z = (0, 0): lse = ln 2, L = ln 2, softmax = (½, ½);  z = (0, ln 3): P = (¼, ¾), row loss (label 1) = ln(4/3)
    Z = [[0.0, 0.0], [0.0, math.log(3.0)]]
    v, g = value_and_grad(tn.SoftmaxCrossEntropy(), Z, np.array([0, 1]))
    assert v == pytest.approx((LN2 + math.log(4 / 3)) / 2, rel=1e-14)
    np.testing.assert_allclose(g, [[-0.25, 0.25], [0.125, -0.125]], rtol=1e-14)
    # weights (1, 3): L = (ln 2 + 3 ln(4/3)) / 4, rows of the gradient scaled by w_i/Σw
    v, g = value_and_grad(tn.SoftmaxCrossEntropy(), Z, np.array([0, 1]), np.array([1.0, 3.0]))
    assert v == pytest.approx((LN2 + 3 * math.log(4 / 3)) / 4, rel=1e-14)
    np.testing.assert_allclose(g, [[-0.125, 0.125], [0.1875, -0.1875]], rtol=1e-14)


def test_sigmoid_cross_entropy():
    # softplus(0) - 1·0 = ln 2;  softplus(ln 3) - 0 = ln 4;  σ(0) - 1 = -½, σ(ln 3) - 0 = ¾
    Z = [[0.0, math.log(3.0)]]
    v, g = value_and_grad(tn.SigmoidCrossEntropy(), Z, np.array([[1.0, 0.0]]))
    assert v == pytest.approx(LN2 + math.log(4.0), rel=1e-14)         # a sum over the outputs, a mean over rows
    np.testing.assert_allclose(g, [[-0.5, 0.75]], rtol=1e-14)
    Z = [[0.0], [0.0]]
    v, g = value_and_grad(tn.SigmoidCrossEntropy(), Z, np.array([[1.0], [0.0]]), np.array([3.0, 1.0]))
    assert v == pytest.approx(LN2, rel=1e-14)
    np.testing.assert_allclose(g, [[-0.375], [0.125]], rtol=1e-14)


P2 = [[1.0, 2.0], [3.0, -4.0]]
T2 = np.zeros((2, 2))


def test_mse():
    # N = 4: L = (1 + 4 + 9 + 16)/4 = 7.5;  ∂L/∂p = 2 p / 4
    v, g = value_and_grad(tn.MSELoss(), P2, T2)
    assert v == 7.5
    np.testing.assert_array_equal(g, np.array(P2) / 2)
    # weights (1, 3): L = ¼ (1 + 4)/2 + ¾ (9 + 16)/2 = 10;  ∂L/∂p = w_i/Σw · 2 (p - t)/2
    v, g = value_and_grad(tn.MSELoss(), P2, T2, np.array([1.0, 3.0]))
    assert v == 10.0
    np.testing.assert_array_equal(g, [[0.25, 0.5], [2.25, -3.0]])
    # 1-D prediction: the gradient comes back (n,); N = 2:  L = (1 + 9)/2, ∂ = 2 (p - t)/2
    v, g = value_and_grad(tn.MSELoss(), [1.0, -3.0], np.array([0.0, 0.0]))
    assert v == 5.0 and g.shape == (2,)
    np.testing.assert_array_equal(g, [1.0, -3.0])


def test_mse_unweighted_cache_per_shape():
    """The cached unweighted row weights depend on n and on the scale (value 1/d, gradient 2/d)."""
    loss = tn.MSELoss()
    for n in (2, 4, 2):
        P = np.arange(1.0, 2 * n + 1).reshape(n, 2)
        v = loss(P, np.zeros((n, 2)))
        assert v == pytest.approx(np.mean(P ** 2), rel=1e-14)
        np.testing.assert_allclose(loss.backward(), 2 * P / P.size, rtol=1e-14)


def test_l1_loss():
    # ρ = |r|, mean over N = 4: L = (1 + 2 + 3 + 4)/4;  ∂ = sign(r)/4, 0 where p = t
    v, g = value_and_grad(tn.L1Loss(), P2, T2)
    assert v == 2.5
    np.testing.assert_array_equal(g, [[0.25, 0.25], [0.25, -0.25]])
    v, g = value_and_grad(tn.L1Loss(), [[0.0, 2.0]], np.array([[0.0, 0.0]]))
    assert v == 1.0
    np.testing.assert_array_equal(g, [[0.0, 0.5]])


def test_huber_default_delta_is_one():
    # δ = 1: r = 0.5 -> ½ r² = 0.125;  r = 2 -> δ(|r| - ½δ) = 1.5;  r = -3 -> 2.5;  r = 1 -> 0.5
    P = [[0.5, 2.0], [-3.0, 1.0]]
    v, g = value_and_grad(tn.HuberLoss(), P, T2)
    assert v == pytest.approx((0.125 + 1.5 + 2.5 + 0.5) / 4, rel=1e-14)
    np.testing.assert_array_equal(g, [[0.125, 0.25], [-0.25, 0.25]])   # clip(r, -1, 1)/4
    v, g = value_and_grad(tn.HuberLoss(delta=2.0), P, T2)
    # δ = 2: 0.125, ½·4 = 2, 2(3 - 1) = 4, 0.5
    assert v == pytest.approx((0.125 + 2.0 + 4.0 + 0.5) / 4, rel=1e-14)
    np.testing.assert_array_equal(g, [[0.125, 0.5], [-0.5, 0.25]])
    assert repr(tn.HuberLoss()) == "HuberLoss(delta=1.0)" and tn.HuberLoss(0.5).delta == 0.5


def test_squared_error_is_sklearns():
    # value ½ · mean over rows of mean over outputs: ½ · 7.5;  gradient (p - t) w_i/Σw, not divided by d
    v, g = value_and_grad(SquaredError(), P2, T2)
    assert v == 3.75
    np.testing.assert_array_equal(g, np.array(P2) / 2)
    v, g = value_and_grad(SquaredError(), P2, T2, np.array([1.0, 3.0]))
    assert v == 5.0
    np.testing.assert_array_equal(g, [[0.25, 0.5], [2.25, -3.0]])


def test_poisson_half_deviance():
    # z = 0, t = 1: 0 - 0 - 1 + 1 = 0;  z = ln 2, t = 1: -ln 2 - 1 + 2;  z = 0, t = 0: e⁰ = 1 (t log t = 0)
    Z = [math.log(2.0), 0.0, 0.0]
    v, g = value_and_grad(PoissonLoss(), Z, np.array([1.0, 1.0, 0.0]))
    assert v == pytest.approx((1 - LN2 + 0 + 1) / 3, rel=1e-14)
    assert g.shape == (3,)
    np.testing.assert_allclose(g, [1 / 3, 0.0, 1 / 3], rtol=1e-14, atol=1e-17)   # w (e^z - t)
    # 2-D: a sum over the outputs; weights (0, 1) keep the second row only
    v, g = value_and_grad(PoissonLoss(), [[0.0, 0.0], [math.log(2.0), 0.0]], np.array([[5.0, 5.0], [1.0, 0.0]]),
                          np.array([0.0, 1.0]))
    assert v == pytest.approx(1 - LN2 + 1, rel=1e-14)
    np.testing.assert_allclose(g, [[0.0, 0.0], [1.0, 1.0]], rtol=1e-14)


def test_loss_call_is_forward():
    loss = tn.MSELoss()
    assert loss.forward(np.array([[2.0]]), np.array([[0.0]])) == loss(np.array([[2.0]]), np.array([[0.0]])) == 4.0


# --------------------------------------------------------------------------- the estimators' L2 penalty
def penalty_model():
    m = tn.Sequential(tn.Linear(2, 1, dtype=F64, rng=0))
    m[0].weight.data[...] = [[1.0], [-2.0]]
    m[0].bias.data[...] = [10.0]                                      # not penalised
    return m


def test_l2_penalty():
    m = penalty_model()
    m.flat.grad[...] = 1.0
    # (α/2) ‖W‖² / n = 0.5 · 0.5 · 5 / 4;  ∂/∂W += α W / n
    assert L2Penalty(0.5)(m, 4) == pytest.approx(0.3125, rel=1e-14)
    np.testing.assert_allclose(m[0].weight.grad[:, 0], [1 + 0.125, 1 - 0.25], rtol=1e-14)
    assert m[0].bias.grad[0] == 1.0
    assert L2Penalty(0.5)(m, 4, grad=False) == pytest.approx(0.3125, rel=1e-14)
    np.testing.assert_allclose(m[0].weight.grad[:, 0], [1.125, 0.75], rtol=1e-14)   # unchanged
    assert L2Penalty(0)(m, 4) == 0.0 and L2Penalty(0.0)(m, 4, grad=False) == 0.0


class FakeLog:
    def __init__(self):
        self.calls = []

    def add_l2(self, W, G, scale, value):
        self.calls.append((W, G, scale, value))


def test_l2_penalty_defer_hands_the_log_its_terms():
    m = penalty_model()
    log = FakeLog()
    L2Penalty(0.5).defer(m, 4, log)
    (W, G, scale, value), = log.calls
    assert np.shares_memory(W, m[0].weight.data) and W.tolist() == [1.0, -2.0]
    assert np.shares_memory(G, m[0].weight.grad) and G.shape == (2,)
    assert scale == 0.125 and value(5.0) == 0.3125                   # α/n;  ‖W‖² -> (α/2) ‖W‖²/n
    log = FakeLog()
    L2Penalty(0.0).defer(m, 4, log)
    assert log.calls == []


# --------------------------------------------------------------------------- refusals
LOSSES = [tn.SoftmaxCrossEntropy, tn.SigmoidCrossEntropy, tn.MSELoss, tn.L1Loss, tn.HuberLoss, SquaredError,
          PoissonLoss]


def good_args(cls):
    Z = np.zeros((2, 2))
    if cls is tn.SoftmaxCrossEntropy:
        return Z, np.array([0, 1])
    return Z, np.zeros((2, 2))


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_backward_before_forward(cls):
    with pytest.raises(RuntimeError) as e:
        cls().backward()
    name = cls.__name__
    assert str(e.value) == (f"{name}.backward: called before forward: there is no saved forward pass to differentiate; "
                            f"call {name}.forward(X) first")


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("w,msg", [
    (np.ones(3), "sample_weight: expected shape (2,), got (3,)"),
    (np.array([1.0, -1.0]), "sample_weight must be finite, >= 0, with a positive sum"),
    (np.array([2.0, -1.0]), "sample_weight must be finite, >= 0, with a positive sum"),      # a positive sum
    (np.array([1.0, np.nan]), "sample_weight must be finite, >= 0, with a positive sum"),
    (np.array([0.0, 0.0]), "sample_weight must be finite, >= 0, with a positive sum"),
])
def test_sample_weight_refusals(cls, w, msg):
    with pytest.raises(ValueError) as e:
        cls()(*good_args(cls), w)
    assert str(e.value) == f"{cls.__name__}: {msg}"


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_zero_weight_rows_accepted(cls):
    v = cls()(*good_args(cls), np.array([0.0, 1.0]))
    assert np.isfinite(v)


@pytest.mark.parametrize("cls", [tn.MSELoss, tn.L1Loss, tn.HuberLoss, SquaredError], ids=lambda c: c.__name__)
def test_mean_loss_refusals(cls):
    name = cls.__name__
    with pytest.raises(ValueError) as e:
        cls()(np.zeros((3, 2)), np.zeros((3, 1)))
    assert str(e.value) == f"{name}: prediction shape (3, 2) and target shape (3, 1) differ"
    with pytest.raises(TypeError) as e:
        cls()(np.zeros((3, 2)), np.zeros((3, 2), np.float32))
    assert str(e.value) == f"{name}: prediction dtype float64 and target dtype float32 differ"
    with pytest.raises(TypeError, match=f"^{name}: target: expected a floating-point array"):
        cls()(np.zeros((3, 2)), np.zeros((3, 2), np.int64))
    with pytest.raises(TypeError, match=f"^{name}: expected a floating-point array"):
        cls()(np.zeros((3, 2), np.int64), np.zeros((3, 2)))


def csr_target():
    import scipy.sparse as sp
    return sp.csr_matrix(np.zeros((2, 3)))


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: tn.SoftmaxCrossEntropy()(np.zeros(3), np.array([0])), ValueError,
     "SoftmaxCrossEntropy: expected a 2-D array, got shape (3,)"),
    (lambda: tn.SoftmaxCrossEntropy()(np.zeros((2, 3)), np.array([0, 3])), IndexError,
     "SoftmaxCrossEntropy: target: label 3 out of range; expected labels in [0, 3)"),
    (lambda: tn.SigmoidCrossEntropy()(np.zeros(3), np.zeros((3, 1))), ValueError,
     "SigmoidCrossEntropy: expected a 2-D array, got shape (3,)"),
    (lambda: tn.SigmoidCrossEntropy()(np.zeros((2, 3)), np.zeros(2)), ValueError,
     "SigmoidCrossEntropy: target: expected a 2-D array, got shape (2,)"),
    (lambda: tn.SigmoidCrossEntropy()(np.zeros((2, 3)), np.zeros((2, 2))), ValueError,
     "SigmoidCrossEntropy: target: expected 3 features (last axis), got shape (2, 2)"),
    (lambda: tn.SigmoidCrossEntropy()(np.zeros((2, 3)), np.zeros((3, 3))), ValueError,
     "SigmoidCrossEntropy: target: batch-size mismatch: expected 2 rows, got 3"),
    (lambda: tn.SigmoidCrossEntropy()(np.zeros((1, 1), np.float32), np.array([[1.0]])), TypeError,
     "SigmoidCrossEntropy: target: expected dtype float32, got float64; convert with X.astype(np.float32)"),
    (lambda: PoissonLoss()(np.zeros((1, 1), np.float32), np.array([[1.0]])), TypeError,
     "PoissonLoss: target: expected dtype float32, got float64; convert with X.astype(np.float32)"),
    (lambda: PoissonLoss()(np.zeros((2, 3)), csr_target()), TypeError,
     "PoissonLoss: target: sparse matrices are not supported; got csr_matrix, expected a dense array (call .toarray())"),
    (lambda: tn.SigmoidCrossEntropy()(np.zeros((2, 3)), csr_target()), TypeError,
     "SigmoidCrossEntropy: target: sparse matrices are not supported; got csr_matrix, expected a dense array "
     "(call .toarray())"),
    (lambda: PoissonLoss()(np.zeros((2, 3)), np.zeros((3, 3))), ValueError,
     "PoissonLoss: target: batch-size mismatch: expected 2 rows, got 3"),
    (lambda: PoissonLoss()(np.zeros((2, 3), np.int64), np.zeros((2, 3))), TypeError,
     "PoissonLoss: expected a floating-point array, got dtype int64"),
])
def test_target_refusals(make, exc, msg):
    with pytest.raises(exc) as e:
        make()
    assert str(e.value) == msg


@pytest.mark.parametrize("delta", [0, -1.0, float("inf"), float("nan"), True, "1"])
def test_huber_delta_refused(delta):
    with pytest.raises(ValueError) as e:
        tn.HuberLoss(delta)
    assert str(e.value) == f"HuberLoss: delta must be a finite number > 0, got {delta!r}"


class FakeLossLog:
    """Stands in for the Trainer's loss log (tinynn._feed.LossLog): records what the loss hands it."""

    def __init__(self):
        self.rows, self.staged = [], []

    def add_rows(self, rows, w_host):
        self.rows.append((np.array(rows), np.array(w_host)))

    def stage(self, w_host):
        self.staged.append(w_host)
        return w_host


def test_deferred_loss_hands_rows_and_weights_to_the_log():
    loss = tn.MSELoss()
    log = loss._deferred = FakeLossLog()
    assert loss(np.array(P2), T2, np.array([1.0, 3.0])) is None
    (rows, w), = log.rows
    np.testing.assert_array_equal(rows, [5.0, 25.0])                  # Σ_j (p - t)² per row
    np.testing.assert_array_equal(w, [0.125, 0.375])                  # w_i/Σw / d
    assert log.staged == []                                           # host arrays are not staged
    np.testing.assert_array_equal(loss.backward(), [[0.25, 0.5], [2.25, -3.0]])
    loss._deferred = None
    assert loss(np.array(P2), T2, np.array([1.0, 3.0])) == 10.0


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_keeps_the_dtype(cls, dtype):
    Z = np.array([[0.5, -1.0], [2.0, 0.0], [0.0, 1.0]], dtype)
    T = np.array([0, 1, 1]) if cls is tn.SoftmaxCrossEntropy else np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype)
    for w in (None, np.array([1.0, 2.0, 3.0])):
        loss = cls()
        assert np.isfinite(loss(Z, T, w))
        g = loss.backward()
        assert g.dtype == dtype and g.shape == (3, 2)


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_work_buffers_are_made_like_an_input_array(cls, monkeypatch):
    """Every work buffer and device copy of the row weights is made like an array of the call (so on its
    device), never like nothing (the host whatever the input)."""
    likes = []
    real_empty, real_on = tn.kernels.empty, tn.kernels.on_device_of

    def empty(shape, dtype, like=None):
        likes.append(like)
        return real_empty(shape, dtype, like=like)

    def on_device_of(x, like):
        likes.append(like)
        return real_on(x, like)

    monkeypatch.setattr(tn.kernels, "empty", empty)
    monkeypatch.setattr(tn.kernels, "on_device_of", on_device_of)
    for w in (None, np.array([1.0, 2.0])):
        loss = cls()
        loss(*good_args(cls), w)
        loss.backward()
    assert likes and all(isinstance(a, np.ndarray) for a in likes)


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("w", [None, np.array([1.0, 3.0])], ids=["unweighted", "weighted"])
def test_deferred_rows_and_weights_in_the_models_dtype(cls, w):
    """The log receives the per-row losses and row weights in the model's dtype (float32 here)."""
    Z, T = good_args(cls)
    Z = Z.astype(np.float32) + np.float32(0.5)
    if T.dtype.kind == "f":
        T = T.astype(np.float32)
    loss = cls()
    log = loss._deferred = FakeLossLog()
    assert loss(Z, T, w) is None
    (rows, wh), = log.rows
    assert rows.dtype == np.float32 and rows.shape == (2,) and wh.dtype == np.float32 and wh.shape == (2,)
    assert loss.backward().dtype == np.float32


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_backward_reuses_its_buffer(cls):
    """Losses keep their gradient in a work buffer reused from step to step (no allocation once warm)."""
    loss = cls()
    Z, T = good_args(cls)
    loss(Z, T)
    g1 = loss.backward()
    loss(Z + 1.0, T)
    g2 = loss.backward()
    assert g2 is g1 or np.shares_memory(g2, g1)
