"""Mutated model files: every outcome is a refusal naming the file, or a model that predicts sanely.

Hypothesis takes files written by tinynn (estimators of every kind, a Sequential model file, a training
checkpoint) and damages them the ways a hand edit, a bad copy or another program would: metadata entries
dropped, retyped or replaced (at any depth), the metadata replaced by non-objects or broken JSON, arrays dropped,
renamed, retyped, reshaped, filled with NaN/inf or added, bytes truncated or flipped. Loading must then either
raise ``tinynn.errors.FileFormatError`` (a ValueError) whose message names the file, or give a model whose
predictions are finite and of the right shape, and which continues training, saves and loads again; anything
else (KeyError, AttributeError, IndexError, ZeroDivisionError, a kernel's NotImplementedError, ...) fails.
"""
import copy
import json
import os
import tempfile
import warnings
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import tinynn as tn
from tinynn import io
from tinynn.errors import FileFormatError, documented

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------------------------- the files
_DIR = tempfile.mkdtemp(prefix="tinynn-mutation-")


def _data(kind, n=40, d=4):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    if kind == "binary":
        return X, (X[:, 0] > 0).astype(int)
    if kind == "multiclass":
        return X, np.arange(n) % 3
    if kind == "strings":
        return X, np.array(["cat", "dog", "emu"])[np.arange(n) % 3]
    if kind == "multilabel":
        return X, np.c_[X[:, 0] > 0, X[:, 1] > 0, X[:, 2] > 0].astype(int)
    if kind == "regression":
        return X, X[:, 0] - X[:, 1]
    return X, np.c_[X[:, 0], X[:, 1] * 2]                              # two outputs


ESTIMATORS = {   # name -> (class, data kind, constructor arguments)
    "clf_binary_adam": ("MLPClassifier", "binary", dict(hidden_layer_sizes=(5,), max_iter=3)),
    "clf_multiclass_sgd_bn_dropout": ("MLPClassifier", "multiclass",
                                      dict(hidden_layer_sizes=(6, 4), solver="sgd", batch_norm=True, dropout=0.2,
                                           learning_rate="invscaling", max_iter=3)),
    "clf_strings_es": ("MLPClassifier", "strings", dict(hidden_layer_sizes=(5,), early_stopping=True, max_iter=3,
                                                        validation_fraction=0.25)),
    "clf_multilabel_lbfgs": ("MLPClassifier", "multilabel", dict(hidden_layer_sizes=(5,), solver="lbfgs",
                                                                 max_iter=5)),
    "reg_adam_f32": ("MLPRegressor", "regression", dict(hidden_layer_sizes=(5,), max_iter=3, dtype=np.float32,
                                                        optimizer="rmsprop")),
    "reg_multi_lbfgs": ("MLPRegressor", "multioutput", dict(hidden_layer_sizes=(), solver="lbfgs", max_iter=5,
                                                           activation="tanh")),
}


@lru_cache(maxsize=None)
def estimator_file(name):
    cls_name, kind, kw = ESTIMATORS[name]
    X, y = _data(kind)
    if name == "clf_strings_es":
        import pandas as pd

        X = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = getattr(tn, cls_name)(random_state=0, **kw).fit(X, y)
    path = os.path.join(_DIR, f"{name}.npz")
    est.save(path)
    return path


@lru_cache(maxsize=None)
def model_file():
    from tinynn.training import build_mlp, save_model

    model = build_mlp([4, 6, 3], batch_norm=True, dropout=0.2, input_dropout=0.1, seed=0)
    X, y = _data("multiclass")
    model.forward(X.astype(np.float32))                                   # running statistics move
    spec = {"sizes": [4, 6, 3], "activation": "tanh", "dropout": 0.2, "batch_norm": True, "dtype": "float32",
            "input_dropout": 0.1}
    path = os.path.join(_DIR, "model.npz")
    save_model(path, model, spec)
    return path


def _fresh_trainer():
    from tinynn.training import Trainer, build_mlp

    model = build_mlp([4, 5, 3], dropout=0.2, seed=0)
    opt = tn.optim.Adam(model.parameters(), lr=0.01)
    sched = tn.schedules.make("warmup_cosine", opt, 20, 5)
    return Trainer(model, tn.SoftmaxCrossEntropy(), opt, sched, batch_size=8, rng=0)


@lru_cache(maxsize=None)
def checkpoint_file():
    trainer = _fresh_trainer()
    X, y = _data("multiclass")
    trainer.train_epoch(X.astype(np.float32), y)
    path = os.path.join(_DIR, "ckpt.npz")
    trainer.save_checkpoint(path, {"hidden": "5", "lr": 0.01})
    return path


def _read(path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    return arrays, meta


# ----------------------------------------------------------------------------------------------- mutations
OTHER_VALUES = [None, True, False, 0, -1, 1, 3, 2**70, 0.5, -0.5, 1e308, float("nan"), float("inf"), "",
                "relu", "mish", "float16", "cuda", "adam", [], [1], [5, 5], {}, {"a": 1}]


def _paths(tree, prefix=()):
    """Every path to a value inside a JSON tree."""
    out = []
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return out
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,)))
    return out


def _at(tree, path):
    for k in path[:-1]:
        tree = tree[k]
    return tree


@st.composite
def mutation(draw, arrays, meta):
    """(arrays, meta or raw text, byte edit): one or two damages drawn from every kind."""
    arrays, meta = dict(arrays), copy.deepcopy(meta)
    byte_edit = None
    for _ in range(draw(st.integers(1, 2))):
        what = draw(st.sampled_from(["meta_drop", "meta_retype", "meta_retype", "meta_add", "meta_whole", "arr_drop",
                                     "arr_rename", "arr_retype", "arr_reshape", "arr_values", "arr_add", "bytes"]))
        paths = _paths(meta) if isinstance(meta, dict) else []
        names = sorted(arrays)
        if what in ("meta_drop", "meta_retype") and paths:
            path = draw(st.sampled_from(paths))
            parent = _at(meta, path)
            if what == "meta_drop":
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(OTHER_VALUES)))
        elif what == "meta_add" and isinstance(meta, dict):
            dicts = [()] + [p for p in paths if isinstance(_at(meta, p)[p[-1]], dict)]
            where = draw(st.sampled_from(dicts))
            target = meta if not where else _at(meta, where)[where[-1]]
            key = draw(st.sampled_from(["predict", "_model", "classes_", "n_iter_", "extra", "coefs_", "lr"]))
            target[key] = copy.deepcopy(draw(st.sampled_from(OTHER_VALUES)))
        elif what == "meta_whole":
            meta = draw(st.sampled_from(["[1, 2]", '"text"', "null", "3", '{"format": "tinynn", ', "{}",
                                         json.dumps(meta)[:-7] if isinstance(meta, dict) else "{"]))
        elif what == "arr_drop" and names:
            del arrays[draw(st.sampled_from(names))]
        elif what == "arr_rename" and names:
            old = draw(st.sampled_from(names))
            new = draw(st.sampled_from(names + ["model/9.weight", "optim/zz.0", "classes", "model/0.weight "]))
            arrays[new] = arrays.pop(old)
        elif what == "arr_retype" and names:
            k = draw(st.sampled_from(names))
            dt = draw(st.sampled_from([np.int64, np.bool_, np.float16, np.float32, np.float64, np.complex64,
                                       np.uint8, "U3"]))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    arrays[k] = arrays[k].astype(dt)
            except ValueError:                                  # strings that are not numbers: keep them
                pass
        elif what == "arr_reshape" and names:
            k = draw(st.sampled_from(names))
            a = arrays[k]
            how = draw(st.sampled_from(["T", "flat", "axis", "drop", "append", "scalar", "empty"]))
            arrays[k] = {"T": lambda: a.T.copy(), "flat": lambda: a.reshape(-1), "axis": lambda: a[None],
                         "drop": lambda: a[:-1] if a.ndim and len(a) else a, "scalar": lambda: np.array(1.5),
                         "append": lambda: np.concatenate([a, a[:1]]) if a.ndim and len(a) else a,
                         "empty": lambda: a[:0] if a.ndim else a}[how]()
        elif what == "arr_values" and names:
            k = draw(st.sampled_from(names))
            a = arrays[k].copy()
            if a.size and a.dtype.kind == "f":
                v = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 3.0, -1.0]))
                a.flat[draw(st.integers(0, a.size - 1))] = v
            arrays[k] = a
        elif what == "arr_add":
            k = draw(st.sampled_from(["junk", "model/0.extra", "optim/exp_avg.99", "classes_", "feature_names_in_"]))
            arrays[k] = draw(st.sampled_from([np.ones(3), np.array(["a", "b"]), np.zeros((2, 2), np.float32)]))
        elif what == "bytes":
            byte_edit = (draw(st.sampled_from(["truncate", "flip", "append"])), draw(st.floats(0, 1)),
                         draw(st.integers(1, 255)))
    return arrays, meta, byte_edit


def _write(path, arrays, meta, byte_edit):
    payload = dict(arrays)
    payload["__meta__"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    np.savez(path, **payload)
    if byte_edit is not None:
        how, where, value = byte_edit
        data = bytearray(open(path, "rb").read())
        i = min(int(where * len(data)), len(data) - 1)
        if how == "truncate":
            data = data[:i]
        elif how == "flip":
            data[i] ^= value
        else:
            data += bytes([value]) * 16
        open(path, "wb").write(bytes(data))


def _refusal_ok(e, path):
    """A refusal is a FileFormatError naming the file (or a missing CUDA, for a file that asks for it)."""
    event(f"refused: {type(e).__name__}")
    if isinstance(e, FileFormatError):
        assert str(path) in str(e) and e.problem, str(e)
        return True
    if isinstance(e, RuntimeError) and documented(e) and "cuda" in str(e).lower():
        return True
    return False


# ----------------------------------------------------------------------------------------------- the properties
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@SETTINGS
@given(data=st.data())
def test_mutated_estimator_file(name, data):
    src = estimator_file(name)
    cls = getattr(tn, ESTIMATORS[name][0])
    arrays, meta = _read(src)
    arrays, meta, byte_edit = data.draw(mutation(arrays, meta))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "mutated.npz")
        _write(path, arrays, meta, byte_edit)
        try:
            est = cls.load(path)
        except Exception as e:  # noqa: BLE001 - the point: only documented refusals may come out
            assert _refusal_ok(e, path), f"{type(e).__name__}: {e}"
            return
        event("loaded")
        _check_sane_estimator(est, ESTIMATORS[name][1], d)


def _check_sane_estimator(est, kind, folder):
    X, y = _data(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if hasattr(est, "feature_names_in_"):
            import pandas as pd

            X = pd.DataFrame(X, columns=list(est.feature_names_in_))
        out = est.predict(X)
        assert len(out) == len(X)
        if hasattr(est, "classes_"):
            P = est.predict_proba(X)
            assert P.shape[0] == len(X) and np.all(np.isfinite(P))
            if est._y_type != "multilabel":
                np.testing.assert_allclose(P.sum(1), 1, rtol=1e-4)
                assert set(np.unique(out)) <= set(est.classes_)
        else:
            assert np.all(np.isfinite(out))
        # it continues training, and saves and loads again
        if est.solver in ("sgd", "adam") and not est.early_stopping:
            try:
                est.partial_fit(X, y)
            except Exception as e:  # noqa: BLE001
                assert documented(e) and str(e), f"partial_fit after load: {type(e).__name__}: {e}"
                return
        again = os.path.join(folder, "again.npz")
        est.save(again)
        back = type(est).load(again)
        np.testing.assert_array_equal(back.predict(X), est.predict(X))


@SETTINGS
@given(data=st.data())
def test_mutated_model_file(data):
    from tinynn.training import load_model

    arrays, meta = _read(model_file())
    arrays, meta, byte_edit = data.draw(mutation(arrays, meta))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "mutated.npz")
        _write(path, arrays, meta, byte_edit)
        try:
            model = load_model(path)
        except Exception as e:  # noqa: BLE001
            assert _refusal_ok(e, path), f"{type(e).__name__}: {e}"
            return
        X = _data("multiclass")[0].astype(model.flat.data.dtype)
        width = model.layers[-1].out_features
        for mode in ("eval", "train"):
            getattr(model, mode)()
            Y = model.forward(X)
            assert Y.shape == (len(X), width) and np.all(np.isfinite(Y))


@SETTINGS
@given(data=st.data())
def test_mutated_checkpoint(data):
    arrays, meta = _read(checkpoint_file())
    arrays, meta, byte_edit = data.draw(mutation(arrays, meta))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "mutated.npz")
        _write(path, arrays, meta, byte_edit)
        trainer = _fresh_trainer()
        try:
            trainer.load_state(*io.load_npz(path, kind="checkpoint"))
        except Exception as e:  # noqa: BLE001
            assert _refusal_ok(e, path), f"{type(e).__name__}: {e}"
            return
        X, y = _data("multiclass")
        try:
            rec = trainer.train_epoch(X.astype(np.float32), y)
        except Exception as e:  # noqa: BLE001  (a mutated learning rate may diverge: a documented error)
            assert documented(e) and str(e), f"train_epoch after load: {type(e).__name__}: {e}"
            return
        assert np.isfinite(rec["train_loss"]) and np.all(np.isfinite(trainer.model.flat.data))


def test_the_originals_load_and_predict():
    """The unmutated files pass the same checks (so the properties test the mutations, not the fixtures)."""
    for name in ESTIMATORS:
        est = getattr(tn, ESTIMATORS[name][0]).load(estimator_file(name))
        with tempfile.TemporaryDirectory() as d:
            _check_sane_estimator(est, ESTIMATORS[name][1], d)
    from tinynn.training import load_model

    load_model(model_file())
    _fresh_trainer().load_state(*io.load_npz(checkpoint_file(), kind="checkpoint"))


def test_layout_agrees_with_the_models_tinynn_builds():
    """io.mlp_state_layout (what a file is checked against before building) is what build_mlp and the
    estimators build, for every option that changes the layer list."""
    from tinynn.training import build_mlp

    for bn in (False, True):
        for p in (0.0, 0.3):
            for pin in (0.0, 0.2):
                sizes = [3, 5, 4, 2]
                model = build_mlp(sizes, batch_norm=bn, dropout=p, input_dropout=pin)
                got = {k: v.shape for k, v in model.state_dict().items()}
                assert got == io.mlp_state_layout(sizes, bn, p, pin)
            X, y = _data("multiclass")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = tn.MLPClassifier(hidden_layer_sizes=(5, 4), batch_norm=bn, dropout=p, max_iter=1).fit(X, y)
            got = {k: v.shape for k, v in est._model.state_dict().items()}
            assert got == io.mlp_state_layout([4, 5, 4, 3], bn, p)
