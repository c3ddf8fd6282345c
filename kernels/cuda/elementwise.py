"""CUDA twins of kernels/reference/elementwise.py (formulas there); grid-stride loops."""
import math

import numpy as np
from numba import cuda

from ..cpu import elementwise as cpu_elementwise
from ..dispatch import ops
from .launch import blocks_for, flat, kernel, launch


smooth_act = cuda.jit(device=True)(cpu_elementwise.smooth_act)
smooth_grad = cuda.jit(device=True)(cpu_elementwise.smooth_grad)


@cuda.jit(device=True)
def act1(z, kind, alpha):
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
    if kind >= 6:
        return smooth_act(z, kind, alpha)
    return z


@cuda.jit(device=True)
def grad1(y, kind, alpha):
    if kind == 1:
        g = 1.0 if y > 0 else 0.0                         # relu' = [y > 0]
        return g if y == y else y                         # NaN at NaN
    if kind == 2:
        g = 1.0 if y > 0 else alpha                       # leaky' = 1 or alpha
        return g if y == y else y
    if kind == 3:
        return y * (1 - y)
    if kind == 4:
        return 1 - y * y
    if kind == 5:
        return y
    if kind >= 6:
        return smooth_grad(y, kind, alpha)                # y: the input for gelu, gelu_tanh, silu
    return 1.0


@kernel("{f}[::1], int64, float64, {f}[::1]")
def act_forward_kernel(x, kind, alpha, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = act1(x[i], kind, alpha)


@kernel("{f}[::1], {f}[::1], int64, float64, {f}[::1]")
def bias_act_kernel(z, b, kind, alpha, out):
    d = b.size
    for i in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        out[i] = act1(z[i] + b[i % d], kind, alpha)


@kernel("{f}[::1], {f}[::1], int64, float64, {f}[::1]")
def act_backward_kernel(dy, y, kind, alpha, out):
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        out[i] = dy[i] * grad1(y[i], kind, alpha)


@kernel("{f}[:, ::1], {f}[:, ::1], int64, float64, {f}[:, ::1], {f}[::1]")
def act_backward_bias_kernel(dY, Y, kind, alpha, dZ, db):
    """One thread per column j: dZ[:, j] and db[j] = Σ_i dZ[i, j] (adjacent threads read adjacent columns)."""
    n, d = dY.shape
    for j in range(cuda.grid(1), d, cuda.gridsize(1)):
        s = 0.0
        for i in range(n):
            v = dY[i, j] * grad1(Y[i, j], kind, alpha)
            dZ[i, j] = v
            s += v
        db[j] = s


@ops.act_forward.register("cuda")
def act_forward(X, kind, alpha=0.0, out=None):
    launch(act_forward_kernel, X.size, flat(X), int(kind), float(alpha), flat(out))
    return out


@ops.bias_act.register("cuda")
def bias_act(Z, b, kind, alpha=0.0, out=None):
    launch(bias_act_kernel, Z.size, flat(Z), b, int(kind), float(alpha), flat(out))
    return out


@ops.act_backward.register("cuda")
def act_backward(dY, Y, kind, alpha=0.0, out=None):
    launch(act_backward_kernel, dY.size, flat(dY), flat(Y), int(kind), float(alpha), flat(out))
    return out


@ops.act_backward_bias.register("cuda")
def act_backward_bias(dY, Y, kind, alpha, dZ, db):
    launch(act_backward_bias_kernel, dY.shape[1], dY, Y, int(kind), float(alpha), dZ, db)
    return dZ


@kernel("{f}[::1], {f}[::1], {f}[::1]")
def mul_kernel(x, m, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = x[i] * m[i]


@ops.mul.register("cuda")
def mul(X, M, out=None):
    launch(mul_kernel, X.size, flat(X), flat(M), flat(out))
    return out


@kernel("{f}[::1], float64, {f}[::1]")
def dropout_mask_kernel(u, p, out):
    s = 1.0 / (1.0 - p)
    for i in range(cuda.grid(1), u.size, cuda.gridsize(1)):
        ui = u[i]
        m = s if ui >= p else 0.0
        out[i] = m if ui == ui else ui                        # NaN where U is NaN


@ops.dropout_mask.register("cuda")
def dropout_mask(U, p, out=None):
    launch(dropout_mask_kernel, U.size, flat(U), float(p), flat(out))
    return out


@kernel("{f}[::1], float64")
def scale_kernel(x, a):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        x[i] *= a


@ops.scale.register("cuda")
def scale(X, a):
    launch(scale_kernel, X.size, flat(X), float(a))
    return X


@kernel("{f}[::1], float64")
def fill_kernel(x, value):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        x[i] = value


@ops.fill.register("cuda")
def fill(X, value):
    launch(fill_kernel, X.size, flat(X), float(value))
    return X


@kernel("{f}[::1], {f}[::1]")
def accumulate_kernel(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        x[i] += y[i]


@ops.accumulate.register("cuda")
def accumulate(X, Y):
    launch(accumulate_kernel, X.size, flat(X), flat(Y))
    return X


@kernel("{f}[::1], {f}[::1], float64, float64")
def lerp_kernel(r, x, m, c):
    for i in range(cuda.grid(1), r.size, cuda.gridsize(1)):
        r[i] = (1 - m) * r[i] + m * c * x[i]


@ops.lerp.register("cuda")
def lerp(R, X, m, c):
    launch(lerp_kernel, R.size, flat(R), flat(X), float(m), float(c))
    return R


@kernel("{f}[:, ::1], int64[::1], {f}[:, ::1]")
def gather_kernel(W, idx, out):
    d = W.shape[1]
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        i, j = k // d, k % d
        r = idx[i]
        out[i, j] = W[r, j] if 0 <= r < W.shape[0] else math.nan   # never read out of bounds


@kernel("{f}[:, ::1], int64[::1], {f}[:, ::1]")
def scatter_kernel(dY, idx, dW):
    d = dW.shape[1]
    for k in range(cuda.grid(1), dY.size, cuda.gridsize(1)):
        i, j = k // d, k % d
        r = idx[i]
        if 0 <= r < dW.shape[0]:
            cuda.atomic.add(dW, (r, j), dY[i, j])                    # repeated indices add up


@ops.embedding_gather.register("cuda")
def embedding_gather(W, idx, out=None):
    launch(gather_kernel, out.size, W, idx, out)
    return out


@ops.embedding_scatter.register("cuda")
def embedding_scatter(dY, idx, dW):
    fill(dW, 0.0)
    launch(scatter_kernel, dY.size, dY, idx, dW)
    return dW


@kernel("{f}[::1], {f}[::1], float64, float64[::1]")
def add_l2_kernel(w, g, a, partial):
    t = cuda.grid(1)
    s = 0.0
    for i in range(t, w.size, cuda.gridsize(1)):
        g[i] += a * w[i]
        s += w[i] * w[i]
    partial[t] = s


@ops.add_l2.register("cuda")
def add_l2(W, G, a):
    blocks, tpb = blocks_for(W.size)
    partial = cuda.device_array(blocks * tpb, dtype=np.float64)
    add_l2_kernel[blocks, tpb](flat(W), flat(G), float(a), partial)
    return float(partial.copy_to_host().sum())
