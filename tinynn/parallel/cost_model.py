r"""An analytic cost model of a training step under each strategy (α-β model of communication).

A message of S bytes between two workers costs α + S/β (latency α, link bandwidth β). Ring allreduce over N
workers sends 2(N-1) messages of S/N bytes from each worker (reduce-scatter, then allgather):

    T_allreduce(S, N) = 2(N-1) α + 2 (N-1)/N · S/β

Compute of one step on b rows is fitted as t(b) = c₀ + c₁ b (c₀: per-step overhead — Python, kernel launches,
the optimizer's pass over the parameters; c₁: the per-row GEMM work), measured on the machine.

* data parallel, per-worker batch b (weak scaling) or b = B/N (strong, fixed global batch B):
      T(N) = t(b) + max(T_allreduce(S, N) - ρ·t_bwd(b), ε·T_allreduce(S, N))
  ρ ∈ [0, 1] is the fraction of the backward pass (t_bwd ≈ ⅔ of the step's compute) the bucketed allreduce
  hides behind; ε the part that cannot hide (the first layer's bucket starts last). ρ = 0: no overlap.
* pipeline, P stages, M micro-batches, activations of A bytes per row crossing each of the P-1 cuts:
      T(P) = (M + P - 1)/M · t(B)/P + 2 (M + P - 1)(α + A·B/(M β))     (GPipe and 1F1B: same bubble)
* tensor parallel, P ranks, k MLP blocks, block width d, B rows: each block one allreduce forward and one
  backward of B·d·4 bytes:
      T(P) = t(B)/P + 2k · T_allreduce(4 B d, P)
* asynchronous SGD, W workers and one server: the server receives a gradient and sends the parameters
  for every update, so updates/s ≤ β / (2S); workers compute in parallel, so
      throughput = min(W / (t(b) + 2(α + S/β) + t_apply), 1 / (2S/β + t_apply))  updates per second

Speed-up is T_single / T(N) (strong scaling: same global batch) or N · T_single(b) / T(N) (weak scaling:
throughput of N workers, each on b rows, against one worker); efficiency = speed-up / N.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._write import save_figure

GBIT = 1e9 / 8                      # bytes per second in one Gbit/s


@dataclass
class Network:
    """A link: ``bandwidth`` in bytes/s, ``latency`` α in seconds per message."""

    name: str
    bandwidth: float
    latency: float


# Latencies are typical one-way MPI small-message latencies: 10 GbE over TCP ~25 µs, 25 GbE with RoCE ~5 µs,
# 100 Gbit/s InfiniBand EDR ~1.5 µs. Bandwidths are the line rates (the real payload rate is ~90-95 % of it).
NETWORKS = (Network("10 Gbit/s", 10 * GBIT, 25e-6), Network("25 Gbit/s", 25 * GBIT, 5e-6),
            Network("100 Gbit/s", 100 * GBIT, 1.5e-6))


@dataclass
class Compute:
    """t(b) = c0 + c1 b seconds per training step on b rows; ``backward_share`` of it is the backward pass."""

    c0: float
    c1: float
    backward_share: float = 2 / 3

    def __call__(self, b):
        return self.c0 + self.c1 * np.asarray(b, dtype=float)

    @classmethod
    def fit(cls, batch_sizes, seconds):
        c1, c0 = np.polyfit(np.asarray(batch_sizes, float), np.asarray(seconds, float), 1)
        return cls(max(float(c0), 0.0), float(c1))


@dataclass
class ModelSpec:
    """What the cost model needs of a model: gradient bytes, compute, activation bytes per row at a cut,
    the MLP blocks (count, width) tensor parallelism splits."""

    name: str
    grad_bytes: float
    compute: Compute
    activation_bytes_per_row: float = 0.0
    blocks: int = 1
    block_width: int = 0
    notes: dict = field(default_factory=dict)


def allreduce_time(nbytes, n, net: Network):
    """Ring allreduce: 2(N-1) α + 2(N-1)/N · S/β (0 for one worker)."""
    n = np.asarray(n, dtype=float)
    return np.where(n > 1, 2 * (n - 1) * net.latency + 2 * (n - 1) / n * nbytes / net.bandwidth, 0.0)


def data_parallel_step(spec: ModelSpec, n, net: Network, batch, weak=True, overlap=1.0, unhidden=0.15):
    """Step time of synchronous data parallelism on ``n`` workers (per-worker batch ``batch`` when ``weak``,
    else global batch ``batch`` split n ways)."""
    n = np.asarray(n, dtype=float)
    b = batch if weak else np.maximum(batch / n, 1.0)
    t = spec.compute(b)
    comm = allreduce_time(spec.grad_bytes, n, net)
    exposed = np.maximum(comm - overlap * spec.compute.backward_share * t, unhidden * comm)
    return t + exposed


def data_parallel_speedup(spec, n, net, batch, weak=True, **kw):
    n = np.asarray(n, dtype=float)
    t1 = spec.compute(batch)
    tn = data_parallel_step(spec, n, net, batch, weak, **kw)
    return n * t1 / tn if weak else t1 / tn


def pipeline_step(spec: ModelSpec, p, net: Network, batch, microbatches, stage_shares=None):
    """GPipe/1F1B step: with stage s taking a share f_s of the compute t(B),
    T = ((M - 1) max_s f_s + Σ_s f_s) t(B) / M + messages; balanced stages (f_s = 1/P) give the bubble
    formula (M + P - 1)/M · t(B)/P. Each micro-batch crosses the P-1 cuts forward and back."""
    m = float(microbatches)
    if stage_shares is None:
        p = np.asarray(p, dtype=float)
        compute = (m + p - 1) / m * spec.compute(batch) / p
    else:
        f = np.asarray(stage_shares, dtype=float)
        p = float(len(f))
        compute = ((m - 1) * f.max() + f.sum()) * spec.compute(batch) / m
    comm = np.where(p > 1, 2 * (m + p - 1) * (net.latency + spec.activation_bytes_per_row * batch / m /
                                               net.bandwidth), 0.0)
    return compute + comm


def tensor_step(spec: ModelSpec, p, net: Network, batch, allreduces=None, replicated_share=0.0):
    """Sharded compute t(B)(1 - r)/P + replicated compute t(B) r, plus the activation allreduces (default two per
    block: one forward, one backward; one fewer when the first layer is column-parallel: it has no dX)."""
    p = np.asarray(p, dtype=float)
    k = 2 * spec.blocks if allreduces is None else allreduces
    t = spec.compute(batch)
    return t * (1 - replicated_share) / p + t * replicated_share + \
        k * allreduce_time(4.0 * batch * spec.block_width, p, net)


def async_throughput(spec: ModelSpec, workers, net: Network, batch, apply_s):
    """Updates per second of a parameter server with ``workers`` workers."""
    w = np.asarray(workers, dtype=float)
    msg = 2 * (net.latency + spec.grad_bytes / net.bandwidth)
    return np.minimum(w / (spec.compute(batch) + msg + apply_s), 1.0 / (msg + apply_s))


def mlp_spec(name, sizes, compute, dtype_bytes=4):
    """ModelSpec of an MLP ``sizes`` = [d_in, h_1, …, d_out]: parameters, activations at the widest cut."""
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    hidden = sizes[1:-1]
    return ModelSpec(name, params * dtype_bytes, compute, activation_bytes_per_row=dtype_bytes * max(hidden or [0]),
                     blocks=max(1, len(hidden) // 2), block_width=max(hidden or [0]),
                     notes={"parameters": params})


def resnet50_reference():
    """The kind of model behind Horovod's ~90 % scaling (ResNet-50 on V100s, batch 64 per GPU): 25.6 M
    parameters (102 MB of float32 gradients), about 0.2 s per step of compute (fwd+bwd at ~330 images/s per
    GPU, Horovod's and NVIDIA's published single-GPU numbers for fp32). The per-row cost dominates: 4 GFLOP
    forward per image against 2 FLOP per parameter per row for an MLP."""
    return ModelSpec("ResNet-50 (V100, batch 64/GPU)", 25.6e6 * 4, Compute(0.005, 0.2 / 64))


def fit_link(sizes_bytes, seconds):
    """α and β from measured two-worker allreduce times (ring factor 2(N-1)/N = 1 at N = 2, 2 messages):
    t = 2α + S/β, fitted in relative error (so that the small, latency-bound sizes count as much as the large).
    Returns a Network."""
    S, t = np.asarray(sizes_bytes, float), np.asarray(seconds, float)
    A = np.stack([1.0 / t, S / t], axis=1)
    (intercept, slope), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    if intercept <= 0:                                   # the smallest message bounds the latency
        intercept = float(t[np.argmin(S)])
    return Network("measured", 1.0 / max(slope, 1e-30), intercept / 2)


def plot(specs, path, workers=(1, 2, 4, 8, 16, 32, 64), networks=NETWORKS, batch=128, reference=None,
         measured=None, overlap=0.0):
    """Step time and speed-up (weak and strong scaling) of data parallelism for ``specs`` on ``networks``;
    ``reference``: a large model for comparison, drawn with full overlap (as Horovod/DDP reach it); ``specs``
    with ``overlap`` (0: the allreduce after backward, as measured here); ``measured``: {label: (n, seconds)}
    points to overlay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = np.asarray(workers, dtype=float)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    styles = ["-", "--", ":"]
    colors = {net.name: c for net, c in zip(networks, ["C0", "C1", "C2"])}
    all_specs = list(specs) + ([reference] if reference is not None else [])
    for si, spec in enumerate(all_specs):
        ls = styles[si % len(styles)]
        ref = spec is reference
        kw = dict(overlap=1.0, unhidden=0.15) if ref else dict(overlap=overlap, unhidden=1.0 if overlap == 0 else 0.15)
        for net in networks:
            label = f"{spec.name}, {net.name}"
            t = data_parallel_step(spec, n, net, 64 if ref else batch, weak=True, **kw)
            axes[0].plot(n, 1e3 * t, ls, color=colors[net.name], marker="o", ms=3, label=label)
            s = data_parallel_speedup(spec, n, net, 64 if ref else batch, weak=True, **kw)
            axes[1].plot(n, s / n * 100, ls, color=colors[net.name], marker="o", ms=3, label=label)
            if not ref:
                s2 = data_parallel_speedup(spec, n, net, batch, weak=False, **kw)
                axes[2].plot(n, s2, ls, color=colors[net.name], marker="o", ms=3, label=label)
    if measured:
        for label, (mn, ms) in measured.items():
            axes[0].plot(mn, 1e3 * np.asarray(ms), "k*", ms=10, label=label)
    axes[2].plot(n, n, color="gray", lw=0.8, label="ideal")
    axes[1].axhline(90, color="gray", lw=0.8, ls="-.")
    axes[1].text(1.1, 91, "Horovod/DDP ~90 %", fontsize=8, color="gray")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("workers N")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("step time (ms), per-worker batch fixed")
    axes[0].set_title("data parallel step time (weak scaling)")
    axes[1].set_ylabel("scaling efficiency (%)")
    axes[1].set_title("weak scaling: N·t(b)/T_N(b)")
    axes[1].set_ylim(0, 105)
    axes[2].set_ylabel(f"speed-up at global batch {batch}")
    axes[2].set_title("strong scaling: t(B)/T_N(B/N)")
    axes[2].set_yscale("log", base=2)
    fig.suptitle("data-parallel cost model (ring allreduce, α-β); tinynn models without overlap (as measured with "
                 "MPICH), the ResNet-50 reference with full overlap", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    try:
        save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)
    return path


def table(specs, networks=NETWORKS, workers=(2, 4, 8, 16, 32, 64), batch=128, weak=True, overlap=1.0, unhidden=0.15):
    """Rows (model, network, N, step ms, speed-up, efficiency) of the data-parallel projection at ``batch``
    rows per worker (``weak``) or in all (strong); ``overlap=0, unhidden=1``: no overlap."""
    rows = []
    for spec in specs:
        b = batch
        for net in networks:
            for n in workers:
                t = float(data_parallel_step(spec, n, net, b, weak=weak, overlap=overlap, unhidden=unhidden))
                s = float(data_parallel_speedup(spec, n, net, b, weak=weak, overlap=overlap, unhidden=unhidden))
                rows.append({"model": spec.name, "network": net.name, "workers": n, "step_ms": 1e3 * t,
                             "speedup": s, "efficiency": s / n})
    return rows
