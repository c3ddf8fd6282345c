r"""Elementwise ops: activations (forward, backward, fused with bias), products, dropout.

Activation codes (kernels.config): 0 identity, 1 relu, 2 leaky_relu (slope ``alpha``), 3 sigmoid, 4 tanh,
5 exp (the log link's inverse: Poisson regression's output), 6 gelu (exact, erf), 7 gelu_tanh (tanh
approximation), 8 silu, 9 elu (``alpha``), 10 softplus (``alpha`` = beta):

    gelu(x)      = x Φ(x) = ½ x (1 + erf(x/√2))
    gelu_tanh(x) = ½ x (1 + tanh u),   u = √(2/π) (x + 0.044715 x³)
    silu(x)      = x σ(x)
    elu(x)       = x if x > 0 else α (eˣ - 1)                       (α > 0)
    softplus(x)  = log(1 + e^(βx)) / β = max(x, 0) + log1p(e^(-β|x|)) / β

Backward passes use the saved *output* Y, except for gelu, gelu_tanh and silu (``config.FROM_INPUT``), whose
derivative is no function of the output and which save their input X:

    relu'      = [Y > 0]
    leaky'     = 1 if Y > 0 else alpha        (alpha > 0 keeps the sign of X in Y)
    sigmoid'   = Y (1 - Y)
    tanh'      = 1 - Y²
    exp'       = Y
    elu'       = 1 if Y > 0 else Y + α        (α > 0 keeps the sign of X in Y)
    softplus'  = σ(βx) = 1 - e^(-βY) = -expm1(-βY)
    gelu'      = Φ(X) + X φ(X) = ½ (1 + erf(X/√2)) + X e^(-X²/2) / √(2π)
    gelu_tanh' = ½ (1 + tanh u) + ½ X (1 - tanh² u) √(2/π) (1 + 3 · 0.044715 X²)
    silu'      = σ(X) (1 + X (1 - σ(X)))

NaN propagates (see kernels/reference/__init__.py): relu(NaN) = NaN, and the piecewise derivatives
relu'(NaN) = leaky'(NaN) = NaN, so a NaN unit passes NaN back instead of a zero gradient.
"""
import math

import numpy as np


from ..config import ELU, EXP, GELU, GELU_TANH, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SILU, SOFTPLUS, TANH
from ..dispatch import define_op, same_as


def _act(Z, kind, alpha):
    if kind == IDENTITY:
        return Z
    if kind == RELU:
        return np.maximum(Z, 0)
    if kind == LEAKY_RELU:
        return np.where(Z > 0, Z, alpha * Z)
    if kind == SIGMOID:
        # 1/(1+e^-z) written so that neither branch overflows
        e = np.exp(-np.abs(Z))
        return np.where(Z >= 0, 1 / (1 + e), e / (1 + e))
    if kind == TANH:
        return np.tanh(Z)
    if kind == EXP:
        return np.exp(Z)
    if kind == GELU:
        return 0.5 * Z * (1 + _erf(Z * INV_SQRT2))
    if kind == GELU_TANH:
        return 0.5 * Z * (1 + np.tanh(SQRT_2_OVER_PI * (Z + GELU_C * Z * Z * Z)))
    if kind == SILU:
        return Z * _act(Z, SIGMOID, alpha)
    if kind == ELU:
        return np.where(Z > 0, Z, alpha * np.expm1(np.minimum(Z, 0)))     # minimum: no overflow in the unused branch
    if kind == SOFTPLUS:
        return np.maximum(Z, 0) + np.log1p(np.exp(-alpha * np.abs(Z))) / alpha
    raise ValueError(f"unknown activation code {kind}")


SQRT_2_OVER_PI = 0.7978845608028654        # √(2/π)
INV_SQRT2 = 0.7071067811865476             # 1/√2
INV_SQRT_2PI = 0.3989422804014327          # 1/√(2π)
GELU_C = 0.044715
_erf_obj = np.frompyfunc(math.erf, 1, 1)


def _erf(Z):
    """erf elementwise (NumPy has none): math.erf per element, in float64, rounded to Z's dtype."""
    return np.asarray(_erf_obj(np.asarray(Z, dtype=np.float64)), dtype=np.float64).astype(Z.dtype, copy=False)


def _nan_where(A, B):
    """B, with NaN wherever A is NaN (for piecewise-constant functions of A, which comparisons compute)."""
    return np.where(np.isnan(A), A, B)


def _act_grad(Y, kind, alpha):
    if kind == IDENTITY:
        return np.ones_like(Y)
    if kind == RELU:
        return _nan_where(Y, (Y > 0).astype(Y.dtype))
    if kind == LEAKY_RELU:
        return _nan_where(Y, np.where(Y > 0, 1, alpha).astype(Y.dtype))
    if kind == SIGMOID:
        return Y * (1 - Y)
    if kind == TANH:
        return 1 - Y * Y
    if kind == EXP:
        return Y.copy()
    if kind == ELU:
        return _nan_where(Y, np.where(Y > 0, 1, Y + alpha).astype(Y.dtype))
    if kind == SOFTPLUS:
        return -np.expm1(-alpha * Y)
    X = Y                                                             # the kinds below saved their input
    if kind == GELU:
        return 0.5 * (1 + _erf(X * INV_SQRT2)) + X * np.exp(-0.5 * X * X) * INV_SQRT_2PI
    if kind == GELU_TANH:
        t = np.tanh(SQRT_2_OVER_PI * (X + GELU_C * X * X * X))
        return 0.5 * (1 + t) + 0.5 * X * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_C * X * X)
    if kind == SILU:
        s = _act(X, SIGMOID, alpha)
        return s * (1 + X * (1 - s))
    raise ValueError(f"unknown activation code {kind}")


@define_op(alloc=same_as("X"))
def act_forward(X, kind, alpha=0.0, out=None):
    """out = act(X)."""
    out[...] = _act(X, kind, alpha)
    return out


@define_op(alloc=same_as("Z"))
def bias_act(Z, b, kind, alpha=0.0, out=None):
    """out = act(Z + b), b broadcast over the rows (out may be Z itself)."""
    out[...] = _act(Z + b, kind, alpha)
    return out


@define_op(alloc=same_as("dY"))
def act_backward(dY, Y, kind, alpha=0.0, out=None):
    """out = dY ⊙ act'(Y)   (Y is the saved forward output; the input X for the kinds in config.FROM_INPUT)."""
    out[...] = dY * _act_grad(Y, kind, alpha)
    return out


@define_op
def act_backward_bias(dY, Y, kind, alpha, dZ, db):
    """Fused: dZ = dY ⊙ act'(Y) and db = Σ_rows dZ (the bias gradient of the Linear before it)."""
    dZ[...] = dY * _act_grad(Y, kind, alpha)
    db[...] = dZ.sum(axis=0)
    return dZ


@define_op(alloc=same_as("X"))
def mul(X, M, out=None):
    """out = X ⊙ M (dropout forward and backward with a scaled mask)."""
    np.multiply(X, M, out=out)
    return out


@define_op(alloc=same_as("U"))
def dropout_mask(U, p, out=None):
    """Inverted-dropout mask from uniforms U ∈ [0, 1): out = [U >= p] / (1 - p)   (NaN where U is NaN)."""
    out[...] = _nan_where(U, (U >= p) * (1.0 / (1.0 - p)))
    return out


@define_op
def scale(X, a):
    """X *= a in place (gradient clipping)."""
    X *= a
    return X


@define_op
def accumulate(X, Y):
    """X += Y in place (sums of gradients over micro-batches; a correction added to a gradient)."""
    X += Y
    return X


@define_op
def lerp(R, X, m, c):
    """R = (1 - m) R + m c X in place (running statistics: c = 1 for the mean, n/(n-1) for the variance)."""
    R[...] = (1 - m) * R + m * c * X
    return R


@define_op(alloc=lambda W, idx, **_: ((idx.shape[0], W.shape[1]), W.dtype))
def embedding_gather(W, idx, out=None):
    """out[i] = W[idx[i]]   (indices already validated to lie in [0, len(W)))."""
    np.take(W, idx, axis=0, out=out)
    return out


@define_op
def embedding_scatter(dY, idx, dW):
    """dW = 0, then dW[idx[i]] += dY[i] for every i (repeated indices add up)."""
    dW[...] = 0
    np.add.at(dW, idx, dY)
    return dW


@define_op
def fill(X, value):
    """X[...] = value in place (zeroing gradients and optimizer state)."""
    X[...] = value
    return X


@define_op
def add_l2(W, G, a):
    """G += a W in place and return Σ W² (the L2 penalty's gradient and value in one pass)."""
    G += a * W
    return float(np.vdot(W, W))
