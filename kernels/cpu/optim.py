"""Numba twins of kernels/reference/optim.py: one serial, vectorised pass over the flat parameter buffer per
step (``_jit.kernel``: why serial, and why error_model="numpy"). Scalars are cast to the arrays' dtype so
float32 models compute in float32.
"""
import math

import numpy as np

from ..dispatch import ops
from ._jit import inline, kernel


@inline
def ftz(x, tiny):
    """Flush a subnormal state value to zero. Moment estimates of parameters whose gradient stays 0 (MNIST's
    border pixels: a fifth of the first layer) decay geometrically into the subnormal range, where each
    operation costs ~100x: Adam took 2 ms instead of 0.13 ms per step. Values below ``tiny`` (the smallest
    normal float, 1.2e-38 in float32) contribute < 1e-30·lr to any update, so results are unchanged."""
    return x if abs(x) >= tiny else x - x


@inline
def square(d, root_tiny):
    """d², or 0 when d² would underflow (|d| < √tiny): computing a subnormal product is itself the slow
    path. A tenth of a trained MNIST model's gradients are below 1e-19 (L2-decayed weights of pixels that
    are always 0), and Adam slowed from 0.16 to 0.21 ms per step on them."""
    return d * d if abs(d) >= root_tiny else d - d


@kernel
def _sgd(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    T = p.dtype.type
    lr_, mu, damp, wd_, tiny = T(lr), T(momentum), T(1 - dampening), T(wd), T(np.finfo(p.dtype).tiny)
    for i in range(p.size):
        d = g[i] + wd_ * p[i] if wd != 0 else g[i]           # d = g + λθ (no 0·θ: a NaN θ stays out of b)
        if momentum != 0:
            b = ftz(d if first else mu * buf[i] + damp * d, tiny)   # b = d (first step) or μb + (1-τ)d
            buf[i] = b
            d = d + mu * b if nesterov else b
        p[i] -= lr_ * d


@kernel
def _momentum(p, g, u, lr, beta, corr, nesterov):
    T = p.dtype.type
    step, b, c, tiny = T(lr * corr), T(beta), T(1 - beta), T(np.finfo(p.dtype).tiny)
    for i in range(p.size):
        ui = ftz(b * u[i] + c * g[i], tiny)                   # u = βu + (1-β)g
        u[i] = ui
        p[i] -= step * (b * ui + c * g[i]) if nesterov else step * ui


@kernel
def _adagrad(p, g, s, clr, wd, eps):
    T = p.dtype.type
    clr_, wd_, eps_ = T(clr), T(wd), T(eps)
    root_tiny = T(math.sqrt(np.finfo(p.dtype).tiny))
    for i in range(p.size):
        d = g[i] + wd_ * p[i]
        si = s[i] + square(d, root_tiny)                      # s += d²
        s[i] = si
        p[i] -= clr_ * d / (np.sqrt(si) + eps_)


@kernel
def _rmsprop(p, g, sq, gavg, buf, lr, alpha, eps, wd, momentum, centered):
    T = p.dtype.type
    lr_, a, c, eps_, wd_, mu = T(lr), T(alpha), T(1 - alpha), T(eps), T(wd), T(momentum)
    tiny = T(np.finfo(p.dtype).tiny)
    root_tiny = T(math.sqrt(np.finfo(p.dtype).tiny))
    for i in range(p.size):
        d = g[i] + wd_ * p[i]
        s = ftz(a * sq[i] + c * square(d, root_tiny), tiny)   # v = αv + (1-α)d²
        sq[i] = s
        if centered:
            ga = ftz(a * gavg[i] + c * d, tiny)
            gavg[i] = ga
            s = s - ga * ga
        avg = np.sqrt(s) + eps_
        if momentum > 0:
            b = ftz(mu * buf[i] + d / avg, tiny)
            buf[i] = b
            p[i] -= lr_ * b
        else:
            p[i] -= lr_ * d / avg


@inline
def _adam_moments(p, g, m, v, i, b1, b2, c1, c2, decay, wd, decoupled, tiny, root_tiny):
    """Element i of an Adam step up to the update: stores m and v, returns (θ after decay, m, v)."""
    pi = p[i] * decay                                         # AdamW: θ *= 1 - ηλ
    d = g[i] if decoupled else g[i] + wd * pi                 # Adam:  d = g + λθ (AdamW: no 0·θ term)
    mi = ftz(b1 * m[i] + c1 * d, tiny)                        # m = β₁m + (1-β₁)d
    vi = ftz(b2 * v[i] + c2 * square(d, root_tiny), tiny)     # v = β₂v + (1-β₂)d²
    m[i] = mi
    v[i] = vi
    return pi, mi, vi


@kernel
def _adam(p, g, m, v, step, isbc2, b1, b2, c1, c2, eps, decay, wd, tiny, root_tiny):
    # Constants arrive cast to the arrays' dtype (``adam_update``): a float64 scalar would make a float32 loop
    # float64, and np.finfo inside the kernel cost a tenth of a second of compilation. Adam and AdamW are two
    # kernels (the constant ``decoupled`` folds away): each compiles one loop instead of two.
    for i in range(p.size):
        pi, mi, vi = _adam_moments(p, g, m, v, i, b1, b2, c1, c2, decay, wd, False, tiny, root_tiny)
        p[i] = pi - step * mi / (np.sqrt(vi) * isbc2 + eps)


@kernel
def _adamw(p, g, m, v, step, isbc2, b1, b2, c1, c2, eps, decay, wd, tiny, root_tiny):
    for i in range(p.size):
        pi, mi, vi = _adam_moments(p, g, m, v, i, b1, b2, c1, c2, decay, wd, True, tiny, root_tiny)
        p[i] = pi - step * mi / (np.sqrt(vi) * isbc2 + eps)


@kernel
def _adam_amsgrad(p, g, m, v, vmax, step, isbc2, b1, b2, c1, c2, eps, decay, wd, decoupled, tiny, root_tiny):
    # _adam with the running maximum of v (its own kernel: the plain Adam compiles without this branch).
    for i in range(p.size):
        pi, mi, vi = _adam_moments(p, g, m, v, i, b1, b2, c1, c2, decay, wd, decoupled, tiny, root_tiny)
        vm = vmax[i]
        vi = vi if vi > vm or vi != vi else vm                # np.maximum: a NaN on either side wins
        vmax[i] = vi
        p[i] = pi - step * mi / (np.sqrt(vi) * isbc2 + eps)


def _flat(*arrays):
    return [a.reshape(-1) for a in arrays]


@ops.sgd_update.register("cpu")
def sgd_update(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    _sgd(*_flat(p, g, buf), lr, momentum, dampening, wd, bool(nesterov), bool(first))
    return p


@ops.momentum_update.register("cpu")
def momentum_update(p, g, u, lr, beta, corr, nesterov):
    _momentum(*_flat(p, g, u), lr, beta, corr, bool(nesterov))
    return p


@ops.adagrad_update.register("cpu")
def adagrad_update(p, g, s, clr, wd, eps):
    _adagrad(*_flat(p, g, s), clr, wd, eps)
    return p


@ops.rmsprop_update.register("cpu")
def rmsprop_update(p, g, sq, gavg, buf, lr, alpha, eps, wd, momentum, centered):
    _rmsprop(*_flat(p, g, sq, gavg, buf), lr, alpha, eps, wd, momentum, bool(centered))
    return p


_adam_consts = {}


def _adam_step_constants(dtype, lr, b1, b2, eps, wd, decoupled):
    """The step-invariant constants of an Adam step in the arrays' dtype, cached by their inputs (building
    eleven NumPy scalars took 3 of the 4 µs of a small model's optimizer call)."""
    key = (dtype, lr, b1, b2, eps, wd, decoupled)
    c = _adam_consts.get(key)
    if c is None:
        T = dtype.type
        tiny = np.finfo(dtype).tiny
        c = _adam_consts[key] = (T(b1), T(b2), T(1 - b1), T(1 - b2), T(eps), T(1 - lr * wd if decoupled else 1),
                                 T(0 if decoupled else wd), T(tiny), T(math.sqrt(tiny)))
        if len(_adam_consts) > 64:                            # a schedule changing lr every step: stay bounded
            _adam_consts.clear()
            _adam_consts[key] = c
    return c


@ops.adam_update.register("cpu")
def adam_update(p, g, m, v, vmax, lr, b1, b2, eps, wd, bc1, bc2, amsgrad, decoupled):
    T = p.dtype.type
    *consts, tiny, root_tiny = _adam_step_constants(p.dtype, lr, b1, b2, eps, wd, bool(decoupled))
    step, isbc2 = T(lr / bc1), T(1 / math.sqrt(bc2))
    if amsgrad:
        _adam_amsgrad(*_flat(p, g, m, v, vmax), step, isbc2, *consts, bool(decoupled), tiny, root_tiny)
    else:
        (_adamw if decoupled else _adam)(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), step, isbc2,
                                         *consts, tiny, root_tiny)
    return p


@kernel
def _adadelta(p, g, sq, acc, lr, rho, eps, wd):
    T = p.dtype.type
    lr_, r, c, eps_, wd_ = T(lr), T(rho), T(1 - rho), T(eps), T(wd)
    tiny = T(np.finfo(p.dtype).tiny)
    root_tiny = T(math.sqrt(np.finfo(p.dtype).tiny))
    for i in range(p.size):
        d = g[i] + wd_ * p[i]                                 # d = g + λθ
        s = ftz(r * sq[i] + c * square(d, root_tiny), tiny)   # sq = ρ sq + (1-ρ) d²
        sq[i] = s
        delta = np.sqrt(acc[i] + eps_) / np.sqrt(s + eps_) * d   # δ = √(acc+ε)/√(sq+ε) · d
        acc[i] = ftz(r * acc[i] + c * square(delta, root_tiny), tiny)  # acc = ρ acc + (1-ρ) δ²
        p[i] -= lr_ * delta


@kernel
def _add_l1(w, g, a):
    a_ = g.dtype.type(a)
    zero = g.dtype.type(0)
    for i in range(w.size):
        wi = w[i]
        g[i] += a_ if wi > zero else (-a_ if wi < zero else (zero if wi == zero else wi))   # g += a sign(w);
        # sign(0) = 0, and a NaN w makes g NaN as np.sign(NaN) = NaN does


@kernel
def _l1_prox(w, t):
    t_ = w.dtype.type(t)
    zero = w.dtype.type(0)
    for i in range(w.size):
        wi = w[i]
        if wi > t_:                                           # w = sign(w) max(|w| - t, 0)
            w[i] = wi - t_
        elif wi < -t_:
            w[i] = wi + t_
        elif wi == wi:                                        # |w| <= t: exactly 0 (NaN stays NaN)
            w[i] = zero


@ops.adadelta_update.register("cpu")
def adadelta_update(p, g, sq, acc, lr, rho, eps, wd):
    _adadelta(*_flat(p, g, sq, acc), lr, rho, eps, wd)
    return p


@ops.add_l1.register("cpu")
def add_l1(W, G, a):
    _add_l1(*_flat(W, G), a)
    return G


@ops.l1_prox.register("cpu")
def l1_prox(W, t):
    _l1_prox(*_flat(W), t)
    return W
