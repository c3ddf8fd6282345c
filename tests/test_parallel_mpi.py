"""Every strategy of tinynn.parallel in real MPI jobs (``mpiexec -n 2`` and ``-n 3``), compared with the same
training in one process. The jobs run tests/_parallel_worker.py (or the CLI) and write their comparison to a
JSON file; a job that hangs is killed by the timeout and fails the test.

Skipped, with the reason, when mpi4py or mpiexec is missing (pip install -e ".[mpi]").
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "_parallel_worker.py")
TIMEOUT = 120


def _mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else shutil.which("mpiexec")


if importlib.util.find_spec("mpi4py") is None:
    _REASON = "mpi4py not installed (pip install -e '.[mpi]')"
elif _mpiexec() is None:
    _REASON = "mpiexec not found (pip install -e '.[mpi]' installs the mpich wheel)"
else:
    _REASON = None

pytestmark = [pytest.mark.skipif(_REASON is not None, reason=_REASON or ""), pytest.mark.slow]

F32 = 1e-5          # "to float32 rounding": max |a - b| / max |b| per array after training
F64 = 1e-12


def mpirun(n, args, timeout=TIMEOUT, check=True):
    """Run ``mpiexec -n n python args…``; returns the CompletedProcess. A hang fails the test."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [_mpiexec(), "-n", str(n), sys.executable] + list(args)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s (a hang):\n{e.stdout}\n{e.stderr}")
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    return p


def worker(case, n, tmp_path):
    out = tmp_path / f"{case}-{n}.json"
    mpirun(n, [WORKER, case, str(out)])
    result = json.loads(out.read_text())
    assert result["size"] == n
    return result


# ---------------------------------------------------------------------- equal to one process
@pytest.mark.parametrize("n", [2, 3])
def test_data_parallel_equals_one_process(n, tmp_path):
    r = worker("data", n, tmp_path)
    for opt in ("sgd", "adam"):
        for mode in ("overlap", "blocking"):
            assert r[f"float32/{opt}/{mode}"] < F32, (opt, mode, r)
            assert r[f"float64/{opt}/{mode}"] < F64, (opt, mode, r)
    assert r["float32/sgd/overlap/buckets"] == 3                      # one bucket per Linear
    # SyncBatchNorm: global-batch statistics; float32 error is larger (1/σ of small batches amplifies it)
    assert r["syncbn/float64"] < 1e-10 and r["syncbn/float64/running"] < F64
    assert r["syncbn/float32"] < 5 * F32 and r["syncbn/float32/running"] < F32
    assert r["trainer"] < F32 and r["trainer/loss"] < F32            # through tinynn.training.Trainer
    assert r["dropout_streams_distinct"]


@pytest.mark.parametrize("n", [2, 3])
def test_tensor_parallel_equals_one_process(n, tmp_path):
    r = worker("tensor", n, tmp_path)
    assert r["plain/kinds"] == ["ColumnParallelLinear", "ReLU", "RowParallelLinear", "ReLU", "Linear"]
    assert r["plain/sgd"] < F32 and r["plain/adam"] < F32
    assert r["bn/sgd"] < 5 * F32
    assert r["gradcheck"] < 1e-6                                      # float64 central differences, sharded


@pytest.mark.parametrize("n", [2, 3])
def test_pipeline_equals_one_process(n, tmp_path):
    r = worker("pipeline", n, tmp_path)
    for schedule in ("gpipe", "1f1b"):
        for M in (1, 3, 5):
            for dropout in ("0.0", "0.3"):                            # dropout too: masks drawn in row order
                key = f"{schedule}/M{M}/dropout{dropout}"
                assert r[key] < F32, (key, r[key])
                expected = [M] * n if schedule == "gpipe" else [min(M, n - s) for s in range(n)]
                assert r[key + "/peaks"] == expected, key             # 1F1B bounds stored activations
                assert len(r[key + "/bounds"]) == n


def test_async_with_one_worker_is_sgd(tmp_path):
    r = worker("async", 2, tmp_path)
    for bound in ("None", "0"):
        s = r[f"bound{bound}"]
        assert s["count"] == 24 and s["max"] == 0 and s["histogram"] == {"0": 24}
        assert r[f"bound{bound}/vs_single"] < F32
        first, last = r[f"bound{bound}/loss"]
        assert last < 0.8 * first


def test_async_staleness_and_its_bound(tmp_path):
    r = worker("async", 3, tmp_path)
    free, ssp = r["boundNone"], r["bound0"]
    assert free["count"] == ssp["count"] == 24
    assert sum(free["histogram"].values()) == 24 and free["workers"] == 2
    assert ssp["bound"] == 0 and ssp["max"] <= ssp["implied_max"] == 1     # τ ≤ (W-1)(2s+1)
    for key in ("boundNone", "bound0"):
        first, last = r[key + "/loss"]
        assert last < 0.8 * first


# ---------------------------------------------------------------------- failures end the job
@pytest.mark.parametrize("case,text", [
    ("raise", "rank 1 of 2"),
    ("mismatch", "differs across ranks"),
    ("batch_mismatch", "batch size differs across ranks"),
    ("kill", ""),
])
def test_a_failing_rank_ends_the_job(case, text, tmp_path):
    t0 = time.perf_counter()
    p = mpirun(2, [WORKER, case, str(tmp_path / "x.json")], timeout=60, check=False)
    assert p.returncode != 0
    assert time.perf_counter() - t0 < 60
    assert text in p.stderr + p.stdout
    if case == "raise":
        assert "deliberate failure on rank 1" in p.stderr and "MPI_Abort" in p.stderr + p.stdout
    if case == "mismatch":
        assert "rank 1 has" in p.stderr and "(20, 17)" in p.stderr


# ---------------------------------------------------------------------- the command line
# scripts/train_mnist.py is the one command line: every strategy trains through the Trainer's loop
SCRIPT = os.path.join(ROOT, "scripts", "train_mnist.py")
QUICK = ["--train-size", "1200", "--val-size", "300", "--hidden", "48,24", "--batch-size", "100", "--dropout", "0",
         "--schedule", "cosine", "--no-plot", "--quiet"]
STRATEGIES = [("data", []), ("async", []), ("tensor", []),
              ("pipeline", ["--microbatches", "3", "--pipeline-schedule", "1f1b"])]


def _script(data_dir, out, *args):
    return [SCRIPT, "--data-dir", data_dir, "--out", str(out), *args]


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    from tests.conftest import mnist_dir

    d = mnist_dir()
    if d is None:
        if os.environ.get("CI"):
            pytest.fail("CI must find MNIST: set TINYNN_DATA_DIR or keep ../shared/data/mnist beside the checkout")
        pytest.skip("MNIST not found: set TINYNN_DATA_DIR to a folder with the four IDX .gz files")
    out = tmp_path_factory.mktemp("single")
    p = subprocess.run([sys.executable] + _script(d, out, "--epochs", "2", *QUICK), capture_output=True, text=True,
                       timeout=TIMEOUT, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    return d, out


def _model(path):
    from tinynn import io

    arrays, meta = io.load_npz(path, kind="sequential")
    return arrays


# Adam on MNIST for 24 steps: Adam divides each coordinate's step by √v, so for pixels that are rarely on (tiny
# gradients) a rounding difference of the gradient becomes a relative difference of the step; 1e-5 holds in the
# worker tests above, and up to ~2e-5 was seen here.
CLI_TOL = 5e-5


def _same(a_path, b_path, tol=CLI_TOL):
    a, b = _model(a_path), _model(b_path)
    assert a.keys() == b.keys()
    for k in a:
        err = np.max(np.abs(a[k] - b[k])) / max(np.max(np.abs(b[k])), 1e-3)
        assert err < tol, (k, err)


def _identical(a_path, b_path):
    a, b = _model(a_path), _model(b_path)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("strategy,extra", STRATEGIES)
def test_cli_writes_the_whole_model(strategy, extra, single_run, tmp_path):
    data_dir, single = single_run
    out = tmp_path / strategy
    mpirun(2, _script(data_dir, out, "--epochs", "2", "--parallel", strategy, *QUICK, *extra))
    _same(out / "model.npz", single / "model.npz")       # same arrays, same names, same values as one process
    from tinynn.training import load_model

    model = load_model(out / "model.npz")                 # loads and predicts in a plain process
    metrics = json.loads((out / "metrics.json").read_text())
    ref = json.loads((single / "metrics.json").read_text())
    assert abs(metrics["test_accuracy"] - ref["test_accuracy"]) <= 0.002
    assert metrics["parallel"]["parallel"] == strategy and metrics["parallel"]["ranks"] == 2
    if strategy == "async":
        st = metrics["parallel"]["gradient_staleness"]
        assert st["count"] == 24 and st["max"] == 0
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds"):  # one format
        assert len(metrics[key]) == 2 and None not in metrics[key], key
    assert set(metrics) >= set(ref)
    assert (out / "checkpoint.npz").exists()               # every strategy checkpoints
    from tinynn.data import load_mnist

    X, y, Xte, yte = load_mnist(data_dir)
    model.eval()
    assert np.mean(np.argmax(model.forward(Xte), axis=1) == yte) == pytest.approx(metrics["test_accuracy"])


EXACT = [("data", []), ("tensor", []), ("pipeline", ["--microbatches", "3", "--pipeline-schedule", "1f1b"])]


@pytest.mark.parametrize("strategy,extra", EXACT)
def test_stop_and_resume_is_bitwise_identical(strategy, extra, single_run, tmp_path):
    """-n 2: 1 epoch, --stop-after, --resume to 2 == 2 epochs straight, bitwise (model, metrics), with dropout
    (per-rank streams) and augmentation on."""
    data_dir, _ = single_run
    common = ["--parallel", strategy, *QUICK, *extra, "--dropout", "0.2", "--augment", "translate"]
    straight, part = tmp_path / "straight", tmp_path / "part"
    mpirun(2, _script(data_dir, straight, "--epochs", "2", *common))
    mpirun(2, _script(data_dir, part, "--epochs", "2", "--stop-after", "1", *common))
    assert (part / "checkpoint.npz").exists() and not (part / "model.npz").exists()
    mpirun(2, _script(data_dir, part, "--epochs", "2", "--resume", str(part / "checkpoint.npz"), *common))
    _identical(part / "model.npz", straight / "model.npz")
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((part / "metrics.json").read_text())
    assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]
    assert a["test_accuracy"] == b["test_accuracy"]


def test_async_stops_resumes_and_finishes(single_run, tmp_path):
    data_dir, _ = single_run
    out = tmp_path / "async"
    common = ["--parallel", "async", *QUICK]
    mpirun(3, _script(data_dir, out, "--epochs", "2", "--stop-after", "1", *common))
    assert (out / "checkpoint.npz").exists() and not (out / "model.npz").exists()
    mpirun(3, _script(data_dir, out, "--epochs", "2", "--resume", str(out / "checkpoint.npz"), *common))
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["train_loss"]) == 2 and metrics["train_loss"][1] < metrics["train_loss"][0]
    assert metrics["test_accuracy"] > 0.3                                # chance: 0.1
    assert metrics["parallel"]["gradient_staleness"]["count"] == 12      # the second epoch's updates


@pytest.mark.parametrize("strategy,extra", STRATEGIES)
def test_augment_and_averages_under_every_strategy(strategy, extra, single_run, tmp_path):
    """--augment, --swa, --ema (and --snapshots) through each strategy: the averages are whole models, written
    and evaluated on rank 0 like a single process's: to float32 rounding of the parallel arithmetic for tensor,
    pipeline and async with one worker (they augment the same rows with the same stream); data parallel
    augments each rank's rows from its own stream (the augmentation stream jumped r times), so only its
    files and a trained model are checked."""
    data_dir, _ = single_run
    for avg in (["--swa", "--ema", "0.9"], ["--snapshots", "2"]):
        common = ["--epochs", "2", *QUICK, "--augment", "translate", *avg]
        one, par = tmp_path / f"one{len(avg)}", tmp_path / f"{strategy}{len(avg)}"
        p = subprocess.run([sys.executable] + _script(data_dir, one, *common), capture_output=True, text=True,
                           timeout=TIMEOUT, cwd=ROOT)
        assert p.returncode == 0, p.stderr[-3000:]
        mpirun(2, _script(data_dir, par, "--parallel", strategy, *common, *extra))
        ma = json.loads((one / "metrics.json").read_text())
        mb = json.loads((par / "metrics.json").read_text())
        assert mb["augment"] == ma["augment"] and set(mb["averages"]) == set(ma["averages"])
        from tinynn.training import load_model

        for name in ma["averages"]:
            assert mb["averages"][name]["test_accuracy"] > 0.3                   # chance: 0.1
            if name != "snapshots":
                load_model(par / f"model_{name}.npz")                             # a whole model
            if strategy == "data":
                continue
            assert abs(mb["averages"][name]["test_accuracy"] - ma["averages"][name]["test_accuracy"]) <= 0.003
            if name != "snapshots":
                _same(par / f"model_{name}.npz", one / f"model_{name}.npz", tol=1e-4)


def test_checkpoint_resumes_under_another_number_of_ranks(single_run, tmp_path):
    """-n 2 for one epoch, then -n 3 from its checkpoint: the same model as one process for two epochs."""
    data_dir, single = single_run
    out = tmp_path / "resume"
    common = ["--parallel", "data", *QUICK]
    mpirun(2, _script(data_dir, out, "--epochs", "2", "--stop-after", "1", *common))
    assert (out / "checkpoint.npz").exists() and not (out / "model.npz").exists()
    mpirun(3, _script(data_dir, out, "--epochs", "2", "--resume", str(out / "checkpoint.npz"), *common))
    _same(out / "model.npz", single / "model.npz")


def test_sharded_checkpoint_refuses_another_number_of_ranks(single_run, tmp_path):
    data_dir, _ = single_run
    out = tmp_path / "tensor"
    common = ["--parallel", "tensor", *QUICK]
    mpirun(2, _script(data_dir, out, "--epochs", "2", "--stop-after", "1", *common))
    p = mpirun(3, _script(data_dir, out, "--epochs", "2", "--resume", str(out / "checkpoint.npz"), *common),
               check=False)
    assert p.returncode != 0 and "same number of ranks" in p.stderr
