"""Hypothesis strategies shared by the tests."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def dims(lo=1, hi=7):
    return st.integers(lo, hi)


def finite_arrays(shape, dtype=np.float64, lo=-3.0, hi=3.0):
    width = 32 if np.dtype(dtype) == np.float32 else 64
    return hnp.arrays(dtype, shape, elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=width))


def away_from_kinks(X, margin=1e-3):
    """Push entries with |x| < margin out to ±margin (ReLU's kink at 0 breaks finite differences)."""
    X = X.copy()
    small = np.abs(X) < margin
    X[small] = np.where(X[small] >= 0, margin, -margin)
    return X
