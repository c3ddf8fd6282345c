"""Model and checkpoint files: refused pickles, corrupt files, version checks, atomic writes."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tinynn import io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def good_file(path, value=1.0):
    io.save_npz(path, {"w": np.full((3, 2), value)}, {"note": "x"}, kind="thing")
    return path


def test_roundtrip(tmp_path):
    arrays, meta = io.load_npz(good_file(tmp_path / "a.npz"), kind="thing")
    np.testing.assert_array_equal(arrays["w"], np.ones((3, 2)))
    assert meta["note"] == "x" and meta["format_version"] == io.FORMAT_VERSION


def test_pickled_objects_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    np.savez(path, w=np.array([Evil()], dtype=object), __meta__=np.array(json.dumps(
        {"format": "tinynn", "format_version": io.FORMAT_VERSION, "kind": "thing"})))
    with pytest.raises(ValueError, match=r"evil.npz: refused: the file holds pickled objects"):
        io.load_npz(path)
    assert not marker.exists()  # nothing ran


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "flipped"])
def test_corrupt_files_name_the_file(tmp_path, damage):
    path = good_file(tmp_path / "m.npz")
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    else:  # a flipped byte inside the stored array: the zip CRC catches it
        i = data.index(b"\x00\x00\xf0?")  # the bytes of the float 1.0
        path.write_bytes(data[:i] + b"\x01" + data[i + 1:])
    with pytest.raises(ValueError, match="m.npz"):
        io.load_npz(path)


def test_other_format_version_says_so(tmp_path):
    path = tmp_path / "old.npz"
    np.savez(path, w=np.ones(2), __meta__=np.array(json.dumps({"format": "tinynn", "format_version": 99, "kind": "x"})))
    with pytest.raises(ValueError, match="format version 99"):
        io.load_npz(path)


def test_not_a_tinynn_file(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.ones(2))
    with pytest.raises(ValueError, match="not a tinynn file"):
        io.load_npz(path)


def test_killed_writer_leaves_previous_file_intact(tmp_path):
    """SIGKILL a process in the middle of writing a large checkpoint: the old file must still load."""
    path = tmp_path / "ckpt.npz"
    good_file(path, value=7.0)
    script = textwrap.dedent(f"""
        import numpy as np, sys
        sys.path.insert(0, {ROOT!r})
        from tinynn import io
        big = {{"w%d" % i: np.random.default_rng(i).standard_normal(4_000_000) for i in range(40)}}
        print("writing", flush=True)
        while True:
            io.save_npz({str(path)!r}, big, {{}}, kind="thing")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.5)  # well inside the ~1.3 GB write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    arrays, _ = io.load_npz(path, kind="thing")
    assert set(arrays) == {"w"} or len(arrays) == 40   # the old file, or a complete new one; never a torn one
    if set(arrays) == {"w"}:
        np.testing.assert_array_equal(arrays["w"], np.full((3, 2), 7.0))
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    assert len(leftovers) <= 1  # at most the killed writer's temp file, never renamed into place


# ----------------------------------------------------------------------------------------------- the container
from tinynn.errors import FileFormatError  # noqa: E402


def _raw_npz(path, meta, **arrays):
    """An .npz written without save_npz's checks (any metadata, any arrays)."""
    payload = dict(arrays)
    payload["__meta__"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    np.savez(path, **payload)
    return path


TINYNN = {"format": "tinynn", "format_version": io.FORMAT_VERSION, "kind": "thing"}


@pytest.mark.parametrize("content, says", [
    (b"", "empty file"),
    (b"hello world, this is text", "not an .npz archive"),
    (b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.", "a Python pickle"),
])
def test_not_an_npz_is_reported_as_such_not_as_pickled(tmp_path, content, says):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=says) as e:
        io.load_npz(path)
    assert str(path) in str(e.value) and "holds pickled objects" not in str(e.value)


def test_a_single_npy_is_not_an_npz(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.ones(3))
    with pytest.raises(FileFormatError, match=r"w.npy: not an .npz archive.*single .npy array"):
        io.load_npz(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz: no such file"):
        io.load_npz(tmp_path / "nope.npz")
    with pytest.raises(FileFormatError, match="is a directory"):
        io.load_npz(tmp_path)
    with pytest.raises(TypeError, match="expected a file path"):
        io.load_npz(3.5)


@pytest.mark.parametrize("meta, says", [
    ("[1, 2]", "a JSON array, expected a JSON object"),
    ('"text"', "a JSON string, expected a JSON object"),
    ("null", "a JSON null, expected a JSON object"),
    ('{"format": "tinynn", ', "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),                   # RecursionError inside json
    ({"format_version": io.FORMAT_VERSION}, "not a tinynn file"),
    ({"format": "tinynn", "format_version": "2"}, "format version '2'"),
    ({"format": "tinynn", "format_version": True}, "format version True"),
])
def test_metadata_that_is_not_a_tinynn_object(tmp_path, meta, says):
    path = _raw_npz(tmp_path / "m.npz", meta, w=np.ones(2))
    with pytest.raises(FileFormatError, match=says) as e:
        io.load_npz(path)
    assert str(path) in str(e.value)


def test_metadata_that_is_not_a_string(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, w=np.ones(2), __meta__=np.arange(3))
    with pytest.raises(FileFormatError, match="expected a JSON string"):
        io.load_npz(path)


def test_zip_members_that_are_not_arrays(tmp_path):
    import zipfile

    path = good_file(tmp_path / "m.npz")
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(FileFormatError, match="'readme.txt' is not an .npy array"):
        io.load_npz(path)
    path = good_file(tmp_path / "n.npz")
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("junk.npy", b"not an npy at all")
    with pytest.raises(FileFormatError, match="'junk.npy': not a readable .npy array"):
        io.load_npz(path)


def test_a_header_announcing_more_data_than_there_is_allocates_nothing(tmp_path):
    """An .npy header claiming 10¹² elements is refused from the zip's sizes, before any allocation."""
    import io as pyio
    import zipfile

    buf = pyio.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    path = tmp_path / "big.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("w.npy", buf.getvalue() + b"\x00" * 16)
        z.writestr("__meta__.npy", _npy_bytes(np.array(json.dumps(TINYNN))))
    with pytest.raises(FileFormatError, match=r"announces shape \(1000000000000,\)"):
        io.load_npz(path)


def _npy_bytes(a):
    import io as pyio

    buf = pyio.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_fortran_order_and_byte_order_read_back(tmp_path):
    a = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    b = np.arange(4.0).astype(">f8")
    path = _raw_npz(tmp_path / "m.npz", TINYNN, a=a, b=b)
    arrays, _ = io.load_npz(path)
    np.testing.assert_array_equal(arrays["a"], a)
    np.testing.assert_array_equal(arrays["b"], b)
    assert arrays["b"].dtype.isnative and arrays["a"].flags.c_contiguous and arrays["a"].flags.writeable


def test_every_refusal_is_a_file_format_error_and_a_value_error(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"garbage!")
    with pytest.raises(ValueError) as e:
        io.load_npz(path)
    assert isinstance(e.value, FileFormatError) and e.value.path == str(path) and e.value.problem


# ----------------------------------------------------------------------------------------------- estimator files
import warnings  # noqa: E402

import tinynn as tn  # noqa: E402


@pytest.fixture(scope="module")
def fitted_files(tmp_path_factory):
    """A binary classifier file (with optimizer state) and its arrays and metadata."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = tn.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("est") / "clf.npz"
    clf.save(path)
    arrays, meta = io.load_npz(path)
    return clf, X, arrays, dict(meta)


def _edited(tmp_path, arrays, meta):
    return _raw_npz(tmp_path / "edited.npz", meta, **arrays)


def _meta_without(meta, *keys):
    m = json.loads(json.dumps(meta))
    d = m
    for k in keys[:-1]:
        d = d[k]
    del d[keys[-1]]
    return m


@pytest.mark.parametrize("keys, says", [
    (("params",), "metadata entry params is missing"),
    (("fitted",), "metadata entry fitted is missing"),
    (("fitted", "n_features_in_"), "metadata entry fitted.n_features_in_ is missing"),
    (("fitted", "y_type"), "metadata entry fitted.y_type is missing"),
    (("params", "activation"), "params.activation missing"),
    (("optim",), "metadata entry optim is missing"),
    (("optim", "t"), "metadata entry optim.t is missing"),
])
def test_estimator_file_missing_an_entry(tmp_path, fitted_files, keys, says):
    _, _, arrays, meta = fitted_files
    path = _edited(tmp_path, arrays, _meta_without(meta, *keys))
    with pytest.raises(FileFormatError, match=says) as e:
        tn.MLPClassifier.load(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("where, value, says", [
    (("params", "activation"), "mish", r"params.activation is 'mish', expected one of \[.*\(tinynn.ACTIVATIONS\)"),
    (("params", "init"), "he_magic", r"params.init is 'he_magic'.*tinynn.init.INITIALIZERS"),
    (("params", "optimizer"), "adamax", r"params.optimizer is 'adamax'.*tinynn.optim.OPTIMIZERS"),
    (("params", "hidden_layer_sizes"), [5, 0], r"hidden_layer_sizes\[1\] must be a positive integer"),
    (("params", "hidden_layer_sizes"), [7], r"'model/0.weight' has shape \(4, 5\), expected \(4, 7\)"),
    (("params", "hidden_layer_sizes"), [10**9], r"'model/0.weight' has shape \(4, 5\), expected \(4, 1000000000\)"),
    (("params", "dtype"), "float16", r"params.dtype is 'float16', expected one of \['float32', 'float64'\]"),
    (("params", "max_iter"), "many", r"params: The 'max_iter' parameter"),
    (("params", "random_state"), -1, r"params.random_state must be an integer in \[0, 4294967295\]"),
    (("fitted", "n_outputs_"), 3, r"'model/2.weight' has shape \(5, 1\), expected \(5, 3\)"),
    (("fitted", "n_features_in_"), "4", r"fitted.n_features_in_ must be an integer, got '4'"),
    (("fitted", "out_activation_"), "softmax", r"fitted.out_activation_ is 'softmax', expected one of \['logistic'\]"),
    (("fitted", "y_type"), "multiclass", r"fitted.out_activation_ is 'logistic', expected one of \['softmax'\]"),
    (("fitted", "dtype_"), "float32", r"'model/0.(weight|bias)' has dtype float64, expected float32"),
    (("fitted", "n_layers_"), 4, r"fitted.n_layers_ is 4, but params.hidden_layer_sizes \[5\] gives 3 layers"),
    (("fitted", "has_optimizer"), "yes", r"fitted.has_optimizer must be true or false"),
    (("fitted", "predict"), 5, r"unexpected metadata entry fitted.predict"),
    (("fitted", "loss_curve_"), [1.0, "x"], r"fitted.loss_curve_\[1\] must be a number"),
    (("optim", "lr"), -1.0, r"optim.lr must be in \[0, None\]"),
    (("optim", "t"), 2**70, r"optim.t must be an integer in \[0, 9007199254740992\]"),
    (("params",), [1, 2], r"metadata entry params must be a JSON object"),
])
def test_estimator_file_with_an_edited_entry(tmp_path, fitted_files, where, value, says):
    _, _, arrays, meta = fitted_files
    m = json.loads(json.dumps(meta))
    d = m
    for k in where[:-1]:
        d = d[k]
    d[where[-1]] = value
    path = _edited(tmp_path, arrays, m)
    with pytest.raises(FileFormatError, match=says) as e:
        tn.MLPClassifier.load(path)
    assert str(path) in str(e.value)


def test_classes_that_do_not_fit_the_output_layer(tmp_path, fitted_files):
    _, _, arrays, meta = fitted_files
    for classes, says in [(np.array([0, 1, 2, 3]), "has 4 classes but the output layer has 1 output"),
                          (np.array([1, 0]), "sorted and without repeats"),
                          (np.array([[0, 1]]), "1-D array"),
                          (np.array([0.0, np.nan]), "NaN"),
                          (np.array([0, 1], dtype=np.complex64), "numbers or strings")]:
        path = _edited(tmp_path, dict(arrays, classes_=classes), meta)
        with pytest.raises(FileFormatError, match=says):
            tn.MLPClassifier.load(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_not_predicted_as_one_row(tmp_path, fitted_files, bad):
    _, _, arrays, meta = fitted_files
    w = arrays["model/0.weight"].copy()
    w[0, 0] = bad
    path = _edited(tmp_path, dict(arrays, **{"model/0.weight": w}), meta)
    with pytest.raises(FileFormatError, match=r"'model/0.weight' holds 1 NaN or infinite value"):
        tn.MLPClassifier.load(path)
    o = arrays["optim/exp_avg.0"].copy()
    o.flat[0] = bad
    path = _edited(tmp_path, dict(arrays, **{"optim/exp_avg.0": o}), meta)
    with pytest.raises(FileFormatError, match=r"'optim/exp_avg.0' holds 1 NaN"):
        tn.MLPClassifier.load(path)


@pytest.mark.parametrize("edit, says", [
    (lambda a: a.pop("model/2.bias"), r"missing \['model/2.bias'\]"),
    (lambda a: a.update({"model/5.weight": np.ones((2, 2))}), r"unexpected \['model/5.weight'\]"),
    (lambda a: a.update({"junk": np.ones(2)}), r"unexpected array\(s\) \['junk'\]"),
    (lambda a: a.update({"model/0.weight": a["model/0.weight"].T.copy()}), r"has shape \(5, 4\), expected \(4, 5\)"),
    (lambda a: a.update({"model/0.weight": a["model/0.weight"].astype(np.int64)}), "has dtype int64, expected float"),
    (lambda a: a.update({"model/0.weight": a["model/0.weight"].astype(np.float16)}), "has dtype float16"),
    (lambda a: a.pop("optim/exp_avg.1"), r"missing \['optim/exp_avg.1'\]"),
    (lambda a: a.pop("classes_"), "'classes_' is missing"),
])
def test_estimator_file_with_an_edited_array(tmp_path, fitted_files, edit, says):
    _, _, arrays, meta = fitted_files
    arrays = dict(arrays)
    edit(arrays)
    with pytest.raises(FileFormatError, match=says):
        tn.MLPClassifier.load(_edited(tmp_path, arrays, meta))


def test_untouched_file_loads_and_predicts_like_the_original(tmp_path, fitted_files):
    clf, X, arrays, meta = fitted_files
    back = tn.MLPClassifier.load(_edited(tmp_path, arrays, meta))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


def test_a_refused_file_changes_nothing(tmp_path):
    """unpack_state checks every part before it assigns any."""
    from tinynn.training import build_mlp

    model = build_mlp([3, 4, 2], dropout=0.5, seed=0)
    arrays, meta = io.pack_state(model)
    before = model.flat.data.copy()
    rng_before = model.layers[2].rng.bit_generator.state
    other = build_mlp([3, 4, 2], dropout=0.5, seed=1)
    arrays2, meta2 = io.pack_state(other)
    meta2["rngs"]["model.dropout.2"] = {"bit_generator": "PCG64", "state": "broken"}
    with pytest.raises(FileFormatError, match="not a valid PCG64 generator state"):
        io.unpack_state(arrays2, meta2, model)
    np.testing.assert_array_equal(model.flat.data, before)
    assert model.layers[2].rng.bit_generator.state == rng_before


# ----------------------------------------------------------------------------------------------- model files
def _model_file(tmp_path, **spec_edits):
    from tinynn.training import build_mlp, save_model

    model = build_mlp([4, 6, 3], batch_norm=True, dropout=0.2, seed=0)
    spec = {"sizes": [4, 6, 3], "activation": "relu", "dropout": 0.2, "batch_norm": True, "dtype": "float32"}
    path = tmp_path / "model.npz"
    save_model(path, model, spec)
    return model, path


@pytest.mark.parametrize("key, value, says", [
    ("sizes", [4, 3], r"unexpected \['model/1.bias'"),
    ("sizes", [4], "must list at least 2 positive integers"),
    ("sizes", "4-6-3", "spec.sizes must be a JSON array"),
    ("activation", "mish", r"spec.activation is 'mish'.*tinynn.ACTIVATIONS"),
    ("dropout", 1.5, r"spec.dropout must be in \[0, 1\)"),
    ("batch_norm", False, r"unexpected \['model/1.bias'"),
    ("dtype", "float64", "has dtype float32, expected float64"),
    ("dtype", "int8", r"spec.dtype is 'int8'"),
    ("input_dropout", -0.1, r"spec.input_dropout must be in \[0, 1\)"),
])
def test_model_file_with_an_edited_spec(tmp_path, key, value, says):
    from tinynn.training import load_model

    _, path = _model_file(tmp_path)
    arrays, meta = io.load_npz(path)
    meta = dict(meta)
    meta["spec"] = dict(meta["spec"], **{key: value})
    path = _raw_npz(tmp_path / "edited.npz", meta, **arrays)
    with pytest.raises(FileFormatError, match=says) as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_model_file_negative_running_variance_refused(tmp_path):
    from tinynn.training import load_model

    model, path = _model_file(tmp_path)
    arrays, meta = io.load_npz(path)
    arrays["model/1.running_var"] = -np.abs(arrays["model/1.running_var"])
    with pytest.raises(FileFormatError, match="'model/1.running_var' holds negative values"):
        load_model(_raw_npz(tmp_path / "edited.npz", dict(meta), **arrays))
    back = load_model(path)
    X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    model.eval(), back.eval()
    np.testing.assert_array_equal(back.forward(X), model.forward(X))


# ----------------------------------------------------------------------------------------------- checkpoints
def _checkpoint(tmp_path):
    from tinynn.training import Trainer, build_mlp

    model = build_mlp([4, 5, 3], dropout=0.2, seed=0)
    opt = tn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = tn.schedules.make("warmup_cosine", opt, 20, 5)
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), opt, sched, batch_size=8, rng=0)
    X = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
    trainer.train_epoch(X, np.arange(40) % 3)
    path = tmp_path / "ckpt.npz"
    trainer.save_checkpoint(path, {"hidden": "5"})

    def fresh():
        m = build_mlp([4, 5, 3], dropout=0.2, seed=1)
        o = tn.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        return Trainer(m, tn.SoftmaxCrossEntropy(), o, tn.schedules.make("warmup_cosine", o, 20, 5), batch_size=8)

    return path, fresh, X


@pytest.mark.parametrize("edit, says", [
    (lambda m: m.pop("epoch"), "metadata entry epoch is missing"),
    (lambda m: m.update(epoch=-1), r"epoch must be an integer in \[0, "),
    (lambda m: m.update(history=[["train_loss", 1.0]]), r"history\[0\] must be a JSON object"),
    (lambda m: m.update(history={"train_loss": 1.0}), r"metadata entry history must be a JSON array"),
    (lambda m: m.update(config=[1]), "metadata entry config must be a JSON object"),
    (lambda m: m["schedule"].pop("warmup_steps"), "metadata entry schedule.warmup_steps is missing"),
    (lambda m: m["schedule"].update(warmup_steps="5"), "schedule.warmup_steps must be an integer"),
    (lambda m: m["schedule"].update(optimizer=3), "unexpected metadata entry schedule.optimizer"),
    (lambda m: m["schedule"]["after_state"].update(T_max=0), r"gives no learning rate \(ZeroDivisionError"),
    (lambda m: m["rngs"].pop("shuffle"), "metadata entry rngs.shuffle is missing"),
    (lambda m: m["rngs"]["shuffle"].update(bit_generator="MT19937"), "not a valid PCG64 generator state"),
    (lambda m: m["optim"].update(lr=float("nan")), "optim.lr must be a finite number"),
])
def test_checkpoint_with_an_edited_entry(tmp_path, edit, says):
    path, fresh, X = _checkpoint(tmp_path)
    arrays, meta = io.load_npz(path)
    meta = json.loads(json.dumps(meta))
    edit(meta)
    path = _raw_npz(tmp_path / "edited.npz", meta, **arrays)
    with pytest.raises(FileFormatError, match=says) as e:
        arrays, meta = io.load_npz(path, kind="checkpoint")
        fresh().load_state(arrays, meta)
    assert str(path) in str(e.value)


def test_checkpoint_round_trip_still_exact(tmp_path):
    path, fresh, X = _checkpoint(tmp_path)
    a, b = fresh(), fresh()
    a.load_state(*io.load_npz(path, kind="checkpoint"))
    b.load_state(*io.load_npz(path, kind="checkpoint"))
    a.train_epoch(X, np.arange(40) % 3)
    b.train_epoch(X, np.arange(40) % 3)
    np.testing.assert_array_equal(a.model.flat.data, b.model.flat.data)


def test_estimator_file_from_before_the_newer_parameters_loads_with_their_defaults(tmp_path, fitted_files):
    """A file written before l1, l1_mode, transform_layer and class_weight existed has no such entries: it
    loads, with the constructor's defaults, and predicts as the file it came from."""
    _, _, arrays, meta = fitted_files
    m = json.loads(json.dumps(meta))
    for k in ("l1", "l1_mode", "transform_layer", "class_weight"):
        m["params"].pop(k, None)
    est = tn.MLPClassifier.load(_edited(tmp_path, arrays, m))
    assert (est.l1, est.l1_mode, est.transform_layer, est.class_weight) == (0.0, "subgradient", -1, None)
