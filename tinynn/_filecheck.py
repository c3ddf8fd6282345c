"""What a tinynn file's metadata and arrays must be: the checks ``tinynn.io``'s loaders run before building
anything (entries present, of their type and range; arrays of the expected names, dtypes, shapes and finite
values). Every refusal is a ``FileFormatError`` naming the file."""
from __future__ import annotations

import copy
import math

import numpy as np

from .errors import FileFormatError

FLOAT_DTYPES = ("float32", "float64")    # what the kernels run on, so what a file's weights may be

COUNTER_MAX = 2**53                      # step and sample counters: exact in a float64, fit in an int64

_REQUIRED = object()


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
