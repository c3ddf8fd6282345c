"""The reference activations (kernels/reference/elementwise.py) against their definitions, evaluated element by
element in plain Python ``math`` (the module docstring's formulas), with no NumPy expression of the reference
reused: the reference is the oracle of every backend, so it is held to the formulas themselves.

Inputs include the kinks (exactly 0), both signs, several values of ``alpha`` (leaky slope, ELU's alpha,
Softplus' beta: a value other than 1 so that alpha cannot be dropped), large magnitudes where a naive formula
overflows, and NaN.
"""
import math
import warnings

import numpy as np
import pytest

from tinynn import kernels
from tinynn.kernels import ops
from tinynn.kernels.config import ACTIVATIONS

XS = [-3.0, -1.5, -0.7, -1e-3, 0.0, 1e-3, 0.25, 0.5, 1.0, 2.5, 3.0]
ALPHAS = [0.1, 0.7, 2.0]


def _sigmoid(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _phi(x):        # standard normal CDF
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _u(x):
    return math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)


FORWARD = {
    "identity": lambda x, a: x,
    "relu": lambda x, a: x if x > 0 else 0.0,
    "leaky_relu": lambda x, a: x if x > 0 else a * x,
    "sigmoid": lambda x, a: _sigmoid(x),
    "tanh": lambda x, a: math.tanh(x),
    "exp": lambda x, a: math.exp(x),
    "gelu": lambda x, a: x * _phi(x),
    "gelu_tanh": lambda x, a: 0.5 * x * (1 + math.tanh(_u(x))),
    "silu": lambda x, a: x * _sigmoid(x),
    "elu": lambda x, a: x if x > 0 else a * (math.exp(x) - 1),
    "softplus": lambda x, a: math.log(1 + math.exp(a * x)) / a,
}

# derivatives as functions of the input x; the backward op receives the saved output y = f(x) for every kind
# but gelu, gelu_tanh and silu (config.FROM_INPUT), which receive x
DERIVATIVE = {
    "identity": lambda x, a: 1.0,
    "relu": lambda x, a: 1.0 if x > 0 else 0.0,
    "leaky_relu": lambda x, a: 1.0 if x > 0 else a,
    "sigmoid": lambda x, a: _sigmoid(x) * (1 - _sigmoid(x)),
    "tanh": lambda x, a: 1 - math.tanh(x) ** 2,
    "exp": lambda x, a: math.exp(x),
    "gelu": lambda x, a: _phi(x) + x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi),
    "gelu_tanh": lambda x, a: (0.5 * (1 + math.tanh(_u(x)))
                               + 0.5 * x * (1 - math.tanh(_u(x)) ** 2) * math.sqrt(2 / math.pi)
                               * (1 + 3 * 0.044715 * x * x)),
    "silu": lambda x, a: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))),
    "elu": lambda x, a: 1.0 if x > 0 else a * math.exp(x),
    "softplus": lambda x, a: _sigmoid(a * x),
}
FROM_INPUT = {"gelu", "gelu_tanh", "silu"}


def _ref(name, *args, **kwargs):
    with kernels.use("numpy"), warnings.catch_warnings():
        warnings.simplefilter("error")                      # no overflow or invalid-value warning either
        return ops[name](*args, **kwargs)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("alpha", ALPHAS)
def test_forward_is_the_formula(act, alpha):
    X = np.array([XS])
    expected = [[FORWARD[act](x, alpha) for x in XS]]
    np.testing.assert_allclose(_ref("act_forward", X, ACTIVATIONS[act], alpha), expected, rtol=1e-12, atol=1e-15)
    b = np.linspace(-1, 1, len(XS))                         # bias_act: act(Z + b), b broadcast over rows
    Z = np.array([XS, XS]) - b
    np.testing.assert_allclose(_ref("bias_act", Z, b, ACTIVATIONS[act], alpha), [[FORWARD[act](x, alpha) for x in
                               (Z[0] + b)]] * 2, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("alpha", ALPHAS)
def test_backward_is_the_derivative(act, alpha):
    saved = [x if act in FROM_INPUT else FORWARD[act](x, alpha) for x in XS]
    dY = np.linspace(0.5, 1.5, len(XS))[None, :]
    expected = dY * np.array([[DERIVATIVE[act](x, alpha) for x in XS]])
    Y = np.array([saved])
    np.testing.assert_allclose(_ref("act_backward", dY, Y, ACTIVATIONS[act], alpha), expected, rtol=1e-9, atol=1e-15)
    dZ, db = np.empty((2, len(XS))), np.empty(len(XS))
    _ref("act_backward_bias", np.vstack([dY, 2 * dY]), np.vstack([Y, Y]), ACTIVATIONS[act], alpha, dZ, db)
    np.testing.assert_allclose(dZ, np.vstack([expected, 2 * expected]), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(db, 3 * expected[0], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_magnitudes_saturate_without_overflow(dtype):
    """sigmoid, silu, elu and softplus at ±1000: the limits, exactly, with no overflow on the way."""
    X = np.array([[-1000.0, 1000.0]], dtype)
    a = ACTIVATIONS
    assert _ref("act_forward", X, a["sigmoid"]).tolist() == [[0.0, 1.0]]
    assert _ref("act_forward", X, a["silu"]).tolist() == [[-0.0, 1000.0]]
    assert _ref("act_forward", X, a["elu"], 0.5).tolist() == [[-0.5, 1000.0]]
    assert _ref("act_forward", X, a["softplus"], 2.0).tolist() == [[0.0, 1000.0]]
    assert _ref("act_forward", X, a["gelu"]).tolist() == [[-0.0, 1000.0]]
    assert _ref("act_forward", X, a["gelu_tanh"]).tolist() == [[-0.0, 1000.0]]
    assert _ref("act_backward", np.ones_like(X), X, a["silu"]).tolist() == [[0.0, 1.0]]
    assert _ref("act_forward", X, a["sigmoid"]).dtype == dtype


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh", "silu", "sigmoid", "softplus", "elu"])
def test_float32_is_rounded_from_the_exact_value(act):
    """float32 in, float32 out, computed in float32: within a few float32 roundings of the formula
    (absolute: 1 + erf(x) cancels near x = -3)."""
    xs = np.array([XS], np.float32)
    out = _ref("act_forward", xs, ACTIVATIONS[act], 0.7)
    assert out.dtype == np.float32
    exact = [FORWARD[act](float(x), 0.7) for x in xs[0]]
    np.testing.assert_allclose(out[0], exact, rtol=1e-6, atol=2e-7)


def test_gelu_in_float64_keeps_float64_precision():
    """erf is not rounded through float32 on the way (a float64 input gets erf to 1e-16)."""
    x = np.array([[0.1234567890123, -2.345678901234, 1.0 / 3]])
    np.testing.assert_allclose(_ref("act_forward", x, ACTIVATIONS["gelu"]), [[FORWARD["gelu"](v, 0) for v in x[0]]],
                               rtol=1e-15)
    np.testing.assert_allclose(_ref("act_backward", np.ones_like(x), x, ACTIVATIONS["gelu"]),
                               [[DERIVATIVE["gelu"](v, 0) for v in x[0]]], rtol=1e-14)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_nan_in_nan_out(act):
    """NaN propagates through every activation and every derivative (module docstring)."""
    X = np.array([[np.nan, 1.0]])
    with kernels.use("numpy"), np.errstate(all="ignore"):
        assert np.isnan(ops.act_forward(X, ACTIVATIONS[act], 0.5)[0, 0])
        g = ops.act_backward(np.ones_like(X), X, ACTIVATIONS[act], 0.5)
    assert np.isnan(g[0, 0]) or act == "identity"
    assert not np.isnan(g[0, 1])                              # only the NaN's own element


@pytest.mark.parametrize("op", ["act_forward", "act_backward"])
def test_unknown_activation_code_is_refused(op):
    X = np.ones((1, 2))
    args = (X,) if op == "act_forward" else (X, X)
    with kernels.use("numpy"), pytest.raises(ValueError, match="^unknown activation code 11$"):
        ops[op](*args, 11, 0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_helper_rounds_to_the_input_dtype(dtype):
    """_erf: math.erf per element in float64, rounded to the input's dtype (its docstring): float32 GELU
    multiplies float32 values."""
    from tinynn.kernels.reference.elementwise import _erf
    z = np.array([[0.5, -1.25], [2.0, 0.0]], dtype)
    e = _erf(z)
    assert e.dtype == dtype and e.shape == z.shape
    assert e.tolist() == [[float(dtype(math.erf(float(v)))) for v in row] for row in z]
