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

    python -m benchmarks.gpu_bench --out runs/gpu_bench.json
    python -m benchmarks.gpu_bench --batch-size 512 --data-dir ../shared/data/mnist --out runs/gpu_bench_512.json

(from the repository root; the race, the machine record and the two peers are benchmarks/harness.py's)

Without a CUDA GPU it says so and exits 0 without measuring. Under NUMBA_ENABLE_CUDASIM=1 it runs on Numba's
simulator (only sensible with tiny --sizes/--n/--matmul: a smoke test; the timings mean nothing there).
"""
import argparse
import platform
import statistics
import sys
import time

import numpy as np

from benchmarks.harness import TinynnPeer, TorchPeer, machine, race, write_json

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
def epochs(peers, rounds):
    """The peers raced on the device (synchronised before each timed epoch; each ends synchronised): per peer
    the median epoch seconds, every epoch's seconds and training loss, and what the peer reports."""
    laps = race(peers, rounds, sync=synchronize)
    return {p.name: {"median_s": laps[p.name]["median_s"], "epoch_s": laps[p.name]["times"],
                     "train_loss": laps[p.name]["results"], **p.extra()} for p in peers}


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
            write_json(obj, args.out, indent=2)

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
              "python": platform.python_version(), "numpy": np.__version__, "machine": machine()}
    import numba

    result["numba"] = numba.__version__
    peers = [TinynnPeer(X, y, args.batch_size, sizes=sizes, device="cuda", feed=True, loss_every=args.loss_every),
             TinynnPeer(X, y, args.batch_size, sizes=sizes, device="cuda", feed=False)]
    if torch is not None:
        peers.append(TorchPeer(X, y, args.batch_size, sizes=sizes, device="cuda"))
        result["torch"] = torch.__version__
    result["epoch"] = epochs(peers, args.epochs)
    if torch is None:
        result["epoch"]["pytorch_skipped"] = why
    result["matmul"] = matmul_bench(args.matmul, args.repeats, torch)
    print(table(result))
    write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
