"""Every strategy of tinynn.parallel with the model on CUDA (``mpiexec -n 2 … --device cuda``): MPI moves device
arrays through host buffers (tinynn/parallel/staging.py). Runs on a GPU or on the simulator:
``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m gpu tests/test_parallel_cuda_mpi.py`` (the MPI jobs inherit the
variable). The simulator runs every CUDA thread in Python, so the data set is a tiny MNIST-format one written
here (4×4 images, a few hundred rows) and the model 16-8-10: each job takes seconds, not minutes.

Skipped, with the reason, without CUDA (tests/conftest.py) or without mpi4py/mpiexec.
"""
import gzip
import json
import os

import numpy as np
import pytest

from tests.test_parallel_mpi import _REASON, ROOT, WORKER, _identical, _same, mpirun

pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

SCRIPT = os.path.join(ROOT, "scripts", "train_mnist.py")
# 120 training rows in batches of 60: 2 steps an epoch; no dropout where CUDA is compared with the CPU (their
# mask generators differ); the resume runs add dropout (the device masks follow the checkpointed host streams)
TINY = ["--train-size", "120", "--val-size", "40", "--hidden", "8", "--batch-size", "60", "--dropout", "0",
        "--lr", "0.01", "--no-plot", "--quiet"]
STRATEGIES = [("data", []), ("async", []), ("tensor", []),
              ("pipeline", ["--microbatches", "2", "--pipeline-schedule", "1f1b"])]
TIMEOUT = 240


def _write_idx(path, a):
    a = np.ascontiguousarray(a, np.uint8)
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">i4").tobytes() + a.tobytes())


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    """An MNIST-format folder of 4×4 images (a bright pixel at the label's place over noise): 200 training and
    40 test images."""
    d = tmp_path_factory.mktemp("tiny_mnist")
    rng = np.random.default_rng(0)
    for name, n in (("train", 200), ("t10k", 40)):
        y = rng.integers(0, 10, n)
        X = rng.integers(0, 60, (n, 4, 4))
        X[np.arange(n), y // 4, y % 4] = 255
        _write_idx(d / f"{name}-images-idx3-ubyte.gz", X)
        _write_idx(d / f"{name}-labels-idx1-ubyte.gz", y)
    return str(d)


def _run(data_dir, out, *args, n=2):
    mpirun(n, [SCRIPT, "--data-dir", data_dir, "--out", str(out), *TINY, *args], timeout=TIMEOUT)
    return json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else None


@pytest.mark.parametrize("n", [1, 2])
def test_device_arrays_travel_through_reused_host_buffers(n, tmp_path):
    out = tmp_path / "staging.json"
    mpirun(n, [WORKER, "staging", str(out)], timeout=TIMEOUT)
    r = json.loads(out.read_text())
    for key in ("allreduce", "reused", "staged_requests", "iallreduce", "testall", "bcast", "isend_recv",
                "host_no_buffer"):
        assert r[key] is True, (key, r)
    assert r.get("send_recv", True) is True
    assert r["host_request"] == "Request"                 # a NumPy array goes to MPI as it is


@pytest.mark.parametrize("strategy,extra", STRATEGIES)
def test_cuda_equals_cpu_and_resumes(strategy, extra, tiny_mnist, tmp_path):
    """The same 2-epoch run on the CPU and on CUDA: the same model and losses to float32 rounding. Then CUDA for
    1 epoch (--stop-after) and --resume to 2, with dropout: bitwise the uninterrupted CUDA run (data, pipeline,
    tensor); an async run resumes and finishes."""
    common = ["--epochs", "2", "--parallel", strategy, *extra]
    cpu = _run(tiny_mnist, tmp_path / "cpu", *common)
    cuda = _run(tiny_mnist, tmp_path / "cuda", *common, "--device", "cuda")
    assert cuda["device"] == "cuda" and cuda["parallel"]["parallel"] == strategy
    _same(tmp_path / "cuda" / "model.npz", tmp_path / "cpu" / "model.npz", tol=1e-5)
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose(cuda[key], cpu[key], rtol=1e-5, err_msg=key)
    assert abs(cuda["test_accuracy"] - cpu["test_accuracy"]) <= 1 / 40     # one image at most
    common += ["--device", "cuda", "--dropout", "0.25"]
    whole = _run(tiny_mnist, tmp_path / "whole", *common) if strategy != "async" else None
    part = tmp_path / "part"
    _run(tiny_mnist, part, *common, "--stop-after", "1")
    assert (part / "checkpoint.npz").exists() and not (part / "model.npz").exists()
    resumed = _run(tiny_mnist, part, *common, "--resume", str(part / "checkpoint.npz"))
    assert len(resumed["train_loss"]) == 2 and (part / "model.npz").exists()
    if strategy == "async":
        assert resumed["parallel"]["gradient_staleness"]["count"] == 2          # the second epoch's updates
        return
    _identical(part / "model.npz", tmp_path / "whole" / "model.npz")
    for key in ("train_loss", "val_loss", "test_accuracy"):
        assert resumed[key] == whole[key], key
