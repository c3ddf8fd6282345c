#!/usr/bin/env python
"""Pictures and cost of tinynn's data augmentation.

    python scripts/augment_examples.py --data-dir ../shared/data/mnist --out docs            # the figure
    python scripts/augment_examples.py --data-dir ../shared/data/mnist --out docs --cost     # + the cost

The figure (augment_examples.png, Bishop's figure of distorted copies): a few MNIST digits, then one row per
transform with its default strength, and the "mnist" preset, each a fresh draw.

--cost measures what the augmentation adds to a training epoch: the same MLP (--hidden, default 1024,1024;
ReLU, dropout 0.3, Adam, batch 128) trained through the Trainer on the 60k training images, epochs
alternating without and with --preset (after one warm-up epoch of each, so that compilation is not
counted); medians over --rounds pairs, written to augment_cost.json with the augmentation alone timed per
batch.
"""
import argparse
import os
import sys
import time

import numpy as np

import tinynn as tn
from tinynn.augment import PRESETS, TRANSFORMS, Augment
from tinynn.data import load_mnist
from tinynn.training import Trainer, build_mlp, make_optimizer, stream
from tinynn._write import save_figure, write_json


def figure(X, path, seed=0, n_digits=6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("original", None)] + [(name, Augment.from_spec(name)) for name in TRANSFORMS] + \
           [(f"preset '{p}'", Augment.from_spec(p)) for p in PRESETS]
    digits = X[:n_digits]
    fig, axes = plt.subplots(len(rows), n_digits, figsize=(1.1 * n_digits + 1.6, 1.1 * len(rows)))
    rng = np.random.default_rng(seed)
    for r, (name, aug) in enumerate(rows):
        imgs = digits if aug is None else aug(digits.copy(), rng).copy()
        for c in range(n_digits):
            ax = axes[r, c]
            ax.imshow(imgs[c].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                label = name if aug is None or name.startswith("preset") else f"{name} {TRANSFORMS[name]}"
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("tinynn.augment: random transforms of MNIST digits (one draw each)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def cost(Xtr, ytr, args):
    sizes = [784] + [int(h) for h in args.hidden.split(",") if h] + [10]
    aug = Augment.from_spec(args.preset)

    def trainer(augment):
        model = build_mlp(sizes, "relu", 0.3, seed=0)
        opt = make_optimizer("adam", model.parameters(), 1e-3)
        return Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=128, rng=stream(0, "shuffle"),
                       augment=augment, aug_rng=stream(0, "augment"))

    plain, augmented = trainer(None), trainer(aug)
    plain.train_epoch(Xtr[:2048], ytr[:2048])                     # compile
    augmented.train_epoch(Xtr[:2048], ytr[:2048])
    times = {"plain": [], "augmented": []}
    for r in range(args.rounds):
        for name, t in (("plain", plain), ("augmented", augmented)):
            t0 = time.perf_counter()
            t.train_epoch(Xtr, ytr)
            times[name].append(time.perf_counter() - t0)
            print(f"round {r + 1} {name:9s} {times[name][-1]:.2f} s", flush=True)
    rng = np.random.default_rng(0)                                 # the augmentation alone, per batch
    batch = np.ascontiguousarray(Xtr[:128])
    aug(batch, rng)
    t0 = time.perf_counter()
    reps = 200
    for i in range(reps):
        aug(batch, rng)
    per_batch = (time.perf_counter() - t0) / reps
    med = {k: float(np.median(v)) for k, v in times.items()}
    return dict(model="-".join(map(str, sizes)), batch_size=128, preset=args.preset, augment=aug.config(),
                epoch_seconds=times, median_epoch_seconds=med, overhead=med["augmented"] / med["plain"] - 1,
                augment_ms_per_batch=1e3 * per_batch,
                augment_seconds_per_epoch=per_batch * -(-len(Xtr) // 128), train_images=len(Xtr))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="docs")
    p.add_argument("--cost", action="store_true", help="also measure the cost per epoch (minutes)")
    p.add_argument("--preset", default="mnist")
    p.add_argument("--hidden", default="1024,1024")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--train-size", type=int, default=None)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    Xtr, ytr, _, _ = load_mnist(args.data_dir)
    figure(Xtr, os.path.join(args.out, "augment_examples.png"))
    print(f"wrote {args.out}/augment_examples.png")
    if args.cost:
        if args.train_size:
            Xtr, ytr = Xtr[:args.train_size], ytr[:args.train_size]
        r = cost(Xtr, ytr, args)
        write_json(os.path.join(args.out, "augment_cost.json"), r, indent=1)
        print(f"median epoch: plain {r['median_epoch_seconds']['plain']:.2f} s, augmented "
              f"{r['median_epoch_seconds']['augmented']:.2f} s (+{100 * r['overhead']:.0f} %); augmentation alone "
              f"{r['augment_ms_per_batch']:.2f} ms per batch of 128 = {r['augment_seconds_per_epoch']:.2f} s per epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
