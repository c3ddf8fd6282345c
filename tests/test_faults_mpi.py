"""Faults under mpiexec: a signal to the job ends every rank within seconds, rank 0 says which checkpoint is on
disk and how to continue, and the checkpoint is one consistent set (sharded strategies: every rank's part of the
epoch the whole file holds), which resumes to the uninterrupted result; a rank killed mid-epoch ends the job
within 30 s, never a hang, with the rank named (tinynn's rank-pid line beside mpiexec's pid), and the last
checkpoint resumes under the same or (data parallel) another number of ranks."""
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.test_parallel_mpi import ROOT, _REASON, _mpiexec
from tinynn import io

pytestmark = [pytest.mark.skipif(_REASON is not None, reason=_REASON or ""), pytest.mark.slow]

SCRIPT = os.path.join("scripts", "train_mnist.py")
QUICK = ["--train-size", "6000", "--val-size", "300", "--hidden", "48,24", "--batch-size", "100", "--dropout", "0",
         "--no-plot", "--quiet"]


def _mnist():
    from tests.conftest import mnist_dir

    d = mnist_dir()
    if d is None:
        pytest.skip("MNIST not found")
    return d


EPOCHS = 25          # long enough that a signal sent after the first checkpoint lands in the middle of the run


def _start(n, out, parallel, epochs=EPOCHS):
    cmd = [_mpiexec(), "-n", str(n), sys.executable, SCRIPT, "--data-dir", _mnist(), "--out", str(out),
           "--parallel", parallel, "--epochs", str(epochs), *QUICK]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_for(path, p, seconds=600):
    t_end = time.monotonic() + seconds
    while not os.path.exists(path) and p.poll() is None and time.monotonic() < t_end:
        time.sleep(0.02)
    assert os.path.exists(path) and p.poll() is None, "the job wrote no checkpoint, or ended, before the signal"


def _same(a, b):
    A, _ = io.load_npz(a)
    B, _ = io.load_npz(b)
    assert A.keys() == B.keys()
    for k in A:
        np.testing.assert_array_equal(A[k], B[k], err_msg=k)


@pytest.mark.parametrize("parallel,sig", [("data", signal.SIGINT), ("tensor", signal.SIGTERM)],
                         ids=["data-SIGINT", "tensor-SIGTERM"])
def test_a_signal_to_the_job_ends_every_rank_with_one_consistent_checkpoint(parallel, sig, tmp_path):
    full = tmp_path / "full"
    r = subprocess.run([_mpiexec(), "-n", "2", sys.executable, SCRIPT, "--data-dir", _mnist(), "--out", str(full),
                        "--parallel", parallel, "--epochs", str(EPOCHS), *QUICK], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "cut"
    p = _start(2, out, parallel)
    ckpt = out / "checkpoint.npz"
    _wait_for(ckpt, p)
    time.sleep(0.1)
    t0 = time.monotonic()
    p.send_signal(sig)                                           # to mpiexec, which forwards it to every rank
    try:
        _, stderr = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        pytest.fail(f"the job did not end within 30 s of {signal.Signals(sig).name} (a hang)")
    assert time.monotonic() - t0 < 15
    assert p.returncode != 0
    assert "Traceback" not in stderr, stderr[-3000:]
    epoch = io.checkpoint_epoch(ckpt)
    assert f"the checkpoint of epoch {epoch} is {ckpt}" in stderr, stderr[-3000:]
    parts = sorted(f for f in os.listdir(out) if ".rank" in f)
    if parallel == "tensor":                     # every rank's part of that epoch; others only of the epoch before
        for r in range(2):                       # (a signal after the commit, before they were removed) or after
            assert f"checkpoint.rank{r}of2.epoch{epoch}.npz" in parts, parts      # (before the commit)
        other = [int(re.search(r"epoch(\d+)", f).group(1)) for f in parts]
        assert all(e in (epoch - 1, epoch, epoch + 1) for e in other), parts
    lines = stderr.strip().splitlines()
    cmd = shlex.split(lines[next(i for i, x in enumerate(lines) if x.endswith("continue with:")) + 1])
    assert cmd[:3] == ["mpiexec", "-n", "2"] and cmd[cmd.index("--parallel") + 1] == parallel
    cmd[0] = _mpiexec()
    r = subprocess.run(cmd + ["--quiet", "--no-plot"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    _same(out / "model.npz", full / "model.npz")


def test_a_killed_rank_ends_the_job_naming_it_and_the_run_resumes_on_other_ranks(tmp_path):
    out = tmp_path / "run"
    p = _start(2, out, "data")
    ckpt = out / "checkpoint.npz"
    _wait_for(ckpt, p)
    time.sleep(0.3)
    import psutil

    children = psutil.Process(p.pid).children(recursive=True)
    pythons = [c for c in children if "train_mnist.py" in " ".join(c.cmdline())]
    assert len(pythons) == 2, pythons
    victim = pythons[-1].pid
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    try:
        _, stderr = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        pytest.fail("the job did not end within 30 s of a rank's death (a hang)")
    assert time.monotonic() - t0 < 30 and p.returncode != 0
    m = re.search(r"tinynn ranks: (.*)", stderr)
    assert m, stderr[-2000:]
    ranks = {int(pid): int(r) for r, pid in re.findall(r"(\d+)=pid (\d+)@", m.group(1))}
    assert victim in ranks and f"PID {victim}" in stderr + _, stderr[-2000:]   # mpiexec's pid -> tinynn's rank
    epoch = io.checkpoint_epoch(ckpt)
    assert epoch is not None and epoch >= 1
    for n in (2, 3):                                              # the last checkpoint resumes on 2 or 3 ranks
        again = tmp_path / f"resumed{n}"
        r = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, SCRIPT, "--data-dir", _mnist(), "--out",
                            str(again), "--parallel", "data", "--epochs", str(epoch + 1), "--resume", str(ckpt),
                            *QUICK], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert io.checkpoint_epoch(again / "checkpoint.npz") == epoch + 1


# ---------------------------------------------------------------------- a lost Dask worker
def test_a_dask_worker_killed_during_a_search_loses_nothing():
    """A worker process killed (SIGKILL) in the middle of dask-ml's GridSearchCV on a LocalCluster: its nanny
    starts a new one, the scheduler computes the lost fits again from the task graph, and the search ends with the
    results of the same search run serially (scheduler="sync"). (joblib's Dask backend, under scikit-learn's
    GridSearchCV, can instead cancel the whole search when a worker dies: "cancelled for reason: already
    forgotten", a race in joblib's backend; docs/reliability.md.)"""
    distributed = pytest.importorskip("dask.distributed")
    dask_ml_search = pytest.importorskip("dask_ml.model_selection")
    import threading
    import warnings

    from sklearn.datasets import load_digits

    import tinynn as tn

    X, y = load_digits(return_X_y=True)
    X, y = X[:500] / 16.0, y[:500]
    grid = {"alpha": [1e-4, 1e-3, 1e-2, 1e-1], "hidden_layer_sizes": [(8,), (16,), (24,)]}

    def search(scheduler):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dask_ml_search.GridSearchCV(tn.MLPClassifier(max_iter=15, random_state=0), grid, cv=3,
                                               scheduler=scheduler).fit(X, y)

    serial = search("sync")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as client:
        before = client.run(os.getpid)
        result = {}

        def run():
            try:
                result["search"] = search(client)
            except BaseException as e:                        # reported below
                result["error"] = e

        t = threading.Thread(target=run)
        t.start()
        t_end = time.monotonic() + 60
        while not any(client.processing().values()) and time.monotonic() < t_end:
            time.sleep(0.05)
        time.sleep(0.5)
        victim = before[sorted(before)[0]]
        os.kill(victim, signal.SIGKILL)                          # mid-search, with fits on it
        t.join(timeout=240)
        assert not t.is_alive(), "the search did not finish after a worker was killed"
        after = client.run(os.getpid)
        assert victim not in after.values()                       # the worker really died and was replaced
    assert "error" not in result, repr(result.get("error"))
    on_dask = result["search"]
    np.testing.assert_array_equal(serial.cv_results_["mean_test_score"], on_dask.cv_results_["mean_test_score"])
    assert serial.best_params_ == on_dask.best_params_
