"""TensorBoard logs (tinynn.tensorboard.TensorBoardCallback, train_mnist.py --tensorboard), read back with
TensorBoard's own event reader: the scalars equal the Trainer's history / metrics.json (to float32, as
TensorBoard stores them), the learning rate the optimizer's, the histograms the weights and gradients."""
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tinynn as tn
from tinynn.tensorboard import TensorBoardCallback
from tinynn.training import Trainer

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CURVES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds")


def read_events(logdir):
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.SCALARS: 0,
                                                                         event_accumulator.HISTOGRAMS: 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def f32(values):
    return [float(np.float32(v)) for v in values]


def small_run(logdir, epochs=3, **kw):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = tn.Sequential(tn.Linear(6, 8, rng=1), tn.ReLU(), tn.Linear(8, 2, rng=2))
    model.layers[2].bias.requires_grad = False                     # frozen: no gradient histogram
    opt = tn.optim.SGD(model.parameters(), lr=0.1)
    sched = tn.schedules.make("cosine", opt, epochs * 4, 4)
    tb = TensorBoardCallback(logdir, **kw)
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), opt, sched, batch_size=50, callbacks=[tb])
    lrs = []
    for _ in range(epochs):
        trainer.train_epoch(X, y, accuracy=True)
        lrs.append(opt.lr)
        val_loss, val_acc = trainer.evaluate(X[:50], y[:50])
        trainer.record(val_loss=val_loss, val_accuracy=val_acc, note=None)
    tb.close()
    return trainer, lrs


def test_callback_scalars_equal_the_history(tmp_path):
    trainer, lrs = small_run(tmp_path / "tb")
    acc = read_events(tmp_path / "tb")
    tags = set(acc.Tags()["scalars"])
    assert tags == {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate"}   # None skipped
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert scalars(acc, key) == list(zip([1, 2, 3], f32(trainer.curve(key)))), key
    assert scalars(acc, "learning_rate") == list(zip([1, 2, 3], f32(lrs)))
    assert lrs[0] > lrs[-1]                                        # the schedule moved it


def test_callback_histograms_are_the_weights_and_gradients(tmp_path):
    trainer, _ = small_run(tmp_path / "tb")
    acc = read_events(tmp_path / "tb")
    hist = set(acc.Tags()["histograms"])
    assert hist == {"weights/0.weight", "weights/0.bias", "weights/2.weight", "weights/2.bias",
                    "gradients/0.weight", "gradients/0.bias", "gradients/2.weight"}      # 2.bias is frozen
    for tag, arr in (("weights/0.weight", trainer.model.layers[0].weight.data),
                     ("gradients/2.weight", trainer.model.layers[2].weight.grad)):
        events = acc.Histograms(tag)
        assert [e.step for e in events] == [1, 2, 3]
        h = events[-1].histogram_value                             # the last epoch: the arrays now
        assert h.num == arr.size
        assert h.min == pytest.approx(float(arr.min())) and h.max == pytest.approx(float(arr.max()))
        assert h.sum == pytest.approx(float(arr.astype(np.float64).sum()), rel=1e-5, abs=1e-6)


def test_histogram_every_and_off(tmp_path):
    small_run(tmp_path / "every2", histogram_every=2)
    assert [e.step for e in read_events(tmp_path / "every2").Histograms("weights/0.weight")] == [2]
    small_run(tmp_path / "off", histograms=False)
    acc = read_events(tmp_path / "off")
    assert acc.Tags()["histograms"] == [] and len(acc.Scalars("train_loss")) == 3
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="histogram_every"):
            TensorBoardCallback(tmp_path / "x", histogram_every=bad)


def test_record_hook_reaches_callbacks():
    seen = []

    class Spy:
        def on_record(self, trainer, values):
            seen.append((trainer.epoch, values))

    model = tn.Sequential(tn.Linear(3, 2, rng=0))
    X, y = np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), tn.optim.SGD(model.parameters(), lr=0.1), batch_size=2,
                      callbacks=[Spy()])
    trainer.train_epoch(X, y)
    trainer.record(val_loss=0.5)
    assert seen == [(1, {"val_loss": 0.5})]


def _check_against_metrics(out, logdir, epochs):
    metrics = json.loads((out / "metrics.json").read_text())
    acc = read_events(logdir)
    steps = list(range(1, epochs + 1))
    for key in CURVES:
        assert len(metrics[key]) == epochs
        assert scalars(acc, key) == list(zip(steps, f32(metrics[key]))), key
    assert [s for s, _ in scalars(acc, "learning_rate")] == steps
    assert [e.step for e in acc.Histograms("gradients/0.weight")] == steps
    return metrics


QUICK = ["--lr", "0.003", "--dropout", "0.1", "--train-size", "1500", "--val-size", "500", "--hidden", "64,32",
         "--batch-size", "100", "--quiet", "--no-plot"]


@pytest.mark.slow
def test_train_mnist_tensorboard_equals_metrics_json(mnist_path, tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import train_mnist

    out, tb = tmp_path / "run", tmp_path / "tb"
    args = ["--data-dir", mnist_path, "--epochs", "3", "--out", str(out), "--tensorboard", str(tb)] + QUICK
    assert train_mnist.main(args + ["--stop-after", "2"]) == 0     # interrupted after epoch 2 ...
    assert train_mnist.main(args + ["--resume", str(out / "checkpoint.npz")]) == 0   # ... and resumed
    metrics = _check_against_metrics(out, tb, 3)                  # each epoch once, the resumed curves
    lr = [v for _, v in scalars(read_events(tb), "learning_rate")]
    assert lr[0] > lr[-1] and lr[-1] == pytest.approx(0.0, abs=1e-6)  # cosine over 3 epochs
    assert metrics["config"]["lr"] == 0.003


@pytest.mark.slow
def test_train_mnist_tensorboard_under_mpiexec_rank0_only(mnist_path, tmp_path):
    pytest.importorskip("mpi4py")
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec not found (pip install -e '.[mpi]')")
    out, tb = tmp_path / "par", tmp_path / "tb"
    r = subprocess.run([mpiexec, "-n", "2", sys.executable, os.path.join(ROOT, "scripts", "train_mnist.py"),
                        "--parallel", "data", "--data-dir", mnist_path, "--epochs", "2", "--out", str(out),
                        "--tensorboard", str(tb), "--train-size", "1200", "--val-size", "200", "--hidden", "32",
                        "--quiet", "--no-plot"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(glob.glob(str(tb / "events.out.tfevents.*"))) == 1  # one writer: rank 0's
    _check_against_metrics(out, tb, 2)
