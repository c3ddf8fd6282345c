#!/usr/bin/env python
"""Train an MLP on MNIST with tinynn's layer API: progress bars, curves, a model file and checkpoints.

    python scripts/train_mnist.py --data-dir ../shared/data/mnist --out runs/mnist

Writes into --out: metrics.json, curves.png, model.npz (tinynn.training.load_model reads it back) and
checkpoint.npz after every epoch (atomically). --resume OUT/checkpoint.npz --epochs N continues to epoch N
and ends bitwise identical to an uninterrupted run (CPU), augmentation and averages included.

Generalization options: --augment mnist (or a comma list of transforms: translate, rotate, scale, shear,
elastic, brightness, contrast, noise; name=value sets a strength, elastic=ALPHA:SIGMA), applied on the fly to
every training batch (tinynn.augment); --snapshots M (snapshot ensemble over M cosine cycles), --swa
(stochastic weight averaging over the last quarter), --ema DECAY (moving average of the weights): the test
accuracy of each average is reported beside the single model's (tinynn.averaging).

The 99.3 % plain MLP (99.34 %; about 5.5 min on an idle 2-core machine; docs/generalization.md):

    python scripts/train_mnist.py --data-dir ../shared/data/mnist --out runs/mnist_aug --augment mnist \
        --hidden 1024,1024 --dropout 0.2 --epochs 60 --val-size 0
"""
import argparse
import json
import os
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinynn as tn  # noqa: E402
import tinynn.augment  # noqa: E402,F401  (tn.augment)
from tinynn import io  # noqa: E402
from tinynn.data import mnist_split  # noqa: E402
from tinynn.plots import plot_curves  # noqa: E402
from tinynn.errors import DivergenceError  # noqa: E402
from tinynn.training import Trainer, build_mlp, make_optimizer, save_model, stream  # noqa: E402

DEFAULTS = dict(epochs=20, batch_size=128, hidden="1024,1024", activation="relu", optimizer="adam", lr=1e-3,
                schedule="cosine", weight_decay=0.0, dropout=0.3, input_dropout=0.0, batch_norm=False,
                init="kaiming_uniform", seed=0, train_size=None, val_size=5000, standardize=False,
                augment=None, snapshots=0, swa=False, ema=0.0)
SWA_START = 0.75                          # --swa averages the epochs after this fraction of the run


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
    p.add_argument("--augment", default=DEFAULTS["augment"], metavar="SPEC",
                   help=f"augment each training batch: a preset ({', '.join(sorted(tn.augment.PRESETS))}) or a comma "
                        f"list of transforms ({', '.join(tn.augment.TRANSFORMS)}), each name or name=value "
                        "(elastic=ALPHA:SIGMA)")
    p.add_argument("--snapshots", type=int, default=DEFAULTS["snapshots"], metavar="M",
                   help="snapshot ensemble: M cosine cycles with restarts (replaces --schedule), a snapshot at the "
                        "end of each, predictions averaged over their softmax outputs")
    p.add_argument("--swa", action="store_true", default=DEFAULTS["swa"],
                   help="stochastic weight averaging over the last quarter of the epochs (schedule: cosine down to "
                        "lr/10 over the first three quarters, then constant; replaces --schedule)")
    p.add_argument("--ema", type=float, default=DEFAULTS["ema"], metavar="DECAY",
                   help="exponential moving average of the weights after every step (e.g. 0.999)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", default="runs/mnist")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="stop after N epochs of this invocation (as if interrupted); --resume continues. "
                        "Schedules span --epochs, so resuming a run that stopped this way is bitwise exact")
    p.add_argument("--quiet", action="store_true")
    from tinynn.parallel.cli import add_arguments

    add_arguments(p)                       # --parallel data|async|pipeline|tensor ... (run under mpiexec -n N)
    return p.parse_args(argv)


def config_of(args):
    return {k: getattr(args, k) for k in DEFAULTS}


def check_config(config):
    """Refuse combinations that cannot work (message for the user), else None."""
    if config["augment"]:
        tn.augment.make(config["augment"])                          # unknown names: ValueError listing them
        if config["standardize"]:
            return "--augment works on raw pixels in [0, 1] (zero outside the image); leave out --standardize"
    if config["snapshots"] < 0 or config["snapshots"] == 1:
        return "--snapshots M needs M >= 2 cycles (0: off)"
    if config["snapshots"] and config["swa"]:
        return "--snapshots and --swa each set the learning-rate schedule; choose one"
    if config["ema"] and not 0 < config["ema"] < 1:
        return "--ema DECAY needs 0 < DECAY < 1"
    if config["swa"] and config["epochs"] < 2:
        return "--swa needs at least 2 epochs"
    return None


def make_schedule(config, opt, steps):
    """The run's schedule: --schedule, or the one --snapshots / --swa need."""
    total = config["epochs"] * steps
    if config["snapshots"]:
        return tn.schedules.make("cosine_restarts", opt, total, steps, cycles=config["snapshots"])
    if config["swa"]:
        return tn.schedules.make("swa", opt, total, steps, swa_start=swa_start_epoch(config) / config["epochs"])
    return tn.schedules.make(config["schedule"], opt, total, steps)


def swa_start_epoch(config):
    """SWA averages after epochs swa_start+1 .. epochs (the schedule is constant from swa_start on)."""
    return min(config["epochs"] - 1, max(1, int(round(SWA_START * config["epochs"]))))


def make_callbacks(config, sched, steps):
    """[SnapshotEnsemble?, SWA?, EMA?] in this fixed order (their checkpoint entries are numbered by it)."""
    from tinynn import averaging

    named = {}
    if config["snapshots"]:
        named["snapshots"] = averaging.SnapshotEnsemble.for_schedule(sched, config["epochs"] * steps)
    if config["swa"]:
        named["swa"] = averaging.SWA(start=swa_start_epoch(config) + 1)
    if config["ema"]:
        named["ema"] = averaging.EMA(config["ema"])
    return named


def main(argv=None):
    args = parse(argv)
    if args.parallel != "none":            # MPI strategies (tinynn.parallel): rank 0 writes the same files
        bad = [f for f in ("augment", "snapshots", "swa", "ema") if getattr(args, f)] + \
            (["device"] if args.device != "cpu" else [])
        if bad:
            print(f"error: --parallel does not combine with {', '.join('--' + b for b in bad)} yet",
                  file=sys.stderr)
            return 2
        from tinynn.parallel.cli import run

        args.no_plot = False
        return run(args)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    resume = None
    config = config_of(args)
    if args.resume:
        arrays, meta = io.load_npz(args.resume, kind="checkpoint")
        # the run's own options (older checkpoints: the new options off); only --epochs may change
        config = {**{k: DEFAULTS[k] for k in ("augment", "snapshots", "swa", "ema")}, **meta["config"],
                  "epochs": args.epochs}
        resume = (arrays, meta)
    try:
        problem = check_config(config)
    except ValueError as e:
        problem = str(e)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        Xt, yt, Xv, yv, Xte, yte = mnist_split(args.data_dir, config["seed"], config["val_size"],
                                               config["train_size"], config["standardize"])
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
    sched = make_schedule(config, opt, steps)
    augment = tn.augment.make(config["augment"])
    averages = make_callbacks(config, sched, steps)
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), opt, sched, batch_size=config["batch_size"],
                      rng=stream(config["seed"], "shuffle"), augment=augment,
                      aug_rng=stream(config["seed"], "augment"), callbacks=list(averages.values()))
    if resume:
        trainer.load_state(*resume)
        if not args.quiet:
            print(f"resumed from {args.resume} at epoch {trainer.epoch}")
    if not args.quiet:
        print(f"tinynn MNIST: {'-'.join(map(str, sizes))} {config['activation']}, {config['optimizer']} "
              f"lr={config['lr']} {config['schedule']}, dropout={config['dropout']}, batch={config['batch_size']}, "
              f"train={len(Xt)} val={len(Xv)} test={len(Xte)}, device={args.device}"
              + (f", augment={augment}" if augment else "")
              + "".join(f", {k}" for k in averages))
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
    averaged = evaluate_averages(averages, model, spec, Xt, Xte, yte, args.out)
    metrics = dict(test_accuracy=test_acc, test_loss=test_loss, **curves, config=config,
                   total_seconds=time.perf_counter() - t_start, device=args.device)
    if augment:
        metrics["augment"] = augment.config()
    if averaged:
        metrics["averages"] = averaged
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    save_model(os.path.join(args.out, "model.npz"), model, spec)
    plot_curves(curves, os.path.join(args.out, "curves.png"))
    if not args.quiet:
        print(f"test accuracy {100 * test_acc:.2f}%  (test loss {test_loss:.4f}); wrote {args.out}/metrics.json, "
              "curves.png, model.npz, checkpoint.npz")
        for name, r in averaged.items():
            print(f"  {name}: test accuracy {100 * r['test_accuracy']:.2f}%  ({r['what']})")
    return 0


def evaluate_averages(averages, model, spec, Xt, Xte, yte, out):
    """Test accuracy of each average: the snapshots' mean softmax; SWA/EMA weights (BatchNorm statistics
    recomputed on the training split), saved as model_swa.npz / model_ema.npz."""
    from tinynn import averaging

    results = {}
    for name, cb in averages.items():
        if name == "snapshots":
            P = cb.predict_proba(model, Xte)
            results[name] = dict(test_accuracy=averaging.accuracy_of_proba(P, yte), count=len(cb.snapshots),
                                 what=f"mean softmax of {len(cb.snapshots)} snapshots")
        else:
            m = cb.averaged_model(model, Xt if averaging.has_batchnorm(model) else None)
            _, acc = tn.training.evaluate(m, Xte, yte)
            save_model(os.path.join(out, f"model_{name}.npz"), m, spec)
            results[name] = dict(test_accuracy=acc, count=cb.count,
                                 what=f"{'mean' if name == 'swa' else 'moving average'} of the weights over "
                                      f"{cb.count} {'epochs' if name == 'swa' else 'steps'}")
    return results


if __name__ == "__main__":
    sys.exit(main())
