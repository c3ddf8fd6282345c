r"""Elementwise ops: activations (forward, backward, fused with bias), products, dropout.

Activation codes (kernels.config): 0 identity, 1 relu, 2 leaky_relu (slope ``alpha``), 3 sigmoid, 4 tanh,
5 exp (the log link's inverse: Poisson regression's output).
Backward passes use the saved *output* Y, never the input:

    relu'      = [Y > 0]
    leaky'     = 1 if Y > 0 else alpha        (alpha > 0 keeps the sign of X in Y)
    sigmoid'   = Y (1 - Y)
    tanh'      = 1 - Y²
    exp'       = Y

NaN propagates (see kernels/reference/__init__.py): relu(NaN) = NaN, and the piecewise derivatives
relu'(NaN) = leaky'(NaN) = NaN, so a NaN unit passes NaN back instead of a zero gradient.
"""
import numpy as np

from ..config import EXP, IDENTITY, LEAKY_RELU, RELU, SIGMOID, TANH
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
    raise ValueError(f"unknown activation code {kind}")


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
    """out = dY ⊙ act'(Y)   (Y is the saved forward output)."""
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
