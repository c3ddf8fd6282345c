"""Parity-test inputs for the optimizer ops added with Adadelta and L1 (same form as tests/kernel_cases.py:
name -> builder(rng, dtype, n, d) -> [(args, kwargs), ...]). ``tests/kernel_cases.py`` should take them in
(``CASES.update(OPTIM_CASES)``) so that test_kernels/test_cuda cover them; tests/test_l1.py runs them now."""
import numpy as np


def _a(rng, dtype, *shape, lo=-3, hi=3):
    return rng.uniform(lo, hi, shape).astype(dtype)


def adadelta_update(rng, dt, n, d):
    m = n * d
    return [((_a(rng, dt, m), _a(rng, dt, m), _a(rng, dt, m, lo=0, hi=1), _a(rng, dt, m, lo=0, hi=1), lr, rho, eps, wd),
             {}) for lr, rho, eps, wd in [(1.0, 0.9, 1e-6, 0.0), (0.5, 0.95, 1e-3, 0.1), (1.0, 0.0, 1e-6, 0.0)]]


def _with_zeros(rng, dt, m):
    w = _a(rng, dt, m)
    w[rng.random(m) < 0.25] = 0                      # sign(0) = 0 and exact zeros must stay exact
    return w


def add_l1(rng, dt, n, d):
    m = n * d
    return [((_with_zeros(rng, dt, m).reshape(n, d), _a(rng, dt, n, d), a), {}) for a in (0.0, 0.3)]


def l1_prox(rng, dt, n, d):
    # thresholds below, inside and above the range of |W| (3): nothing, some and everything set to zero
    return [((_with_zeros(rng, dt, n * d).reshape(n, d), t), {}) for t in (0.0, 1.0, 5.0)]


OPTIM_CASES = {"adadelta_update": adadelta_update, "add_l1": add_l1, "l1_prox": l1_prox}
