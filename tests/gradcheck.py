r"""Central-difference gradient checker (float64, NumPy reference backend).

For a layer f and a random upstream gradient R, the scalar L(X, θ) = Σ f(X; θ) ⊙ R has
∂L/∂X = backward(R) and ∂L/∂θ = θ.grad. Each is compared with (L(x + h e) - L(x - h e)) / 2h, entry by
entry (``elementwise``) or along one random direction u (``directional``: u·∇L against (L(x+hu)-L(x-hu))/2h).
Error: |a - n| / max(1, |a|, |n|) (relative, with a floor of 1), asserted below ``tol``.
"""
import numpy as np

from tinynn import kernels

H = 1e-6
TOL = 1e-6


def rel_err(a, n):
    return np.max(np.abs(a - n) / np.maximum(1.0, np.maximum(np.abs(a), np.abs(n))))


def numeric_grad(f, x, h=H):
    """∂f/∂x by central differences, perturbing x in place."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def directional(f, x, grad, rng, h=H):
    u = rng.standard_normal(x.shape)
    u /= np.linalg.norm(u) or 1.0
    old = x.copy()
    x[...] = old + h * u
    fp = f()
    x[...] = old - h * u
    fm = f()
    x[...] = old
    return float(np.sum(grad * u)), (fp - fm) / (2 * h)


def check_layer(layer, X, rng, *, reseed=None, tol=TOL, mode="elementwise", input_grad=True):
    """Assert backward == finite differences for X and every parameter of ``layer``."""
    with kernels.use("numpy"):
        def forward():
            if reseed:
                reseed()
            return layer.forward(X)

        Y = np.array(forward())
        R = rng.standard_normal(Y.shape)                      # random upstream gradient: catches transposes

        def L():
            return float(np.sum(np.asarray(forward()) * R))

        forward()
        layer.zero_grad()
        dX = layer.backward(R.copy())
        dX = None if dX is None else np.array(dX)
        grads = [(name, np.array(p.grad)) for name, p in layer.named_parameters()]
        checks = []
        if input_grad:
            checks.append(("X", X, dX))
        for (name, g), (_, p) in zip(grads, layer.named_parameters()):
            checks.append((name, p.data, g))
        for name, x, analytic in checks:
            if mode == "elementwise":
                num = numeric_grad(L, x)
                err = rel_err(analytic, num)
            else:
                a, num = directional(L, x, analytic, rng)
                err = rel_err(np.array(a), np.array(num))
            assert err < tol, f"{type(layer).__name__}: d{name} relative error {err:.2e} >= {tol:g}"


def check_loss(loss, Z, target, tol=TOL, sample_weight=None):
    """Assert loss.backward() == finite differences of loss.forward w.r.t. the prediction."""
    with kernels.use("numpy"):
        def L():
            return loss.forward(Z, target, sample_weight)

        L()
        analytic = np.array(loss.backward())
        num = numeric_grad(L, Z)
        err = rel_err(analytic, num)
        assert err < tol, f"{type(loss).__name__}: relative error {err:.2e} >= {tol:g}"
