r"""The loss landscape around a trained model: curvature, sharpness, and a 1-D slice.

tinynn has no graph autodiff, so every probe is built from the hand-derived gradient g(θ) = ∇L(θ) of the
model's flat parameter buffer (``model.flat.data`` / ``model.flat.grad``):

Hessian-vector product (central difference of two gradients; exact for a quadratic loss, O(h²) otherwise)

    H v ≈ (g(θ + h v) - g(θ - h v)) / 2h,     h = h_rel · max(1, ‖θ‖) / ‖v‖

    with h_rel = 1e-5 in float64 (truncation ~1e-10, rounding ~1e-11 relative) and 1e-3 in float32.

Top Hessian eigenvalue, by power iteration on H v:  v ← H v / ‖H v‖,  λ = vᵀ H v (Rayleigh quotient),
until |λ_k - λ_{k-1}| ≤ tol |λ_k|. Power iteration finds the eigenvalue of largest magnitude; if that is
negative (a saddle), a second run on H - λI gives the largest algebraic one, λ_max = μ + λ.

ε-sharpness (Keskar et al. 2017, "On large-batch training for deep learning: generalization gap and sharp
minima", metric 2.1 with A = I): the largest loss within the box C_ε = {δ : |δ_i| ≤ ε (|θ_i| + 1)},

    φ_ε = 100 · (max_{δ ∈ C_ε} L(θ + δ) - L(θ)) / (1 + L(θ)),

the maximum found by projected sign-gradient ascent (the steepest ascent direction of a box):
δ ← clip(δ + α b ⊙ sign(∇L(θ + δ)), -b, b), b = ε (|θ| + 1), from a random point of the box (from δ = 0
at an exact minimum, ∇L = 0 would never move); Keskar et al. used L-BFGS-B. Any ascent method gives a
lower bound of the true maximum. Since δ = 0 is a candidate, φ_ε ≥ 0.

1-D loss curve along a filter-normalised random direction (Li et al. 2018, "Visualizing the loss landscape
of neural nets"): d ~ N(0, I) shaped like θ, then every filter of d rescaled to the norm of the same filter
of θ, d_f ← d_f ‖θ_f‖ / ‖d_f‖, and L(θ + α d) for α in [-1, 1]. For a fully connected layer a filter is
one output unit: its incoming weights are a column of tinynn's W (in, out) (a row of torch's (out, in)),
which is what Li et al.'s code normalises. Biases and other 1-D parameters (BatchNorm/LayerNorm) get
d = 0: the paper's choice (``ignore='biasbn'``) for its plots. The filter normalisation removes the scale
invariance of ReLU nets, so the curves of two models can be compared by their width.

All probes evaluate the model in eval mode (dropout off, batch norm on running statistics), on all of
(X, y) in chunks of ``batch_size`` rows (the loss is a mean, so chunks are weighted by their size), and
leave the model exactly as they found it: parameters and gradients restored bit for bit, mode restored.
Frozen parameters (``requires_grad=False``) are never perturbed. Vectors are float64 NumPy arrays in the
layout of ``model.flat.data``. For float32 models the finite differences lose digits: measure a float64
copy (``build_mlp(..., dtype=np.float64)`` + ``load_state_dict``), as scripts/sharpness.py does.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from . import kernels
from .training import Trainer

__all__ = ["flat_gradient", "flat_loss", "hessian_vector_product", "top_hessian_eigenvalue", "EpsilonSharpness",
           "epsilon_sharpness", "filter_normalized_direction", "loss_curve"]


# --------------------------------------------------------------------------- the model as a function of θ
class _Probe:
    """θ ↦ L(θ), ∇L(θ) on a Sequential's flat buffer; restores parameters, gradients and mode on exit."""

    def __init__(self, model, loss, X, y, batch_size, who):
        flat = getattr(model, "flat", None)
        if flat is None or not hasattr(flat, "data") or not hasattr(model, "forward"):
            why = " without one (parameters of mixed dtype or device)" if hasattr(model, "forward") else ""
            raise TypeError(f"{who}: expected a tinynn Sequential whose parameters share one flat buffer "
                            f"(model.flat), got {type(model).__name__}{why}")
        if not callable(loss) or not hasattr(loss, "backward"):
            raise TypeError(f"{who}: expected a tinynn loss (e.g. tn.SoftmaxCrossEntropy()), got {type(loss).__name__}")
        if len(X) != len(y) or len(X) == 0:
            raise ValueError(f"{who}: X and y must hold the same positive number of rows, got {len(X)} and {len(y)}")
        if batch_size is None:
            batch_size = len(X)
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"{who}: batch_size must be a positive integer or None, got {batch_size!r}")
        self.model, self.loss, self.flat = model, loss, flat
        self.dtype = np.dtype(flat.data.dtype)
        self.chunks = [(X[s:s + batch_size], y[s:s + batch_size]) for s in range(0, len(X), int(batch_size))]
        self.n = len(X)
        mask = np.zeros(len(flat), bool)
        for p, (o, size) in zip(flat.params, flat.offsets):
            mask[o:o + size] = p.requires_grad
        self.mask = mask                                     # the coordinates that may move

    def __enter__(self):
        self.theta0 = np.array(kernels.to_host(self.flat.data), copy=True)
        self.grad0 = np.array(kernels.to_host(self.flat.grad), copy=True)
        self.was_training = self.model.training
        self.model.eval()
        return self

    def __exit__(self, *exc):
        kernels.assign(self.flat.data, self.theta0)          # bit for bit
        kernels.assign(self.flat.grad, self.grad0)
        self.model.train(self.was_training)
        return False

    @property
    def theta(self):
        return self.theta0.astype(np.float64)

    def _set(self, offset):
        """θ = θ₀ + offset (offset None: θ₀ itself)."""
        value = self.theta0 if offset is None else (self.theta0 + offset).astype(self.dtype)
        kernels.assign(self.flat.data, value)

    def _batches(self):
        like = self.flat.data
        for Xc, yc in self.chunks:
            yield kernels.on_device_of(np.ascontiguousarray(Xc), like), kernels.on_device_of(np.asarray(yc), like), \
                len(Xc) / self.n

    def value(self, offset=None):
        """L(θ₀ + offset): the mean loss over all rows."""
        self._set(offset)
        return sum(w * self.loss(self.model.forward(Xc), yc) for Xc, yc, w in self._batches())

    def value_and_grad(self, offset=None):
        """(L, ∇L) at θ₀ + offset; ∇L as float64, zero on frozen coordinates."""
        self._set(offset)
        total, g = 0.0, np.zeros(len(self.flat), np.float64)
        step = Trainer(self.model, self.loss, None)          # the one loop's forward + loss + backward
        for Xc, yc, w in self._batches():
            total += w * step.loss_and_grad(Xc, yc)
            g += w * np.asarray(kernels.to_host(self.flat.grad), np.float64)
        g[~self.mask] = 0.0
        return total, g

    def step_size(self, v, h):
        """h for the central difference along v (see the module docstring)."""
        nv = float(np.linalg.norm(v))
        if h is None:
            h_rel = 1e-5 if self.dtype == np.float64 else 1e-3
            return h_rel * max(1.0, float(np.linalg.norm(self.theta))) / nv
        return float(h) / nv

    def hvp(self, v, h=None):
        """H v by the central difference of two gradients."""
        if not np.any(v):
            return np.zeros_like(v)
        step = self.step_size(v, h)
        gp = self.value_and_grad(step * v)[1]                # g(θ + h v)
        gm = self.value_and_grad(-step * v)[1]               # g(θ - h v)
        return (gp - gm) / (2 * step)


def _check_vector(v, n, who, name="v"):
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (n,):
        raise ValueError(f"{who}: {name} must be a vector of the flat parameter length ({n},), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{who}: {name} must be finite")
    return v


def _check_positive(value, name, who, integer=False):
    ok = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool) and \
        math.isfinite(value) and float(value) > 0
    if not ok:
        raise ValueError(f"{who}: {name} must be a positive {'integer' if integer else 'finite number'}, got {value!r}")
    return int(value) if integer else float(value)


# --------------------------------------------------------------------------- public probes
def flat_loss(model, loss, X, y, batch_size=None):
    """L(θ) in eval mode over all of (X, y) (mean over rows), as a float."""
    with _Probe(model, loss, X, y, batch_size, "flat_loss") as probe:
        return float(probe.value())


def flat_gradient(model, loss, X, y, batch_size=None):
    """(L(θ), ∇L(θ)) in eval mode over all of (X, y); the gradient as a float64 vector in the layout of
    ``model.flat.data`` (zero on frozen parameters). The model's own gradient buffer is left as it was."""
    with _Probe(model, loss, X, y, batch_size, "flat_gradient") as probe:
        value, g = probe.value_and_grad()
        return float(value), g


def hessian_vector_product(model, loss, X, y, v, h=None, batch_size=None):
    r"""H v ≈ (g(θ + h v̂) - g(θ - h v̂)) / 2h · ‖v‖ with v̂ = v/‖v‖ (module docstring): a float64 vector.

    ``h`` is the step length along v̂ (default: 1e-5·max(1, ‖θ‖) in float64, 1e-3·max(1, ‖θ‖) in float32).
    Two forward/backward passes over (X, y); θ is restored bit for bit.
    """
    who = "hessian_vector_product"
    if h is not None:
        h = _check_positive(h, "h", who)
    with _Probe(model, loss, X, y, batch_size, who) as probe:
        v = _check_vector(v, len(probe.flat), who) * probe.mask
        nv = float(np.linalg.norm(v))
        if nv == 0:
            return np.zeros_like(v)
        return probe.hvp(v / nv, h) * nv


def _power(apply, v, iters, tol):
    """Power iteration: (λ, unit eigenvector, iterations, converged) for the largest-|λ| eigenvalue."""
    lam_prev = lam = 0.0
    for k in range(1, iters + 1):
        w = apply(v)
        lam = float(v @ w)                                   # Rayleigh quotient vᵀHv (‖v‖ = 1)
        nw = float(np.linalg.norm(w))
        if nw == 0:
            return 0.0, v, k, True
        v = w / nw
        if k > 1 and abs(lam - lam_prev) <= tol * abs(lam):
            return lam, v, k, True
        lam_prev = lam
    return lam, v, iters, False


def top_hessian_eigenvalue(model, loss, X, y, iters=100, tol=1e-5, rng=None, h=None, batch_size=None,
                           full_output=False):
    r"""λ_max of the Hessian of L at θ by power iteration on finite-difference H v (module docstring).

    Parameters
    ----------
    model : Sequential with a flat parameter buffer;  loss : a tinynn loss;  X (n, d), y (n,) or (n, k)
    iters : int, default 100      power-iteration steps at most (2 gradient passes each; twice as many when
                                  the largest-magnitude eigenvalue is negative and the shifted run follows)
    tol : float, default 1e-5     stop when |λ_k - λ_{k-1}| ≤ tol |λ_k|
    rng : None, int or Generator  for the random start vector
    h : float, optional           the difference step (default 1e-5 or 1e-3 times max(1, ‖θ‖), by dtype)
    batch_size : int, optional    rows per forward pass (default: all at once)
    full_output : bool            also return the unit eigenvector (float64, flat layout), the number of
                                  iterations and whether the tolerance was met

    Returns
    -------
    float, or (float, ndarray, int, bool) with ``full_output``. θ, the gradients and the mode are restored.
    """
    who = "top_hessian_eigenvalue"
    iters = _check_positive(iters, "iters", who, integer=True)
    tol = _check_positive(tol, "tol", who)
    if h is not None:
        h = _check_positive(h, "h", who)
    rng = np.random.default_rng(rng)
    with _Probe(model, loss, X, y, batch_size, who) as probe:
        v = rng.standard_normal(len(probe.flat)) * probe.mask
        if not np.any(v):
            raise ValueError(f"{who}: the model has no trainable parameter")
        v /= np.linalg.norm(v)
        hv = lambda u: probe.hvp(u, h)                      # noqa: E731
        lam, vec, k, ok = _power(hv, v, iters, tol)
        if lam < 0:                                          # a saddle: λ of largest |λ| is the smallest one
            shift = lam
            # From the random start again, not from vec: vec is the eigenvector the shift sends to 0, and
            # H vec - shift vec can round to exactly 0 (a 2-parameter model did: λ came back as the shift).
            mu, vec, k2, ok = _power(lambda u: hv(u) - shift * u, v, iters, tol)
            lam, k = mu + shift, k + k2
    return (lam, vec, k, ok) if full_output else lam


@dataclasses.dataclass
class EpsilonSharpness:
    """The result of :func:`epsilon_sharpness`."""

    sharpness: float          # 100 (max L - L) / (1 + L)
    loss: float               # L(θ)
    max_loss: float           # the largest L(θ + δ) found in the box
    delta: np.ndarray         # the δ that reached it (float64, flat layout)
    bound: np.ndarray         # the box half-widths b = ε (|θ| + 1) (0 on frozen parameters)
    epsilon: float

    def as_dict(self):
        return {"sharpness": self.sharpness, "loss": self.loss, "max_loss": self.max_loss, "epsilon": self.epsilon}


def epsilon_sharpness(model, loss, X, y, epsilon=1e-3, iters=20, step=0.25, start="random", rng=None,
                      batch_size=None):
    r"""Keskar et al.'s ε-sharpness 100 (max_{|δ_i| ≤ ε(|θ_i|+1)} L(θ+δ) - L(θ)) / (1 + L(θ)).

    Projected sign-gradient ascent from ``start``: "random" (default: a uniform point of the box, drawn
    from ``rng``) or "zero" (δ = 0). ``iters`` gradient passes, each moving every coordinate by ``step``
    times its box half-width, δ ← clip(δ + step·b ⊙ sign(∇L(θ+δ)), -b, b); the best point seen is kept
    (δ = 0 included, so the result is ≥ 0). Returns an :class:`EpsilonSharpness`; θ is restored bit for bit.
    """
    who = "epsilon_sharpness"
    epsilon = _check_positive(epsilon, "epsilon", who)
    iters = _check_positive(iters, "iters", who, integer=True)
    step = _check_positive(step, "step", who)
    if start not in ("random", "zero"):
        raise ValueError(f"{who}: start must be 'random' or 'zero', got {start!r}")
    with _Probe(model, loss, X, y, batch_size, who) as probe:
        bound = epsilon * (np.abs(probe.theta) + 1.0) * probe.mask
        f0, g = probe.value_and_grad()
        best, best_delta = f0, np.zeros_like(bound)
        if start == "random":
            delta = np.random.default_rng(rng).uniform(-1, 1, bound.shape) * bound
            f, g = probe.value_and_grad(delta)
            if f > best:
                best, best_delta = f, delta.copy()
        else:
            delta = np.zeros_like(bound)
        for k in range(iters):
            delta = np.clip(delta + step * bound * np.sign(g), -bound, bound)   # ascend, project on the box
            if k == iters - 1:
                f = probe.value(delta)
            else:
                f, g = probe.value_and_grad(delta)
            if f > best:
                best, best_delta = f, delta.copy()
    f0, best = float(f0), float(best)
    return EpsilonSharpness(100.0 * (best - f0) / (1.0 + f0), f0, best, best_delta, bound, epsilon)


def filter_normalized_direction(model, rng=None):
    r"""A random direction d (float64, flat layout) with every filter scaled to its weights' norm (Li et al.).

    For each trainable parameter W with two or more dimensions, d_W ~ N(0, 1) and each unit along the last
    axis (a column of a Linear's W (in, out): one output unit's incoming weights) is rescaled,
    d[..., j] ← d[..., j] ‖W[..., j]‖ / ‖d[..., j]‖. Biases, normalisation parameters and frozen parameters
    get d = 0.
    """
    flat = getattr(model, "flat", None)
    if flat is None:
        raise TypeError(f"filter_normalized_direction: expected a tinynn Sequential with a flat parameter buffer "
                        f"(model.flat), got {type(model).__name__}")
    rng = np.random.default_rng(rng)
    theta = np.asarray(kernels.to_host(flat.data), np.float64)
    d = np.zeros(len(flat), np.float64)
    for p, (o, size), shape in zip(flat.params, flat.offsets, flat.shapes):
        if len(shape) < 2 or not p.requires_grad:
            continue
        W = theta[o:o + size].reshape(-1, shape[-1])         # rows: everything before the unit axis
        D = rng.standard_normal(W.shape)
        D *= np.linalg.norm(W, axis=0) / np.maximum(np.linalg.norm(D, axis=0), 1e-300)   # per unit (column)
        d[o:o + size] = D.ravel()
    return d


def loss_curve(model, loss, X, y, direction=None, alphas=None, rng=None, batch_size=None):
    r"""L(θ + α d) for α in ``alphas`` (default 41 points in [-1, 1]) along ``direction`` (default: a
    :func:`filter_normalized_direction` drawn from ``rng``). Returns {"alpha", "loss"} as float64 arrays.
    θ is restored bit for bit."""
    who = "loss_curve"
    alphas = np.linspace(-1.0, 1.0, 41) if alphas is None else np.asarray(alphas, np.float64).ravel()
    if alphas.size == 0 or not np.all(np.isfinite(alphas)):
        raise ValueError(f"{who}: alphas must be a non-empty array of finite numbers")
    if direction is None:
        direction = filter_normalized_direction(model, rng)
    with _Probe(model, loss, X, y, batch_size, who) as probe:
        direction = _check_vector(direction, len(probe.flat), who, "direction") * probe.mask
        values = np.array([probe.value(a * direction) for a in alphas])
    return {"alpha": alphas, "loss": values}
