"""Layers: each layer's defaults checked in behaviour (values from the formulas of its docstring, computed here
with math/NumPy), its bookkeeping (frozen parameters, first-layer nodes, modes, devices, saved state), and every
refusal with the message it promises (who refuses, what was expected, what came)."""
import math

import numpy as np
import pytest

import tinynn as tn
from tinynn.layers import LinearActivation
from tinynn.layers.activations import ACTIVATIONS, Exp, GELUTanh
from tinynn.layers.base import Layer
from tinynn.sparse import CSR

F64 = np.float64


def sig(x):
    return 1 / (1 + math.exp(-x))


def Phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def phi(x):
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def gelu_tanh(x):
    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
    return 0.5 * x * (1 + math.tanh(u)), \
        0.5 * (1 + math.tanh(u)) + 0.5 * x * (1 - math.tanh(u) ** 2) * math.sqrt(2 / math.pi) * (1 + 0.134145 * x * x)


XS = [-2.0, -0.5, 0.5, 3.0]
# (layer, f(x), f'(x)) from the module docstring, with each layer's defaults
ACTS = [
    (tn.Identity, lambda x: x, lambda x: 1.0),
    (tn.ReLU, lambda x: max(x, 0.0), lambda x: float(x > 0)),
    (tn.LeakyReLU, lambda x: x if x > 0 else 0.01 * x, lambda x: 1.0 if x > 0 else 0.01),
    (lambda: tn.LeakyReLU(0.2), lambda x: x if x > 0 else 0.2 * x, lambda x: 1.0 if x > 0 else 0.2),
    (tn.Sigmoid, sig, lambda x: sig(x) * (1 - sig(x))),
    (tn.Tanh, math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    (Exp, math.exp, math.exp),
    (tn.ELU, lambda x: x if x > 0 else math.exp(x) - 1, lambda x: 1.0 if x > 0 else math.exp(x)),
    (lambda: tn.ELU(0.5), lambda x: x if x > 0 else 0.5 * (math.exp(x) - 1), lambda x: 1.0 if x > 0 else 0.5 * math.exp(x)),
    (tn.Softplus, lambda x: math.log1p(math.exp(x)), sig),
    (lambda: tn.Softplus(beta=2.0), lambda x: math.log1p(math.exp(2 * x)) / 2, lambda x: sig(2 * x)),
    (tn.GELU, lambda x: x * Phi(x), lambda x: Phi(x) + x * phi(x)),
    (GELUTanh, lambda x: gelu_tanh(x)[0], lambda x: gelu_tanh(x)[1]),
    (lambda: tn.GELU(approximate="tanh"), lambda x: gelu_tanh(x)[0], lambda x: gelu_tanh(x)[1]),
    (tn.SiLU, lambda x: x * sig(x), lambda x: sig(x) * (1 + x * (1 - sig(x)))),
]


@pytest.mark.parametrize("make,f,df", ACTS, ids=lambda v: getattr(v, "__name__", ""))
def test_activation_values_and_derivatives(make, f, df):
    layer = make()
    X = np.array([XS, XS[::-1], [0.25, -0.25, 1.0, -1.0]], F64)      # 3 rows, 4 columns: rows and width differ
    dY = np.arange(1.0, 13.0).reshape(3, 4)
    Y = layer(X).copy()
    np.testing.assert_allclose(Y, np.vectorize(f)(X), rtol=1e-12, atol=1e-15)
    dX = layer.backward(dY)
    np.testing.assert_allclose(dX, dY * np.vectorize(df)(X), rtol=1e-9, atol=1e-15)


def test_activation_saves_what_its_derivative_needs():
    X = np.array([[1.0, -2.0]])
    for cls, from_input in [(tn.GELU, True), (tn.SiLU, True), (GELUTanh, True), (tn.ReLU, False), (tn.Tanh, False)]:
        layer = cls()
        assert layer.from_input is from_input
        Y = layer.forward(X)
        assert layer.saved is (X if from_input else Y) and layer.Y is Y


def test_activation_table():
    want = {"identity": tn.Identity, "relu": tn.ReLU, "leaky_relu": tn.LeakyReLU, "logistic": tn.Sigmoid,
            "sigmoid": tn.Sigmoid, "tanh": tn.Tanh, "exp": Exp, "gelu": tn.GELU, "gelu_tanh": GELUTanh,
            "silu": tn.SiLU, "swish": tn.SiLU, "elu": tn.ELU, "softplus": tn.Softplus}
    assert ACTIVATIONS == want


@pytest.mark.parametrize("layer,text", [
    (tn.Identity(), "Identity()"), (tn.ReLU(), "ReLU()"), (tn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
    (tn.ELU(), "ELU(alpha=1.0)"), (tn.Softplus(), "Softplus(beta=1.0)"), (tn.GELU(), "GELU()"),
    (GELUTanh(), "GELU(approximate='tanh')"), (tn.SiLU(), "SiLU()"), (tn.Dropout(), "Dropout(p=0.5)"),
    (tn.Embedding(4, 2), "Embedding(4, 2)"), (tn.Linear(2, 3), "Linear(2, 3, bias=True)"),
    (tn.Linear(2, 3, bias=False), "Linear(2, 3, bias=False)"), (tn.BatchNorm1d(3), "BatchNorm1d(3, eps=1e-05, momentum=0.1)"),
    (tn.LayerNorm(3), "LayerNorm(3, eps=1e-05)"), (Layer(), "Layer()"),
    (LinearActivation(tn.Linear(2, 3), tn.Tanh()), "LinearActivation(Linear(2, 3, bias=True), Tanh())"),
])
def test_repr(layer, text):
    assert repr(layer) == text


def test_softplus_beta_and_gelu_approximate_attributes():
    assert tn.Softplus(3).beta == 3.0 and tn.GELU().approximate == "none" and GELUTanh().approximate == "tanh"


# --------------------------------------------------------------------------- the base class
def test_layer_base_defaults():
    layer = Layer()
    assert layer.training is True and layer.needs_input_grad is True and layer.accumulates_grad is False
    assert tn.Embedding(2, 2).accumulates_grad is True and tn.Embedding(2, 2).needs_input_grad is False
    assert layer.parameters() == [] and layer.device == "cpu"
    with pytest.raises(NotImplementedError):
        layer.forward(np.zeros((1, 1)))
    with pytest.raises(NotImplementedError):
        layer.backward(np.zeros((1, 1)))
    assert layer.eval() is layer and layer.training is False
    assert layer.train() is layer and layer.training is True
    assert layer.train(0).training is False


def test_layer_parameters_zero_grad_and_to():
    lin = tn.Linear(2, 3, dtype=F64, rng=0)
    assert lin.named_parameters() == [("weight", lin.weight), ("bias", lin.bias)]
    assert lin.device == "cpu"
    lin.weight.grad[...] = 1.0
    lin.bias.grad[...] = 2.0
    lin.zero_grad()
    assert not lin.weight.grad.any() and not lin.bias.grad.any()
    m = tn.Sequential(lin)
    assert lin.weight.flat is m.flat
    Y = lin(np.ones((1, 2)))
    W = lin.weight.data.copy()
    lin.weight.grad[...] = 3.0
    assert lin.to("cpu") is lin
    assert lin.weight.flat is None and lin._ws_cache == {}
    assert isinstance(lin.weight.data, np.ndarray) and np.array_equal(lin.weight.data, W)
    assert isinstance(lin.weight.grad, np.ndarray) and (lin.weight.grad == 3.0).all()
    assert lin(np.ones((1, 2))) is not Y                             # work buffers re-made
    bn = tn.BatchNorm1d(2, dtype=F64)
    bn.running_mean[...] = 3.0
    bn.to("cpu")
    assert bn.running_mean.tolist() == [3.0, 3.0] and isinstance(bn.running_var, np.ndarray)


# --------------------------------------------------------------------------- Linear
def test_linear_defaults_and_rule():
    lin = tn.Linear(50, 40, rng=0)
    assert lin.weight.data.dtype == np.float32 and lin.bias is not None and not lin.bias.data.any()
    bound = math.sqrt(6 / 50)                                         # He-uniform: U(-√(6/fan_in), √(6/fan_in))
    W = lin.weight.data
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.9 * bound
    assert W.var() == pytest.approx(2 / 50, rel=0.1)
    lin = tn.Linear(2, 3, dtype=F64, rng=0)
    lin.bias.data[...] = [1.0, 2.0, 3.0]
    X = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, -1.0], [1.0, 1.0]])
    Y = lin(X)
    np.testing.assert_allclose(Y, X @ lin.weight.data + [1.0, 2.0, 3.0], rtol=1e-14)
    dY = np.arange(12.0).reshape(4, 3)
    dX = lin.backward(dY)
    np.testing.assert_allclose(lin.weight.grad, X.T @ dY, rtol=1e-14)
    np.testing.assert_allclose(lin.bias.grad, dY.sum(0), rtol=1e-14)
    np.testing.assert_allclose(dX, dY @ lin.weight.data.T, rtol=1e-14)


def test_linear_frozen_and_first_layer():
    lin = tn.Linear(2, 3, dtype=F64, rng=0)
    lin.weight.requires_grad = False
    lin.bias.requires_grad = False
    lin.weight.grad[...] = 7.0
    lin.bias.grad[...] = 7.0
    X = np.ones((4, 2))
    lin(X)
    dX = lin.backward(np.ones((4, 3)))
    assert (lin.weight.grad == 7.0).all() and (lin.bias.grad == 7.0).all()
    np.testing.assert_allclose(dX, np.ones((4, 3)) @ lin.weight.data.T, rtol=1e-14)
    lin.needs_input_grad = False
    lin(X)
    assert lin.backward(np.ones((4, 3))) is None
    nob = tn.Linear(2, 3, bias=False, dtype=F64, rng=0)
    np.testing.assert_allclose(nob(X), X @ nob.weight.data, rtol=1e-14)
    nob.backward(np.ones((4, 3)))
    np.testing.assert_allclose(nob.weight.grad, X.T @ np.ones((4, 3)), rtol=1e-14)


def csr(dense):
    import scipy.sparse as sp
    return sp.csr_matrix(dense)


def test_linear_sparse_input():
    lin = tn.Linear(3, 2, dtype=F64, rng=0)
    lin.bias.data[...] = [0.5, -0.5]
    D = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    Y = lin(csr(D)).copy()
    assert isinstance(lin.X, CSR)
    np.testing.assert_allclose(Y, D @ lin.weight.data + [0.5, -0.5], rtol=1e-14)
    dY = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert lin.backward(dY) is None                                   # no gradient w.r.t. data
    np.testing.assert_allclose(lin.weight.grad, D.T @ dY, rtol=1e-14)
    with pytest.raises(ValueError) as e:
        lin(csr(np.ones((2, 4))))
    assert str(e.value) == "Linear: expected sparse input of 3 columns in float64, got 4 columns in float64"
    fused = LinearActivation(lin, tn.ReLU())
    np.testing.assert_allclose(fused(csr(D)), np.maximum(D @ lin.weight.data + [0.5, -0.5], 0), rtol=1e-14)
    assert fused.backward(dY) is None


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: tn.Linear(0, 2), ValueError, "Linear: in_features must be a positive integer, got 0"),
    (lambda: tn.Linear(2, 0), ValueError, "Linear: out_features must be a positive integer, got 0"),
    (lambda: tn.Linear(2, 2, dtype=np.int32), TypeError, "Linear: dtype must be float32 or float64, got int32"),
    (lambda: tn.Linear(2, 3).forward(np.zeros((4, 3), np.float32)), ValueError,
     "Linear: expected 2 features (last axis), got shape (4, 3)"),
    (lambda: tn.Linear(2, 3).forward(np.zeros((4, 2))), TypeError,
     "Linear: expected dtype float32, got float64; convert with X.astype(np.float32)"),
    (lambda: tn.Linear(2, 3).backward(np.zeros((4, 3))), RuntimeError,
     "Linear.backward: called before forward: there is no saved forward pass to differentiate; "
     "call Linear.forward(X) first"),
    (lambda: fwd(tn.Linear(2, 3), (4, 2)).backward(np.zeros((4, 2), np.float32)), ValueError,
     "Linear.backward: expected 3 features (last axis), got shape (4, 2)"),
    (lambda: fwd(tn.Linear(2, 3), (4, 2)).backward(np.zeros((3, 3), np.float32)), ValueError,
     "Linear.backward: batch-size mismatch: expected 4 rows, got 3"),
    (lambda: fwd(tn.Linear(2, 3), (4, 2)).backward(np.zeros(3, np.float32)), ValueError,
     "Linear.backward: expected a 2-D array, got shape (3,)"),
    (lambda: LinearActivation(tn.Linear(2, 2, bias=False), tn.ReLU()), TypeError,
     "LinearActivation: expected a Linear with a bias, got Linear(2, 2, bias=False)"),
    (lambda: LinearActivation(tn.Linear(2, 2), tn.Linear(2, 2)), TypeError,
     "LinearActivation: expected an Activation, got Linear(2, 2, bias=True)"),
    (lambda: LinearActivation(tn.Linear(2, 3), tn.ReLU()).backward(np.zeros((4, 3))), RuntimeError,
     "Linear.backward: called before forward: there is no saved forward pass to differentiate; "
     "call Linear.forward(X) first"),
    (lambda: LinearActivation(tn.Linear(2, 3), tn.ReLU()).forward(np.zeros((4, 3), np.float32)), ValueError,
     "Linear: expected 2 features (last axis), got shape (4, 3)"),
    (lambda: fwd(LinearActivation(tn.Linear(2, 3), tn.ReLU()), (4, 2)).backward(np.zeros((4, 2), np.float32)),
     ValueError, "Linear.backward: expected 3 features (last axis), got shape (4, 2)"),
    (lambda: fwd(LinearActivation(tn.Linear(2, 3), tn.ReLU()), (4, 2)).backward(np.zeros((3, 3), np.float32)),
     ValueError, "Linear.backward: batch-size mismatch: expected 4 rows, got 3"),
    (lambda: fwd(LinearActivation(tn.Linear(2, 3), tn.ReLU()), (4, 2)).backward(np.zeros(3, np.float32)),
     ValueError, "Linear.backward: expected a 2-D array, got shape (3,)"),
    (lambda: fwd(tn.ReLU(), (2, 3)).backward(np.zeros((2, 4), np.float32)), ValueError,
     "ReLU.backward: expected 3 features (last axis), got shape (2, 4)"),
    (lambda: fwd(tn.GELU(), (2, 3)).backward(np.zeros((3, 3), np.float32)), ValueError,
     "GELU.backward: batch-size mismatch: expected 2 rows, got 3"),
    (lambda: tn.ReLU().forward(np.zeros(2, np.int64)), TypeError,
     "ReLU: expected a floating-point array, got dtype int64"),
    (lambda: tn.Tanh().backward(np.zeros((2, 3))), RuntimeError,
     "Tanh.backward: called before forward: there is no saved forward pass to differentiate; "
     "call Tanh.forward(X) first"),
    (lambda: tn.LeakyReLU(0), ValueError, "LeakyReLU: negative_slope must be > 0, got 0"),
    (lambda: tn.LeakyReLU("0.1"), ValueError, "LeakyReLU: negative_slope must be > 0, got '0.1'"),
    (lambda: tn.ELU(0), ValueError, "ELU: alpha must be a finite number > 0, got 0"),
    (lambda: tn.ELU(True), ValueError, "ELU: alpha must be a finite number > 0, got True"),
    (lambda: tn.ELU("1"), ValueError, "ELU: alpha must be a finite number > 0, got '1'"),
    (lambda: tn.Softplus(float("inf")), ValueError, "Softplus: beta must be a finite number > 0, got inf"),
    (lambda: tn.Softplus(-1.0), ValueError, "Softplus: beta must be a finite number > 0, got -1.0"),
    (lambda: tn.GELU("exact"), ValueError, "GELU: approximate must be 'none' or 'tanh', got 'exact'"),
    (lambda: tn.Dropout(1.0), ValueError, "Dropout: p must be in [0, 1), got 1.0"),
    (lambda: tn.Dropout().backward(np.zeros((2, 3))), RuntimeError,
     "Dropout.backward: called before forward: there is no saved forward pass to differentiate; "
     "call Dropout.forward(X) first"),
    (lambda: tn.Dropout().forward(np.zeros((2, 3), np.int64)), TypeError,
     "Dropout: expected a floating-point array, got dtype int64"),
    (lambda: fwd(tn.Dropout(rng=0), (2, 3)).backward(np.zeros((2, 4), np.float32)), ValueError,
     "Dropout.backward: expected 3 features (last axis), got shape (2, 4)"),
    (lambda: fwd(tn.Dropout(rng=0), (2, 3)).backward(np.zeros((3, 3), np.float32)), ValueError,
     "Dropout.backward: batch-size mismatch: expected 2 rows, got 3"),
    (lambda: tn.Embedding(0, 2), ValueError, "Embedding: num_embeddings must be a positive integer, got 0"),
    (lambda: tn.Embedding(2, 0), ValueError, "Embedding: embedding_dim must be a positive integer, got 0"),
    (lambda: tn.Embedding(2, 2, dtype=np.int32), TypeError, "Embedding: dtype must be float32 or float64, got int32"),
    (lambda: tn.Embedding(4, 2).forward(np.zeros(2, np.float32)), TypeError,
     "Embedding: expected integer indices, got dtype float32"),
    (lambda: tn.Embedding(4, 2).forward(np.array([True, False])), TypeError,
     "Embedding: expected integer indices, got dtype bool"),
    (lambda: tn.Embedding(4, 2).forward(csr(np.ones((2, 2)))), TypeError,
     "Embedding: sparse matrices are not supported; got csr_matrix, expected a dense array (call .toarray())"),
    (lambda: tn.Embedding(4, 2).forward(np.zeros(0, np.int64)), ValueError,
     "Embedding: expected a non-empty 1-D (n,) or 2-D (n, k) index array, got shape (0,)"),
    (lambda: tn.Embedding(4, 2).forward(np.zeros((0, 2), np.int64)), ValueError,
     "Embedding: expected a non-empty 1-D (n,) or 2-D (n, k) index array, got shape (0, 2)"),
    (lambda: tn.Embedding(4, 2).forward(np.zeros((1, 1, 1), np.int64)), ValueError,
     "Embedding: expected a non-empty 1-D (n,) or 2-D (n, k) index array, got shape (1, 1, 1)"),
    (lambda: tn.Embedding(4, 2).forward(np.array([3, 4, 5])), IndexError,
     "Embedding: index 4 out of range; expected indices in [0, 4)"),
    (lambda: tn.Embedding(4, 2).forward(np.array([0, -1])), IndexError,
     "Embedding: index -1 out of range; expected indices in [0, 4)"),
    (lambda: tn.Embedding(4, 2).backward(np.zeros((2, 2), np.float32)), RuntimeError,
     "Embedding.backward: called before forward: there is no saved forward pass to differentiate; "
     "call Embedding.forward(X) first"),
    (lambda: fwd_idx(tn.Embedding(4, 2), [1, 2, 3]).backward(np.zeros((3, 3), np.float32)), ValueError,
     "Embedding.backward: expected dY with 6 elements, got shape (3, 3)"),
    (lambda: fwd_idx(tn.Embedding(4, 2), [1, 2, 3]).backward(np.zeros((5,), np.float32)), ValueError,
     "Embedding.backward: expected dY with 6 elements, got shape (5,)"),
    (lambda: fwd_idx(tn.Embedding(4, 2), [1, 2, 3]).backward(np.zeros((3, 2))), TypeError,
     "Embedding.backward: expected dtype float32, got float64; convert with X.astype(np.float32)"),
    (lambda: tn.BatchNorm1d(0), ValueError, "BatchNorm1d: num_features must be a positive integer, got 0"),
    (lambda: tn.BatchNorm1d(2, dtype=np.int8), TypeError, "BatchNorm1d: dtype must be float32 or float64, got int8"),
    (lambda: tn.BatchNorm1d(2, eps=0), ValueError, "BatchNorm1d: eps must be > 0, got 0"),
    (lambda: tn.BatchNorm1d(2, eps="1"), ValueError, "BatchNorm1d: eps must be > 0, got '1'"),
    (lambda: tn.BatchNorm1d(2, momentum=1.5), ValueError, "BatchNorm1d: momentum must be in [0, 1], got 1.5"),
    (lambda: tn.BatchNorm1d(2, momentum=-0.1), ValueError, "BatchNorm1d: momentum must be in [0, 1], got -0.1"),
    (lambda: tn.BatchNorm1d(2, momentum="0.1"), ValueError, "BatchNorm1d: momentum must be in [0, 1], got '0.1'"),
    (lambda: tn.BatchNorm1d(2).forward(np.zeros((1, 2), np.float32)), ValueError,
     "BatchNorm1d: expected more than 1 row per batch in training mode, got shape (1, 2)"),
    (lambda: tn.BatchNorm1d(2).forward(np.zeros((3, 3), np.float32)), ValueError,
     "BatchNorm1d: expected 2 features (last axis), got shape (3, 3)"),
    (lambda: tn.BatchNorm1d(2).forward(np.zeros((3, 2))), TypeError,
     "BatchNorm1d: expected dtype float32, got float64; convert with X.astype(np.float32)"),
    (lambda: tn.BatchNorm1d(2).backward(np.zeros((3, 2), np.float32)), RuntimeError,
     "BatchNorm1d.backward: called before a training-mode forward (backward after an eval-mode forward is not "
     "supported): there is no saved forward pass to differentiate; call BatchNorm1d.forward(X) in training mode first"),
    (lambda: fwd(tn.BatchNorm1d(2), (3, 2)).backward(np.zeros((3, 3), np.float32)), ValueError,
     "BatchNorm1d.backward: expected 2 features (last axis), got shape (3, 3)"),
    (lambda: fwd(tn.BatchNorm1d(2), (3, 2)).backward(np.zeros((2, 2), np.float32)), ValueError,
     "BatchNorm1d.backward: batch-size mismatch: expected 3 rows, got 2"),
    (lambda: tn.LayerNorm(0), ValueError, "LayerNorm: num_features must be a positive integer, got 0"),
    (lambda: tn.LayerNorm(2, dtype=np.int8), TypeError, "LayerNorm: dtype must be float32 or float64, got int8"),
    (lambda: tn.LayerNorm(2, eps=-1), ValueError, "LayerNorm: eps must be > 0, got -1"),
    (lambda: tn.LayerNorm(2).forward(np.zeros((3, 3), np.float32)), ValueError,
     "LayerNorm: expected 2 features (last axis), got shape (3, 3)"),
    (lambda: tn.LayerNorm(2).backward(np.zeros((3, 2), np.float32)), RuntimeError,
     "LayerNorm.backward: called before forward: there is no saved forward pass to differentiate; "
     "call LayerNorm.forward(X) first"),
    (lambda: fwd(tn.LayerNorm(2), (3, 2)).backward(np.zeros((3, 3), np.float32)), ValueError,
     "LayerNorm.backward: expected 2 features (last axis), got shape (3, 3)"),
    (lambda: fwd(tn.LayerNorm(2), (3, 2)).backward(np.zeros((2, 2), np.float32)), ValueError,
     "LayerNorm.backward: batch-size mismatch: expected 3 rows, got 2"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_refusals(make, exc, msg):
    with pytest.raises(exc) as e:
        make()
    assert str(e.value) == msg


def fwd(layer, shape):
    layer.forward(np.ones(shape, np.float32))
    return layer


def fwd_idx(layer, idx):
    layer.forward(np.array(idx))
    return layer


# --------------------------------------------------------------------------- LinearActivation
@pytest.mark.parametrize("act", [tn.ReLU, tn.Tanh, tn.Sigmoid, lambda: tn.LeakyReLU(0.3), tn.ELU])
def test_fused_equals_its_two_layers(act):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 3))
    dY = rng.standard_normal((5, 4))
    lin = tn.Linear(3, 4, dtype=F64, rng=1)
    lin.bias.data[...] = [0.5, -0.5, 1.0, -1.0]
    a = act()
    Z = lin(X).copy()
    Y = a(Z).copy()
    dZ = a.backward(dY).copy()
    dX = lin.backward(dZ).copy()
    dW, db = lin.weight.grad.copy(), lin.bias.grad.copy()
    lin.zero_grad()
    fused = LinearActivation(lin, a)
    assert LinearActivation.fusable(lin, a)
    assert fused.named_parameters() == lin.named_parameters()
    np.testing.assert_allclose(fused(X), Y, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fused.backward(dY), dX, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(lin.weight.grad, dW, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(lin.bias.grad, db, rtol=1e-13, atol=1e-15)


def test_fused_frozen_first_layer_and_to():
    lin = tn.Linear(3, 2, dtype=F64, rng=1)
    fused = LinearActivation(lin, tn.Tanh())
    lin.weight.requires_grad = False
    lin.bias.requires_grad = False
    lin.weight.grad[...] = 7.0
    lin.bias.grad[...] = 7.0
    X = np.ones((4, 3))
    fused(X)
    fused.backward(np.ones((4, 2)))
    assert (lin.weight.grad == 7.0).all() and (lin.bias.grad == 7.0).all()
    fused.needs_input_grad = False
    fused(X)
    assert fused.backward(np.ones((4, 2))) is None
    assert fused.to("cpu") is fused and fused._ws_cache == {}


def test_fusable():
    lin = tn.Linear(2, 2)
    assert LinearActivation.fusable(lin, tn.ReLU()) and LinearActivation.fusable(lin, tn.Identity())
    assert not LinearActivation.fusable(lin, tn.GELU()) and not LinearActivation.fusable(lin, tn.SiLU())
    assert not LinearActivation.fusable(tn.Linear(2, 2, bias=False), tn.ReLU())
    assert not LinearActivation.fusable(lin, tn.Linear(2, 2))
    assert not LinearActivation.fusable(tn.ReLU(), tn.ReLU())


# --------------------------------------------------------------------------- Dropout
def test_dropout_default_p_and_mask():
    d = tn.Dropout(rng=0)
    assert d.p == 0.5
    X = np.full((200, 50), 3.0)
    Y = d(X).copy()
    assert set(np.unique(Y)) == {0.0, 6.0}                            # [U ≥ ½] / (1 - ½) · 3
    assert 0.45 < np.mean(Y > 0) < 0.55
    dY = np.arange(10000.0).reshape(200, 50)
    np.testing.assert_array_equal(d.backward(dY), dY * Y / 3.0)       # the same, scaled mask
    d2 = tn.Dropout(0.2, rng=np.random.default_rng(0))
    Y2 = d2(np.ones((100, 100)))
    assert set(np.unique(Y2)) == {0.0, 1.25} and 0.75 < np.mean(Y2 > 0) < 0.85
    assert np.array_equal(tn.Dropout(rng=7)(X), tn.Dropout(rng=7)(X))     # a seed fixes the mask


@pytest.mark.parametrize("train,p", [(False, 0.5), (True, 0.0)])
def test_dropout_identity(train, p):
    d = tn.Dropout(p, rng=0).train(train)
    X = np.arange(6.0).reshape(2, 3)
    assert d(X) is X
    dY = np.ones((5, 5))
    assert d.backward(dY) is dY


# --------------------------------------------------------------------------- Embedding
def test_embedding_defaults_and_rule():
    e = tn.Embedding(5, 3, rng=0)
    assert e.weight.data.dtype == np.float32
    np.testing.assert_array_equal(e.weight.data, np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    e = tn.Embedding(5, 3, dtype=F64, init="zeros")
    assert e.weight.data.dtype == F64 and not e.weight.data.any()
    W = np.arange(15.0).reshape(5, 3)
    e.weight.data[...] = W
    np.testing.assert_array_equal(e(np.array([4, 0, 4])), W[[4, 0, 4]])
    Y = e(np.array([[1, 2, 3], [0, 4, 0]], np.uint8))                 # (n, k) -> (n, k·dim)
    np.testing.assert_array_equal(Y, [np.r_[W[1], W[2], W[3]], np.r_[W[0], W[4], W[0]]])
    dY = np.arange(18.0).reshape(2, 9)
    assert e.backward(dY) is None
    want = np.zeros((5, 3))
    want[1], want[2], want[3], want[4] = dY[0, :3], dY[0, 3:6], dY[0, 6:], dY[1, 3:6]
    want[0] = dY[1, :3] + dY[1, 6:]
    np.testing.assert_array_equal(e.weight.grad, want)
    assert e.weight.rows.tolist() == [0, 1, 2, 3, 4]
    e.backward(dY.reshape(-1))                                        # dW = 0, then dW[idx] += dY: not summed over calls
    np.testing.assert_array_equal(e.weight.grad, want)
    e.zero_grad()
    e(np.array([3, 3]))
    e.backward(np.ones((2, 3)))
    assert e.weight.grad[3].tolist() == [2.0, 2.0, 2.0] and e.weight.rows.tolist() == [3]


def test_embedding_frozen():
    e = tn.Embedding(5, 3, dtype=F64, rng=0)
    e.weight.requires_grad = False
    e(np.array([1, 2]))
    assert e.backward(np.ones((2, 3))) is None
    assert not e.weight.grad.any() and e.weight.rows is None


def test_embedding_boundary_indices():
    e = tn.Embedding(4, 2, dtype=F64, init="zeros")
    e.weight.data[...] = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(e(np.array([0, 3], np.uint16)), [[0.0, 1.0], [6.0, 7.0]])
    assert e.idx.dtype == np.int64


# --------------------------------------------------------------------------- normalisation
def bn_reference(X, g, b, eps):
    mu = X.mean(0)
    var = X.var(0)
    inv = 1 / np.sqrt(var + eps)
    xhat = (X - mu) * inv
    return g * xhat + b, xhat, inv, mu, var


def test_batchnorm_defaults_running_stats_and_backward():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 3)) * [1.0, 1e-3, 4.0] + [2.0, -1.0, 0.0]   # a tiny variance makes eps count
    bn = tn.BatchNorm1d(3, dtype=F64)
    assert bn.eps == 1e-5 and bn.momentum == 0.1
    bn.weight.data[...] = [1.0, 2.0, -1.0]
    bn.bias.data[...] = [0.0, 0.5, 1.0]
    Y = bn(X).copy()
    want, xhat, inv, mu, var = bn_reference(X, bn.weight.data, bn.bias.data, 1e-5)
    np.testing.assert_allclose(Y, want, rtol=1e-10)
    np.testing.assert_allclose(bn.running_mean, 0.1 * mu, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * var * 5 / 4, rtol=1e-12)
    dY = rng.standard_normal((5, 3))
    dX = bn.backward(dY)
    dxh = dY * bn.weight.data
    np.testing.assert_allclose(dX, inv / 5 * (5 * dxh - dxh.sum(0) - xhat * (dxh * xhat).sum(0)), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(bn.weight.grad, (dY * xhat).sum(0), rtol=1e-10)
    np.testing.assert_allclose(bn.bias.grad, dY.sum(0), rtol=1e-12)
    # eval: the running statistics, each row on its own
    bn.eval()
    Ye = bn(X[:1]).copy()
    np.testing.assert_allclose(Ye, bn.weight.data * (X[:1] - bn.running_mean) / np.sqrt(bn.running_var + 1e-5)
                               + bn.bias.data, rtol=1e-10)
    with pytest.raises(RuntimeError, match="^BatchNorm1d.backward: called before a training-mode forward"):
        bn.backward(np.ones((1, 3)))


@pytest.mark.parametrize("m", [0.0, 1.0, 0.5])
def test_batchnorm_momentum_bounds_and_two_rows(m):
    bn = tn.BatchNorm1d(1, momentum=m, dtype=F64, eps=0.5)
    X = np.array([[0.0], [2.0]])                                      # μ = 1, σ² = 1 (unbiased 2)
    np.testing.assert_allclose(bn(X), [[-1 / math.sqrt(1.5)], [1 / math.sqrt(1.5)]], rtol=1e-14)
    assert bn.running_mean[0] == pytest.approx(m * 1.0) and bn.running_var[0] == pytest.approx((1 - m) + m * 2.0)


def test_batchnorm_frozen_parameters_get_no_gradient():
    bn = tn.BatchNorm1d(2, dtype=F64)
    bn.weight.requires_grad = bn.bias.requires_grad = False
    bn.weight.grad[...] = bn.bias.grad[...] = 7.0
    bn(np.array([[0.0, 1.0], [2.0, 5.0], [1.0, 0.0]]))
    dX = bn.backward(np.ones((3, 2)))
    assert (bn.weight.grad == 7.0).all() and (bn.bias.grad == 7.0).all()
    np.testing.assert_allclose(dX, 0.0, atol=1e-12)                  # a constant dY has no effect through x̂


def test_layernorm_defaults_and_backward():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 4)) * [[1.0], [1e-3], [5.0]]
    ln = tn.LayerNorm(4, dtype=F64)
    assert ln.eps == 1e-5
    ln.weight.data[...] = [1.0, 2.0, 0.5, -1.0]
    ln.bias.data[...] = [0.0, 1.0, 0.0, -1.0]
    Y = ln(X).copy()
    want, xhatT, invT, _, _ = bn_reference(X.T, 1.0, 0.0, 1e-5)
    xhat, inv = xhatT.T, invT[:, None]
    np.testing.assert_allclose(Y, xhat * ln.weight.data + ln.bias.data, rtol=1e-10, atol=1e-12)
    dY = rng.standard_normal((3, 4))
    dX = ln.backward(dY)
    dxh = dY * ln.weight.data
    np.testing.assert_allclose(dX, inv / 4 * (4 * dxh - dxh.sum(1, keepdims=True)
                                              - xhat * (dxh * xhat).sum(1, keepdims=True)), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ln.weight.grad, (dY * xhat).sum(0), rtol=1e-10)
    np.testing.assert_allclose(ln.bias.grad, dY.sum(0), rtol=1e-12)
    ln.weight.requires_grad = False
    ln.weight.grad[...] = 7.0
    ln(X)
    ln.backward(dY)
    assert (ln.weight.grad == 7.0).all()


# --------------------------------------------------------------------------- the model's dtype throughout
F32_LAYERS = [
    (lambda: tn.Linear(3, 4, rng=0), (5, 3)),
    (lambda: LinearActivation(tn.Linear(3, 4, rng=0), tn.Tanh()), (5, 3)),
    (tn.ReLU, (5, 3)), (tn.GELU, (5, 3)), (lambda: tn.Dropout(0.5, rng=0), (5, 3)),
    (lambda: tn.BatchNorm1d(3), (5, 3)), (lambda: tn.LayerNorm(3), (5, 3)),
]


@pytest.mark.parametrize("make,shape", F32_LAYERS, ids=lambda v: "" if isinstance(v, tuple) else None)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_and_gradients_keep_the_dtype(make, shape, dtype):
    layer = make()
    if hasattr(layer, "parameters") and layer.parameters() and dtype is np.float64:
        for p in layer.parameters():
            p.data = p.data.astype(F64)
            p.grad = np.zeros_like(p.data)
    X = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    Y = layer(X)
    assert Y.dtype == dtype and Y.shape == (shape[0], 4 if "Linear" in repr(layer) else shape[1])
    dX = layer.backward(np.ones(Y.shape, dtype))
    assert dX.dtype == dtype and dX.shape == shape


def test_embedding_keeps_its_dtype():
    for dtype in (np.float32, F64):
        e = tn.Embedding(4, 3, dtype=dtype, rng=0)
        Y = e(np.array([1, 2]))
        assert Y.dtype == dtype


# --------------------------------------------------------------------------- work buffers follow their input
WS_CASES = [
    (lambda: tn.Linear(3, 4, rng=0), (5, 3)), (lambda: LinearActivation(tn.Linear(3, 4, rng=0), tn.Tanh()), (5, 3)),
    (tn.ReLU, (5, 3)), (lambda: tn.Dropout(0.5, rng=0), (5, 3)), (lambda: tn.BatchNorm1d(3), (5, 3)),
    (lambda: tn.LayerNorm(3), (5, 3)),
]


@pytest.mark.parametrize("make,shape", WS_CASES, ids=lambda v: "" if isinstance(v, tuple) else None)
def test_work_buffers_are_made_like_an_input_array(make, shape, monkeypatch):
    """Every work buffer is allocated like an array of the call (so on its device: WorkBuffers._ws), never
    like nothing (which means the host whatever the input); frozen parameters' scratch gradients too."""
    likes = []
    real = tn.kernels.empty

    def spy(shape, dtype, like=None):
        likes.append(like)
        return real(shape, dtype, like=like)

    layer = make()
    for p in layer.parameters():
        p.requires_grad = False
    monkeypatch.setattr(tn.kernels, "empty", spy)
    X = np.ones(shape, np.float32)
    Y = layer(X)
    layer.backward(np.ones(Y.shape, np.float32))
    assert likes and all(isinstance(a, np.ndarray) for a in likes)


def test_embedding_buffer_made_like_its_table(monkeypatch):
    likes = []
    real = tn.kernels.empty
    monkeypatch.setattr(tn.kernels, "empty", lambda shape, dtype, like=None: likes.append(like) or real(shape, dtype, like=like))
    e = tn.Embedding(4, 2, rng=0)
    e(np.array([1, 2]))
    assert likes and all(a is e.weight.data for a in likes)


# --------------------------------------------------------------------------- work buffers are reused
REUSE = [
    (lambda: tn.Linear(3, 4, dtype=F64, rng=0), (5, 3)),
    (lambda: LinearActivation(tn.Linear(3, 4, dtype=F64, rng=0), tn.Tanh()), (5, 3)),
    (tn.ReLU, (5, 3)), (tn.GELU, (5, 3)), (lambda: tn.Dropout(0.3, rng=0), (5, 3)),
    (lambda: tn.BatchNorm1d(3, dtype=F64), (5, 3)), (lambda: tn.LayerNorm(3, dtype=F64), (5, 3)),
]


@pytest.mark.parametrize("make,shape", REUSE, ids=lambda v: "" if isinstance(v, tuple) else None)
def test_forward_and_backward_reuse_their_buffers(make, shape):
    """Layer docstring: outputs and input gradients live in work buffers reused from step to step (the array
    returned is overwritten by the next call), so a warmed-up step allocates nothing."""
    layer = make()
    rng = np.random.default_rng(0)
    outs = []
    for _ in range(2):
        X = rng.standard_normal(shape)
        Y = layer(X)
        dX = layer.backward(rng.standard_normal(Y.shape))
        outs.append((Y, dX, getattr(layer, "M", None), getattr(layer, "xhat", None)))
    (Y1, dX1, M1, h1), (Y2, dX2, M2, h2) = outs
    assert Y2 is Y1 and dX2 is dX1 and M2 is M1 and h2 is h1


def test_dropout_mask_drawn_in_the_inputs_dtype():
    """U ~ Uniform[0, 1) from the layer's generator, drawn in the input's dtype (float32: the float32 stream)."""
    X = np.ones((40, 30), np.float32)
    d = tn.Dropout(0.3, rng=5)
    Y = d(X)
    U = np.random.default_rng(5).random(X.shape, dtype=np.float32)
    np.testing.assert_array_equal(Y > 0, U >= 0.3)
    np.testing.assert_array_equal(Y[Y > 0], np.float32(1) / np.float32(0.7))


@pytest.mark.parametrize("cls", [tn.BatchNorm1d, tn.LayerNorm])
def test_normalisation_saves_in_the_models_dtype(cls):
    layer = cls(3)
    layer(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    assert layer.xhat.dtype == np.float32 and layer.inv_std.dtype == np.float32


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: tn.LayerNorm(2).forward(np.zeros(2, np.float32)), ValueError, "LayerNorm: expected a 2-D array, got shape (2,)"),
    (lambda: tn.LayerNorm(2).forward(np.zeros((3, 2))), TypeError,
     "LayerNorm: expected dtype float32, got float64; convert with X.astype(np.float32)"),
    (lambda: tn.BatchNorm1d(2).forward(np.zeros(2, np.float32)), ValueError,
     "BatchNorm1d: expected a 2-D array, got shape (2,)"),
    (lambda: tn.Linear(2, 3).forward(np.zeros(2, np.float32)), ValueError, "Linear: expected a 2-D array, got shape (2,)"),
    (lambda: fwd(tn.LayerNorm(2), (3, 2)).backward(np.zeros(2, np.float32)), ValueError,
     "LayerNorm.backward: expected a 2-D array, got shape (2,)"),
    (lambda: fwd(tn.BatchNorm1d(2), (3, 2)).backward(np.zeros(2, np.float32)), ValueError,
     "BatchNorm1d.backward: expected a 2-D array, got shape (2,)"),
    (lambda: tn.Embedding(4, 2).forward([[[1]]]), ValueError,
     "Embedding: expected a non-empty 1-D (n,) or 2-D (n, k) index array, got shape (1, 1, 1)"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_more_refusals(make, exc, msg):
    with pytest.raises(exc) as e:
        make()
    assert str(e.value) == msg


def test_embedding_keeps_an_int64_index_array_without_copying():
    """No allocation per step: int64 indices are used as given (other integer dtypes are converted)."""
    e = tn.Embedding(4, 2, rng=0)
    idx = np.array([1, 2, 3], np.int64)
    e(idx)
    assert np.shares_memory(e.idx, idx)
    e(np.array([1, 2], np.int32))
    assert e.idx.dtype == np.int64


@pytest.mark.parametrize("make", [
    lambda dt: tn.Linear(3, 2, dtype=dt) if dt else tn.Linear(3, 2), lambda dt: tn.BatchNorm1d(3, dtype=dt) if dt else tn.BatchNorm1d(3),
    lambda dt: tn.LayerNorm(3, dtype=dt) if dt else tn.LayerNorm(3), lambda dt: tn.Embedding(4, 3, dtype=dt) if dt else tn.Embedding(4, 3),
    lambda dt: tn.Embedding(4, 3, dtype=dt, init="kaiming_uniform") if dt else tn.Embedding(4, 3, init="kaiming_uniform"),
])
@pytest.mark.parametrize("dtype", [None, np.float32, np.float64])
def test_parameters_in_the_layers_dtype(make, dtype):
    """dtype: float32 by default, or the one given, for every parameter and state array."""
    layer = make(dtype)
    want = np.dtype(dtype or np.float32)
    for p in layer.parameters():
        assert p.data.dtype == want and p.grad.dtype == want
    for name in layer._state_names:
        assert getattr(layer, name).dtype == want


def test_embedding_init_callable_gets_shape_rng_dtype():
    """init: a name or a callable (shape, rng, dtype) -> array; whatever it returns is cast to the dtype."""
    calls = []

    def init(shape, rng, dtype):
        calls.append((shape, rng, dtype))
        return np.full(shape, 0.1)                                    # float64, whatever dtype asked

    e = tn.Embedding(4, 3, init=init, rng=7)
    (shape, rng, dtype), = calls
    assert shape == (4, 3) and isinstance(rng, np.random.Generator) and dtype == np.float32
    assert rng.bit_generator.state == np.random.default_rng(7).bit_generator.state
    assert e.weight.data.dtype == np.float32 and (e.weight.data == np.float32(0.1)).all()
    assert np.array_equal(tn.Embedding(4, 3, init="kaiming_uniform", rng=3).weight.data,
                          tn.init.get("kaiming_uniform")((4, 3), np.random.default_rng(3), np.float32))


def test_batchnorm_eval_reuses_its_output_buffer():
    bn = tn.BatchNorm1d(3, dtype=F64).eval()
    Y1 = bn(np.ones((4, 3)))
    Y2 = bn(np.zeros((4, 3)))
    assert Y2 is Y1 and not Y2.any()


def test_layernorm_saves_one_inverse_std_per_row():
    """LayerNorm normalises each row: it saves 1/√(σ²_i + eps) for each of the n rows (n < d here)."""
    X = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 0.0, 0.0, 10.0]])
    ln = tn.LayerNorm(5, dtype=F64)
    ln(X)
    np.testing.assert_allclose(ln.inv_std, 1 / np.sqrt(X.var(1) + 1e-5), rtol=1e-12)
