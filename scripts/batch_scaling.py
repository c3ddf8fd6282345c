#!/usr/bin/env python
"""How does the batch size change training, and how should the learning rate follow it?

    python scripts/batch_scaling.py --data-dir ../shared/data/mnist --out runs/batch_scaling

trains the same MLP (784-256-128-10 ReLU, SGD momentum 0.9, cosine decay, the same number of epochs) through
tinynn's Trainer at batch sizes 32 ... 8192 under three rules for the learning rate, from a base rate
``--base-lr`` tuned at ``--base-batch``:

    fixed    η(B) = η₀                                    (change the batch, keep the rate)
    linear   η(B) = η₀ B / B₀ with a linear warm-up over the first --warmup-epochs   (Goyal et al. 2017)
    sqrt     η(B) = η₀ √(B / B₀)                          (Krizhevsky 2014; Hoffer et al. 2017)

After every epoch the test accuracy is measured (not timed); the time to the target accuracy --target is the
training time until the first epoch that reaches it. Writes into --out batch_scaling.json (every run, every
epoch) and batch_scaling.png (final test accuracy and time to target against the batch size). A run whose
loss diverges is recorded as diverged (the Trainer's divergence guard stops it).
"""
import argparse
import math
import os
import sys
import time

import numpy as np

import tinynn as tn
from tinynn.data import load_mnist
from tinynn.errors import DivergenceError
from tinynn.training import Trainer, build_mlp, make_optimizer, stream
from tinynn._write import save_figure, write_json

RULES = {
    "fixed": lambda base_lr, b, b0: base_lr,
    "linear": lambda base_lr, b, b0: base_lr * b / b0,
    "sqrt": lambda base_lr, b, b0: base_lr * math.sqrt(b / b0),
}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--batch-sizes", default="32,128,512,2048,8192")
    p.add_argument("--rules", default=",".join(RULES), help=f"comma list from {sorted(RULES)}")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", default="256,128")
    p.add_argument("--optimizer", default="sgd", choices=sorted(tn.optim.OPTIMIZERS))
    p.add_argument("--base-lr", type=float, default=0.05)
    p.add_argument("--base-batch", type=int, default=128)
    p.add_argument("--warmup-epochs", type=float, default=2.0, help="linear rule: warm-up length in epochs")
    p.add_argument("--target", type=float, default=0.975, help="test accuracy for the time-to-target")
    p.add_argument("--train-size", type=int, default=None, help="train on a subset (quick runs)")
    p.add_argument("--test-size", type=int, default=None, help="evaluate on a subset (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def make_schedule(rule, opt, total, steps, warmup_epochs):
    if rule == "linear":
        warm = max(1, min(total - 1, int(round(warmup_epochs * steps)))) if total > 1 else 1
        after = tn.schedules.CosineAnnealingLR(opt, T_max=max(1, total - warm))
        return tn.schedules.LinearWarmup(opt, warmup_steps=warm, after=after)
    return tn.schedules.CosineAnnealingLR(opt, T_max=max(1, total))


def run_one(rule, batch, lr, data, args, sizes):
    Xt, yt, Xte, yte = data
    model = build_mlp(sizes, "relu", 0.0, False, seed=args.seed)
    opt = make_optimizer(args.optimizer, model.parameters(), lr)
    steps = -(-len(Xt) // batch)
    sched = make_schedule(rule, opt, args.epochs * steps, steps, args.warmup_epochs)
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), opt, sched, batch_size=batch, rng=stream(args.seed, "shuffle"))
    rec = dict(rule=rule, batch_size=batch, lr=lr, steps_per_epoch=steps, epochs=[], diverged=False)
    seconds = 0.0
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        try:
            r = trainer.train_epoch(Xt, yt)
        except DivergenceError as e:
            rec["diverged"] = True
            rec["error"] = str(e)
            break
        seconds += time.perf_counter() - t0
        loss, acc = trainer.evaluate(Xte, yte)
        rec["epochs"].append(dict(epoch=epoch + 1, train_loss=r["train_loss"], test_loss=loss, test_accuracy=acc,
                                  seconds=seconds))
        if not math.isfinite(loss):
            rec["diverged"] = True
            break
    accs = [e["test_accuracy"] for e in rec["epochs"]]
    rec["final_test_accuracy"] = None if rec["diverged"] or not accs else accs[-1]
    rec["best_test_accuracy"] = max(accs) if accs else None
    rec["train_seconds"] = seconds
    rec["seconds_per_epoch"] = seconds / len(accs) if accs else None
    hit = next((e for e in rec["epochs"] if e["test_accuracy"] >= args.target), None)
    rec["time_to_target"] = hit["seconds"] if hit else None
    rec["epochs_to_target"] = hit["epoch"] if hit else None
    return rec


def plot(results, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    diverged = []
    for i, rule in enumerate(sorted({r["rule"] for r in results}, key=list(RULES).index)):
        rs = sorted((r for r in results if r["rule"] == rule), key=lambda r: r["batch_size"])
        B = [r["batch_size"] for r in rs]
        acc = [100 * r["final_test_accuracy"] if r["final_test_accuracy"] is not None else np.nan for r in rs]
        a.plot(B, acc, "o-", color=f"C{i}", label=rule)
        diverged += [(r["batch_size"], i) for r in rs if r["diverged"]]
        tt = [r["time_to_target"] if r["time_to_target"] is not None else np.nan for r in rs]
        b.plot(B, tt, "o-", color=f"C{i}", label=rule)
    for ax in (a, b):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.grid(alpha=0.3)
        ax.legend(title="learning-rate rule")
    lo = a.get_ylim()[0]
    for bs, i in diverged:                                  # diverged runs: a cross on the bottom edge
        a.plot([bs], [lo], "x", color=f"C{i}", ms=10, mew=2, clip_on=False)
    a.set_ylabel(f"test accuracy after {args.epochs} epochs (%)")
    a.set_title("accuracy (same number of epochs; x: diverged)")
    if any(r["time_to_target"] for r in results):
        b.set_yscale("log")
    b.set_ylabel(f"training seconds to {100 * args.target:.1f} % test accuracy")
    b.set_title("time to target (missing: never reached)")
    fig.suptitle(f"batch size vs learning rate: MLP {args.hidden}, {args.optimizer}, base lr {args.base_lr} "
                 f"at batch {args.base_batch}")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse(argv)
    os.makedirs(args.out, exist_ok=True)
    batches = [int(b) for b in args.batch_sizes.split(",") if b]
    rules = [r for r in args.rules.split(",") if r]
    for r in rules:
        if r not in RULES:
            print(f"error: unknown rule {r!r}; expected one of {sorted(RULES)}", file=sys.stderr)
            return 2
    try:
        Xtr, ytr, Xte, yte = load_mnist(args.data_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.train_size:
        Xtr, ytr = Xtr[:args.train_size], ytr[:args.train_size]
    if args.test_size:
        Xte, yte = Xte[:args.test_size], yte[:args.test_size]
    sizes = [Xtr.shape[1]] + [int(h) for h in args.hidden.split(",") if h] + [10]
    # compile the kernels once, outside every timed epoch
    run_one("fixed", min(batches), args.base_lr, (Xtr[:256], ytr[:256], Xte[:64], yte[:64]),
            argparse.Namespace(**{**vars(args), "epochs": 1}), sizes)
    results = []
    for rule in rules:
        for b in batches:
            lr = RULES[rule](args.base_lr, b, args.base_batch)
            r = run_one(rule, b, lr, (Xtr, ytr, Xte, yte), args, sizes)
            results.append(r)
            if not args.quiet:
                fa = "diverged" if r["diverged"] else f"{100 * r['final_test_accuracy']:.2f}%"
                tt = f"{r['time_to_target']:.1f}s" if r["time_to_target"] is not None else "never"
                print(f"{rule:6s} batch {b:5d} lr {lr:8.4f}: test acc {fa:>8s}  "
                      f"{r['seconds_per_epoch'] or 0:.2f} s/epoch  to {100 * args.target:.1f}%: {tt}", flush=True)
    out = dict(config=vars(args), sizes=sizes, results=results)
    write_json(os.path.join(args.out, "batch_scaling.json"), out, indent=1)
    plot(results, args, os.path.join(args.out, "batch_scaling.png"))
    if not args.quiet:
        print(f"wrote {args.out}/batch_scaling.json, batch_scaling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
