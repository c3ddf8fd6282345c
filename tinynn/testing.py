"""Hypothesis strategies and one-call properties for testing your own layers and losses with tinynn's
gradient checker (:mod:`tinynn.gradcheck`).

    import tinynn as tn

    test_my_layer = tn.testing.layer_property(MyLayer)        # MyLayer(in_features) -> a Layer
    test_my_loss = tn.testing.loss_property(MyLoss, target="real")

Each is a Hypothesis test (pytest collects it; it can also be called directly): it draws batch shapes and
finite float64 inputs away from the kinks you name, builds the layer for the drawn width, and asserts that its
backward equals central differences for the input and every parameter. Needs ``hypothesis`` (the ``[test]``
extra).
"""
from __future__ import annotations
from typing import Literal

import numpy as np

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as e:                                            # pragma: no cover - the message is the test
    raise ImportError(f"tinynn.testing needs hypothesis: pip install hypothesis ({e})") from e

from .gradcheck import TOL, gradcheck, gradcheck_loss

__all__ = ["shapes", "arrays", "batches", "activations", "layer_property", "loss_property"]


def shapes(min_rows=1, max_rows=6, min_cols=1, max_cols=7):
    """(n, d) batch shapes."""
    return st.tuples(st.integers(min_rows, max_rows), st.integers(min_cols, max_cols))


def _push(X, kinks, margin):
    """Entries within ``margin`` of a kink moved to kink ± margin (finite differences straddle no kink)."""
    X = X.copy()
    for k in kinks:
        near = np.abs(X - k) < margin
        X[near] = np.where(X[near] >= k, k + margin, k - margin)
    return X


@st.composite
def arrays(draw, shape, lo=-3.0, hi=3.0, kinks=(), margin=1e-3, dtype=np.float64):
    """Finite arrays of ``shape`` with entries in [lo, hi], none within ``margin`` of a point in ``kinks`` (0
    for ReLU, ``delta`` and ``-delta`` for Huber)."""
    width: Literal[32, 64] = 32 if np.dtype(dtype) == np.float32 else 64
    X = draw(hnp.arrays(dtype, shape, elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False,
                                                          width=width)))
    return _push(X, kinks, margin)


@st.composite
def batches(draw, min_rows=1, max_rows=6, min_cols=1, max_cols=7, **kw):
    """A batch X (n, d) of :func:`arrays`, its shape drawn from :func:`shapes`."""
    return draw(arrays(draw(shapes(min_rows, max_rows, min_cols, max_cols)), **kw))


def activations():
    """Every built-in activation (``tinynn.ACTIVATIONS``), with its parameters drawn, and the kinks of its
    derivative."""
    from . import layers

    return st.one_of(
        st.just((layers.ReLU(), (0.0,))),
        st.floats(0.01, 0.9).map(lambda a: (layers.LeakyReLU(a), (0.0,))),
        st.floats(0.1, 2.0).map(lambda a: (layers.ELU(a), (0.0,))),
        st.floats(0.5, 3.0).map(lambda b: (layers.Softplus(b), ())),
        st.sampled_from([layers.Sigmoid(), layers.Tanh(), layers.Identity(), layers.SiLU(), layers.GELU(),
                         layers.GELU("tanh"), layers.Exp()]).map(lambda a: (a, ())))


def _settings(test, max_examples):
    """A gradient check is slow by nature (two forward passes per checked entry): no deadline and no "input
    generation is slow" health check, on a loaded machine either; the rest from the active profile."""
    extra = {} if max_examples is None else dict(max_examples=max_examples)
    return settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], **extra)(test)


def layer_property(make_layer, *, kinks=(), lo=-3.0, hi=3.0, min_rows=1, max_rows=6, min_cols=1, max_cols=7,
                   tol=TOL, max_examples=None, input_grad=True):
    """A Hypothesis test: ``make_layer(d)`` (a layer taking d input features) passes :func:`gradcheck` on drawn
    batches (n, d) with entries in [lo, hi] away from ``kinks``."""

    @given(X=batches(min_rows, max_rows, min_cols, max_cols, lo=lo, hi=hi, kinks=kinks),
           seed=st.integers(0, 2**16))
    def test(X, seed):
        gradcheck(make_layer(X.shape[1]), X, rng=seed, tol=tol, input_grad=input_grad)

    test = _settings(test, max_examples)
    test.__name__ = f"test_{getattr(make_layer, '__name__', 'layer')}_gradients"
    return test


def loss_property(make_loss, *, target="real", kinks=(), lo=-3.0, hi=3.0, weighted=True, tol=TOL,
                  max_examples=None, min_cols=1, max_cols=7):
    """A Hypothesis test: ``make_loss()`` passes :func:`gradcheck_loss` on drawn predictions (n, d) and targets:
    ``target`` "real" (normal floats), "binary" (0/1 floats), "labels" (integer classes in [0, d)) or "counts"
    (non-negative floats), with ``min_cols``..``max_cols`` outputs; with drawn sample weights when ``weighted``. ``kinks`` are kept away from in the
    residual pred - target (0 for L1)."""
    if target not in ("real", "binary", "labels", "counts"):
        raise ValueError(f"loss_property: target must be 'real', 'binary', 'labels' or 'counts', got {target!r}")

    @given(Z=batches(min_cols=min_cols, max_cols=max_cols, lo=lo, hi=hi), seed=st.integers(0, 2**16), weighted_=st.booleans() if weighted else st.just(False))
    def test(Z, seed, weighted_):
        rng = np.random.default_rng(seed)
        n, d = Z.shape
        if target == "labels":
            T = rng.integers(0, d, n)
        elif target == "binary":
            T = rng.integers(0, 2, Z.shape).astype(np.float64)
        elif target == "counts":
            T = rng.poisson(2.0, Z.shape).astype(np.float64)
        else:
            T = rng.standard_normal(Z.shape)
            Z = T + _push(Z - T, kinks, 1e-3)
        sw = rng.uniform(0.1, 2.0, n) if weighted_ else None
        gradcheck_loss(make_loss(), Z, T, sample_weight=sw, tol=tol, rng=rng)

    test = _settings(test, max_examples)
    test.__name__ = f"test_{getattr(make_loss, '__name__', 'loss')}_gradients"
    return test
