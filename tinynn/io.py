"""Safe model files: .npz archives that load with ``allow_pickle=False``, written atomically.

Layout: every array under its name, plus ``__meta__``, a 0-d string array holding JSON (the config, the
format name and version, scalars). Nothing is ever unpickled: a file holding object arrays is refused.

Loading validates before it builds anything. ``load_npz`` reads the container with ``tinynn._archive``, the one
bounded reader of tinynn files (stored entries only, capped entry count and sizes, the metadata first, every
array's header checked against the model the metadata describes before its data is read: memory bounded by the
file's size), and checks it: a zip of .npy arrays whose headers agree with their sizes, no object arrays, a JSON
object as metadata, tinynn's format, version and kind.
The loaders of each kind (``MLPClassifier.load``, ``training.load_model``, ``Trainer.load_state`` through
``unpack_state``) then check every metadata entry they read (present, of its type and range, names from
tinynn's tables) and every array (name, floating dtype, shape from the architecture the metadata describes,
finite values). Every refusal is a ``tinynn.errors.FileFormatError`` (a ValueError) naming the file and what is
wrong with it; a missing file is a FileNotFoundError.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping

import numpy as np

# the file checks live in _filecheck; the loaders' public names are reachable here too (io.MetaReader, ...)
from ._filecheck import (COUNTER_MAX, FLOAT_DTYPES, MetaReader, _check_checkpoint_meta,  # noqa: F401
                         _check_like, _checked_optimizer_state, _checked_rng_state, _dropout_rngs, _is_int,
                         _listed, _probe_schedule, check_array, check_checkpoint_headers,
                         check_optim_headers, check_text_header, check_trainer_state, model_file_plan,
                         check_model_arrays, mlp_state_layout)
from ._metareader import _json_type, _names
from ._typing import PathLike
from ._write import atomic_open
from .errors import FileFormatError, short

FORMAT_VERSION = 2                       # 2: one state layout (pack_state) for every file
META_KEY = "__meta__"


def save_npz(path: PathLike, arrays: Mapping[str, np.ndarray], meta: dict[str, Any], kind: str) -> PathLike:
    """Write ``arrays`` and JSON ``meta`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    A process killed mid-write leaves the previous file at ``path`` intact.
    """
    path = _fspath(path, "save_npz")
    meta = dict(meta, format="tinynn", kind=kind, format_version=FORMAT_VERSION)
    payload: dict[str, Any] = {}
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
    with atomic_open(path, "wb") as f:                  # temp file, fsync, rename (tinynn._write)
        np.savez(f, **payload)
    return path


class Meta(dict):
    """The metadata of a loaded file: a dict that remembers the file (``source``) for the messages of later
    checks (``unpack_state``)."""

    source = None


def load_npz(path, kind: str | None = None, plan=None, data=True):
    """Read a file written by ``save_npz``: returns (arrays, meta). Never unpickles.

    Raises FileNotFoundError for a missing file, and ``FileFormatError`` (a ValueError) naming the file when it
    is a directory, empty, not an .npz archive, truncated or corrupt, holds pickled objects or something other
    than arrays, has no metadata or metadata that is not a JSON object, is not a tinynn file, is of another
    kind or of another format version. A checkpoint's own entries (epoch, history, ...) are checked too.

    The file is read by ``tinynn._archive`` with bounded memory: the metadata first, then every array's header;
    ``plan(meta, headers)`` (headers: name -> ``_archive.Header`` with shape and dtype) may check the headers
    against the model the metadata describes before any array's data is read (a checkpoint's are checked
    against its own model arrays by default). ``data=False``: everything checked, no array's data read (the
    arrays come back empty)."""
    from . import _archive

    path = _fspath(path, "load_npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise FileFormatError(path, "is a directory, not a tinynn file")
    with open(path, "rb") as f:                        # OSErrors of the system (permissions) pass through
        head = f.read(8)
    _check_magic(path, head)
    with _archive.Archive(path) as ar:
        if META_KEY not in ar.entries:
            raise FileFormatError(path, f"not a tinynn file (an .npz archive without the {META_KEY} entry; it holds "
                                        f"{_names(ar.entries)})")
        parsed = _archive.parse_json(path, ar.read_meta(META_KEY))
        if not isinstance(parsed, dict):
            raise FileFormatError(path, f"corrupt metadata: a JSON {_json_type(parsed)}, expected a JSON object")
        if parsed.get("format") != "tinynn":
            raise FileFormatError(path, "not a tinynn file (its metadata has no format: \"tinynn\" entry)")
        version = parsed.get("format_version")
        if not _is_int(version) or version != FORMAT_VERSION:
            raise FileFormatError(path, f"tinynn format version {short(repr(version), 40)}, but this tinynn reads "
                                        f"version {FORMAT_VERSION}; re-save it with the tinynn that wrote it")
        if kind is not None and parsed.get("kind") != kind:
            raise FileFormatError(path, f"holds a {short(repr(parsed.get('kind')), 60)}, expected a {kind!r}")
        meta = Meta(parsed)
        meta.source = path
        if parsed.get("kind") == "checkpoint":
            _check_checkpoint_meta(path, meta)
        headers = ar.headers(skip=(META_KEY,))
        if parsed.get("kind") == "checkpoint":
            check_checkpoint_headers(path, meta, headers)
        if plan is not None:
            plan(meta, headers)
        arrays = {k: ar.read(k, h) for k, h in headers.items()} if data else {}
    return arrays, meta


def checkpoint_epoch(path):
    """The epoch a checkpoint at ``path`` holds (its metadata and headers are read and checked, no array data),
    or None where there is no readable checkpoint: what a run that stopped can say about where to resume."""
    try:
        return int(load_npz(path, kind="checkpoint", data=False)[1]["epoch"])
    except (OSError, ValueError):
        return None


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


def pack_state(model=None, optimizer=None, schedule=None, rngs=None):
    """(arrays, meta) holding the state of the parts given: the one format of estimator files, script
    checkpoints and model files.

    arrays: ``model/<layer>.<name>`` (parameters and running statistics), ``optim/<state>.<i>``;
    meta:   ``optim`` (step count, lr), ``schedule`` (its state), ``rngs`` (name -> generator state, plus
            ``model.dropout.<i>`` for each Dropout layer's own generator). Everything JSON or plain arrays."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"rngs": {}}
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
    todo: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []     # (assign, args) once everything passed
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
            assert saved_rngs is not None                          # read above: the model has Dropout layers
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
        assert saved_rngs is not None
        todo.append((set_rng_state, (rng, _checked_rng_state(saved_rngs, name, rng))))
    for fn, args in todo:
        fn(*args)


def rng_state(rng: np.random.Generator) -> dict:
    """JSON-able state of a Generator (ints of any size are fine in JSON)."""
    return dict(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict) -> np.random.Generator:
    rng.bit_generator.state = state
    return rng
