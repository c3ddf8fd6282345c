"""Hostile files (issue 29): crafted archives for every class of attack, each loaded by every loader
(MLPClassifier.load, training.load_model, Trainer.load_state, scripts/train_mnist.py --resume) in a subprocess
under a memory limit (RLIMIT_AS), which must end in a clear FileFormatError (for --resume: one ``error:`` line
and exit code 2) with a bounded message, a bounded rise of memory, and no signal.

The archives are written by hand (``_zip``), so sizes, methods and offsets can lie; the bombs are streams:
the deflate bomb repeats one independently decodable block (1 KiB that inflates to 1 MiB of zeros) 3072 times,
the bzip2 bomb is a 1266-byte stream (below, base64) that decompresses to 1.5 GiB behind an .npy header
announcing shape (2,) (``bz2.compress(header + bytes(1536 << 20))``). Nothing large is ever written to disk.
"""
import base64
import io as pyio
import json
import lzma
import os
import resource
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib

import numpy as np
import pytest

import tinynn as tn
from tinynn import io
from tinynn.errors import FileFormatError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "_hostile_worker.py")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

LIMIT_AS = 1792 << 20           # the loaders' address space: ~0.8 GiB of it is Python + numpy + numba + sklearn
PEAK_SLACK = 48 << 20           # a refused file may raise the peak memory by its own size plus this
MAX_MESSAGE = 1000              # characters of a refusal (a few hundred per problem)
LOADERS = ("estimator", "model", "checkpoint", "resume")

BZIP2_BOMB = base64.b64decode("".join((
    'QlpoOTFBWSZTWfcyYSwFfkBfoOAQQOQUVAEDQiCvRd0KCAAACCAAdBkUaRoep6aEGmg3pT9IIqp6mRgTRiYCDTTIbooAqqJAFQBVUTn+'
    'gKgCSSQRnF+IlEIqLJtUg6GEoTxx+cLgE0r509Nrhs683soP1tjBprTvWoWt8WHh1BJAAJJJBG5igrJMprIcE8W+Ar8cgAGAAAAQQABh'
    'AJqMhUBLUhUBLmKCskymshwTxb4CvxyAAYAAABBAAGEAmoyFQEtSFQEuYoKyTKayHBPFvgK/HIABgAAAEEAAYQCajIVAS1IVAS5igrJM'
    'prIcE8W+Ar8cgAGAAAAQQABhAJqMhUBLUhUBLmKCskymshwTxb4CvxyAAYAAABBAAGEAmoyFQEtSFQEuYoKyTKayHBPFvgK/HIABgAAA'
    'EEAAYQCajIVAS1IVAS5igrJMprIcE8W+Ar8cgAGAAAAQQABhAJqMhUBLUhUBLmKCskymshwTxb4CvxyAAYAAABBAAGEAmoyFQEtSFQEu'
    'YoKyTKayHBPFvgK/HIABgAAAEEAAYQCajIVAS1IVAS5igrJMprIcE8W+Ar8cgAGAAAAQQABhAJqMhUBLUhUBLmKCskymshwTxb4CvxyA'
    'AYAAABBAAGEAmoyFQEtSFQEuYoKyTKayHBPFvgK/HIABgAAAEEAAYQCajIVAS1IVAS5igrJMprIcE8W+Ar8cgAGAAAAQQABhAJqMhUBL'
    'UhUBLmKCskymshwTxb4CvxyAAYAAABBAAGEAmoyFQEtSFQEuYoKyTKayHBPFvgK/HIABgAAAEEAAYQCajIVAS1IVAS5igrJMprIcE8W+'
    'Ar8cgAGAAAAQQABhAJqMhUBLUhUBLmKCskymshwTxb4CvxyAAYAAABBAAGEAmoyFQEtSFQEuYoKyTKayHBPFvgK/HIABgAAAEEAAYQCa'
    'jIVAS1IVAS5igrJMprIcE8W+Ar8cgAGAAAAQQABhAJqMhUBLUhUBLmKCskymshwTxb4CvxyAAYAAABBAAGEAmoyFQEtSFQEuYoKyTKay'
    'HBPFvgK/HIABgAAAEEAAYQCajIVAS1IVAS5igrJMprIcE8W+Ar8cgAGAAAAQQABhAJqMhUBLUhUBLmKCskymshwTxb4CvxyAAYAAABBA'
    'AGEAmoyFQEtSFQEuYoKyTKayHBPFvgK/HIABgAAAEEAAYQCajIVAS1IVAS5igrJMprIcE8W+Ar8cgAGAAAAQQABhAJqMhUBLUhUBLmKC'
    'skymshwTxb4CvxyAAYAAABBAAGEAmoyFQEtSFQEuYoKyTKayHBPFvgK/HIABgAAAEEAAYQCajIVAS1IVAS5igrJMprIcE8W+Ar8cgAGA'
    'AAAQQABhAJqMhUBLUhUBLmKCskymshwTxb4CvxyAAYAAABBAAGEAmoyFQEtSFQEuYoKyTKayHBPFvgK/HIABgAAAEEAAYQCajIVAS1IV'
    'AS5igrJMprIcE8W+Ar8cgAGAAAAQQABhAJqMhUBLUhUBLmKCskymshwTxb4CvxyAAYAAABBAAGEAmoyFQEtSFQEuYoKyTKayHBPFvgK/'
    'HIABgAAAEEAAYQCajIVAS1IVAS5igrJMprIcE8W+Ar8cgAGAAAAQQABhAJqMhUBLUhUBLmKCskyms+Rj9dYAP3iEAYAAAAgAEEAAYZgT'
    'VNNUEDalBA8XckU4UJBvlr1O'
)))
BZIP2_BOMB_SIZE = 128 + (1536 << 20)    # what it decompresses to
BZIP2_BOMB_CRC = 2852193279


# ----------------------------------------------------------------------------------------------- crafting
def _npy(a):
    buf = pyio.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npy_header(shape, descr="<f4"):
    buf = pyio.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _member(name, data, method=0, crc=None, usize=None, payload=None):
    """One zip entry: ``data`` its decompressed bytes (for the CRC and sizes), ``payload`` what is written."""
    payload = data if payload is None else payload
    return {"name": name, "payload": payload, "method": method,
            "crc": zlib.crc32(data) if crc is None else crc,
            "usize": len(data) if usize is None else usize, "csize": len(payload)}


def _zip(members, extra_cd=()):
    """A zip archive written by hand. ``extra_cd``: directory-only entries (dicts with name, offset, usize,
    csize, method) pointing anywhere."""
    out, cd, n = bytearray(), bytearray(), 0
    for m in members:
        name = m["name"].encode()
        off = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, m["method"], 0, 0, m["crc"],
                           min(m["csize"], 0xFFFFFFFF), min(m["usize"], 0xFFFFFFFF), len(name), 0) + name
        out += m["payload"]
        cd += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, m["method"], 0, 0, m["crc"],
                          min(m.get("cd_csize", m["csize"]), 0xFFFFFFFF), min(m["usize"], 0xFFFFFFFF),
                          len(name), 0, 0, 0, 0, 0, off) + name
        n += 1
    for e in extra_cd:
        name = e["name"].encode()
        cd += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, e.get("method", 0), 0, 0, e.get("crc", 0),
                          e["csize"], e["usize"], len(name), 0, 0, 0, 0, 0, e["offset"]) + name
        n += 1
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(n, 0xFFFF), min(n, 0xFFFF), len(cd), len(out), 0)
    return bytes(out + cd + eocd)


def _members(path):
    """The entries of a (stored) .npz as (name, decompressed bytes), in order."""
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def _offset_of(members, name):
    """Where entry ``name``'s local header starts in ``_zip(members)``."""
    off = 0
    for m in members:
        if m["name"] == name:
            return off
        off += 30 + len(m["name"].encode()) + m["csize"]
    raise KeyError(name)


def _replaced(base, name, member):
    return [member if n == name else _member(n, d) for n, d in base]


def _deflate_bomb(name, mib=3072):
    """An entry whose honest .npy header announces mib MiB of float32 zeros, deflated: 1 KiB a MiB."""
    header = _npy_header((mib << 18,))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)      # decodes alone: full flush
    payload = head + block * mib + c.flush()
    crc = zlib.crc32(header)
    for _ in range(mib):                                                 # the honest CRC (0.5 s for 3 GiB)
        crc = zlib.crc32(bytes(1 << 20), crc)
    return {"name": name, "payload": payload, "method": zipfile.ZIP_DEFLATED, "crc": crc,
            "usize": len(header) + (mib << 20), "csize": len(payload)}


# Each attack: base entries -> archive bytes, and what the refusal must say. TARGET: an array every base has.
TARGET = "model/0.weight.npy"


def _container_attacks():
    def deflate_bomb(base):
        return _zip(_replaced(base, TARGET, _deflate_bomb(TARGET)))

    def bzip2_bomb(base):
        m = {"name": TARGET, "payload": BZIP2_BOMB, "method": zipfile.ZIP_BZIP2, "crc": BZIP2_BOMB_CRC,
             "usize": 128 + 8, "csize": len(BZIP2_BOMB)}              # the zip too says 2 floats
        return _zip(_replaced(base, TARGET, m))

    def lzma_entry(base):
        data = dict(base)[TARGET]
        return _zip(_replaced(base, TARGET, _member(TARGET, data, method=zipfile.ZIP_LZMA,
                                                    payload=lzma.compress(data, lzma.FORMAT_ALONE))))

    def zip_size_lie(base):                         # stored, but the directory declares 3 GB decompressed
        data = dict(base)[TARGET]
        return _zip(_replaced(base, TARGET, _member(TARGET, data, usize=3_000_000_000)))

    def beyond_the_end(base):                       # both sizes say 3 GB; the file is a few KB
        data = dict(base)[TARGET]
        m = _member(TARGET, data)
        m["cd_csize"] = m["usize"] = 3_000_000_000
        return _zip(_replaced(base, TARGET, m))

    def overlapping_entries(base):                  # 3000 directory entries over the same stored bytes
        members = [_member(n, d) for n, d in base]
        off = _offset_of(members, TARGET)
        size = len(dict(base)[TARGET])
        extra = [{"name": f"copy{i}.npy", "offset": off, "usize": size, "csize": size,
                  "crc": zlib.crc32(dict(base)[TARGET])} for i in range(3000)]
        return _zip(members, extra)

    def too_many_entries(base):                     # 20,000 entries with 200-character names
        members = [_member(n, d) for n, d in base]
        extra = [{"name": f"{i:06d}" + "n" * 190 + ".npy", "offset": 0, "usize": 0, "csize": 0}
                 for i in range(20_000)]
        return _zip(members, extra)

    def many_unexpected_arrays(base):               # 3000 real extra arrays with 120-character names
        tiny = _npy(np.zeros(1, np.float32))
        return _zip([_member(n, d) for n, d in base]
                    + [_member(f"{i:05d}" + "x" * 115 + ".npy", tiny) for i in range(3000)])

    def lying_npy_header(base):                     # the .npy header says (2,); the entry holds all the data
        data = dict(base)[TARGET]
        body = data[len(_npy_header((1,))):]                           # the original data (header: 128 bytes)
        return _zip(_replaced(base, TARGET, _member(TARGET, _npy_header((2,)) + body)))

    def negative_shape(base):
        return _zip(_replaced(base, TARGET, _member(TARGET, _npy_header((-2, -3)) + bytes(24))))

    def huge_header_claim(base):                    # 10^12 elements announced, 16 bytes there
        return _zip(_replaced(base, TARGET, _member(TARGET, _npy_header((10**12,)) + bytes(16))))

    def object_array(base):                         # a pickle behind an .npy header: never unpickled
        return _zip(_replaced(base, TARGET, _member(TARGET, _npy_header((1,), "|O") + b"\x80\x04N.")))

    return {
        "deflate_bomb": (deflate_bomb, "compressed with deflate"),
        "bzip2_bomb": (bzip2_bomb, "compressed with bzip2"),
        "lzma_entry": (lzma_entry, "compressed with lzma"),
        "zip_size_lie": (zip_size_lie, "declares 3000000000"),
        "beyond_the_end": (beyond_the_end, "beyond the end"),
        "overlapping_entries": (overlapping_entries, "overlapping entries"),
        "too_many_entries": (too_many_entries, r"announces 200\d\d entries; a tinynn file has at most 4096"),
        "many_unexpected_arrays": (many_unexpected_arrays, "unexpected .*3000 names.*and 2992 more"),
        "lying_npy_header": (lying_npy_header, r"announces shape \(2,\)"),
        "negative_shape": (negative_shape, "negative shape"),
        "huge_header_claim": (huge_header_claim, r"announces shape \(1000000000000,\)"),
        "object_array": (object_array, "pickled objects"),
    }


def _meta_of(base):
    return json.loads(str(np.load(pyio.BytesIO(dict(base)["__meta__.npy"]), allow_pickle=False)[()]))


def _with_meta(base, meta):
    return _zip(_replaced(base, "__meta__.npy", _member("__meta__.npy", _npy(np.array(json.dumps(meta))))))


def _with_array(base, name, a):
    data = _npy(a)
    entries = [_member(n, d) for n, d in base if n != name + ".npy"]
    return _zip(entries + [_member(name + ".npy", data)])


def _huge_string(base, loader):
    meta = _meta_of(base)
    big = "x" * 2_000_000
    if loader == "estimator":
        meta["params"]["activation"] = big
    elif loader == "model":
        meta["spec"]["activation"] = big
    elif loader == "checkpoint":
        meta["history"][0]["train_loss"] = big
    else:
        meta["config"]["activation"] = big
    return _with_meta(base, meta)


def _model_attacks(loader):
    """Attacks on the content, for the loader's own kind of file: arrays and metadata that do not fit the
    model (each must be refused before any kernel sees it)."""
    att = {"huge_string": (lambda base: _huge_string(base, loader), r"x{10}\.\.\.x{10}")}
    if loader in ("estimator", "model"):
        att["bigger_weight"] = (lambda base: _with_array(base, "model/0.weight", np.zeros((4, 5000), np.float32)),
                                r"has shape \(4, 5000\), expected")
        att["extra_array"] = (lambda base: _with_array(base, "evil", np.zeros(3, np.float32)), "unexpected")
    if loader == "estimator":
        att["bigger_optimizer_state"] = (
            lambda base: _with_array(base, "optim/exp_avg.0", np.zeros((4, 50000))), r"optim/exp_avg.0.*shape")
    if loader in ("checkpoint", "resume"):
        def avg(n, dtype=np.float32):
            return lambda base: _with_array(base, "callback0/avg", np.zeros(n, dtype))
        att["ema_average_too_long"] = (avg(4_000_000), r"callback0/avg' has shape \(4000000,\)")
        att["ema_average_too_short"] = (avg(7), r"callback0/avg' has shape \(7,\)")
        att["unknown_array"] = (lambda base: _with_array(base, "evil", np.zeros(3, np.float32)), "unexpected")
        att["bigger_optimizer_state"] = (
            lambda base: _with_array(base, "optim/exp_avg.0", np.zeros((4, 50000), np.float32)),
            r"optim/exp_avg.0.*shape")

        def edit(fn):
            def make(base):
                meta = _meta_of(base)
                fn(meta)
                return _with_meta(base, meta)
            return make
        att["unknown_metadata_entry"] = (edit(lambda m: m.update(evil=1)), "unexpected metadata entry evil")
        att["negative_average_count"] = (edit(lambda m: m["callback0"].update(count=-5)),
                                         r"callback0.count must be an integer in \[0")
        att["bad_generator_state"] = (edit(lambda m: m["rngs"]["shuffle"]["state"].update(state="x" * 10**6)),
                                      "rngs.shuffle")
    if loader == "checkpoint":
        def snap(base):
            return _with_array(base, "callback1/snap0/state0", np.zeros(9, np.float32))
        att["snapshot_statistic_extra"] = (snap, "callback1/snap0/state0")
    if loader == "resume":
        def config(**kw):
            def make(base):
                meta = _meta_of(base)
                for k, v in kw.items():
                    if v is KeyError:
                        del meta["config"][k]
                    else:
                        meta["config"][k] = v
                return _with_meta(base, meta)
            return make
        att["hidden_100000000"] = (config(hidden="100000000"), r"config.hidden must be a comma list")
        att["batch_size_0"] = (config(batch_size=0), r"config.batch_size must be an integer in \[1")
        att["missing_lr"] = (config(lr=KeyError), r"config.lr missing")
        att["val_size_negative"] = (config(val_size=-100), r"config.val_size must be an integer in \[0")
        att["train_size_negative"] = (config(train_size=-1), r"config.train_size must be an integer in \[1")
        att["unknown_config_key"] = (config(evil=1), "unexpected metadata entry config.evil")
        att["lr_as_string"] = (config(lr="0.1"), r"config.lr must be a number")
        att["hidden_other_than_the_arrays"] = (config(hidden="16"), r"has shape \(784, 8\), expected \(784, 16\)")
        att["ema_out_of_range"] = (config(ema=1.5), r"config.ema must be in \[0, 1\)")
        att["snapshots_and_swa"] = (config(snapshots=3, swa=True), "its stored configuration: --snapshots and --swa")
    return att


# ----------------------------------------------------------------------------------------------- the bases
def _fake_mnist(folder, n_train=120, n_test=20):
    """Four small IDX .gz files in MNIST's layout (random pixels): enough for a --resume run."""
    import gzip

    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        with gzip.open(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), "wb", compresslevel=1) as f:
            f.write(struct.pack(">4i", 0x803, n, 28, 28) + images.tobytes())
        with gzip.open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), "wb", compresslevel=1) as f:
            f.write(struct.pack(">2i", 0x801, n) + labels.tobytes())
    return folder


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """A valid file for each loader: {loader: path}, plus the fake MNIST folder for --resume."""
    import _hostile_worker
    import train_mnist
    from tinynn.training import build_mlp, save_model

    d = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4)).astype(np.float32)
    y = np.arange(40) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = tn.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y)
    clf.save(d / "estimator.npz")
    model = build_mlp([4, 6, 3], batch_norm=True, dropout=0.2, seed=0)
    save_model(d / "model.npz", model, {"sizes": [4, 6, 3], "activation": "relu", "dropout": 0.2,
                                        "batch_norm": True, "dtype": "float32"})
    trainer = _hostile_worker.checkpoint_trainer()
    trainer.train_epoch(X, y)
    trainer.save_checkpoint(d / "checkpoint.npz", {"note": "a Trainer's own checkpoint"})
    data = _fake_mnist(str(d / "mnist"))
    run = d / "run"
    assert train_mnist.main(["--data-dir", data, "--out", str(run), "--hidden", "8", "--epochs", "2",
                             "--stop-after", "1", "--ema", "0.9", "--val-size", "10", "--batch-size", "16",
                             "--quiet"]) == 0
    return {"estimator": str(d / "estimator.npz"), "model": str(d / "model.npz"),
            "checkpoint": str(d / "checkpoint.npz"), "resume": str(run / "checkpoint.npz"),
            "data_dir": data, "folder": str(d)}


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


def _run_worker(loader, files, bases, timeout=300):
    """Load ``files`` with ``loader`` in one subprocess under LIMIT_AS; {file: result}, and the return code."""
    spec = os.path.join(bases["folder"], f"spec-{loader}.json")
    with open(spec, "w") as f:
        json.dump({"files": files, "warm": bases[loader], "data_dir": bases["data_dir"],
                   "out": os.path.join(bases["folder"], f"out-{loader}")}, f)
    proc = subprocess.run([sys.executable, WORKER, loader, spec], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_limit_memory, cwd=ROOT)
    results, started = {}, None
    for line in proc.stdout.splitlines():
        if line.startswith("START "):
            started = line[6:]
        elif line.startswith("RESULT "):
            r = json.loads(line[7:])
            results[r["file"]] = r
    assert proc.returncode >= 0, f"{loader}: killed by signal {-proc.returncode} while loading {started}"
    assert proc.returncode == 0, f"{loader}: worker failed while loading {started}:\n{proc.stderr[-3000:]}"
    return results


def _judge(loader, path, says, r):
    """The problems with one result (empty: a clear, bounded refusal with bounded memory)."""
    import re

    problems = []
    size = os.path.getsize(path)
    if r["peak_rise"] > size + PEAK_SLACK:
        problems.append(f"peak memory rose by {r['peak_rise'] >> 20} MiB for a {size >> 10} KiB file")
    if loader == "resume":
        if r.get("error") is not None:
            return problems + [f"raised {r['error']}: {r.get('message', '')[:300]}"]
        lines = r["stderr"].strip().splitlines()
        if r["rc"] != 2 or len(lines) != 1 or not lines[0].startswith("error: "):
            return problems + [f"rc {r['rc']}, stderr {r['stderr'][:300]!r}"]
        message = lines[0]
    else:
        if r["error"] != "FileFormatError":
            return problems + [f"{r['error']}: {str(r.get('message'))[:300]} {r.get('where', '')[-600:]}"]
        message = r["message"]
    if path not in message:
        problems.append(f"the message does not name the file: {message[:200]}")
    if len(message) > MAX_MESSAGE + len(path):
        problems.append(f"a message of {len(message)} characters")
    if not re.search(says, message):
        problems.append(f"expected /{says}/ in: {message[:400]}")
    return problems


@pytest.mark.parametrize("loader", LOADERS)
def test_every_hostile_file_is_refused_clearly_with_bounded_memory(loader, bases, tmp_path):
    base = _members(bases[loader])
    attacks = {**_container_attacks(), **_model_attacks(loader)}
    files = {}
    for name, (make, says) in attacks.items():
        path = str(tmp_path / f"{name}.npz")
        with open(path, "wb") as f:
            f.write(make(base))
        files[path] = (name, says)
    results = _run_worker(loader, list(files), bases)
    problems = []
    for path, (name, says) in files.items():
        if path not in results:
            problems.append(f"{name}: no result")
            continue
        problems += [f"{name}: {p}" for p in _judge(loader, path, says, results[path])]
    assert not problems, f"{loader} loader:\n" + "\n".join(problems)


def test_the_bases_load(bases):
    """The files the attacks start from are good: each loader accepts its own."""
    results = _run_worker("estimator", [bases["estimator"]], bases)
    assert results[bases["estimator"]]["error"] is None


def test_the_bombs_are_what_they_claim():
    """The deflate bomb inflates to its declared 3 GiB and the bzip2 bomb to 1.5 GiB (read in bounded pieces
    here), so a reader that decompressed them would run out of memory under LIMIT_AS."""
    import bz2

    d = bz2.BZ2Decompressor()
    n, chunk = 0, BZIP2_BOMB
    while not d.eof:
        out = d.decompress(chunk, 1 << 26)
        chunk = b""
        n += len(out)
    assert n == BZIP2_BOMB_SIZE and n > LIMIT_AS - (800 << 20)
    m = _deflate_bomb(TARGET, mib=4)
    assert len(zlib.decompress(m["payload"], -15)) == m["usize"] == 128 + (4 << 20)
    assert _deflate_bomb(TARGET)["csize"] < 4 << 20                     # 3 GiB in about 3 MiB


# ----------------------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("attack", ["ema_average_too_long", "hidden_100000000", "deflate_bomb"])
def test_resume_refusal_is_one_error_line_exit_2(attack, bases, tmp_path):
    """scripts/train_mnist.py --resume on a hostile checkpoint, as a user runs it, under the memory limit: exit
    code 2, one line on stderr starting with ``error:`` and naming the file, no traceback."""
    make, says = {**_container_attacks(), **_model_attacks("resume")}[attack]
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(make(_members(bases["resume"])))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train_mnist.py"), "--resume", str(path),
                           "--data-dir", bases["data_dir"], "--out", str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, timeout=120, preexec_fn=_limit_memory)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    import re

    assert re.search(says, lines[0]) and len(lines[0]) < MAX_MESSAGE + len(str(path))


# ----------------------------------------------------------------------------------------------- in process
def test_messages_are_bounded():
    e = FileFormatError("f.npz", "x" * 10**6)
    assert len(e.problem) <= 600 and "more characters" in e.problem
    from tinynn._filecheck import _listed, _r

    assert len(_r("y" * 10**7)) <= 80 and len(_r(list(range(10**6)))) <= 80
    assert "and 99992 more" in _listed([f"n{i}" * 50 for i in range(10**5)])


def test_a_checkpoint_whose_average_does_not_fit_is_refused_before_any_kernel(bases):
    """The EMA state of another model (right header, wrong size) through Trainer.load_state directly, and the
    callbacks' own guard: no kernel is handed an average of another size."""
    import _hostile_worker

    arrays, meta = io.load_npz(bases["checkpoint"], kind="checkpoint")
    trainer = _hostile_worker.checkpoint_trainer()
    before = trainer.model.flat.data.copy()
    for bad in (np.zeros(trainer.model.flat.data.size + 1, np.float32),
                np.zeros(trainer.model.flat.data.size, np.float64)):
        with pytest.raises(FileFormatError, match="callback0/avg"):
            trainer.load_state(dict(arrays, **{"callback0/avg": bad}), meta)
        np.testing.assert_array_equal(trainer.model.flat.data, before)      # a refused file changes nothing
    ema = trainer.callbacks[0]
    ema.avg = np.zeros(10**6, np.float32)                                    # as a buggy loader would leave it
    with pytest.raises(ValueError, match="belongs to another model"):
        ema.on_step_end(trainer)


def test_the_reader_reads_only_what_tinynn_writes(tmp_path):
    """A deflated (np.savez_compressed) file is refused by name, before anything is decompressed."""
    path = tmp_path / "c.npz"
    np.savez_compressed(path, w=np.ones(3), __meta__=np.array(json.dumps(
        {"format": "tinynn", "format_version": io.FORMAT_VERSION, "kind": "thing"})))
    with pytest.raises(FileFormatError, match="compressed with deflate; tinynn files store their arrays"):
        io.load_npz(path)
