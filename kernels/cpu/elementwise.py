"""Numba twins of kernels/reference/elementwise.py (formulas there)."""
import math

import numpy as np

from ..config import GELU, IDENTITY, RELU
from ..dispatch import ops
from ._jit import cached, inline, kernel


@inline
def _act1(z, kind, alpha, zero, one):
    # Inlined into each loop, where LLVM hoists the test of ``kind`` out of the loop (one vectorised loop
    # per activation). Constants come in the arrays' dtype: every branch returns that type (a float64 branch
    # made the whole loop float64 and scalar: bias + ReLU 20 µs instead of 1.6 µs on 128 x 256 float32), and
    # float32 computes in float32 as the reference does.
    if kind == 1:
        return z if not (z <= zero) else zero                 # relu; NaN fails z <= 0: NaN out
    if kind == 2:
        return z if z > zero else alpha * z
    if kind == 3:
        if z >= zero:
            return one / (one + math.exp(-z))
        e = math.exp(z)
        return e / (one + e)
    if kind == 4:
        return math.tanh(z)
    if kind == 5:
        return math.exp(z)
    return z


@inline
def _grad1(y, kind, alpha, one, zero):
    # The NaN test is a second two-way select, which vectorises; a nested three-way branch did not.
    if kind == 1:
        g = one if y > 0 else zero                        # relu' = [y > 0]
        return g if y == y else y                         # NaN at NaN
    if kind == 2:
        g = one if y > 0 else alpha                       # leaky' = 1 or alpha
        return g if y == y else y
    if kind == 3:
        return y * (one - y)
    if kind == 4:
        return one - y * y
    if kind == 5:
        return y
    return one


def smooth_act(z, kind, a):
    """The smooth activations (codes 6-10; formulas in kernels/reference/elementwise.py), in float64. A shared
    body (CPU: inlined; CUDA: a device function): only ``math`` and its arguments."""
    x = float(z)
    if kind == 6:                                                     # gelu: ½ x (1 + erf(x/√2))
        return 0.5 * x * (1.0 + math.erf(x * 0.7071067811865476))
    if kind == 7:                                                     # gelu_tanh
        return 0.5 * x * (1.0 + math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    if kind == 8:                                                     # silu: x σ(x)
        if x >= 0:
            return x / (1.0 + math.exp(-x))
        e = math.exp(x)
        return x * e / (1.0 + e)
    if kind == 9:                                                     # elu (NaN takes the else branch: NaN)
        return x if x > 0 else a * math.expm1(x)
    return (x if x > 0 else 0.0) + math.log1p(math.exp(-a * abs(x))) / a      # softplus, beta = a


def smooth_grad(v, kind, a):
    """Their derivatives, from the saved output (elu, softplus) or input (gelu, gelu_tanh, silu), in float64."""
    x = float(v)
    if kind == 9:
        return 1.0 if x > 0 else x + a                                # elu' from Y (NaN: NaN + a)
    if kind == 10:
        return -math.expm1(-a * x)                                    # softplus' = σ(βx) = 1 - e^(-βY)
    if kind == 6:
        return 0.5 * (1.0 + math.erf(x * 0.7071067811865476)) + x * math.exp(-0.5 * x * x) * 0.3989422804014327
    if kind == 7:
        t = math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3 * 0.044715 * x * x)
    if x >= 0:                                                        # silu' = σ (1 + x (1 - σ))
        s = 1.0 / (1.0 + math.exp(-x))
    else:
        e = math.exp(x)
        s = e / (1.0 + e)
    return s * (1.0 + x * (1.0 - s))


_smooth_act = inline(smooth_act)
_smooth_grad = inline(smooth_grad)


@kernel
def _smooth_inplace(x, kind, alpha):
    for i in range(x.size):
        x[i] = _smooth_act(x[i], kind, alpha)


@kernel
def _smooth_backward_inplace(g, v, kind, alpha):
    for i in range(g.size):
        g[i] = g[i] * _smooth_grad(v[i], kind, alpha)


@kernel
def _act_inplace(x, kind, alpha):
    T = x.dtype.type
    a, zero, one = T(alpha), T(0), T(1)
    for i in range(x.size):
        x[i] = _act1(x[i], kind, a, zero, one)


@kernel
def _bias_act_inplace(Y, b, kind, alpha):
    T = Y.dtype.type
    a, zero, one = T(alpha), T(0), T(1)
    n, d = Y.shape
    for i in range(n):
        for j in range(d):
            Y[i, j] = _act1(Y[i, j] + b[j], kind, a, zero, one)


@kernel
def _bias_relu_inplace(Y, b):
    # _bias_act_inplace for ReLU alone, the default activation: without the other five branches it compiles
    # in half the time (0.07 s instead of 0.16 s), which a new user's first fit pays. Written out, not as
    # _bias_act_inplace's loop with the kind a constant: Numba types every branch before LLVM folds them, and
    # that version compiled in 0.11 s (the backward twin in 0.25 s instead of 0.10 s).
    zero = Y.dtype.type(0)
    n, d = Y.shape
    for i in range(n):
        for j in range(d):
            z = Y[i, j] + b[j]
            Y[i, j] = z if not (z <= zero) else zero


@kernel
def _act_backward_inplace(g, y, kind, alpha):
    T = g.dtype.type
    one, zero, a = T(1), T(0), T(alpha)
    for i in range(g.size):
        g[i] = g[i] * _grad1(y[i], kind, a, one, zero)


@kernel
def _act_backward_bias(dY, Y, kind, alpha, dZ, db):
    T = dZ.dtype.type
    one, zero, a = T(1), T(0), T(alpha)
    n, d = dY.shape
    db[:] = 0
    for i in range(n):
        for j in range(d):
            v = dY[i, j] * _grad1(Y[i, j], kind, a, one, zero)
            dZ[i, j] = v
            db[j] += v


@kernel
def _relu_backward_bias(dY, Y, dZ, db):
    # _act_backward_bias for ReLU alone (compile time, as _bias_relu_inplace)
    T = dZ.dtype.type
    one, zero = T(1), T(0)
    n, d = dY.shape
    db[:] = 0
    for i in range(n):
        for j in range(d):
            y = Y[i, j]
            g = one if y > 0 else zero
            v = dY[i, j] * (g if y == y else y)
            dZ[i, j] = v
            db[j] += v


def _into(out, X):
    """The ops below compute in place (the vectorised form, module docstring of _jit): ``out`` = X first."""
    if out is not X:
        np.copyto(out, X)
    return out


def _on_flat(out, run):
    """run(o) with ``out`` as one flat array: a view when ``out`` is C-contiguous, else a contiguous copy that is
    written back (reshape(-1) of a strided array is a copy: the kernel's writes would be lost)."""
    if out.flags.c_contiguous:
        run(out.reshape(-1))
    else:
        o = np.ascontiguousarray(out).reshape(-1)
        run(o)
        out[...] = o.reshape(out.shape)
    return out


@ops.act_forward.register("cpu")
def act_forward(X, kind, alpha=0.0, out=None):
    if kind >= GELU:                                          # the smooth ones: kernels of their own, so that the
        return _on_flat(_into(out, X), lambda o: _smooth_inplace(o, kind, float(alpha)))   # others compile as fast
    return _on_flat(_into(out, X), lambda o: _act_inplace(o, kind, alpha))


@ops.bias_act.register("cpu")
def bias_act(Z, b, kind, alpha=0.0, out=None):
    if kind >= GELU:
        np.add(Z, b, out=out)
        return act_forward(out, kind, alpha, out=out)
    if kind == IDENTITY:                                      # an output layer: NumPy's add (no compilation,
        np.add(Z, b, out=out)                                 # the same rounding)
    elif kind == RELU:
        _bias_relu_inplace(_into(out, Z), b)
    else:
        _bias_act_inplace(_into(out, Z), b, kind, alpha)
    return out


@ops.act_backward.register("cpu")
def act_backward(dY, Y, kind, alpha=0.0, out=None):
    if out is not dY and np.may_share_memory(out, Y):          # out = Y: Y must be read before it is written
        out[...] = act_backward(dY, Y.copy(), kind, alpha, out=np.empty_like(out))
        return out
    if kind >= GELU:
        return _on_flat(_into(out, dY), lambda o: _smooth_backward_inplace(o, Y.reshape(-1), kind, float(alpha)))
    return _on_flat(_into(out, dY), lambda o: _act_backward_inplace(o, Y.reshape(-1), kind, alpha))


@ops.act_backward_bias.register("cpu")
def act_backward_bias(dY, Y, kind, alpha, dZ, db):
    if kind >= GELU:
        act_backward(dY, Y, kind, alpha, out=dZ)
        np.sum(dZ, axis=0, out=db)
        return dZ
    if kind == RELU:
        _relu_backward_bias(dY, Y, dZ, db)
    else:
        _act_backward_bias(dY, Y, kind, alpha, dZ, db)
    return dZ


@kernel
def _mul(x, m, o):
    for i in range(x.size):
        o[i] = x[i] * m[i]


@ops.mul.register("cpu")
def mul(X, M, out=None):
    return _on_flat(out, lambda o: _mul(X.reshape(-1), M.reshape(-1), o))


@kernel
def _dropout_mask(u, p, o):
    T = o.dtype.type
    s, p_, zero = T(1.0 / (1.0 - p)), T(p), T(0)
    for i in range(u.size):
        ui = u[i]
        m = s if ui >= p_ else zero
        o[i] = m if ui == ui else ui                          # NaN where U is NaN


@ops.dropout_mask.register("cpu")
def dropout_mask(U, p, out=None):
    return _on_flat(out, lambda o: _dropout_mask(U.reshape(-1), p, o))


@ops.scale.register("cpu")
def scale(X, a):
    return _on_flat(X, lambda x: _scale(x, a))


@kernel
def _scale(x, a):
    a_ = x.dtype.type(a)
    for i in range(x.size):
        x[i] *= a_


@kernel
def _accumulate(x, y):
    for i in range(x.size):
        x[i] += y[i]


@ops.accumulate.register("cpu")
def accumulate(X, Y):
    return _on_flat(X, lambda x: _accumulate(x, np.ascontiguousarray(Y).reshape(-1)))


@kernel
def _lerp(R, X, m, c):
    r, x = R.reshape(-1), X.reshape(-1)
    for i in range(r.size):
        r[i] = (1 - m) * r[i] + m * c * x[i]


@ops.lerp.register("cpu")
def lerp(R, X, m, c):
    _lerp(R, X, m, c)
    return R


@kernel
def _gather(W, idx, out):
    for i in range(idx.size):
        out[i, :] = W[idx[i], :]


@kernel
def _scatter(dY, idx, dW):
    dW[:, :] = 0
    for i in range(idx.size):  # serial: repeated indices add without races
        dW[idx[i], :] += dY[i, :]


@ops.embedding_gather.register("cpu")
def embedding_gather(W, idx, out=None):
    _gather(W, idx, out)
    return out


@ops.embedding_scatter.register("cpu")
def embedding_scatter(dY, idx, dW):
    _scatter(dY, idx, dW)
    return dW


@ops.fill.register("cpu")
def fill(X, value):
    X.fill(value)                                             # NumPy's own fill (memset for zeros)
    return X


@cached(nogil=True, error_model="numpy", fastmath={"reassoc", "nsz", "contract"})
def _add_l2(w, g, a):
    # fastmath opt-in (reassociation) so that the sum vectorises: one pass, 23 us on 234k float32 weights
    # (G += a W, then a BLAS dot: 47 us). Only the reported L2 value changes, by rounding order (~1e-7 relative).
    a_ = g.dtype.type(a)
    s = g.dtype.type(0)
    for i in range(w.size):
        wi = w[i]
        g[i] += a_ * wi
        s += wi * wi
    return s


@ops.add_l2.register("cpu")
def add_l2(W, G, a):
    return float(_add_l2(W.reshape(-1), G.reshape(-1), a))
