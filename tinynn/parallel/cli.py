"""Parallel MNIST training, the four strategies behind one command:

    mpiexec -n 2 python -m tinynn.parallel.cli --parallel data|async|pipeline|tensor [--microbatches 4] ...

(the same options as scripts/train_mnist.py, plus the parallel ones; ``add_arguments``/``run`` let that script
offer ``--parallel`` itself). Every rank loads the data and builds the same model from the seed; rank 0 alone
prints and writes metrics.json, curves.png and model.npz (the whole model, the arrays and names of a
single-process run: it loads with tinynn.training.load_model and predicts anywhere), and, for ``data``,
checkpoint.npz after every epoch (``--resume`` continues it under any number of ranks).

* data:     synchronous data parallelism through tinynn.training.Trainer (strategy=DataParallel)
* async:    rank 0 parameter server, ranks 1… workers (Downpour); ``--staleness-bound s`` for SSP
* pipeline: one stage per rank, ``--microbatches M``, ``--pipeline-schedule gpipe|1f1b``
* tensor:   Megatron column/row-parallel Linear pairs
* none:     one process (the reference the others are compared with)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

STRATEGIES = ("none", "data", "async", "pipeline", "tensor")
DEFAULTS = dict(epochs=20, batch_size=128, hidden="1024,1024", activation="relu", optimizer="adam", lr=1e-3,
                schedule="cosine", weight_decay=0.0, dropout=0.3, input_dropout=0.0, batch_norm=False,
                init="kaiming_uniform", seed=0, train_size=None, val_size=5000, standardize=False)
PARALLEL_DEFAULTS = dict(parallel="none", microbatches=4, pipeline_schedule="gpipe", staleness_bound=None,
                         overlap=True, bucket_bytes=0)


def add_arguments(p):
    """The parallel options (for scripts/train_mnist.py's parser too)."""
    g = p.add_argument_group("parallel training (run under mpiexec -n N)")
    g.add_argument("--parallel", default="none", choices=STRATEGIES,
                   help="data: synchronous data parallel; async: parameter server; pipeline: GPipe/1F1B stages; "
                        "tensor: Megatron column/row-parallel layers")
    g.add_argument("--microbatches", type=int, default=4, help="pipeline: micro-batches per mini-batch")
    g.add_argument("--pipeline-schedule", default="gpipe", choices=["gpipe", "1f1b"])
    g.add_argument("--staleness-bound", type=int, default=None,
                   help="async: stale-synchronous bound s on the workers' clock difference (default: none)")
    g.add_argument("--no-overlap", dest="overlap", action="store_false",
                   help="data: one blocking allreduce after backward instead of bucketed nonblocking ones")
    g.add_argument("--bucket-bytes", type=int, default=0, help="data: minimum bytes per allreduce bucket")
    return p


def parse(argv=None):
    import tinynn as tn

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="the global batch size")
    p.add_argument("--hidden", default=DEFAULTS["hidden"])
    p.add_argument("--activation", default=DEFAULTS["activation"], choices=sorted(tn.ACTIVATIONS))
    p.add_argument("--optimizer", default=DEFAULTS["optimizer"], choices=sorted(tn.optim.OPTIMIZERS))
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--schedule", default=DEFAULTS["schedule"])
    p.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"])
    p.add_argument("--dropout", type=float, default=DEFAULTS["dropout"])
    p.add_argument("--input-dropout", type=float, default=DEFAULTS["input_dropout"])
    p.add_argument("--batch-norm", action="store_true", default=DEFAULTS["batch_norm"])
    p.add_argument("--standardize", action="store_true", default=DEFAULTS["standardize"])
    p.add_argument("--init", default=DEFAULTS["init"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--train-size", type=int, default=DEFAULTS["train_size"])
    p.add_argument("--val-size", type=int, default=DEFAULTS["val_size"])
    p.add_argument("--out", default="runs/mnist_parallel")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT", help="data (and none): continue a checkpoint")
    p.add_argument("--stop-after", type=int, default=None, metavar="N")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quiet", action="store_true")
    add_arguments(p)
    return p.parse_args(argv)


def split(data_dir, config):
    """scripts/train_mnist.py's split (tinynn.data.mnist_split)."""
    from ..data import mnist_split

    return mnist_split(data_dir, config["seed"], config["val_size"], config["train_size"], config["standardize"])


class _Log:
    def __init__(self, quiet, root):
        self.on = root and not quiet

    def __call__(self, *a):
        if self.on:
            print(*a, flush=True)


def run(args):
    """Train as ``args`` says (an argparse namespace with train_mnist's options and ``add_arguments``'s)."""
    from .. import io
    from ..training import build_mlp, save_model

    strategy = getattr(args, "parallel", "none")
    group = None
    if strategy != "none":
        from .comm import world

        group = world()
    root = group is None or group.is_root
    size = 1 if group is None else group.size
    log = _Log(args.quiet, root)
    config = {k: getattr(args, k, v) for k, v in DEFAULTS.items()}
    resume = None
    if getattr(args, "resume", None):
        if strategy not in ("none", "data"):
            raise ValueError(f"--resume: checkpoints are written by --parallel data and none, not {strategy}")
        arrays, meta = io.load_npz(args.resume, kind="checkpoint")
        config = dict(meta["config"], epochs=args.epochs)
        resume = (arrays, meta)
    pconf = {k: getattr(args, k, v) for k, v in PARALLEL_DEFAULTS.items()}
    if group is not None:
        from .comm import check_same

        check_same(group, "configuration (command-line options)", sorted({**config, **pconf}.items()))
    Xt, yt, Xv, yv, Xte, yte = split(args.data_dir, config)
    sizes = [Xt.shape[1]] + [int(h) for h in str(config["hidden"]).split(",") if h] + [10]
    spec = dict(sizes=sizes, activation=config["activation"], dropout=config["dropout"],
                batch_norm=config["batch_norm"], dtype="float32", input_dropout=config["input_dropout"])
    model = build_mlp(sizes, config["activation"], config["dropout"], config["batch_norm"], config["init"],
                      seed=config["seed"], input_dropout=config["input_dropout"])
    log(f"tinynn MNIST, --parallel {strategy} on {size} rank(s): {'-'.join(map(str, sizes))} "
        f"{config['activation']}, {config['optimizer']} lr={config['lr']} {config['schedule']}, "
        f"dropout={config['dropout']}, global batch={config['batch_size']}, train={len(Xt)} val={len(Xv)}")
    t_start = time.perf_counter()
    fn = {"none": _run_data, "data": _run_data, "async": _run_async, "pipeline": _run_pipeline,
          "tensor": _run_tensor}[strategy]
    out = fn(model, config, pconf, (Xt, yt, Xv, yv), group, log, args, resume)
    if out is None:                                   # stopped early (--stop-after): checkpoint written
        return 0
    history, extra = out
    if root:
        from ..training import evaluate

        test_loss, test_acc = evaluate(model, Xte, yte)
        metrics = dict(test_accuracy=test_acc, test_loss=test_loss, **history, config=config,
                       parallel=dict(pconf, ranks=size, **extra), total_seconds=time.perf_counter() - t_start,
                       device="cpu")
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
        save_model(os.path.join(args.out, "model.npz"), model, spec)
        if not getattr(args, "no_plot", False):
            plot_curves(history, os.path.join(args.out, "curves.png"), f"--parallel {strategy}, {size} ranks")
        log(f"test accuracy {100 * test_acc:.2f}%  (test loss {test_loss:.4f}); wrote {args.out}/metrics.json, "
            "model.npz")
    if group is not None:
        group.barrier()
    return 0


def _schedule(config, opt, steps):
    from .. import schedules

    return schedules.make(config["schedule"], opt, config["epochs"] * steps, steps)


def _sched_step(sched):
    if sched is not None and getattr(sched, "unit", "step") == "step":
        sched.step()


def _epoch_line(log, epoch, total, loss, val, seconds):
    vs = f"  val loss {val[0]:.4f}  val acc {100 * val[1]:.2f}%" if val[0] is not None else ""
    log(f"epoch {epoch:3d}/{total}  train loss {loss:.4f}{vs}  {seconds:.2f}s")


def _record(history, **kv):
    for k, v in kv.items():
        history.setdefault(k, []).append(v)


# ---------------------------------------------------------------------- data parallel (and one process)
def _run_data(model, config, pconf, data, group, log, args, resume):
    from ..losses import SoftmaxCrossEntropy
    from ..training import Trainer, make_optimizer, stream
    from .data import DataParallel

    Xt, yt, Xv, yv = data
    strategy = None
    if group is not None:
        strategy = DataParallel(model, group, batch_size=config["batch_size"], overlap=pconf["overlap"],
                                bucket_bytes=pconf["bucket_bytes"])
    opt = make_optimizer(config["optimizer"], model.parameters(), config["lr"], config["weight_decay"])
    steps = -(-len(Xt) // config["batch_size"])
    sched = _schedule(config, opt, steps)
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, sched, batch_size=config["batch_size"],
                      rng=stream(config["seed"], "shuffle"), strategy=strategy)
    if resume:
        trainer.load_state(*resume)                          # which calls strategy.on_load()
        log(f"resumed from {args.resume} at epoch {trainer.epoch}")
    root = strategy is None or strategy.is_root
    ckpt = os.path.join(args.out, "checkpoint.npz")
    stop_at = config["epochs"]
    if getattr(args, "stop_after", None):
        stop_at = min(stop_at, trainer.epoch + args.stop_after)
    while trainer.epoch < stop_at:
        t0 = time.perf_counter()
        rec = trainer.train_epoch(Xt, yt, accuracy=True)
        seconds = time.perf_counter() - t0
        val = trainer.evaluate(Xv, yv) if (len(Xv) and root) else (None, None)
        trainer.record(val_loss=val[0], val_accuracy=val[1], epoch_seconds=seconds)
        if root:
            trainer.save_checkpoint(ckpt, config)
        _epoch_line(log, trainer.epoch, config["epochs"], rec["train_loss"], val, seconds)
    if trainer.epoch < config["epochs"]:
        log(f"stopped after epoch {trainer.epoch}; continue with --resume {ckpt} --epochs {config['epochs']}")
        return None
    history = {k: trainer.curve(k) for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                             "epoch_seconds")}
    extra = {}
    if strategy is not None:
        strategy.check_replicas()
        st = strategy.stats
        extra = {"allreduce_wait_s_per_step": st["wait_s"] / max(1, st["steps"]), "buckets": len(strategy.buckets),
                 "bytes_per_step": st["bytes"] / max(1, st["steps"])}
    return history, extra


# ---------------------------------------------------------------------- asynchronous (parameter server)
def _run_async(model, config, pconf, data, group, log, args, resume):
    from ..kernels import ops
    from ..losses import SoftmaxCrossEntropy
    from ..training import evaluate, make_optimizer, stream
    from .async_sgd import ParameterServer, Worker, check_start, worker_batches, worker_stream
    from .data import per_rank_dropout

    Xt, yt, Xv, yv = data
    check_start(group, model, config["batch_size"])
    steps = -(-len(Xt) // config["batch_size"])
    total = config["epochs"] * steps
    history = {}
    if group.is_root:
        opt = make_optimizer(config["optimizer"], model.parameters(), config["lr"], config["weight_decay"])
        sched = _schedule(config, opt, steps)
        acc = {"loss": 0.0, "rows": 0, "correct": 0, "t0": time.perf_counter()}

        def on_step(t, info):
            _sched_step(sched)
            acc["loss"] += info["loss"] * info["rows"]
            acc["rows"] += info["rows"]
            acc["correct"] += info["correct"]
            if t % steps == 0 or t == total:
                seconds = time.perf_counter() - acc["t0"]
                val = evaluate(model, Xv, yv) if len(Xv) else (None, None)
                model.train()
                _record(history, train_loss=acc["loss"] / acc["rows"], train_accuracy=acc["correct"] / acc["rows"],
                        val_loss=val[0], val_accuracy=val[1], epoch_seconds=seconds)
                _epoch_line(log, -(-t // steps), config["epochs"], acc["loss"] / acc["rows"], val, seconds)
                acc.update(loss=0.0, rows=0, correct=0, t0=time.perf_counter())

        server = ParameterServer(model, opt, group, total, pconf["staleness_bound"], on_step=on_step)
        staleness = server.run()
        log(staleness.text())
        stats = {"server": server.stats}
    else:
        per_rank_dropout(model, group.rank - 1)                   # worker 0 (rank 1) keeps the seed's streams
        loss = SoftmaxCrossEntropy()
        batches = worker_batches(len(Xt), config["batch_size"], group, worker_stream(stream(config["seed"], "shuffle"),
                                                                                      group))
        pred = np.empty(config["batch_size"], np.int64)
        model.train()

        def compute():
            idx = next(batches)
            Xb, yb = Xt[idx], yt[idx]
            value = loss(model.forward(Xb), yb)
            if not np.isfinite(value):
                raise FloatingPointError(f"asynchronous SGD: the training loss became {value} on worker rank "
                                         f"{group.rank}; try a lower learning rate")
            correct = int(np.count_nonzero(ops.argmax_rows(loss.P, out=pred[:len(idx)]) == yb))
            model.backward(loss.backward())
            return value, len(idx), correct

        stats = {"worker": Worker(model, group).run(compute)}
    all_stats = group.allgather_object(stats)
    if not group.is_root:
        return history, {}
    extra = {"gradient_staleness": staleness.summary(), "server": all_stats[0]["server"],
             "workers": [s["worker"] for s in all_stats[1:]]}
    return history, extra


# ---------------------------------------------------------------------- pipeline and tensor parallel
def _epochs(model_like, opt, sched, config, data, group, log, step_fn, evaluate_fn):
    """The synchronous loop shared by pipeline and tensor parallelism: the Trainer's batches (same shuffle stream),
    one ``step_fn(Xb, yb) -> loss`` and optimizer step per batch, evaluation on rank 0."""
    from ..training import stream

    Xt, yt, Xv, yv = data
    rng = stream(config["seed"], "shuffle")
    bs = config["batch_size"]
    history = {}
    for epoch in range(1, config["epochs"] + 1):
        t0 = time.perf_counter()
        order = rng.permutation(len(Xt))
        total, seen = 0.0, 0
        for s in range(0, len(Xt), bs):
            idx = order[s:s + bs]
            value = step_fn(Xt[idx], yt[idx])
            if not np.isfinite(value):
                raise FloatingPointError(f"the training loss became {value} at epoch {epoch}; try a lower "
                                         "learning rate")
            opt.step()
            _sched_step(sched)
            total += value * len(idx)
            seen += len(idx)
        if sched is not None and getattr(sched, "unit", "step") == "epoch":
            sched.epoch_end(epoch * len(Xt))
        seconds = time.perf_counter() - t0
        val = evaluate_fn(Xv, yv)
        _record(history, train_loss=total / seen, val_loss=val[0], val_accuracy=val[1], epoch_seconds=seconds)
        _epoch_line(log, epoch, config["epochs"], total / seen, val, seconds)
    return history


def _run_pipeline(model, config, pconf, data, group, log, args, resume):
    from ..training import evaluate, make_optimizer
    from .pipeline import Pipeline

    pipe = Pipeline(model, group, microbatches=pconf["microbatches"], schedule=pconf["pipeline_schedule"],
                    batch_size=config["batch_size"])
    log(f"pipeline stages (layers): {pipe.layer_bounds}, schedule {pipe.schedule}, {pipe.microbatches} micro-batches")
    opt = make_optimizer(config["optimizer"], pipe.parameters(), config["lr"], config["weight_decay"])
    sched = _schedule(config, opt, -(-len(data[0]) // config["batch_size"]))
    pipe.train()

    def evaluate_fn(Xv, yv):
        pipe.gather()
        return evaluate(model, Xv, yv) if (group.is_root and len(Xv)) else (None, None)

    history = _epochs(pipe, opt, sched, config, data, group, log, pipe.step, evaluate_fn)
    pipe.gather()
    stats = group.allgather_object(dict(pipe.stats, stage=group.rank, layers=pipe.layer_bounds[group.rank]))
    return history, {"stages": stats}


def _run_tensor(model, config, pconf, data, group, log, args, resume):
    from ..losses import SoftmaxCrossEntropy
    from ..training import evaluate, make_optimizer
    from .tensor import gather_model, tensor_parallel

    tp = tensor_parallel(model, group)
    log(f"tensor-parallel model on rank 0: {[type(l).__name__ for l in tp.layers]}")
    opt = make_optimizer(config["optimizer"], tp.parameters(), config["lr"], config["weight_decay"])
    sched = _schedule(config, opt, -(-len(data[0]) // config["batch_size"]))
    loss = SoftmaxCrossEntropy()
    tp.train()

    def step_fn(Xb, yb):
        value = loss(tp.forward(Xb), yb)
        tp.backward(loss.backward())
        return value

    def evaluate_fn(Xv, yv):
        gather_model(tp, model, group)
        return evaluate(model, Xv, yv) if (group.is_root and len(Xv)) else (None, None)

    history = _epochs(tp, opt, sched, config, data, group, log, step_fn, evaluate_fn)
    gather_model(tp, model, group)
    return history, {}


def plot_curves(history, path, title):
    from ..plots import plot_curves as plot

    try:
        plot(history, path, f"tinynn MNIST training, {title}")
    except ImportError:                                    # matplotlib missing: no picture
        pass


def main(argv=None):
    args = parse(argv)
    try:
        return run(args)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        if args.parallel != "none":
            from .comm import world

            world().abort(2)
        return 2


if __name__ == "__main__":
    sys.exit(main())
