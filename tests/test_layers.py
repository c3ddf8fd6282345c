"""Every layer and loss: analytic backward == central finite differences (float64, NumPy reference)."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinynn import kernels
import tinynn as tn
from tinynn.gradcheck import gradcheck, gradcheck_loss
from tests.strategies import away_from_kinks, dims, finite_arrays

F64 = np.float64


def linear(d_in, d_out, bias=True):
    return tn.Linear(d_in, d_out, bias=bias, dtype=F64, init="xavier_normal", rng=0)


@st.composite
def batch(draw, n_lo=1, d_lo=1):
    n, d = draw(dims(n_lo, 6)), draw(dims(d_lo, 7))
    return draw(finite_arrays((n, d)))


@given(X=batch(), d_out=dims(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear(X, d_out, bias, seed):
    layer = tn.Linear(X.shape[1], d_out, bias=bias, dtype=F64, init="xavier_normal", rng=seed)
    gradcheck(layer, X, rng=np.random.default_rng(seed))


@pytest.mark.parametrize("make", [tn.ReLU, lambda: tn.LeakyReLU(0.1), tn.Sigmoid, tn.Tanh, tn.Identity],
                         ids=["relu", "leaky_relu", "sigmoid", "tanh", "identity"])
@given(X=batch(), seed=st.integers(0, 2**16))
def test_activation(make, X, seed):
    gradcheck(make(), away_from_kinks(X), rng=np.random.default_rng(seed))


@given(X=batch(n_lo=2), seed=st.integers(0, 2**16))
def test_batchnorm_train(X, seed):
    assume(np.all(X.var(axis=0) > 1e-2))  # a constant column has x̂ = 0 and an ill-conditioned 1/σ
    layer = tn.BatchNorm1d(X.shape[1], dtype=F64)
    rng = np.random.default_rng(seed)
    layer.weight.data[...] = rng.uniform(0.5, 2, X.shape[1])
    layer.bias.data[...] = rng.standard_normal(X.shape[1])
    gradcheck(layer, X, rng=rng)


@given(X=batch(d_lo=2), seed=st.integers(0, 2**16))
def test_layernorm(X, seed):
    assume(np.all(X.var(axis=1) > 1e-2))
    layer = tn.LayerNorm(X.shape[1], dtype=F64)
    rng = np.random.default_rng(seed)
    layer.weight.data[...] = rng.uniform(0.5, 2, X.shape[1])
    layer.bias.data[...] = rng.standard_normal(X.shape[1])
    gradcheck(layer, X, rng=rng)


@given(X=batch(), p=st.floats(0.1, 0.9), seed=st.integers(0, 2**16))
def test_dropout_fixed_mask(X, p, seed):
    layer = tn.Dropout(p)

    def reseed():
        layer.rng = np.random.default_rng(seed)  # the same mask on every forward

    gradcheck(layer, X, rng=np.random.default_rng(seed), reseed=reseed)


@given(n=dims(1, 8), num=dims(1, 6), dim=dims(1, 5), seed=st.integers(0, 2**16))
def test_embedding(n, num, dim, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, num, size=n)  # repeats are likely: the scatter must add them up
    layer = tn.Embedding(num, dim, dtype=F64, rng=seed)
    gradcheck(layer, idx, rng=rng, input_grad=False)
    assert set(layer.weight.rows.tolist()) == set(idx.tolist())


@given(X=batch(n_lo=2, d_lo=2), seed=st.integers(0, 2**16))
def test_sequential_mixed(X, seed):
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    model = tn.Sequential(linear(d, 5), tn.ReLU(), tn.LayerNorm(5, dtype=F64), linear(5, 4), tn.Tanh(),
                          tn.BatchNorm1d(4, dtype=F64), linear(4, 4), tn.LeakyReLU(0.2), linear(4, 3, bias=False),
                          tn.Sigmoid(), linear(3, 2))
    with kernels.use("numpy"):
        Z1 = X @ model[0].weight.data + model[0].bias.data
        assume(np.min(np.abs(Z1)) > 1e-3)          # off the ReLU kink
        model.forward(X)
        assume(np.all(model.output(4).var(axis=0) > 1e-3))  # BatchNorm input not constant
        assume(np.all(model.output(1).var(axis=1) > 1e-3) or True)
    model.needs_input_grad = True                  # check dX too
    gradcheck(model, X, rng=rng)


def test_sequential_first_layer_skips_dx():
    model = tn.Sequential(tn.Linear(3, 2), tn.ReLU())
    X = np.ones((4, 3), np.float32)
    model.forward(X)
    assert model.backward(np.ones((4, 2), np.float32)) is None


@given(Z=batch(d_lo=2), seed=st.integers(0, 2**16), weighted=st.booleans())
def test_softmax_cross_entropy(Z, seed, weighted):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, Z.shape[1], Z.shape[0])
    sw = rng.uniform(0.1, 2, Z.shape[0]) if weighted else None
    gradcheck_loss(tn.SoftmaxCrossEntropy(), Z * 3, y, sample_weight=sw)


@given(Z=batch(), seed=st.integers(0, 2**16))
def test_sigmoid_cross_entropy(Z, seed):
    T = np.random.default_rng(seed).integers(0, 2, Z.shape).astype(F64)
    gradcheck_loss(tn.SigmoidCrossEntropy(), Z, T)


@given(P=batch(), seed=st.integers(0, 2**16), flat=st.booleans())
def test_mse(P, seed, flat):
    T = np.random.default_rng(seed).standard_normal(P.shape)
    if flat:
        P, T = P[:, 0].copy(), T[:, 0].copy()
    gradcheck_loss(tn.MSELoss(), P, T)


# --------------------------------------------------------------------------- values, not only gradients
def test_softmax_ce_extreme_logits_exact():
    Z = np.array([[1000.0, -1000.0], [-1000.0, 1000.0], [0.0, 0.0]])
    y = np.array([0, 0, 1])
    for backend in ("numpy", "cpu"):
        with kernels.use(backend):
            loss = tn.SoftmaxCrossEntropy()
            # row losses: 0, 2000, log 2 -> mean (2000 + log 2)/3
            assert loss(Z, y) == pytest.approx((2000 + np.log(2)) / 3, rel=1e-12)
            assert np.all(np.isfinite(loss.backward()))


def test_mse_value():
    P = np.array([[1.0, 2.0], [3.0, 4.0]])
    T = np.array([[0.0, 2.0], [3.0, 2.0]])
    assert tn.MSELoss()(P, T) == pytest.approx((1 + 0 + 0 + 4) / 4)


def test_float32_sequential_matches_numpy(rng):
    model = tn.Sequential(tn.Linear(7, 5, rng=1), tn.ReLU(), tn.Linear(5, 3, rng=2))
    X = rng.standard_normal((9, 7)).astype(np.float32)
    W1, b1 = model[0].weight.data, model[0].bias.data
    W2, b2 = model[2].weight.data, model[2].bias.data
    expected = np.maximum(X @ W1 + b1, 0) @ W2 + b2
    got = model.forward(X)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_batchnorm_eval_uses_running_stats(rng):
    bn = tn.BatchNorm1d(3, momentum=0.5, dtype=F64)
    X = rng.standard_normal((8, 3)) * 2 + 1
    bn.forward(X)
    # running_mean = 0.5·0 + 0.5·μ;  running_var = 0.5·1 + 0.5·σ²·n/(n-1)
    np.testing.assert_allclose(bn.running_mean, 0.5 * X.mean(0))
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * X.var(0, ddof=1))
    bn.eval()
    row = X[:1]
    expected = (row - bn.running_mean) / np.sqrt(bn.running_var + 1e-5)
    np.testing.assert_allclose(bn.forward(row), expected)       # one row alone: no batch statistics
    np.testing.assert_allclose(bn.forward(X)[:1], expected)     # the same row within a batch: same output


def test_dropout_eval_identity_and_scale(rng):
    d = tn.Dropout(0.25, rng=0)
    X = np.ones((200, 50))
    Y = d.forward(X)
    assert set(np.unique(Y)) <= {0.0, 1 / 0.75}
    assert abs(Y.mean() - 1) < 0.05
    d.eval()
    assert d.forward(X) is X


def test_frozen_parameter_gets_no_gradient(rng):
    lin = tn.Linear(3, 2, rng=0)
    lin.weight.requires_grad = False
    X = rng.standard_normal((4, 3)).astype(np.float32)
    lin.forward(X)
    lin.backward(np.ones((4, 2), np.float32))
    assert not lin.weight.grad.any()
    assert lin.bias.grad.any()


def test_state_dict_roundtrip(rng):
    m1 = tn.Sequential(tn.Linear(4, 3, rng=1), tn.BatchNorm1d(3), tn.ReLU(), tn.Linear(3, 2, rng=2))
    m2 = tn.Sequential(tn.Linear(4, 3, rng=5), tn.BatchNorm1d(3), tn.ReLU(), tn.Linear(3, 2, rng=6))
    m1.forward(rng.standard_normal((5, 4)).astype(np.float32))
    m2.load_state_dict(m1.state_dict())
    for k, v in m1.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k], v)
    with pytest.raises(ValueError, match="keys differ"):
        m2.load_state_dict({"0.weight": np.zeros((4, 3))})


def test_init_table_and_variances():
    rng = np.random.default_rng(0)
    shape = (400, 300)
    assert np.var(tn.init.kaiming_normal(shape, rng, np.float64)) == pytest.approx(2 / 400, rel=0.05)
    assert np.var(tn.init.lecun_uniform(shape, rng, np.float64)) == pytest.approx(1 / 400, rel=0.05)
    assert np.var(tn.init.xavier_uniform(shape, rng, np.float64)) == pytest.approx(2 / 700, rel=0.05)
    assert np.var(tn.init.normal(shape, rng, np.float64, c=3)) == pytest.approx(3 / 400, rel=0.05)
    assert np.var(tn.init.kaiming_uniform(shape, rng, np.float64, mode="fan_out")) == pytest.approx(2 / 300, rel=0.05)
    assert tn.Linear(3, 2, init="kaiming_normal").weight.shape == (3, 2)
    assert np.all(tn.Linear(3, 2, init="constant").weight.data == np.float32(0.1))
    with pytest.raises(ValueError, match="kaiming_normal"):
        tn.Linear(3, 2, init="kaiming")
