r"""Loss kernels: per-row loss values and their gradients with respect to the predictions or logits.

Softmax cross-entropy through log-sum-exp, so that logits like ±1000 give exact finite values:

    m_i = max_j z_ij,   lse_i = m_i + log Σ_j exp(z_ij - m_i),   p_ij = exp(z_ij - lse_i),
    loss_i = lse_i - z_{i, y_i} = log Σ_j exp(z_ij - m_i) - (z_{i, y_i} - m_i),   ∂loss_i/∂z_ij = p_ij - [j = y_i]

(the loss from the shifted logits: lse_i - z_{i, y_i} would lose the digits of log Σ to m_i's magnitude, 1e-4
in float32 at logits of 2000.)

Sigmoid cross-entropy on logits, in the form that neither overflows nor loses precision:

    loss_i = Σ_j max(z_ij, 0) + log(1 + e^{-|z_ij|}) - t_ij z_ij,      ∂loss_i/∂z_ij = σ(z_ij) - t_ij

Squared error: loss_i = Σ_j (p_ij - t_ij)²; its gradient (and sigmoid cross-entropy's) is w_i (p - t).

A NaN logit makes its whole row NaN (P and the loss): the row max and the row sum both see it.
"""
import numpy as np

from ..dispatch import define_op, same_as


@define_op
def softmax_xent(Z, y, P, loss):
    """P = softmax(Z) row-wise and loss[i] = lse(Z[i]) - Z[i, y[i]] (labels already validated)."""
    m = Z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(Z - m).sum(axis=1, keepdims=True))
    P[...] = np.exp(Z - m - log_sum)
    loss[...] = log_sum[:, 0] - (Z[np.arange(Z.shape[0]), y] - m[:, 0])
    return loss


@define_op(alloc=same_as("P"))
def softmax_xent_backward(P, y, w, out=None):
    """out[i, j] = w[i] (P[i, j] - [j = y[i]])   (w = 1/n for the batch mean, or per-row weights)."""
    out[...] = P
    out[np.arange(P.shape[0]), y] -= 1
    out *= w[:, None]
    return out


@define_op
def sigmoid_xent(Z, T, P, loss):
    """P = σ(Z); loss[i] = Σ_j softplus(z) - t z   (= -t log p - (1-t) log(1-p), stable form)."""
    e = np.exp(-np.abs(Z))
    P[...] = np.where(Z >= 0, 1 / (1 + e), e / (1 + e))
    loss[...] = (np.maximum(Z, 0) + np.log1p(e) - T * Z).sum(axis=1)
    return loss


@define_op(alloc=lambda P, **_: ((P.shape[0],), P.dtype))
def sq_err_rows(P, T, out=None):
    """out[i] = Σ_j (P[i, j] - T[i, j])²."""
    np.sum((P - T) ** 2, axis=1, out=out)
    return out


@define_op(alloc=same_as("P"))
def diff_backward(P, T, w, out=None):
    """out[i, j] = w[i] (P[i, j] - T[i, j]): the gradient of MSE (w = 2/N) and of sigmoid + binary
    cross-entropy w.r.t. the logits (w = 1/n), with per-row weights folded into w."""
    out[...] = w[:, None] * (P - T)
    return out


def _rho(R, kind, delta):
    if kind == 0:
        return np.abs(R)
    a = np.abs(R)
    return np.where(a < delta, 0.5 * R * R, delta * (a - 0.5 * delta))


@define_op(alloc=lambda P, **_: ((P.shape[0],), P.dtype))
def robust_rows(P, T, kind, delta, out=None):
    """out[i] = Σ_j ρ(P[i, j] - T[i, j]): kind 0 (config.L1) ρ(r) = |r|; kind 1 (config.HUBER)
    ρ(r) = ½ r² where |r| < δ, δ (|r| - ½ δ) elsewhere (torch's huber_loss)."""
    np.sum(_rho(P - T, kind, delta), axis=1, out=out)
    return out


@define_op(alloc=same_as("P"))
def robust_backward(P, T, w, kind, delta, out=None):
    """out[i, j] = w[i] ψ(P[i, j] - T[i, j]), ψ = ρ': sign(r) (0 at 0) for L1, clip(r, -δ, δ) for Huber; NaN at NaN."""
    R = P - T
    out[...] = w[:, None] * (np.sign(R) if kind == 0 else np.where(np.isnan(R), R, np.clip(R, -delta, delta)))
    return out


@define_op
def poisson_loss(Z, T, P, loss):
    """Half the Poisson deviance on the log link, Z = log ŷ (sklearn's poisson_loss):
    P = e^Z;  loss[i] = Σ_j t log t - t z - t + e^z   (t log t = 0 at t = 0); its gradient w.r.t. Z is
    P - T (diff_backward)."""
    P[...] = np.exp(Z)
    tlogt = np.where(T > 0, T * np.log(np.where(T > 0, T, 1)), 0)
    loss[...] = (tlogt - T * Z - T + P).sum(axis=1)
    return loss
