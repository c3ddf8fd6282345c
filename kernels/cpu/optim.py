"""Numba twins of kernels/reference/optim.py: one pass over the flat parameter buffer per step."""
import math

from ..dispatch import ops
from ._jit import kernel


@kernel
def _sgd(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    for i in range(p.size):
        d = g[i] + wd * p[i]
        if momentum != 0:
            if first:
                b = d
            else:
                b = momentum * buf[i] + (1 - dampening) * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] -= lr * d


@kernel
def _momentum(p, g, u, lr, beta, corr, nesterov):
    for i in range(p.size):
        ui = beta * u[i] + (1 - beta) * g[i]
        u[i] = ui
        if nesterov:
            p[i] -= lr * corr * (beta * ui + (1 - beta) * g[i])
        else:
            p[i] -= lr * corr * ui


@kernel
def _adagrad(p, g, s, clr, wd, eps):
    for i in range(p.size):
        d = g[i] + wd * p[i]
        si = s[i] + d * d
        s[i] = si
        p[i] -= clr * d / (math.sqrt(si) + eps)


@kernel
def _rmsprop(p, g, sq, gavg, buf, lr, alpha, eps, wd, momentum, centered):
    for i in range(p.size):
        d = g[i] + wd * p[i]
        s = alpha * sq[i] + (1 - alpha) * d * d
        sq[i] = s
        if centered:
            ga = alpha * gavg[i] + (1 - alpha) * d
            gavg[i] = ga
            avg = math.sqrt(s - ga * ga) + eps
        else:
            avg = math.sqrt(s) + eps
        if momentum > 0:
            b = momentum * buf[i] + d / avg
            buf[i] = b
            p[i] -= lr * b
        else:
            p[i] -= lr * d / avg


@kernel
def _adam(p, g, m, v, vmax, lr, b1, b2, eps, wd, bc1, bc2, amsgrad, decoupled):
    step = lr / bc1
    sbc2 = math.sqrt(bc2)
    for i in range(p.size):
        if decoupled:
            p[i] *= 1 - lr * wd
            d = g[i]
        else:
            d = g[i] + wd * p[i]
        mi = b1 * m[i] + (1 - b1) * d
        vi = b2 * v[i] + (1 - b2) * d * d
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = max(vmax[i], vi)
            vmax[i] = vi
        p[i] -= step * mi / (math.sqrt(vi) / sbc2 + eps)


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


@ops.adam_update.register("cpu")
def adam_update(p, g, m, v, vmax, lr, b1, b2, eps, wd, bc1, bc2, amsgrad, decoupled):
    _adam(*_flat(p, g, m, v, vmax), lr, b1, b2, eps, wd, bc1, bc2, bool(amsgrad), bool(decoupled))
    return p
