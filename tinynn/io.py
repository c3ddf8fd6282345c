"""Safe model files: .npz archives that load with ``allow_pickle=False``, written atomically.

Layout: every array under its name, plus ``__meta__``, a 0-d string array holding JSON (the config, the
format name and version, scalars). Nothing is ever unpickled: a file holding object arrays is refused.

Loading validates before it builds anything. ``load_npz`` checks the container: a zip of .npy arrays whose
headers agree with their sizes, no object arrays, a JSON object as metadata, tinynn's format, version and kind.
The loaders of each kind (``MLPClassifier.load``, ``training.load_model``, ``Trainer.load_state`` through
``unpack_state``) then check every metadata entry they read (present, of its type and range, names from
tinynn's tables) and every array (name, floating dtype, shape from the architecture the metadata describes,
finite values). Every refusal is a ``tinynn.errors.FileFormatError`` (a ValueError) naming the file and what is
wrong with it; a missing file is a FileNotFoundError.
"""
from __future__ import annotations

import copy
import json
import math
import os
import tempfile
import zipfile
import zlib

import numpy as np

from .errors import FileFormatError

FORMAT_VERSION = 2                       # 2: one state layout (pack_state) for every file
META_KEY = "__meta__"
FLOAT_DTYPES = ("float32", "float64")    # what the kernels run on, so what a file's weights may be

COUNTER_MAX = 2**53                      # step and sample counters: exact in a float64, fit in an int64

_REQUIRED = object()


def save_npz(path, arrays: dict, meta: dict, kind: str):
    """Write ``arrays`` and JSON ``meta`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    A process killed mid-write leaves the previous file at ``path`` intact.
    """
    path = _fspath(path, "save_npz")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    meta = dict(meta, format="tinynn", kind=kind, format_version=FORMAT_VERSION)
    payload = {}
    for k, v in arrays.items():
        if not isinstance(k, str) or not k or k == META_KEY:
            raise ValueError(f"save_npz: array names must be non-empty strings other than {META_KEY!r}, got {k!r}")
        a = np.asarray(v)
        if a.dtype.hasobject:
            raise TypeError(f"save_npz: array {k!r} has dtype object; only plain arrays are saved")
        payload[k] = a
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_npz: the metadata must be plain JSON (dicts, lists, str, numbers, bool, None): {e}") \
            from None
    payload[META_KEY] = np.array(text)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        try:  # make the rename itself durable
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class Meta(dict):
    """The metadata of a loaded file: a dict that remembers the file (``source``) for the messages of later
    checks (``unpack_state``)."""

    source = None


def load_npz(path, kind: str | None = None):
    """Read a file written by ``save_npz``: returns (arrays, meta). Never unpickles.

    Raises FileNotFoundError for a missing file, and ``FileFormatError`` (a ValueError) naming the file when it
    is a directory, empty, not an .npz archive, truncated or corrupt, holds pickled objects or something other
    than arrays, has no metadata or metadata that is not a JSON object, is not a tinynn file, is of another
    kind or of another format version. A checkpoint's own entries (epoch, history, ...) are checked too.
    """
    path = _fspath(path, "load_npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise FileFormatError(path, "is a directory, not a tinynn file")
    with open(path, "rb") as f:                        # OSErrors of the system (permissions) pass through
        head = f.read(8)
    _check_magic(path, head)
    arrays = _read_zip(path)
    if META_KEY not in arrays:
        raise FileFormatError(path, f"not a tinynn file (an .npz archive without the {META_KEY} entry; it holds "
                                    f"{_names(arrays)})")
    raw = arrays.pop(META_KEY)
    if raw.dtype.kind != "U" or raw.shape != ():
        raise FileFormatError(path, f"corrupt metadata: {META_KEY} is a {raw.dtype} array of shape {raw.shape}, "
                                    "expected a JSON string")
    try:
        parsed = json.loads(str(raw))
    except (ValueError, RecursionError) as e:
        raise FileFormatError(path, f"corrupt metadata: not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(parsed, dict):
        raise FileFormatError(path, f"corrupt metadata: a JSON {_json_type(parsed)}, expected a JSON object")
    if parsed.get("format") != "tinynn":
        raise FileFormatError(path, "not a tinynn file (its metadata has no format: \"tinynn\" entry)")
    version = parsed.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        raise FileFormatError(path, f"tinynn format version {version!r}, but this tinynn reads version "
                                    f"{FORMAT_VERSION}; re-save it with the tinynn that wrote it")
    if kind is not None and parsed.get("kind") != kind:
        raise FileFormatError(path, f"holds a {parsed.get('kind')!r}, expected a {kind!r}")
    meta = Meta(parsed)
    meta.source = path
    if parsed.get("kind") == "checkpoint":
        _check_checkpoint_meta(path, meta)
    return arrays, meta


# --------------------------------------------------------------------------------------------- the container
def _fspath(path, who):
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"{who}: expected a file path (str or os.PathLike), got {type(path).__name__}") from None


def _check_magic(path, head: bytes):
    if head[:2] == b"PK":
        return
    if not head:
        raise FileFormatError(path, "empty file (0 bytes): not an .npz archive, not a tinynn file")
    if head.startswith(b"\x93NUMPY"):
        what = "a single .npy array"
    elif head[:1] == b"\x80":
        what = "a Python pickle (refused: tinynn never unpickles)"
    else:
        what = f"something else: it starts with {head!r}"
    raise FileFormatError(path, f"not an .npz archive, so not a tinynn file ({what})")


def _read_zip(path) -> dict:
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename
                if not name.endswith(".npy"):
                    raise FileFormatError(path, f"entry {name!r} is not an .npy array (not a tinynn file)")
                key = name[:-4]
                if key in arrays:
                    raise FileFormatError(path, f"entry {name!r} appears twice (corrupt file)")
                arrays[key] = _read_member(path, zf, info)
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, OSError, KeyError, ValueError,
            NotImplementedError, RuntimeError) as e:                    # NotImplementedError: unknown compression
        raise FileFormatError(path, f"truncated, empty or corrupt file ({type(e).__name__}: {e})") from None
    return arrays


def _read_member(path, zf, info) -> np.ndarray:
    """One .npy entry, its header checked against its size before anything is allocated."""
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version} (tinynn files use 1.0 or 2.0)")
        except ValueError as e:
            raise FileFormatError(path, f"entry {info.filename!r}: not a readable .npy array ({e})") from None
        if dtype.hasobject:
            raise FileFormatError(path, f"refused: the file holds pickled objects (entry {info.filename!r} has "
                                        "dtype object), and tinynn never unpickles (a tinynn file has plain "
                                        "arrays only)")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        header = f.tell()
        if info.file_size != header + nbytes:
            raise FileFormatError(path, f"entry {info.filename!r}: its header announces shape {shape} of {dtype} "
                                        f"({nbytes} bytes) but it holds {info.file_size - header} bytes (corrupt "
                                        "file)")
        data = f.read(nbytes)
        if len(data) != nbytes or f.read(1):
            raise FileFormatError(path, f"entry {info.filename!r}: truncated (corrupt file)")
    a = np.frombuffer(data, dtype=dtype, count=count)
    a = a.reshape(shape[::-1]).T if fortran else a.reshape(shape)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return np.array(a, order="C")                           # writable, C-contiguous, owns its memory


def _names(d):
    names = sorted(d)
    return names if len(names) <= 12 else names[:12] + [f"... ({len(names) - 12} more)"]


def _json_type(v):
    if v is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(v), type(v).__name__)


# --------------------------------------------------------------------------------------------- metadata
def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class MetaReader:
    """Reads entries of a file's JSON metadata, refusing (FileFormatError naming the file and the entry) any
    that is missing, of the wrong type, out of range or not among the names allowed.

    ``MetaReader(path, meta).sub("fitted").int("n_iter_", lo=0)``"""

    def __init__(self, path, meta, where=""):
        self.path, self.meta, self.where = path, meta, where
        if not isinstance(meta, dict):
            self.fail(f"metadata entry {where.rstrip('.') or 'the metadata'} is a JSON {_json_type(meta)}, "
                      "expected a JSON object")

    def fail(self, problem):
        raise FileFormatError(self.path, problem)

    def name(self, key):
        return f"metadata entry {self.where}{key}"

    def has(self, key):
        return key in self.meta

    def raw(self, key, default=_REQUIRED):
        if key not in self.meta:
            if default is _REQUIRED:
                self.fail(f"{self.name(key)} is missing")
            return default
        return self.meta[key]

    def _typed(self, key, ok, what, null, default):
        v = self.raw(key, default)
        if v is None and (null or (default is None and key not in self.meta)):
            return None
        if not ok(v):
            self.fail(f"{self.name(key)} must be {what}{' or null' if null else ''}, got {v!r} "
                      f"(a JSON {_json_type(v)})")
        return v

    def sub(self, key, null=False):
        v = self._typed(key, lambda x: isinstance(x, dict), "a JSON object", null, _REQUIRED)
        return None if v is None else MetaReader(self.path, v, f"{self.where}{key}.")

    def int(self, key, lo=None, hi=None, null=False, default=_REQUIRED):
        v = self._typed(key, _is_int, "an integer", null, default)
        if v is not None and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            self.fail(f"{self.name(key)} must be an integer in [{lo if lo is not None else '-inf'}, "
                      f"{hi if hi is not None else 'inf'}], got {v!r}")
        return v

    def number(self, key, lo=None, hi=None, hi_open=False, finite=True, nan=False, null=False, default=_REQUIRED):
        v = self._typed(key, _is_number, "a number", null, default)
        if v is None or (nan and math.isnan(v)):
            return v
        if math.isnan(v) or (finite and not math.isfinite(v)):
            self.fail(f"{self.name(key)} must be a finite number, got {v!r}")
        if (lo is not None and v < lo) or (hi is not None and (v >= hi if hi_open else v > hi)):
            self.fail(f"{self.name(key)} must be in [{lo}, {hi}{')' if hi_open else ']'}, got {v!r}")
        return v

    def bool(self, key, null=False, default=_REQUIRED):
        return self._typed(key, lambda x: isinstance(x, bool), "true or false", null, default)

    def str(self, key, choices=None, null=False, default=_REQUIRED, table=""):
        v = self._typed(key, lambda x: isinstance(x, str), "a string", null, default)
        if v is not None and choices is not None and v not in choices:
            self.fail(f"{self.name(key)} is {v!r}, expected one of {sorted(choices)}{table}")
        return v

    def list(self, key, null=False, default=_REQUIRED):
        return self._typed(key, lambda x: isinstance(x, list), "a JSON array", null, default)

    def numbers(self, key, null=False, finite=True, nan=False):
        """A list of numbers (a curve)."""
        v = self.list(key, null=null)
        if v is None:
            return None
        for i, x in enumerate(v):
            if not _is_number(x) or (not nan and math.isnan(x)) or (finite and not math.isfinite(x)):
                self.fail(f"{self.name(key)}[{i}] must be a {'finite ' if finite else ''}number, got {x!r}")
        return v

    def only(self, allowed):
        """Refuse entries other than ``allowed`` (a file whose loader would set them as attributes)."""
        extra = sorted(set(self.meta) - set(allowed))
        if extra:
            self.fail(f"unexpected metadata entr{'y' if len(extra) == 1 else 'ies'} "
                      f"{', '.join(self.where + k for k in extra)}")


def _check_checkpoint_meta(path, meta):
    r = MetaReader(path, meta)
    r.int("epoch", lo=0, hi=COUNTER_MAX)
    r.int("samples_seen", lo=0, hi=COUNTER_MAX, default=0)
    r.sub("config")
    history = r.list("history")
    for i, h in enumerate(history):                    # one record per epoch: what train_epoch and record() wrote
        if not isinstance(h, dict):
            r.fail(f"metadata entry history[{i}] must be a JSON object (one epoch's record), got {h!r}")


# --------------------------------------------------------------------------------------------- arrays
def check_array(path, name, a, shape=None, dtype=None, *, floating=True, finite=True, nonnegative=False):
    """Refuse (FileFormatError) an array of the wrong dtype or shape, or with NaN/inf (or negative) values."""
    if floating:
        if a.dtype.kind != "f" or a.dtype.name not in FLOAT_DTYPES:
            raise FileFormatError(path, f"array {name!r} has dtype {a.dtype}, expected float32 or float64")
        if dtype is not None and a.dtype != np.dtype(dtype):
            raise FileFormatError(path, f"array {name!r} has dtype {a.dtype}, expected {np.dtype(dtype).name} (the "
                                        "dtype the metadata gives)")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise FileFormatError(path, f"array {name!r} has shape {tuple(a.shape)}, expected {tuple(shape)} (from the "
                                    "architecture the metadata describes)")
    if finite and a.dtype.kind == "f":
        bad = np.count_nonzero(~np.isfinite(a))
        if bad:
            raise FileFormatError(path, f"array {name!r} holds {bad} NaN or infinite value(s); the arrays of a "
                                        "tinynn file are finite")
    if nonnegative and a.size and np.min(a) < 0:
        raise FileFormatError(path, f"array {name!r} holds negative values; a variance is >= 0")
    return a


def mlp_state_layout(sizes, batch_norm=False, dropout=0.0, input_dropout=0.0):
    """{state name: shape} of the MLPs tinynn builds (``training.build_mlp`` and the estimators):
    [Dropout] then, per hidden layer, Linear → [BatchNorm1d] → activation → [Dropout], and a Linear output
    layer. Names as ``Sequential.state_dict`` gives them ("<layer index>.<name>"); computed from the
    metadata alone, so a file's arrays are checked before anything is built."""
    shapes, i = {}, 0
    if input_dropout:
        i += 1
    for k in range(len(sizes) - 1):
        shapes[f"{i}.weight"] = (sizes[k], sizes[k + 1])
        shapes[f"{i}.bias"] = (sizes[k + 1],)
        i += 1
        if k == len(sizes) - 2:
            break
        if batch_norm:
            for s in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{i}.{s}"] = (sizes[k + 1],)
            i += 1
        i += 1                                                            # the activation
        if dropout:
            i += 1
    return shapes


def check_model_arrays(path, arrays, layout, dtype, prefix="model/"):
    """The ``prefix`` arrays of a file are exactly ``layout`` (name -> shape), in ``dtype``, finite."""
    got = {k[len(prefix):] for k in arrays if k.startswith(prefix)}
    missing, extra = sorted(set(layout) - got), sorted(got - set(layout))
    if missing or extra:
        raise FileFormatError(path, "the model's arrays do not match the architecture the metadata describes: "
                                    + "; ".join(p for p in (f"missing {[prefix + m for m in missing]}" if missing
                                                            else "", f"unexpected {[prefix + e for e in extra]}"
                                                            if extra else "") if p))
    for k, shape in layout.items():
        check_array(path, prefix + k, arrays[prefix + k], shape, dtype, nonnegative=k.endswith("running_var"))


# --------------------------------------------------------------------------------------------- state
def pack_state(model=None, optimizer=None, schedule=None, rngs=None):
    """(arrays, meta) holding the state of the parts given: the one format of estimator files, script
    checkpoints and model files.

    arrays: ``model/<layer>.<name>`` (parameters and running statistics), ``optim/<state>.<i>``;
    meta:   ``optim`` (step count, lr), ``schedule`` (its state), ``rngs`` (name -> generator state, plus
            ``model.dropout.<i>`` for each Dropout layer's own generator). Everything JSON or plain arrays."""
    arrays, meta = {}, {"rngs": {}}
    if model is not None:
        arrays.update({f"model/{k}": v for k, v in model.state_dict().items()})
        for i, layer in enumerate(model.layers):
            if getattr(layer, "rng", None) is not None:
                meta["rngs"][f"model.{type(layer).__name__.lower()}.{i}"] = rng_state(layer.rng)
    if optimizer is not None:
        osd = optimizer.state_dict()
        arrays.update({f"optim/{k}": v for k, v in osd.items() if isinstance(v, np.ndarray)})
        meta["optim"] = {k: v for k, v in osd.items() if not isinstance(v, np.ndarray)}
    if schedule is not None:
        meta["schedule"] = schedule.state_dict()
    for name, rng in (rngs or {}).items():
        meta["rngs"][name] = rng_state(rng)
    return arrays, meta


def unpack_state(arrays, meta, model=None, optimizer=None, schedule=None, rngs=None, path=None):
    """Restore into the parts given what ``pack_state`` wrote (the inverse).

    Everything is checked against the parts before anything is assigned (a refused file changes nothing):
    every array present, floating, finite, of the part's shape and dtype, none unexpected; every generator
    state valid for its generator; the optimizer's and schedule's scalars present and of their types.
    Refusals are FileFormatError naming ``path`` (default: the file ``load_npz`` read ``meta`` from)."""
    path = path if path is not None else (getattr(meta, "source", None) or "tinynn state")
    r = MetaReader(path, meta)
    saved_rngs = r.sub("rngs") if (rngs or _dropout_rngs(model)) else None
    todo = []                                                      # (assign, args) once everything passed
    if model is not None:
        expected = model.state_dict()
        sd = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
        check_model_arrays(path, arrays, {k: v.shape for k, v in expected.items()}, None)
        for k, v in expected.items():
            if sd[k].dtype != v.dtype:
                raise FileFormatError(path, f"array 'model/{k}' has dtype {sd[k].dtype}, expected {v.dtype} "
                                            "(the model's)")
        todo.append((model.load_state_dict, (sd,)))
        for name, layer in _dropout_rngs(model):
            todo.append((set_rng_state, (layer.rng, _checked_rng_state(saved_rngs, name, layer.rng))))
    if optimizer is not None:
        osd = _checked_optimizer_state(path, r, arrays, optimizer)
        todo.append((optimizer.load_state_dict, (osd,)))
    if schedule is not None:
        s = r.sub("schedule")
        _check_like(s, schedule.state_dict())
        _probe_schedule(s, schedule)
        todo.append((schedule.load_state_dict, (dict(s.meta),)))
    for name, rng in (rngs or {}).items():
        todo.append((set_rng_state, (rng, _checked_rng_state(saved_rngs, name, rng))))
    for fn, args in todo:
        fn(*args)


def _probe_schedule(r: MetaReader, schedule):
    """Load the saved state into a copy of the schedule (sharing nothing but the optimizer) and ask it for
    the learning rate now and one step on: a state that cannot give a finite rate >= 0 is refused."""
    probe = copy.deepcopy(schedule, memo={id(schedule.optimizer): schedule.optimizer})
    lr_at = getattr(probe, "lr_at", None)
    try:
        probe.load_state_dict(dict(r.meta))
        t = probe.last_epoch
        rates = [lr_at(t), lr_at(t + 1)] if lr_at is not None else []
    except (ArithmeticError, ValueError, TypeError, AttributeError, KeyError) as e:
        r.fail(f"metadata entry schedule: the saved state of the {type(schedule).__name__} schedule gives no "
               f"learning rate ({type(e).__name__}: {e})")
    for v in rates:
        if not (_is_number(v) and math.isfinite(v) and v >= 0):
            r.fail(f"metadata entry schedule: the saved state of the {type(schedule).__name__} schedule gives the "
                   f"learning rate {v!r}; expected a finite number >= 0")


def _dropout_rngs(model):
    if model is None:
        return []
    return [(f"model.{type(layer).__name__.lower()}.{i}", layer) for i, layer in enumerate(model.layers)
            if getattr(layer, "rng", None) is not None]


def _checked_rng_state(r: MetaReader, name, rng):
    state = r.sub(name).meta
    probe = type(rng.bit_generator)()
    try:
        probe.state = state
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as e:
        r.fail(f"{r.name(name)} is not a valid {type(rng.bit_generator).__name__} generator state "
               f"({type(e).__name__}: {e})")
    return state


def _checked_optimizer_state(path, r, arrays, optimizer):
    expected = optimizer.state_dict()
    o = r.sub("optim")
    saved = {k[6:] for k in arrays if k.startswith("optim/")}
    want = {k for k, v in expected.items() if isinstance(v, np.ndarray)}
    missing, extra = sorted(want - saved), sorted(saved - want)
    if missing or extra:
        raise FileFormatError(path, f"the optimizer state does not match the {type(optimizer).__name__} optimizer: "
                                    + "; ".join(p for p in (f"missing {['optim/' + m for m in missing]}" if missing
                                                            else "", f"unexpected {['optim/' + e for e in extra]}"
                                                            if extra else "") if p))
    osd = {}
    for k in want:
        a = expected[k]
        osd[k] = check_array(path, f"optim/{k}", arrays[f"optim/{k}"], a.shape, a.dtype)
    scalars = {k: v for k, v in expected.items() if not isinstance(v, np.ndarray)}
    o.only(scalars)
    for k, v in scalars.items():
        if k == "t":
            osd[k] = o.int(k, lo=0, hi=COUNTER_MAX)
        elif k == "lr":
            osd[k] = o.number(k, lo=0)
        else:
            _check_like(o, {k: v}, partial=True)
            osd[k] = o.meta[k]
    return osd


def _check_like(r: MetaReader, expected: dict, partial=False):
    """``r``'s entries are exactly ``expected``'s keys (``partial``: at least), each value of the same JSON kind
    (recursively); a value that is None in ``expected`` (not set yet) may be any scalar. NaN is refused."""
    if not partial:
        r.only(expected)
    for k, e in expected.items():
        v = r.raw(k)
        if isinstance(e, dict):
            _check_like(r.sub(k), e)
        elif isinstance(e, bool):
            r.bool(k)
        elif _is_number(e) or isinstance(e, np.number):
            if isinstance(e, (int, np.integer)):
                r.int(k)
            else:
                r.number(k, finite=False)
        elif isinstance(e, str):
            r.str(k)
        elif isinstance(e, (list, tuple)):
            lst = r.list(k)
            if len(lst) != len(e):
                r.fail(f"{r.name(k)} has {len(lst)} items, expected {len(e)}")
            _check_like(MetaReader(r.path, dict(enumerate(lst)), f"{r.where}{k}."), dict(enumerate(e)))
        elif e is None:
            if not (v is None or isinstance(v, (str, bool)) or (_is_number(v) and not math.isnan(v))):
                r.fail(f"{r.name(k)} must be a number, a string, true/false or null, got {v!r}")
        else:                                                   # not JSON in the live object: compare as is
            if type(v) is not type(e):
                r.fail(f"{r.name(k)} has the wrong type: {v!r}")


def rng_state(rng: np.random.Generator) -> dict:
    """JSON-able state of a Generator (ints of any size are fine in JSON)."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict):
    rng.bit_generator.state = state
    return rng
