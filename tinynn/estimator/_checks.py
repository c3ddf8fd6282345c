"""The estimators' refusals of what cannot train, each with its reason (docs/refusals.md lists them).

Functions of the estimator and arrays, called from ``_base.py`` and ``_lbfgs.py``:

    fit_dtype(est, X)                          the dtype to fit in: float32 or float64, else TypeError
    check_finite_after_cast(est, X, T)         X (and float targets) still finite in the fit dtype
    check_sample_weight(est, sample_weight, X) non-negative, finite, a positive and finite total
    check_split_weights(est, sw_train, sw_val) both sides of the early-stopping split keep some weight
    input_overflow(est, X, T, sw)              when training diverged: a ValueError naming the input when the
                                               weights before the failing epoch already overflow on it, else None
    guard_lbfgs(est, fun, X, T, sw)            an objective that refuses a non-finite value at the start
    check_lbfgs_result(est, res)               refuse an L-BFGS run that ended non-finite or never moved

The common cost is nothing: the checks of a normal fit are one pass over X and the weights; the
diagnoses run only on the failure path.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DivergenceError

SUPPORTED = (np.dtype(np.float32), np.dtype(np.float64))


def _who(est):
    return type(est).__name__


def _values(X):
    """The stored values of X: a dense array itself, a sparse matrix its non-zeros (``.data``)."""
    return X.data if hasattr(X, "tocsr") and hasattr(X, "data") and not isinstance(X, np.ndarray) else X


def _largest(A):
    return float(np.max(np.abs(A))) if A.size else 0.0             # (called under _input_cause's errstate)


def fit_dtype(est, X):
    """``est.dtype`` (float32 or float64) if given, else float32 for float32 input and float64 for anything
    else (as sklearn). Any other dtype is a TypeError naming what is supported."""
    if est.dtype is None:
        return np.dtype(np.float32) if getattr(X, "dtype", None) == np.float32 else np.dtype(np.float64)
    try:
        dt = np.dtype(est.dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in SUPPORTED:                       # (np.dtype == None is True for float64)
        raise TypeError(f"{_who(est)}: dtype={dt.name if dt is not None else repr(est.dtype)} is not supported; "
                        "expected None, np.float32 or np.float64 (the dtypes tinynn's kernels run on)")
    return dt


def _overflow_message(name, dtype):
    return (f"{name} holds values beyond the range of {np.dtype(dtype).name} (largest finite "
            f"{np.finfo(dtype).max:.3g}): they became inf when cast to {np.dtype(dtype).name}, the fit dtype")


def check_finite_after_cast(est, X, T=None):
    """X (dense, or a sparse matrix's stored values) and floating targets T, already in the fit dtype, must be
    finite: float64 values beyond float32's range become inf in the cast (sklearn checked them before it, in
    float64)."""
    if not np.isfinite(_values(X)).all():
        raise ValueError(f"{_who(est)}: {_overflow_message('X', X.dtype)}. Scale X (e.g. StandardScaler) or "
                         "fit in float64 (dtype=np.float64).")
    if T is not None and T.dtype.kind == "f" and not np.isfinite(T).all():
        raise ValueError(f"{_who(est)}: {_overflow_message('y', T.dtype)}. Scale y or fit in float64 "
                         "(dtype=np.float64).")


def check_sample_weight(est, sample_weight, X):
    """sklearn's validation of sample_weight (one per row), plus what training needs: no negative weight (as
    sklearn: a negative weight turns the loss into something to maximise), finite values, a positive total
    (all zero: nothing to learn from) that is finite (overflow). Returns float64 weights."""
    from sklearn.utils.validation import _check_sample_weight

    try:
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True,
                                  allow_all_zero_weights=True)
    except TypeError:                                           # an older sklearn without these keywords
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
    if not np.isfinite(sw).all():
        raise ValueError(f"{_who(est)}: sample_weight holds NaN or infinite values; expected finite weights >= 0")
    if sw.size and sw.min() < 0:
        raise ValueError(f"Negative values in data passed to `sample_weight` ({_who(est)}: expected weights >= 0, "
                         f"got {sw.min():g})")
    _check_total(est, sw, "sample_weight")
    return sw


def _check_total(est, sw, what, purpose="there is nothing to train on"):
    with np.errstate(over="ignore"):
        total = float(np.sum(sw))
    if not total > 0:
        raise ValueError(f"{_who(est)}: {what} is all zero: {purpose} (expected at least one positive weight)")
    if not math.isfinite(total):
        raise ValueError(f"{_who(est)}: {what} sums to {total} (overflow); scale the weights down")


def check_split_weights(est, sw_train, sw_val):
    """After the early-stopping split, both parts need some positive weight: a training part of zero weight
    trains nothing, a validation part of zero weight gives no score."""
    if sw_train is None:
        return
    _check_total(est, sw_train, "sample_weight of the training part (after the early-stopping split)")
    _check_total(est, sw_val, "sample_weight of the validation part (early_stopping)",
                 "there is nothing to score on; lower validation_fraction or spread the weights")


def _input_cause(est, X, T, sample_weight, when="with the weights at the start of the failing epoch"):
    """A sentence naming the input as the cause when the model's present weights already give, on (X, T), a
    non-finite output (X overflows the dtype in the forward pass), loss, or gradient; else None. The
    parameters, running statistics and gradients' owner are left as they were (only ``flat.grad`` changes)."""
    from .. import kernels

    from ..training import Trainer, predict_raw

    model = est._model
    with np.errstate(all="ignore"):
        Z = predict_raw(model, X)
        dtype = np.dtype(Z.dtype).name
        facts = f"largest |x| = {_largest(_values(X)):.3g}"
        if T.dtype.kind == "f" and T.size:
            facts += f", largest |y| = {_largest(T):.3g}"
        advice = (". The input is the cause, not the learning rate: scale X and y (e.g. StandardScaler)"
                  + (" or fit in float64 (dtype=np.float64)" if dtype == "float32" else ""))
        if not np.isfinite(Z).all():
            return (f"the network's output on X is not finite {when}: the input's values ({facts}) overflow "
                    f"{dtype} in the forward pass" + advice)
        try:
            value = est._loss_fn()(Z, T, sample_weight)
        except (ValueError, TypeError, IndexError):
            return None
        if not math.isfinite(value):
            return (f"the loss on (X, y) is {value} {when}, although the network's output is finite (largest "
                    f"|output| = {_largest(Z):.3g}; {facts}): the values overflow {dtype} in the "
                    "loss" + advice)
        trainer = Trainer(model, est._loss_fn(), None)
        saved = Trainer.capture(model)
        try:
            trainer.loss_and_grad(trainer.on_device(X), trainer.on_device(T), sample_weight,
                                  weight_sum=None if sample_weight is None else float(np.sum(sample_weight)))
            finite = bool(np.isfinite(kernels.to_host(model.flat.grad)).all())
        except (ValueError, TypeError, IndexError):
            finite = True
        finally:
            trainer.restore(saved)
        if not finite:
            return (f"the gradient on (X, y) is not finite {when}, although the output and the loss are: the "
                    f"input's values ({facts}) overflow {dtype} in the backward pass" + advice)
    return None


def input_overflow(est, X, T, sample_weight):
    """For a DivergenceError from the Trainer (the parameters are back at the start of the failing epoch): a
    ValueError naming the input when those parameters already give a non-finite output or loss on it (the
    first forward pass overflows: no learning rate can help), else None (the learning rate is the suspect)."""
    cause = _input_cause(est, X, T, sample_weight)
    # sklearn's sentence first (its own tests match it), then what tinynn found
    return None if cause is None else ValueError(
        "Solver produced non-finite parameter weights. The input data may contain large values and need to be "
        f"preprocessed. {_who(est)}: {cause}.")


def guard_lbfgs(est, fun, X, T, sample_weight):
    """``fun`` (theta -> (value, grad)) refusing a non-finite objective at its first call (the initial
    weights): L-BFGS would otherwise stop at once and return the untrained weights with only a warning."""
    calls = [0]

    def guarded(theta):
        value, grad = fun(theta)
        calls[0] += 1
        if calls[0] == 1 and not (math.isfinite(value) and np.isfinite(grad).all()):
            cause = _input_cause(est, X, T, sample_weight, when="at the initial weights")
            raise ValueError(f"{_who(est)}: solver='lbfgs': the objective at the initial weights is {value}"
                             + (f"; {cause}" if cause else "; scale X and y") + ".")
        return value, grad

    return guarded


def check_lbfgs_result(est, res):
    """Refuse an L-BFGS result that is not a trained model: a non-finite objective or weights, or a run that
    stopped abnormally before its first iteration (it would return the initial weights)."""
    if not (np.isfinite(res.x).all() and math.isfinite(float(res.fun))):
        raise DivergenceError(f"{_who(est)}: solver='lbfgs' ended with a non-finite objective ({res.fun}) or "
                              "weights; scale X and y, or raise alpha")
    if res.status == 2 and int(res.nit) == 0:                  # 2: stopped abnormally (not max_iter/max_fun)
        raise ValueError(f"{_who(est)}: solver='lbfgs' could not take a single step from the initial weights "
                         f"({res.message}; objective {res.fun:.6g}), so nothing was trained. Usual causes: X or y "
                         "too large (scale them, e.g. StandardScaler) or float32 precision (fit in float64)")
