"""``MetaReader``: typed, bounded reads of a tinynn file's JSON metadata (every entry present, of its type and
range, quoted in bounded length when refused), and the small helpers of every file check (tinynn._filecheck)."""
from __future__ import annotations

import math
import reprlib

from .errors import FileFormatError, short

COUNTER_MAX = 2**53                      # step and sample counters: exact in a float64, fit in an int64

_REQUIRED = object()


def _names(d, first=8):
    """A bounded list of names for a message: the first ``first`` (each cut to 40 characters), then a count."""
    names = [short(n, 40) for n in sorted(d)[:first]]
    return names if len(d) <= first else names + [f"... ({len(d) - first} more)"]


def _listed(names, prefix="", first=8):
    """A bounded list of names for a message: ['a', 'b'] when few, else the first ``first`` and a count
    ("7 names: ['a', ..., 'e'] and 2 more"); each name cut to 48 characters."""
    names = sorted(names)
    shown = [short(prefix + n, 48) for n in names[:first]]
    if len(names) <= first:
        return str(shown)
    return f"{len(names)} names: {shown} and {len(names) - first} more"


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 60, 60, 6, 6, 3
_REPR.maxlong = 40


def _r(v, limit=80):
    """repr of a value from a file, bounded (long strings, lists, dicts and ints are cut without being
    repr'd whole) and cut to ``limit`` characters."""
    return short(_REPR.repr(v), limit)


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
        return f"metadata entry {short(self.where, 80)}{short(key, 60)}"

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
            self.fail(f"{self.name(key)} must be {what}{' or null' if null else ''}, got {_r(v)} "
                      f"(a JSON {_json_type(v)})")
        return v

    def sub(self, key, null=False):
        v = self._typed(key, lambda x: isinstance(x, dict), "a JSON object", null, _REQUIRED)
        return None if v is None else MetaReader(self.path, v, f"{self.where}{key}.")

    def int(self, key, lo=None, hi=None, null=False, default=_REQUIRED):
        v = self._typed(key, _is_int, "an integer", null, default)
        if v is not None and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            self.fail(f"{self.name(key)} must be an integer in [{lo if lo is not None else '-inf'}, "
                      f"{hi if hi is not None else 'inf'}], got {_r(v)}")
        return v

    def number(self, key, lo=None, hi=None, hi_open=False, finite=True, nan=False, null=False, default=_REQUIRED):
        v = self._typed(key, _is_number, "a number", null, default)
        if v is None or (nan and math.isnan(v)):
            return v
        if math.isnan(v) or (finite and not math.isfinite(v)):
            self.fail(f"{self.name(key)} must be a finite number, got {_r(v)}")
        if (lo is not None and v < lo) or (hi is not None and (v >= hi if hi_open else v > hi)):
            self.fail(f"{self.name(key)} must be in [{lo}, {hi}{')' if hi_open else ']'}, got {_r(v)}")
        return v

    def bool(self, key, null=False, default=_REQUIRED):
        return self._typed(key, lambda x: isinstance(x, bool), "true or false", null, default)

    def str(self, key, choices=None, null=False, default=_REQUIRED, table=""):
        v = self._typed(key, lambda x: isinstance(x, str), "a string", null, default)
        if v is not None and choices is not None and v not in choices:
            self.fail(f"{self.name(key)} is {_r(v)}, expected one of {_names(choices, 24)}{table}")
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
                self.fail(f"{self.name(key)}[{i}] must be a {'finite ' if finite else ''}number, got {_r(x)}")
        return v

    def only(self, allowed):
        """Refuse entries other than ``allowed`` (a file whose loader would set them as attributes)."""
        extra = sorted(str(k) for k in set(self.meta) - set(allowed))
        if len(extra) == 1:
            self.fail(f"unexpected metadata entry {short(self.where + extra[0], 80)}")
        if extra:
            self.fail(f"unexpected metadata entries: {_listed(extra, self.where)}")
