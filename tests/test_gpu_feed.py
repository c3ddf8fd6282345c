"""The GPU data path (tinynn/_feed.py, kernels/cuda/feed.py): pinned double buffers uploaded on a second stream,
losses kept on the device and read back every ``loss_every`` steps, at most one host synchronisation per step.

On the simulator (``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m gpu``) streams and events are no-ops and every copy
is immediate, so the mechanics are checked three ways:

* a lazy copy stream (``LazyStream``): the feed's uploads are queued and run only when an event recorded after
  them is waited on or synchronised, as a real copy stream may lag; a missing wait leaves the kernels reading a
  stale batch and the trained parameters differ;
* a checker of the schedule (``CheckedFeed``) that follows which steps the host *knows* are complete (through its
  event syncs and loss reads) and fails when a pinned buffer, a device buffer or a staging buffer is written
  while the step or copy that last used it may still run on a real GPU;
* counters of every host synchronisation (event and stream syncs, blocking copies) between steps.

Shapes stay tiny: each simulated step costs about a second.
"""
import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tinynn as tn
from tinynn import kernels
from tinynn.errors import DivergenceError
from tinynn.kernels import config
from tinynn.training import Trainer, build_mlp, make_optimizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
DTYPES = [np.float32] if SIM else [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-10}


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(config, "THREADS_PER_BLOCK", 8)


def _data(n=21, d=6, classes=3, seed=3, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, classes, n)


# --------------------------------------------------------------------------- a lagging copy stream, a checker
class LazyStream:
    """A copy stream whose copies run only when an event recorded after them is waited on or synchronised."""

    def __init__(self):
        self.queue, self.issued, self.done = [], 0, 0

    def run_until(self, mark):
        while self.done < mark:
            self.queue.pop(0)()
            self.done += 1

    def synchronize(self):
        self.run_until(self.issued)


class LazyEvent:
    def __init__(self):
        self.stream, self.mark = None, 0

    def record(self, stream=0):
        self.stream, self.mark = stream, stream.issued

    def wait(self, stream=0):                  # the compute stream waits: the copies before the record run now
        self.stream.run_until(self.mark)

    def synchronize(self):
        self.stream.run_until(self.mark)


def checked_feed():
    """A CudaFeed with a lazy copy stream and a checker of the ordering rules (module docstring)."""
    from tinynn.kernels.cuda.feed import CudaFeed

    class CheckedFeed(CudaFeed):
        def __init__(self):
            super().__init__()
            self.copy_stream = LazyStream()
            self.copied = [LazyEvent() for _ in range(self.SLOTS)]
            self.step = -1                      # the step being queued (begin .. end)
            self.complete = -1                  # the host knows steps <= complete are done
            self.last_step = {}                 # slot -> the last step that read it
            self.ended = {}                     # slot -> the last step whose end() was recorded
            self.uploaded = {}                  # slot -> the batch number its last upload carried
            self.batches = 0
            self.stage_step = {}                # (slot, i) -> the last step that staged into it
            self.trace = []

        def _copy(self, dst, src, stream):
            stream.queue.append(lambda: dst.copy_to_device(src))
            stream.issued += 1

        def _free_now(self, slot, what):
            last = self.last_step.get(slot, -1)
            assert last <= self.complete, f"{what} of slot {slot} while step {last} may still read it"

        def host(self, slot):
            self._free_now(slot, "pinned buffer write")
            return super().host(slot)

        def upload(self, slot, m):
            self._free_now(slot, "device buffer overwrite")
            self.uploaded[slot] = self.batches
            self.batches += 1
            self.trace.append(("upload", slot))
            return super().upload(slot, m)

        def begin(self, slot):
            self.step += 1
            assert self.uploaded.get(slot) == self.step, f"step {self.step} reads slot {slot} without its batch"
            self.last_step[slot] = self.step
            self.trace.append(("begin", slot))
            super().begin(slot)

        def end(self, slot):
            self.ended[slot] = self.step
            super().end(slot)

        def wait_free(self, slot):
            before = self.syncs
            super().wait_free(slot)
            if self.syncs > before:             # an event sync: the step that ended last on this slot is done
                self.complete = max(self.complete, self.ended.get(slot, -1))
                self.trace.append(("sync", slot))

        def stage(self, w_host):
            key = (self._slot, self._staged)
            assert self.stage_step.get(key, -1) <= self.complete, f"staging buffer {key} reused too early"
            self.stage_step[key] = self.step
            return super().stage(w_host)

        def log_read(self, steps):
            out = super().log_read(steps)
            self.complete = self.step           # the compute stream was synchronised
            self.trace.append(("read", steps))
            return out

        def drain(self):
            super().drain()
            self.complete = self.step

    return CheckedFeed()


def _train(device, X, y, epochs=2, dtype=np.float32, lr=0.01, callbacks=(), **kw):
    model = build_mlp([X.shape[1], 5, 3], seed=1, dtype=dtype)
    if device == "cuda":
        model.to("cuda")
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), make_optimizer("adam", model.parameters(), lr),
                      batch_size=8, rng=2, callbacks=callbacks, **kw)
    losses = [trainer.train_epoch(X, y)["train_loss"] for _ in range(epochs)]
    return losses, np.array(kernels.to_host(model.flat.data)), trainer


# --------------------------------------------------------------------------- (a) same training
_REFERENCE_RUNS = {}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss_every", [2, 20])
def test_fed_training_equals_plain_path_and_cpu(small_blocks, dtype, loss_every):
    """Two epochs of 3 steps (8, 8 and a short 5 rows): the fed path (lazy copy stream, checked schedule) gives
    the plain synchronous path's parameters and per-epoch losses, and the CPU's."""
    X, y = _data(dtype=dtype)
    feed = checked_feed()
    fed_losses, fed_params, trainer = _train("cuda", X, y, dtype=dtype, feed=feed, loss_every=loss_every)
    if dtype not in _REFERENCE_RUNS:                 # the same for every loss_every: run once
        _REFERENCE_RUNS[dtype] = (_train("cuda", X, y, dtype=dtype, feed=False)[:2],
                                  _train("cpu", X, y, dtype=dtype)[:2])
    (plain_losses, plain_params), (cpu_losses, cpu_params) = _REFERENCE_RUNS[dtype]
    assert trainer.batch_feed is feed and feed.uploads == 6 and feed.copy_stream.queue == []
    np.testing.assert_allclose(fed_params, plain_params, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(fed_losses, plain_losses, rtol=TOL[dtype])
    np.testing.assert_allclose(fed_params, cpu_params, rtol=1e-4, atol=TOL[dtype])
    np.testing.assert_allclose(fed_losses, cpu_losses, rtol=1e-4)
    syncs = [e for e in feed.trace if e[0] == "sync"]
    if loss_every == 20:                     # no read inside the epoch: the host waited on step k-1 instead
        assert syncs and feed.reads == 2
    else:                                    # a read after step 2 freed both slots: no event sync needed
        assert not syncs and feed.reads == 4


# --------------------------------------------------------------------------- (b, c, d) reads, syncs, buffers
class SyncCounter:
    """Counts every host synchronisation of the CUDA backend: event/stream/device syncs and blocking copies
    (a copy without a stream, or numba.cuda.to_device), and the pinned allocations."""

    def __init__(self, monkeypatch, feed):
        from numba import cuda

        self.count, self.pinned = 0, 0
        device_array = type(cuda.device_array(1))

        def counting(fn, blocking=lambda *a, **k: True):
            def wrapper(*args, **kwargs):
                if blocking(*args, **kwargs):
                    self.count += 1
                return fn(*args, **kwargs)
            return wrapper

        to_host_blocks = lambda self_, ary=None, stream=0: not stream                           # noqa: E731
        from_host_blocks = lambda self_, ary, stream=0: not stream and not kernels.is_device_array(ary)  # noqa: E731
        monkeypatch.setattr(device_array, "copy_to_host", counting(device_array.copy_to_host, to_host_blocks))
        monkeypatch.setattr(device_array, "copy_to_device", counting(device_array.copy_to_device, from_host_blocks))
        monkeypatch.setattr(cuda, "to_device", counting(cuda.to_device))
        monkeypatch.setattr(cuda, "synchronize", counting(cuda.synchronize))
        for cls in {type(feed.copy_stream), type(feed.compute), type(feed.consumed[0])}:
            monkeypatch.setattr(cls, "synchronize", counting(cls.synchronize))

        def pinned(*args, **kwargs):
            self.pinned += 1
            return real_pinned(*args, **kwargs)

        real_pinned = cuda.pinned_array
        monkeypatch.setattr(cuda, "pinned_array", pinned)


class StepSyncs:
    """A callback: the synchronisation count at each step's end."""

    def __init__(self):
        self.counter, self.at = None, []

    def on_step_end(self, trainer):
        self.at.append(self.counter.count)


@pytest.mark.gpu
def test_reads_syncs_and_pinned_buffers(small_blocks, monkeypatch):
    """5 steps per epoch (4 x 8 rows + 4), loss_every=3: the losses are read ceil(5/3) = 2 times an epoch (after
    step 3 and at the epoch's end); between two step ends the host synchronises at most once (after step 2 it
    waits for step 1 to free the slot of batch 3; after step 3 it reads); the pinned buffers are allocated in
    the first epoch only."""
    from tinynn.kernels.cuda.feed import CudaFeed

    X, y = _data(n=36)
    feed = CudaFeed()
    counter = SyncCounter(monkeypatch, feed)
    steps = StepSyncs()
    steps.counter = counter
    model = build_mlp([6, 5, 3], seed=1).to("cuda")
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), make_optimizer("adam", model.parameters(), 0.01),
                      batch_size=8, rng=2, callbacks=[steps], feed=feed, loss_every=3)
    trainer.train_epoch(X, y)
    assert feed.reads == 2 and feed.pinned_allocs == 1 and counter.pinned == 2 * 2 + 1   # X, T per slot; log
    pinned_after_first = counter.pinned
    steps.at.clear()
    before = counter.count
    syncs_before = feed.syncs
    rec = trainer.train_epoch(X, y)
    assert feed.reads == 4 and feed.uploads == 10                                          # (b)
    assert counter.pinned == pinned_after_first and feed.pinned_allocs == 1               # (d)
    per_step = np.diff(steps.at)
    assert list(per_step) == [0, 1, 1, 0], f"host synchronisations between step ends: {per_step}"   # (c)
    assert feed.syncs - syncs_before == 3                   # step 3's wait on step 1, two reads
    # the whole epoch: the snapshot of the parameters, the 2 syncs between step ends, the last read and the
    # finite check of the weights at the end
    assert counter.count - before == 1 + 2 + 1 + 1
    assert math.isfinite(rec["train_loss"])


@pytest.mark.gpu
def test_default_loss_every_reads_once_an_epoch(small_blocks):
    """With the default loss_every (20) a 3-step epoch reads its losses once, at the end, and the host waits
    for step k-1 before refilling its slot (one event sync per step from the third on)."""
    from tinynn import _feed

    X, y = _data()
    losses, _, trainer = _train("cuda", X, y, epochs=1)
    feed = trainer.batch_feed
    assert trainer.loss_every == _feed.DEFAULT_LOSS_EVERY == 20
    assert feed.reads == 1 and feed.uploads == 3 and feed.syncs == 1 + 1       # step 3's wait, the read


# --------------------------------------------------------------------------- (e) divergence
@pytest.mark.gpu
def test_divergence_is_detected_and_rolled_back_with_deferred_reads(small_blocks):
    """A learning rate of 1e6: the guard flags the same step as on the synchronous path, when the losses are
    read (up to loss_every - 1 steps later), and the parameters go back to the epoch's start."""
    X, y = _data(n=40)
    errors, starts = {}, {}
    for name, kw in (("fed", dict(loss_every=4)), ("plain", dict(feed=False))):
        model = build_mlp([6, 5, 3], seed=1).to("cuda")
        start = np.array(kernels.to_host(model.flat.data))
        trainer = Trainer(model, tn.SoftmaxCrossEntropy(), make_optimizer("sgd", model.parameters(), 1e6),
                          batch_size=8, rng=2, **kw)
        with pytest.raises(DivergenceError) as info:
            trainer.train_epoch(X, y)
        np.testing.assert_array_equal(kernels.to_host(model.flat.data), start)
        errors[name], starts[name] = info.value, start
        assert trainer.epoch == 0 and trainer.loss._deferred is None and trainer._log is None
    fed, plain = str(errors["fed"]), str(errors["plain"])
    assert "read back at" in fed and "every 4 steps" in fed
    assert fed.split(" (read back")[0] == plain.split(";")[0]                  # same value, same step
    assert errors["fed"].value == errors["plain"].value or (
        math.isnan(errors["fed"].value) and math.isnan(errors["plain"].value))


# --------------------------------------------------------------------------- weights, penalty, estimators
@pytest.mark.gpu
def test_weighted_penalised_regressor_on_cuda_matches_cpu(small_blocks, monkeypatch):
    """MLPRegressor with sample weights and alpha: the row weights go through the feed's pinned staging on the
    compute stream, the L2 penalty's ‖W‖² stays on the device; loss curve and predictions equal the CPU's."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 4)).astype(np.float32)
    y = X[:, :2] @ np.array([[1.0, 0.5], [-0.3, 2.0]], np.float32)
    sw = rng.uniform(0.1, 2, 16)
    kw = dict(hidden_layer_sizes=(4,), max_iter=2, batch_size=8, random_state=0, learning_rate_init=0.01, alpha=0.01)
    feeds = []

    def checked(device):
        feeds.append(checked_feed())
        return feeds[-1]

    monkeypatch.setattr(kernels, "batch_feed", checked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = tn.MLPRegressor(**kw).fit(X, y, sample_weight=sw)
        gpu = tn.MLPRegressor(device="cuda", **kw).fit(X, y, sample_weight=sw)
    assert len(feeds) == 1 and feeds[0].uploads == 4 and feeds[0].stage_step
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(gpu.predict(X), cpu.predict(X), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- (f) the CPU path
def test_cpu_trainer_makes_no_feed(monkeypatch):
    """On the CPU the Trainer never asks for a feed and ``loss_every`` changes nothing."""
    def refuse(device):
        raise AssertionError("a feed was asked for on the CPU")

    monkeypatch.setattr(kernels, "batch_feed", refuse)
    X, y = _data()
    a, pa, trainer = _train("cpu", X, y, loss_every=3)
    b, pb, _ = _train("cpu", X, y)
    assert trainer.batch_feed is None and a == b
    np.testing.assert_array_equal(pa, pb)


def test_loss_every_is_checked():
    model = build_mlp([3, 2], seed=0)
    for bad in (0, -1, 2.5, True, "20"):
        with pytest.raises(ValueError, match="loss_every"):
            Trainer(model, tn.SoftmaxCrossEntropy(), None, loss_every=bad)


# --------------------------------------------------------------------------- benchmarks/gpu_bench.py
@pytest.mark.gpu
def test_gpu_bench_smoke(small_blocks, tmp_path):
    """The GPU benchmark runs end to end on tiny sizes (timings meaningless on the simulator)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from benchmarks import gpu_bench

    out = tmp_path / "gpu.json"
    assert gpu_bench.main(["--sizes", "12,8,3", "--n", "10", "--batch-size", "10", "--epochs", "1",
                           "--matmul", "16", "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["epoch"]["tinynn"]["median_s"] > 0 and result["matmul"]["tinynn_gflops"] > 0


def test_gpu_bench_without_gpu_exits_cleanly(tmp_path):
    """Without CUDA (and without the simulator) the script says so and exits 0 without a traceback."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, "-m", "benchmarks.gpu_bench", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, env=env, timeout=120)
    from numba import cuda

    if not SIM and cuda.is_available():
        pytest.skip("a GPU is here: the script would measure")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "no CUDA GPU" in r.stdout + r.stderr
    assert json.loads(out.read_text())["skipped"]


# ------------------------------------------------------------------ the feed's own bookkeeping, call by call
@pytest.mark.gpu
def test_staged_weights_keep_their_values_within_a_step_and_grow():
    """Several arrays staged in one step each get their own buffer (none overwrites another), a larger or
    other-dtype array gets a new one, and the next step of the same slot reuses them."""
    from tinynn.kernels.cuda.feed import CudaFeed

    f = CudaFeed()
    f.begin(0)
    arrays = [np.arange(5, dtype=np.float32), np.arange(3, dtype=np.float32) + 10, np.linspace(0, 1, 8)]
    staged = [f.stage(a) for a in arrays]
    for a, d in zip(arrays, staged):
        assert d.dtype == a.dtype and d.shape == a.shape
        np.testing.assert_array_equal(kernels.to_host(d), a)
    f.end(0)
    first = [p[0] for p in f._stage[0]]
    f.begin(0)
    again = [f.stage(a[:2]) for a in arrays]                         # smaller: the same buffers, reused
    assert [p[0] for p in f._stage[0]] == first
    for a, d in zip(arrays, again):
        np.testing.assert_array_equal(kernels.to_host(d), a[:2])
    bigger = f.stage(np.ones(9))                                     # a fourth buffer for a fourth array
    np.testing.assert_array_equal(kernels.to_host(bigger), np.ones(9))
    f.end(0)
    f.begin(0)
    grown = f.stage(np.arange(12, dtype=np.float32))                 # larger than buffer 0: a new one
    np.testing.assert_array_equal(kernels.to_host(grown), np.arange(12))
    recast = f.stage(np.arange(3, dtype=np.float64))                 # buffer 1 was float32: a new one
    assert recast.dtype == np.float64
    np.testing.assert_array_equal(kernels.to_host(recast), np.arange(3))
    f.end(0)
    f.drain()
    assert f._free == [True, True]


@pytest.mark.gpu
@pytest.mark.parametrize("threads", [None, 1])
def test_l2_log_adds_the_penalty_gradient_and_writes_the_squared_norm(threads, monkeypatch):
    """At the default block size and at one thread per block (the sum's single block then has one thread,
    which must be the one that writes)."""
    from tinynn.kernels.cuda.feed import CudaFeed

    if threads:
        monkeypatch.setattr(config, "THREADS_PER_BLOCK", threads)
    f = CudaFeed()
    f.log_reserve(3, 4, np.float32)
    rng = np.random.default_rng(0)
    for size in (10, 700, 10):                                       # the partial-sum buffer follows the size
        W = rng.standard_normal(size).astype(np.float32)
        G = rng.standard_normal(size).astype(np.float32)
        Wd, Gd = kernels.to_device(W, "cuda"), kernels.to_device(G, "cuda")
        f.log_l2(1, Wd, Gd, 0.5)
        np.testing.assert_allclose(kernels.to_host(Gd), G + 0.5 * W, rtol=1e-6)
        ring = kernels.to_host(f._ring)
        assert ring[1, 4] == pytest.approx(float(np.sum(W.astype(np.float64) ** 2)), rel=1e-6)
        assert f._partial.dtype == np.float64


# ------------------------------------------------------------------ the driver calls, against a recording fake
class _FakeDriverModule:
    """numba.cuda.cudadrv.driver as _copy_stream uses it: records cuStreamCreate's flag, the Stream's arguments
    and the finalizer's; ``nv`` chooses the NVIDIA-bindings API (handle returned) or the ctypes one (handle
    written through a pointer)."""

    def __init__(self, nv, fail=False):
        import ctypes
        from types import SimpleNamespace

        self.USE_NV_BINDING, self.calls = nv, []
        fake = self

        def create(*args):
            if fail:
                raise RuntimeError("no driver")
            fake.calls.append(("create",) + args)
            if nv:
                return "HANDLE"
            args[0]._obj.value = 42                   # the ctypes API writes the new handle through byref

        self.driver = SimpleNamespace(cuStreamCreate=create)
        self.drvapi = SimpleNamespace(cu_stream=lambda: ctypes.c_void_p())

        class Stream:
            def __init__(self, ctx, handle, finalizer):
                fake.calls.append(("stream", ctx, handle, finalizer))

        self.Stream = Stream
        self._stream_finalizer = lambda deallocs, handle: ("finalizer", deallocs, handle)


@pytest.mark.gpu
@pytest.mark.parametrize("nv", [True, False])
def test_copy_stream_is_created_non_blocking_with_numbas_finalizer(nv):
    import weakref

    from tinynn.kernels.cuda import feed

    class Context:                                 # weakly referable, as numba's Context is
        deallocations, name = "DEALLOCS", "ctx"

    ctx = Context()
    drv = _FakeDriverModule(nv)
    stream, non_blocking = feed._copy_stream(simulator=False, drv=drv, ctx=ctx)
    assert non_blocking is True and stream is not None
    create, made = drv.calls
    if nv:
        assert create == ("create", feed.CU_STREAM_NON_BLOCKING)
        handle = "HANDLE"
    else:
        ptr, flag = create[1:]
        assert flag == feed.CU_STREAM_NON_BLOCKING
        handle = ptr._obj
        assert handle.value == 42
    assert feed.CU_STREAM_NON_BLOCKING == 1                               # CUDA's cudaStreamNonBlocking
    _, ctx_arg, handle_arg, finalizer = made
    assert type(ctx_arg) is weakref.ProxyType and ctx_arg.name == "ctx"   # a weak proxy: the stream keeps no ctx alive
    assert handle_arg is handle
    assert finalizer == ("finalizer", "DEALLOCS", handle)


@pytest.mark.gpu
def test_copy_stream_falls_back_to_a_blocking_stream_when_the_driver_refuses():
    from types import SimpleNamespace

    from tinynn.kernels.cuda import feed

    stream, non_blocking = feed._copy_stream(simulator=False, drv=_FakeDriverModule(True, fail=True),
                                             ctx=SimpleNamespace(deallocations=None))
    assert non_blocking is False and stream is not None
    assert feed._copy_stream(simulator=True)[1] is False


@pytest.mark.gpu
def test_streams_and_events_on_a_gpu_are_the_default_stream_and_untimed_events(monkeypatch):
    from tinynn.kernels.cuda import feed

    seen = []
    monkeypatch.setattr(feed.cuda, "default_stream", lambda: "DEFAULT")
    monkeypatch.setattr(feed.cuda, "event", lambda **kw: seen.append(kw) or "EVENT")
    assert feed._compute_stream(simulator=False) == "DEFAULT"
    assert feed._compute_stream(simulator=True) != "DEFAULT"
    assert feed._event(simulator=False) == "EVENT" and seen == [dict(timing=False)]
    assert feed._event(simulator=True) == "EVENT" and seen[-1] == {}


@pytest.mark.gpu
def test_a_known_free_slot_is_not_waited_for_again_and_buffers_of_the_same_size_are_kept():
    """wait_free synchronises once per step that used the slot; staging an array of exactly a buffer's size
    and logging the penalty of a parameter of the same size reuse their buffers."""
    from tinynn.kernels.cuda.feed import CudaFeed

    f = CudaFeed()
    f.begin(1)
    first = f.stage(np.arange(4, dtype=np.float32))
    f.end(1)
    f.wait_free(1)
    f.wait_free(1)
    assert f.syncs == 1 and f._free == [True, True]
    f.begin(1)
    again = f.stage(np.arange(4, dtype=np.float32) + 1)               # the same size: the same buffers
    assert again.shape == first.shape and f._stage[1][0][0].shape == (4,)
    pair = f._stage[1][0]
    f.end(1)
    f.wait_free(1)
    assert f.syncs == 2
    f.begin(1)
    f.stage(np.ones(4, dtype=np.float32))
    assert f._stage[1][0] is pair
    f.end(1)
    f.log_reserve(2, 3, np.float32)
    W = kernels.to_device(np.ones(50, np.float32), "cuda")
    G = kernels.to_device(np.zeros(50, np.float32), "cuda")
    f.log_l2(0, W, G, 0.5)
    partial = f._partial
    f.log_l2(1, W, G, 0.5)
    assert f._partial is partial
