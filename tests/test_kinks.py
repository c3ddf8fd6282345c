"""Every backend against the NumPy reference where kernels are easiest to get wrong: at the kinks (an
activation's input or saved output exactly 0, a residual exactly at Huber's delta or at 0, ties for the row
maximum, constant rows under normalization, zero gradients in the optimizers) and at large magnitudes (logits
of thousands, activations past exp's overflow, gradients of 1e4).

The parity tests of test_kernels.py draw uniform inputs, where none of this happens: a ReLU whose gradient at
0 was 1 instead of 0 in the CPU kernel passed all of them (issue 30). Same runner, tolerances and targets.
"""
import os

import numpy as np
import pytest

from tinynn.kernels.config import ACTIVATIONS, HUBER, L1
from tests.kernel_cases import ALPHAS, _a, _labels
from tests.test_kernels import REFERENCE, SIM, TOL, UNDER_TEST, assert_same, run_case

UNCOMPILED = os.environ.get("NUMBA_DISABLE_JIT") == "1"
BIG = {np.float32: (1e4, 88.0, 89.0, 300.0), np.float64: (1e4, 709.0, 710.0, 800.0)}   # exp overflows past 88/709


def _kinked(rng, dt, n, d):
    """Uniform values with a third set to exactly 0 (and -0.0), and the dtype's large magnitudes mixed in."""
    X = _a(rng, dt, n, d)
    X[rng.random((n, d)) < 0.3] = 0
    X.reshape(-1)[::7] = -0.0
    big = np.array([s * b for b in BIG[dt] for s in (1, -1)], dt)
    X.reshape(-1)[1::5] = rng.choice(big, X.reshape(-1)[1::5].shape)
    return X


def _acts():
    return [(kind, ALPHAS.get(name, 0.0)) for name, kind in ACTIVATIONS.items()]


def act_forward(rng, dt, n, d):
    return [((_kinked(rng, dt, n, d), kind, alpha), dict(out=np.empty((n, d), dt))) for kind, alpha in _acts()]


def bias_act(rng, dt, n, d):
    X, b = _a(rng, dt, n, d), _a(rng, dt, d)
    X[::2] = -b                                       # X + b exactly 0 on every other row
    return [((X, b, kind, alpha), dict(out=np.empty((n, d), dt))) for kind, alpha in _acts()]


def act_backward(rng, dt, n, d):
    Y = _a(rng, dt, n, d, lo=-0.9, hi=0.9)
    Y[rng.random((n, d)) < 0.4] = 0                   # the saved output of a ReLU is 0 for every negative input
    return [((_a(rng, dt, n, d), Y, kind, alpha), dict(out=np.empty((n, d), dt))) for kind, alpha in _acts()]


def act_backward_bias(rng, dt, n, d):
    (dY, Y, kind, alpha), _ = act_backward(rng, dt, n, d)[0]
    return [((dY, Y, kind, alpha, np.empty((n, d), dt), np.empty(d, dt)), {}) for kind, alpha in _acts()]


def _tied(rng, dt, n, d):
    """Rows whose maximum occurs twice or more (all of row 0 equal), at moderate and large scale."""
    X = np.round(_a(rng, dt, n, d))                   # few distinct values: ties everywhere
    X[0] = 2
    if d > 2:
        X[:, d - 1] = X[:, :d - 1].max(axis=1)         # the last column ties the maximum of every row
    return X


def argmax_rows(rng, dt, n, d):
    return [((_tied(rng, dt, n, d),), dict(out=np.empty(n, np.int64)))]


def softmax_rows(rng, dt, n, d):
    return [((_tied(rng, dt, n, d) * s,), dict(out=np.empty((n, d), dt))) for s in (1, 1000)]


def softmax_xent(rng, dt, n, d):
    return [((_tied(rng, dt, n, d) * s, _labels(rng, n, d), np.empty((n, d), dt), np.empty(n, dt)), {})
            for s in (1, 1000)]


def sigmoid_xent(rng, dt, n, d):
    T = rng.integers(0, 2, (n, d)).astype(dt)
    return [((_kinked(rng, dt, n, d), T, np.empty((n, d), dt), np.empty(n, dt)), {})]


def poisson_loss(rng, dt, n, d):
    Z = _a(rng, dt, n, d) * 20                        # rates from e^-60 to e^60 (float32 overflows past 88)
    Z[rng.random((n, d)) < 0.3] = 0
    return [((Z, rng.poisson(2.0, (n, d)).astype(dt), np.empty((n, d), dt), np.empty(n, dt)), {})]


def _at_delta(rng, dt, n, d, delta):
    """Targets with residuals of exactly 0, +delta and -delta (integer-valued: exact in every dtype)."""
    P = np.round(_a(rng, dt, n, d) * 4)
    T = P - rng.choice(np.array([0, delta, -delta, 3], dt), (n, d))
    return P, T


def robust_rows(rng, dt, n, d):
    return [((*_at_delta(rng, dt, n, d, delta), kind, delta), dict(out=np.empty(n, dt)))
            for kind, delta in ((L1, 0.0), (HUBER, 1.0), (HUBER, 2.0))]


def robust_backward(rng, dt, n, d):
    return [((*_at_delta(rng, dt, n, d, delta), _a(rng, dt, n), kind, delta), dict(out=np.empty((n, d), dt)))
            for kind, delta in ((L1, 0.0), (HUBER, 1.0), (HUBER, 2.0))]


def sq_err_rows(rng, dt, n, d):
    return [((_a(rng, dt, n, d) * 1e4, _a(rng, dt, n, d) * 1e4), dict(out=np.empty(n, dt)))]


def layernorm_forward(rng, dt, n, d):
    X = _a(rng, dt, n, d)
    X[0] = 1.5                                        # a constant row: variance 0, only eps in the root
    X[-1] *= 1e4
    return [((X, _a(rng, dt, d), _a(rng, dt, d), 1e-5, np.empty((n, d), dt), np.empty((n, d), dt),
              np.empty(n, dt)), {})]


def batchnorm_forward(rng, dt, n, d):
    X = _a(rng, dt, n, d)
    X[:, 0] = -2.0                                    # a constant feature: variance 0
    return [((X, _a(rng, dt, d), _a(rng, dt, d), 1e-5, np.empty((n, d), dt), np.empty((n, d), dt),
              np.empty(d, dt), np.empty(d, dt), np.empty(d, dt)), {})]


def _grads(rng, dt, m):
    g = _a(rng, dt, m)
    g[rng.random(m) < 0.3] = 0                        # parameters without gradient this step
    g[1::6] *= 1e4
    return g


def _state(rng, dt, m, k):
    return [_a(rng, dt, m, lo=0.01, hi=1) for _ in range(k)]


def sgd_update(rng, dt, n, d):
    m = n * d
    return [((_a(rng, dt, m), _grads(rng, dt, m), *_state(rng, dt, m, 1), 0.1, mom, damp, wd, nest, first), {})
            for mom, damp, wd, nest, first in [(0.9, 0.1, 0.01, True, False), (0.9, 0.5, 0.0, False, True)]]


def adam_update(rng, dt, n, d):
    m = n * d
    return [((_a(rng, dt, m), _grads(rng, dt, m), *_state(rng, dt, m, 3), 1e-3, 0.9, 0.999, 1e-8, wd, 0.19, 0.002,
              ams, dec), {}) for wd, ams, dec in [(0.0, False, False), (0.1, True, True)]]


def adagrad_update(rng, dt, n, d):
    m = n * d
    return [((_a(rng, dt, m), _grads(rng, dt, m), *_state(rng, dt, m, 1), 0.05, 0.0, 1e-10), {})]


def rmsprop_update(rng, dt, n, d):
    m = n * d
    gavg = _a(rng, dt, m, lo=-0.05, hi=0.05)
    p, g, (sq, buf) = _a(rng, dt, m), _grads(rng, dt, m), _state(rng, dt, m, 2)
    return [((p, g, sq, gavg, buf, 0.01, 0.99, 1e-8, 0.0, 0.9, True), {})]


EDGE_CASES = {name: fn for name, fn in dict(globals()).items() if not name.startswith("_") and callable(fn)
              and getattr(fn, "__module__", None) == __name__}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
@pytest.mark.parametrize("target,dtype", [
    pytest.param(t, dt, marks=t.marks, id=f"{t.name}-{np.dtype(dt).name}") for t in UNDER_TEST for dt in t.dtypes])
def test_edges_match_reference(name, target, dtype):
    for n, d in ((1, 1), (6, 5), (17, 9)):
        for args, kwargs in EDGE_CASES[name](np.random.default_rng(n * 31 + d), dtype, n, d):
            if (SIM and not target.host) or (UNCOMPILED and target.name == "cpu"):
                # the simulator (and NUMBA_DISABLE_JIT, as the mutation runs use) runs math.exp in Python, which
                # raises OverflowError where compiled code gives inf: there, magnitudes stay below exp's overflow
                args = [np.clip(a, -80, 80) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]
            with np.errstate(all="ignore"):
                ref = run_case(name, REFERENCE, args, kwargs)
            assert_same(name, target, run_case(name, target, args, kwargs), ref, dtype, f" at {n}x{d} (edges)")


def test_edge_inputs_reach_the_edges():
    """The builders do produce what they claim (a test of the test): exact zeros, ties and overflow."""
    rng = np.random.default_rng(0)
    X = _kinked(rng, np.float32, 17, 9)
    assert (X == 0).sum() > 10 and (np.abs(X) > 88).sum() > 5
    T = _tied(rng, np.float64, 17, 9)
    assert all((row == row.max()).sum() >= 2 for row in T)
    P, T = _at_delta(rng, np.float64, 17, 9, 1.0)
    assert {0.0, 1.0, -1.0} <= set(np.unique(P - T))


def test_reference_relu_gradient_at_zero_is_zero():
    """The convention the backends are held to: act'(0) of ReLU is 0 (torch's), leaky ReLU's is its slope."""
    from tinynn.kernels import ops
    Y = np.array([[0.0, 0.5, -0.5]])
    out = np.empty_like(Y)
    with_ref = ops["act_backward"]
    from tinynn import kernels
    with kernels.use("numpy"):
        np.testing.assert_array_equal(with_ref(np.ones_like(Y), Y, ACTIVATIONS["relu"], 0.0, out=out), [[0, 1, 0]])
        np.testing.assert_array_equal(with_ref(np.ones_like(Y), Y, ACTIVATIONS["leaky_relu"], 0.1, out=out),
                                      [[0.1, 1, 0.1]])
