"""scripts/batch_scaling.py on a few hundred images, one epoch: the mechanics and the files it writes."""
import json
import math
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import batch_scaling  # noqa: E402


def test_rules():
    assert batch_scaling.RULES["fixed"](0.1, 512, 128) == 0.1
    assert batch_scaling.RULES["linear"](0.1, 512, 128) == pytest.approx(0.4)
    assert batch_scaling.RULES["sqrt"](0.1, 512, 128) == pytest.approx(0.2)


@pytest.mark.slow
def test_sweep_writes_json_and_plot(mnist_path, tmp_path):
    assert batch_scaling.main(["--data-dir", mnist_path, "--out", str(tmp_path), "--batch-sizes", "32,128,256",
                               "--epochs", "1", "--train-size", "512", "--test-size", "300", "--hidden", "32",
                               "--target", "0.3", "--quiet"]) == 0
    r = json.loads((tmp_path / "batch_scaling.json").read_text())
    runs = r["results"]
    assert {(x["rule"], x["batch_size"]) for x in runs} == {(rule, b) for rule in ("fixed", "linear", "sqrt")
                                                             for b in (32, 128, 256)}
    for x in runs:
        assert x["lr"] == pytest.approx(batch_scaling.RULES[x["rule"]](0.05, x["batch_size"], 128))
        assert x["steps_per_epoch"] == math.ceil(512 / x["batch_size"])
        if not x["diverged"]:
            assert len(x["epochs"]) == 1 and 0 <= x["final_test_accuracy"] <= 1
            assert x["train_seconds"] > 0
            if x["time_to_target"] is not None:
                assert x["final_test_accuracy"] >= 0.3 and x["epochs_to_target"] == 1
    assert any(x["time_to_target"] is not None for x in runs)
    assert (tmp_path / "batch_scaling.png").stat().st_size > 10_000


def test_divergence_is_recorded(mnist_path, tmp_path):
    """A rate far too high for the largest batch: the run is kept, marked diverged, and the plot still drawn."""
    assert batch_scaling.main(["--data-dir", mnist_path, "--out", str(tmp_path), "--batch-sizes", "64",
                               "--rules", "linear", "--base-lr", "1e6", "--epochs", "1", "--train-size", "256",
                               "--test-size", "100", "--hidden", "16", "--warmup-epochs", "0", "--quiet"]) == 0
    (x,) = json.loads((tmp_path / "batch_scaling.json").read_text())["results"]
    assert x["diverged"] and x["final_test_accuracy"] is None and x["time_to_target"] is None
    assert (tmp_path / "batch_scaling.png").exists()


def test_unknown_rule(tmp_path, capsys):
    assert batch_scaling.main(["--out", str(tmp_path), "--rules", "cubic"]) == 2
    assert "unknown rule 'cubic'" in capsys.readouterr().err
