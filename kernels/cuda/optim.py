"""CUDA twins of kernels/reference/optim.py: one grid-stride pass over the flat parameter buffer."""
import math

from numba import cuda

from ..dispatch import ops
from .launch import flat, kernel, launch


@kernel("{f}[::1], {f}[::1], {f}[::1], float64, float64, float64, float64, boolean, boolean")
def sgd_kernel(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        d = g[i] + wd * p[i] if wd != 0 else g[i]
        if momentum != 0:
            b = d if first else momentum * buf[i] + (1 - dampening) * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] -= lr * d


@kernel("{f}[::1], {f}[::1], {f}[::1], float64, float64, float64, boolean")
def momentum_kernel(p, g, u, lr, beta, corr, nesterov):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        ui = beta * u[i] + (1 - beta) * g[i]
        u[i] = ui
        p[i] -= lr * corr * ((beta * ui + (1 - beta) * g[i]) if nesterov else ui)


@kernel("{f}[::1], {f}[::1], {f}[::1], float64, float64, float64")
def adagrad_kernel(p, g, s, clr, wd, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        d = g[i] + wd * p[i]
        si = s[i] + d * d
        s[i] = si
        p[i] -= clr * d / (math.sqrt(si) + eps)


@kernel("{f}[::1], {f}[::1], {f}[::1], {f}[::1], {f}[::1], float64, float64, float64, float64, float64, boolean")
def rmsprop_kernel(p, g, sq, gavg, buf, lr, alpha, eps, wd, momentum, centered):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        d = g[i] + wd * p[i]
        s = alpha * sq[i] + (1 - alpha) * d * d
        sq[i] = s
        if centered:
            ga = alpha * gavg[i] + (1 - alpha) * d
            gavg[i] = ga
            s = s - ga * ga
        avg = math.sqrt(s) + eps
        if momentum > 0:
            b = momentum * buf[i] + d / avg
            buf[i] = b
            p[i] -= lr * b
        else:
            p[i] -= lr * d / avg


@kernel("{f}[::1], {f}[::1], {f}[::1], {f}[::1], {f}[::1], "
        "float64, float64, float64, float64, float64, float64, float64, boolean, boolean")
def adam_kernel(p, g, m, v, vmax, lr, b1, b2, eps, wd, bc1, bc2, amsgrad, decoupled):
    step = lr / bc1
    isbc2 = 1 / math.sqrt(bc2)
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        pi = p[i] * (1 - lr * wd) if decoupled else p[i]
        d = g[i] if decoupled else g[i] + wd * pi
        mi = b1 * m[i] + (1 - b1) * d
        vi = b2 * v[i] + (1 - b2) * d * d
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vm = vmax[i]
            vi = vi if vi > vm or vi != vi else vm            # np.maximum: a NaN on either side wins
            vmax[i] = vi
        p[i] = pi - step * mi / (math.sqrt(vi) * isbc2 + eps)


@ops.sgd_update.register("cuda")
def sgd_update(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    launch(sgd_kernel, p.size, flat(p), flat(g), flat(buf), float(lr), float(momentum), float(dampening), float(wd),
           bool(nesterov), bool(first))
    return p


@ops.momentum_update.register("cuda")
def momentum_update(p, g, u, lr, beta, corr, nesterov):
    launch(momentum_kernel, p.size, flat(p), flat(g), flat(u), float(lr), float(beta), float(corr), bool(nesterov))
    return p


@ops.adagrad_update.register("cuda")
def adagrad_update(p, g, s, clr, wd, eps):
    launch(adagrad_kernel, p.size, flat(p), flat(g), flat(s), float(clr), float(wd), float(eps))
    return p


@ops.rmsprop_update.register("cuda")
def rmsprop_update(p, g, sq, gavg, buf, lr, alpha, eps, wd, momentum, centered):
    launch(rmsprop_kernel, p.size, flat(p), flat(g), flat(sq), flat(gavg), flat(buf), float(lr), float(alpha),
           float(eps), float(wd), float(momentum), bool(centered))
    return p


@ops.adam_update.register("cuda")
def adam_update(p, g, m, v, vmax, lr, b1, b2, eps, wd, bc1, bc2, amsgrad, decoupled):
    launch(adam_kernel, p.size, flat(p), flat(g), flat(m), flat(v), flat(vmax), float(lr), float(b1),
           float(b2), float(eps), float(wd), float(bc1), float(bc2), bool(amsgrad), bool(decoupled))
    return p


@kernel("{f}[::1], {f}[::1], {f}[::1], {f}[::1], float64, float64, float64, float64")
def adadelta_kernel(p, g, sq, acc, lr, rho, eps, wd):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        d = g[i] + wd * p[i]
        s = rho * sq[i] + (1 - rho) * d * d
        sq[i] = s
        delta = math.sqrt(acc[i] + eps) / math.sqrt(s + eps) * d
        acc[i] = rho * acc[i] + (1 - rho) * delta * delta
        p[i] -= lr * delta


@kernel("{f}[::1], {f}[::1], float64")
def add_l1_kernel(w, g, a):
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        wi = w[i]
        if wi > 0:                                            # g += a sign(w), sign(0) = 0
            g[i] += a
        elif wi < 0:
            g[i] -= a
        elif wi != wi:                                        # sign(NaN) = NaN
            g[i] = wi


@kernel("{f}[::1], float64")
def l1_prox_kernel(w, t):
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        wi = w[i]
        if wi > t:
            w[i] = wi - t
        elif wi < -t:
            w[i] = wi + t
        elif wi == wi:
            w[i] = 0.0


@ops.adadelta_update.register("cuda")
def adadelta_update(p, g, sq, acc, lr, rho, eps, wd):
    launch(adadelta_kernel, p.size, flat(p), flat(g), flat(sq), flat(acc), float(lr), float(rho), float(eps), float(wd))
    return p


@ops.add_l1.register("cuda")
def add_l1(W, G, a):
    launch(add_l1_kernel, W.size, flat(W), flat(G), float(a))
    return G


@ops.l1_prox.register("cuda")
def l1_prox(W, t):
    launch(l1_prox_kernel, W.size, flat(W), float(t))
    return W
