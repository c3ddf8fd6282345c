#!/usr/bin/env python
"""How many weights does L1 set to exactly zero, and what does it cost in accuracy?

A 784-256-10 ReLU MLP is trained on an MNIST subset with proximal SGD (tinynn.optim.SGD(l1=c,
l1_mode="proximal", l1_scope="weights"): the plain step, then θ ← sign(θ) max(|θ| - η c, 0) on the weight
matrices; biases free), which minimises L + c Σ|W| (c = λ/2 in the lectures' λ/2 ‖w‖₁), once per strength
c. For each: the share of weights that are exactly 0 (all, per layer), the input pixels whose 256 outgoing
weights are all 0 (the model ignores them), the hidden units with no nonzero incoming weight, and the
train and test accuracy. Writes l1_sparsity.json.

    python scripts/l1_sparsity.py --data-dir ../shared/data/mnist --out docs
    python scripts/l1_sparsity.py --quick --out /tmp/l1            # a few hundred images, one epoch (tests)
"""
import argparse
import os
import platform
import sys
import time

import numpy as np

import tinynn as tn
from tinynn.data import load_mnist
from tinynn.training import Trainer, build_mlp
from tinynn._write import write_json


def accuracy(model, X, y, batch_size=2000):
    model.eval()
    correct = sum(int(np.sum(np.argmax(model.forward(X[s:s + batch_size]), axis=1) == y[s:s + batch_size]))
                  for s in range(0, len(X), batch_size))
    model.train()
    return correct / len(X)


def run(c, X, y, Xt, yt, args):
    model = build_mlp([X.shape[1], args.hidden, 10], seed=args.seed)     # the same start for every strength
    opt = tn.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, l1=c, l1_mode="proximal",
                       l1_scope="weights")
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=args.batch_size,
                      rng=np.random.default_rng(args.seed + 1))
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        trainer.train_epoch(X, y)
    seconds = time.perf_counter() - t0
    W1, W2 = model[0].weight.data, model[2].weight.data
    W = model.flat.data[:model.flat.n_first]                              # every weight matrix, one slice
    return {"l1": c, "lambda_lectures": 2 * c, "train_seconds": seconds,
            "zero_share": float(np.mean(W == 0)), "zero_share_layer1": float(np.mean(W1 == 0)),
            "zero_share_layer2": float(np.mean(W2 == 0)), "nonzero_weights": int(np.count_nonzero(W)),
            "weights": int(W.size), "ignored_pixels": int(np.sum(np.all(W1 == 0, axis=1))),
            "dead_hidden_units": int(np.sum(np.all(W1 == 0, axis=0))),
            "l1_norm": float(np.abs(W).sum()),
            "train_accuracy": accuracy(model, X, y), "test_accuracy": accuracy(model, Xt, yt)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="MNIST folder (else $TINYNN_DATA_DIR, else the cache)")
    p.add_argument("--out", required=True, help="folder for l1_sparsity.json")
    p.add_argument("--quick", action="store_true", help="a few hundred images, one epoch, two strengths (tests)")
    p.add_argument("--strengths", default="0,1e-5,3e-5,1e-4,3e-4,1e-3,3e-3", help="the L1 coefficients c")
    p.add_argument("--train-size", type=int, default=60000)
    p.add_argument("--test-size", type=int, default=10000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.0,
                   help="0: proximal SGD proper; with μ > 0 the fixed point is that of c (1-μ) (tinynn.optim.SGD)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.train_size, args.test_size, args.epochs, args.strengths = 500, 500, 1, "0,1e-2"
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    try:
        strengths = [float(s) for s in args.strengths.split(",")]
    except ValueError:
        p.error(f"--strengths: expected comma-separated numbers, got {args.strengths!r}")
    try:
        Xtr, ytr, Xte, yte = load_mnist(args.data_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pick = np.random.default_rng(args.seed).permutation(len(Xtr))[:args.train_size]
    X, y, Xt, yt = Xtr[pick], ytr[pick], Xte[:args.test_size], yte[:args.test_size]
    config = {k: v for k, v in vars(args).items() if k not in ("out", "data_dir", "quiet")}
    config["strengths"] = strengths
    result = {"config": config, "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}, numpy {np.__version__}", "runs": []}
    for c in strengths:
        r = run(c, X, y, Xt, yt, args)
        result["runs"].append(r)
        log(f"l1 {c:g}: {100 * r['zero_share']:.1f}% of the weights exactly 0 "
            f"(layer 1 {100 * r['zero_share_layer1']:.1f}%, "
            f"layer 2 {100 * r['zero_share_layer2']:.1f}%), {r['ignored_pixels']} pixels ignored, "
            f"{r['dead_hidden_units']} hidden units cut off; train {100 * r['train_accuracy']:.2f}%, test "
            f"{100 * r['test_accuracy']:.2f}% ({r['train_seconds']:.1f} s)")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "l1_sparsity.json")
    write_json(path, result, indent=1)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
