#!/usr/bin/env python
"""Speed benchmark: MNIST MLP training epochs, tinynn vs PyTorch CPU vs plain NumPy, plus the estimators.

Model 784-256-128-10 (``--sizes``), ReLU, softmax cross-entropy, Adam(lr=1e-3), float32, the 60k MNIST images in
shuffled mini-batches. The peers run in one process and take turns epoch by epoch, so machine noise hits them
alike; every peer gets 2 threads. Reported per batch size: median epoch seconds over the timed epochs (after
one warm-up epoch), the ratio to tinynn per round and its median, test accuracy after the run, and each peer's
peak RSS (measured in a child process per peer). Also: the BLAS floor (the epoch's matmuls alone, at the same
shapes through the same BLAS, raced as one more peer: tinynn / floor is a median of per-round ratios), where one
epoch's time goes (per kernel), Numba JIT cost (first epoch in a fresh process with an empty and with a warm
cache), a new user's first MLPClassifier fit, and the bytes an epoch allocates.

    python -m benchmarks.bench --data-dir ../shared/data/mnist --out runs/bench.json

(from the repository root; the race, the machine record and the peers are benchmarks/harness.py's, the
measurements that need a fresh process benchmarks/fresh.py's)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

from benchmarks.harness import SIZES, FloorPeer, TinynnPeer, data, machine, make_peer, race, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- measurements
def fresh(args, env=None, timeout=600):
    """``python -m benchmarks.fresh ARGS`` in a new process (from the repository root): its CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "benchmarks.fresh", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def result_of(r):
    """The JSON line a ``benchmarks.fresh`` run printed last (RuntimeError with its stderr when it failed)."""
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def data_dir_arg(data_dir):
    """``--data-dir`` for a child that runs from the repository root (a relative folder made absolute)."""
    return [] if data_dir is None else ["--data-dir", os.path.abspath(data_dir)]


def epoch_breakdown(X, y, bs, sizes=SIZES, repeats=3):
    """Where a warm epoch's time goes: seconds inside each CPU kernel (every registered op timed around its call)
    and the rest (Python, the batch gather, NumPy glue), for the fastest of ``repeats`` epochs (one epoch caught
    in one of the VM's slow phases doubled every figure). Timing adds ~0.2 µs per call."""
    from tinynn.kernels import ops

    peer = TinynnPeer(X, y, bs, sizes=sizes)
    peer.epoch()
    spent, saved = {}, {}
    for op in ops:
        impl = op.impls.get("cpu")
        if impl is None:
            continue

        def timed(*a, _impl=impl, _name=op.name, **k):
            t = time.perf_counter()
            r = _impl(*a, **k)
            spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - t
            return r

        saved[op.name] = impl
        op.impls["cpu"] = timed
    best = None
    try:
        for _ in range(repeats):
            spent.clear()
            t = time.perf_counter()
            peer.epoch()
            total = time.perf_counter() - t
            if best is None or total < best[0]:
                best = (total, dict(spent))
    finally:
        for name, impl in saved.items():
            ops[name].impls["cpu"] = impl
    total, spent = best
    ops_s = {k: round(v, 4) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}
    return {"epoch_s": total, "ops_s": ops_s, "rest_s": total - sum(spent.values())}


def step_allocations(X, y, bs, sizes=SIZES, steps=50):
    """Bytes allocated (peak above the baseline, traced by tracemalloc) by a warm Trainer epoch of ``steps``
    batches: the per-epoch buffers (the shuffled order, one gathered batch) and nothing per step (the same
    figure at 2x the steps shows it)."""
    peer = TinynnPeer(X, y, bs, sizes=sizes)
    out = {}
    for k in (steps, 2 * steps):
        Xs, ys = X[:k * bs], y[:k * bs]
        peer.trainer.train_epoch(Xs, ys)
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        peer.trainer.train_epoch(Xs, ys)
        cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out[k] = peak - base
    return {"steps": steps, "peak_bytes_above_baseline": out[steps], "peak_bytes_at_twice_the_steps": out[2 * steps],
            "batch_array_bytes": bs * sizes[0] * 4}


def child_rss(peer, bs, data_dir, sizes=SIZES):
    """Peak RSS (MiB) of a fresh process that loads MNIST and trains one epoch with ``peer``."""
    r = fresh(["rss", "--peer", peer, "--batch-size", bs, "--sizes", ",".join(map(str, sizes))] + data_dir_arg(data_dir))
    return result_of(r)["peak_rss_mib"] if r.returncode == 0 else None


def empty_then_warm(args):
    """``benchmarks.fresh ARGS`` in two fresh processes sharing a new, empty Numba cache: {"empty_cache":
    CompletedProcess, "warm_cache": CompletedProcess} (the second finds what the first compiled)."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("empty_cache", "warm_cache"):
            out[label] = fresh(args, env=env)
    return out


def jit_cost(data_dir, bs=128):
    """Import -> first step and first-epoch seconds in fresh processes: empty Numba cache, then warm."""
    out = {}
    for label, r in empty_then_warm(["first-epoch", "--batch-size", bs] + data_dir_arg(data_dir)).items():
        out[label] = result_of(r) if r.returncode == 0 else {"error": r.stderr[-500:]}
    return out


def first_fit(repeats=3):
    """A new user's first ``MLPClassifier().fit`` on the digits data (1797 x 64, defaults: hidden 100, adam,
    up to 200 epochs) in a fresh process: with an empty Numba cache, then with the cache it left; sklearn's fit
    and a second tinynn fit in the same process for reference (benchmarks.fresh first-fit). Medians over
    ``repeats`` fresh processes; ``tinynn_compiles``: the Numba compilations of the first fit."""
    out = {}
    for dtype in ("float64", "float32"):
        runs = {"empty_cache": [], "warm_cache": []}
        for _ in range(repeats):
            for label, r in empty_then_warm(["first-fit", "--dtype", dtype]).items():
                runs[label].append(result_of(r))
        out[dtype] = {label: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for label, rs in runs.items()}
        for rs in out[dtype].values():
            rs["tinynn_minus_sklearn_s"] = rs["tinynn_fit_s"] - rs["sklearn_fit_s"]
    return out


def print_first_fit(ff):
    for dtype, runs in ff.items():
        for label, r in runs.items():
            print(f"first MLPClassifier().fit on digits, {dtype}, {label}: tinynn {r['tinynn_fit_s']:.2f} s, "
                  f"sklearn {r['sklearn_fit_s']:.2f} s (+{r['tinynn_minus_sklearn_s']:.2f} s); a second tinynn "
                  f"fit {r['tinynn_again_fit_s']:.2f} s; import tinynn {r['import_tinynn_s']:.2f} s; "
                  f"{r['tinynn_compiles']:.0f} Numba compilations in the first fit")


def write(result, path):
    write_json(result, path)
    print(f"wrote {path}")


def fit_compare(X, y, Xt, yt, rounds, max_iter, sizes=SIZES):
    """sklearn's MLPClassifier and tn.MLPClassifier, ``fit`` with identical sklearn arguments, taking turns."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SkMLP

    import tinynn as tn

    kw = dict(hidden_layer_sizes=sizes[1:-1], max_iter=max_iter, random_state=0)  # batch_size="auto" (200), adam
    out = {"arguments": {**kw, "hidden_layer_sizes": list(sizes[1:-1])}, "tinynn": [], "sklearn": []}
    for r in range(rounds):
        for name, cls in (("tinynn", tn.MLPClassifier), ("sklearn", SkMLP)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                t = time.perf_counter()
                est = cls(**{**kw, "random_state": r}).fit(X, y)
                sec = time.perf_counter() - t
            out[name].append({"fit_s": sec, "test_accuracy": float(est.score(Xt, yt)), "n_iter": est.n_iter_})
    for name in ("tinynn", "sklearn"):
        out[name + "_median_fit_s"] = statistics.median(r["fit_s"] for r in out[name])
        out[name + "_median_accuracy"] = statistics.median(r["test_accuracy"] for r in out[name])
    out["speedup"] = out["sklearn_median_fit_s"] / out["tinynn_median_fit_s"]
    return out


# --------------------------------------------------------------------------- sparse input
def sparse_compare(n, d, density, hidden, epochs):
    """sklearn's and tinynn's MLPClassifier on the same sparse data, each in its own process
    (benchmarks.fresh sparse)."""
    out = {"n": n, "d": d, "density": density, "hidden": hidden, "peers": {}}
    for peer, dtype in (("sklearn", "float64"), ("tinynn", "float64"), ("tinynn", "float32")):
        res = result_of(fresh(["sparse", "--peer", peer, "--n", n, "--d", d, "--density", density, "--hidden", hidden,
                               "--epochs", epochs, "--dtype", dtype], timeout=3600))
        out["peers"][f"{peer} {dtype}"] = res
        print(f"sparse {n}x{d} density {density}: {peer:8s} {dtype}: epochs {['%.1f' % t for t in res['epochs_s']]} s, "
              f"peak RSS {res['peak_rss_mib']:.0f} MiB (X {res['X_mib']:.0f} MiB; dense X would be "
              f"{res['dense_X_would_be_mib']:.0f} MiB), loss {res['loss']:.4f}")
    return out


# --------------------------------------------------------------------------- same model as sklearn
PARITY_CASES = [
    ("adam", dict(solver="adam")),
    ("sgd, nesterov momentum", dict(solver="sgd", learning_rate_init=0.01)),
    ("sgd, invscaling", dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5)),
    ("sgd, adaptive, no momentum", dict(solver="sgd", learning_rate="adaptive", momentum=0.0)),
    ("adam, early stopping", dict(solver="adam", early_stopping=True)),
    ("lbfgs", dict(solver="lbfgs")),
]


def sklearn_parity(X, y, n=10000, hidden=(100,), max_iter=20, rounds=3):
    """Fit sklearn's and tinynn's MLPClassifier with the same arguments and random_state on float64 data;
    report the largest relative difference in coefs_/intercepts_, n_iter_ of each, and fit times (median of
    ``rounds``, the two taking turns)."""
    import warnings

    from sklearn.neural_network import MLPClassifier as SK

    import tinynn as tn

    X, y = X[:n].astype(np.float64), y[:n]
    rows = []
    for name, kw in PARITY_CASES:
        args = dict(hidden_layer_sizes=hidden, max_iter=max_iter, random_state=0, **kw)
        t_sk, t_tn = [], []
        for _ in range(rounds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                a = SK(**args).fit(X, y)
                t_sk.append(time.perf_counter() - t)
                t = time.perf_counter()
                b = tn.MLPClassifier(**args).fit(X, y)
                t_tn.append(time.perf_counter() - t)
        rel = max(float(np.max(np.abs(p - q)) / np.max(np.abs(p)))
                  for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_))
        rows.append({"case": name, "arguments": kw, "max_rel_diff_coefs": rel, "n_iter_sklearn": a.n_iter_,
                     "n_iter_tinynn": b.n_iter_, "sklearn_fit_s": statistics.median(t_sk),
                     "tinynn_fit_s": statistics.median(t_tn),
                     "speedup": statistics.median(t_sk) / statistics.median(t_tn),
                     "train_accuracy": float(b.score(X, y))})
        r = rows[-1]
        print(f"{name:28s} max rel diff {rel:.1e}  n_iter {a.n_iter_}/{b.n_iter_}  sklearn {r['sklearn_fit_s']:.2f} s"
              f"  tinynn {r['tinynn_fit_s']:.2f} s  ({r['speedup']:.2f}x)")
    return {"data": f"MNIST, first {n} training images, float64", "hidden": list(hidden), "max_iter": max_iter,
            "rows": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--batch-sizes", default="32,128,512")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)),
                    help="layer widths of the MLP, e.g. 784,1024,1024,10 for the wide model")
    ap.add_argument("--rounds", type=int, default=3, help="timed epochs per peer (after one warm-up)")
    ap.add_argument("--peers", default="tinynn,pytorch,numpy")
    ap.add_argument("--estimators", action="store_true", help="also race sklearn's and tinynn's MLPClassifier")
    ap.add_argument("--fit-compare", type=int, default=0, metavar="ROUNDS",
                    help="also fit sklearn's and tinynn's MLPClassifier (same arguments) ROUNDS times each")
    ap.add_argument("--fit-max-iter", type=int, default=10)
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--no-jit", action="store_true", help="skip the compile-cost and first-fit measurements")
    ap.add_argument("--first-fit", action="store_true", help="only the first-fit measurement (digits, empty cache)")
    ap.add_argument("--out", default="runs/bench.json")
    ap.add_argument("--sparse", default=None, metavar="N,D,DENSITY",
                    help="instead: sklearn's vs tinynn's MLPClassifier on sparse CSR input, e.g. 20000,262144,1e-3")
    ap.add_argument("--sparse-hidden", type=int, default=100)
    ap.add_argument("--sparse-epochs", type=int, default=3)
    ap.add_argument("--parallel", action="store_true",
                    help="instead: the MPI strategies at -n 2 (benchmarks/parallel_bench.py: compute vs communication per "
                         "step, allreduce bandwidth, the cost model and its plot) into the folder --out (a .json "
                         "--out: the folder of that name without .json)")
    ap.add_argument("--sklearn-parity", action="store_true",
                    help="instead: fit sklearn's and tinynn's MLPClassifier with the same arguments (same model?)")
    args = ap.parse_args(argv)
    if args.parallel:
        folder = os.path.splitext(args.out)[0] if args.out.endswith(".json") else args.out   # --out is the folder
        cmd = [sys.executable, "-m", "benchmarks.parallel_bench", "--out", os.path.abspath(folder)]
        raise SystemExit(subprocess.call(cmd + data_dir_arg(args.data_dir), cwd=ROOT))
    if args.first_fit:
        result = {"machine": machine(), "first_fit": first_fit()}
        print_first_fit(result["first_fit"])
        write(result, args.out)
        return
    if args.sklearn_parity:
        X, y, _, _ = data(args.data_dir)
        result = {"machine": machine(), "sklearn_parity": sklearn_parity(X, y)}
        write(result, args.out)
        return
    if args.sparse:
        n, d, density = args.sparse.split(",")
        result = {"machine": machine(), "sparse": sparse_compare(int(n), int(d), float(density), args.sparse_hidden,
                                                                 args.sparse_epochs)}
        write(result, args.out)
        return
    try:
        import threadpoolctl

        threadpoolctl.threadpool_limits(2)
    except Exception:
        pass
    sizes = tuple(int(w) for w in args.sizes.split(","))
    X, y, Xt, yt = data(args.data_dir)
    names = [p for p in args.peers.split(",") if p]
    try:
        import torch  # noqa: F401
    except ImportError:
        if "pytorch" in names:
            print("note: torch is not installed; the pytorch row is skipped (pip install torch==2.13.0)")
            names.remove("pytorch")
    if args.estimators:
        names += ["tinynn.MLPClassifier", "sklearn.MLPClassifier"]
    result = {"machine": machine(), "model": "-".join(map(str, sizes)) + " ReLU, softmax CE, Adam 1e-3, float32",
              "runs": []}
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        floor_peer = FloorPeer(bs, sizes)
        peers = [make_peer(n, X, y, bs, sizes) for n in names] + [floor_peer]
        laps = race(peers, args.rounds, reference="tinynn")
        rows = {}
        for p in peers:
            lap = laps[p.name]
            rows[p.name] = {"median_epoch_s": lap["median_s"], "epochs_s": lap["times"],
                            "ratio_to_tinynn_median": lap["ratio_median"], "test_accuracy": p.accuracy(Xt, yt)}
            if not args.no_rss and p is not floor_peer:
                rows[p.name]["peak_rss_mib"] = child_rss(p.name, bs, args.data_dir, sizes)
        floor_s = rows.pop(floor_peer.name)["median_epoch_s"]
        floor_times = laps[floor_peer.name]["times"]
        floor = {"epoch_matmul_gflop": floor_peer.epoch_gflop, "floor_seconds": floor_s,
                 "blas_gflops": floor_peer.epoch_gflop / floor_s, "floor_epochs_s": floor_times,
                 "tinynn_over_floor": statistics.median(t / f for t, f in zip(laps["tinynn"]["times"], floor_times))}
        parts = epoch_breakdown(X, y, bs, sizes)
        result["runs"].append({"batch_size": bs, "peers": rows, "blas_floor": floor, "breakdown": parts,
                               "allocations": step_allocations(X, y, bs, sizes)})
        print(f"\nbatch {bs}: BLAS floor {floor['floor_seconds']:.3f} s ({floor['blas_gflops']:.0f} GFLOP/s on "
              f"{floor['epoch_matmul_gflop']:.0f} GFLOP, raced with the peers); tinynn = "
              f"{floor['tinynn_over_floor']:.2f}x floor (median of the per-round ratios)")
        top = ", ".join(f"{k} {v:.3f}" for k, v in list(parts["ops_s"].items())[:5])
        print(f"fastest of 3 timed epochs {parts['epoch_s']:.3f} s: {top}, outside kernels {parts['rest_s']:.3f} s")
        print(f"{'peer':24s} {'median epoch s':>15s} {'x tinynn':>9s} {'test acc':>9s} {'peak RSS MiB':>13s}")
        for name, r in rows.items():
            rss = r.get("peak_rss_mib")
            print(f"{name:24s} {r['median_epoch_s']:15.3f} {r['ratio_to_tinynn_median']:9.2f} "
                  f"{100 * r['test_accuracy']:8.2f}% {'-' if rss is None else str(round(rss)):>13}")
        a = result["runs"][-1]["allocations"]
        print(f"allocations in an epoch of {a['steps']} steps: peak {a['peak_bytes_above_baseline']} B above baseline, "
              f"{a['peak_bytes_at_twice_the_steps']} B at {2 * a['steps']} steps (one batch array is "
              f"{a['batch_array_bytes']} B)")
    if args.fit_compare:
        fc = fit_compare(X, y, Xt, yt, args.fit_compare, args.fit_max_iter, sizes)
        result["fit_compare"] = fc
        print(f"\nMLPClassifier.fit {fc['arguments']}: tinynn {fc['tinynn_median_fit_s']:.1f} s, "
              f"{100 * fc['tinynn_median_accuracy']:.2f}%; sklearn {fc['sklearn_median_fit_s']:.1f} s, "
              f"{100 * fc['sklearn_median_accuracy']:.2f}%; speed-up {fc['speedup']:.2f}x")
    if not args.no_jit:
        result["jit"] = jit_cost(args.data_dir)
        for k, v in result["jit"].items():
            print(f"JIT, {k}: {v}")
        result["first_fit"] = first_fit()
        print_first_fit(result["first_fit"])
    write(result, args.out)


if __name__ == "__main__":
    main()
