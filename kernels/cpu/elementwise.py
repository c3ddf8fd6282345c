"""Numba twins of kernels/reference/elementwise.py (formulas there)."""
import math

from numba import njit, prange

from ..dispatch import ops
from ._jit import kernel, threads, vector_kernel


@kernel
def _act1(z, kind, alpha):
    if kind == 1:
        return z if not (z <= 0) else 0.0                    # relu; NaN fails z <= 0: NaN out
    if kind == 2:
        return z if z > 0 else alpha * z
    if kind == 3:
        if z >= 0:
            return 1 / (1 + math.exp(-z))
        e = math.exp(z)
        return e / (1 + e)
    if kind == 4:
        return math.tanh(z)
    if kind == 5:
        return math.exp(z)
    return z


@kernel
def _grad1(y, kind, alpha, one, zero):
    # Constants in the arrays' dtype: float32 models compute in float32 (twice the vector width). The NaN
    # test is a second two-way select, which vectorises; a nested three-way branch did not (act_backward on
    # 128 x 256 float32: 4.4 us before the NaN work, 11 us nested, 3.3 us as written).
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


@kernel
def _act_forward(X, kind, alpha, out):
    x = X.reshape(-1)
    o = out.reshape(-1)
    for i in range(x.size):
        o[i] = _act1(x[i], kind, alpha)


@kernel
def _bias_act(Z, b, kind, alpha, out):
    n, d = Z.shape
    for i in range(n):
        for j in range(d):
            out[i, j] = _act1(Z[i, j] + b[j], kind, alpha)


@kernel
def _act_backward(dY, Y, kind, alpha, out):
    T = out.dtype.type
    one, zero, a = T(1), T(0), T(alpha)
    dy = dY.reshape(-1)
    y = Y.reshape(-1)
    o = out.reshape(-1)
    for i in range(dy.size):
        o[i] = dy[i] * _grad1(y[i], kind, a, one, zero)


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


@ops.act_forward.register("cpu")
def act_forward(X, kind, alpha=0.0, out=None):
    _act_forward(X, kind, alpha, out)
    return out


@ops.bias_act.register("cpu")
def bias_act(Z, b, kind, alpha=0.0, out=None):
    _bias_act(Z, b, kind, alpha, out)
    return out


@ops.act_backward.register("cpu")
def act_backward(dY, Y, kind, alpha=0.0, out=None):
    _act_backward(dY, Y, kind, alpha, out)
    return out


@ops.act_backward_bias.register("cpu")
def act_backward_bias(dY, Y, kind, alpha, dZ, db):
    _act_backward_bias(dY, Y, kind, alpha, dZ, db)
    return dZ


@vector_kernel
def _mul(x, m, o):
    for i in prange(x.size):
        o[i] = x[i] * m[i]


@ops.mul.register("cpu")
def mul(X, M, out=None):
    threads()
    _mul(X.reshape(-1), M.reshape(-1), out.reshape(-1))
    return out


@vector_kernel
def _dropout_mask(u, p, o):
    T = o.dtype.type
    s, p_, zero = T(1.0 / (1.0 - p)), T(p), T(0)
    for i in prange(u.size):
        ui = u[i]
        m = s if ui >= p_ else zero
        o[i] = m if ui == ui else ui                          # NaN where U is NaN


@ops.dropout_mask.register("cpu")
def dropout_mask(U, p, out=None):
    threads()
    _dropout_mask(U.reshape(-1), p, out.reshape(-1))
    return out


@ops.scale.register("cpu")
def scale(X, a):
    threads()
    _scale(X.reshape(-1), a)
    return X


@vector_kernel
def _scale(x, a):
    a_ = x.dtype.type(a)
    for i in prange(x.size):
        x[i] *= a_


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


@vector_kernel
def _fill(x, value):
    v = x.dtype.type(value)
    for i in prange(x.size):
        x[i] = v


@ops.fill.register("cpu")
def fill(X, value):
    threads()
    _fill(X.reshape(-1), value)
    return X


@njit(cache=True, parallel=True, fastmath={"reassoc", "nsz", "contract"})
def _add_l2(w, g, a):
    # fastmath opt-in (reassociation) so that the sum vectorises: one pass, 23 us on 234k float32 weights
    # (G += a W, then a BLAS dot: 47 us). Only the reported L2 value changes, by rounding order (~1e-7 relative).
    a_ = g.dtype.type(a)
    s = g.dtype.type(0)
    for i in prange(w.size):
        wi = w[i]
        g[i] += a_ * wi
        s += wi * wi
    return s


@ops.add_l2.register("cpu")
def add_l2(W, G, a):
    threads()
    return float(_add_l2(W.reshape(-1), G.reshape(-1), a))
