"""Optimizers: every default checked in behaviour (a first step or two with the defaults, computed here from the
update rules of tinynn.optim's docstring), every refusal with the message it promises (what was expected and
what came), and the base class's bookkeeping (flat buffer, L1 slices, frozen and lazy parameters, state)."""
import math
import pickle

import numpy as np
import pytest

import tinynn as tn
from tinynn import optim


def param(values):
    return tn.Parameter(np.array(values, dtype=np.float64))


def steps(opt, p, grads):
    """Apply each gradient in turn; the parameter after each step."""
    out = []
    for g in grads:
        p.grad[...] = g
        opt.step()
        out.append(p.data.copy())
    return out


# --------------------------------------------------------------------------- defaults, in behaviour
def test_sgd_defaults():
    # lr 1e-3, no momentum, no weight decay: θ -= 1e-3 g, each step on its own
    p = param([1.0, -2.0])
    got = steps(optim.SGD([p]), p, [[0.5, 0.25], [1.0, -3.0]])
    np.testing.assert_allclose(got[0], [1 - 5e-4, -2 - 2.5e-4], rtol=1e-15)
    np.testing.assert_allclose(got[1], [1 - 5e-4 - 1e-3, -2 - 2.5e-4 + 3e-3], rtol=1e-15)


def test_momentum_defaults():
    # lr 1e-2, β 0.9, no unbias: u₁ = 0.1 g₁;  u₂ = 0.9 u₁ + 0.1 g₂
    p = param([1.0])
    got = steps(optim.Momentum([p]), p, [[1.0], [2.0]])
    u1 = 0.1
    u2 = 0.9 * u1 + 0.1 * 2.0
    np.testing.assert_allclose([got[0][0], got[1][0]], [1 - 0.01 * u1, 1 - 0.01 * u1 - 0.01 * u2], rtol=1e-14)


def test_momentum_unbias_second_step():
    # c₂ = 1/(1 - 0.81) = 1/0.19: u₂ = 0.9·0.1·1 + 0.1·2 = 0.29
    p = param([0.0])
    got = steps(optim.Momentum([p], lr=1.0, unbias=True), p, [[1.0], [2.0]])
    np.testing.assert_allclose([got[0][0], got[1][0]], [-1.0, -1.0 - 0.29 / 0.19], rtol=1e-14)
    # β = 0: no correction to make (1/(1-0ᵗ) = 1), and u = g
    p = param([0.0])
    got = steps(optim.Momentum([p], lr=1.0, beta=0.0, unbias=True), p, [[1.0], [2.0]])
    assert [got[0][0], got[1][0]] == [-1.0, -3.0]


def test_adagrad_defaults():
    # lr 1e-2, eps 1e-10, no decay, s₀ = 0. A gradient of 1e-10 makes eps count: θ -= 0.01 g / (|g| + 1e-10)
    p = param([0.0])
    got = steps(optim.Adagrad([p]), p, [[1e-10], [1e-10]])
    s2 = math.sqrt(2e-20)
    np.testing.assert_allclose([got[0][0], got[1][0]], [-0.005, -0.005 - 0.01 * 1e-10 / (s2 + 1e-10)], rtol=1e-12)


def test_adagrad_initial_accumulator_and_decay():
    # s₀ = 3: s₁ = 3 + 1 = 4, θ -= 0.5 · 1/2;  step 2 with lr_decay 0.5: clr = 0.5/(1 + 0.5), s₂ = 5
    p = param([0.0])
    got = steps(optim.Adagrad([p], lr=0.5, lr_decay=0.5, initial_accumulator_value=3.0, eps=0.0), p, [[1.0], [1.0]])
    np.testing.assert_allclose([got[0][0], got[1][0]], [-0.25, -0.25 - 0.5 / 1.5 / math.sqrt(5)], rtol=1e-14)


def test_rmsprop_defaults():
    # lr 1e-2, α 0.99, eps 1e-8: v₁ = 0.01 g²; g = 1e-7 gives √v = 1e-8 = eps: θ -= 0.01 · 1e-7 / 2e-8 = 0.05
    p = param([0.0])
    got = steps(optim.RMSprop([p]), p, [[1e-7], [2e-7]])
    v2 = 0.99 * 1e-16 + 0.01 * 4e-14
    np.testing.assert_allclose([got[0][0], got[1][0]], [-0.05, -0.05 - 0.01 * 2e-7 / (math.sqrt(v2) + 1e-8)],
                               rtol=1e-12)


def test_rmsprop_centered_momentum():
    # α 0.5, lr 1, eps 0, momentum 0.5, centered: v = 0.5 g², ḡ = 0.5 g, v - ḡ² = 0.25 g²  ->  b = g / (0.5|g|) = 2
    p = param([0.0])
    opt = optim.RMSprop([p], lr=1.0, alpha=0.5, eps=0.0, momentum=0.5, centered=True)
    got = steps(opt, p, [[4.0], [4.0]])
    # step 2: v = 0.25·16 + 0.5·16 = 12, ḡ = 0.5·2 + 0.5·4 = 3, v - ḡ² = 3;  b = 0.5·2 + 4/√3
    np.testing.assert_allclose([got[0][0], got[1][0]], [-2.0, -2.0 - (1.0 + 4 / math.sqrt(3))], rtol=1e-14)


def adam_ref(grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False, theta=0.0):
    th, m, v, out = theta, 0.0, 0.0, []
    for t, g in enumerate(grads, 1):
        if decoupled:
            th *= 1 - lr * wd
        else:
            g = g + wd * th
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        th -= lr / (1 - b1 ** t) * m / (math.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)
        out.append(th)
    return out


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_adam_defaults(cls):
    # lr 1e-3, betas (0.9, 0.999), eps 1e-8 (tiny gradients make it count); AdamW's weight decay 1e-2, Adam's 0
    grads = [1e-8, -3e-8, 2e-8]
    p = param([2.0])
    got = [x[0] for x in steps(cls([p]), p, [[g] for g in grads])]
    want = adam_ref(grads, theta=2.0, wd=1e-2 if cls is optim.AdamW else 0.0, decoupled=cls is optim.AdamW)
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_adam_amsgrad_keeps_the_largest_v():
    # amsgrad: the denominator uses max over steps of v̂... torch keeps max(v) and divides by √(1-β₂ᵗ)
    p = param([0.0])
    opt = optim.Adam([p], lr=1.0, betas=(0.0, 0.5), eps=0.0, amsgrad=True)
    got = steps(opt, p, [[2.0], [0.5]])
    # step 1: m = 2, v = 0.5·4 = 2 = vmax;  θ -= 2 / (√2/√0.5) = 1
    # step 2: m = 0.5, v = 0.5·2 + 0.5·0.25 = 1.125, vmax = 2;  θ -= 0.5 / (√2/√0.75)
    np.testing.assert_allclose([got[0][0], got[1][0]], [-1.0, -1.0 - 0.5 / (math.sqrt(2) / math.sqrt(0.75))],
                               rtol=1e-14)
    assert set(opt.state) == {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert set(optim.Adam([param([0.0])]).state) == {"exp_avg", "exp_avg_sq"}


def test_adadelta_lr_is_a_multiplier():
    # lr 0.5 halves Zeiler's step; ρ = 0: s = g², a₀ = 0, δ = √eps/√(g² + eps) g
    p = param([0.0])
    got = steps(optim.Adadelta([p], lr=0.5, rho=0.0, eps=1e-2), p, [[1.0]])
    assert got[0][0] == pytest.approx(-0.5 * 0.1 / math.sqrt(1.01), rel=1e-14)


def test_sgd_nesterov_dampening():
    # μ 0.5, τ 0.5: b₁ = g₁ = 1; b₂ = 0.5·1 + 0.5·2 = 1.5
    p = param([0.0])
    got = steps(optim.SGD([p], lr=1.0, momentum=0.5, dampening=0.5), p, [[1.0], [2.0]])
    assert [got[0][0], got[1][0]] == [-1.0, -2.5]
    # nesterov (no dampening): d = g + μ b;  b₁ = 1: d = 1.5;  b₂ = 0.5 + 2 = 2.5: d = 2 + 1.25
    p = param([0.0])
    got = steps(optim.SGD([p], lr=1.0, momentum=0.5, nesterov=True), p, [[1.0], [2.0]])
    assert [got[0][0], got[1][0]] == [-1.5, -4.75]


# --------------------------------------------------------------------------- Newton
def test_newton_hessian_step_on_a_curved_loss():
    """One Newton step of a logistic regression: H = Xᵀ diag(σ(1-σ)) X / n exactly (the default h = 1e-4 makes
    the central differences agree to ~1e-8); δ = H⁻¹ g."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 2))
    t = (rng.random((20, 1)) < 0.5).astype(np.float64)
    lin = tn.Linear(2, 1, bias=False, dtype=np.float64, init="zeros")
    loss = tn.SigmoidCrossEntropy()

    def closure():
        lin.zero_grad()
        value = loss(lin.forward(X), t)
        lin.backward(loss.backward())
        return value

    w0 = np.array([0.7, -1.3])
    lin.weight.data[:, 0] = w0
    opt = optim.Newton(lin.parameters())
    opt.step(closure)
    s = 1 / (1 + np.exp(-(X @ w0)))
    g = X.T @ (s - t[:, 0]) / 20
    H = X.T @ (X * (s * (1 - s))[:, None]) / 20
    np.testing.assert_allclose(lin.weight.data[:, 0], w0 - np.linalg.solve(H, g), rtol=1e-6)
    assert opt.t == 1


def test_newton_lr_scales_the_step():
    X = np.array([[1.0], [2.0]])
    y = np.array([[2.0], [4.0]])
    lin = tn.Linear(1, 1, bias=False, dtype=np.float64, init="zeros")
    loss = tn.MSELoss()

    def closure():
        lin.zero_grad()
        value = loss(lin.forward(X), y)
        lin.backward(loss.backward())
        return value

    optim.Newton(lin.parameters(), lr=0.25).step(closure)
    assert lin.weight.data[0, 0] == pytest.approx(0.5, rel=1e-9)      # a quarter of the way to w = 2


def test_newton_max_params_boundary():
    optim.Newton(tn.Linear(1999, 1).parameters())                     # 2000 parameters: the limit, accepted
    msg = ("Newton: 2001 parameters would need a 2001x2001 Hessian; the limit is max_params=2000 "
           "(use a first-order optimizer, or raise max_params)")
    with pytest.raises(ValueError) as e:
        optim.Newton(tn.Linear(2000, 1).parameters())
    assert str(e.value) == msg
    with pytest.raises(ValueError, match=r"^Newton: 3 parameters would need a 3x3 Hessian; the limit is max_params=2 "):
        optim.Newton(tn.Linear(2, 1).parameters(), max_params=2)
    with pytest.raises(ValueError) as e:
        optim.Newton(tn.Linear(2, 1).parameters()).step()
    assert str(e.value) == ("Newton.step needs a closure that zeroes gradients, runs forward/backward and returns "
                            "the loss")


# --------------------------------------------------------------------------- clip_grad_norm_
def test_clip_grad_norm_below_and_at_the_limit():
    p1, p2 = param([3.0]), param([4.0])
    p1.grad[...], p2.grad[...] = 3.0, 4.0
    assert optim.clip_grad_norm_([p1, p2], 10.0) == 5.0               # under the limit: unchanged
    assert [p1.grad[0], p2.grad[0]] == [3.0, 4.0]
    # max_norm 1: coef = 1/(5 + 1e-6)
    optim.clip_grad_norm_([p1, p2], 1.0)
    np.testing.assert_allclose([p1.grad[0], p2.grad[0]], [3 / (5 + 1e-6), 4 / (5 + 1e-6)], rtol=1e-14)
    # frozen parameters neither count nor change
    p3 = param([0.0])
    p3.grad[...] = 100.0
    p3.requires_grad = False
    p4 = param([0.0])
    p4.grad[...] = 2.0
    assert optim.clip_grad_norm_([p3, p4], 1.0) == 2.0
    assert p3.grad[0] == 100.0 and p4.grad[0] == pytest.approx(2 / (2 + 1e-6), rel=1e-14)


# --------------------------------------------------------------------------- make
def test_make_picks_the_hyperparameters_of_its_optimizer():
    p = param([0.0])
    opt = optim.make("sgd", [p], lr=0.5, momentum=0.9, betas=(0.5, 0.5), rho=0.3)
    assert type(opt) is optim.SGD and opt.lr == 0.5 and opt.momentum == 0.9
    opt = optim.make("adadelta", [p], lr=0.5, momentum=0.9, rho=0.3)
    assert type(opt) is optim.Adadelta and opt.rho == 0.3
    with pytest.raises(ValueError) as e:
        optim.make("lbfgs", [p], lr=0.1)
    assert str(e.value) == ("unknown optimizer 'lbfgs'; expected one of ['adadelta', 'adagrad', 'adam', 'adamw', "
                            "'momentum', 'rmsprop', 'sgd']")


# --------------------------------------------------------------------------- refusals
ONE = [np.zeros(2)]


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: optim.SGD([], lr=0.1), ValueError, "SGD: got an empty parameter list"),
    (lambda: optim.Adam([tn.Parameter(np.zeros(2)), np.zeros(2)]), TypeError,
     "Adam: params[1] is a ndarray, expected tinynn.Parameter"),
    (lambda: optim.clip_grad_norm_([], 1.0), ValueError, "clip_grad_norm_: got an empty parameter list"),
    (lambda: optim.clip_grad_norm_([tn.Parameter(np.zeros(2))], -1.0), ValueError,
     "clip_grad_norm_: max_norm must be a non-negative finite number, got -1.0"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=-0.1), ValueError,
     "SGD: lr must be a non-negative finite number, got -0.1"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=float("inf")), ValueError,
     "SGD: lr must be a non-negative finite number, got inf"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=True), ValueError,
     "SGD: lr must be a non-negative finite number, got True"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr="0.1"), ValueError,
     "SGD: lr must be a non-negative finite number, got '0.1'"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=0.1, momentum=-1), ValueError,
     "SGD: momentum must be a non-negative finite number, got -1"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=0.1, dampening=-1), ValueError,
     "SGD: dampening must be a non-negative finite number, got -1"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=0.1, weight_decay=-1), ValueError,
     "SGD: weight_decay must be a non-negative finite number, got -1"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=0.1, nesterov=True), ValueError,
     "SGD: Nesterov momentum requires a momentum and zero dampening"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "SGD: Nesterov momentum requires a momentum and zero dampening"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=0.1, l1=-1), ValueError,
     "SGD: l1 must be a non-negative finite number, got -1"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=0.1, l1_scope="bias"), ValueError,
     "SGD: l1_scope must be 'all' or 'weights', got 'bias'"),
    (lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=0.1, l1_mode="prox"), ValueError,
     "SGD: l1_mode must be one of ('subgradient', 'proximal'), got 'prox'"),
    (lambda: optim.Optimizer([tn.Parameter(np.zeros(2))], 0.1, l1_mode="proximal"), ValueError,
     "Optimizer: l1_mode must be one of ('subgradient',), got 'proximal' (the proximal form is SGD's)"),
    (lambda: optim.Momentum([tn.Parameter(np.zeros(2))], beta=1.0), ValueError,
     "Momentum: beta must be in [0, 1), got 1.0"),
    (lambda: optim.Momentum([tn.Parameter(np.zeros(2))], beta=-0.5), ValueError,
     "Momentum: beta must be in [0, 1), got -0.5"),
    (lambda: optim.Momentum([tn.Parameter(np.zeros(2))], beta="0.9"), ValueError,
     "Momentum: beta must be in [0, 1), got '0.9'"),
    (lambda: optim.Adagrad([tn.Parameter(np.zeros(2))], lr_decay=-1), ValueError,
     "Adagrad: lr_decay must be a non-negative finite number, got -1"),
    (lambda: optim.Adagrad([tn.Parameter(np.zeros(2))], weight_decay=-1), ValueError,
     "Adagrad: weight_decay must be a non-negative finite number, got -1"),
    (lambda: optim.Adagrad([tn.Parameter(np.zeros(2))], initial_accumulator_value=-1), ValueError,
     "Adagrad: initial_accumulator_value must be a non-negative finite number, got -1"),
    (lambda: optim.Adagrad([tn.Parameter(np.zeros(2))], eps=-1), ValueError,
     "Adagrad: eps must be a non-negative finite number, got -1"),
    (lambda: optim.RMSprop([tn.Parameter(np.zeros(2))], alpha=-1), ValueError,
     "RMSprop: alpha must be a non-negative finite number, got -1"),
    (lambda: optim.RMSprop([tn.Parameter(np.zeros(2))], eps=-1), ValueError,
     "RMSprop: eps must be a non-negative finite number, got -1"),
    (lambda: optim.RMSprop([tn.Parameter(np.zeros(2))], weight_decay=-1), ValueError,
     "RMSprop: weight_decay must be a non-negative finite number, got -1"),
    (lambda: optim.RMSprop([tn.Parameter(np.zeros(2))], momentum=-1), ValueError,
     "RMSprop: momentum must be a non-negative finite number, got -1"),
    (lambda: optim.Adam([tn.Parameter(np.zeros(2))], betas=0.9), ValueError,
     "Adam: betas must be a pair (beta1, beta2), got 0.9"),
    (lambda: optim.AdamW([tn.Parameter(np.zeros(2))], betas=(0.9, 0.99, 0.999)), ValueError,
     "AdamW: betas must be a pair (beta1, beta2), got (0.9, 0.99, 0.999)"),
    (lambda: optim.Adam([tn.Parameter(np.zeros(2))], betas=(1.0, 0.9)), ValueError,
     "Adam: betas[0] must be in [0, 1), got 1.0"),
    (lambda: optim.Adam([tn.Parameter(np.zeros(2))], betas=(0.9, 1.0)), ValueError,
     "Adam: betas[1] must be in [0, 1), got 1.0"),
    (lambda: optim.Adam([tn.Parameter(np.zeros(2))], eps=-1), ValueError,
     "Adam: eps must be a non-negative finite number, got -1"),
    (lambda: optim.AdamW([tn.Parameter(np.zeros(2))], weight_decay=-1), ValueError,
     "AdamW: weight_decay must be a non-negative finite number, got -1"),
    (lambda: optim.Adadelta([tn.Parameter(np.zeros(2))], rho=1.5), ValueError,
     "Adadelta: rho must be in [0, 1], got 1.5"),
    (lambda: optim.Adadelta([tn.Parameter(np.zeros(2))], rho=True), ValueError,
     "Adadelta: rho must be in [0, 1], got True"),
    (lambda: optim.Adadelta([tn.Parameter(np.zeros(2))], rho="0.9"), ValueError,
     "Adadelta: rho must be in [0, 1], got '0.9'"),
    (lambda: optim.Adadelta([tn.Parameter(np.zeros(2))], eps=-1), ValueError,
     "Adadelta: eps must be a non-negative finite number, got -1"),
    (lambda: optim.Adadelta([tn.Parameter(np.zeros(2))], weight_decay=-1), ValueError,
     "Adadelta: weight_decay must be a non-negative finite number, got -1"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_refusals(make, exc, msg):
    with pytest.raises(exc) as e:
        make()
    assert str(e.value) == msg


@pytest.mark.parametrize("make", [
    lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=0.0, momentum=0.0, dampening=0.0, weight_decay=0.0, l1=0.0),
    lambda: optim.Momentum([tn.Parameter(np.zeros(2))], beta=0.0),
    lambda: optim.Adam([tn.Parameter(np.zeros(2))], betas=[0.0, 0.0], eps=0.0),
    lambda: optim.Adadelta([tn.Parameter(np.zeros(2))], rho=0.0),
    lambda: optim.Adadelta([tn.Parameter(np.zeros(2))], rho=1),
    lambda: optim.SGD([tn.Parameter(np.zeros(2))], lr=0.1, momentum=0.5, nesterov=True),
])
def test_boundaries_accepted(make):
    assert make().t == 0


# --------------------------------------------------------------------------- the base class
def test_flat_buffer_path_equals_per_tensor_path():
    """A Sequential's own parameter list takes the one-call path over the flat buffer, with state views into one
    flat state buffer; another list of the same parameters, one call each: the same numbers."""
    X = np.random.default_rng(0).standard_normal((6, 3))
    y = np.array([0, 1, 1, 0, 1, 0])
    out = []
    for flat in (True, False):
        m = tn.Sequential(tn.Linear(3, 4, dtype=np.float64, rng=0), tn.Tanh(), tn.Linear(4, 2, dtype=np.float64, rng=1))
        params = m.parameters() if flat else list(reversed(m.parameters()))
        opt = optim.Adam(params, lr=0.1, weight_decay=0.01, l1=0.01)
        assert (opt._group is not None) == flat
        assert (opt.state["exp_avg"].flat is not None) == flat
        if flat:
            assert opt.state["exp_avg"].flat.shape == m.flat.data.shape
            assert all(np.shares_memory(v, opt.state["exp_avg"].flat) for v in opt.state["exp_avg"])
        loss = tn.SoftmaxCrossEntropy()
        for _ in range(3):
            opt.zero_grad()
            assert not m.flat.grad.any()
            loss(m.forward(X), y)
            m.backward(loss.backward())
            opt.step()
        out.append(m.flat.data.copy())
    np.testing.assert_allclose(out[0], out[1], rtol=1e-13, atol=1e-15)


def test_zero_grad_per_tensor():
    p1, p2 = param([1.0, 2.0]), param([3.0])
    p1.grad[...], p2.grad[...] = 5.0, 6.0
    optim.SGD([p1, p2], lr=0.1).zero_grad()
    assert not p1.grad.any() and not p2.grad.any()


def test_step_refuses_after_reflattening():
    m = tn.Sequential(tn.Linear(2, 2, rng=0))
    opt = optim.SGD(m.parameters(), lr=0.1)
    tn.parameter.FlatParameters(m.parameters())                       # the parameters now live elsewhere
    with pytest.raises(RuntimeError) as e:
        opt.step()
    assert str(e.value) == ("SGD: the model's parameters were moved or re-flattened (model.to(device)) after this "
                            "optimizer was built, so it would update the old buffers; build the optimizer after "
                            "model.to(device)")


def test_step_returns_the_closure_value_called_first():
    p = param([1.0])
    calls = []

    def closure():
        calls.append(p.data[0])
        p.grad[...] = 1.0
        return 7.5

    assert optim.SGD([p], lr=0.5).step(closure) == 7.5
    assert calls == [1.0] and p.data[0] == 0.5
    assert optim.SGD([p], lr=0.5).step() is None


def l1_model():
    """Sequential keeps the Linear weights first in its flat buffer: [W1 (2x2), W2 (2x1), b1 (2), b2 (1)]."""
    m = tn.Sequential(tn.Linear(2, 2, dtype=np.float64, rng=0), tn.Linear(2, 1, dtype=np.float64, rng=1))
    m[0].bias.data[...] = [0.5, -0.5]
    m[1].bias.data[...] = [0.25]
    return m


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("scope", ["all", "weights"])
def test_l1_subgradient_scope(flat, scope):
    # zero loss gradient, SGD lr 1, l1 0.1: every penalised θ moves by -0.1 sign(θ), the others stay
    m = l1_model()
    params = m.parameters() if flat else list(reversed(m.parameters()))
    before = [p.data.copy() for p in params]
    opt = optim.SGD(params, lr=1.0, l1=0.1, l1_scope=scope)
    for _ in range(2):                                                # twice: the cached slices are reused
        opt.zero_grad()
        opt.step()
    for p, b in zip(params, before):
        penalised = scope == "all" or len(p.shape) == 2
        b1 = b - 0.1 * np.sign(b)
        np.testing.assert_allclose(p.data, b1 - 0.1 * np.sign(b1) if penalised else b, rtol=1e-14)


def test_l1_frozen_parameter_not_penalised():
    m = l1_model()
    m[0].weight.requires_grad = False
    before = [p.data.copy() for p in m.parameters()]
    opt = optim.SGD(m.parameters(), lr=1.0, l1=0.1)
    opt.zero_grad()
    opt.step()
    for p, b in zip(m.parameters(), before):
        np.testing.assert_allclose(p.data, b if p is m[0].weight else b - 0.1 * np.sign(b), rtol=1e-14)


@pytest.mark.parametrize("flat", [True, False])
def test_l1_proximal(flat):
    # plain step, then θ ← sign(θ) max(|θ| - η c, 0) with η c = 0.5 · 0.6 = 0.3
    p = param([1.0, -0.2, 0.3, -2.0])
    if flat:
        tn.parameter.FlatParameters([p])
    opt = optim.SGD([p], lr=0.5, l1=0.6, l1_mode="proximal")
    p.grad[...] = [0.0, 0.0, 0.0, 1.0]                               # step: θ = (1, -0.2, 0.3, -2.5)
    opt.step()
    np.testing.assert_allclose(p.data, [0.7, 0.0, 0.0, -2.2], rtol=1e-14)
    assert p.grad.tolist() == [0.0, 0.0, 0.0, 1.0]                    # the proximal form leaves the gradient alone


def test_l1_merged_slices():
    """Two penalised runs of the flat buffer apart from each other (a frozen-free model whose weights are split
    by scope 'weights' only at the end) are each penalised; sizes 0 are skipped."""
    m = l1_model()
    opt = optim.SGD(m.parameters(), lr=1.0, l1=0.1, l1_scope="weights")
    opt.zero_grad()
    opt.step()
    where = list(opt._l1_cache.values())[0]
    assert where == [(0, 6)]                                          # W1 and W2 merged into one slice
    opt = optim.SGD(m.parameters(), lr=1.0, l1=0.1)
    opt.step()
    assert list(opt._l1_cache.values())[0] == [(0, 9)]


def test_lazy_adagrad_updates_touched_rows_only():
    emb = tn.Embedding(4, 2, dtype=np.float64, rng=0)
    before = emb.weight.data.copy()
    opt = optim.Adagrad(emb.parameters(), lr=0.5, lazy=True)
    emb.forward(np.array([2, 2]))
    emb.backward(np.ones((2, 2)))
    opt.step()
    # row 2: g = 2, s = 4: θ -= 0.5 · 2/(2 + 1e-10); the other rows and their state untouched
    np.testing.assert_allclose(emb.weight.data[2], before[2] - 0.5 * 2 / (2 + 1e-10), rtol=1e-14)
    np.testing.assert_array_equal(np.delete(emb.weight.data, 2, 0), np.delete(before, 2, 0))
    assert opt.state["sum"][0].tolist() == [[0, 0], [0, 0], [4, 4], [0, 0]]
    # with weight decay (d = g + λθ) the untouched rows have d ≠ 0: lazy leaves them, the dense update moves them
    for lazy in (True, False):
        emb2 = tn.Embedding(4, 2, dtype=np.float64, rng=0)
        opt2 = optim.Adagrad(emb2.parameters(), lr=0.5, weight_decay=0.1, eps=0.0, lazy=lazy)
        emb2.forward(np.array([2, 2]))
        emb2.backward(np.ones((2, 2)))
        opt2.step()
        d = 0.1 * before
        d[2] += 2.0
        want = before - 0.5 * np.sign(d)                              # first Adagrad step: θ -= η d/|d|
        if lazy:
            want[[0, 1, 3]] = before[[0, 1, 3]]
        np.testing.assert_allclose(emb2.weight.data, want, rtol=1e-14)


def test_state_dict_refusals_and_round_trip():
    p = param([1.0, 2.0])
    opt = optim.RMSprop([p], lr=0.1, momentum=0.5, centered=True)
    steps(opt, p, [[1.0, 2.0]])
    sd = opt.state_dict()
    assert set(sd) == {"t", "lr", "square_avg.0", "grad_avg.0", "momentum_buffer.0"}
    assert sd["t"] == 1 and sd["lr"] == 0.1
    np.testing.assert_allclose(sd["square_avg.0"], [0.01, 0.04], rtol=1e-14)
    sd["square_avg.0"][...] = 99.0                                    # a copy: the optimizer's state is untouched
    assert opt.state["square_avg"][0].tolist() == pytest.approx([0.01, 0.04])
    q = param([0.0, 0.0, 0.0])
    with pytest.raises(ValueError) as e:
        optim.RMSprop([q]).load_state_dict(sd)
    assert str(e.value) == "RMSprop.load_state_dict: square_avg.0: expected shape (3,), got (2,)"
    with pytest.raises(ValueError) as e:
        optim.RMSprop([q]).load_state_dict({"t": 1, "lr": 0.1})
    assert str(e.value) == "RMSprop.load_state_dict: missing 'square_avg.0'"


def test_pickle_keeps_flat_state_views():
    m = tn.Sequential(tn.Linear(2, 3, dtype=np.float64, rng=0), tn.Linear(3, 1, dtype=np.float64, rng=1))
    opt = optim.Adam(m.parameters(), lr=0.1)
    m.flat.grad[...] = 1.0
    opt.step()
    opt2 = pickle.loads(pickle.dumps(opt))
    st = opt2.state["exp_avg"]
    assert st.flat is not None and [v.shape for v in st] == [v.shape for v in opt.state["exp_avg"]]
    assert all(np.shares_memory(v, st.flat) for v in st)
    np.testing.assert_array_equal(st.flat, opt.state["exp_avg"].flat)
    opt4 = pickle.loads(pickle.dumps(opt2))                           # pickled again from the rebuilt views
    assert all(np.shares_memory(v, opt4.state["exp_avg"].flat) for v in opt4.state["exp_avg"])
    np.testing.assert_array_equal(opt4.state["exp_avg"].flat, opt.state["exp_avg"].flat)
    opt3 = pickle.loads(pickle.dumps(optim.Adam([param([1.0])])))
    assert opt3.state["exp_avg"].flat is None and opt3.state["exp_avg"][0].tolist() == [0.0]


def test_repr():
    assert repr(optim.Adam([param([1.0])], lr=0.25)) == "Adam(lr=0.25)"


def test_lazy_refused_on_device_arrays(monkeypatch):
    """lazy=True updates rows of host arrays; a device parameter is refused with the optimizer's name."""
    emb = tn.Embedding(4, 2, dtype=np.float64, rng=0)
    opt = optim.Adam(emb.parameters(), lr=0.5, lazy=True)
    emb.forward(np.array([1]))
    emb.backward(np.ones((1, 2)))
    monkeypatch.setattr(tn.kernels, "is_device_array", lambda a: True)
    with pytest.raises(NotImplementedError) as e:
        opt.step()
    assert str(e.value) == "Adam(lazy=True) runs on host parameters only"


def test_optimizers_without_lazy_update_every_row():
    # SGD has no lazy mode: with weight decay the rows the Embedding did not touch move too (d = 0 + λθ)
    emb = tn.Embedding(3, 2, dtype=np.float64, rng=0)
    before = emb.weight.data.copy()
    opt = optim.SGD(emb.parameters(), lr=0.5, weight_decay=0.1)
    emb.forward(np.array([1]))
    emb.backward(np.ones((1, 2)))
    opt.step()
    d = 0.1 * before
    d[1] += 1.0
    np.testing.assert_allclose(emb.weight.data, before - 0.5 * d, rtol=1e-14)


@pytest.mark.parametrize("cls", [optim.SGD, optim.Momentum, optim.Adagrad, optim.RMSprop, optim.Adam, optim.AdamW,
                                 optim.Adadelta])
def test_l1_settings_reach_every_optimizer(cls):
    m = l1_model()
    kw = dict(lr=1.0) if cls is optim.SGD else dict(weight_decay=0.0) if cls is optim.AdamW else {}
    opt = cls(m.parameters(), l1=0.25, l1_scope="weights", **kw)
    assert (opt.l1, opt.l1_scope, opt.l1_mode) == (0.25, "weights", "subgradient")
    opt.zero_grad()
    b = [p.data.copy() for p in m.parameters()]
    opt.step()
    assert np.array_equal(m[0].bias.data, b[1]) and np.array_equal(m[1].bias.data, b[3])   # biases not penalised
    assert not np.array_equal(m[0].weight.data, b[0])


def test_adamw_passes_its_options_on():
    emb = tn.Embedding(3, 2, dtype=np.float64, rng=0)
    opt = optim.AdamW(emb.parameters(), lr=0.5, betas=(0.5, 0.75), eps=0.25, amsgrad=True, lazy=True)
    assert opt.betas == (0.5, 0.75) and opt.eps == 0.25 and opt.amsgrad and opt.lazy and opt.weight_decay == 1e-2
    assert set(opt.state) == {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    before = emb.weight.data.copy()
    emb.forward(np.array([1]))
    emb.backward(np.ones((1, 2)))
    opt.step()
    np.testing.assert_array_equal(np.delete(emb.weight.data, 1, 0), np.delete(before, 1, 0))   # lazy: row 1 only


def test_l1_cache_follows_freezing():
    """The penalised slices are recomputed when a parameter is frozen or unfrozen between steps."""
    m = l1_model()
    opt = optim.SGD(m.parameters(), lr=1.0, l1=0.1)
    opt.zero_grad()
    opt.step()
    m[1].weight.requires_grad = False
    w = m[1].weight.data.copy()
    opt.zero_grad()
    opt.step()
    np.testing.assert_array_equal(m[1].weight.data, w)                # frozen: neither stepped nor penalised
    m[1].weight.requires_grad = True
    opt.zero_grad()
    opt.step()
    np.testing.assert_allclose(m[1].weight.data, w - 0.1 * np.sign(w), rtol=1e-14)


def test_l1_weights_scope_on_a_flat_buffer_with_weights_apart():
    """A flat buffer laid out bias, weight, bias: scope 'weights' penalises the middle slice only."""
    b1, W, b2 = param([0.5, -0.5]), tn.Parameter(np.array([[1.0, -1.0], [2.0, 0.5]])), param([0.25])
    tn.parameter.FlatParameters([b1, W, b2])
    opt = optim.SGD([b1, W, b2], lr=1.0, l1=0.1, l1_scope="weights")
    assert opt._group is not None
    opt.zero_grad()
    opt.step()
    assert b1.data.tolist() == [0.5, -0.5] and b2.data.tolist() == [0.25]
    np.testing.assert_allclose(W.data, [[0.9, -0.9], [1.9, 0.4]], rtol=1e-14)


def test_newton_singular_hessian_takes_the_least_norm_step():
    # two identical features: H = 2/n XᵀX has identical columns (singular); the least-norm solution splits the
    # one-feature least-squares weight 2 equally: w = (1, 1)
    X = np.array([[1.0, 1.0], [2.0, 2.0]])
    y = np.array([[2.0], [4.0]])
    lin = tn.Linear(2, 1, bias=False, dtype=np.float64, init="zeros")
    loss = tn.MSELoss()

    def closure():
        lin.zero_grad()
        value = loss(lin.forward(X), y)
        lin.backward(loss.backward())
        return value

    assert optim.Newton(lin.parameters()).step(closure) == 10.0           # the loss at the starting point
    np.testing.assert_allclose(lin.weight.data[:, 0], [1.0, 1.0], rtol=1e-9)


@pytest.mark.parametrize("cls", [optim.Adagrad, optim.Adam, optim.AdamW])
def test_lazy_is_off_by_default(cls):
    """Without lazy=True every row of an Embedding is updated: with weight decay the untouched rows move."""
    emb = tn.Embedding(3, 2, dtype=np.float64, rng=0)
    before = emb.weight.data.copy()
    opt = cls(emb.parameters(), lr=0.5, weight_decay=0.1)
    assert opt.lazy is False
    emb.forward(np.array([1]))
    emb.backward(np.ones((1, 2)))
    opt.step()
    assert (emb.weight.data[[0, 2]] != before[[0, 2]]).all()


def test_load_state_dict_hands_the_buffers_their_own_dtype(monkeypatch):
    """Saved state (float64 here) is converted to each state buffer's dtype before the copy, as a device copy
    needs (kernels.assign on a CUDA buffer copies bytes of one dtype)."""
    p = tn.Parameter(np.zeros(2, np.float32))
    opt = optim.Adam([p])
    sd = {"t": 2, "lr": 0.5, "exp_avg.0": np.array([0.1, 0.2]), "exp_avg_sq.0": np.array([0.3, 0.4])}
    seen = []
    real = tn.kernels.assign
    monkeypatch.setattr(tn.kernels, "assign", lambda dst, src: seen.append((dst.dtype, src.dtype)) or real(dst, src))
    opt.load_state_dict(sd)
    assert seen == [(np.float32, np.float32)] * 2
    np.testing.assert_array_equal(opt.state["exp_avg"][0], np.array([0.1, 0.2], np.float32))
    assert opt.t == 2 and opt.lr == 0.5


def test_newton_three_parameters_two_steps(monkeypatch):
    """Three float32 parameters laid end to end in θ; on the separable quadratic Σ (θ - c)² one Newton step lands
    on c (each parameter on its own c: the offsets into θ), and each parameter gets back its own dtype."""
    ps = [tn.Parameter(np.array(v, np.float32)) for v in ([1.0, 2.0], [[3.0], [4.0]], [5.0])]
    cs = [np.array([0.5, 1.25]), np.array([[2.0], [4.75]]), np.array([4.0])]      # each within 1 of the start

    def closure():
        for p, c in zip(ps, cs):
            p.grad[...] = 2 * (p.data - c)
        return float(sum(((p.data - c) ** 2).sum() for p, c in zip(ps, cs)))

    seen = []
    real = tn.kernels.assign
    monkeypatch.setattr(tn.kernels, "assign", lambda dst, src: seen.append(src.dtype) or real(dst, src))
    opt = optim.Newton(ps)
    assert opt.step(closure) == 0.25 + 0.5625 + 1 + 0.5625 + 1               # the loss at the start
    for p, c in zip(ps, cs):     # float32 θ ± h rounds (h = 1e-4): the Hessian is good to ~2e-3 here
        np.testing.assert_allclose(p.data, c, rtol=0, atol=5e-3)
    assert seen and set(seen) == {np.dtype(np.float32)}
    opt.step(closure)
    assert opt.t == 2
