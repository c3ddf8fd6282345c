"""The scripts on small subsets: their files, exact resume, the three init regimes, a missing dataset."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinynn as tn
from tinynn import io
from tinynn.training import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import init_depth  # noqa: E402
import train_mnist  # noqa: E402

QUICK = ["--lr", "0.003", "--dropout", "0.1", "--train-size", "1500", "--val-size", "500", "--hidden", "64,32", "--batch-size", "100", "--quiet"]


@pytest.mark.slow
def test_train_mnist_writes_its_files(mnist_path, tmp_path):
    out = tmp_path / "run"
    assert train_mnist.main(["--data-dir", mnist_path, "--epochs", "2", "--out", str(out)] + QUICK) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds", "config"):
        assert key in metrics
    assert len(metrics["train_loss"]) == 2 and metrics["train_loss"][1] < metrics["train_loss"][0]
    assert metrics["test_accuracy"] > 0.75
    assert (out / "curves.png").stat().st_size > 10_000
    with np.load(out / "model.npz", allow_pickle=False) as z:      # plain arrays only
        assert "model/0.weight" in z.files                        # the one state layout (io.pack_state)
    model = load_model(out / "model.npz")
    Xtr, ytr, Xte, yte = tn.data.load_mnist(mnist_path)
    model.eval()
    acc = np.mean(np.argmax(model.forward(Xte), axis=1) == yte)
    assert acc == metrics["test_accuracy"]                         # the saved model is the trained one
    arrays, meta = io.load_npz(out / "checkpoint.npz", kind="checkpoint")
    assert meta["epoch"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("schedule,first", [("none", ["--epochs", "1"]),
                                            ("warmup_cosine", ["--epochs", "2", "--stop-after", "1"])])
def test_resume_is_bitwise_identical(mnist_path, tmp_path, schedule, first):
    """2 epochs straight == 1 epoch + resume to 2, bitwise (dropout masks, shuffling, Adam state, schedule)."""
    common = ["--data-dir", mnist_path, "--schedule", schedule] + QUICK + ["--dropout", "0.3"]
    straight, part = tmp_path / "straight", tmp_path / "part"
    assert train_mnist.main(common + ["--epochs", "2", "--out", str(straight)]) == 0
    assert train_mnist.main(common + first + ["--out", str(part)]) == 0
    assert train_mnist.main(common + ["--epochs", "2", "--out", str(part), "--resume", str(part / "checkpoint.npz")]) == 0
    a, _ = io.load_npz(straight / "model.npz")
    b, _ = io.load_npz(part / "model.npz")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ma = json.loads((straight / "metrics.json").read_text())
    mb = json.loads((part / "metrics.json").read_text())
    assert ma["train_loss"] == mb["train_loss"] and ma["test_accuracy"] == mb["test_accuracy"]


@pytest.mark.slow
def test_init_depth_three_regimes(mnist_path, tmp_path):
    assert init_depth.main(["--data-dir", mnist_path, "--out", str(tmp_path), "--batch", "128",
                            "--train-size", "300", "--epochs", "1"]) == 0
    r = json.loads((tmp_path / "init_depth.json").read_text())
    for key in ("activation_norms", "gradient_norms"):
        assert set(r[key]) == {"1/n", "2/n", "3/n"} and all(len(v) == 50 for v in r[key].values())
    a = r["activation_norms"]
    assert a["1/n"][-1] / a["1/n"][0] < 0.01                        # vanishes
    assert 0.1 < a["2/n"][-1] / a["2/n"][0] < 10                    # holds
    assert a["3/n"][-1] / a["3/n"][0] > 100                         # explodes
    assert len(r["weight_movement"]["relative_change"]) == 50
    assert (tmp_path / "init_depth.png").stat().st_size > 10_000


def test_missing_dataset_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNN_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def no_network(folder, timeout=30):
        raise OSError("download failed: network unreachable")

    monkeypatch.setattr(tn.data, "_download", no_network)
    with pytest.raises(FileNotFoundError) as e:
        tn.data.load_mnist(str(tmp_path / "empty"))
    msg = str(e.value)
    assert str(tmp_path / "empty") in msg and str(tmp_path / "nowhere") in msg and "TINYNN_DATA_DIR" in msg
    assert "--data-dir" in msg and "network unreachable" in msg


def test_missing_dataset_script_exit_code(tmp_path):
    env = dict(os.environ, TINYNN_DATA_DIR=str(tmp_path / "nowhere"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-c", "import sys, tinynn.data as d; d._download = "
                        "lambda f, timeout=30: (_ for _ in ()).throw(OSError('offline')); "
                        "sys.argv = ['x', '--data-dir', sys.argv[1]]; sys.path.insert(0, 'scripts'); "
                        "import train_mnist; sys.exit(train_mnist.main())", str(tmp_path / "empty")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "MNIST not found" in r.stderr and "TINYNN_DATA_DIR" in r.stderr


def test_corrupt_idx_file(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        tn.data.read_idx(bad)


@pytest.mark.slow
def test_train_mnist_parallel_data_equals_one_process(mnist_path, tmp_path):
    """`mpiexec -n 2 python scripts/train_mnist.py --parallel data` writes the same files, holding the same model
    (to float32 rounding) as the single-process run with the same global batch (no dropout)."""
    import shutil
    import subprocess
    import sys

    pytest.importorskip("mpi4py")
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec not found (pip install -e '.[mpi]')")
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "train_mnist.py")
    common = ["--data-dir", mnist_path, "--train-size", "1200", "--val-size", "200", "--hidden", "32",
              "--epochs", "2", "--dropout", "0", "--quiet"]
    r = subprocess.run([mpiexec, "-n", "2", sys.executable, script, "--parallel", "data", *common, "--out",
                        str(tmp_path / "par")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert train_mnist.main([*common, "--out", str(tmp_path / "one")]) == 0
    a = load_model(tmp_path / "par" / "model.npz").state_dict()
    b = load_model(tmp_path / "one" / "model.npz").state_dict()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=2e-4, atol=2e-5)
