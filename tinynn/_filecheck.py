"""What a tinynn file's metadata and arrays must be: the checks ``tinynn.io``'s loaders run before building
anything (entries present, of their type and range; arrays of the expected names, dtypes, shapes and finite
values). Every refusal is a ``FileFormatError`` naming the file."""
from __future__ import annotations

import copy
import math
import re

import numpy as np

from ._metareader import COUNTER_MAX, MetaReader, _is_int, _is_number, _listed, _r  # noqa: F401
from .errors import FileFormatError, short

FLOAT_DTYPES = ("float32", "float64")    # what the kernels run on, so what a file's weights may be


def _check_checkpoint_meta(path, meta):
    r = MetaReader(path, meta)
    r.int("epoch", lo=0, hi=COUNTER_MAX)
    r.int("samples_seen", lo=0, hi=COUNTER_MAX, default=0)
    r.sub("config")
    history = r.list("history")
    for i, h in enumerate(history):                    # one record per epoch: what train_epoch and record() wrote
        if not isinstance(h, dict):
            r.fail(f"metadata entry history[{i}] must be a JSON object (one epoch's record), got {_r(h)}")
        for k, v in h.items():                         # measurements: numbers (null where not measured)
            if len(k) > 64 or not (v is None or isinstance(v, bool) or _is_number(v)):
                r.fail(f"metadata entry history[{i}].{short(k, 64)} must be a number, true/false or null (a "
                       f"measurement), got {_r(v)}")


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
    if not isinstance(a, np.ndarray):                  # a header (tinynn._archive.Header): no data yet
        return a
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
    shapes: dict[str, tuple[int, ...]] = {}
    i = 0
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
                                    + "; ".join(p for p in (f"missing {_listed(missing, prefix)}" if missing
                                                            else "", f"unexpected {_listed(extra, prefix)}"
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
                   f"learning rate {_r(v)}; expected a finite number >= 0")


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
                                    + "; ".join(p for p in (f"missing {_listed(missing, 'optim/')}" if missing
                                                            else "", f"unexpected {_listed(extra, 'optim/')}"
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
                r.fail(f"{r.name(k)} must be a number, a string, true/false or null, got {_r(v)}")
        else:                                                   # not JSON in the live object: compare as is
            if type(v) is not type(e):
                r.fail(f"{r.name(k)} has the wrong type: {_r(v)}")


# --------------------------------------------------------------------------------------------- checkpoints
_CKPT_META = ("format", "kind", "format_version", "rngs", "optim", "schedule", "epoch", "history", "samples_seen",
              "config")
_CKPT_NAME = re.compile(r"model/(\d{1,6})\.([A-Za-z_][A-Za-z0-9_]{0,63})|optim/([A-Za-z_][A-Za-z0-9_]{0,63})\."
                        r"(\d{1,6})|callback(\d{1,3})/(avg|snap(\d{1,6})/params|snap(\d{1,6})/state(\d{1,6}))")
MAX_CALLBACKS = 64


def _optimizer_state_names():
    from .optim import OPTIMIZERS

    names: set[str] = set()
    for cls in OPTIMIZERS.values():
        names.update(getattr(cls, "state_names", ()))
    return names


def _model_parts(items):
    """(parameter shapes, statistic shapes) of a model's state (name -> shape), in layer order; statistics are
    the ``running_*`` entries."""
    def order(kv):
        layer, _, attr = kv[0].partition(".")
        return int(layer) if layer.isdigit() else -1, attr
    params: list[tuple[int, ...]] = []
    stats: list[tuple[int, ...]] = []
    for name, shape in sorted(items, key=order):
        (stats if name.partition(".")[2].startswith("running_") else params).append(tuple(shape))
    return params, stats


def check_checkpoint_headers(path, meta, headers):
    """A checkpoint's arrays, from their headers alone (before any data is read), against the model its own
    ``model/`` arrays describe: every name one that ``Trainer.state`` writes; float32/float64 everywhere; the
    optimizer's arrays of a parameter's shape (at most 3 per parameter); an average (``callback<i>/avg``) and a
    snapshot's parameters of the model's parameter count, a snapshot's statistics of a statistic's shape. So a
    checkpoint of a small model cannot make tinynn read large arrays."""
    bad = [k for k in headers if not _CKPT_NAME.fullmatch(k)]
    if bad:
        raise FileFormatError(path, f"unexpected array(s) in a checkpoint: {_listed(bad)} (a checkpoint holds "
                                    "model/, optim/ and callback<i>/ arrays only)")
    for k, h in headers.items():
        check_array(path, k, h)                                      # float32/float64
    model = {k[6:]: h.shape for k, h in headers.items() if k.startswith("model/")}
    params, stats = _model_parts(model.items())
    n_params = sum(math.prod(s) for s in params)
    states = _optimizer_state_names()
    shapes = set(params)
    n_optim = 0
    for k, h in headers.items():
        m = _CKPT_NAME.fullmatch(k)
        assert m is not None                                         # every name matched above
        want: tuple[int, ...] | None
        if k.startswith("optim/"):
            n_optim += 1
            if m.group(3) not in states:
                raise FileFormatError(path, f"array {k!r}: {short(m.group(3), 64)!r} is the state of no tinynn "
                                            f"optimizer (expected one of {sorted(states)})")
            if int(m.group(4)) >= len(params) or h.shape not in shapes:
                raise FileFormatError(path, f"array {k!r} has shape {h.shape}, which is no parameter's shape of the "
                                            f"checkpoint's model ({len(params)} parameters)")
        elif k.startswith("callback"):
            if int(m.group(5)) >= MAX_CALLBACKS:
                raise FileFormatError(path, f"array {k!r}: a checkpoint holds at most {MAX_CALLBACKS} callbacks")
            if m.group(6) == "avg" or m.group(6).endswith("/params"):
                want = (n_params,)
            else:
                j = int(m.group(9))
                want = stats[j] if j < len(stats) else None
            if h.shape != want:
                expected = want if want is not None else f"none (the model has {len(stats)} statistics)"
                raise FileFormatError(path, f"array {k!r} has shape {h.shape}, expected {expected} (from the "
                                            f"checkpoint's model arrays: {n_params} parameters)")
    if n_optim > 3 * len(params):
        raise FileFormatError(path, f"the checkpoint holds {n_optim} optimizer arrays for {len(params)} parameters; "
                                    "a tinynn optimizer keeps at most 3 per parameter")


def check_trainer_state(path, arrays, meta, trainer):
    """A checkpoint against the Trainer that loads it, before anything is assigned: no metadata entries or
    arrays other than ``Trainer.state`` writes for this trainer's parts; every callback's state (averages,
    snapshots) checked by the callback against the model (``check_state``). The model, optimizer, schedule and
    generators are checked by ``io.unpack_state``."""
    r = MetaReader(path, meta)
    cbs = {i: c for i, c in enumerate(trainer.callbacks) if hasattr(c, "state")}
    r.only(_CKPT_META + tuple(f"callback{i}" for i in cbs))
    prefixes = ("model/", "optim/") + tuple(f"callback{i}/" for i in cbs)
    bad = [k for k in arrays if not k.startswith(prefixes)]
    if bad:
        raise FileFormatError(path, f"unexpected array(s) in the checkpoint for this run: {_listed(bad)} (its "
                                    f"callbacks: {[type(c).__name__ for c in cbs.values()] or 'none'})")
    for i, c in cbs.items():
        sub = r.sub(f"callback{i}")
        p = f"callback{i}/"
        check = getattr(c, "check_state", None)
        if check is not None:
            check(path, {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}, sub, trainer.model, p)


# --------------------------------------------------------------------------------------------- plans
# A plan checks a file's array headers (tinynn._archive.Header: name, dtype, shape; no data yet) against the
# model its metadata describes, before ``load_npz`` reads any array's data: limits from the file's own
# description of the model. The loaders check the arrays again, with their values, after reading.
MAX_TEXT = 4096                      # characters of one class name or feature name


def check_optim_headers(path, headers, params, prefix="optim/"):
    """Optimizer arrays ``optim/<state>.<i>``: a state of a tinynn optimizer, i < the number of parameters, the
    shape of parameter i (``params``: shapes in the model's parameter order), at most 3 per parameter."""
    states = _optimizer_state_names()
    names = [k for k in headers if k.startswith(prefix)]
    if len(names) > 3 * len(params):
        raise FileFormatError(path, f"the file holds {len(names)} optimizer arrays for {len(params)} parameters; a "
                                    "tinynn optimizer keeps at most 3 per parameter")
    for k in names:
        state, _, i = k[len(prefix):].rpartition(".")
        if state not in states or not i.isdigit() or int(i) >= len(params):
            raise FileFormatError(path, f"unexpected optimizer array {short(k, 60)!r} (expected <state>.<i>, a "
                                        f"state of a tinynn optimizer and i < {len(params)} parameters)")
        if headers[k].shape != params[int(i)]:
            raise FileFormatError(path, f"array {k!r} has shape {headers[k].shape}, expected {params[int(i)]} (the "
                                        f"shape of parameter {i})")


def _param_shapes(layout):
    """Parameter shapes in the model's parameter order (layer order; weight, then bias)."""
    return _model_parts(layout.items())[0]


def read_model_spec(r: MetaReader):
    """A model file's ``spec``: (sizes, activation, dropout, batch_norm, dtype, input_dropout), checked."""
    from .layers import ACTIVATIONS

    sizes = r.list("sizes")
    if len(sizes) < 2 or not all(_is_int(v) and v >= 1 for v in sizes):
        r.fail(f"{r.name('sizes')} must list at least 2 positive integers (input, ..., output), got {_r(sizes)}")
    activation = r.str("activation", ACTIVATIONS, table=" (tinynn.ACTIVATIONS)")
    dropout = r.number("dropout", lo=0, hi=1, hi_open=True)
    batch_norm = r.bool("batch_norm")
    dtype = np.dtype(r.str("dtype", FLOAT_DTYPES))
    input_dropout = r.number("input_dropout", lo=0, hi=1, hi_open=True, default=0.0)
    return sizes, activation, dropout, batch_norm, dtype, input_dropout


def model_file_plan(meta, headers):
    """A model file (``training.save_model``): exactly the arrays of the architecture its ``spec`` describes."""
    path = meta.source
    sizes, _, dropout, batch_norm, dtype, input_dropout = read_model_spec(MetaReader(path, meta).sub("spec"))
    check_model_arrays(path, headers, mlp_state_layout(sizes, batch_norm, dropout, input_dropout), dtype)
    extra = [k for k in headers if not k.startswith("model/")]
    if extra:
        raise FileFormatError(path, f"unexpected array(s) {_listed(extra)} in a model file")


def check_text_header(path, name, h, length=None, max_length=None):
    """A 1-D array of numbers or strings of ``length`` items (or at most ``max_length``), strings of at most
    MAX_TEXT characters."""
    n = h.shape[0] if h.ndim == 1 else None
    if n is None or (length is not None and n != length) or (max_length is not None and n > max_length):
        want = f"{length}" if length is not None else f"at most {max_length}"
        raise FileFormatError(path, f"array {name!r} has shape {h.shape}, expected a 1-D array of {want} items (from "
                                    "the metadata)")
    if h.dtype.kind == "U" and h.dtype.itemsize // 4 > MAX_TEXT:
        raise FileFormatError(path, f"array {name!r} holds strings of up to {h.dtype.itemsize // 4} characters; "
                                    f"tinynn reads names of at most {MAX_TEXT}")
