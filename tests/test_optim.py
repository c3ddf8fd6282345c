"""Optimizers: worked one-step examples (arithmetic in comments), multi-step trajectories against plain
recurrences written here independently of the kernels, torch.optim parity when torch is installed."""
import math

import numpy as np
import pytest

from tinynn import kernels
import tinynn as tn
from tinynn import optim, schedules

A = np.array([[3.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]])
B = np.array([1.0, -2.0, 0.5])
THETA0 = np.array([1.0, -2.0, 0.3])


def grad(theta):
    """∇ of f(θ) = ½ θᵀAθ - bᵀθ."""
    return A @ theta - B


def run(make, steps=12, backend="cpu", flat=False):
    p = tn.Parameter(THETA0.copy())
    if flat:  # as inside a Sequential: one flat buffer
        tn.parameter.FlatParameters([p])
    opt = make([p])
    out = []
    with kernels.use(backend):
        for _ in range(steps):
            p.grad[...] = grad(p.data)
            opt.step()
            out.append(p.data.copy())
    return np.array(out)


# --------------------------------------------------------------------------- worked examples
def one_step(make, g=(0.5, 0.25), theta=(1.0, -2.0), steps=1):
    p = tn.Parameter(np.array(theta))
    opt = make([p])
    for _ in range(steps):
        p.grad[...] = g
        opt.step()
    return p.data


def test_sgd_worked():
    # momentum 0.9, lr 0.1, constant g = (0.5, 0.25)
    # step 1: b = g = (0.5, 0.25);              θ = (1 - 0.05, -2 - 0.025)    = (0.95, -2.025)
    # step 2: b = 0.9 b + g = (0.95, 0.475);    θ = (0.95 - 0.095, -2.025 - 0.0475) = (0.855, -2.0725)
    np.testing.assert_allclose(one_step(lambda p: optim.SGD(p, lr=0.1, momentum=0.9), steps=2), [0.855, -2.0725])
    # weight decay 0.1 adds λθ: d = (0.5 + 0.1, 0.25 - 0.2) = (0.6, 0.05);  θ = (1 - 0.06, -2 - 0.005)
    np.testing.assert_allclose(one_step(lambda p: optim.SGD(p, lr=0.1, weight_decay=0.1)), [0.94, -2.005])


def test_momentum_worked():
    # u = 0.9·0 + 0.1 g = (0.05, 0.025);  θ = θ - 0.1 u = (0.995, -2.0025)
    np.testing.assert_allclose(one_step(lambda p: optim.Momentum(p, lr=0.1, beta=0.9)), [0.995, -2.0025])
    # unbias: u / (1 - 0.9¹) = g  ->  θ = θ - 0.1 g = (0.95, -2.025)
    np.testing.assert_allclose(one_step(lambda p: optim.Momentum(p, lr=0.1, unbias=True)), [0.95, -2.025])
    # nesterov: θ -= 0.1 (0.9 u + 0.1 g) = 0.1 · 0.19 g = (0.0095, 0.00475)
    np.testing.assert_allclose(one_step(lambda p: optim.Momentum(p, lr=0.1, nesterov=True)), [0.9905, -2.00475])


def test_adagrad_worked():
    # s = g² ;  θ -= 0.1 g / (|g| + 1e-10) = 0.1 sign(g) (to 1e-10)
    np.testing.assert_allclose(one_step(lambda p: optim.Adagrad(p, lr=0.1)), [0.9, -2.1], rtol=1e-9)
    # step 2 with lr_decay 1: clr = 0.1 / (1 + 1) = 0.05;  s = 2g²;  θ -= 0.05 / √2 · sign(g)
    t2 = one_step(lambda p: optim.Adagrad(p, lr=0.1, lr_decay=1.0), steps=2)
    np.testing.assert_allclose(t2, [0.9 - 0.05 / math.sqrt(2), -2.1 - 0.05 / math.sqrt(2)], rtol=1e-9)


def test_rmsprop_worked():
    # v = 0.01 g²;  √v = 0.1 |g|;  θ -= 0.01 g / (0.1|g| + 1e-8) ≈ 0.1 sign(g)
    got = one_step(lambda p: optim.RMSprop(p, lr=0.01))
    np.testing.assert_allclose(got, [1 - 0.005 / (0.05 + 1e-8), -2 - 0.0025 / (0.025 + 1e-8)], rtol=1e-12)


def test_adadelta_worked():
    # ρ = 0.9, ε = 1e-6, g = (0.5, 0.25):  s = 0.1 g² = (0.025, 0.00625);  Δ = √(0 + ε)/√(s + ε) g
    #   Δ₁ = 1e-3 · 0.5 / √0.025001 = 3.16221...e-3,  Δ₂ = 1e-3 · 0.25 / √0.006251 = 3.16202...e-3
    # (Zeiler's first step is ≈ √ε/√(1-ρ) = 3.16e-3 whatever |g|: the units come from the RMS ratio)
    got = one_step(lambda p: optim.Adadelta(p))
    np.testing.assert_allclose(got, [1 - 1e-3 * 0.5 / math.sqrt(0.025001), -2 - 1e-3 * 0.25 / math.sqrt(0.006251)],
                               rtol=1e-13)
    assert 1 - got[0] == pytest.approx(math.sqrt(1e-6 / 0.1), rel=1e-4)
    # step 2, same g: a = 0.1 Δ₁²;  s = 0.19 g²;  Δ = √(a + ε)/√(s + ε) g
    d1 = 1e-3 * 0.5 / math.sqrt(0.025001)
    d2 = math.sqrt(0.1 * d1 ** 2 + 1e-6) / math.sqrt(0.19 * 0.25 + 1e-6) * 0.5
    assert one_step(lambda p: optim.Adadelta(p), steps=2)[0] == pytest.approx(1 - d1 - d2, rel=1e-13)


def test_adam_worked():
    # m = 0.1 g, v = 0.001 g², bc1 = 0.1, bc2 = 0.001:  θ -= (0.1/0.1) · 0.1g / (|g| + 1e-8) ≈ 0.1 sign(g)
    got = one_step(lambda p: optim.Adam(p, lr=0.1))
    np.testing.assert_allclose(got, [1 - 0.05 / (0.5 + 1e-8), -2 - 0.025 / (0.25 + 1e-8)], rtol=1e-12)
    # AdamW, λ = 0.5: θ *= 1 - 0.1·0.5 first: (0.95, -1.9), then the same Adam step
    got = one_step(lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.5))
    np.testing.assert_allclose(got, [0.95 - 0.05 / (0.5 + 1e-8), -1.9 - 0.025 / (0.25 + 1e-8)], rtol=1e-12)


# --------------------------------------------------------------------------- trajectories vs recurrences
def rec_sgd(lr, momentum=0.0, dampening=0.0, wd=0.0, nesterov=False, steps=12):
    th, b, out = THETA0.copy(), None, []
    for _ in range(steps):
        d = grad(th) + wd * th
        if momentum:
            b = d.copy() if b is None else momentum * b + (1 - dampening) * d
            d = d + momentum * b if nesterov else b
        th = th - lr * d
        out.append(th)
    return np.array(out)


def rec_adam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, amsgrad=False, decoupled=False, steps=12):
    th, m, v, vmax, out = THETA0.copy(), 0.0, 0.0, 0.0, []
    for t in range(1, steps + 1):
        g = grad(th)
        if decoupled:
            th = th * (1 - lr * wd)
        else:
            g = g + wd * th
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vh = (vmax if amsgrad else v) / (1 - b2 ** t)
        th = th - lr * (m / (1 - b1 ** t)) / (np.sqrt(vh) + eps)
        out.append(th)
    return np.array(out)


def rec_adagrad(lr=1e-2, lr_decay=0.0, wd=0.0, init=0.0, eps=1e-10, steps=12):
    th, s, out = THETA0.copy(), init, []
    for t in range(1, steps + 1):
        g = grad(th) + wd * th
        s = s + g * g
        th = th - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s) + eps)
        out.append(th)
    return np.array(out)


def rec_rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, wd=0.0, momentum=0.0, centered=False, steps=12):
    th, v, ga, b, out = THETA0.copy(), 0.0, 0.0, 0.0, []
    for _ in range(steps):
        g = grad(th) + wd * th
        v = alpha * v + (1 - alpha) * g * g
        avg = v
        if centered:
            ga = alpha * ga + (1 - alpha) * g
            avg = v - ga * ga
        avg = np.sqrt(avg) + eps
        if momentum:
            b = momentum * b + g / avg
            th = th - lr * b
        else:
            th = th - lr * g / avg
        out.append(th)
    return np.array(out)


def rec_adadelta(lr=1.0, rho=0.9, eps=1e-6, wd=0.0, steps=12):
    """Zeiler's rule with torch's lr multiplier: s = ρs + (1-ρ)g²; Δ = √(a+ε)/√(s+ε) g; a = ρa + (1-ρ)Δ²."""
    th, s, a, out = THETA0.copy(), 0.0, 0.0, []
    for _ in range(steps):
        g = grad(th) + wd * th
        s = rho * s + (1 - rho) * g ** 2
        step = np.sqrt(a + eps) / np.sqrt(s + eps) * g
        a = rho * a + (1 - rho) * step ** 2
        th = th - lr * step
        out.append(th)
    return np.array(out)


def rec_momentum(lr, beta, unbias=False, nesterov=False, steps=12):
    """The lecture's definition, with the gradient literally evaluated at the look-ahead θ - ηβu."""
    th, u, out = THETA0.copy(), 0.0, []
    for t in range(1, steps + 1):
        g = grad(th - lr * beta * u) if nesterov else grad(th)
        u = beta * u + (1 - beta) * g
        th = th - lr * (u / (1 - beta ** t) if unbias else u)
        out.append(th - lr * beta * u if nesterov else th)  # tinynn stores the look-ahead point
    return np.array(out)


TRAJECTORIES = [
    ("sgd", lambda p: optim.SGD(p, lr=0.1), lambda: rec_sgd(0.1)),
    ("sgd-momentum", lambda p: optim.SGD(p, lr=0.1, momentum=0.9), lambda: rec_sgd(0.1, 0.9)),
    ("sgd-dampening", lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.3), lambda: rec_sgd(0.1, 0.9, 0.3)),
    ("sgd-nesterov-wd", lambda p: optim.SGD(p, lr=0.1, momentum=0.8, weight_decay=0.05, nesterov=True),
     lambda: rec_sgd(0.1, 0.8, 0.0, 0.05, True)),
    ("adam", lambda p: optim.Adam(p, lr=0.1), lambda: rec_adam(0.1)),
    ("adam-custom", lambda p: optim.Adam(p, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     lambda: rec_adam(0.05, 0.8, 0.99, 1e-6, 0.1)),
    ("adam-amsgrad", lambda p: optim.Adam(p, lr=0.1, amsgrad=True), lambda: rec_adam(0.1, amsgrad=True)),
    ("adamw", lambda p: optim.AdamW(p, lr=0.1), lambda: rec_adam(0.1, wd=1e-2, decoupled=True)),
    ("adagrad", lambda p: optim.Adagrad(p, lr=0.1), lambda: rec_adagrad(0.1)),
    ("adagrad-all", lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.1, weight_decay=0.05, initial_accumulator_value=0.2),
     lambda: rec_adagrad(0.1, 0.1, 0.05, 0.2)),
    ("rmsprop", lambda p: optim.RMSprop(p, lr=0.01), lambda: rec_rmsprop(0.01)),
    ("rmsprop-all", lambda p: optim.RMSprop(p, lr=0.01, momentum=0.9, centered=True, weight_decay=0.05),
     lambda: rec_rmsprop(0.01, wd=0.05, momentum=0.9, centered=True)),
    ("momentum", lambda p: optim.Momentum(p, lr=0.1, beta=0.9), lambda: rec_momentum(0.1, 0.9)),
    ("momentum-unbias", lambda p: optim.Momentum(p, lr=0.1, beta=0.9, unbias=True), lambda: rec_momentum(0.1, 0.9, True)),
    ("momentum-nesterov", lambda p: optim.Momentum(p, lr=0.1, beta=0.9, nesterov=True),
     lambda: rec_momentum(0.1, 0.9, nesterov=True)),
    ("adadelta", lambda p: optim.Adadelta(p), lambda: rec_adadelta()),
    ("adadelta-all", lambda p: optim.Adadelta(p, lr=0.5, rho=0.95, eps=1e-3, weight_decay=0.1),
     lambda: rec_adadelta(0.5, 0.95, 1e-3, 0.1)),
]


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
@pytest.mark.parametrize("name,make,expected", TRAJECTORIES, ids=[t[0] for t in TRAJECTORIES])
def test_trajectory(name, make, expected, backend, flat):
    np.testing.assert_allclose(run(make, backend=backend, flat=flat), expected(), rtol=1e-11, atol=1e-12)


# --------------------------------------------------------------------------- torch.optim parity (optional)
TORCH = [
    ("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9)), ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)), ("SGD", dict(lr=0.1, weight_decay=0.05)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.05, initial_accumulator_value=0.2)),
    ("RMSprop", dict(lr=0.01)), ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.1)), ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.1, amsgrad=True)), ("AdamW", dict(lr=0.1)), ("AdamW", dict(lr=0.1, weight_decay=0.3, amsgrad=True)),
    ("Adadelta", dict()), ("Adadelta", dict(lr=0.5, rho=0.95, eps=1e-3, weight_decay=0.1)), ("Adadelta", dict(rho=0.0)),
]


@pytest.mark.parametrize("name,kw", TORCH, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TORCH)])
def test_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    tp = torch.tensor(THETA0.copy(), dtype=torch.float64, requires_grad=True)
    topt = getattr(torch.optim, name)([tp], **kw)
    expected = []
    for _ in range(12):
        topt.zero_grad()
        tp.grad = torch.tensor(grad(tp.detach().numpy()))
        topt.step()
        expected.append(tp.detach().numpy().copy())
    got = run(lambda p: getattr(optim, name)(p, **kw))
    np.testing.assert_allclose(got, np.array(expected), rtol=0, atol=1e-9)


@pytest.mark.parametrize("make_tn,make_torch", [
    (lambda o: schedules.StepLR(o, 3, 0.5), lambda o, t: t.StepLR(o, 3, 0.5)),
    (lambda o: schedules.ExponentialLR(o, 0.9), lambda o, t: t.ExponentialLR(o, 0.9)),
    (lambda o: schedules.CosineAnnealingLR(o, 10, 0.01), lambda o, t: t.CosineAnnealingLR(o, 10, 0.01)),
    (lambda o: schedules.CyclicLR(o, 0.01, 0.1, 4, 6), lambda o, t: t.CyclicLR(o, 0.01, 0.1, 4, 6, cycle_momentum=False)),
], ids=["step", "exponential", "cosine", "cyclic"])
def test_schedules_match_torch(make_tn, make_torch):
    torch = pytest.importorskip("torch")
    tp = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([tp], lr=0.1)
    tsched = make_torch(topt, torch.optim.lr_scheduler)
    opt = optim.SGD([tn.Parameter(np.zeros(1))], lr=0.1)
    sched = make_tn(opt)
    for _ in range(25):
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
        topt.step()
        tsched.step()
        sched.step()


def test_plateau_matches_torch():
    torch = pytest.importorskip("torch")
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.89, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8]
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, factor=0.5, patience=2)
    opt = optim.SGD([tn.Parameter(np.zeros(1))], lr=0.1)
    sched = schedules.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    for m in metrics:
        tsched.step(m)
        sched.step(m)
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)


# --------------------------------------------------------------------------- schedules without torch
def test_schedule_closed_forms():
    opt = optim.SGD([tn.Parameter(np.zeros(1))], lr=1.0)
    s = schedules.StepLR(opt, step_size=2, gamma=0.5)
    assert [opt.lr] + [s.step() for _ in range(5)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    opt.lr = 0.2
    s = schedules.InverseTimeLR(opt, k=0.5)
    assert [s.step() for _ in range(2)] == pytest.approx([0.2 / 1.5, 0.2 / 2])
    opt.lr = 1.0
    after = schedules.CosineAnnealingLR(opt, T_max=4)
    w = schedules.LinearWarmup(opt, warmup_steps=2, after=after)
    lrs = [opt.lr] + [w.step() for _ in range(6)]
    # warm-up 0.5, 1.0; then cosine from its step 0: 1, (1+cos(π/4))/2, 0.5, (1+cos(3π/4))/2, 0
    assert lrs == pytest.approx([0.5, 1.0, 1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0.0])


def test_lr_attribute_read_every_step():
    p = tn.Parameter(np.array([1.0]))
    opt = optim.SGD([p], lr=0.1)
    p.grad[...] = 1.0
    opt.step()
    opt.lr = 0.5
    opt.step()
    assert p.data[0] == pytest.approx(1 - 0.1 - 0.5)


def test_frozen_parameters_skipped():
    m = tn.Sequential(tn.Linear(3, 2, rng=0), tn.ReLU(), tn.Linear(2, 2, rng=1))
    m[0].weight.requires_grad = False
    before = m[0].weight.data.copy()
    opt = optim.Adam(m.parameters(), lr=0.1)
    X = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    loss = tn.SoftmaxCrossEntropy()
    loss(m.forward(X), np.array([0, 1, 0, 1, 1]))
    m.backward(loss.backward())
    opt.step()
    np.testing.assert_array_equal(m[0].weight.data, before)
    assert not np.array_equal(m[2].weight.data, before[:2, :2])


def test_optimizer_state_dict_resumes_exactly():
    full = run(lambda p: optim.Adam(p, lr=0.1), steps=6)
    p = tn.Parameter(THETA0.copy())
    opt = optim.Adam([p], lr=0.1)
    for _ in range(3):
        p.grad[...] = grad(p.data)
        opt.step()
    sd, data = opt.state_dict(), p.data.copy()
    p2 = tn.Parameter(data)
    opt2 = optim.Adam([p2], lr=0.5).load_state_dict(sd)
    for _ in range(3):
        p2.grad[...] = grad(p2.data)
        opt2.step()
    np.testing.assert_array_equal(p2.data, full[-1])


def test_clip_grad_norm():
    p1, p2 = tn.Parameter(np.array([3.0])), tn.Parameter(np.array([4.0]))
    p1.grad[...], p2.grad[...] = 3.0, 4.0
    assert optim.clip_grad_norm_([p1, p2], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose([p1.grad[0], p2.grad[0]], [0.6, 0.8], rtol=1e-6)


def test_lazy_adam_updates_touched_rows_only():
    emb = tn.Embedding(6, 3, dtype=np.float64, rng=0)
    opt = optim.Adam(emb.parameters(), lr=0.1, lazy=True)
    before = emb.weight.data.copy()
    emb.forward(np.array([1, 4, 1]))
    emb.backward(np.ones((3, 3)))
    opt.step()
    changed = np.any(emb.weight.data != before, axis=1)
    assert changed.tolist() == [False, True, False, False, True, False]
    # row 1 was used twice: grad 2, Adam's first step moves it by lr·sign(g) = 0.1
    np.testing.assert_allclose(emb.weight.data[1], before[1] - 0.1, rtol=1e-6)


def test_newton_one_step_least_squares():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    y = X @ np.array([[1.0], [-2.0], [0.5], [3.0]]) + 0.7 + 0.01 * rng.standard_normal((30, 1))
    lin = tn.Linear(4, 1, dtype=np.float64, rng=1)
    loss = tn.MSELoss()
    opt = optim.Newton(lin.parameters())

    def closure():
        lin.zero_grad()
        value = loss(lin.forward(X), y)
        lin.backward(loss.backward())
        return value

    opt.step(closure)
    Xa = np.hstack([X, np.ones((30, 1))])
    sol = np.linalg.lstsq(Xa, y, rcond=None)[0]
    np.testing.assert_allclose(lin.weight.data[:, 0], sol[:4, 0], rtol=1e-6)
    np.testing.assert_allclose(lin.bias.data, sol[4], rtol=1e-6)


def test_newton_refuses_large():
    with pytest.raises(ValueError, match="limit is max_params=2000"):
        optim.Newton(tn.Linear(100, 100).parameters())


@pytest.mark.parametrize("bad", [dict(lr=-1), dict(lr=float("nan")), dict(betas=(1.0, 0.9)), dict(eps=-1)])
def test_invalid_hyperparameters(bad):
    with pytest.raises(ValueError):
        optim.Adam([tn.Parameter(np.zeros(2))], **bad)


@pytest.mark.slow
def test_layer_api_adam_trains_mnist(mnist_path):
    """784-256-128-10 with Adam through the layer API, on a 20k subset for 5 epochs (the full 60k x 5 epochs
    run, 98.0 %, is in the README)."""
    X, y, Xt, yt = tn.data.load_mnist(mnist_path)
    X, y = X[:20000], y[:20000]
    model = tn.Sequential(tn.Linear(784, 256, rng=0), tn.ReLU(), tn.Linear(256, 128, rng=1), tn.ReLU(),
                          tn.Linear(128, 10, rng=2))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss = tn.SoftmaxCrossEntropy()
    rng = np.random.default_rng(0)
    for _ in range(5):
        for idx in tn.data.gen_batches(len(X), 128, rng):
            opt.zero_grad()
            loss(model.forward(X[idx]), y[idx])
            model.backward(loss.backward())
            opt.step()
    model.eval()
    assert np.mean(np.argmax(model.forward(Xt), axis=1) == yt) >= 0.95


# --------------------------------------------------------------------------- Adadelta extras
def test_adadelta_state_dict_round_trip():
    """6 steps straight == 3 steps, state_dict into a fresh optimizer (with another lr), 3 more steps."""
    full = run(lambda p: optim.Adadelta(p, lr=0.7), steps=6, flat=True)
    p = tn.Parameter(THETA0.copy())
    tn.parameter.FlatParameters([p])
    opt = optim.Adadelta([p], lr=0.7)
    for _ in range(3):
        p.grad[...] = grad(p.data)
        opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"t", "lr", "square_avg.0", "acc_delta.0"} and sd["square_avg.0"].shape == (3,)
    p2 = tn.Parameter(p.data.copy())
    opt2 = optim.Adadelta([p2], lr=0.1).load_state_dict(sd)
    assert opt2.lr == 0.7 and opt2.t == 3
    for _ in range(3):
        p2.grad[...] = grad(p2.data)
        opt2.step()
    np.testing.assert_array_equal(p2.data, full[-1])
    with pytest.raises(ValueError, match="acc_delta.0"):
        optim.Adadelta([tn.Parameter(np.zeros(3))]).load_state_dict({k: v for k, v in sd.items() if k != "acc_delta.0"})


def test_adadelta_model_flat_equals_per_tensor():
    """The whole-model single call (flat buffer) and one call per tensor give the same parameters."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 5)), rng.integers(0, 3, 16)
    out = []
    for flat in (True, False):
        m = tn.Sequential(tn.Linear(5, 4, dtype=np.float64, rng=0), tn.Tanh(), tn.Linear(4, 3, dtype=np.float64, rng=1))
        params = m.parameters() if flat else m.parameters()[::-1]     # another order: not the flat group
        opt = optim.Adadelta(params, weight_decay=0.01)
        assert (opt._group is not None) == flat
        loss = tn.SoftmaxCrossEntropy()
        for _ in range(4):
            opt.zero_grad()
            loss(m.forward(X), y)
            m.backward(loss.backward())
            opt.step()
        out.append(m.flat.data.copy())
    np.testing.assert_allclose(out[0], out[1], rtol=1e-14, atol=1e-15)


def test_adadelta_registered_and_validated():
    assert optim.OPTIMIZERS["adadelta"] is optim.Adadelta
    for bad in (dict(rho=1.5), dict(rho=-0.1), dict(eps=-1.0), dict(weight_decay=float("inf")), dict(lr=-1.0)):
        with pytest.raises(ValueError, match="Adadelta: " + list(bad)[0]):
            optim.Adadelta([tn.Parameter(np.zeros(2))], **bad)
