"""Run under mpiexec by tests/test_parallel*.py: ``mpiexec -n P python tests/_parallel_worker.py CASE OUT.json``.

Each case trains with a tinynn.parallel strategy and, on rank 0, the same training in one process (plain
tinynn, no MPI), and writes the comparison to OUT.json (rank 0). The pytest side asserts on it.
"""
import json
import os
import sys

import numpy as np

import tinynn as tn
from tinynn import parallel
from tinynn.training import build_mlp

G = parallel.world()


def rel(a, b):
    """max |a - b| / max(max |b|, 1e-3): the error relative to the array's scale. The floor matters only for
    arrays of round-off noise, such as the bias of a Linear followed by batch norm (its gradient is 0 in exact
    arithmetic, ~1e-9 in float32, and the normalisation removes it)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-3)) if b.size else 0.0


def compare(sd, ref):
    assert sd.keys() == ref.keys(), (sorted(sd), sorted(ref))
    return {k: rel(sd[k], ref[k]) for k in ref}


def data(n=300, d=20, classes=5, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.integers(0, classes, n)
    return X, y


def fixed_batches(n, sizes, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.choice(n, size=s, replace=False) for s in sizes]


def reference(build, opt_fn, X, y, batches):
    """One process, whole batches."""
    model = build()
    opt = opt_fn(model.parameters())
    loss = tn.SoftmaxCrossEntropy()
    for idx in batches:
        loss(model.forward(X[idx]), y[idx])
        model.backward(loss.backward())
        opt.step()
    return model.state_dict()


OPTS = {
    "sgd": lambda ps: tn.optim.SGD(ps, lr=0.05, momentum=0.9),
    "adam": lambda ps: tn.optim.Adam(ps, lr=1e-3),
}


# ---------------------------------------------------------------------- data parallel
def dp_loop(model, dp, opt, X, y, batches):
    """The Trainer's step, written out (shard, forward, backward with the hook, reduce, step); a rank with no
    rows contributes zeros."""
    loss = tn.SoftmaxCrossEntropy()
    values = []
    for idx in batches:
        local = dp.shard(idx)
        value = 0.0
        if len(local):
            value = loss(model.forward(X[local]), y[local])
            model.backward(loss.backward(), hook=dp.grad_ready)
        dp.reduce_gradients(model, len(local), len(idx))
        values.append(dp.allsum(value * len(local)) / len(idx))
        opt.step()
    return values


def case_data(out):
    res = {}
    X, y = data()
    sizes = [64, 50, 37, 2, 1, 64]                       # uneven splits, and ranks with no rows (2 and 1 rows)
    batches = fixed_batches(len(X), sizes)
    for dtype in (np.float32, np.float64):
        for opt_name in ("sgd", "adam"):
            for overlap in (True, False):
                def build():
                    return build_mlp([20, 16, 12, 5], seed=3, dtype=dtype)
                model = build()
                dp = parallel.DataParallel(model, batch_size=64, overlap=overlap)
                dp_loop(model, dp, OPTS[opt_name](model.parameters()), X.astype(dtype), y, batches)
                dp.check_replicas()
                if G.is_root:
                    ref = reference(build, OPTS[opt_name], X.astype(dtype), y, batches)
                    key = f"{np.dtype(dtype).name}/{opt_name}/{'overlap' if overlap else 'blocking'}"
                    res[key] = max(compare(model.state_dict(), ref).values())
                    if overlap:
                        res[key + "/buckets"] = len(dp.buckets)
    # SyncBatchNorm: statistics of the global batch (no batch of fewer rows than ranks)
    bn_batches = fixed_batches(len(X), [64, 50, 37, 64, 9])
    for dtype in (np.float32, np.float64):
        def build_bn():
            return build_mlp([20, 16, 12, 5], seed=4, dtype=dtype, batch_norm=True)
        model = build_bn()
        dp = parallel.DataParallel(model, batch_size=64)
        assert any(isinstance(l, parallel.SyncBatchNorm) for l in model.layers)
        dp_loop(model, dp, OPTS["sgd"](model.parameters()), X.astype(dtype), y, bn_batches)
        dp.check_replicas()
        if G.is_root:
            ref = reference(build_bn, OPTS["sgd"], X.astype(dtype), y, bn_batches)
            errs = compare(model.state_dict(), ref)
            res[f"syncbn/{np.dtype(dtype).name}"] = max(errs.values())
            res[f"syncbn/{np.dtype(dtype).name}/running"] = max(v for k, v in errs.items() if "running" in k)
    # the lead's Trainer with strategy=DataParallel against the Trainer alone
    from tinynn.training import Trainer

    def trainer_run(strategy_on):
        model = build_mlp([20, 16, 12, 5], seed=5)
        strategy = parallel.DataParallel(model, batch_size=40) if strategy_on else None
        opt = tn.optim.Adam(model.parameters(), lr=1e-3)
        tr = Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=40, rng=7, strategy=strategy)
        for _ in range(2):
            rec = tr.train_epoch(X, y, accuracy=True)
        return model.state_dict(), rec

    sd, rec = trainer_run(True)
    if G.is_root:
        ref, ref_rec = trainer_run(False)
        res["trainer"] = max(compare(sd, ref).values())
        res["trainer/loss"] = abs(rec["train_loss"] - ref_rec["train_loss"]) / ref_rec["train_loss"]
    # dropout: per-rank streams differ from rank 0's
    m = build_mlp([20, 16, 5], seed=0, dropout=0.5)
    parallel.DataParallel(m)
    states = G.allgather_object(m.layers[2].rng.bit_generator.state["state"]["state"])
    res["dropout_streams_distinct"] = len(set(states)) == G.size
    return res


# ---------------------------------------------------------------------- tensor parallel
def case_tensor(out):
    res = {}
    X, y = data(n=200, d=20)
    batches = fixed_batches(len(X), [50, 33, 50, 7])
    # Adam is left out with batch norm: the bias of a Linear followed by batch norm has a zero gradient in exact
    # arithmetic, so Adam's g/√v turns its float32 round-off into steps of ±lr in either run
    for bn, opt_name in ((False, "sgd"), (False, "adam"), (True, "sgd")):
        if True:
            def build():
                return build_mlp([20, 13, 7, 5], seed=6, batch_norm=bn)
            full = build()
            tp = parallel.tensor_parallel(full, G)
            kinds = [type(l).__name__ for l in tp.layers]
            opt = OPTS[opt_name](tp.parameters())
            loss = tn.SoftmaxCrossEntropy()
            for idx in batches:
                loss(tp.forward(X[idx]), y[idx])
                tp.backward(loss.backward())
                opt.step()
            parallel.gather_model(tp, full, G)
            if G.is_root:
                ref = reference(build, OPTS[opt_name], X, y, batches)
                res[f"{'bn' if bn else 'plain'}/{opt_name}"] = max(compare(full.state_dict(), ref).values())
                res[f"{'bn' if bn else 'plain'}/kinds"] = kinds
    # the replicated last layer stays identical on every rank
    parallel.check_replicas(G, tp.layers[-1].weight.data, "replicated Linear")
    res["gradcheck"] = tensor_gradcheck()
    return res


def tensor_gradcheck():
    """Central differences in float64 through the sharded block, every parameter entry of the whole model
    (perturbed on the rank that owns it, or on every rank when replicated) and the input."""
    rng = np.random.default_rng(0)
    full = build_mlp([6, 5, 4, 3], activation="tanh", seed=2, dtype=np.float64)
    tp = parallel.tensor_parallel(full, G)
    tp.needs_input_grad = True
    X = rng.standard_normal((4, 6))
    R = rng.standard_normal((4, 3))                     # random upstream gradient: catches transposes
    h = 1e-6

    def L():
        return float(np.sum(tp.forward(X) * R))

    L()
    dX = np.array(tp.backward(R.copy()))
    worst = 0.0
    for i, layer in enumerate(tp.layers):
        split = getattr(layer, "tp_split", None)
        for name, p in layer.named_parameters():
            analytic = np.array(p.grad)
            full_p = dict(full.layers[i].named_parameters())[name].data
            for idx in np.ndindex(full_p.shape):
                local = idx
                if split is not None and not (split[0] == "rows" and name == "bias"):
                    kind, lo, hi = split
                    ax = 1 if (kind == "cols" and len(idx) == 2) else 0
                    if not lo <= idx[ax] < hi:
                        local = None
                    else:
                        local = tuple(v - lo if a == ax else v for a, v in enumerate(idx))
                old = p.data[local] if local is not None else None
                if local is not None:
                    p.data[local] = old + h
                fp = L()
                if local is not None:
                    p.data[local] = old - h
                fm = L()
                if local is not None:
                    p.data[local] = old
                    num = (fp - fm) / (2 * h)
                    a = analytic[local]
                    worst = max(worst, abs(a - num) / max(1.0, abs(a), abs(num)))
    for idx in np.ndindex(X.shape):
        old = X[idx]
        X[idx] = old + h
        fp = L()
        X[idx] = old - h
        fm = L()
        X[idx] = old
        num = (fp - fm) / (2 * h)
        worst = max(worst, abs(dX[idx] - num) / max(1.0, abs(dX[idx]), abs(num)))
    return max(G.allgather_object(worst))


# ---------------------------------------------------------------------- pipeline
def case_pipeline(out):
    res = {}
    X, y = data(n=200, d=20)
    batches = fixed_batches(len(X), [40, 23, 40, 2])
    for schedule in ("gpipe", "1f1b"):
        for M in (1, 3, 5):
            for dropout in (0.0, 0.3):
                def build():
                    return build_mlp([20, 16, 12, 8, 5], seed=8, dropout=dropout)
                full = build()
                pipe = parallel.Pipeline(full, G, microbatches=M, schedule=schedule)
                opt = OPTS["adam"](pipe.parameters())
                losses = []
                for idx in batches:
                    losses.append(pipe.step(X[idx], y[idx]))
                    opt.step()
                pipe.gather()
                peaks = G.allgather_object(pipe.stats["peak_in_flight"])
                key = f"{schedule}/M{M}/dropout{dropout}"
                if G.is_root:
                    ref = reference(build, OPTS["adam"], X, y, batches)
                    res[key] = max(compare(full.state_dict(), ref).values())
                    res[key + "/peaks"] = peaks
                    res[key + "/bounds"] = pipe.layer_bounds
    return res


# ---------------------------------------------------------------------- asynchronous SGD
def case_async(out):
    from tinynn.training import stream

    res = {}
    X, y = data(n=240, d=20)
    bs, epochs = 30, 3
    steps = epochs * (-(-len(X) // bs))
    for bound in (None, 0):
        model = build_mlp([20, 16, 5], seed=9)
        parallel.async_sgd.check_start(G, model, bs)
        if G.is_root:
            opt = tn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            log = parallel.ParameterServer(model, opt, G, steps, staleness_bound=bound).run()
            res[f"bound{bound}"] = log.summary()
        else:
            loss = tn.SoftmaxCrossEntropy()
            batches = parallel.async_sgd.worker_batches(len(X), bs, G, parallel.async_sgd.worker_stream(
                stream(0, "shuffle"), G))

            def compute():
                idx = next(batches)
                v = loss(model.forward(X[idx]), y[idx])
                model.backward(loss.backward())
                return v, len(idx), 0
            parallel.Worker(model, G).run(compute)
        G.barrier()
        if G.is_root and G.size == 2:                    # one worker: plain SGD, the single-process run
            ref = build_mlp([20, 16, 5], seed=9)
            opt = tn.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
            loss = tn.SoftmaxCrossEntropy()
            rng = stream(0, "shuffle")
            t = 0
            while t < steps:
                order = rng.permutation(len(X))
                for s in range(0, len(X), bs):
                    if t == steps:
                        break
                    idx = order[s:s + bs]
                    loss(ref.forward(X[idx]), y[idx])
                    ref.backward(loss.backward())
                    opt.step()
                    t += 1
            res[f"bound{bound}/vs_single"] = max(compare(model.state_dict(), ref.state_dict()).values())
        if G.is_root:
            final = tn.SoftmaxCrossEntropy()(model.forward(X), y)
            init = tn.SoftmaxCrossEntropy()(build_mlp([20, 16, 5], seed=9).forward(X), y)
            res[f"bound{bound}/loss"] = [init, final]
    return res


# ---------------------------------------------------------------------- failures
def case_staging(out):
    """Group's transfers of device arrays (through reused host buffers) under the CUDA simulator or a GPU, on 1 or
    2 ranks: the values every rank ends with, the kinds of request returned, and how many host buffers were made."""
    from tinynn import kernels
    from tinynn.parallel.staging import StagedRequest

    def dev(a):
        return kernels.to_device(np.ascontiguousarray(a), "cuda")

    r, P, res = G.rank, G.size, {}
    total = sum(np.arange(6, dtype=np.float32) + k for k in range(P))
    a = dev(np.arange(6, dtype=np.float32) + r)
    G.allreduce_(a)
    res["allreduce"] = bool(np.array_equal(kernels.to_host(a), total))
    before = G.staging.allocated
    for _ in range(3):                                   # same shape again: the one buffer is reused
        b = dev(np.arange(6, dtype=np.float32) + r)
        G.allreduce_(b)
    res["reused"] = G.staging.allocated == before
    c, d = dev(np.full(4, r + 1.0)), dev(np.full((2, 3), 2.0 * r))
    reqs = [G.iallreduce_(c), G.iallreduce_(d)]           # two in flight: two buffers
    res["staged_requests"] = all(type(q) is StagedRequest for q in reqs)
    G.waitall(reqs)
    res["iallreduce"] = bool(np.all(kernels.to_host(c) == sum(k + 1.0 for k in range(P)))
                             and np.all(kernels.to_host(d) == sum(2.0 * k for k in range(P))))
    e = dev(np.full(3, 1.0))
    q = G.iallreduce_(e)
    while not G.testall([q]):
        pass
    res["testall"] = bool(np.all(kernels.to_host(e) == P))
    f = dev(np.arange(5.0) * (r + 1) if r == 0 else np.zeros(5))
    G.bcast_(f, root=0)
    res["bcast"] = bool(np.array_equal(kernels.to_host(f), np.arange(5.0)))
    src, dst = dev(np.arange(7, dtype=np.float32) + 10 * r), dev(np.zeros(7, np.float32))
    nxt, prv = (r + 1) % P, (r - 1) % P                   # a ring (to itself on one rank)
    q = G.isend(src, dest=nxt, tag=5)
    G.recv(dst, source=prv, tag=5)
    G.waitall([q])
    res["isend_recv"] = bool(np.array_equal(kernels.to_host(dst), np.arange(7, dtype=np.float32) + 10 * prv))
    if P == 2:                                            # blocking: rank 0 to rank 1
        g = dev(np.arange(4.0) + 100 if r == 0 else np.zeros(4))
        G.send(g, dest=1, tag=6) if r == 0 else G.recv(g, source=0, tag=6)
        res["send_recv"] = all(G.allgather_object(bool(np.array_equal(kernels.to_host(g), np.arange(4.0) + 100))))
    h = np.zeros(3)                                       # host arrays: MPI's own request, no buffer made
    n = G.staging.allocated
    q = G.iallreduce_(h)
    res["host_request"] = type(q).__name__
    G.waitall([q])
    res["host_no_buffer"] = G.staging.allocated == n
    res["allocated"] = G.staging.allocated
    return res


def case_raise(out):
    """Rank 1 raises while rank 0 waits in an allreduce: the job must end, naming rank 1."""
    a = np.ones(10)
    if G.rank == 1:
        raise RuntimeError("deliberate failure on rank 1")
    G.allreduce_(a)
    return {}


def case_kill(out):
    import signal

    if G.rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    G.allreduce_(np.ones(10))
    return {}


def case_mismatch(out):
    """Rank 1 builds a wider model: DataParallel refuses at start on every rank."""
    model = build_mlp([20, 16 + (G.rank == 1), 5], seed=0)
    parallel.DataParallel(model, batch_size=32)
    return {}


def case_batch_mismatch(out):
    model = build_mlp([20, 16, 5], seed=0)
    parallel.DataParallel(model, batch_size=32 + G.rank)
    return {}


if __name__ == "__main__":
    name, out = sys.argv[1], sys.argv[2]
    result = globals()[f"case_{name}"](out)
    if G.is_root:
        result["size"] = G.size
        with open(out, "w") as f:
            json.dump(result, f, indent=1, default=float)
