"""Checks at tinynn's boundaries: Numba kernels skip bounds checks, so bad input is refused here,
with a message naming what was expected and what came."""
from __future__ import annotations

import numbers

import numpy as np

from . import kernels

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))   # what every kernel of every backend runs on


def as_array(X, who: str):
    """A NumPy array (lists are converted) or a device array, C-contiguous."""
    if kernels.is_device_array(X):
        return X
    if isinstance(X, np.ndarray):
        return X if X.flags.c_contiguous else np.ascontiguousarray(X)
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(f"{who}: sparse matrices are not supported; got {type(X).__name__}, "
                        "expected a dense array (call .toarray())")
    try:
        return np.ascontiguousarray(np.asarray(X))
    except Exception as e:  # ragged lists and objects NumPy cannot read
        raise TypeError(f"{who}: expected an array, got {type(X).__name__} ({e})") from None


def check_float(X, who: str, *, ndim=None, width=None, dtype=None, rows=None):
    """Validate a floating-point input: rank, last-axis width, dtype, number of rows."""
    if type(X) is np.ndarray and X.flags.c_contiguous and X.dtype in SUPPORTED_DTYPES and X.size and \
            (ndim is None or X.ndim == ndim) and (width is None or X.shape[-1] == width) and \
            (rows is None or X.shape[0] == rows) and (dtype is None or X.dtype == dtype):
        return X                                        # the common case, in one expression (a step makes ~7)
    X = as_array(X, who)
    if ndim is not None and len(X.shape) != ndim:
        raise ValueError(f"{who}: expected a {ndim}-D array, got shape {tuple(X.shape)}")
    if width is not None and _last(X.shape) != width:
        raise ValueError(f"{who}: expected {width} features (last axis), got shape {tuple(X.shape)}")
    if rows is not None and X.shape[0] != rows:
        raise ValueError(f"{who}: batch-size mismatch: expected {rows} rows, got {X.shape[0]}")
    dt = np.dtype(X.dtype)
    if dt.kind != "f":
        raise TypeError(f"{who}: expected a floating-point array, got dtype {dt}")
    if dt not in SUPPORTED_DTYPES:
        raise TypeError(f"{who}: dtype {dt.name} is not supported; expected float32 or float64 "
                        "(convert with X.astype(np.float32))")
    if dtype is not None and np.dtype(X.dtype) != np.dtype(dtype):
        raise TypeError(f"{who}: expected dtype {np.dtype(dtype).name}, got {np.dtype(X.dtype).name}; "
                        f"convert with X.astype(np.{np.dtype(dtype).name})")
    if X.shape[0] == 0:
        raise ValueError(f"{who}: empty batch (shape {tuple(X.shape)})")
    return X


def check_dtype(dtype, who: str):
    """A layer's parameter dtype: float32 or float64 (the dtypes the kernels run on)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{who}: dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in SUPPORTED_DTYPES:
        raise TypeError(f"{who}: dtype must be float32 or float64, got {dt.name}")
    return dt


def no_forward(who: str, what="forward"):
    """The error of a backward with no saved forward pass to differentiate."""
    return RuntimeError(f"{who}.backward: called before {what}: there is no saved forward pass to differentiate; "
                        f"call {who}.forward(X){' in training mode' if 'training' in what else ''} first")


def check_labels(y, who: str, *, n: int, n_classes: int):
    """Integer class labels in [0, n_classes), one per row."""
    if type(y) is np.ndarray and y.dtype == np.int64 and y.shape == (n,) and y.flags.c_contiguous and \
            (n == 0 or (y.min() >= 0 and y.max() < n_classes)):
        return y                                        # the common case (a training step's labels)
    y = as_array(y, who)
    if kernels.is_device_array(y):
        if np.dtype(y.dtype).kind not in "iu":
            raise TypeError(f"{who}: expected integer labels, got dtype {np.dtype(y.dtype)}")
        if y.shape != (n,):
            raise ValueError(f"{who}: batch-size mismatch: expected labels of shape ({n},), got {tuple(y.shape)}")
        return y  # range is checked by the device kernel (an out-of-range label gives a NaN loss)
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"{who}: expected integer class labels, got dtype {y.dtype}")
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{who}: batch-size mismatch: expected labels of shape ({n},), got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)][0]
        raise IndexError(f"{who}: label {bad} out of range; expected labels in [0, {n_classes})")
    return y.astype(np.int64, copy=False)


def check_positive_int(v, name: str):
    if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def check_probability(p, name: str, *, upper_open=True):
    if not isinstance(p, numbers.Real) or not (0 <= float(p) < 1 if upper_open else 0 <= float(p) <= 1):
        raise ValueError(f"{name} must be in [0, 1{')' if upper_open else ']'}, got {p!r}")
    return float(p)


def _last(shape):
    """shape[-1] (the CUDA simulator's shapes take no negative index)."""
    return shape[len(shape) - 1]
