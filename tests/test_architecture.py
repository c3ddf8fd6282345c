"""The architecture's promises: fusion as its own node, one training loop, one state format, one name table
per kind, independent random streams, an optimizer that cannot silently train a stale buffer."""
import argparse
import inspect
import os
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynn as tn
from tinynn import io, kernels
from tinynn.layers import LinearActivation
from tinynn.training import Trainer, build_mlp, stream

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F64 = np.float64


def _layers(d, rng):
    return [tn.Linear(d, 6, dtype=F64, rng=rng), tn.ReLU(), tn.Linear(6, 5, dtype=F64, rng=rng), tn.Tanh(),
            tn.Linear(5, 4, bias=False, dtype=F64, rng=rng), tn.Sigmoid(), tn.Linear(4, 3, dtype=F64, rng=rng)]


def test_fusion_is_planned_once_as_nodes():
    model = tn.Sequential(*_layers(4, np.random.default_rng(0)))
    kinds = [type(node).__name__ for _, node in model.plan]
    # a Linear without a bias is not fused; the last Linear has no activation after it
    assert kinds == ["LinearActivation", "LinearActivation", "Linear", "Sigmoid", "Linear"]
    assert [i for i, _ in model.plan] == [1, 3, 4, 5, 6]
    assert model.plan[0][1].linear is model[0] and model.plan[0][1].activation is model[1]


def test_linear_reads_like_the_formula():
    assert list(inspect.signature(tn.Linear.forward).parameters) == ["self", "X"]
    assert list(inspect.signature(tn.Linear.backward).parameters) == ["self", "dY"]


@given(n=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_fused_nodes_equal_the_layers_one_by_one(n, seed):
    """Same outputs and gradients as applying each layer on its own; no layer's attributes are written by
    another (the activations' own state is untouched by the fused nodes)."""
    rng = np.random.default_rng(seed)
    model = tn.Sequential(*_layers(4, rng))
    model.needs_input_grad = True
    X = rng.standard_normal((n, 4))
    dY = rng.standard_normal((n, 3))
    fused_acts = [node.activation for _, node in model.plan if isinstance(node, LinearActivation)]
    before = [dict(vars(l)) for l in fused_acts]
    Y = model.forward(X).copy()
    dX = model.backward(dY).copy()
    grads = [p.grad.copy() for p in model.parameters()]
    after = [dict(vars(l)) for l in fused_acts]
    assert len(fused_acts) == 2 and [sorted(b) for b in before] == [sorted(a) for a in after]
    # one by one, with the same parameters
    H = X
    for layer in model.layers:
        H = layer.forward(H)
    np.testing.assert_allclose(Y, H, rtol=1e-12, atol=1e-14)
    G = dY
    for layer in reversed(model.layers):
        G = layer.backward(G)
    np.testing.assert_allclose(dX, G, rtol=1e-12, atol=1e-14)
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_allclose(g, p.grad, rtol=1e-12, atol=1e-14)


def test_output_of_a_layer():
    model = tn.Sequential(*_layers(4, np.random.default_rng(1)))
    with pytest.raises(ValueError, match="no forward pass"):
        model.output(1)
    X = np.random.default_rng(2).standard_normal((3, 4))
    model.forward(X)
    np.testing.assert_allclose(model.output(1), np.maximum(X @ model[0].weight.data + model[0].bias.data, 0))
    with pytest.raises(ValueError, match="fused with the activation after it.*output\\(1\\)"):
        model.output(0)


def test_optimizer_built_before_the_model_moved_fails_loudly():
    model = build_mlp([4, 3, 2])
    opt = tn.optim.Adam(model.parameters(), lr=0.1)
    model.to("cpu")                                   # re-creates the flat buffers, as .to("cuda") does
    with pytest.raises(RuntimeError, match="after this optimizer was built"):
        opt.step()
    opt = tn.optim.Adam(model.parameters(), lr=0.1)   # built after: trains the model
    before = model.flat.data.copy()
    model.flat.grad[:] = 1.0
    opt.step()
    assert np.all(model.flat.data < before)


def test_every_random_consumer_has_its_own_stream():
    draws = {("shuffle",): stream(0, "shuffle").random(8)}
    for i in range(4):
        draws[("init", i)] = stream(0, "init", i).random(8)
        draws[("dropout", i)] = stream(0, "dropout", i).random(8)
    values = list(draws.values())
    assert all(not np.array_equal(a, b) for i, a in enumerate(values) for b in values[i + 1:])
    # the old bug: the shuffle stream was the one that initialised the second Linear layer
    old_shuffle = np.random.default_rng(np.random.SeedSequence(0).spawn(3)[2]).random(8)
    assert not np.array_equal(stream(0, "shuffle").random(8), old_shuffle)
    np.testing.assert_array_equal(stream(0, "shuffle").random(8), draws[("shuffle",)])   # and reproducible


def _keys_layout(arrays, meta):
    prefixes = {k.split("/")[0] for k in arrays if "/" in k}
    return prefixes, {"rngs"} <= set(meta)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_one_state_format_for_estimator_files_checkpoints_and_models(tmp_path):
    X = np.random.default_rng(0).standard_normal((40, 4))
    y = np.arange(40) % 3
    est = tn.MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0, dropout=0.2).fit(X, y)
    est.save(tmp_path / "est.npz")
    a1, m1 = io.load_npz(tmp_path / "est.npz")
    model = build_mlp([4, 5, 3], dropout=0.2)
    opt = tn.optim.Adam(model.parameters(), lr=0.01)
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=8)
    trainer.train_epoch(X.astype(np.float32), y)
    trainer.save_checkpoint(tmp_path / "ckpt.npz", {})
    a2, m2 = io.load_npz(tmp_path / "ckpt.npz")
    tn.training.save_model(tmp_path / "model.npz", model, {"sizes": [4, 5, 3], "activation": "relu", "dropout": 0.2,
                                                           "batch_norm": False, "dtype": "float32"})
    a3, m3 = io.load_npz(tmp_path / "model.npz")
    assert {k.split("/")[0] for k in a1 if "/" in k} == {"model", "optim"} == {k.split("/")[0] for k in a2}
    assert {k.split("/")[0] for k in a3} == {"model"}
    for meta in (m1, m2, m3):
        assert any(k.startswith("model.dropout.") for k in meta["rngs"])     # dropout generators, one name each
    assert set(m1["optim"]) == set(m2["optim"]) == {"t", "lr"}
    # and it round-trips: a new trainer from the checkpoint continues exactly like the original
    model2 = build_mlp([4, 5, 3], dropout=0.2, seed=99)
    t2 = Trainer(model2, tn.SoftmaxCrossEntropy(), tn.optim.Adam(model2.parameters(), lr=0.01), batch_size=8)
    t2.load_state(a2, m2)
    trainer.train_epoch(X.astype(np.float32), y)
    t2.train_epoch(X.astype(np.float32), y)
    np.testing.assert_array_equal(model.flat.data, model2.flat.data)
    assert t2.epoch == trainer.epoch == 2


def test_one_name_table_per_kind():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import train_mnist

    parser = None
    orig = argparse.ArgumentParser.parse_args

    def grab(self, argv=None, namespace=None):
        nonlocal parser
        parser = self
        return orig(self, [])

    argparse.ArgumentParser.parse_args = grab
    try:
        train_mnist.parse([])
    finally:
        argparse.ArgumentParser.parse_args = orig
    choices = {a.dest: set(a.choices) for a in parser._actions if a.choices}
    assert choices["optimizer"] == set(tn.optim.OPTIMIZERS)
    assert choices["schedule"] == set(tn.schedules.SCHEDULES)
    assert choices["activation"] == set(tn.ACTIVATIONS)
    assert choices["init"] == set(tn.init.INITIALIZERS)
    from tinynn.estimator._params import PARAMETER_CONSTRAINTS as C

    assert C["optimizer"][0].options == set(tn.optim.OPTIMIZERS)
    assert C["activation"][0].options == set(tn.ACTIVATIONS)
    assert C["init"][0].options == {"auto"} | set(tn.init.INITIALIZERS)
    assert C["lr_schedule"][0].options | C["learning_rate"][0].options == set(tn.schedules.SCHEDULES)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_and_script_train_through_the_same_trainer(monkeypatch):
    calls = []
    real = Trainer.train_epoch

    def spy(self, *a, **k):
        calls.append(type(self.loss).__name__)
        return real(self, *a, **k)

    monkeypatch.setattr(Trainer, "train_epoch", spy)
    X = np.random.default_rng(0).standard_normal((30, 3))
    tn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, np.arange(30) % 2)
    tn.MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, X[:, 0])
    assert calls == ["SigmoidCrossEntropy"] * 2 + ["SquaredError"] * 2


def _package_sources():
    for top in ("tinynn", "kernels"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(dirpath, f)


def test_no_package_file_over_400_lines():
    """A reader finds one subject per file: the package (tinynn/ and kernels/, which installs as
    tinynn.kernels) keeps every module under 400 lines."""
    long = {os.path.relpath(p, ROOT): n for p in _package_sources()
            if (n := sum(1 for _ in open(p, encoding="utf-8"))) > 400}
    assert not long, f"modules over 400 lines: {long}"


def test_no_argument_parser_inside_the_package():
    """scripts/ holds the command lines (train_mnist.py the one for training); the library parses no argv."""
    import re

    found = [os.path.relpath(p, ROOT) for p in _package_sources()
             if re.search(r"^\s*(import argparse|from argparse import)", open(p, encoding="utf-8").read(), re.M)]
    assert not found, f"argument parsers inside the package: {found}"
