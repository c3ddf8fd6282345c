r"""Synchronous data parallelism (PyTorch DDP, Horovod): every rank holds the whole model and computes its
slice of each global mini-batch; one averaged gradient, the same optimizer step everywhere.

With P ranks, a global batch of N rows split as n_0 + … + n_{P-1} = N (uneven splits allowed), rank r's
loss L_r is the mean over its n_r rows, so the global batch's loss and gradient are

    L = Σ_r (n_r / N) L_r,        ∇L = Σ_r (n_r / N) ∇L_r             (one allreduce of the scaled gradients)

Each rank scales its gradient by n_r/N and the allreduce sums; every rank then holds ∇L and takes the same
optimizer step, so the replicas stay identical (MPICH's allreduce gives every rank the same bits; tested).
Reduction is bucketed and overlapped with backward as in DDP: ``grad_ready`` (``Sequential.backward``'s hook,
after a layer wrote its parameter gradients) starts a nonblocking ``Iallreduce`` on that layer's slices of the
flat gradient buffer: the last layers' gradients travel while the first layers' backward runs (then waited for).

``SyncBatchNorm`` normalises with the statistics of the global batch (sums allreduced), so training does
not depend on the number of ranks; ``DataParallel`` converts every ``BatchNorm1d`` of the model to it.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import kernels
from ..kernels import ops

from .._validation import check_float
from ..layers import BatchNorm1d
from ..strategy import Strategy
from .comm import Group, check_replicas, check_same, model_signature, per_rank_dropout, split_bounds, world

if TYPE_CHECKING:
    from ..model import Sequential


class SyncBatchNorm(BatchNorm1d):
    r"""Batch normalisation over the global batch, its rows spread over the ranks of ``group``.

    Forward (train), rank r holding n_r of the N = Σ_r n_r rows, with local mean μ_r and biased variance σ²_r:

        μ  = Σ_r n_r μ_r / N                                        (allreduce of [n_r, n_r μ_r])
        σ² = Σ_r [n_r σ²_r + n_r (μ_r - μ)²] / N                   (allreduce; Chan et al.'s pairwise update)
        x̂ = (X - μ) / √(σ² + eps),   Y = γ x̂ + β;   running statistics as BatchNorm1d with the global N.

    Backward: the global loss is L = Σ_r w_r L_r with w_r = n_r/N (each rank's loss is a mean over its own
    rows, and DataParallel scales its gradients by w_r). In rank r's own units (∂L_r), with dx̂ = dY ⊙ γ,

        s1_r = Σ_{rows of r} dx̂ = γ ⊙ dβ_r,        s2_r = Σ_{rows of r} dx̂ ⊙ x̂ = γ ⊙ dγ_r
        S1 = Σ_r w_r s1_r,   S2 = Σ_r w_r s2_r                      (one allreduce of [w_r s1_r, w_r s2_r])
        dX = 1/√(σ²+eps) · (dx̂ - (S1 + x̂ ⊙ S2) / n_r)

    which is BatchNorm1d's dX = (1/√(σ²+eps))/N · (N dx̂ - Σ dx̂ - x̂ Σ dx̂ ⊙ x̂) over the global batch,
    divided by w_r. It is computed as the local kernel's dX (with s1_r, s2_r) plus the correction
    (1/√(σ²+eps))/n_r · ((s1_r - S1) + x̂ ⊙ (s2_r - S2)). dγ_r = Σ dY ⊙ x̂ and dβ_r = Σ dY stay local: the
    data-parallel gradient reduction sums them with the weights w_r. On one rank this is BatchNorm1d exactly.
    """

    def __init__(self, num_features: int, group: Group | None = None, eps: float = 1e-5, momentum: float = 0.1,
                 dtype: Any = np.float32) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, dtype=dtype)
        self.group = world() if group is None else group

    @classmethod
    def from_batchnorm(cls, bn: BatchNorm1d, group):
        """A SyncBatchNorm sharing ``bn``'s parameters (the same Parameter objects: views into the model's
        flat buffers stay valid) and running statistics."""
        new = cls.__new__(cls)
        state = {k: v for k, v in vars(bn).items() if k not in ("_ws_cache",)}
        new.__dict__.update(state)
        new.group = group
        return new

    def forward(self, X):
        if not self.training:
            return super().forward(X)
        g = self.weight.data
        X = check_float(X, "SyncBatchNorm", ndim=2, width=self.num_features, dtype=g.dtype)
        n, d = X.shape
        ws = self._ws
        Y = ws("Y", X.shape, X.dtype, X)
        xhat = self.xhat = ws("xhat", X.shape, X.dtype, X)
        mean_l, var_l = ws("mean_l", (d,), X.dtype, X), ws("var_l", (d,), X.dtype, X)
        inv_l = ws("inv_l", (d,), X.dtype, X)
        ops.batchnorm_forward(X, g, self.bias.data, self.eps, Y, xhat, mean_l, var_l, inv_l)   # local μ_r, σ²_r
        mu_r = np.asarray(kernels.to_host(mean_l), np.float64)
        var_r = np.asarray(kernels.to_host(var_l), np.float64)
        a = np.empty(d + 1)
        a[0], a[1:] = n, n * mu_r
        self.group.allreduce_(a)                                              # [N, Σ n_r μ_r]
        N = int(round(a[0]))
        if N < 2:
            raise ValueError(f"SyncBatchNorm: expected more than 1 row per global batch in training mode, got {N}")
        mu = a[1:] / N                                                        # μ = Σ n_r μ_r / N
        m2 = n * var_r + n * (mu_r - mu) ** 2
        self.group.allreduce_(m2)                                             # Σ n_r σ²_r + n_r (μ_r - μ)²
        var = m2 / N                                                          # σ² (biased)
        self.n_local, self.n_global = n, N
        self.inv_std_host = 1.0 / np.sqrt(var + self.eps)
        mean_d, var_d = ws("mean", (d,), X.dtype, X), ws("var", (d,), X.dtype, X)
        kernels.assign(mean_d, mu.astype(X.dtype))
        kernels.assign(var_d, var.astype(X.dtype))
        self.inv_std = ws("inv_std", (d,), X.dtype, X)
        kernels.assign(self.inv_std, self.inv_std_host.astype(X.dtype))
        ones, zeros = self._constants(d, X)
        ops.batchnorm_eval(X, ones, zeros, mean_d, var_d, self.eps, out=xhat)          # x̂ = (X - μ)/√(σ²+eps)
        ops.batchnorm_eval(xhat, g, self.bias.data, zeros, ones, 0.0, out=Y)           # Y = γ x̂ + β
        ops.lerp(self.running_mean, mean_d, self.momentum, 1.0)                        # r ← (1-m) r + m μ
        ops.lerp(self.running_var, var_d, self.momentum, N / (N - 1))                  # r ← (1-m) r + m σ² N/(N-1)
        return Y

    def _constants(self, d, like):
        ones, zeros = self._ws("ones", (d,), like.dtype, like), self._ws("zeros", (d,), like.dtype, like)
        ops.fill(ones, 1.0)
        ops.fill(zeros, 0.0)
        return ones, zeros

    def backward(self, dY):
        assert self.xhat is not None, "SyncBatchNorm.backward before a training-mode forward"
        dY = check_float(dY, "SyncBatchNorm.backward", ndim=2, width=self.num_features, rows=self.xhat.shape[0])
        n, d = dY.shape
        dX = self._ws("dX", dY.shape, dY.dtype, dY)
        dg, db = self._grad_out(self.weight, "dg"), self._grad_out(self.bias, "db")
        ops.batchnorm_backward(dY, self.xhat, self.weight.data, self.inv_std, dX, dg, db)  # local sums s1_r, s2_r
        gamma = np.asarray(kernels.to_host(self.weight.data), np.float64)
        s = np.empty(2 * d)
        s[:d] = gamma * np.asarray(kernels.to_host(db), np.float64)                 # s1_r = γ ⊙ dβ_r
        s[d:] = gamma * np.asarray(kernels.to_host(dg), np.float64)                 # s2_r = γ ⊙ dγ_r
        S = s * (self.n_local / self.n_global)
        self.group.allreduce_(S)                                                    # S1, S2 = Σ_r w_r s_r
        c = self.inv_std_host * (s[:d] - S[:d]) / n                                 # (s1_r - S1)/(n_r √(σ²+eps))
        e = self.inv_std_host * (s[d:] - S[d:]) / n                                 # (s2_r - S2)/(n_r √(σ²+eps))
        c_d, e_d = self._ws("corr_c", (d,), dY.dtype, dY), self._ws("corr_e", (d,), dY.dtype, dY)
        kernels.assign(c_d, c.astype(dY.dtype))
        kernels.assign(e_d, e.astype(dY.dtype))
        ones, zeros = self._constants(d, dY)
        corr = self._ws("corr", dY.shape, dY.dtype, dY)
        ops.batchnorm_eval(self.xhat, e_d, c_d, zeros, ones, 0.0, out=corr)          # e ⊙ x̂ + c
        return ops.accumulate(dX, corr)                                             # dX += correction

    def __repr__(self):
        return f"SyncBatchNorm({self.num_features}, eps={self.eps}, momentum={self.momentum})"


def convert_sync_batchnorm(model: Sequential, group: Group) -> Sequential:
    """Replace every BatchNorm1d of ``model`` by a SyncBatchNorm on ``group`` sharing its parameters (torch's
    ``convert_sync_batchnorm``). Names, state_dict and flat buffers are unchanged. Returns the model."""
    changed = False
    for i, layer in enumerate(model.layers):
        if type(layer) is BatchNorm1d:
            model.layers[i] = SyncBatchNorm.from_batchnorm(layer, group)
            changed = True
    if changed and hasattr(model, "_plan"):
        model.plan = model._plan()                 # the execution plan holds layer objects: re-plan
    return model


class DataParallel(Strategy):
    """The data-parallel strategy of ``tinynn.training.Trainer`` (its ``strategy=`` argument).

    Parameters
    ----------
    model : Sequential with flat buffers, on the CPU or a device (device buffers go through host buffers)
    group : tinynn.parallel.Group, default the whole job (``world()``)
    batch_size : int or None — checked equal on every rank at start (a mismatch is a ValueError on every rank)
    overlap : bool, default True — bucketed nonblocking allreduce started from the backward hook; False
        runs one blocking allreduce over the whole gradient buffer after backward
    bucket_bytes : int, default 0 — a bucket closes when it holds at least this many bytes (0: one bucket per
        layer with parameters; DDP's default is 25 MB, more than tinynn's MNIST models hold)
    sync_batchnorm : bool, default True — convert BatchNorm1d layers to SyncBatchNorm
    dropout : "per_rank" (default) or "same" — per-rank dropout generators derived from the seed

    Protocol used by the Trainer, per global batch ``idx`` (the same on every rank):
    ``shard(idx)`` → this rank's rows; forward/backward with ``hook=grad_ready``;
    ``reduce_gradients(model, n_local, n_global)`` → model.flat.grad is the global batch's mean gradient;
    ``allsum(x)``; ``is_root``. After loading a checkpoint call ``on_load()``.
    """

    name, parallel, devices = "data", True, ("cpu", "cuda")   # the Trainer reduces gradients across processes

    def __init__(self, model: Any, group: Group | None = None, *, batch_size: int | None = None, overlap: bool = True,
                 bucket_bytes: int = 0, sync_batchnorm: bool = True, dropout: str = "per_rank") -> None:
        self.group = world() if group is None else group
        if getattr(model, "flat", None) is None:
            raise TypeError("DataParallel: expected a Sequential whose parameters share one flat buffer "
                            f"(one dtype, one device), got {type(model).__name__} without one")
        if dropout not in ("per_rank", "same"):
            raise ValueError(f"DataParallel: dropout must be 'per_rank' or 'same', got {dropout!r}")
        check_same(self.group, "model (layers, parameter shapes and dtypes)", model_signature(model))
        if batch_size is not None:
            check_same(self.group, "batch size", int(batch_size))
        self.model = self.module = model
        self.overlap = bool(overlap)
        self.bucket_bytes = int(bucket_bytes)
        self.dropout = dropout
        if sync_batchnorm:
            convert_sync_batchnorm(model, self.group)
        self.has_sync_bn = any(isinstance(l, SyncBatchNorm) for l in model.layers)
        self.broadcast_parameters()
        if dropout == "per_rank":
            per_rank_dropout(model, self.rank)
        self._plan_buckets()
        self._w: float | None = None                # this rank's share of the batch (shard() sets it)
        self._reqs: list[Any] = []                  # outstanding MPI requests
        self._aug_ranked = False
        self.stats = {"steps": 0, "wait_s": 0.0, "bytes": 0}

    # ------------------------------------------------------------------ identity
    rank = property(lambda self: self.group.rank)
    size = property(lambda self: self.group.size)

    def allsum(self, value):
        return self.group.allsum(value)

    # ------------------------------------------------------------------ set-up
    def broadcast_parameters(self):
        """Every rank starts from rank 0's parameters and running statistics (as DDP does)."""
        self.group.bcast_(self.model.flat.data)
        for layer in self.model.layers:
            for s in layer._state_names:
                self.group.bcast_(getattr(layer, s))

    def on_load(self):
        """After every rank loaded the same checkpoint: derive the per-rank dropout streams again (the file holds
        rank 0's) and check that the replicas are identical."""
        if self.dropout == "per_rank":
            per_rank_dropout(self.model, self.rank)
        self._aug_ranked = False                  # the file holds rank 0's augmentation stream too
        check_replicas(self.group, self.model.flat.data)

    def batches(self, trainer, X, T, sample_weight=None, accuracy=False):
        """The Trainer's batches; rank r > 0 augments its rows from the augmentation stream jumped r times."""
        if self.rank and not self._aug_ranked:
            trainer.aug_rng.bit_generator.state = trainer.aug_rng.bit_generator.jumped(self.rank).state
            self._aug_ranked = True
        return super().batches(trainer, X, T, sample_weight, accuracy)

    def _nodes(self):
        plan = getattr(self.model, "plan", None)
        if plan is not None:
            return list(plan)
        return list(enumerate(self.model.layers))

    def _plan_buckets(self):
        """Buckets of consecutive layers in backward order, each a list of merged (offset, size) ranges of the
        flat gradient buffer; ``_bucket_of[i]`` maps the hook's layer index to its bucket."""
        flat = self.model.flat
        where = {id(p): r for p, r in zip(flat.params, flat.offsets)}
        itemsize = np.dtype(flat.grad.dtype).itemsize
        self.buckets: list[list[tuple[int, int]]] = []
        self._bucket_of: dict[int, int] = {}
        self._members: list[Any] = []
        current, nbytes, members = [], 0, []
        for i, node in reversed(self._nodes()):
            ranges = [where[id(p)] for p in node.parameters() if p.requires_grad and id(p) in where]
            if not ranges:
                continue
            current += ranges
            members.append(i)
            nbytes += sum(s for _, s in ranges) * itemsize
            self._bucket_of[i] = len(self.buckets)
            if nbytes >= self.bucket_bytes:
                self.buckets.append(_merge(current))
                self._members.append(members)
                current, nbytes, members = [], 0, []
        if current:
            self.buckets.append(_merge(current))
            self._members.append(members)
        covered = sorted(r for b in self.buckets for r in b)
        total = sum(s for _, s in covered)
        trainable = sum(int(np.prod(p.shape)) for p in flat.params if p.requires_grad)
        if total != trainable:                     # a parameter the plan does not show: reduce everything at once
            self.buckets = [_merge([where[id(p)] for p in flat.params if p.requires_grad])]
            self._members = [[]]
            self._bucket_of = {}
        self._reset()

    def _reset(self):
        self._pending = [len(m) for m in self._members]
        self._next = 0
        self._reqs = []

    # ------------------------------------------------------------------ the step protocol
    def shard(self, idx, sample_weight=None):
        """This rank's rows of the global batch ``idx``: ``idx[lo:hi]``, the r-th part of an as-even-as-possible
        split (the first N mod P ranks get one row more). A rank may get no rows when N < P.

        Records this rank's share w_r of the batch, the factor its gradient is scaled by: n_r/N, or with
        per-row ``sample_weight`` (indexed like the data) Σ_{rows of r} s_i / Σ_{batch} s_i (a weighted loss is
        the weighted mean over the rank's rows). Pass the same numbers to ``reduce_gradients``."""
        n = len(idx)
        lo, hi = split_bounds(n, self.size, self.rank)
        if hi == lo and self.has_sync_bn:
            raise ValueError(f"DataParallel: a global batch of {n} rows leaves rank {self.rank} of {self.size} "
                             "without rows, which SyncBatchNorm cannot handle; use a batch size that is at least "
                             "the number of ranks (and drop or merge a smaller last batch)")
        if sample_weight is None:
            self._w = (hi - lo) / n
        else:
            total = float(np.sum(sample_weight[idx]))
            self._w = float(np.sum(sample_weight[idx[lo:hi]])) / total if total > 0 else 0.0
        return idx[lo:hi]

    def grad_ready(self, i, layer=None):
        """Backward hook: layer i's gradients are final. Starts every bucket whose layers are all done, in
        bucket order (nonblocking collectives must be started in the same order on every rank)."""
        b = self._bucket_of.get(i)
        if b is None or not self.overlap:
            return
        self._pending[b] -= 1
        if self._w is not None:
            self._launch()
            if self._reqs:                         # let MPI make progress on what is in flight
                self.group.testall(self._reqs)

    def _launch(self):
        while self._next < len(self.buckets) and self._pending[self._next] <= 0:
            self._start(self._next)
            self._next += 1

    def _start(self, b):
        grad = self.model.flat.grad
        for o, s in self.buckets[b]:
            v = grad[o:o + s]
            if self._w != 1.0:
                ops.scale(v, self._w)                                 # g_r ← (n_r/N) g_r
            self._reqs.append(self.group.iallreduce_(v))              # Σ_r (n_r/N) g_r, in flight
            self.stats["bytes"] += v.nbytes

    def reduce_gradients(self, model=None, n_local=None, n_global=None):
        """Wait for every bucket: afterwards ``model.flat.grad`` = Σ_r (n_r/N) ∇L_r on every rank.

        ``n_local``/``n_global`` (rows, or sample-weight sums) default to what ``shard`` recorded; a rank with
        n_local = 0 contributes zeros (its gradient buffer is zeroed here if no bucket was started)."""
        if model is not None and model is not self.model:
            raise ValueError("DataParallel.reduce_gradients: got a different model than the one it was built for")
        if n_local is not None and n_global is not None:
            if n_global <= 0:
                raise ValueError(f"DataParallel.reduce_gradients: n_global must be positive, got {n_global}")
            w = n_local / n_global
            if self._w is not None and self._next > 0 and abs(w - self._w) > 1e-9:
                raise ValueError(f"DataParallel.reduce_gradients: n_local/n_global = {n_local}/{n_global}, but "
                                 f"shard() gave this rank a fraction {self._w} of the batch")
            self._w = w
        if self._w is None:
            raise RuntimeError("DataParallel.reduce_gradients: call shard(idx) first, or pass n_local and n_global")
        if self._w == 0.0 and self._next == 0:
            ops.fill(self.model.flat.grad, 0.0)
        t0 = time.perf_counter()
        if self.overlap:
            self._pending = [0] * len(self.buckets)
            self._launch()
            self.group.waitall(self._reqs)
        else:
            grad = self.model.flat.grad
            if self._w != 1.0:
                ops.scale(grad, self._w)
            self.group.allreduce_(grad)
            self.stats["bytes"] += grad.nbytes
        self.stats["wait_s"] += time.perf_counter() - t0
        self.stats["steps"] += 1
        self._w = None
        self._reset()

    def check_replicas(self):
        """Assert the parameters are bitwise identical on every rank."""
        return check_replicas(self.group, self.model.flat.data)

    def finish(self):
        """Replicas checked identical; the allreduce's measurements per step."""
        self.check_replicas()
        st = self.stats
        return {"allreduce_wait_s_per_step": st["wait_s"] / max(1, st["steps"]), "buckets": len(self.buckets),
                "bytes_per_step": st["bytes"] / max(1, st["steps"])}

    def __repr__(self):
        return (f"DataParallel(rank={self.rank}, size={self.size}, buckets={len(self.buckets)}, "
                f"overlap={self.overlap})")


def _merge(ranges):
    """Sorted (offset, size) ranges with touching neighbours merged: one Iallreduce per contiguous run."""
    out: list[tuple[int, int]] = []
    for o, s in sorted(ranges):
        if out and out[-1][0] + out[-1][1] == o:
            out[-1] = (out[-1][0], out[-1][1] + s)
        else:
            out.append((o, s))
    return out
