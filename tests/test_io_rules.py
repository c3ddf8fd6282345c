"""tinynn.io: save_npz's refusals, load_npz's checks of the container (each with its message), and the one state
layout (pack_state / unpack_state) with its refusals that change nothing."""
import json
import os

import numpy as np
import pytest

import tinynn as tn
from tinynn import io
from tinynn.errors import FileFormatError
from tinynn.mlp import build_mlp

TINYNN = {"format": "tinynn", "format_version": io.FORMAT_VERSION, "kind": "thing"}


def raw(path, meta, **arrays):
    payload = dict(arrays)
    payload["__meta__"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    np.savez(path, **payload)
    return path


def refusal(fn, *args, **kw):
    """The problem of the FileFormatError ``fn(path, ...)`` raises; the error names ``path``."""
    with pytest.raises(FileFormatError) as e:
        fn(*args, **kw)
    assert e.value.path == str(args[0])
    return e.value.problem


# --------------------------------------------------------------------------------------------- save_npz
@pytest.mark.parametrize("name", ["", "__meta__", 3])
def test_save_npz_refuses_bad_names(tmp_path, name):
    with pytest.raises(ValueError) as e:
        io.save_npz(tmp_path / "a.npz", {name: np.ones(2)}, {}, kind="thing")
    assert str(e.value) == ("save_npz: array names must be non-empty strings other than '__meta__', "
                            f"got {name!r}")
    assert not os.path.exists(tmp_path / "a.npz")


def test_save_npz_refuses_objects_and_non_json(tmp_path):
    with pytest.raises(TypeError) as e:
        io.save_npz(tmp_path / "a.npz", {"a": np.array([{}, 1], dtype=object)}, {}, kind="thing")
    assert str(e.value) == "save_npz: array 'a' has dtype object; only plain arrays are saved"
    with pytest.raises(TypeError) as e:
        io.save_npz(tmp_path / "a.npz", {}, {"x": {1, 2}}, kind="thing")
    assert str(e.value).startswith("save_npz: the metadata must be plain JSON (dicts, lists, str, numbers, bool, "
                                   "None): Object of type set")
    loop = []
    loop.append(loop)
    with pytest.raises(TypeError, match=r"^save_npz: the metadata must be plain JSON .*: Circular reference"):
        io.save_npz(tmp_path / "a.npz", {}, {"x": loop}, kind="thing")
    assert not os.path.exists(tmp_path / "a.npz")
    with pytest.raises(TypeError) as e:
        io.save_npz(3, {}, {}, kind="thing")
    assert str(e.value) == "save_npz: expected a file path (str or os.PathLike), got int"
    with pytest.raises(TypeError) as e:
        io.load_npz(None)
    assert str(e.value) == "load_npz: expected a file path (str or os.PathLike), got NoneType"


def test_save_npz_writes_the_format_entries(tmp_path):
    p = tmp_path / "a.npz"
    assert io.save_npz(p, {"w": [1.0, 2.0]}, {"kind": "mine", "format": "x", "k": [1]}, kind="thing") == str(p)
    arrays, meta = io.load_npz(p, kind="thing")
    assert dict(meta) == {"k": [1], "format": "tinynn", "kind": "thing", "format_version": 2}
    assert io.FORMAT_VERSION == 2 and isinstance(meta, io.Meta) and meta.source == str(p)
    np.testing.assert_array_equal(arrays["w"], [1.0, 2.0])
    with np.load(p, allow_pickle=False) as z:
        assert sorted(z.files) == ["__meta__", "w"]


# --------------------------------------------------------------------------------------------- load_npz
def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        io.load_npz(tmp_path / "none.npz")
    assert str(e.value) == f"{tmp_path / 'none.npz'}: no such file"
    assert refusal(io.load_npz, tmp_path) == "is a directory, not a tinynn file"


@pytest.mark.parametrize("content, says", [
    (b"", "empty file (0 bytes): not an .npz archive, not a tinynn file"),
    (b"\x93NUMPY\x01\x00rest", "not an .npz archive, so not a tinynn file (a single .npy array)"),
    (b"\x80\x04\x95", "not an .npz archive, so not a tinynn file (a Python pickle (refused: tinynn never unpickles))"),
    (b"hello world, text", "not an .npz archive, so not a tinynn file (something else: it starts with b'hello wo')"),
    (b"P", "not an .npz archive, so not a tinynn file (something else: it starts with b'P')"),
    (b"PK", "truncated, empty or corrupt file (no zip end-of-directory record)"),
])
def test_magic(tmp_path, content, says):
    p = tmp_path / "x.npz"
    p.write_bytes(content)
    assert refusal(io.load_npz, p) == says


@pytest.mark.parametrize("meta, says", [
    ("[1, 2]", "corrupt metadata: a JSON array, expected a JSON object"),
    ("{nope", "corrupt metadata: not valid JSON (JSONDecodeError: Expecting property name enclosed in double quotes: "
              "line 1 column 2 (char 1))"),
    ('"s"', "corrupt metadata: a JSON string, expected a JSON object"),
    ({"kind": "thing", "format_version": 2}, 'not a tinynn file (its metadata has no format: "tinynn" entry)'),
    (dict(TINYNN, format="Tinynn"), 'not a tinynn file (its metadata has no format: "tinynn" entry)'),
    (dict(TINYNN, format_version=1), "tinynn format version 1, but this tinynn reads version 2; re-save it with the "
                                     "tinynn that wrote it"),
    (dict(TINYNN, format_version=3), "tinynn format version 3, but this tinynn reads version 2; re-save it with the "
                                     "tinynn that wrote it"),
    (dict(TINYNN, format_version="2"), "tinynn format version '2', but this tinynn reads version 2; re-save it with "
                                       "the tinynn that wrote it"),
    (dict(TINYNN, format_version=2.0), "tinynn format version 2.0, but this tinynn reads version 2; re-save it with "
                                       "the tinynn that wrote it"),
    ({"format": "tinynn", "kind": "thing"}, "tinynn format version None, but this tinynn reads version 2; re-save "
                                            "it with the tinynn that wrote it"),
    (dict(TINYNN, kind="other"), "holds a 'other', expected a 'thing'"),
    ({"format": "tinynn", "format_version": 2}, "holds a None, expected a 'thing'"),
])
def test_metadata_of_the_container(tmp_path, meta, says):
    assert refusal(io.load_npz, raw(tmp_path / "x.npz", meta), kind="thing") == says


def test_long_versions_and_kinds_are_quoted_cut(tmp_path):
    p = raw(tmp_path / "x.npz", dict(TINYNN, format_version="v" * 100))
    assert refusal(io.load_npz, p) == ("tinynn format version 'vvvvvvv... (94 more characters), but this tinynn "
                                       "reads version 2; re-save it with the tinynn that wrote it")   # 40: 8 kept
    p = raw(tmp_path / "x.npz", dict(TINYNN, kind="k" * 100))
    assert refusal(io.load_npz, p, kind="thing") == ("holds a '" + "k" * 27 + "... (74 more characters), expected a "
                                                     "'thing'")                                         # 60: 28 kept


def test_no_metadata_entry_lists_what_is_there(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, b=np.ones(1), a=np.ones(1))
    assert refusal(io.load_npz, p) == ("not a tinynn file (an .npz archive without the __meta__ entry; it holds "
                                       "['a', 'b'])")


def test_kind_none_reads_any_kind_and_plan_sees_headers_before_data(tmp_path):
    p = raw(tmp_path / "x.npz", dict(TINYNN, kind="other"), w=np.arange(3.0))
    seen = []

    def plan(meta, headers):
        seen.append((dict(meta), {k: (h.shape, h.dtype) for k, h in headers.items()}, type(headers["w"]).__name__))

    arrays, meta = io.load_npz(p, plan=plan)
    assert seen == [(dict(TINYNN, kind="other"), {"w": ((3,), np.dtype("f8"))}, "Header")]
    np.testing.assert_array_equal(arrays["w"], np.arange(3.0))
    arrays, _ = io.load_npz(p, data=False)
    assert arrays == {}

    def refuse(meta, headers):
        raise FileFormatError(meta.source, "no")

    assert refusal(io.load_npz, p, plan=refuse) == "no"


def test_an_array_changed_after_its_header_was_checked_is_refused(tmp_path):
    """The data is read against the header the plan checked: a file rewritten in between (same size, another
    shape) is refused as changed, not read with the new shape."""
    p = raw(tmp_path / "x.npz", TINYNN, w=np.arange(1000.0))
    data = p.read_bytes()
    i = data.index(b"(1000,), }")

    def rewrite(meta, headers):
        assert headers["w"].shape == (1000,)
        with open(p, "r+b") as f:
            f.seek(i)
            f.write(b"(10,100),}")

    assert refusal(io.load_npz, p, plan=rewrite) == "entry 'w.npy' changed while it was read"


# --------------------------------------------------------------------------------------------- checkpoints
def checkpoint(tmp_path, epoch=3, sizes=(3, 4, 2)):
    from tinynn.training import Trainer

    model = build_mlp(list(sizes), seed=0)
    opt = tn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=4, rng=0)
    trainer.train_epoch(np.ones((8, 3), np.float32), np.arange(8) % 2)
    trainer._epoch = epoch
    p = tmp_path / "ckpt.npz"
    trainer.save_checkpoint(p, {})
    return p


def test_checkpoint_epoch(tmp_path):
    p = checkpoint(tmp_path, epoch=7)
    assert io.checkpoint_epoch(p) == 7
    assert io.checkpoint_epoch(tmp_path / "none.npz") is None
    (tmp_path / "bad.npz").write_bytes(b"nope")
    assert io.checkpoint_epoch(tmp_path / "bad.npz") is None
    io.save_npz(tmp_path / "m.npz", {}, {"epoch": 1}, kind="sequential")
    assert io.checkpoint_epoch(tmp_path / "m.npz") is None


def test_checkpoint_epoch_reads_no_array_data(tmp_path):
    """Metadata and headers only: a checkpoint whose array data is damaged (its CRC fails when read) still says
    its epoch, though loading it is refused."""
    p = checkpoint(tmp_path, epoch=4, sizes=[3, 40, 40, 2])
    arrays, meta = io.load_npz(p)
    p = raw(tmp_path / "d.npz", dict(meta), **arrays)
    data = bytearray(p.read_bytes())
    i = data.index(arrays["model/2.weight"].tobytes()[-64:])        # the end of a 6400-byte entry's data
    data[i] ^= 0xFF
    p.write_bytes(bytes(data))
    assert refusal(io.load_npz, p).startswith("truncated, empty or corrupt file (BadZipFile: Bad CRC-32")
    assert io.checkpoint_epoch(p) == 4


def test_a_checkpoint_is_checked_on_loading_whatever_kind_is_asked(tmp_path):
    arrays, meta = io.load_npz(checkpoint(tmp_path))
    m = json.loads(json.dumps(meta))
    m["epoch"] = -1
    p = raw(tmp_path / "e.npz", m, **arrays)
    assert refusal(io.load_npz, p).startswith("metadata entry epoch must be an integer in [0, ")
    arrays["model/0.weight"] = np.ones((4, 5))                 # its own model: 3 x 4
    p = raw(tmp_path / "h.npz", dict(meta), **arrays)
    assert refusal(io.load_npz, p) == ("array 'optim/momentum_buffer.0' has shape (3, 4), which is no parameter's "
                                       "shape of the checkpoint's model (4 parameters)")


# --------------------------------------------------------------------------------------------- state
def parts(seed=0, dtype=np.float32):
    model = build_mlp([3, 4, 2], dropout=0.3, seed=seed, dtype=dtype)
    opt = tn.optim.Adam(model.parameters(), lr=0.01)
    sched = tn.schedules.make("warmup_cosine", opt, 20, 5)
    return model, opt, sched, np.random.default_rng(seed)


def test_pack_state_layout():
    model, opt, sched, rng = parts()
    arrays, meta = io.pack_state(model, opt, sched, {"shuffle": rng})
    assert sorted(arrays) == sorted([f"model/{k}" for k in ("0.weight", "0.bias", "3.weight", "3.bias")]
                                    + [f"optim/{s}.{i}" for s in ("exp_avg", "exp_avg_sq") for i in range(4)])
    assert sorted(meta) == ["optim", "rngs", "schedule"]
    assert sorted(meta["rngs"]) == ["model.dropout.2", "shuffle"]
    assert meta["rngs"]["shuffle"] == rng.bit_generator.state
    assert meta["optim"] == {"t": 0, "lr": 0.01, **{k: v for k, v in opt.state_dict().items()
                                                    if not isinstance(v, np.ndarray)}}
    assert meta["schedule"] == sched.state_dict()
    assert io.pack_state() == ({}, {"rngs": {}})
    assert io.rng_state(rng) == rng.bit_generator.state and io.rng_state(rng) is not rng.bit_generator.state


def test_unpack_state_restores_everything():
    a = parts(0)
    a[0].forward(np.ones((2, 3), np.float32))
    a[1].t = 5
    a[3].random()
    arrays, meta = io.pack_state(a[0], a[1], a[2], {"r": a[3]})
    arrays, meta = json.loads(json.dumps(meta)) and arrays, json.loads(json.dumps(meta))
    b = parts(1)
    io.unpack_state(arrays, meta, b[0], b[1], b[2], {"r": b[3]})
    np.testing.assert_array_equal(a[0].flat.data, b[0].flat.data)
    assert b[1].t == 5 and b[3].random() == a[3].random()
    assert b[0].layers[2].rng.random() == a[0].layers[2].rng.random()
    assert b[2].state_dict() == a[2].state_dict()


def test_unpack_state_refusals_name_the_path_and_change_nothing():
    a = parts(0)
    arrays, meta = io.pack_state(a[0], a[1], a[2], {"r": a[3]})
    b = parts(1, dtype=np.float64)
    before = b[0].flat.data.copy()
    with pytest.raises(FileFormatError) as e:
        io.unpack_state(arrays, meta, b[0], path="here.npz")
    assert str(e.value) == "here.npz: array 'model/0.weight' has dtype float32, expected float64 (the model's)"
    with pytest.raises(FileFormatError) as e:
        io.unpack_state(arrays, meta, b[0])
    assert e.value.path == "tinynn state"
    m = io.Meta(meta)
    m.source = "from.npz"
    with pytest.raises(FileFormatError) as e:
        io.unpack_state(arrays, m, b[0])
    assert e.value.path == "from.npz"
    np.testing.assert_array_equal(b[0].flat.data, before)
    c = parts(1)
    bad = dict(meta, rngs={})
    with pytest.raises(FileFormatError) as e:
        io.unpack_state(arrays, bad, c[0])
    assert e.value.problem == "metadata entry rngs.model.dropout.2 is missing"
    with pytest.raises(FileFormatError) as e:
        io.unpack_state(arrays, dict(meta, rngs={"model.dropout.2": meta["rngs"]["model.dropout.2"]}), rngs={"r": c[3]})
    assert e.value.problem == "metadata entry rngs.r is missing"
    for edit, says in [(dict(arrays, **{"model/9.x": np.zeros(1)}), "the model's arrays do not match the "
                        "architecture the metadata describes: unexpected ['model/9.x']"),
                       ({k: v for k, v in arrays.items() if not k.startswith("optim/")},
                        "the optimizer state does not match the Adam optimizer: missing ")]:
        with pytest.raises(FileFormatError) as e:
            io.unpack_state(edit, meta, c[0], c[1], path="here.npz")
        assert e.value.path == "here.npz" and e.value.problem.startswith(says)
    with pytest.raises(FileFormatError) as e:
        io.unpack_state(arrays, dict(meta, optim={}), None, c[1], path="here.npz")
    assert str(e.value) == "here.npz: metadata entry optim.t is missing"
    io.unpack_state({}, {}, rngs={})                     # nothing asked: nothing read
    io.unpack_state({}, {}, c[0].__class__(), None)      # a model without Dropout needs no rngs entry
    with pytest.raises(FileFormatError) as e:
        io.unpack_state(arrays, dict(meta, schedule={}), schedule=c[2])
    assert e.value.problem.startswith("metadata entry schedule.")
    assert c[0].layers[2].rng.bit_generator.state == parts(1)[0].layers[2].rng.bit_generator.state


def test_set_rng_state():
    r = np.random.default_rng(5)
    s = io.rng_state(r)
    x = r.random()
    assert io.set_rng_state(r, s) is r and r.random() == x
