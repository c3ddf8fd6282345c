r"""Weight initialisers for a weight W of shape (fan_in, fan_out) (the lectures' layout: Y = X W).

Every initialiser takes the shape, an explicit ``np.random.Generator`` and a dtype, and returns a new
array. Variances:

=================  =======================================  ===========================
name               distribution                              variance
=================  =======================================  ===========================
zeros / constant   W = 0 / W = value (symmetry is not broken: every unit stays the same)
normal             N(0, c / fan_in)                          c / fan_in (c = 1, 2, 3: the depth experiment)
xavier_uniform     U(-a, a), a = gain √(6 / (fan_in + fan_out))  2 gain² / (fan_in + fan_out)
xavier_normal      N(0, 2 gain² / (fan_in + fan_out))
kaiming_uniform    U(-a, a), a = √(6 / fan)                  2 / fan   (fan = fan_in or fan_out)
kaiming_normal     N(0, 2 / fan)
lecun_uniform      U(-a, a), a = √(3 / fan_in)               1 / fan_in
lecun_normal       N(0, 1 / fan_in)
=================  =======================================  ===========================

``Linear``'s default is ``kaiming_uniform`` with fan_in (He et al. 2015: variance 2/n keeps ReLU
activations at a constant scale through depth), and its bias starts at zero.
"""
from __future__ import annotations

import numpy as np


def _fans(shape):
    if len(shape) != 2:
        raise ValueError(f"init: expected a 2-D weight shape (fan_in, fan_out), got {tuple(shape)}")
    return shape[0], shape[1]


def _mode_fan(shape, mode):
    fan_in, fan_out = _fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def zeros(shape, rng=None, dtype=np.float32):
    """W = 0."""
    return np.zeros(shape, dtype=dtype)


def constant(shape, rng=None, dtype=np.float32, value=0.1):
    """W = value everywhere: every hidden unit computes the same function and receives the same gradient."""
    return np.full(shape, value, dtype=dtype)


def normal(shape, rng, dtype=np.float32, c=2.0):
    """W ~ N(0, c / fan_in)."""
    fan_in, _ = _fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(c / fan_in)).astype(dtype)


def xavier_uniform(shape, rng, dtype=np.float32, gain=1.0):
    """W ~ U(-a, a), a = gain √(6 / (fan_in + fan_out))  (Glorot & Bengio 2010)."""
    fan_in, fan_out = _fans(shape)
    a = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, shape).astype(dtype)


def xavier_normal(shape, rng, dtype=np.float32, gain=1.0):
    """W ~ N(0, 2 gain² / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    return (rng.standard_normal(shape) * gain * np.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


def kaiming_uniform(shape, rng, dtype=np.float32, mode="fan_in"):
    """W ~ U(-a, a), a = √(6 / fan): variance 2 / fan (He et al. 2015)."""
    a = np.sqrt(6.0 / _mode_fan(shape, mode))
    return rng.uniform(-a, a, shape).astype(dtype)


def kaiming_normal(shape, rng, dtype=np.float32, mode="fan_in"):
    """W ~ N(0, 2 / fan)."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / _mode_fan(shape, mode))).astype(dtype)


def lecun_uniform(shape, rng, dtype=np.float32):
    """W ~ U(-a, a), a = √(3 / fan_in): variance 1 / fan_in (LeCun et al. 1998)."""
    fan_in, _ = _fans(shape)
    a = np.sqrt(3.0 / fan_in)
    return rng.uniform(-a, a, shape).astype(dtype)


def lecun_normal(shape, rng, dtype=np.float32):
    """W ~ N(0, 1 / fan_in)."""
    fan_in, _ = _fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)).astype(dtype)


def glorot_sklearn(shape, rng, dtype=np.float32, activation="relu"):
    """scikit-learn's MLP init: U(-a, a), a = √(f / (fan_in + fan_out)), f = 2 for logistic, else 6."""
    fan_in, fan_out = _fans(shape)
    a = np.sqrt((2.0 if activation == "logistic" else 6.0) / (fan_in + fan_out))
    return rng.uniform(-a, a, shape).astype(dtype)


INITIALIZERS = {
    "zeros": zeros,
    "constant": constant,
    "normal": normal,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "glorot_uniform": xavier_uniform,
    "glorot_normal": xavier_normal,
    "kaiming_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "he_uniform": kaiming_uniform,
    "he_normal": kaiming_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
}


def get(init):
    """An initialiser from its name (or a callable, returned as it is); unknown names list the valid ones."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except (KeyError, TypeError):
        raise ValueError(f"unknown init {init!r}; expected one of {sorted(INITIALIZERS)} or a callable "
                         "(shape, rng, dtype) -> array") from None
