"""Estimator files: one .npz of plain arrays + JSON in tinynn's one state layout (``tinynn.io.pack_state``).

``load`` validates the whole file against the format before it builds anything: every metadata entry it
reads (present, of its type and range; names from tinynn's tables), the architecture those entries describe,
every array against it (names, float dtype, shapes, finite values), ``classes_`` against ``n_outputs_`` and
``out_activation_``. Every refusal is a ``tinynn.errors.FileFormatError`` (a ValueError) naming the file and
what is wrong with it."""
from __future__ import annotations

import numbers
from typing import Any, Optional

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .. import init as _init
from .. import io, optim, schedules
from .._typing import PathLike
from ..errors import FileFormatError
from ..layers import ACTIVATIONS

_CURVES = ("loss_curve_", "validation_scores_", "validation_loss_curve_")
_BESTS = ("best_loss_", "best_validation_score_")
_FITTED = ("n_iter_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_", "dtype_", "loss_", "t_",
           "has_optimizer", "_no_improvement_count") + _CURVES + _BESTS
_CLASSIFIER_FITTED = ("y_type", "classes_object")
_Y_TYPES = {"binary": "logistic", "multiclass": "softmax", "multilabel": "logistic"}   # y_type -> out_activation_


class FilesMixin:
    _KIND: Optional[str] = None

    def save(self, path: PathLike) -> PathLike:
        """Write the fitted estimator to one .npz (plain arrays + JSON config; loads with allow_pickle=False)."""
        check_is_fitted(self)
        params = self.get_params()
        rs = params["random_state"]
        params["random_state"] = rs if rs is None or isinstance(rs, numbers.Integral) else None
        if params["random_state"] is not None:
            params["random_state"] = int(params["random_state"])
        params["hidden_layer_sizes"] = self._hidden()
        if params["dtype"] is not None:
            params["dtype"] = np.dtype(params["dtype"]).name
        if callable(params["init"]):
            raise ValueError("save: a callable init cannot be written to a file; use an init name")
        _new_params_to_json(params)
        # optimizer state too: partial_fit after load continues exactly
        # the estimator's RandomState is re-made from random_state at every fit (as sklearn): not saved
        arrays, meta = io.pack_state(self._model, getattr(self, "_opt", None))
        fitted = {"n_iter_": self.n_iter_, "n_layers_": self.n_layers_, "n_outputs_": self.n_outputs_,
                  "out_activation_": self.out_activation_, "n_features_in_": self.n_features_in_,
                  "dtype_": np.dtype(self._dtype_).name, "loss_": getattr(self, "loss_", None),
                  "t_": getattr(self, "t_", 0), "has_optimizer": hasattr(self, "_opt"),
                  "_no_improvement_count": int(getattr(self, "_no_improvement_count", 0))}
        for name in _CURVES:
            v = getattr(self, name, None)
            fitted[name] = None if v is None else [float(x) for x in v]
        for name in _BESTS:
            v = getattr(self, name, None)
            fitted[name] = None if v is None else float(v)
        if hasattr(self, "feature_names_in_"):
            arrays["feature_names_in_"] = np.asarray(self.feature_names_in_, dtype=str)
        self._save_extra(arrays, fitted)
        assert self._KIND is not None                                   # MLPClassifier / MLPRegressor
        io.save_npz(path, arrays, dict(meta, params=params, fitted=fitted), kind=self._KIND)
        return path

    def _save_extra(self, arrays, fitted):
        pass

    @classmethod
    def load(cls, path: PathLike) -> Any:
        """A fitted estimator from ``save``'s file; read with allow_pickle=False (nothing is unpickled).

        Raises FileNotFoundError for a missing file and ``tinynn.errors.FileFormatError`` (a ValueError) naming
        the file and what is wrong for anything else: see docs/refusals.md."""
        from ..training import Trainer
        from ._params import random_state_of

        # the metadata, and the arrays' names, dtypes and shapes against the architecture it describes: checked
        # from the headers before any array is read (limits from the file's own model), then with the values
        arrays, meta = io.load_npz(path, kind=cls._KIND, plan=lambda m, headers: _check_description(cls, m, headers))
        path = meta.source
        params, fitted = _check_description(cls, meta, arrays)
        if "feature_names_in_" in arrays:
            names = arrays["feature_names_in_"]
            if names.dtype.kind != "U" or names.shape != (fitted["n_features_in_"],):
                raise FileFormatError(path, f"array 'feature_names_in_' must hold {fitted['n_features_in_']} "
                                            f"strings (n_features_in_), got a {names.dtype} array of shape "
                                            f"{names.shape}")

        est = cls(**{k: tuple(v) if k == "hidden_layer_sizes" else v for k, v in params.items()})
        if params["dtype"] is not None:
            est.dtype = np.dtype(params["dtype"])
        try:
            est._validate_params()                         # sklearn's constraints, the last word on parameters
        except (ValueError, TypeError) as e:
            raise FileFormatError(path, f"metadata entry params: {e}") from None
        fitted = dict(fitted)
        est._rs = random_state_of(params["random_state"])
        est._dtype_ = np.dtype(fitted.pop("dtype_"))
        est._load_extra(arrays, fitted)
        try:                                               # everything was checked; a last net names the file
            est._build(fitted["n_features_in_"], fitted["n_outputs_"], est._dtype_)
            if fitted.pop("has_optimizer"):
                est._opt = est._make_optimizer()
                est._sched = None
        except (ValueError, TypeError) as e:
            raise FileFormatError(path, f"its parameters do not build a {cls._KIND}: {e}") from None
        io.unpack_state(arrays, meta, est._model, getattr(est, "_opt", None))
        est._best = Trainer.capture(est._model)            # a warm-started fit's best weights start here
        for k, v in fitted.items():
            if v is not None or k in ("validation_scores_", "best_validation_score_", "best_loss_"):
                setattr(est, k, v)
        if "feature_names_in_" in arrays:
            est.feature_names_in_ = arrays["feature_names_in_"].astype(object)
        return est

    def _load_extra(self, arrays, fitted):
        pass


def _check_description(cls, meta, arrays):
    """(params, fitted) of the metadata, checked, and the arrays (or their headers: ``tinynn._archive.Header``)
    against the architecture they describe: the model's arrays exactly (values too when they are arrays), the
    optimizer's of the parameters' shapes, ``classes_`` and ``feature_names_in_`` of the lengths the metadata
    gives; nothing else."""
    path = meta.source
    r = io.MetaReader(path, meta)
    params = _read_params(cls, r.sub("params"))
    fitted = _read_fitted(cls, r.sub("fitted"), params)
    dtype = np.dtype(fitted["dtype_"])
    sizes = [fitted["n_features_in_"]] + list(params["hidden_layer_sizes"]) + [fitted["n_outputs_"]]
    layout = io.mlp_state_layout(sizes, params["batch_norm"], params["dropout"])
    io.check_model_arrays(path, arrays, layout, dtype)
    allowed = {k for k in arrays if k.startswith(("model/", "optim/"))} | {"feature_names_in_"}
    if cls._is_classifier:
        _check_classes(path, arrays, fitted)            # from the header: kind, length; with the values: order
        io.check_text_header(path, "classes_", arrays["classes_"])
        allowed.add("classes_")
    extra = sorted(set(arrays) - allowed)
    if extra:
        raise FileFormatError(path, f"unexpected array(s) {io._listed(extra)} in a {cls._KIND} file")
    if not fitted["has_optimizer"] and any(k.startswith("optim/") for k in arrays):
        raise FileFormatError(path, "the file holds optimizer arrays but its metadata says has_optimizer: false")
    io.check_optim_headers(path, arrays, [layout[k] for k in layout if not k.partition(".")[2].startswith("running")])
    if "feature_names_in_" in arrays:
        io.check_text_header(path, "feature_names_in_", arrays["feature_names_in_"], length=fitted["n_features_in_"])
    return params, fitted


def _read_params(cls, p: io.MetaReader) -> dict:
    """The constructor arguments, each present (no silent defaults), typed, names from tinynn's tables."""
    defaults = cls().get_params()
    names = set(defaults)
    missing = sorted(names - set(p.meta) - set(_NEW_PARAMS))    # files written before these: their defaults
    if missing:
        p.fail(f"metadata entr{'y' if len(missing) == 1 else 'ies'} {', '.join('params.' + m for m in missing)} "
               "missing")
    p.only(names)
    for k, default in defaults.items():                # JSON true/false only where the parameter is a flag
        if k in p.meta and isinstance(p.meta[k], bool) and not isinstance(default, bool):
            p.fail(f"{p.name(k)} is {str(p.meta[k]).lower()}; expected a number or a name, not true/false")
    hidden = p.list("hidden_layer_sizes")
    for i, h in enumerate(hidden):
        if not io._is_int(h) or h < 1:
            p.fail(f"{p.name('hidden_layer_sizes')}[{i}] must be a positive integer, got {h!r}")
    p.str("activation", ACTIVATIONS, table=" (tinynn.ACTIVATIONS)")
    p.str("solver", ("lbfgs", "sgd", "adam"))
    init = p.str("init")
    if init != "auto" and init not in _init.INITIALIZERS:
        p.fail(f"{p.name('init')} is {init!r}, expected 'auto' or one of {sorted(_init.INITIALIZERS)} "
               "(tinynn.init.INITIALIZERS)")
    p.str("optimizer", optim.OPTIMIZERS, null=True, table=" (tinynn.optim.OPTIMIZERS)")
    p.str("lr_schedule", schedules.SCHEDULES, null=True, table=" (tinynn.schedules.SCHEDULES)")
    p.str("dtype", io.FLOAT_DTYPES, null=True)
    p.str("device", ("cpu", "cuda"))
    p.bool("batch_norm")
    p.number("dropout", lo=0, hi=1, hi_open=True)
    p.int("random_state", lo=0, hi=2**32 - 1, null=True)
    return _read_new_params(p, defaults)


def _read_fitted(cls, f: io.MetaReader, params) -> dict:
    f.only(_FITTED + (_CLASSIFIER_FITTED if cls._is_classifier else ()))
    hidden = params["hidden_layer_sizes"]
    out = {"n_iter_": f.int("n_iter_", lo=0, hi=io.COUNTER_MAX),
           "n_layers_": f.int("n_layers_", lo=2),
           "n_outputs_": f.int("n_outputs_", lo=1),
           "n_features_in_": f.int("n_features_in_", lo=1),
           "dtype_": f.str("dtype_", io.FLOAT_DTYPES),
           "loss_": f.number("loss_", null=True, default=None, finite=False, nan=True),
           "t_": f.int("t_", lo=0, hi=io.COUNTER_MAX),
           "has_optimizer": f.bool("has_optimizer"),
           "_no_improvement_count": f.int("_no_improvement_count", lo=0, hi=io.COUNTER_MAX, default=0)}
    if out["n_layers_"] != len(hidden) + 2:
        f.fail(f"{f.name('n_layers_')} is {out['n_layers_']}, but params.hidden_layer_sizes {hidden} gives "
               f"{len(hidden) + 2} layers")
    for name in _CURVES:                       # statistics: a fit stopped by divergence records nan (as sklearn)
        out[name] = f.numbers(name, null=True, finite=False, nan=True)
    for name in _BESTS:
        out[name] = f.number(name, finite=False, nan=True, null=True)
    if params["solver"] in ("sgd", "adam"):         # what a continued stochastic fit appends to and compares with
        kept = (("validation_scores_", "validation_loss_curve_", "best_validation_score_")
                if params["early_stopping"] else ("best_loss_",))
        for name in ("loss_curve_",) + kept:
            if out[name] is None:
                f.fail(f"{f.name(name)} is null, but solver={params['solver']!r}"
                       f"{' with early_stopping' if params['early_stopping'] else ''} keeps it")
    if out["has_optimizer"]:
        name = params["optimizer"] or params["solver"]
        if name not in optim.OPTIMIZERS:
            f.fail(f"{f.name('has_optimizer')} is true, but the estimator's optimizer {name!r} is not one of "
                   f"{sorted(optim.OPTIMIZERS)} (solver='lbfgs' keeps no optimizer state)")
    if cls._is_classifier:
        out["y_type"] = f.str("y_type", _Y_TYPES)
        out["classes_object"] = f.bool("classes_object")
        want = _Y_TYPES[out["y_type"]]
    else:
        want = "identity"
    out["out_activation_"] = f.str("out_activation_", (want,))
    return out


def _check_classes(path, arrays, fitted):
    """classes_: 1-D, unique and sorted, plain numbers or strings, fitting the output layer."""
    if "classes_" not in arrays:
        raise FileFormatError(path, "array 'classes_' is missing (an MLPClassifier file holds its classes)")
    c = arrays["classes_"]
    y_type, n_out = fitted["y_type"], fitted["n_outputs_"]
    if c.ndim != 1 or c.dtype.kind not in "biufU":
        raise FileFormatError(path, f"array 'classes_' must be a 1-D array of numbers or strings, got a {c.dtype} "
                                    f"array of shape {c.shape}")
    if fitted["classes_object"] and c.dtype.kind != "U":
        raise FileFormatError(path, f"array 'classes_' has dtype {c.dtype}, but classes_object says strings")
    values = isinstance(c, np.ndarray)                    # else a header (shape and dtype only)
    if values and c.dtype.kind == "f" and not np.all(np.isfinite(c)):
        raise FileFormatError(path, "array 'classes_' holds NaN or infinite values")
    if values and c.size > 1 and not np.all(c[1:] > c[:-1]):
        raise FileFormatError(path, "array 'classes_' must be sorted and without repeats (as np.unique gives them)")
    c_len = c.shape[0]
    want = {"binary": (min(c_len, 2), 1), "multiclass": (n_out, n_out), "multilabel": (n_out, n_out)}[y_type]
    if (c_len, n_out) != want or (y_type == "multiclass" and c_len < 3) or c_len < 1:
        expect = ("1 or 2 classes and 1 output" if y_type == "binary" else
                  f"as many classes as outputs ({n_out}{', at least 3' if y_type == 'multiclass' else ''})")
        raise FileFormatError(path, f"array 'classes_' has {c_len} classes but the output layer has {n_out} "
                                    f"output(s): a {y_type} classifier has {expect}")
    if values and y_type == "multilabel" and not (c.dtype.kind in "iu" and np.array_equal(c, np.arange(c_len))):
        raise FileFormatError(path, f"array 'classes_' of a multilabel classifier must be 0..{c_len - 1}, "
                                    f"got {c.tolist()}")


# ------------------------------------------------------------------ parameters added after format version 1's first files
_NEW_PARAMS = ("l1", "l1_mode", "transform_layer", "class_weight")


def _new_params_to_json(params):
    """class_weight {label: weight} as [[label, weight], ...]: JSON object keys are strings only."""
    cw = params.get("class_weight")
    if isinstance(cw, dict):
        pairs = []
        for k, v in cw.items():
            k = k.item() if isinstance(k, np.generic) else k
            if not isinstance(k, (str, numbers.Integral)) or isinstance(k, bool):
                raise ValueError(f"save: class_weight keys must be integers or strings to be written, got {k!r}")
            pairs.append([k, float(v)])
        params["class_weight"] = pairs


def _read_new_params(p: io.MetaReader, defaults) -> dict:
    out = dict(p.meta)
    for k in _NEW_PARAMS:
        if k in defaults and k not in out:
            out[k] = defaults[k]
    if "l1" in p.meta:
        p.number("l1", lo=0)
    if "l1_mode" in p.meta:
        p.str("l1_mode", ("subgradient", "proximal"))
    if "transform_layer" in p.meta:
        p.int("transform_layer")
    cw = out.get("class_weight")
    if isinstance(cw, list):
        for i, pair in enumerate(cw):
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))
                    and not isinstance(pair[0], bool) and isinstance(pair[1], (int, float)) and not isinstance(pair[1], bool)):
                p.fail(f"{p.name('class_weight')}[{i}] must be a [label, weight] pair (label an integer or a "
                       f"string, weight a number), got {pair!r}")
        out["class_weight"] = {k: v for k, v in cw}
    elif cw is not None and cw != "balanced":
        p.fail(f"{p.name('class_weight')} must be null, \"balanced\" or a list of [label, weight] pairs, "
               f"got {cw!r}")
    return out
