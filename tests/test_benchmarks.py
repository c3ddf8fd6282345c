"""benchmarks/: one harness (the race, the machine record, the peers), real programs in fresh processes, and the
scripts and benchmarks on the installed package; the CPU benchmark's quick modes end to end."""
import ast
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)                     # the tests import benchmarks/ as the modules run from the root

from benchmarks import harness  # noqa: E402


def _sources(*folders, ext=".py"):
    for folder in folders:
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for f in sorted(files):
                if f.endswith(ext):
                    yield os.path.join(dirpath, f)


def _trees(*folders):
    for path in _sources(*folders):
        with open(path, encoding="utf-8") as f:
            yield os.path.relpath(path, ROOT), ast.parse(f.read(), path)


# --------------------------------------------------------------------------- the layout, pinned
def test_no_sys_path_edits_and_no_programs_in_strings():
    """scripts/ and benchmarks/ import the installed package (no ``sys.path`` anywhere) and start fresh processes
    on real modules (``python -m benchmarks.fresh ...``), never on a program held in a string (``python -c``)."""
    found = []
    for rel, tree in _trees("scripts", "benchmarks"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "path" and \
                    isinstance(node.value, ast.Name) and node.value.id == "sys":
                found.append(f"{rel}:{node.lineno}: sys.path")
            if isinstance(node, ast.Constant) and node.value == "-c":
                found.append(f"{rel}:{node.lineno}: '-c'")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "PYTHONPATH" in node.value:
                found.append(f"{rel}:{node.lineno}: PYTHONPATH")
    for path in _sources("scripts", "benchmarks", ext=".sh"):
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if re.search(r"(python[\d.]*|\$PY|\$\{PY\})\s+-c\b", line) or "PYTHONPATH" in line:
                    found.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_benchmarks_share_one_harness():
    """Only benchmarks/harness.py defines a race, a machine record or a peer; every benchmark uses its race and
    machine record; the lecture experiments in scripts/ time no races."""
    defined = {}
    for rel, tree in _trees("scripts", "benchmarks"):
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and (
                    node.name in ("race", "machine") or (isinstance(node, ast.ClassDef) and
                                                         node.name.endswith("Peer"))):
                defined.setdefault(node.name, []).append(rel)
    assert defined and all(files == ["benchmarks/harness.py"] for files in defined.values()), defined
    for peer in ("TinynnPeer", "TorchPeer", "NumpyPeer", "EstimatorPeer", "FloorPeer"):
        assert peer in defined
    for name in ("bench", "gpu_bench", "parallel_bench"):
        tree = dict(_trees("benchmarks"))[f"benchmarks/{name}.py"]
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "benchmarks.harness"
                    for a in n.names}
        assert {"race", "machine"} <= imported, (name, imported)
    assert not [p for p in _sources("scripts") if "bench" in os.path.basename(p)]


def test_lecture_experiments_train_through_the_trainer():
    """scripts/ keeps the lecture experiments, each training its network through tinynn's one loop: no script
    steps an optimizer itself, except optimizer_paths.py, whose "training" is an optimizer walking a 2-D
    function (no network, no batches, no loss layer: nothing for the Trainer to loop over)."""
    trained = {"init_depth.py", "l1_sparsity.py", "sharpness.py", "batch_scaling.py", "augment_examples.py",
               "train_mnist.py"}
    seen = set()
    for rel, tree in _trees("scripts"):
        name = os.path.basename(rel)
        steps = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                 and n.func.attr == "step"]
        batches = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "gen_batches"]
        if name != "optimizer_paths.py":
            assert not steps and not batches, f"{rel}: its own loop at lines {steps + batches}"
        if name in trained:
            seen.add(name)
            assert any(isinstance(n, ast.Name) and n.id == "Trainer" for n in ast.walk(tree)), rel
    assert seen == trained


# --------------------------------------------------------------------------- the race
class _Clock:
    """A peer whose epochs take the times given (through a fake clock) and return their round number."""

    def __init__(self, name, seconds, clock):
        self.name, self.seconds, self.clock, self.calls = name, list(seconds), clock, 0

    def epoch(self):
        self.calls += 1
        self.clock[0] += self.seconds[self.calls - 1]
        return self.calls - 1


def test_race_takes_turns_and_gives_medians_and_per_round_ratios(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(harness.time, "perf_counter", lambda: clock[0])
    a = _Clock("a", [1.0, 2.0, 3.0], clock)               # with its own warm-up: every epoch timed
    b = _Clock("b", [9.0, 2.0, 6.0, 3.0], clock)          # the first epoch is the warm-up: not timed
    order = []
    a.warmup = lambda: order.append("warm a")
    synced = []
    laps = harness.race([a, b], 3, sync=lambda: synced.append(1), elapsed=lambda t: 10 * t)
    assert order == ["warm a"] and a.calls == 3 and b.calls == 4      # a's own warm-up; b's warm-up an epoch
    assert len(synced) == 2 + 6                                       # after each warm-up, before each timed epoch
    assert laps["a"]["times"] == [10.0, 20.0, 30.0] and laps["a"]["results"] == [0, 1, 2]
    assert laps["b"]["times"] == [20.0, 60.0, 30.0] and laps["b"]["median_s"] == 30.0 and laps["b"]["min_s"] == 20.0
    assert laps["b"]["ratios"] == [2.0, 3.0, 1.0] and laps["b"]["ratio_median"] == 2.0
    pair = [_Clock("a", [1.0, 1.0], clock), _Clock("b", [1.0, 3.0], clock)]
    assert harness.race(pair, 1, reference="b")["a"]["ratios"] == [1 / 3]
    with pytest.raises(ValueError, match="reference"):
        harness.race([a, b], 1, reference="c")
    with pytest.raises(ValueError, match="differ"):
        harness.race([a, _Clock("a", [1.0], clock)], 1)


def test_machine_record():
    m = harness.machine()
    for key in ("cpu", "cores", "cpu_count", "python", "platform", "numpy", "numba", "torch", "blas"):
        assert key in m
    assert m["cores"] >= 1 and m["numpy"] and m["numba"]
    json.dumps(m)


def test_cpu_peers_learn(rng):
    """Every CPU peer trains the MLP on a separable problem, and the floor peer runs its matmuls."""
    import numpy as np

    X = rng.random((600, 20), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(np.int64)
    names = [n for n in harness.PEERS if n != "pytorch"]
    try:
        import torch  # noqa: F401
        names.append("pytorch")
    except ImportError:
        pass
    for name in names:
        peer = harness.make_peer(name, X, y, 16, sizes=(20, 16, 2))
        for _ in range(20):
            peer.epoch()
        assert peer.accuracy(X, y) > 0.6, name
    floor = harness.FloorPeer(32, sizes=(20, 16, 2), n=600)
    assert floor.steps == 19 and floor.epoch_gflop > 0 and floor.epoch() is None
    with pytest.raises(ValueError, match="unknown peer"):
        harness.make_peer("jax", X, y, 32)


# --------------------------------------------------------------------------- the CPU benchmark, quick
@pytest.mark.slow
def test_bench_reports_floor_and_breakdown(mnist_path, tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--data-dir", mnist_path,
                        "--sizes", "784,16,10", "--batch-sizes", "1024", "--rounds", "1", "--peers", "tinynn,numpy",
                        "--no-jit", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "x floor" in r.stdout and "outside kernels" in r.stdout
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["batch_size"] == 1024 and set(run["peers"]) == {"tinynn", "numpy"}
    floor = run["blas_floor"]
    assert floor["floor_seconds"] > 0 and floor["tinynn_over_floor"] > 0
    parts = run["breakdown"]
    assert "matmul" in parts["ops_s"] and parts["ops_s"]["matmul"] <= parts["epoch_s"]
    assert run["peers"]["tinynn"]["test_accuracy"] > 0.5
    for peer in run["peers"].values():                 # each peak RSS from a fresh benchmarks.fresh process
        assert peer["peak_rss_mib"] > 100               # the 188 MB dataset at least
    assert result["machine"]["cores"] >= 1 and result["machine"]["numpy"]


@pytest.mark.slow
def test_bench_first_fit_measures_both_caches():
    """A new user's first fit, with an empty and a warm Numba cache, in fresh processes. The cache is told
    apart by what Numba did, not by seconds (which a loaded machine blurs): the empty cache's first fit
    compiles kernels, the warm cache's loads every one of them and compiles none."""
    from benchmarks import bench

    out = bench.first_fit(repeats=1)
    assert set(out) == {"float64", "float32"}
    for runs in out.values():
        assert set(runs) == {"empty_cache", "warm_cache"}
        for r in runs.values():
            assert r["tinynn_fit_s"] > 0 and r["sklearn_fit_s"] > 0 and r["import_tinynn_s"] > 0
            assert r["tinynn_n_iter"] == r["tinynn_again_n_iter"]          # the same fit, compiled or cached
            assert r["tinynn_again_compiles"] == 0                         # the second fit reuses the first's
        assert runs["empty_cache"]["tinynn_compiles"] > 0
        assert runs["warm_cache"]["tinynn_compiles"] == 0


@pytest.mark.slow
def test_bench_jit_cost_in_fresh_processes(mnist_path):
    from benchmarks import bench

    out = bench.jit_cost(mnist_path, bs=1024)
    assert set(out) == {"empty_cache", "warm_cache"}
    for r in out.values():
        assert "error" not in r, r
        assert r["import_and_data_s"] > 0 and r["first_step_s"] > 0 and r["steady_epoch_s"] > 0


@pytest.mark.slow
def test_bench_sparse_in_fresh_processes(tmp_path):
    out = tmp_path / "sparse.json"
    r = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--sparse", "300,2000,0.01", "--sparse-epochs", "1",
                        "--sparse-hidden", "8", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    peers = json.loads(out.read_text())["sparse"]["peers"]
    assert set(peers) == {"sklearn float64", "tinynn float64", "tinynn float32"}
    assert peers["sklearn float64"]["loss"] == pytest.approx(peers["tinynn float64"]["loss"], rel=1e-6)
