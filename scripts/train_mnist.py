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

Parallel training (docs/parallel.md): the same command under MPI, one strategy of tinynn.strategy.STRATEGIES,

    mpiexec -n 2 python scripts/train_mnist.py --data-dir ../shared/data/mnist --parallel data|async|pipeline|tensor

trains through the same Trainer loop with the same files, checkpoints and options (--device cuda too: MPI's
transfers go through host buffers); rank 0 prints and writes.
--resume continues a run bitwise for data (under any number of ranks), pipeline and tensor (under the same
number; every rank writes its own checkpoint file); an async run resumes and finishes.

The 99.3 % plain MLP (99.34 %; about 5.5 min on an idle 2-core machine; docs/generalization.md):

    python scripts/train_mnist.py --data-dir ../shared/data/mnist --out runs/mnist_aug --augment mnist \
        --hidden 1024,1024 --dropout 0.2 --epochs 60 --val-size 0
"""
import argparse
import copy
import os
import shlex
import signal
import sys
import time

import tinynn as tn
import tinynn.augment  # noqa: F401  (tn.augment)
from tinynn import strategy as strategies
from tinynn._runconfig import check_args, load_resume
from tinynn.data import mnist_input_width, mnist_split
from tinynn.plots import plot_curves
from tinynn._write import write_json
from tinynn.errors import DivergenceError, FileFormatError, WriteError
from tinynn.io import checkpoint_epoch
from tinynn.parallel.pipeline import SCHEDULES as PIPELINE_SCHEDULES
from tinynn.tensorboard import TensorBoardCallback
from tinynn.training import Trainer, build_mlp, make_optimizer, save_model, stream

DEFAULTS = dict(epochs=20, batch_size=128, hidden="1024,1024", activation="relu", optimizer="adam", lr=1e-3,
                schedule="cosine", weight_decay=0.0, dropout=0.3, input_dropout=0.0, batch_norm=False,
                init="kaiming_uniform", seed=0, train_size=None, val_size=5000, standardize=False,
                augment=None, snapshots=0, swa=False, ema=0.0, data_dir=None)
PARALLEL_DEFAULTS = dict(parallel="none", microbatches=4, pipeline_schedule="gpipe", staleness_bound=None,
                         overlap=True, bucket_bytes=0)
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
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="write TensorBoard event files into DIR every epoch: losses, accuracies, learning rate, "
                        "weight and gradient histograms per layer (rank 0 only under mpiexec; needs tensorboardX)")
    g = p.add_argument_group("parallel training (run under mpiexec -n N; docs/parallel.md)")
    g.add_argument("--parallel", default="none", choices=sorted(strategies.STRATEGIES),
                   help="data: synchronous data parallel; async: parameter server; pipeline: GPipe/1F1B stages; "
                        "tensor: Megatron column/row-parallel layers; none: one process")
    g.add_argument("--microbatches", type=int, default=PARALLEL_DEFAULTS["microbatches"],
                   help="pipeline: micro-batches per mini-batch")
    g.add_argument("--pipeline-schedule", default=PARALLEL_DEFAULTS["pipeline_schedule"], choices=PIPELINE_SCHEDULES)
    g.add_argument("--staleness-bound", type=int, default=None,
                   help="async: stale-synchronous bound s on the workers' clock difference (default: none)")
    g.add_argument("--no-overlap", dest="overlap", action="store_false",
                   help="data: one blocking allreduce after backward instead of bucketed nonblocking ones")
    g.add_argument("--bucket-bytes", type=int, default=0, help="data: minimum bytes per allreduce bucket")
    p.add_argument("--no-plot", action="store_true", help="do not draw curves.png")
    return p.parse_args(argv)


def config_of(args):
    return {k: getattr(args, k) for k in {**DEFAULTS, **PARALLEL_DEFAULTS}}


def check_config(config):
    """Refuse combinations that cannot work (message for the user), else None."""
    check_args(config)                                  # types and ranges (tinynn._runconfig): ValueError
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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so both end a run the same way."""

    signum = signal.SIGTERM


def _on_sigterm(signum, frame):
    raise Terminated()


def resume_advice(args, group=None):
    """Which checkpoint is on disk (read from the file itself) and the command that continues the run."""
    ckpt = os.path.join(args.out, "checkpoint.npz")
    epoch = checkpoint_epoch(ckpt)
    if epoch is None and args.resume:
        ckpt, epoch = args.resume, checkpoint_epoch(args.resume)
    if epoch is None:
        return "no checkpoint was written yet: run the command again to start over"
    python = os.path.relpath(sys.executable) if not os.path.relpath(sys.executable).startswith("..") \
        else sys.executable
    cmd = [python, os.path.relpath(os.path.abspath(sys.argv[0])) if sys.argv[0].endswith(".py")
           else "scripts/train_mnist.py", "--resume", ckpt, "--epochs", str(args.epochs), "--out", args.out]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if group is not None:
        cmd = ["mpiexec", "-n", str(group.size)] + cmd + ["--parallel", args.parallel]
    return f"the checkpoint of epoch {epoch} is {ckpt}; continue with:\n  {shlex.join(cmd)}"


def main(argv=None):
    args = parse(argv)
    args.running_epoch = None
    group = None
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if args.parallel != "none":                  # under mpiexec: every rank runs this same main()
            from tinynn.parallel import world

            group = world()
        return train(args, group)
    except (FileNotFoundError, FileFormatError) as e:  # a refused --resume checkpoint too: one line
        print(f"error: {e}", file=sys.stderr)
        if group is not None and group.size > 1:
            group.abort(2)                           # every rank ends (they may wait in a collective)
        return 2
    except WriteError as e:                          # no space, file too large, a folder gone: nothing half-written
        print(f"error: {e}\n{resume_advice(args, group)}", file=sys.stderr)
        if group is not None and group.size > 1:
            group.abort(1)
        return 1
    except KeyboardInterrupt as e:                   # Ctrl-C (SIGINT) or SIGTERM: 128 + the signal's number
        signum = getattr(e, "signum", signal.SIGINT)
        code = 128 + int(signum)
        during = f" during epoch {args.running_epoch}" if args.running_epoch else ""
        message = f"\ninterrupted by {signal.Signals(signum).name}{during}; {resume_advice(args, group)}"
        if group is None or group.size == 1:
            print(message, file=sys.stderr, flush=True)
            return code
        # every rank got the signal (mpiexec forwards it). Rank 0 says where to resume, gives mpiexec half a second
        # to relay it, and ends the job; a rank still alive 2 s later found rank 0 blocked in a collective that
        # it left, so it says the same and ends the job itself.
        if group.is_root:
            print(message, file=sys.stderr, flush=True)
            time.sleep(0.5)
        else:
            time.sleep(2.0)
            print(message, file=sys.stderr, flush=True)
            time.sleep(0.5)
        group.abort(code)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(args, group=None):
    """One run: the options of ``args``, the strategy ``args.parallel`` (every rank of ``group`` calls this)."""
    root = group is None or group.is_root
    say = print if root and not args.quiet else (lambda *a, **k: None)
    config = config_of(args)
    arrays = meta = None
    if args.resume:
        # the run's own options, checked with the command line's rules, and its model arrays against the model
        # they describe (older checkpoints: the newer options at their defaults); only --epochs and --parallel
        # may change (pipeline and tensor resume under the same strategy and number of ranks)
        arrays, meta, config = load_resume(args.resume, {**DEFAULTS, **PARALLEL_DEFAULTS},
                                           optional=("augment", "snapshots", "swa", "ema", "data_dir",
                                                     *PARALLEL_DEFAULTS),
                                           epochs=args.epochs,
                                           input_width=lambda c: mnist_input_width(args.data_dir or c.get("data_dir")))
        if args.data_dir is None:                    # the run's own data folder, unless the command names one
            args.data_dir = config.get("data_dir")
        config["data_dir"] = args.data_dir
        config["parallel"] = args.parallel
    try:
        problem = check_config(config)
    except ValueError as e:
        problem = str(e)
    if problem is None and args.device not in strategies.strategy_class(config["parallel"]).devices:
        where = strategies.strategy_class(config["parallel"]).devices
        problem = f"--parallel {config['parallel']} runs on --device {' or '.join(where)}, not {args.device}"
    if problem:
        where = f"{args.resume}: its stored configuration: " if args.resume else ""
        print(f"error: {where}{problem}", file=sys.stderr)
        return 2
    if group is not None:
        import socket

        from tinynn.parallel import check_same

        check_same(group, "configuration (command-line options)", sorted(config.items()))
        where = group.comm.allgather(f"pid {os.getpid()}@{socket.gethostname()}")
        if root:                                     # mpiexec names a process that dies by its pid: which rank
            print("tinynn ranks: " + ", ".join(f"{r}={w}" for r, w in enumerate(where)), file=sys.stderr,
                  flush=True)
    if root:
        os.makedirs(args.out, exist_ok=True)
    Xt, yt, Xv, yv, Xte, yte = mnist_split(args.data_dir, config["seed"], config["val_size"], config["train_size"],
                                           config["standardize"])
    sizes = [Xt.shape[1]] + [int(h) for h in str(config["hidden"]).split(",") if h] + [10]
    spec = dict(sizes=sizes, activation=config["activation"], dropout=config["dropout"], batch_norm=config["batch_norm"],
                dtype="float32", input_dropout=config["input_dropout"])
    model = build_mlp(sizes, config["activation"], config["dropout"], config["batch_norm"], config["init"],
                      seed=config["seed"], input_dropout=config["input_dropout"])
    if args.device != "cpu":
        model.to(args.device)
    strategy = strategies.make(config["parallel"], model, batch_size=config["batch_size"],
                               microbatches=config["microbatches"], schedule=config["pipeline_schedule"],
                               staleness_bound=config["staleness_bound"], overlap=config["overlap"],
                               bucket_bytes=config["bucket_bytes"])
    module = strategy.module                         # what this process trains (the model, a shard, a stage)
    opt = make_optimizer(config["optimizer"], module.parameters(), config["lr"], config["weight_decay"])
    steps = -(-len(Xt) // config["batch_size"])
    sched = make_schedule(config, opt, steps)
    augment = tn.augment.make(config["augment"])
    averages = make_callbacks(config, sched, steps)
    # the TensorBoard logs come last: the averages keep their checkpoint numbers, and the logger has no state
    logs = [TensorBoardCallback(args.tensorboard)] if args.tensorboard and root else []
    trainer = Trainer(module, tn.SoftmaxCrossEntropy(), opt, sched, batch_size=config["batch_size"],
                      rng=stream(config["seed"], "shuffle"), augment=augment,
                      aug_rng=stream(config["seed"], "augment"), callbacks=list(averages.values()) + logs,
                      strategy=strategy)
    if args.resume:
        strategy.load_checkpoint(trainer, args.resume, arrays, meta)
        say(f"resumed from {args.resume} at epoch {trainer.epoch}")
    try:
        return run(args, config, trainer, strategy, averages, augment, spec, steps,
                   (Xt, yt, Xv, yv, Xte, yte), group, say)
    finally:
        for log in logs:
            log.close()


def run(args, config, trainer, strategy, averages, augment, spec, steps, data, group, say):
    """Resume, train, evaluate and write the run's files (``train``'s second half)."""
    root = group is None or group.is_root
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    Xt, yt, Xv, yv, Xte, yte = data
    sizes = spec["sizes"]
    say(f"tinynn MNIST: {'-'.join(map(str, sizes))} {config['activation']}, {config['optimizer']} "
        f"lr={config['lr']} {config['schedule']}, dropout={config['dropout']}, batch={config['batch_size']}, "
        f"train={len(Xt)} val={len(Xv)} test={len(Xte)}, device={args.device}"
        + (f", augment={augment}" if augment else "") + "".join(f", {k}" for k in averages)
        + (f", --parallel {config['parallel']} on {strategy.size} ranks" if group is not None else ""))
    t_start = time.perf_counter()
    stop_at = config["epochs"] if args.stop_after is None else min(config["epochs"], trainer.epoch + args.stop_after)
    if strategy.trains_here:
        code = train_epochs(args, config, trainer, strategy, stop_at, (Xt, yt, Xv, yv), ckpt_path, root, say)
        if code:
            return code
    else:
        strategy.work(trainer, Xt, yt)               # async workers: gradients for rank 0 until it stops them
    extra = strategy.finish()                        # collective: the strategy's measurements
    if "staleness_text" in extra:
        say(extra.pop("staleness_text"))
    if trainer.epoch < config["epochs"] and strategy.trains_here:
        say(f"stopped after epoch {trainer.epoch}; continue with --resume {ckpt_path} --epochs {config['epochs']}")
        return 0
    if not strategy.trains_here:
        return 0
    whole = strategy.gather(trainer)                 # the whole model on rank 0 (collective)
    if root:
        test_loss, test_acc = tn.training.evaluate(whole, Xte, yte)
        curves = {k: trainer.curve(k) for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                                "epoch_seconds")}
        save_model(os.path.join(args.out, "model.npz"), whole, spec)
    averaged = evaluate_averages(averages, strategy, trainer, spec, Xt, Xte, yte, args.out)
    if not root:
        return 0
    metrics = dict(test_accuracy=test_acc, test_loss=test_loss, **curves, config=config,
                   total_seconds=time.perf_counter() - t_start, device=args.device)
    if group is not None:
        metrics["parallel"] = {**strategy.describe(), **extra}
    if augment:
        metrics["augment"] = augment.config()
    if averaged:
        metrics["averages"] = averaged
    write_json(os.path.join(args.out, "metrics.json"), metrics)
    if not args.no_plot:
        plot_curves(curves, os.path.join(args.out, "curves.png"),
                    "tinynn MNIST training" + (f", --parallel {config['parallel']}, {strategy.size} ranks"
                                               if group is not None else ""))
    say(f"test accuracy {100 * test_acc:.2f}%  (test loss {test_loss:.4f}); wrote {args.out}/metrics.json, "
        "curves.png, model.npz, checkpoint.npz")
    for name, r in averaged.items():
        say(f"  {name}: test accuracy {100 * r['test_accuracy']:.2f}%  ({r['what']})")
    return 0


def train_epochs(args, config, trainer, strategy, stop_at, data, ckpt_path, root, say):
    """The epochs of this invocation: train, evaluate on rank 0, record, checkpoint. Returns an exit code."""
    from tqdm import tqdm

    Xt, yt, Xv, yv = data
    while trainer.epoch < stop_at:
        args.running_epoch = trainer.epoch + 1
        bar = tqdm(total=len(Xt), desc=f"epoch {trainer.epoch + 1}/{config['epochs']}", unit="img",
                   leave=False, disable=args.quiet or not root, file=sys.stderr)
        t0 = time.perf_counter()
        try:
            rec = trainer.train_epoch(Xt, yt, progress=bar, accuracy=True)
        except DivergenceError as e:
            print(f"error: {e}", file=sys.stderr)
            return 3
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        whole = strategy.gather(trainer)                 # collective; the whole model on rank 0
        val_loss, val_acc = tn.training.evaluate(whole, Xv, yv) if (root and len(Xv)) else (None, None)
        trainer.record(val_loss=val_loss, val_accuracy=val_acc, epoch_seconds=seconds)
        strategy.save_checkpoint(trainer, ckpt_path, config)
        train_acc = rec.get("train_accuracy")
        vs = f"val loss {val_loss:.4f}  val acc {100 * val_acc:.2f}%" if val_loss is not None else ""
        ta = f"train acc {100 * train_acc:.2f}%  " if train_acc is not None else ""
        say(f"epoch {trainer.epoch:3d}  train loss {rec['train_loss']:.4f}  {ta}{vs}  {seconds:.1f}s")
    args.running_epoch = None
    return 0


def evaluate_averages(averages, strategy, trainer, spec, Xt, Xte, yte, out):
    """Test accuracy of each average (on rank 0; collective under a sharded strategy, whose ranks each hold a
    part of every average): the snapshots' mean softmax; SWA/EMA weights (BatchNorm statistics recomputed on
    the training split), saved as model_swa.npz / model_ema.npz."""
    from tinynn import averaging, kernels

    results = {}
    for name, cb in averages.items():
        if name == "snapshots":
            snaps, whole = [], None
            for snap in cb.snapshots:                    # each snapshot of this rank's part -> the whole model
                with averaging.weights_of(trainer.model, snap):
                    whole = strategy.gather(trainer)
                    if whole is not None:
                        snaps.append(Trainer.capture(whole))
            if whole is not None:
                P = averaging.ensemble_proba(whole, snaps, Xte)
                results[name] = dict(test_accuracy=averaging.accuracy_of_proba(P, yte), count=len(snaps),
                                     what=f"mean softmax of {len(snaps)} snapshots")
            continue
        now = Trainer.capture(trainer.model)
        avg = kernels.to_host(cb.avg) if trainer.model.device == "cpu" else cb.avg
        with averaging.weights_of(trainer.model, (avg, now[1])):
            whole = strategy.gather(trainer)
            m = copy.deepcopy(whole) if whole is not None else None
        if m is None:
            continue
        if averaging.has_batchnorm(m):
            averaging.recompute_batchnorm(m, Xt)
        _, acc = tn.training.evaluate(m, Xte, yte)
        save_model(os.path.join(out, f"model_{name}.npz"), m, spec)
        results[name] = dict(test_accuracy=acc, count=cb.count,
                             what=f"{'mean' if name == 'swa' else 'moving average'} of the weights over "
                                  f"{cb.count} {'epochs' if name == 'swa' else 'steps'}")
    return results


if __name__ == "__main__":
    sys.exit(main())
