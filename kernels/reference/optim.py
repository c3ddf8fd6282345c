r"""Fused elementwise optimizer updates, in place on (flat) parameter, gradient and state arrays.

Each follows torch.optim's single-tensor update exactly (same eps placement, same weight-decay placement),
except ``momentum_update``, which is the lectures' exponential-moving-average form. Scalars that depend on
the step count (bias corrections, decayed learning rates) are computed by the optimizer on the host and
passed in, so the kernels stay stateless. ``add_l1`` and ``l1_prox`` are the L1 penalty's two forms (the
subgradient added to the gradient; the soft-thresholding proximal step), see tinynn.optim.
"""
import numpy as np

from ..dispatch import define_op


@define_op
def sgd_update(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    r"""torch.optim.SGD:  d = g + wd p;  buf = d (first step) or momentum buf + (1 - dampening) d;
    d = d + momentum buf (nesterov) or buf;  p -= lr d."""
    d = g + wd * p if wd != 0 else g.copy()
    if momentum != 0:
        if first:
            buf[...] = d
        else:
            buf[...] = momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf.copy()
    p -= lr * d
    return p


@define_op
def momentum_update(p, g, u, lr, beta, corr, nesterov):
    r"""Lectures' EMA momentum:  u = β u + (1-β) g;  p -= lr corr u   (corr = 1/(1-βᵗ) when unbiased).

    nesterov: p -= lr corr (β u + (1-β) g), where p holds the look-ahead point φ = θ - lr β u
    (equal to the gradient-at-look-ahead definition; see tinynn.optim.Momentum)."""
    u[...] = beta * u + (1 - beta) * g
    if nesterov:
        p -= lr * corr * (beta * u + (1 - beta) * g)
    else:
        p -= lr * corr * u
    return p


@define_op
def adagrad_update(p, g, s, clr, wd, eps):
    r"""torch.optim.Adagrad:  d = g + wd p;  s += d²;  p -= clr d / (√s + eps)."""
    d = g + wd * p
    s += d * d
    p -= clr * d / (np.sqrt(s) + eps)
    return p


@define_op
def rmsprop_update(p, g, sq, gavg, buf, lr, alpha, eps, wd, momentum, centered):
    r"""torch.optim.RMSprop:  d = g + wd p;  sq = α sq + (1-α) d²;
    avg = √(sq - gavg²) + eps with gavg = α gavg + (1-α) d (centered), else √sq + eps;
    buf = momentum buf + d/avg and p -= lr buf (momentum > 0), else p -= lr d/avg."""
    d = g + wd * p
    sq[...] = alpha * sq + (1 - alpha) * d * d
    if centered:
        gavg[...] = alpha * gavg + (1 - alpha) * d
        avg = np.sqrt(sq - gavg * gavg) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        buf[...] = momentum * buf + d / avg
        p -= lr * buf
    else:
        p -= lr * d / avg
    return p


@define_op
def adam_update(p, g, m, v, vmax, lr, b1, b2, eps, wd, bc1, bc2, amsgrad, decoupled):
    r"""torch.optim.Adam / AdamW:
    AdamW: p *= 1 - lr wd;  Adam: d = g + wd p  (else d = g)
    m = b1 m + (1-b1) d;   v = b2 v + (1-b2) d²;   vmax = max(vmax, v) (amsgrad)
    p -= (lr / bc1) m / (√v̂ / √bc2 + eps),  v̂ = vmax if amsgrad else v,  bc_k = 1 - b_kᵗ."""
    if decoupled:
        p *= 1 - lr * wd
        d = g
    else:
        d = g + wd * p
    m[...] = b1 * m + (1 - b1) * d
    v[...] = b2 * v + (1 - b2) * d * d
    if amsgrad:
        np.maximum(vmax, v, out=vmax)
        vh = vmax
    else:
        vh = v
    p -= (lr / bc1) * m / (np.sqrt(vh) / np.sqrt(bc2) + eps)
    return p


@define_op
def adadelta_update(p, g, sq, acc, lr, rho, eps, wd):
    r"""torch.optim.Adadelta (Zeiler 2012, with torch's learning rate on the step):
    d = g + wd p;   sq = ρ sq + (1-ρ) d²;   δ = √(acc + eps) / √(sq + eps) · d;
    acc = ρ acc + (1-ρ) δ²;   p -= lr δ."""
    d = g + wd * p
    sq[...] = rho * sq + (1 - rho) * d * d
    std = np.sqrt(sq + eps)
    delta = np.sqrt(acc + eps) / std * d
    acc[...] = rho * acc + (1 - rho) * delta * delta
    p -= lr * delta
    return p


@define_op
def add_l1(W, G, a):
    r"""Subgradient of the L1 penalty a Σ|W|, added in place:  G += a sign(W), with sign(0) = 0.

    No value is returned (unlike add_l2): the optimizer needs none, and on a GPU the sum would cost a
    device-to-host copy per step."""
    G += a * np.sign(W)
    return G


@define_op
def l1_prox(W, t):
    r"""Proximal step of t Σ|W| (soft thresholding), in place:  W = sign(W) max(|W| - t, 0).
    Every |W_i| <= t becomes exactly 0 (+0.0)."""
    W[...] = np.sign(W) * np.maximum(np.abs(W) - t, 0)
    W += 0.0                                              # -0.0 -> +0.0, as the compiled twins write
    return W
