"""The measurements of benchmarks/bench.py that need a fresh process (peak RSS, compile cost, a new user's first
fit, sparse input), one subcommand each; each prints one JSON line. bench.py runs them as

    python -m benchmarks.fresh rss --peer tinynn --batch-size 128 [--sizes 784,256,128,10] [--data-dir D]
    python -m benchmarks.fresh first-epoch --batch-size 128 [--data-dir D]
    python -m benchmarks.fresh first-fit --dtype float64
    python -m benchmarks.fresh sparse --peer tinynn --n 20000 --d 262144 --density 1e-3 --hidden 100 --epochs 3 --dtype float32

Nothing is imported before the clock starts but the standard library: numpy, tinynn and Numba load inside the
subcommand (the compile-cost figures include them).
"""
import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def rss(peer, bs, sizes, data_dir):
    """Peak RSS (MiB) of this process after loading MNIST and training one epoch with ``peer``."""
    import resource

    from benchmarks import harness

    X, y, _, _ = harness.data(data_dir)
    harness.make_peer(peer, X, y, bs, sizes).epoch()
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def first_epoch(bs, data_dir):
    """From the start of this process: imports and data, tinynn's first step, first epoch and second epoch
    (what Numba's compilation, or its cache, adds to the first)."""
    import numpy as np

    from benchmarks import harness

    X, y, _, _ = harness.data(data_dir)
    t_data = time.perf_counter()
    p = harness.TinynnPeer(X, y, bs)
    t1 = time.perf_counter()
    p.step(np.arange(bs))
    t2 = time.perf_counter()
    p.epoch()
    t3 = time.perf_counter()
    p.epoch()
    t4 = time.perf_counter()
    return {"import_and_data_s": t_data - T0, "first_step_s": t2 - t1, "first_epoch_s": t3 - t2,
            "steady_epoch_s": t4 - t3, "first_over_steady": (t3 - t2) / (t4 - t3)}


class _Compiles:
    """Counts Numba's compilations (the ``numba:compile`` event; a kernel loaded from the cache is none)."""

    def __init__(self):
        from numba.core import event

        class Listener(event.Listener):
            def on_start(inner, ev):
                self.count += 1

            def on_end(inner, ev):
                pass

        self.count = 0
        event.register("numba:compile", Listener())


def first_fit(dtype):
    """A new user's first ``MLPClassifier(random_state=0).fit`` on the digits data, then sklearn's fit and a
    second tinynn fit: seconds, n_iter_, and the Numba compilations of each tinynn fit."""
    import warnings

    t0 = time.perf_counter()
    import tinynn

    t1 = time.perf_counter()
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    compiles = _Compiles()
    X, y = load_digits(return_X_y=True)
    X = X.astype(dtype)
    warnings.simplefilter("ignore")
    out = {"import_tinynn_s": t1 - t0}
    for name, cls in (("tinynn", tinynn.MLPClassifier), ("sklearn", MLPClassifier),
                      ("tinynn_again", tinynn.MLPClassifier)):
        before = compiles.count
        t = time.perf_counter()
        est = cls(random_state=0).fit(X, y)
        out[name + "_fit_s"] = time.perf_counter() - t
        out[name + "_n_iter"] = est.n_iter_
        if name.startswith("tinynn"):
            out[name + "_compiles"] = compiles.count - before
    return out


def sparse_data(n, d, density, n_classes=20, seed=0, dtype="float64"):
    """A TF-IDF-like CSR matrix (n, d): about density·d nonzeros per row, positive values, rows L2-normalised;
    labels from a hidden linear model on the same features (so there is something to learn)."""
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    per_row = rng.poisson(density * d, n).clip(1)
    indptr = np.concatenate([[0], np.cumsum(per_row)])
    indices = rng.integers(0, d, indptr[-1])
    data = rng.exponential(1.0, indptr[-1])
    X = sp.csr_matrix((data, indices, indptr), shape=(n, d))
    X.sum_duplicates()
    X = X.multiply(1.0 / np.sqrt(X.multiply(X).sum(axis=1))).tocsr().astype(dtype)
    W = rng.standard_normal((d, n_classes))
    y = np.asarray(np.argmax(X @ W, axis=1)).ravel()
    return X, y


def sparse(peer, n, d, density, hidden, epochs, dtype):
    """Epoch seconds (partial_fit epochs) and peak RSS of one estimator on sparse X."""
    import resource

    import numpy as np

    X, y = sparse_data(n, d, density, dtype=np.dtype(dtype))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if peer == "sklearn":
        from sklearn.neural_network import MLPClassifier
    else:
        from tinynn import MLPClassifier
    est = MLPClassifier(hidden_layer_sizes=(hidden,), random_state=0)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        est.partial_fit(X, y, classes=np.unique(y))
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"epochs_s": times, "loss": float(est.loss_), "train_accuracy": float(est.score(X[:2000], y[:2000])),
            "peak_rss_mib": peak, "rss_after_data_mib": base, "X_nnz": int(X.nnz),
            "X_mib": (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20,
            "dense_X_would_be_mib": n * d * np.dtype(dtype).itemsize / 2**20}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("rss", help="peak RSS of one epoch of a peer")
    p.add_argument("--peer", required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--sizes", default="784,256,128,10")
    p.add_argument("--data-dir", default=None)
    p = sub.add_parser("first-epoch", help="compile cost: first step and first epoch against the second")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-dir", default=None)
    p = sub.add_parser("first-fit", help="a new user's first MLPClassifier fit on the digits data")
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p = sub.add_parser("sparse", help="one estimator's partial_fit epochs on sparse input")
    p.add_argument("--peer", required=True, choices=("sklearn", "tinynn"))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--d", type=int, required=True)
    p.add_argument("--density", type=float, required=True)
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    args = ap.parse_args(argv)
    if args.what == "rss":
        out = rss(args.peer, args.batch_size, tuple(int(w) for w in args.sizes.split(",")), args.data_dir)
    elif args.what == "first-epoch":
        out = first_epoch(args.batch_size, args.data_dir)
    elif args.what == "first-fit":
        out = first_fit(args.dtype)
    else:
        out = sparse(args.peer, args.n, args.d, args.density, args.hidden, args.epochs, args.dtype)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
