"""Your own layers and losses: the public gradient checker (tinynn.gradcheck) and its Hypothesis properties
(tinynn.testing), the README's custom-layer example, the new activations (GELU, SiLU, ELU, Softplus) and losses
(L1Loss, HuberLoss) against PyTorch, in the estimators, and every layer and loss refusing backward before
forward."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynn as tn
from tinynn import kernels
from tinynn.gradcheck import gradcheck, gradcheck_loss

ROOT = Path(__file__).resolve().parent.parent
F64 = np.float64


# --------------------------------------------------------------------------- the checker catches planted bugs
def _builtin_layers():
    """(id, layer factory, input, kinks-free) for every built-in layer kind."""
    rng = np.random.default_rng(1)
    X = rng.uniform(0.2, 2.0, (5, 4)) * rng.choice([-1, 1], (5, 4))      # off every kink
    acts = [tn.ReLU, lambda: tn.LeakyReLU(0.1), tn.Sigmoid, tn.Tanh, tn.Identity, tn.GELU, lambda: tn.GELU("tanh"),
            tn.SiLU, lambda: tn.ELU(0.7), lambda: tn.Softplus(2.0), tn.layers.Exp]
    out = [(repr(a()), a, X) for a in acts]
    out += [("Linear", lambda: tn.Linear(4, 3, dtype=F64, rng=0), X),
            ("BatchNorm1d", lambda: tn.BatchNorm1d(4, dtype=F64), X),
            ("LayerNorm", lambda: tn.LayerNorm(4, dtype=F64), X),
            ("Sequential", lambda: tn.Sequential(tn.Linear(4, 3, dtype=F64, rng=0), tn.GELU(),
                                                 tn.Linear(3, 2, dtype=F64, rng=1), tn.ELU()), X)]
    return out


LAYERS = _builtin_layers()


@pytest.mark.parametrize("name,make,X", LAYERS, ids=[c[0] for c in LAYERS])
def test_checker_passes_every_builtin(name, make, X):
    layer = make()
    if isinstance(layer, tn.Sequential):
        layer.needs_input_grad = True
    errors = gradcheck(layer, X, rng=0)
    assert errors and all(e < 1e-6 for e in errors.values()), errors


@pytest.mark.parametrize("name,make,X", LAYERS, ids=[c[0] for c in LAYERS])
def test_checker_catches_a_planted_error_in_every_builtin(name, make, X, monkeypatch):
    """A backward off by 1 % in dX (or, for a layer with parameters, in its first parameter's gradient) fails
    with a message naming the gradient, the worst index, both values and the tolerance."""
    layer = make()
    if isinstance(layer, tn.Sequential):
        layer.needs_input_grad = True
    cls = type(layer)
    original = cls.backward
    params = layer.parameters()

    def wrong(self, dY):
        dX = original(self, dY)
        if self.parameters():
            self.parameters()[0].grad[...] *= 1.01
            return dX
        return dX * 1.01

    monkeypatch.setattr(cls, "backward", wrong)
    with pytest.raises(AssertionError) as e:
        gradcheck(layer, X, rng=0)
    msg = str(e.value)
    target = layer.named_parameters()[0][0] if params else "X"
    assert re.search(rf"^{re.escape(cls.__name__)}: d{re.escape(target)}\[\d+(, \d+)*\]: analytic -?[\d.e+-]+ != "
                     rf"numeric -?[\d.e+-]+ \(relative error [\d.e+-]+ >= tol 1e-06", msg), msg


def test_checker_on_a_float32_layer_checks_a_float64_copy_and_leaves_it_alone():
    layer = tn.Linear(6, 3, rng=0)                                   # float32
    W = layer.weight.data.copy()
    X = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    errors = gradcheck(layer, X, rng=0)
    assert max(errors.values()) < 1e-6                               # float64 precision: not float32's 1e-3
    assert layer.weight.data.dtype == np.float32 and np.array_equal(layer.weight.data, W)


def test_directional_mode_for_large_tensors_catches_errors():
    layer = tn.Linear(60, 50, dtype=F64, rng=0)                       # 3000 weights > MAX_ELEMENTWISE
    X = np.random.default_rng(0).standard_normal((8, 60))
    errors = gradcheck(layer, X, rng=0)
    assert max(errors.values()) < 1e-6
    original = tn.Linear.backward

    def wrong(self, dY):
        dX = original(self, dY)
        self.weight.grad[3, 4] += 0.5                                 # one entry of 3000
        return dX

    tn.Linear.backward = wrong
    try:
        with pytest.raises(AssertionError, match=r"dweight along random direction 0"):
            gradcheck(layer, X, rng=0)
    finally:
        tn.Linear.backward = original


def test_checker_uses_reseed_for_random_layers():
    layer = tn.Dropout(0.5)
    X = np.random.default_rng(0).standard_normal((6, 5))
    with pytest.raises(AssertionError):                               # a fresh mask per forward: no derivative
        gradcheck(layer, X, rng=0)

    def reseed(l):
        l.rng = np.random.default_rng(7)

    assert max(gradcheck(layer, X, rng=0, reseed=reseed).values()) < 1e-6


def test_loss_checker_catches_a_planted_error(monkeypatch):
    rng = np.random.default_rng(0)
    P, T = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    assert gradcheck_loss(tn.HuberLoss(0.5), P, T) < 1e-6
    original = tn.HuberLoss._grad
    monkeypatch.setattr(tn.HuberLoss, "_grad", lambda self, P, T, w, out: original(self, P, T, 2 * w, out))
    with pytest.raises(AssertionError, match=r"HuberLoss: dpred\[\d+, \d+\]: analytic"):
        gradcheck_loss(tn.HuberLoss(0.5), P, T)


# --------------------------------------------------------------------------- tinynn.testing
@given(pair=tn.testing.activations(), X=tn.testing.batches(), seed=st.integers(0, 2**16))
def test_every_activation_through_the_public_strategies(pair, X, seed):
    act, kinks = pair
    X = tn.testing._push(X, kinks, 1e-3)
    assert max(gradcheck(act, X, rng=seed).values()) < 1e-6


test_linear_property = tn.testing.layer_property(lambda d: tn.Linear(d, 3, dtype=F64, rng=0))
test_gelu_property = tn.testing.layer_property(lambda d: tn.GELU())
test_l1_property = tn.testing.loss_property(tn.L1Loss, kinks=(0.0,))
test_huber_property = tn.testing.loss_property(lambda: tn.HuberLoss(0.7))
test_mse_property = tn.testing.loss_property(tn.MSELoss)
# sklearn's squared loss follows d·∂L/∂p for d outputs (its own gradient, tinynn.losses): checked at d = 1
test_squared_error_property = tn.testing.loss_property(tn.SquaredError, max_cols=1)
test_softmax_xent_property = tn.testing.loss_property(tn.SoftmaxCrossEntropy, target="labels", min_cols=2)
test_sigmoid_xent_property = tn.testing.loss_property(tn.SigmoidCrossEntropy, target="binary")
test_poisson_property = tn.testing.loss_property(tn.PoissonLoss, target="counts")


def test_property_fails_on_a_wrong_layer():
    class Wrong(tn.layers.Tanh):
        def backward(self, dY):
            return super().backward(dY) * 1.001

    prop = settings(max_examples=5, database=None)(tn.testing.layer_property(lambda d: Wrong()).hypothesis.inner_test)
    with pytest.raises(AssertionError, match="Wrong: dX"):
        given(X=tn.testing.batches(), seed=st.integers(0, 10))(prop)()


# --------------------------------------------------------------------------- the docs' example (docs/layers.md), as written
def _readme_block(marker):
    text = (ROOT / "docs" / "layers.md").read_text()
    i = text.index(marker)
    m = re.compile(r"```python\n(.*?)```", re.S).search(text, i)
    return m.group(1)


def test_readme_custom_layer_example_runs(tmp_path):
    code = _readme_block("<!-- example: your-own-layer -->")
    assert "class Scale(tn.Layer)" in code and "tn.gradcheck(" in code and "tn.testing.layer_property" in code
    script = tmp_path / "custom_layer.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    errors = eval(r.stdout.strip().splitlines()[-1])                 # the dict the example prints
    assert set(errors) == {"X", "gamma", "beta"} and max(errors.values()) < 1e-6


# --------------------------------------------------------------------------- backward before forward
def _all_layers():
    return [tn.Linear(3, 2), tn.ReLU(), tn.LeakyReLU(), tn.Sigmoid(), tn.Tanh(), tn.Identity(), tn.layers.Exp(),
            tn.GELU(), tn.GELU("tanh"), tn.SiLU(), tn.ELU(), tn.Softplus(), tn.BatchNorm1d(3), tn.LayerNorm(3),
            tn.Dropout(0.5), tn.Embedding(5, 3), tn.Sequential(tn.Linear(3, 2), tn.ReLU()),
            tn.layers.LinearActivation(tn.Linear(3, 2), tn.ReLU())]


def _all_losses():
    return [tn.SoftmaxCrossEntropy(), tn.SigmoidCrossEntropy(), tn.MSELoss(), tn.SquaredError(), tn.PoissonLoss(),
            tn.L1Loss(), tn.HuberLoss()]


def test_the_lists_below_cover_every_layer_and_loss():
    import inspect

    import tinynn.layers as L
    import tinynn.losses as Ls

    layer_types = {type(x) for x in _all_layers()}
    for name in L.__all__:
        obj = getattr(L, name)
        if inspect.isclass(obj) and issubclass(obj, tn.Layer) and obj not in (tn.Layer, L.Activation):
            assert obj in layer_types, f"{name} is missing from _all_layers()"
    loss_types = {type(x) for x in _all_losses()}
    for name, obj in vars(Ls).items():
        if inspect.isclass(obj) and issubclass(obj, Ls.Loss) and not name.startswith("_") and obj is not Ls.Loss:
            assert obj in loss_types, f"{name} is missing from _all_losses()"


@pytest.mark.parametrize("layer", _all_layers(), ids=lambda x: type(x).__name__)
def test_every_layer_refuses_backward_before_forward(layer):
    with pytest.raises(RuntimeError, match=r"\.backward: called before (a training-mode )?forward"):
        layer.backward(np.ones((2, 2), np.float32))


@pytest.mark.parametrize("loss", _all_losses(), ids=lambda x: type(x).__name__)
def test_every_loss_refuses_backward_before_forward(loss):
    with pytest.raises(RuntimeError, match=rf"^{type(loss).__name__}\.backward: called before forward"):
        loss.backward()


# --------------------------------------------------------------------------- the new ones against PyTorch
def _torch():
    return pytest.importorskip("torch")


ACTS = [("GELU()", lambda: tn.GELU(), lambda t: t.nn.GELU()),
        ("GELU(tanh)", lambda: tn.GELU("tanh"), lambda t: t.nn.GELU(approximate="tanh")),
        ("SiLU", lambda: tn.SiLU(), lambda t: t.nn.SiLU()),
        ("ELU(0.7)", lambda: tn.ELU(0.7), lambda t: t.nn.ELU(0.7)),
        ("Softplus", lambda: tn.Softplus(), lambda t: t.nn.Softplus()),
        ("Softplus(2)", lambda: tn.Softplus(2.0), lambda t: t.nn.Softplus(2.0))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("name,ours,theirs", ACTS, ids=[a[0] for a in ACTS])
def test_new_activations_equal_torch(name, ours, theirs, backend, dtype):
    torch = _torch()
    rng = np.random.default_rng(0)
    X = rng.uniform(-8, 8, (40, 17)).astype(dtype)
    X[0, :6] = [0, 25, -25, 1e-7, -1e-7, 3]
    R = rng.standard_normal(X.shape).astype(dtype)
    layer = ours()
    with kernels.use(backend):
        Y = np.array(layer.forward(X.copy()))
        dX = np.array(layer.backward(R.copy()))
    tx = torch.tensor(X, requires_grad=True)
    ty = theirs(torch)(tx)
    ty.backward(torch.tensor(R))
    # float32: tinynn computes each value in float64 and rounds once; torch's float32 formulas cancel (1 + tanh u
    # near u = -8 in the tanh GELU's derivative), up to ~4e-6 absolute. float64: torch's Softplus returns x for
    # βx > 20 (its threshold), which differs from log1p(e^(βx))/β by < e^-20 / β.
    tol = dict(rtol=4e-6, atol=1e-5) if dtype == np.float32 else \
        dict(rtol=1e-12, atol=1e-10 if "Softplus" in name else 1e-13)
    np.testing.assert_allclose(Y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(dX, tx.grad.numpy(), **tol)


LOSSES = [("L1Loss", lambda: tn.L1Loss(), lambda t: t.nn.L1Loss()),
          ("HuberLoss", lambda: tn.HuberLoss(), lambda t: t.nn.HuberLoss()),
          ("HuberLoss(0.3)", lambda: tn.HuberLoss(0.3), lambda t: t.nn.HuberLoss(delta=0.3))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("name,ours,theirs", LOSSES, ids=[a[0] for a in LOSSES])
def test_new_losses_equal_torch(name, ours, theirs, backend, dtype):
    torch = _torch()
    rng = np.random.default_rng(1)
    P = rng.standard_normal((30, 4)).astype(dtype)
    T = rng.standard_normal((30, 4)).astype(dtype)
    T[0, 0] = P[0, 0]                                                  # a zero residual: L1's sign(0) = 0
    loss = ours()
    with kernels.use(backend):
        value = loss.forward(P, T)
        dP = np.array(loss.backward())
    tp = torch.tensor(P, requires_grad=True)
    tv = theirs(torch)(tp, torch.tensor(T))
    tv.backward()
    tol = dict(rtol=2e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(value, tv.item(), **tol)
    np.testing.assert_allclose(dP, tp.grad.numpy(), **tol)
    assert dP[0, 0] == 0 or name != "L1Loss"


def test_weighted_robust_losses_are_weighted_means():
    rng = np.random.default_rng(2)
    P, T, w = rng.standard_normal((6, 2)), rng.standard_normal((6, 2)), rng.uniform(0.1, 2, 6)
    r = np.abs(P - T)
    np.testing.assert_allclose(tn.L1Loss().forward(P, T, w), np.sum(w / w.sum() * r.mean(axis=1)), rtol=1e-13)
    h = np.where(r < 1.0, 0.5 * r * r, r - 0.5)
    np.testing.assert_allclose(tn.HuberLoss().forward(P, T, w), np.sum(w / w.sum() * h.mean(axis=1)), rtol=1e-13)
    assert gradcheck_loss(tn.L1Loss(), P, T, sample_weight=w) < 1e-6


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), True, "1"])
def test_parameters_are_validated(bad):
    for make in (tn.ELU, tn.Softplus, tn.HuberLoss):
        with pytest.raises(ValueError, match="must be a finite number > 0"):
            make(bad)
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        tn.GELU("fast")


def test_input_based_activations_are_not_fused_and_output_based_are():
    m = tn.Sequential(tn.Linear(3, 4), tn.GELU(), tn.Linear(4, 4), tn.ELU(), tn.Linear(4, 2), tn.SiLU())
    fused = [type(node).__name__ for _, node in m.plan]
    assert fused == ["Linear", "GELU", "LinearActivation", "Linear", "SiLU"], fused


# --------------------------------------------------------------------------- in the estimators
def test_regressor_robust_losses_resist_outliers():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 1.5])
    y_bad = y.copy()
    y_bad[:30] += 50.0                                                 # 10 % gross outliers
    errs = {}
    for loss in ("squared_error", "absolute_error", "huber"):
        m = tn.MLPRegressor(loss=loss, hidden_layer_sizes=(16,), max_iter=150, random_state=0, alpha=0.0)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(X, y_bad)
        errs[loss] = float(np.median(np.abs(m.predict(X[30:]) - y[30:])))
        if loss != "squared_error":
            ref = (tn.L1Loss() if loss == "absolute_error" else tn.HuberLoss()).forward(m.predict(X), y_bad)
            assert abs(m.loss_ - ref) < 0.05 * ref + 0.05, (loss, m.loss_, ref)
    assert errs["absolute_error"] < 0.5 * errs["squared_error"], errs
    assert errs["huber"] < 0.5 * errs["squared_error"], errs


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "silu", "swish", "elu", "softplus"])
def test_estimators_take_the_new_activations_by_name(activation, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = tn.MLPClassifier(hidden_layer_sizes=(8,), activation=activation, max_iter=200, learning_rate_init=0.01,
                           random_state=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    assert clf.score(X, y) > 0.95
    path = tmp_path / "clf.npz"
    clf.save(path)
    again = tn.MLPClassifier.load(path)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


# --------------------------------------------------------------------------- on the GPU backend
@pytest.mark.gpu
def test_checker_takes_a_cuda_layer_and_leaves_it_on_the_device():
    layer = tn.Sequential(tn.Linear(4, 3, rng=0), tn.GELU(), tn.Linear(3, 2, rng=1)).to("cuda")
    layer.needs_input_grad = True
    X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    errors = gradcheck(layer, X, rng=0)
    assert max(errors.values()) < 1e-6
    assert kernels.is_device_array(layer.parameters()[0].data)
