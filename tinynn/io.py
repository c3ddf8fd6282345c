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

FORMAT_VERSION = 1
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


def rng_state(rng: np.random.Generator) -> dict:
    """JSON-able state of a Generator (ints of any size are fine in JSON)."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict):
    rng.bit_generator.state = state
    return rng
