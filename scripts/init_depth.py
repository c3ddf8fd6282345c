#!/usr/bin/env python
"""The lectures' initialisation experiment: a 50-layer ReLU MLP of width 100 on a batch of MNIST, weights
drawn from N(0, c/n) for c = 1, 2, 3.

Forward: the norm of each layer's activations; backward: the norm of each layer's weight gradient.
With c = 1 (variance 1/n) the signal halves in energy at every ReLU layer and vanishes; c = 2 (He) keeps it;
c = 3 makes it explode. Then a few epochs of training with c = 2 show how far each layer's weights moved,
||W_T - W_0|| / ||W_0||.

    python scripts/init_depth.py --data-dir ../shared/data/mnist --out runs/init_depth
"""
import argparse
import os
import sys

import numpy as np

import tinynn as tn
from tinynn.data import load_mnist
from tinynn.strategy import LocalStrategy
from tinynn.training import Trainer
from tinynn._write import save_figure, write_json


def deep_mlp(c, depth, width, d_in, seed, dtype=np.float64):
    """depth × (Linear(n, width) with W ~ N(0, c/n), ReLU), then Linear(width, 10)."""
    rng = np.random.default_rng(seed)
    init = lambda shape, r, dt: tn.init.normal(shape, r, dt, c=c)  # noqa: E731
    layers = []
    for i in range(depth):
        layers += [tn.Linear(d_in if i == 0 else width, width, dtype=dtype, init=init, rng=rng), tn.ReLU()]
    layers.append(tn.Linear(width, 10, dtype=dtype, init="lecun_normal", rng=rng))
    return tn.Sequential(*layers)


def norms(model, X, y, depth):
    """Per hidden layer: ‖activation‖ (Frobenius, after the ReLU) and ‖∂L/∂W‖."""
    loss = tn.SoftmaxCrossEntropy()
    loss(model.forward(X), y)
    model.backward(loss.backward())
    acts = [float(np.linalg.norm(model.output(2 * i + 1))) for i in range(depth)]
    grads = [float(np.linalg.norm(model.layers[2 * i].weight.grad)) for i in range(depth)]
    return acts, grads


class ClippedGradients(LocalStrategy):
    """One process's step, with the gradient's norm clipped to ``max_norm`` between backward and the
    optimizer step (the Trainer's ``forward_backward`` hook)."""

    def __init__(self, model, max_norm):
        super().__init__(model)
        self.max_norm = max_norm

    def forward_backward(self, trainer, Xb, Tb, sample_weight=None):
        value = super().forward_backward(trainer, Xb, Tb, sample_weight)
        tn.optim.clip_grad_norm_(trainer.model.parameters(), self.max_norm)
        return value


def train_movement(X, y, depth, width, epochs, seed, lr):
    """SGD with momentum 0.9, batch 128, gradient norm clipped to 5, through the Trainer."""
    model = deep_mlp(2.0, depth, width, X.shape[1], seed)
    W0 = [model.layers[2 * i].weight.data.copy() for i in range(depth)]
    opt = tn.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=128, rng=np.random.default_rng(seed),
                      strategy=ClippedGradients(model, 5.0))
    for _ in range(epochs):
        trainer.train_epoch(X, y)
    model.eval()
    acc = float(np.mean(np.argmax(model.forward(X), axis=1) == y))
    moved = [float(np.linalg.norm(model.layers[2 * i].weight.data - W0[i]) / np.linalg.norm(W0[i]))
             for i in range(depth)]
    return moved, acc


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for key, ax, title in [("activation_norms", axes[0], "forward: ‖activations‖ per layer"),
                           ("gradient_norms", axes[1], "backward: ‖∂L/∂W‖ per layer")]:
        for name, vals in result[key].items():
            ax.semilogy(np.arange(1, len(vals) + 1), vals, label=f"N(0, {name})")
        ax.set_xlabel("layer"), ax.set_title(title), ax.legend(), ax.grid(alpha=0.3, which="both")
    mv = result["weight_movement"]["relative_change"]
    axes[2].plot(np.arange(1, len(mv) + 1), mv, "o-", ms=3)
    axes[2].set_xlabel("layer"), axes[2].set_ylabel("‖W_T - W_0‖ / ‖W_0‖")
    axes[2].set_title(f"after {result['weight_movement']['epochs']} epochs (2/n init)"), axes[2].grid(alpha=0.3)
    fig.suptitle(f"{result['depth']}-layer ReLU MLP, width {result['width']}")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--depth", type=int, default=50)
    p.add_argument("--width", type=int, default=100)
    p.add_argument("--batch", type=int, default=256, help="images in the measured batch")
    p.add_argument("--train-size", type=int, default=5000, help="images for the weight-movement run")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/init_depth")
    args = p.parse_args(argv)
    try:
        Xtr, ytr, _, _ = load_mnist(args.data_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    Xtr = Xtr.astype(np.float64)
    X, y = Xtr[:args.batch], ytr[:args.batch]
    result = {"depth": args.depth, "width": args.width, "batch": args.batch,
              "activation_norms": {}, "gradient_norms": {}}
    for c, name in [(1.0, "1/n"), (2.0, "2/n"), (3.0, "3/n")]:
        acts, grads = norms(deep_mlp(c, args.depth, args.width, X.shape[1], args.seed), X, y, args.depth)
        result["activation_norms"][name] = acts
        result["gradient_norms"][name] = grads
        print(f"N(0, {name}): activation norm layer 1 {acts[0]:.3g} -> layer {args.depth} {acts[-1]:.3g} "
              f"(ratio {acts[-1] / acts[0]:.3g}); weight-gradient norm layer 1 {grads[0]:.3g}, "
              f"layer {args.depth} {grads[-1]:.3g}")
    moved, acc = train_movement(Xtr[:args.train_size], ytr[:args.train_size], args.depth, args.width, args.epochs,
                                args.seed, args.lr)
    result["weight_movement"] = {"epochs": args.epochs, "train_size": args.train_size, "relative_change": moved,
                                 "train_accuracy": acc}
    print(f"after {args.epochs} epochs (2/n): ||W_T - W_0||/||W_0|| first layer {moved[0]:.3g}, "
          f"middle {moved[len(moved) // 2]:.3g}, last {moved[-1]:.3g}; train accuracy {100 * acc:.1f}%")
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "init_depth.json"), result, indent=1)
    plot(result, os.path.join(args.out, "init_depth.png"))
    print(f"wrote {args.out}/init_depth.json and init_depth.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
