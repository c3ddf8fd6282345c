"""Estimator files: one .npz of plain arrays + JSON in tinynn's one state layout (``tinynn.io.pack_state``)."""
from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .. import io

_CURVES = ("loss_curve_", "validation_scores_", "validation_loss_curve_")
_BESTS = ("best_loss_", "best_validation_score_")


class FilesMixin:
    _KIND = None

    def save(self, path):
        """Write the fitted estimator to one .npz (plain arrays + JSON config; loads with allow_pickle=False)."""
        check_is_fitted(self)
        params = self.get_params()
        rs = params["random_state"]
        params["random_state"] = rs if rs is None or isinstance(rs, numbers.Integral) else None
        params["hidden_layer_sizes"] = self._hidden()
        if params["dtype"] is not None:
            params["dtype"] = np.dtype(params["dtype"]).name
        if callable(params["init"]):
            raise ValueError("save: a callable init cannot be written to a file; use an init name")
        # optimizer state too: partial_fit after load continues exactly
        arrays, meta = io.pack_state(self._model, getattr(self, "_opt", None), rngs={"estimator": self._rng})
        fitted = {"n_iter_": self.n_iter_, "n_layers_": self.n_layers_, "n_outputs_": self.n_outputs_,
                  "out_activation_": self.out_activation_, "n_features_in_": self.n_features_in_,
                  "dtype_": np.dtype(self._dtype_).name, "loss_": getattr(self, "loss_", None),
                  "t_": getattr(self, "t_", 0), "has_optimizer": hasattr(self, "_opt")}
        for name in _CURVES:
            v = getattr(self, name, None)
            fitted[name] = None if v is None else [float(x) for x in v]
        for name in _BESTS:
            v = getattr(self, name, None)
            fitted[name] = None if v is None else float(v)
        if hasattr(self, "feature_names_in_"):
            arrays["feature_names_in_"] = np.asarray(self.feature_names_in_, dtype=str)
        self._save_extra(arrays, fitted)
        io.save_npz(path, arrays, dict(meta, params=params, fitted=fitted), kind=self._KIND)
        return path

    def _save_extra(self, arrays, fitted):
        pass

    @classmethod
    def load(cls, path):
        """A fitted estimator from ``save``'s file; read with allow_pickle=False (nothing is unpickled)."""
        from ._base import _as_generator

        arrays, meta = io.load_npz(path, kind=cls._KIND)
        params = meta["params"]
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        if params.get("dtype") is not None:
            params["dtype"] = np.dtype(params["dtype"])
        est = cls(**params)
        fitted = dict(meta["fitted"])
        est._rng = _as_generator(params["random_state"])
        est._dtype_ = np.dtype(fitted.pop("dtype_"))
        est._load_extra(arrays, fitted)
        est._build(fitted["n_features_in_"], fitted["n_outputs_"], est._dtype_)
        if fitted.pop("has_optimizer"):
            est._opt = est._make_optimizer()
            est._sched = None
        io.unpack_state(arrays, meta, est._model, getattr(est, "_opt", None), rngs={"estimator": est._rng})
        for k, v in fitted.items():
            if v is not None or k in ("validation_scores_", "best_validation_score_", "best_loss_"):
                setattr(est, k, v)
        if "feature_names_in_" in arrays:
            est.feature_names_in_ = arrays["feature_names_in_"].astype(object)
        return est

    def _load_extra(self, arrays, fitted):
        pass
