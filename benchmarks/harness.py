"""The one harness of the benchmarks: ``race`` (peers taking turns, medians and per-round ratios), ``machine``
(where a number was measured) and the peers, each written once:

* ``TinynnPeer``    tinynn's layer API trained by its one loop, ``tinynn.training.Trainer`` (what
                    scripts/train_mnist.py runs), on the CPU or a device (with or without the GPU data path);
* ``TorchPeer``     the same MLP in PyTorch: CPU eager with 2 threads, or CUDA with pinned double buffers;
* ``NumpyPeer``     a plain NumPy MLP, written the way a course exercise would;
* ``EstimatorPeer`` sklearn's or tinynn's MLPClassifier, one epoch per ``partial_fit``;
* ``FloorPeer``     the BLAS floor: an epoch's matmuls alone, at the same shapes, through the same BLAS.

The model: ``sizes`` (784-256-128-10 by default), ReLU, softmax cross-entropy, Adam 1e-3, float32. A peer has a
``name`` and ``epoch()`` (what it returns is kept: a loss, a measurement), and may have ``warmup()`` (default:
one ``epoch()``), ``accuracy(X, y)`` and ``extra()`` (what the result records beside the times).

The benchmarks run as modules from the repository root, on the installed package::

    python -m benchmarks.bench ...            python -m benchmarks.gpu_bench ...
    python -m benchmarks.parallel_bench ...   (benchmarks.fresh: the measurements that need a fresh process)
"""
import os
import platform
import statistics
import time
from importlib import metadata

import numpy as np
from tinynn import _write

SIZES = (784, 256, 128, 10)


# --------------------------------------------------------------------------- the race
def race(peers, rounds, *, reference=None, sync=None, elapsed=None):
    """Every peer's warm-up, then ``rounds`` rounds in which each peer runs one timed ``epoch()`` in turn, so
    that the machine's drift hits them alike.

    ``sync()`` runs after each warm-up and before each timed epoch (a GPU's synchronize, an MPI barrier; an
    epoch returns when its work is done); ``elapsed(seconds)`` turns this process's time into the reported one
    (e.g. the maximum over MPI ranks). Returns {name: lap}, each lap a dict: ``times`` (seconds per round),
    ``results`` (what each timed epoch returned), ``median_s``, ``min_s``, and against ``reference`` (a peer's
    name; default the first peer) ``ratios`` (this peer's time over the reference's, round by round) and
    ``ratio_median`` (the figure to read: robust to the drift between rounds)."""
    names = [p.name for p in peers]
    if len(set(names)) != len(names):
        raise ValueError(f"race: peer names must differ, got {names}")
    reference = names[0] if reference is None else reference
    if reference not in names:
        raise ValueError(f"race: reference {reference!r} is not a peer ({names})")
    sync = sync or (lambda: None)
    elapsed = elapsed or (lambda seconds: seconds)
    times = {n: [] for n in names}
    results = {n: [] for n in names}
    for p in peers:
        getattr(p, "warmup", p.epoch)()
        sync()
    for _ in range(rounds):
        for p in peers:
            sync()
            t = time.perf_counter()
            r = p.epoch()
            times[p.name].append(elapsed(time.perf_counter() - t))
            results[p.name].append(r)
    laps = {}
    for n in names:
        ratios = [t / tr for t, tr in zip(times[n], times[reference])]
        laps[n] = {"times": times[n], "results": results[n],
                   "median_s": statistics.median(times[n]) if times[n] else None,
                   "min_s": min(times[n]) if times[n] else None,
                   "ratios": ratios, "ratio_median": statistics.median(ratios) if ratios else None}
    return laps


# --------------------------------------------------------------------------- the machine record
def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine(mpi=False):
    """Where the numbers were measured: CPU model, the cores this process may use (and the machine's count),
    the BLAS libraries and their threads (threadpoolctl), numpy/numba/torch/scikit-learn versions (None where
    not installed), Python, the platform, ``OPENBLAS_CORETYPE``; with ``mpi``, the MPI library and mpi4py."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import threadpoolctl

        blas = [(i["internal_api"], i["version"], i["num_threads"], i.get("architecture"))
                for i in threadpoolctl.threadpool_info()]
    except Exception:
        blas = None
    info = {"cpu": cpu, "cores": cores, "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "numpy": np.__version__, "numba": _version("numba"),
            "torch": _version("torch"), "scikit-learn": _version("scikit-learn"), "blas": blas,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
    if mpi:
        try:
            import mpi4py
            from mpi4py import MPI

            info["mpi"] = MPI.Get_library_version().splitlines()[0].strip()
            info["mpi4py"] = mpi4py.__version__
        except Exception:
            pass
    return info


def data(data_dir):
    """MNIST: (X, y, X_test, y_test), float32 pixels in [0, 1]."""
    from tinynn.data import load_mnist

    return load_mnist(data_dir)


def write_json(result, path, indent=1):
    """``result`` as JSON at ``path`` (its folder made), through tinynn's atomic writer."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _write.write_json(path, result, indent=indent)


# --------------------------------------------------------------------------- the peers
class TinynnPeer:
    """tinynn's layer API trained by its one loop (``Trainer.train_epoch``); ``epoch()`` returns the epoch's
    training loss. On a device: ``feed`` True is the GPU data path (pinned double buffers, a copy stream, the
    losses read every ``loss_every`` steps), False the plain synchronous path."""

    def __init__(self, X, y, bs, seed=0, sizes=SIZES, device="cpu", feed=True, loss_every=None, name=None):
        import tinynn as tn
        from tinynn.training import Trainer

        self.name = name or ("tinynn" if feed else "tinynn_sync")
        self.X, self.y, self.bs = X, y, bs
        layers = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers += [tn.Linear(a, b, rng=seed + i), tn.ReLU()]
        self.model = tn.Sequential(*layers[:-1])
        if device != "cpu":
            self.model = self.model.to(device)
        self.opt = tn.optim.Adam(self.model.parameters(), lr=1e-3)
        self.trainer = Trainer(self.model, tn.SoftmaxCrossEntropy(), self.opt, batch_size=bs, rng=seed, feed=feed,
                               loss_every=loss_every)

    def step(self, idx):
        return self.trainer.step(self.X[idx], self.y[idx])

    def epoch(self):
        return self.trainer.train_epoch(self.X, self.y)["train_loss"]     # on a device: ends synchronised

    def accuracy(self, X, y):
        return self.trainer.evaluate(X, y)[1]

    def extra(self):
        f = self.trainer.batch_feed
        return {} if f is None else {"loss_reads": f.reads, "host_syncs": f.syncs, "uploads": f.uploads,
                                     "non_blocking_copy_stream": f.non_blocking}


class TorchPeer:
    """The same MLP in PyTorch. CPU: eager, ``threads`` threads, batches by ``index_select``. CUDA (TF32 off,
    so both sides compute in float32): pinned host batches copied with ``non_blocking=True``, the loss summed on
    the device and read once an epoch (``epoch()`` returns it)."""

    name = "pytorch"

    def __init__(self, X, y, bs, seed=0, sizes=SIZES, device="cpu", threads=2):
        import torch

        self.torch, self.bs = torch, bs
        self.dev = torch.device(device)
        if self.dev.type == "cpu":
            torch.set_num_threads(threads)
        else:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        torch.manual_seed(seed)
        nn = torch.nn
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.model = nn.Sequential(*layers[:-1]).to(self.dev)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.lossf = nn.CrossEntropyLoss()
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(np.asarray(y, np.int64))
        self.gen = torch.Generator().manual_seed(seed)
        if self.dev.type == "cuda":
            self.xb = [torch.empty((bs,) + tuple(self.X.shape[1:]), dtype=self.X.dtype).pin_memory()
                       for _ in range(2)]
            self.yb = [torch.empty(bs, dtype=torch.int64).pin_memory() for _ in range(2)]
            self.copied = [torch.cuda.Event() for _ in range(2)]     # after the copies out of each pinned pair

    def epoch(self):
        return self._epoch_cpu() if self.dev.type == "cpu" else self._epoch_cuda()

    def _epoch_cpu(self):
        torch = self.torch
        order = torch.randperm(len(self.X), generator=self.gen)
        for s in range(0, len(order), self.bs):
            idx = order[s:s + self.bs]
            xb, yb = self.X.index_select(0, idx), self.y.index_select(0, idx)
            self.opt.zero_grad()
            loss = self.lossf(self.model(xb), yb)
            loss.backward()
            self.opt.step()

    def _epoch_cuda(self):
        torch = self.torch
        n = self.X.shape[0]
        order = torch.randperm(n, generator=self.gen)
        total = torch.zeros((), device=self.dev)
        for k, s in enumerate(range(0, n, self.bs)):
            idx = order[s:s + self.bs]
            m = len(idx)
            xb, yb = self.xb[k % 2][:m], self.yb[k % 2][:m]
            self.copied[k % 2].synchronize()                     # the copies out of this pair (step k-2) are done
            torch.index_select(self.X, 0, idx, out=xb)
            torch.index_select(self.y, 0, idx, out=yb)
            x, t = xb.to(self.dev, non_blocking=True), yb.to(self.dev, non_blocking=True)
            self.copied[k % 2].record()
            self.opt.zero_grad(set_to_none=True)
            loss = self.lossf(self.model(x), t)
            loss.backward()
            self.opt.step()
            total += loss.detach() * m
        value = float(total) / n                                 # one read an epoch
        torch.cuda.synchronize()
        return value

    def accuracy(self, X, y):
        with self.torch.no_grad():
            Z = self.model(self.torch.from_numpy(X).to(self.dev))
            return float((Z.argmax(1).cpu().numpy() == y).mean())

    def extra(self):
        return {"tf32": False} if self.dev.type == "cuda" else {"threads": self.torch.get_num_threads()}


class NumpyPeer:
    """A plain NumPy MLP, written the way a course exercise would: allocating, unfused."""

    name = "numpy"

    def __init__(self, X, y, bs, seed=0, sizes=SIZES):
        rng = np.random.default_rng(seed)
        self.X, self.y, self.bs, self.rng = X, y, bs, rng
        self.W = [(rng.uniform(-1, 1, (a, b)) * np.sqrt(6 / a)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
        self.b = [np.zeros(b, np.float32) for b in sizes[1:]]
        self.params = self.W + self.b
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def forward(self, X):
        acts = [X]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            Z = acts[-1] @ W + b
            acts.append(np.maximum(Z, 0) if i < len(self.W) - 1 else Z)
        return acts

    def step(self, idx):
        X, y = self.X[idx], self.y[idx]
        acts = self.forward(X)
        Z = acts[-1]
        P = np.exp(Z - Z.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        dZ = P
        dZ[np.arange(len(y)), y] -= 1
        dZ /= len(y)
        gW, gb = [None] * len(self.W), [None] * len(self.W)
        for i in reversed(range(len(self.W))):
            gW[i] = acts[i].T @ dZ
            gb[i] = dZ.sum(0)
            if i:
                dZ = (dZ @ self.W[i].T) * (acts[i] > 0)
        self.t += 1
        bc1, bc2 = 1 - 0.9 ** self.t, 1 - 0.999 ** self.t
        for p, g, m, v in zip(self.params, gW + gb, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= (1e-3 / bc1) * m / (np.sqrt(v / bc2) + 1e-8)

    def epoch(self):
        order = self.rng.permutation(len(self.X))
        for s in range(0, len(order), self.bs):
            self.step(order[s:s + self.bs])

    def accuracy(self, X, y):
        return float(np.mean(np.argmax(self.forward(X)[-1], axis=1) == y))


class EstimatorPeer:
    """sklearn's or tinynn's MLPClassifier, one epoch per partial_fit, with identical arguments."""

    def __init__(self, cls, name, X, y, bs, seed=0, sizes=SIZES):
        self.name = name
        self.X, self.y = X, y
        self.est = cls(hidden_layer_sizes=sizes[1:-1], batch_size=bs, learning_rate_init=1e-3, alpha=1e-4,
                       random_state=seed)
        self.classes = np.arange(10)

    def epoch(self):
        self.est.partial_fit(self.X, self.y, classes=self.classes)

    def accuracy(self, X, y):
        return float(self.est.score(X, y))


class FloorPeer:
    """The BLAS floor as a peer of the race: one "epoch" is the epoch's matmuls alone — forward X·W for every
    layer, dW = Xᵀ dY for every layer, dX = dY Wᵀ for all but the first — at this batch size, through np.matmul
    (the same BLAS) on fixed arrays, ceil(n / batch) times. Racing it beside the peers makes tinynn / floor a
    per-round ratio, as robust to the machine's drift as the other ratios."""

    name = "blas floor (matmuls only)"

    def __init__(self, bs, sizes=SIZES, n=60000):
        rng = np.random.default_rng(0)
        shapes = []
        for a, b in zip(sizes, sizes[1:]):
            shapes.append(((bs, a), (a, b), False, False))          # Y = X W
            shapes.append(((bs, a), (bs, b), True, False))          # dW = Xᵀ dY
            if a != sizes[0]:
                shapes.append(((bs, b), (a, b), False, True))       # dX = dY Wᵀ
        self.flops = sum(2 * sa[0] * sa[1] * (sb[0] if tb else sb[1]) for sa, sb, ta, tb in shapes)
        self.arrays = [(rng.standard_normal(sa).astype(np.float32), rng.standard_normal(sb).astype(np.float32), ta, tb)
                       for sa, sb, ta, tb in shapes]
        self.outs = [np.empty(((A.shape[1] if ta else A.shape[0]), (B.shape[0] if tb else B.shape[1])), np.float32)
                     for A, B, ta, tb in self.arrays]
        self.steps = -(-n // bs)
        self.epoch_gflop = self.flops * self.steps / 1e9

    def epoch(self):
        for _ in range(self.steps):
            for (A, B, ta, tb), out in zip(self.arrays, self.outs):
                np.matmul(A.T if ta else A, B.T if tb else B, out=out)

    def accuracy(self, X, y):
        return None


PEERS = ("tinynn", "pytorch", "numpy", "tinynn.MLPClassifier", "sklearn.MLPClassifier")


def make_peer(name, X, y, bs, sizes=SIZES):
    """A CPU peer by its name in ``PEERS``."""
    if name == "tinynn":
        return TinynnPeer(X, y, bs, sizes=sizes)
    if name == "pytorch":
        return TorchPeer(X, y, bs, sizes=sizes)
    if name == "numpy":
        return NumpyPeer(X, y, bs, sizes=sizes)
    if name == "sklearn.MLPClassifier":
        from sklearn.neural_network import MLPClassifier

        return EstimatorPeer(MLPClassifier, name, X, y, bs, sizes=sizes)
    if name == "tinynn.MLPClassifier":
        import tinynn as tn

        return EstimatorPeer(tn.MLPClassifier, name, X, y, bs, sizes=sizes)
    raise ValueError(f"unknown peer {name!r}; expected one of {PEERS}")
