r"""Check a hand-written backward against central differences: :func:`gradcheck` for a layer (or a whole
``Sequential``), :func:`gradcheck_loss` for a loss.

For a layer f and a random upstream gradient R, the scalar L(X, θ) = Σ f(X; θ) ⊙ R has ∂L/∂X = backward(R)
and ∂L/∂θ = θ.grad, and each is compared with central differences

    (L(x + h e) - L(x - h e)) / 2h

entry by entry (``mode="elementwise"``, the default for tensors of at most ``max_elementwise`` entries), or
along ``directions`` random unit directions u (``mode="directional"``: u·∇L against (L(x+hu) - L(x-hu)) / 2h),
for larger ones. The error of an entry is |a - n| / max(1, |a|, |n|) (relative, with a floor of 1); a check
fails when the largest error reaches ``tol`` and raises an ``AssertionError`` naming the layer, the parameter
(``X`` for the input), the worst index, the analytic and the numeric value, and the tolerance.

Checks run in float64 on the NumPy reference backend, whatever the layer's device and dtype: a layer that is
not float64 on the host is copied to the host and cast to float64 (the caller's layer is left untouched); a
float64 host layer is checked in place (its parameters are perturbed and restored). Layers with randomness
(dropout) take ``reseed``, a function called before every forward so that each evaluation draws the same mask.

    >>> import numpy as np, tinynn as tn
    >>> tn.gradcheck(tn.Linear(3, 2), np.random.default_rng(0).standard_normal((4, 3)))
    {'X': ..., 'weight': ..., 'bias': ...}
"""
from __future__ import annotations

import copy
import inspect
import types
from typing import Mapping

import numpy as np

from . import kernels

H = 1e-6
TOL = 1e-6
MAX_ELEMENTWISE = 2000


def _walk(obj, visit, seen):
    """Call visit(x) on every object reachable from obj through attributes (``__dict__`` and ``__slots__``),
    lists, tuples and dicts; visit returns True to stop at x."""
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type, types.ModuleType, types.FunctionType,
                                           types.MethodType, np.ndarray, np.random.Generator)):
        return
    seen.add(id(obj))
    if visit(obj):
        return
    if isinstance(obj, (list, tuple, set)):
        items = list(obj)
    elif isinstance(obj, dict):
        items = list(obj.values())
    else:
        items = [getattr(obj, k, None) for k in getattr(type(obj), "__slots__", ())]
        items += list(getattr(obj, "__dict__", {}).values())
    for x in items:
        _walk(x, visit, seen)


def _is_float64_host(layer):
    """Every parameter a float64 NumPy array: the layer can be checked as it is."""
    ps = layer.parameters()
    return all(isinstance(p.data, np.ndarray) and p.data.dtype == np.float64 for p in ps)


def _to_float64_host(layer):
    """A float64 host copy of ``layer``: device arrays are copied to the host as the copy is made (so no device
    array is ever deep-copied), then parameters and state arrays are cast to float64 and work buffers dropped."""
    from .parameter import Parameter

    memo = {}

    def to_host(x):
        if kernels.is_device_array(x):
            memo[id(x)] = np.array(kernels.to_host(x))
            return True
        return False

    _walk(layer, to_host, set())
    layer = copy.deepcopy(layer, memo)

    def cast(x):
        if isinstance(x, Parameter):
            x.data = np.array(x.data, dtype=np.float64)
            x.grad = np.zeros_like(x.data)
            x.flat = None
            return True
        d = getattr(x, "__dict__", None)
        if d is not None:
            if "_ws_cache" in d:
                d["_ws_cache"] = {}
            for name in getattr(x, "_state_names", ()):
                v = d.get(name)
                if v is not None:
                    d[name] = np.array(v, dtype=np.float64)
        return False

    _walk(layer, cast, set())
    if hasattr(layer, "plan") and hasattr(layer, "_plan"):            # a Sequential: its fused nodes anew
        layer.plan = layer._plan()
        layer._outputs = {}
    return layer


def _call_reseed(reseed, layer):
    """reseed(layer) where it takes an argument (the layer being checked, a copy where one was made), else
    reseed()."""
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(reseed).parameters
    except (TypeError, ValueError):
        params = {}
    return reseed(layer) if params else reseed()


def _worst(analytic, numeric):
    """(largest relative error, its index) of two arrays of one shape."""
    err = np.abs(analytic - numeric) / np.maximum(1.0, np.maximum(np.abs(analytic), np.abs(numeric)))
    if err.size == 0:
        return 0.0, ()
    flat = int(np.nanargmax(err)) if not np.isnan(err).all() else 0
    e = float(err.reshape(-1)[flat])
    if np.isnan(err).any():                                              # a NaN gradient is the worst error
        flat = int(np.flatnonzero(np.isnan(err))[0])
        e = float("inf")
    return e, np.unravel_index(flat, err.shape)


def _numeric(f, x, h):
    """∂f/∂x entry by entry, perturbing x in place."""
    g = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def _directional(f, x, analytic, rng, h, directions):
    """[(u·analytic, numeric derivative along u)] for ``directions`` random unit vectors u."""
    out = []
    old = x.copy()
    for _ in range(directions):
        u = rng.standard_normal(x.shape)
        u /= np.linalg.norm(u) or 1.0
        x[...] = old + h * u
        fp = f()
        x[...] = old - h * u
        fm = f()
        x[...] = old
        out.append((float(np.sum(analytic * u)), (fp - fm) / (2 * h)))
    return out


def _compare(who, name, x, analytic, L, *, mode, tol, h, rng, directions, max_elementwise):
    """Raise AssertionError when ``analytic`` (∂L/∂x) differs from central differences; returns the error."""
    if analytic is None:
        raise AssertionError(f"{who}: backward gave no gradient for {name}")
    analytic = np.asarray(kernels.to_host(analytic), dtype=np.float64)
    if analytic.shape != x.shape:
        raise AssertionError(f"{who}: the gradient of {name} has shape {analytic.shape}, expected {x.shape}")
    use = mode if mode != "auto" else ("elementwise" if x.size <= max_elementwise else "directional")
    if use == "elementwise":
        num = _numeric(L, x, h)
        err, idx = _worst(analytic, num)
        if not err < tol:
            where = f"[{', '.join(map(str, idx))}]" if idx else ""
            raise AssertionError(f"{who}: d{name}{where}: analytic {float(analytic[idx]):.10g} != numeric "
                                 f"{float(num[idx]):.10g} "
                                 f"(relative error {err:.2e} >= tol {tol:g}; {int(np.sum(~np.isclose(analytic, num, rtol=tol, atol=tol)))} "
                                 f"of {x.size} entries differ)")
        return err
    worst = 0.0
    for k, (a, n) in enumerate(_directional(L, x, analytic, rng, h, directions)):
        err, _ = _worst(np.array(a), np.array(n))
        if not err < tol:
            raise AssertionError(f"{who}: d{name} along random direction {k}: analytic {a:.10g} != numeric {n:.10g} "
                                 f"(relative error {err:.2e} >= tol {tol:g})")
        worst = max(worst, err)
    return worst


def gradcheck(layer, X, *, rng=None, reseed=None, tol=TOL, h=H, mode="auto", input_grad=True, directions=3,
              max_elementwise=MAX_ELEMENTWISE):
    """Check ``layer.backward`` (input and every parameter's gradient) against central differences.

    Parameters
    ----------
    layer : a tinynn Layer or Sequential (any device and dtype; a float64 host copy is checked)
    X : array, the input (copied to float64)
    rng : np.random.Generator or int seed, for the upstream gradient and the random directions
    reseed : callable or None, called before every forward (layers with randomness: fix their draws); given the
        layer being checked where it takes an argument (a float64 copy, unless the layer already is float64 on
        the host, in which case it is checked in place and left as it was)
    tol, h : the tolerance on the relative error and the finite-difference step
    mode : "auto" (elementwise up to ``max_elementwise`` entries, then directional), "elementwise", "directional"
    input_grad : False for layers that return no input gradient (a first layer, Embedding)

    Returns {name: largest relative error} ("X" and each parameter name); raises AssertionError on a mismatch.
    """
    if mode not in ("auto", "elementwise", "directional"):
        raise ValueError(f"gradcheck: mode must be 'auto', 'elementwise' or 'directional', got {mode!r}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    who = type(layer).__name__
    if not _is_float64_host(layer):
        layer = _to_float64_host(layer)                  # the caller's layer is left as it is
    X = np.array(kernels.to_host(X), dtype=np.float64) if np.asarray(kernels.to_host(X)).dtype.kind == "f" \
        else np.asarray(kernels.to_host(X))
    with kernels.use("numpy"):
        def forward():
            if reseed is not None:
                _call_reseed(reseed, layer)
            return layer.forward(X)

        Y = np.array(forward())
        R = rng.standard_normal(Y.shape)                     # random upstream gradient: catches transposes

        def L():
            return float(np.sum(np.asarray(forward()) * R))

        forward()
        layer.zero_grad()
        dX = layer.backward(R.copy())
        dX = None if dX is None else np.array(dX)
        params = layer.named_parameters()
        grads = [(name, np.array(p.grad)) for name, p in params]
        checks = [("X", X, dX)] if input_grad else []
        checks += [(name, p.data, g) for (name, g), (_, p) in zip(grads, params)]
        kw = dict(mode=mode, tol=tol, h=h, rng=rng, directions=directions, max_elementwise=max_elementwise)
        return {name: _compare(who, name, x, a, L, **kw) for name, x, a in checks}


def gradcheck_loss(loss, pred, target, *, sample_weight=None, tol=TOL, h=H, mode="auto", rng=None, directions=3,
                   max_elementwise=MAX_ELEMENTWISE):
    """Check ``loss.backward()`` (the gradient of ``loss.forward(pred, target)`` w.r.t. ``pred``) against central
    differences, in float64 on the reference backend. Returns the largest relative error; raises AssertionError
    naming the worst entry on a mismatch."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    who = type(loss).__name__
    loss = copy.deepcopy(loss)
    if "_ws_cache" in vars(loss):
        loss._ws_cache = {}
    loss.__dict__.pop("_wcache", None)
    Z = np.array(kernels.to_host(pred), dtype=np.float64)
    T = np.asarray(kernels.to_host(target))
    T = T.astype(np.float64) if T.dtype.kind == "f" else T
    with kernels.use("numpy"):
        def L():
            return loss.forward(Z, T, sample_weight)

        L()
        analytic = np.array(loss.backward())
        return _compare(who, "pred", Z, analytic, L, mode=mode, tol=tol, h=h, rng=rng, directions=directions,
                        max_elementwise=max_elementwise)
