"""The one writer of tinynn's files: every checkpoint, model file, estimator file, metrics file, curve and
experiment output is written through :func:`atomic_open`.

A file is written to a temporary file in its own folder, flushed and fsynced, and renamed over ``path``
(``os.replace``: atomic on POSIX and Windows), then the folder is fsynced so that the rename survives a crash.
Whatever goes wrong — no space (ENOSPC), a file-size limit (EFBIG), a read-only or vanished folder, an
interrupt — the temporary file is removed and the file ``path`` held before is untouched; an operating-system
failure becomes a :class:`tinynn.errors.WriteError` naming the file and the reason.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile

from .errors import WriteError


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """``with atomic_open(path) as f:`` write to ``f``; ``path`` is replaced when the block ends without an error
    (module docstring). ``mode`` is "wb" or "w" (UTF-8 text)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    except OSError as e:
        raise WriteError(path, e) from None
    try:
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise WriteError(path, e) from None
        raise
    _fsync_folder(folder)


def write_json(path, obj, indent=1):
    """``obj`` as JSON at ``path``, atomically."""
    text = json.dumps(obj, indent=indent)
    with atomic_open(path, "w") as f:
        f.write(text)


def save_figure(fig, path, **kw):
    """A matplotlib figure at ``path`` (its format from the extension), atomically."""
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=fmt, **kw)
