"""Inputs for every op, for the parity tests (every backend): name -> builder(rng, dtype, n, d) -> a list of
(args, kwargs).

Array arguments are copied per backend; every array argument (in-place outputs included) and the return
value are compared with the NumPy reference afterwards. The NaN-propagation tests put a NaN into each
floating-point array argument in turn. The optimizer ops added with Adadelta and L1 keep their builders in
tests/optim_cases.py; CASES takes them in.
"""
import numpy as np

from tinynn.kernels.config import ACTIVATIONS
from tests.optim_cases import OPTIM_CASES
from tests.augment_cases import AUGMENT_CASES


def _a(rng, dtype, *shape, lo=-3, hi=3):
    return rng.uniform(lo, hi, shape).astype(dtype)


def _labels(rng, n, c):
    return rng.integers(0, c, n).astype(np.int64)


ALPHAS = {"leaky_relu": 0.1, "elu": 1.0, "softplus": 2.0}     # slope, ELU's alpha, Softplus' beta


def _act_cases():
    return [(kind, ALPHAS.get(name, 0.0)) for name, kind in ACTIVATIONS.items()]


def matmul(rng, dt, n, d):
    k = d + 2
    return [((_a(rng, dt, n, k), _a(rng, dt, k, d)), dict(out=np.empty((n, d), dt))),
            ((_a(rng, dt, k, n), _a(rng, dt, k, d)), dict(trans_a=True, out=np.empty((n, d), dt))),
            ((_a(rng, dt, n, k), _a(rng, dt, d, k)), dict(trans_b=True, out=np.empty((n, d), dt)))]


def act_forward(rng, dt, n, d):
    return [((_a(rng, dt, n, d), kind, alpha), dict(out=np.empty((n, d), dt))) for kind, alpha in _act_cases()]


def bias_act(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, d), kind, alpha), dict(out=np.empty((n, d), dt)))
            for kind, alpha in _act_cases()]


def act_backward(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, n, d, lo=-0.9, hi=0.9), kind, alpha), dict(out=np.empty((n, d), dt)))
            for kind, alpha in _act_cases()]


def act_backward_bias(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, n, d, lo=-0.9, hi=0.9), kind, alpha, np.empty((n, d), dt),
              np.empty(d, dt)), {}) for kind, alpha in _act_cases()]


def mul(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, n, d)), dict(out=np.empty((n, d), dt)))]


def dropout_mask(rng, dt, n, d):
    return [((_a(rng, dt, n, d, lo=0, hi=1), 0.3), dict(out=np.empty((n, d), dt)))]


def scale(rng, dt, n, d):
    return [((_a(rng, dt, n, d), -0.3), {})]


def lerp(rng, dt, n, d):
    return [((_a(rng, dt, d), _a(rng, dt, d), 0.1, 1.25), {})]


def embedding_gather(rng, dt, n, d):
    return [((_a(rng, dt, 5, d), rng.integers(0, 5, n).astype(np.int64)), dict(out=np.empty((n, d), dt)))]


def embedding_scatter(rng, dt, n, d):
    return [((_a(rng, dt, n, d), rng.integers(0, 3, n).astype(np.int64), _a(rng, dt, 3, d)), {})]


def sum_rows(rng, dt, n, d):
    return [((_a(rng, dt, n, d),), dict(out=np.empty(d, dt)))]


def sumsq(rng, dt, n, d):
    return [((_a(rng, dt, n, d),), {})]


def sq_err_rows(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, n, d)), dict(out=np.empty(n, dt)))]


def diff_backward(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, n, d), _a(rng, dt, n)), dict(out=np.empty((n, d), dt)))]


def robust_rows(rng, dt, n, d):
    P = _a(rng, dt, n, d)
    T = P.copy()
    T[:, 1:] = _a(rng, dt, n, d - 1) if d > 1 else T[:, 1:]               # column 0: r = 0 exactly (L1's kink)
    return [((P, T, kind, delta), dict(out=np.empty(n, dt))) for kind, delta in ((0, 0.0), (1, 1.0), (1, 0.3))]


def robust_backward(rng, dt, n, d):
    P = _a(rng, dt, n, d)
    T = P.copy()
    T[:, 1:] = _a(rng, dt, n, d - 1) if d > 1 else T[:, 1:]
    return [((P, T, _a(rng, dt, n), kind, delta), dict(out=np.empty((n, d), dt)))
            for kind, delta in ((0, 0.0), (1, 1.0), (1, 0.3))]


def argmax_rows(rng, dt, n, d):
    return [((_a(rng, dt, n, d),), dict(out=np.empty(n, np.int64)))]


def softmax_rows(rng, dt, n, d):
    return [((_a(rng, dt, n, d) * 10,), dict(out=np.empty((n, d), dt)))]


def softmax_xent(rng, dt, n, d):
    return [((_a(rng, dt, n, d) * 10, _labels(rng, n, d), np.empty((n, d), dt), np.empty(n, dt)), {})]


def softmax_xent_backward(rng, dt, n, d):
    return [((_a(rng, dt, n, d, lo=0, hi=1), _labels(rng, n, d), _a(rng, dt, n)), dict(out=np.empty((n, d), dt)))]


def sigmoid_xent(rng, dt, n, d):
    return [((_a(rng, dt, n, d) * 5, rng.integers(0, 2, (n, d)).astype(dt), np.empty((n, d), dt), np.empty(n, dt)), {})]


def poisson_loss(rng, dt, n, d):
    counts = rng.poisson(2.0, (n, d)).astype(dt)                  # zeros included: t log t = 0 there
    return [((_a(rng, dt, n, d) * 2, counts, np.empty((n, d), dt), np.empty(n, dt)), {})]


def batchnorm_forward(rng, dt, n, d):
    n = max(n, 2)
    return [((_a(rng, dt, n, d), _a(rng, dt, d), _a(rng, dt, d), 1e-5, np.empty((n, d), dt), np.empty((n, d), dt),
              np.empty(d, dt), np.empty(d, dt), np.empty(d, dt)), {})]


def batchnorm_eval(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, d), _a(rng, dt, d), _a(rng, dt, d), _a(rng, dt, d, lo=0.5, hi=2), 1e-5),
             dict(out=np.empty((n, d), dt)))]


def batchnorm_backward(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, n, d), _a(rng, dt, d), _a(rng, dt, d, lo=0.5, hi=2),
              np.empty((n, d), dt), np.empty(d, dt), np.empty(d, dt)), {})]


def layernorm_forward(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, d), _a(rng, dt, d), 1e-5, np.empty((n, d), dt), np.empty((n, d), dt),
              np.empty(n, dt)), {})]


def layernorm_backward(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, n, d), _a(rng, dt, d), _a(rng, dt, n, lo=0.5, hi=2),
              np.empty((n, d), dt), np.empty(d, dt), np.empty(d, dt)), {})]


def _opt_arrays(rng, dt, n, d, k):
    g = _a(rng, dt, n * d)
    return [_a(rng, dt, n * d), g] + [_a(rng, dt, n * d, lo=0.01, hi=1) for _ in range(k)]


def sgd_update(rng, dt, n, d):
    return [((*_opt_arrays(rng, dt, n, d, 1), 0.1, mom, damp, wd, nest, first), {})
            for mom, damp, wd, nest, first in [(0, 0, 0, False, True), (0.9, 0.1, 0.01, False, False),
                                               (0.9, 0, 0.01, True, False), (0.9, 0, 0, False, True),
                                               # the first step with dampening (torch: the buffer is d, undamped)
                                               (0.9, 0.5, 0.01, False, True), (0.9, 0.5, 0, True, True)]]


def momentum_update(rng, dt, n, d):
    return [((*_opt_arrays(rng, dt, n, d, 1), 0.1, 0.9, corr, nest), {}) for corr, nest in [(1.0, False), (5.0, True)]]


def adagrad_update(rng, dt, n, d):
    return [((*_opt_arrays(rng, dt, n, d, 1), 0.05, wd, 1e-10), {}) for wd in (0.0, 0.1)]


def rmsprop_update(rng, dt, n, d):
    cases = []
    for mom, centered, wd in [(0, False, 0), (0.9, True, 0.1), (0.5, False, 0)]:
        p, g, sq, buf = _opt_arrays(rng, dt, n, d, 2)
        gavg = _a(rng, dt, n * d, lo=-0.05, hi=0.05)  # |gavg|² < sq keeps the centered root real
        cases.append(((p, g, sq, gavg, buf, 0.01, 0.99, 1e-8, wd, mom, centered), {}))
    return cases


def adam_update(rng, dt, n, d):
    return [((*_opt_arrays(rng, dt, n, d, 3), 1e-3, 0.9, 0.999, 1e-8, wd, 0.19, 0.002, ams, dec), {})
            for wd, ams, dec in [(0.0, False, False), (0.1, True, False), (0.01, False, True)]]


def _csr(rng, dt, n, d, density=0.4):
    """A random CSR matrix (n, d) as (indptr, indices, data), int64 indices as tinynn.sparse.CSR makes them;
    some rows empty, some with every column."""
    mask = rng.random((n, d)) < density
    mask[rng.integers(n)] = True
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    indices = np.nonzero(mask)[1].astype(np.int64)
    return indptr, indices, _a(rng, dt, len(indices))


def spmm(rng, dt, n, d):
    m = d + 2
    return [((*_csr(rng, dt, n, m), _a(rng, dt, m, d)), dict(out=np.empty((n, d), dt)))]


def spmm_t(rng, dt, n, d):
    m = d + 2
    return [((*_csr(rng, dt, n, m), _a(rng, dt, n, d), _a(rng, dt, m, d)), {})]


def fill(rng, dt, n, d):
    return [((_a(rng, dt, n, d), 0.0), {}), ((_a(rng, dt, n, d), 2.5), {})]


def accumulate(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, n, d)), {})]


def add_l2(rng, dt, n, d):
    return [((_a(rng, dt, n, d), _a(rng, dt, n, d), 0.3), {})]


CASES = {name: fn for name, fn in globals().items() if not name.startswith("_") and callable(fn)
         and fn.__module__ == __name__}
CASES.update(OPTIM_CASES)
CASES.update(AUGMENT_CASES)
