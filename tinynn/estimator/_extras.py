"""The estimators' additions to scikit-learn's MLP, as mixins of ``_BaseMLP``: the L1 penalty (``l1``,
``l1_mode``), an explicit validation set (``fit(X_val=, y_val=, sample_weight_val=)``, HistGradientBoosting's
rules) and the hidden layers as features (``transform``)."""
from __future__ import annotations

import numbers

import numpy as np

from .._typing import MatrixLike
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .. import kernels
from ..kernels import ops
from ..layers import Linear
from ..sparse import is_scipy_sparse
from ..training import PREDICT_CHUNK, L2Penalty, predict_raw
from . import _checks


class _L1Penalty:
    """L2Penalty plus l1 Σ|W| over the same Linear weights (flat.data[:n_first]). A host value (no ``defer``):
    on a GPU the step reads ‖W‖₁ back."""

    def __init__(self, l2, l1, grad):
        self.l2, self.l1, self.grad = l2, l1, grad

    def __call__(self, model, n, grad=True):
        value = self.l2(model, n, grad)
        flat = model.flat
        W = flat.data[:flat.n_first]
        if grad and self.grad:
            ops.add_l1(W, flat.grad[:flat.n_first], self.l1)               # g += l1 sign(W)
        return value + self.l1 * float(np.abs(kernels.to_host(W)).sum())


class PenaltyMixin:
    def _check_l1(self):
        """l1_mode='proximal' is SGD's proximal step (tn.optim.SGD): refused, naming why, for any other rule."""
        if self.l1 and self.l1_mode == "proximal":
            rule = "lbfgs" if self.solver == "lbfgs" else (self.optimizer or self.solver)
            if rule != "sgd":
                what = f"optimizer={self.optimizer!r}" if self.optimizer else f"solver={self.solver!r}"
                raise ValueError(f"{type(self).__name__}: l1_mode='proximal' is the proximal SGD step (soft "
                                 f"thresholding after each step); it needs solver='sgd' (or optimizer='sgd'), got "
                                 f"{what}. Use l1_mode='subgradient' with {what}.")

    def _penalty(self, l1_grad):
        """sklearn's L2 term, plus l1 Σ|W| when l1 > 0 (its value in the loss; its subgradient too when
        ``l1_grad``: L-BFGS, where no optimizer adds it)."""
        l2 = L2Penalty(self.alpha)
        return _L1Penalty(l2, float(self.l1), l1_grad) if self.l1 else l2


class ValidationSetMixin:
    def _check_val_given(self, X_val, y_val, sample_weight_val):
        """HistGradientBoosting's rules for an explicit validation set (both or neither; it is the early-stopping
        set, so early_stopping=True and a stochastic solver; not in partial_fit)."""
        if X_val is None and y_val is None:
            if sample_weight_val is not None:
                raise ValueError("sample_weight_val is provided, but X_val and y_val were not provided.")
            return
        if y_val is None:
            raise ValueError("X_val is provided, but y_val was not provided.")
        if X_val is None:
            raise ValueError("y_val is provided, but X_val was not provided.")
        if not self.early_stopping:
            raise ValueError("X_val and y_val are passed to fit while at the same time early_stopping is False. "
                             "When passing X_val and y_val to fit, early_stopping should be set to True (they are "
                             "the early-stopping set: validation_scores_, validation_loss_curve_).")
        if self.solver == "lbfgs":
            raise ValueError("X_val and y_val are passed to fit, but solver='lbfgs' does no early stopping; use "
                             "solver='sgd' or 'adam'.")

    def _validate_val(self, X_val, y_val, sample_weight_val, dtype):
        """The explicit validation set, checked as X and y are (features, dtype, labels seen in fit); returns
        (X_val, T_val, y_val, sample_weight_val) as the early-stopping split gives them."""
        from sklearn.utils.validation import check_consistent_length

        Xv = validate_data(self, X_val, reset=False, accept_sparse=["csr", "csc"], dtype=dtype)
        Xv = Xv.tocsr() if is_scipy_sparse(Xv) else np.ascontiguousarray(Xv)
        yv = np.asarray(y_val)                                         # a pandas Series/DataFrame: its to_numpy()
        if yv.ndim == 2 and yv.shape[1] == 1:
            yv = column_or_1d(yv, warn=True)
        check_consistent_length(Xv, yv)                                # (validate_data refused 0 rows)
        try:
            Tv, _ = self._targets(yv, True, False)
        except ValueError as e:
            raise ValueError(f"y_val: {e}") from None
        if Tv.dtype.kind == "f":
            Tv = Tv.astype(Xv.dtype)
        _checks.check_finite_after_cast(self, Xv, Tv)
        swv = None
        if sample_weight_val is not None:
            swv = _checks.check_sample_weight(self, sample_weight_val, Xv)
        return Xv, Tv, yv, swv


class HiddenFeaturesMixin(ClassNamePrefixFeaturesOutMixin, TransformerMixin):
    """``transform`` here, in a subclass of TransformerMixin, so that scikit-learn wraps it for ``set_output``."""

    def transform(self, X: MatrixLike) -> np.ndarray:
        """The activations of hidden layer ``transform_layer`` (default -1: the last) for X, (n_samples,
        hidden_layer_sizes[transform_layer]), in eval mode (dropout off, batch norm's running statistics), in
        the model's dtype. ``fit_transform(X, y)`` fits and then transforms; ``get_feature_names_out`` names the
        columns, so ``set_output(transform="pandas")`` and Pipelines use them."""
        check_is_fitted(self)
        cut = self._transform_cut()
        return predict_raw(self._model, self._validate_X(X), PREDICT_CHUNK, upto=cut)

    def _transform_cut(self):
        """The index in the model's layers of the Linear after hidden layer ``transform_layer``."""
        n_hidden = self.n_layers_ - 2
        k = self.transform_layer
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or not -n_hidden <= k < n_hidden:
            raise ValueError(f"{type(self).__name__}: transform_layer={k!r} is not a hidden layer of this network: "
                             f"it has {n_hidden} hidden layer(s) {tuple(self._hidden())}, so expected an integer "
                             f"in [{-n_hidden}, {n_hidden - 1}]")
        linears = [i for i, layer in enumerate(self._model.layers) if isinstance(layer, Linear)]
        return linears[int(k) % n_hidden + 1]

    @property
    def _n_features_out(self):
        """Columns of ``transform`` (ClassNamePrefixFeaturesOutMixin: names mlpclassifier0, ...)."""
        if not hasattr(self, "_model"):
            raise AttributeError("_n_features_out: the estimator is not fitted yet")
        self._transform_cut()                                          # refuses a layer it does not have
        return self._hidden()[int(self.transform_layer) % (self.n_layers_ - 2)]
