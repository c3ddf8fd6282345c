"""Safe model files: .npz archives that load with ``allow_pickle=False``, written atomically.

Layout: every array under its name, plus ``__meta__``, a 0-d string array holding JSON (the config, the
format name and version, scalars). Nothing is ever unpickled: a file holding object arrays is refused.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

FORMAT_VERSION = 2                       # 2: one state layout (pack_state) for every file
META_KEY = "__meta__"


def save_npz(path, arrays: dict, meta: dict, kind: str):
    """Write ``arrays`` and JSON ``meta`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    A process killed mid-write leaves the previous file at ``path`` intact.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    meta = dict(meta, format="tinynn", kind=kind, format_version=FORMAT_VERSION)
    payload = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.dtype.kind == "O":
            raise TypeError(f"save_npz: array {k!r} has dtype object; only plain arrays are saved")
        payload[k] = a
    payload[META_KEY] = np.array(json.dumps(meta))
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


def load_npz(path, kind: str | None = None):
    """Read a file written by ``save_npz``: returns (arrays, meta). Never unpickles.

    Raises ValueError naming the file when it is missing a part, truncated, empty, corrupt, holds pickled
    objects, is not a tinynn file, is of another kind, or of another format version.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("not an .npz archive")
            arrays = {}
            for k in z.files:
                arrays[k] = z[k]
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise ValueError(f"{path}: refused: the file holds pickled objects, and tinynn never unpickles "
                             "(a tinynn file has plain arrays only)") from None
        raise ValueError(f"{path}: not a readable tinynn file ({e})") from None
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, KeyError) as e:
        raise ValueError(f"{path}: truncated, empty or corrupt file ({type(e).__name__}: {e})") from None
    if META_KEY not in arrays:
        raise ValueError(f"{path}: not a tinynn file (no {META_KEY} entry)")
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: corrupt metadata ({e})") from None
    if meta.get("format") != "tinynn":
        raise ValueError(f"{path}: not a tinynn file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: tinynn format version {meta.get('format_version')!r}, but this tinynn reads "
                         f"version {FORMAT_VERSION}; re-save it with the tinynn that wrote it")
    if kind is not None and meta.get("kind") != kind:
        raise ValueError(f"{path}: holds a {meta.get('kind')!r}, expected a {kind!r}")
    return arrays, meta


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


def unpack_state(arrays, meta, model=None, optimizer=None, schedule=None, rngs=None):
    """Restore into the parts given what ``pack_state`` wrote (the inverse; missing parts raise ValueError)."""
    saved_rngs = meta.get("rngs", {})

    def need(key, where):
        if key not in where:
            raise ValueError(f"tinynn state: no {key!r} entry (the file holds {sorted(where)})")
        return where[key]

    if model is not None:
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        for i, layer in enumerate(model.layers):
            if getattr(layer, "rng", None) is not None:
                set_rng_state(layer.rng, need(f"model.{type(layer).__name__.lower()}.{i}", saved_rngs))
    if optimizer is not None:
        osd = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
        osd.update(need("optim", meta))
        optimizer.load_state_dict(osd)
    if schedule is not None:
        schedule.load_state_dict(need("schedule", meta))
    for name, rng in (rngs or {}).items():
        set_rng_state(rng, need(name, saved_rngs))


def rng_state(rng: np.random.Generator) -> dict:
    """JSON-able state of a Generator (ints of any size are fine in JSON)."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict):
    rng.bit_generator.state = state
    return rng
