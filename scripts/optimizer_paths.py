#!/usr/bin/env python
"""The lectures' picture: optimizer trajectories on an ill-conditioned quadratic.

f(θ) = ½ θᵀ P θ + qᵀ θ with P's eigenvalues 20 and 1 (condition number 20), rotated 30°. From the same start:
GD with a small and a large step, Momentum, Nesterov, Adam and Newton (which lands on the minimum -P⁻¹q in
one step). Every method is tinynn.optim's, fed the exact gradient Pθ + q.

    python scripts/optimizer_paths.py --out docs
"""
import argparse
import os
import sys

import numpy as np

import tinynn as tn
from tinynn._write import save_figure

c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
R = np.array([[c, -s], [s, c]])
P = R @ np.diag([20.0, 1.0]) @ R.T
THETA_STAR = np.array([1.0, -0.5])
q = -P @ THETA_STAR                      # so that the minimum -P⁻¹q is THETA_STAR
START = np.array([-2.5, 2.2])


def f(theta):
    return 0.5 * theta @ P @ theta + q @ theta


def path(make, steps):
    p = tn.Parameter(START.copy())
    opt = make([p])

    def closure():
        p.grad[...] = P @ p.data + q     # ∇f = Pθ + q
        return f(p.data)

    out = [p.data.copy()]
    for _ in range(steps):
        if isinstance(opt, tn.optim.Newton):
            opt.step(closure)
        else:
            closure()
            opt.step()
        out.append(p.data.copy())
    return np.array(out)


METHODS = [
    ("GD, small step (η=0.02)", lambda ps: tn.optim.SGD(ps, lr=0.02), 40),
    ("GD, large step (η=0.095)", lambda ps: tn.optim.SGD(ps, lr=0.095), 40),
    ("Momentum (η=0.25, β=0.9)", lambda ps: tn.optim.Momentum(ps, lr=0.25, beta=0.9), 40),
    ("Nesterov (η=0.25, β=0.9)", lambda ps: tn.optim.Momentum(ps, lr=0.25, beta=0.9, nesterov=True), 40),
    ("Adam (η=0.3)", lambda ps: tn.optim.Adam(ps, lr=0.3), 40),
    ("Newton (one step)", lambda ps: tn.optim.Newton(ps, lr=1.0), 1),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(args.out, exist_ok=True)
    xs, ys = np.meshgrid(np.linspace(-3.2, 3.2, 300), np.linspace(-3.2, 3.2, 300))
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1)
    zs = (0.5 * np.einsum("ni,ij,nj->n", pts, P, pts) + pts @ q).reshape(xs.shape)
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.contour(xs, ys, zs - f(THETA_STAR), levels=np.geomspace(0.02, 120, 14), cmap="viridis", linewidths=0.6, alpha=0.6)
    for name, make, steps in METHODS:
        pth = path(make, steps)
        ax.plot(pth[:, 0], pth[:, 1], "o-", ms=3, lw=1.3, label=f"{name}: f - f* = {f(pth[-1]) - f(THETA_STAR):.1e}")
        print(f"{name:28s} after {steps:2d} steps: f - f* = {f(pth[-1]) - f(THETA_STAR):.3e}")
    ax.plot(*START, "ks", ms=8, label="start")
    ax.plot(*THETA_STAR, "r*", ms=14, label="minimum")
    ax.set_xlim(-3.2, 3.2), ax.set_ylim(-3.2, 3.2), ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("½θᵀPθ + qᵀθ, condition number 20: tinynn.optim trajectories")
    fig.tight_layout()
    out = os.path.join(args.out, "optimizer_paths.png")
    save_figure(fig, out, dpi=110)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
