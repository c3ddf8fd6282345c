#!/usr/bin/env python
"""Small batch against large batch: does the large batch land in a sharper minimum that generalises worse?
(Keskar et al. 2017, "On large-batch training for deep learning: generalization gap and sharp minima".)

The same 784-256-10 ReLU MLP (same initialisation, Adam 1e-3 as in the paper) is trained on an MNIST subset
with a small and a large batch, each until its training loss is below --target-loss (or --max-epochs), so
that both minima are compared at about the same training loss; with --seeds, once per initialisation seed.
Then, on a float64 copy of each trained model (tinynn.landscape; no autodiff: finite differences of
hand-derived gradients), on --probe-size training images:

* the top Hessian eigenvalue (power iteration on Hessian-vector products),
* Keskar et al.'s ε-sharpness 100 (max_{|δ_i| ≤ ε(|θ_i|+1)} L(θ+δ) - L(θ)) / (1 + L(θ)), ε = 1e-3,
* the 1-D loss curve L(θ + α d), α ∈ [-1, 1], along a filter-normalised random direction (Li et al. 2018),
  on the training probe and on as many test images,

and writes sharpness.json (one entry per run, plus means per batch size) and sharpness.png (the curves of
the first seed's runs, annotated).

    python scripts/sharpness.py --data-dir ../shared/data/mnist --out docs --seeds 0,1,2
    python scripts/sharpness.py --quick --out /tmp/sharp          # a few hundred images, one epoch (tests)
"""
import argparse
import os
import platform
import sys
import time

import numpy as np

import tinynn as tn
from tinynn import landscape
from tinynn.data import load_mnist
from tinynn.training import Trainer, build_mlp, steps_per_epoch
from tinynn._write import save_figure, write_json


def evaluate(model, X, y, batch_size=2000):
    """(mean cross-entropy, accuracy) in eval mode."""
    was = model.training
    model.eval()
    loss, total, correct = tn.SoftmaxCrossEntropy(), 0.0, 0
    for s in range(0, len(X), batch_size):
        Z = model.forward(X[s:s + batch_size])
        total += loss(Z, y[s:s + batch_size]) * len(Z)
        correct += int(np.sum(np.argmax(Z, axis=1) == y[s:s + batch_size]))
    model.train(was)
    return total / len(X), correct / len(X)


def train(sizes, X, y, batch_size, lr, seed, max_epochs, target_loss, log):
    """Adam on mini-batches (reshuffled each epoch) through the Trainer, until the training loss (measured in
    eval mode after each epoch) < target_loss or max_epochs."""
    model = build_mlp(sizes, seed=seed)                       # the same initialisation for every batch size
    opt = tn.optim.Adam(model.parameters(), lr=lr)
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=batch_size, rng=np.random.default_rng(seed + 1))
    steps, t0 = 0, time.perf_counter()
    epoch, train_loss = 0, float("inf")
    while epoch < max_epochs and train_loss >= target_loss:
        trainer.train_epoch(X, y)
        steps += steps_per_epoch(len(X), batch_size)
        epoch += 1
        train_loss = evaluate(model, X, y)[0]
        if epoch == 1 or epoch % 10 == 0 or train_loss < target_loss:
            log(f"  batch {batch_size}: epoch {epoch}, {steps} steps, train loss {train_loss:.4g}")
    return model, epoch, steps, time.perf_counter() - t0


def measure(model, sizes, Xp, yp, Xt, yt, args, seed):
    """The landscape probes on a float64 copy of the trained model."""
    m64 = build_mlp(sizes, dtype=np.float64)
    m64.load_state_dict(model.state_dict())
    loss = tn.SoftmaxCrossEntropy()
    Xp64, Xt64 = Xp.astype(np.float64), Xt.astype(np.float64)
    t0 = time.perf_counter()
    lam, _, iters, converged = landscape.top_hessian_eigenvalue(m64, loss, Xp64, yp, iters=args.eig_iters,
                                                                tol=args.eig_tol, rng=seed, full_output=True)
    sharp = landscape.epsilon_sharpness(m64, loss, Xp64, yp, epsilon=args.epsilon, iters=args.ascent_iters,
                                        rng=seed)
    direction = landscape.filter_normalized_direction(m64, rng=seed + 7)
    alphas = np.linspace(-1.0, 1.0, args.curve_points)
    curve = landscape.loss_curve(m64, loss, Xp64, yp, direction=direction, alphas=alphas)
    curve_test = landscape.loss_curve(m64, loss, Xt64, yt, direction=direction, alphas=alphas)
    return {"top_eigenvalue": float(lam), "eigen_iterations": int(iters), "eigen_converged": bool(converged),
            "epsilon_sharpness": sharp.sharpness, "epsilon": sharp.epsilon, "probe_loss": sharp.loss,
            "probe_max_loss": sharp.max_loss,
            "curve": {"alpha": alphas.tolist(), "loss": curve["loss"].tolist(),
                      "test_loss": curve_test["loss"].tolist()},
            "measure_seconds": time.perf_counter() - t0}


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    runs = [r for r in result["runs"] if r["seed"] == result["runs"][0]["seed"]]
    for run, c in zip(runs, colors):
        a = np.array(run["curve"]["alpha"])
        label = (f"batch {run['batch_size']}: λmax {run['top_eigenvalue']:.3g}, ε-sharpness "
                 f"{run['epsilon_sharpness']:.3g}\n  train {100 * run['train_accuracy']:.2f}%, test "
                 f"{100 * run['test_accuracy']:.2f}% (gap {100 * run['generalization_gap']:.2f} pts)")
        axes[0].semilogy(a, run["curve"]["loss"], color=c, label=label)
        axes[0].semilogy(a, run["curve"]["test_loss"], color=c, ls="--")
        axes[1].plot(a, run["curve"]["loss"], color=c, label=f"batch {run['batch_size']}")
    axes[0].set_title("loss along a filter-normalised direction (solid: train, dashed: test)")
    axes[1].set_title("training loss, linear scale: the width of the minimum")
    axes[1].legend(fontsize=9)
    for ax in axes:
        ax.set_xlabel("α  (θ + α d)"), ax.set_ylabel("cross-entropy"), ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8, loc="upper center")
    cfg = result["config"]
    fig.suptitle(f"784-{cfg['hidden']}-10 ReLU, Adam {cfg['lr']:g}, {cfg['train_size']} MNIST training images, "
                 f"seed {runs[0]['seed']}: small vs large batch (Keskar et al. 2017)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="MNIST folder (else $TINYNN_DATA_DIR, else the cache)")
    p.add_argument("--out", required=True, help="folder for sharpness.json and sharpness.png")
    p.add_argument("--quick", action="store_true", help="a few hundred images, one epoch, few iterations (tests)")
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--test-size", type=int, default=10000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch-sizes", default="64,4096", help="comma-separated, e.g. 64,4096")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-epochs", type=int, default=600)
    p.add_argument("--target-loss", type=float, default=1e-3, help="stop a run once its training loss is below")
    p.add_argument("--probe-size", type=int, default=2000, help="training (and test) images for the probes")
    p.add_argument("--epsilon", type=float, default=1e-3)
    p.add_argument("--eig-iters", type=int, default=100)
    p.add_argument("--eig-tol", type=float, default=1e-4)
    p.add_argument("--ascent-iters", type=int, default=20)
    p.add_argument("--curve-points", type=int, default=41)
    p.add_argument("--seeds", default="0", help="initialisation seeds, comma-separated (one pair of runs each)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the training-subset draw")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.train_size, args.test_size, args.max_epochs, args.probe_size = 300, 300, 1, 200
        args.eig_iters, args.ascent_iters, args.curve_points, args.hidden = 5, 3, 9, 32
        args.batch_sizes = "32,256"
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    try:
        batch_sizes = sorted(int(b) for b in args.batch_sizes.split(","))
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--batch-sizes and --seeds: expected comma-separated integers, got {args.batch_sizes!r}, "
                f"{args.seeds!r}")
    try:
        Xtr, ytr, Xte, yte = load_mnist(args.data_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.data_seed)
    pick = rng.permutation(len(Xtr))[:args.train_size]
    X, y = Xtr[pick], ytr[pick]
    Xt, yt = Xte[:args.test_size], yte[:args.test_size]
    Xp, yp = X[:args.probe_size], y[:args.probe_size]
    Xtp, ytp = Xt[:args.probe_size], yt[:args.probe_size]
    sizes = [X.shape[1], args.hidden, 10]
    config = {k: v for k, v in vars(args).items() if k not in ("out", "data_dir", "quiet")}
    config["batch_sizes"], config["seeds"] = batch_sizes, seeds
    result = {"config": config, "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}, numpy {np.__version__}", "runs": []}
    for seed in seeds:
        for bs in batch_sizes:
            log(f"seed {seed}: training with batch {bs} (at most {args.max_epochs} epochs, until train loss < "
                f"{args.target_loss:g})")
            model, epochs, steps, seconds = train(sizes, X, y, bs, args.lr, seed, args.max_epochs, args.target_loss,
                                                  log)
            train_loss, train_acc = evaluate(model, X, y)
            test_loss, test_acc = evaluate(model, Xt, yt)
            run = {"seed": seed, "batch_size": bs, "epochs": epochs, "steps": steps, "train_seconds": seconds,
                   "train_loss": train_loss, "train_accuracy": train_acc, "test_loss": test_loss,
                   "test_accuracy": test_acc, "generalization_gap": train_acc - test_acc}
            run.update(measure(model, sizes, Xp, yp, Xtp, ytp, args, seed))
            result["runs"].append(run)
            log(f"seed {seed}, batch {bs}: {epochs} epochs ({steps} steps, {seconds:.1f} s); train "
                f"{100 * train_acc:.2f}% (loss {train_loss:.3g}), test {100 * test_acc:.2f}% (loss {test_loss:.3g}); "
                f"λmax {run['top_eigenvalue']:.4g} ({run['eigen_iterations']} iterations), ε-sharpness "
                f"{run['epsilon_sharpness']:.4g} (ε = {args.epsilon:g}); probes {run['measure_seconds']:.1f} s")
    keys = ("top_eigenvalue", "epsilon_sharpness", "train_loss", "train_accuracy", "test_accuracy",
            "generalization_gap")
    result["mean_by_batch_size"] = {
        str(bs): {k: float(np.mean([r[k] for r in result["runs"] if r["batch_size"] == bs])) for k in keys}
        for bs in batch_sizes}
    for bs, m in result["mean_by_batch_size"].items():
        log(f"mean over {len(seeds)} seed(s), batch {bs}: λmax {m['top_eigenvalue']:.4g}, ε-sharpness "
            f"{m['epsilon_sharpness']:.4g}, train {100 * m['train_accuracy']:.2f}%, "
            f"test {100 * m['test_accuracy']:.2f}%, "
            f"gap {100 * m['generalization_gap']:.2f} pts")
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "sharpness.json"), result, indent=1)
    plot(result, os.path.join(args.out, "sharpness.png"))
    log(f"wrote {os.path.join(args.out, 'sharpness.json')} and sharpness.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
