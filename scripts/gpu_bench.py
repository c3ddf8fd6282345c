#!/usr/bin/env python
"""GPU benchmark: tinynn's CUDA backend against PyTorch (cuBLAS) on one GPU.

(i)  Training epochs of an MNIST-shaped MLP, 784-4096-4096-10 ReLU, softmax cross-entropy, Adam(1e-3), float32,
     60,000 samples (random data of MNIST's shape, or MNIST itself with --data-dir) in shuffled batches gathered
     on the host: tinynn with its GPU data path (pinned double buffers, a copy stream, losses read every
     ``loss_every`` steps), tinynn on its plain synchronous path (feed=False: pageable copies, the loss read
     every step), and PyTorch on CUDA (pinned host batches copied with non_blocking=True, the loss summed on
     the device and read once an epoch; TF32 off, so both sides compute in float32). Median epoch seconds
     over --epochs timed epochs after one warm-up epoch (which also compiles tinynn's kernels).
(ii) A float32 4096 x 4096 x 4096 matmul: tinynn's tiled kernel (``ops.matmul`` on device arrays) against cuBLAS
     (torch.matmul, or cupy when torch has no CUDA), in GFLOP/s (2 n³ / median seconds) and their ratio.

Prints a table and writes the numbers as JSON to --out.

    python scripts/gpu_bench.py --out runs/gpu_bench.json
    python scripts/gpu_bench.py --batch-size 512 --data-dir ../shared/data/mnist --out runs/gpu_bench_512.json

Without a CUDA GPU it says so and exits 0 without measuring. Under NUMBA_ENABLE_CUDASIM=1 it runs on Numba's
simulator (only sensible with tiny --sizes/--n/--matmul: a smoke test; the timings mean nothing there).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = (784, 4096, 4096, 10)


# --------------------------------------------------------------------------- environment
def cuda_status():
    """(available, simulator, device name)."""
    from numba import cuda
    from numba.core import config

    sim = bool(config.ENABLE_CUDASIM)
    try:
        available = bool(cuda.is_available())
    except Exception:
        available = False
    name = None
    if available:
        try:
            name = cuda.get_current_device().name
            name = name.decode() if isinstance(name, bytes) else str(name)
        except Exception:
            name = "CUDA simulator" if sim else "unknown"
    return available, sim, name


def torch_cuda():
    """torch when it is installed with a usable CUDA device, else (None, why)."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} has no CUDA device"
    return torch, None


def synchronize():
    from numba import cuda

    cuda.synchronize()


def data(args, sizes):
    """(X, y): MNIST's training set with --data-dir, else uniform random pixels and labels of its shape."""
    if args.data_dir:
        from tinynn.data import load_mnist

        X, y, _, _ = load_mnist(args.data_dir, download=False)
        if X.shape[1] != sizes[0] or sizes[-1] != 10:
            raise SystemExit(f"gpu_bench: --sizes must start with {X.shape[1]} and end with 10 for MNIST")
        return X[:args.n], y[:args.n]
    rng = np.random.default_rng(0)
    return rng.random((args.n, sizes[0]), dtype=np.float32), rng.integers(0, sizes[-1], args.n)


# --------------------------------------------------------------------------- (i) epochs
class TinynnPeer:
    def __init__(self, X, y, sizes, bs, feed, loss_every):
        import tinynn as tn
        from tinynn.training import Trainer, build_mlp

        self.name = "tinynn" if feed else "tinynn_sync"
        self.X, self.y = X, y
        model = build_mlp(list(sizes), seed=0).to("cuda")
        self.trainer = Trainer(model, tn.SoftmaxCrossEntropy(), tn.optim.Adam(model.parameters(), lr=1e-3),
                               batch_size=bs, rng=0, feed=feed, loss_every=loss_every)

    def epoch(self):
        return self.trainer.train_epoch(self.X, self.y)["train_loss"]    # ends synchronised (its last read)

    def extra(self):
        f = self.trainer.batch_feed
        return {} if f is None else {"loss_reads": f.reads, "host_syncs": f.syncs, "uploads": f.uploads,
                                     "non_blocking_copy_stream": f.non_blocking}


class TorchPeer:
    name = "pytorch"

    def __init__(self, torch, X, y, sizes, bs):
        self.torch, self.bs = torch, bs
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.manual_seed(0)
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.dev = torch.device("cuda")
        self.model = torch.nn.Sequential(*layers).to(self.dev)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.CrossEntropyLoss()
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(np.asarray(y, np.int64))
        self.xb = [torch.empty((bs,) + tuple(self.X.shape[1:]), dtype=self.X.dtype).pin_memory() for _ in range(2)]
        self.yb = [torch.empty(bs, dtype=torch.int64).pin_memory() for _ in range(2)]
        self.copied = [torch.cuda.Event() for _ in range(2)]     # after the copies out of each pinned pair
        self.gen = torch.Generator().manual_seed(0)

    def epoch(self):
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
            loss = self.loss(self.model(x), t)
            loss.backward()
            self.opt.step()
            total += loss.detach() * m
        value = float(total) / n                                 # one read an epoch
        torch.cuda.synchronize()
        return value

    def extra(self):
        return {"tf32": False}


def race(peers, epochs):
    """One warm-up epoch each, then ``epochs`` rounds in which every peer runs an epoch (noise hits them alike)."""
    times = {p.name: [] for p in peers}
    losses = {p.name: [] for p in peers}
    for p in peers:
        p.epoch()
        synchronize()
    for _ in range(epochs):
        for p in peers:
            synchronize()
            t = time.perf_counter()
            losses[p.name].append(p.epoch())
            times[p.name].append(time.perf_counter() - t)
    return {p.name: {"median_s": statistics.median(times[p.name]), "epoch_s": times[p.name],
                     "train_loss": losses[p.name], **p.extra()} for p in peers}


# --------------------------------------------------------------------------- (ii) matmul
def matmul_bench(n, repeats, torch):
    from numba import cuda

    from tinynn import kernels
    from tinynn.kernels import ops

    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n), dtype=np.float32)
    B = rng.standard_normal((n, n), dtype=np.float32)
    dA, dB = kernels.to_device(A, "cuda"), kernels.to_device(B, "cuda")
    dC = cuda.device_array((n, n), np.float32)
    flops = 2.0 * n ** 3

    def timed(fn, sync):
        fn()                                                     # compile / warm up
        sync()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    out = {"n": n, "repeats": repeats}
    t = timed(lambda: ops.matmul(dA, dB, out=dC), synchronize)
    out["tinynn_s"], out["tinynn_gflops"] = t, flops / t / 1e9
    err = None
    if n <= 1024:                                                # a correctness check where it is cheap
        err = float(np.max(np.abs(kernels.to_host(dC) - A @ B)))
        out["tinynn_max_abs_err"] = err
    ref, why = None, None
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False
        tA, tB = torch.from_numpy(A).cuda(), torch.from_numpy(B).cuda()
        tC = torch.empty_like(tA)
        ref = ("cuBLAS (torch.matmul, TF32 off)",
               timed(lambda: torch.matmul(tA, tB, out=tC), torch.cuda.synchronize))
    else:
        try:
            import cupy

            cA, cB = cupy.asarray(A), cupy.asarray(B)
            cC = cupy.empty_like(cA)
            ref = ("cuBLAS (cupy.matmul)", timed(lambda: cupy.matmul(cA, cB, out=cC),
                                                 cupy.cuda.runtime.deviceSynchronize))
        except ImportError:
            why = "neither torch with CUDA nor cupy is installed: no cuBLAS to compare with"
    if ref is not None:
        out["reference"], out["reference_s"] = ref[0], ref[1]
        out["reference_gflops"] = flops / ref[1] / 1e9
        out["ratio"] = out["tinynn_gflops"] / out["reference_gflops"]
    else:
        out["reference_skipped"] = why
    return out


# --------------------------------------------------------------------------- main
def table(result):
    lines = [f"device: {result['device']}" + ("  (SIMULATOR: timings mean nothing)" if result["simulator"] else ""),
             f"(i) epoch of {'-'.join(map(str, result['sizes']))} float32, Adam, batch {result['batch_size']}, "
             f"{result['n']} samples ({result['data']})",
             f"    {'peer':<12} {'median s':>10} {'vs tinynn':>10}  last train_loss"]
    ep = result["epoch"]
    base = ep["tinynn"]["median_s"]
    for name, r in ep.items():
        if isinstance(r, dict):
            ratio = r["median_s"] / base
            lines.append(f"    {name:<12} {r['median_s']:>10.4f} {ratio:>9.2f}x  {r['train_loss'][-1]:.4f}")
    if "pytorch_skipped" in ep:
        lines.append(f"    pytorch: skipped ({ep['pytorch_skipped']})")
    mm = result["matmul"]
    lines.append(f"(ii) float32 matmul {mm['n']}^3: tinynn tiled {mm['tinynn_gflops']:.1f} GFLOP/s")
    if "reference_gflops" in mm:
        lines.append(f"     {mm['reference']}: {mm['reference_gflops']:.1f} GFLOP/s; "
                     f"tinynn / cuBLAS = {mm['ratio']:.3f}")
    else:
        lines.append(f"     cuBLAS: skipped ({mm['reference_skipped']})")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None, help="MNIST folder (default: random data of MNIST's shape)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="layer sizes, input to classes")
    ap.add_argument("--n", type=int, default=60000, help="training samples")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per peer (after one warm-up)")
    ap.add_argument("--loss-every", type=int, default=None, help="tinynn's loss read-back interval (default 20)")
    ap.add_argument("--matmul", type=int, default=4096, help="n of the n x n x n matmul")
    ap.add_argument("--repeats", type=int, default=10, help="timed matmuls (after one warm-up)")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    ap.add_argument("--out", default=None, help="JSON file for the results")
    args = ap.parse_args(argv)

    def write(obj):
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump(obj, f, indent=2)

    available, sim, device = cuda_status()
    if not available:
        msg = ("gpu_bench: no CUDA GPU here (numba.cuda.is_available() is False); nothing measured. "
               "Run it on a machine with an NVIDIA GPU (pip install -e .[cuda]), or with NUMBA_ENABLE_CUDASIM=1 "
               "and tiny --sizes/--n/--matmul for a smoke test of the simulator.")
        print(msg)
        write({"skipped": msg})
        return 0
    sizes = tuple(int(s) for s in args.sizes.split(","))
    torch, why = (None, "--no-torch") if args.no_torch else torch_cuda()
    X, y = data(args, sizes)
    result = {"device": device, "simulator": sim, "sizes": sizes, "batch_size": args.batch_size, "n": len(X),
              "data": "MNIST" if args.data_dir else "random, MNIST's shape", "epochs_timed": args.epochs,
              "python": platform.python_version(), "numpy": np.__version__}
    import numba

    result["numba"] = numba.__version__
    peers = [TinynnPeer(X, y, sizes, args.batch_size, True, args.loss_every),
             TinynnPeer(X, y, sizes, args.batch_size, False, None)]
    if torch is not None:
        peers.append(TorchPeer(torch, X, y, sizes, args.batch_size))
        result["torch"] = torch.__version__
    result["epoch"] = race(peers, args.epochs)
    if torch is None:
        result["epoch"]["pytorch_skipped"] = why
    result["matmul"] = matmul_bench(args.matmul, args.repeats, torch)
    print(table(result))
    write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
