"""MLPClassifier: sklearn.neural_network.MLPClassifier's interface on tinynn."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._typing import MatrixLike
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.metrics import accuracy_score
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted

from ..losses import SigmoidCrossEntropy, SoftmaxCrossEntropy
from . import _checks
from ._base import _BaseMLP


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: sklearn.neural_network.MLPClassifier's interface on tinynn.

    Parameters: see ``tinynn.estimator.PARAMETERS_DOC`` (sklearn's, plus dropout, batch_norm, init, optimizer,
    lr_schedule, device, dtype, restore_best_weights).

    Attributes
    ----------
    classes_ : ndarray (n_classes,);  loss_ : float;  best_loss_ : float or None;  loss_curve_ : list
    validation_scores_ : list or None;  validation_loss_curve_ : list (early stopping only)
    best_validation_score_ : float or None;  t_ : int;  coefs_ : list of (n_in, n_out) arrays
    intercepts_ : list of (n_out,) arrays;  n_features_in_ : int;  n_iter_ : int;  n_layers_ : int
    n_outputs_ : int;  out_activation_ : "softmax" or "logistic"
    """

    _KIND = "MLPClassifier"
    _is_classifier = True
    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "class_weight": [dict, StrOptions({"balanced"}), None]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0, batch_norm=False, init="auto",
                 optimizer=None, lr_schedule=None, device="cpu", dtype=None, restore_best_weights=True,
                 snapshots=None, swa=False, ema=None, l1=0.0, l1_mode="subgradient", transform_layer=-1,
                 class_weight=None):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         dropout=dropout, batch_norm=batch_norm, init=init, optimizer=optimizer,
                         lr_schedule=lr_schedule, device=device, dtype=dtype,
                         restore_best_weights=restore_best_weights, snapshots=snapshots, swa=swa, ema=ema, l1=l1,
                         l1_mode=l1_mode, transform_layer=transform_layer)
        self.class_weight = class_weight

    def _class_weighted(self, y, sample_weight, incremental):
        """LogisticRegression's class_weight: sample_weight (ones if None) times the weight of each row's
        class, "balanced" = Σw / (n_classes · Σw of the class) (compute_class_weight with the sample weights).
        Multi-label: the product over the label columns (compute_sample_weight). partial_fit refuses
        "balanced" as SGDClassifier does (one batch does not give the class frequencies)."""
        cw = self.class_weight
        if cw is None:
            return sample_weight
        if incremental and isinstance(cw, str) and cw == "balanced":
            raise ValueError(
                "class_weight '{0}' is not supported for partial_fit. In order to use 'balanced' weights, use "
                "compute_class_weight('{0}', classes=classes, y=y). In place of y you can use a large enough sample "
                "of the full training set target to properly estimate the class frequency distributions. Pass the "
                "resulting weights as the class_weight parameter.".format(cw))
        sw = np.ones(len(y), dtype=np.float64) if sample_weight is None else sample_weight
        if self._y_type == "multilabel":
            if isinstance(cw, dict):
                raise ValueError("MLPClassifier: class_weight for multi-label targets must be None or 'balanced' "
                                 f"(a dict gives one weight per class of a single target), got {cw!r}")
            w = compute_sample_weight(cw, np.asarray(y))
        else:
            per_class = compute_class_weight(cw, classes=self.classes_, y=y,
                                             sample_weight=None if isinstance(cw, dict) else sample_weight)
            w = per_class[np.searchsorted(self.classes_, y)]
        return _checks.check_sample_weight(self, sw * w, sw)

    def _targets(self, y, incremental, reset):
        y_type = type_of_target(y)
        if y_type == "multiclass-multioutput":
            raise ValueError("MLPClassifier: multiclass-multioutput targets are not supported")
        if reset and not (incremental and hasattr(self, "classes_")):
            if y_type.startswith("multilabel"):
                self.classes_ = np.arange(y.shape[1])
                self._y_type = "multilabel"
            else:
                self.classes_ = unique_labels(y)                     # one class: fitted as sklearn does
                self._y_type = "binary" if len(self.classes_) <= 2 else "multiclass"
        else:
            classes = unique_labels(y)
            if self._y_type == "multilabel":
                if y.ndim != 2 or y.shape[1] != len(self.classes_):
                    raise ValueError(f"expected a multi-label indicator with {len(self.classes_)} columns")
            elif self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                                     f"call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        if self._y_type == "multilabel":
            self.out_activation_ = "logistic"
            return np.asarray(y, dtype=np.float64), len(self.classes_)
        idx = np.searchsorted(self.classes_, y).astype(np.int64)
        if self._y_type == "binary":
            self.out_activation_ = "logistic"
            return idx.reshape(-1, 1).astype(np.float64), 1
        self.out_activation_ = "softmax"
        return idx, len(self.classes_)

    def _loss_fn(self):
        return SoftmaxCrossEntropy() if self.out_activation_ == "softmax" else SigmoidCrossEntropy()

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: MatrixLike, y: ArrayLike, sample_weight: ArrayLike | None = None, *, X_val: MatrixLike | None = None,
            y_val: ArrayLike | None = None, sample_weight_val: ArrayLike | None = None) -> MLPClassifier:
        """Fit the model to X (n_samples, n_features) and y (n_samples,) or a (n_samples, n_labels) indicator.

        X_val, y_val, sample_weight_val: an explicit early-stopping set (early_stopping=True) used instead of
        the validation_fraction split, as HistGradientBoostingClassifier's (class_weight applies to the
        training rows only, as there). Returns self.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False, X_val=X_val, y_val=y_val,
                         sample_weight_val=sample_weight_val)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: MatrixLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None) -> MLPClassifier:
        """One epoch over (X, y). ``classes`` (all labels) is required on the first call."""
        if not hasattr(self, "classes_"):
            if classes is None and not type_of_target(y).startswith("multilabel"):
                raise ValueError("classes must be passed on the first call to partial_fit.")
            if type_of_target(y).startswith("multilabel"):
                self.classes_ = np.arange(np.asarray(y).shape[1])
                self._y_type = "multilabel"
            else:
                self.classes_ = unique_labels(classes)
                self._y_type = "binary" if len(self.classes_) <= 2 else "multiclass"
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"`classes={classes}` is not the same as on the first call to partial_fit, "
                             f"which was {self.classes_}")
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X: MatrixLike) -> np.ndarray:
        """Class probabilities, (n_samples, n_classes), columns ordered as ``classes_``."""
        check_is_fitted(self)
        X = self._validate_X(X)
        P = self._forward_pass_fast(X)
        if len(self.classes_) == 1:                      # one class seen: certain (sklearn gives 2 columns)
            return np.ones((X.shape[0], 1), dtype=P.dtype)
        if self._y_type == "binary":
            p = P[:, 0]
            return np.vstack([1 - p, p]).T
        return P

    def predict_log_proba(self, X: MatrixLike) -> np.ndarray:
        """log(predict_proba(X))."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: MatrixLike) -> np.ndarray:
        """Predicted classes (n_samples,), or a (n_samples, n_labels) indicator for multi-label targets."""
        check_is_fitted(self)
        return self._predict_arrays(self._validate_X(X))

    def _predict_arrays(self, X):
        P = self._forward_pass_fast(X)
        if self._y_type == "multilabel":
            return (P > 0.5).astype(int)
        if self._y_type == "binary":
            return self.classes_[np.minimum((P[:, 0] > 0.5).astype(int), len(self.classes_) - 1)]
        return self.classes_[np.argmax(P, axis=1)]

    _score_function = staticmethod(accuracy_score)

    def _save_extra(self, arrays, fitted):
        classes = np.asarray(self.classes_)
        if classes.dtype.kind == "O":
            if not all(isinstance(c, str) for c in classes):
                raise ValueError("save: classes_ must be numbers or strings to be written without pickle")
            classes = classes.astype(str)
        arrays["classes_"] = classes
        fitted["y_type"] = self._y_type
        fitted["classes_object"] = bool(np.asarray(self.classes_).dtype.kind == "O")

    def _load_extra(self, arrays, fitted):
        self.classes_ = arrays["classes_"]
        if fitted.pop("classes_object", False):
            self.classes_ = self.classes_.astype(object)
        self._y_type = fitted.pop("y_type")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
