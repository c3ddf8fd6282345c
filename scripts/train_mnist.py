#!/usr/bin/env python
"""Train an MLP on MNIST with tinynn's layer API: progress bars, curves, a model file and checkpoints.

    python scripts/train_mnist.py --data-dir ../shared/data/mnist --out runs/mnist

Writes into --out: metrics.json, curves.png, model.npz (tinynn.training.load_model reads it back) and
checkpoint.npz after every epoch (atomically). --resume OUT/checkpoint.npz --epochs N continues to epoch N
and ends bitwise identical to an uninterrupted run (CPU).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinynn as tn  # noqa: E402
from tinynn import io  # noqa: E402
from tinynn.data import load_mnist  # noqa: E402
from tinynn.errors import DivergenceError  # noqa: E402
from tinynn.training import Trainer, build_mlp, make_optimizer, save_model, stream  # noqa: E402

DEFAULTS = dict(epochs=20, batch_size=128, hidden="1024,1024", activation="relu", optimizer="adam", lr=1e-3,
                schedule="cosine", weight_decay=0.0, dropout=0.3, input_dropout=0.0, batch_norm=False,
                init="kaiming_uniform", seed=0, train_size=None, val_size=5000, standardize=False)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST IDX .gz files "
                   "(default: $TINYNN_DATA_DIR, else the cache ~/.cache/tinynn/mnist, downloading if needed)")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--hidden", default=DEFAULTS["hidden"], help="hidden layer sizes, e.g. 1024,1024")
    p.add_argument("--activation", default=DEFAULTS["activation"], choices=sorted(tn.ACTIVATIONS))
    p.add_argument("--optimizer", default=DEFAULTS["optimizer"], choices=sorted(tn.optim.OPTIMIZERS))
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--schedule", default=DEFAULTS["schedule"], choices=sorted(tn.schedules.SCHEDULES),
                   help="per-step schedule over all epochs (warmup_cosine: one epoch of warm-up)")
    p.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"])
    p.add_argument("--dropout", type=float, default=DEFAULTS["dropout"], help="dropout after each hidden layer")
    p.add_argument("--input-dropout", type=float, default=DEFAULTS["input_dropout"], help="dropout on the pixels")
    p.add_argument("--batch-norm", action="store_true", default=DEFAULTS["batch_norm"])
    p.add_argument("--standardize", action="store_true", default=DEFAULTS["standardize"],
                   help="standardise pixels with the training split's mean and std")
    p.add_argument("--init", default=DEFAULTS["init"], choices=sorted(tn.init.INITIALIZERS))
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--train-size", type=int, default=DEFAULTS["train_size"], help="train on a subset (quick runs)")
    p.add_argument("--val-size", type=int, default=DEFAULTS["val_size"], help="held out from the training set")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", default="runs/mnist")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="stop after N epochs of this invocation (as if interrupted); --resume continues. "
                        "Schedules span --epochs, so resuming a run that stopped this way is bitwise exact")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def config_of(args):
    return {k: getattr(args, k) for k in DEFAULTS}


def split(args, config):
    Xtr, ytr, Xte, yte = load_mnist(args.data_dir)
    rng = np.random.default_rng(config["seed"])
    order = rng.permutation(len(Xtr))
    val = order[:config["val_size"]]
    train = order[config["val_size"]:]
    if config["train_size"]:
        train = train[:config["train_size"]]
    Xv, yv = Xtr[val], ytr[val]
    Xt, yt = Xtr[train], ytr[train]
    if config["standardize"]:
        Xt, Xv, Xte = tn.data.standardize(Xt, Xv, Xte)
    return Xt, yt, Xv, yv, Xte, yte


def plot_curves(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = np.arange(1, len(history["train_loss"]) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, history["train_loss"], "o-", label="train")
    if history.get("val_loss") and history["val_loss"][0] is not None:
        a.plot(ep, history["val_loss"], "o-", label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("cross-entropy"), a.set_yscale("log"), a.legend(), a.grid(alpha=0.3)
    if history.get("train_accuracy") and history["train_accuracy"][0] is not None:
        b.plot(ep, 100 * np.array(history["train_accuracy"]), "o-", color="C0", label="train (running, dropout on)")
    if history.get("val_accuracy") and history["val_accuracy"][0] is not None:
        b.plot(ep, 100 * np.array(history["val_accuracy"]), "o-", color="C1", label="validation")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy (%)"), b.legend(), b.grid(alpha=0.3)
    fig.suptitle("tinynn MNIST training")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse(argv)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    resume = None
    config = config_of(args)
    if args.resume:
        arrays, meta = io.load_npz(args.resume, kind="checkpoint")
        config = dict(meta["config"], epochs=args.epochs)  # the run's own options; only --epochs may change
        resume = (arrays, meta)
    try:
        Xt, yt, Xv, yv, Xte, yte = split(args, config)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sizes = [Xt.shape[1]] + [int(h) for h in str(config["hidden"]).split(",") if h] + [10]
    spec = dict(sizes=sizes, activation=config["activation"], dropout=config["dropout"], batch_norm=config["batch_norm"],
                dtype="float32", input_dropout=config["input_dropout"])
    model = build_mlp(sizes, config["activation"], config["dropout"], config["batch_norm"], config["init"],
                      seed=config["seed"], input_dropout=config["input_dropout"])
    if args.device != "cpu":
        model.to(args.device)
    opt = make_optimizer(config["optimizer"], model.parameters(), config["lr"], config["weight_decay"])
    steps = -(-len(Xt) // config["batch_size"])
    sched = tn.schedules.make(config["schedule"], opt, config["epochs"] * steps, steps)
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), opt, sched, batch_size=config["batch_size"],
                      rng=stream(config["seed"], "shuffle"))
    if resume:
        trainer.load_state(*resume)
        if not args.quiet:
            print(f"resumed from {args.resume} at epoch {trainer.epoch}")
    if not args.quiet:
        print(f"tinynn MNIST: {'-'.join(map(str, sizes))} {config['activation']}, {config['optimizer']} "
              f"lr={config['lr']} {config['schedule']}, dropout={config['dropout']}, batch={config['batch_size']}, "
              f"train={len(Xt)} val={len(Xv)} test={len(Xte)}, device={args.device}")
    from tqdm import tqdm

    t_start = time.perf_counter()
    stop_at = config["epochs"] if args.stop_after is None else min(config["epochs"], trainer.epoch + args.stop_after)
    while trainer.epoch < stop_at:
        bar = tqdm(total=len(Xt), desc=f"epoch {trainer.epoch + 1}/{config['epochs']}", unit="img",
                   leave=False, disable=args.quiet, file=sys.stderr)
        t0 = time.perf_counter()
        try:
            rec = trainer.train_epoch(Xt, yt, progress=bar, accuracy=True)
        except DivergenceError as e:
            print(f"error: {e}", file=sys.stderr)
            return 3
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        val_loss, val_acc = trainer.evaluate(Xv, yv) if len(Xv) else (None, None)
        trainer.record(val_loss=val_loss, val_accuracy=val_acc, epoch_seconds=seconds)
        trainer.save_checkpoint(ckpt_path, config)
        if not args.quiet:
            train_acc = rec.get("train_accuracy")
            vs = f"val loss {val_loss:.4f}  val acc {100 * val_acc:.2f}%" if val_loss is not None else ""
            ta = f"train acc {100 * train_acc:.2f}%  " if train_acc is not None else ""
            print(f"epoch {trainer.epoch:3d}  train loss {rec['train_loss']:.4f}  {ta}{vs}  {seconds:.1f}s")
    if trainer.epoch < config["epochs"]:
        if not args.quiet:
            print(f"stopped after epoch {trainer.epoch}; continue with --resume {ckpt_path} --epochs {config['epochs']}")
        return 0
    test_loss, test_acc = trainer.evaluate(Xte, yte)
    curves = {k: trainer.curve(k) for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                            "epoch_seconds")}
    metrics = dict(test_accuracy=test_acc, test_loss=test_loss, **curves, config=config,
                   total_seconds=time.perf_counter() - t_start, device=args.device)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    save_model(os.path.join(args.out, "model.npz"), model, spec)
    plot_curves(curves, os.path.join(args.out, "curves.png"))
    if not args.quiet:
        print(f"test accuracy {100 * test_acc:.2f}%  (test loss {test_loss:.4f}); wrote {args.out}/metrics.json, "
              "curves.png, model.npz, checkpoint.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
