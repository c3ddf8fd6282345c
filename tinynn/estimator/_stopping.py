"""sklearn's stopping policy: loss and validation curves, the early-stopping split, the n_iter_no_change rule
with the best parameters kept, and what a diverging fit leaves behind."""
from __future__ import annotations

from typing import Optional

import numpy as np
from sklearn.model_selection import train_test_split

from ..errors import DivergenceError
from ..training import Trainer, predict_raw


class StoppingMixin:
    def _init_curves(self):
        self._best = Trainer.capture(self._model)                        # sklearn's _best_coefs start here
        if self.solver == "lbfgs":
            return
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self.validation_scores_: Optional[list[float]]
        self.best_validation_score_: Optional[float]
        self.best_loss_: Optional[float]
        if self.early_stopping:
            self.validation_scores_ = []
            self.validation_loss_curve_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _split(self, X, T, y_raw, sample_weight):
        """sklearn's early-stopping split: its RandomState, stratified on the encoded target when there is
        one output column (binary classification), as sklearn does."""
        stratify = None
        if self._is_classifier and self.n_outputs_ == 1:
            stratify = np.asarray(T).reshape(len(T), -1) > 0.5
        sw = () if sample_weight is None else (sample_weight,)
        parts = train_test_split(X, T, *sw, y_raw, random_state=self._rs, test_size=self.validation_fraction,
                                 stratify=stratify)
        X_train, X_val, T_train, T_val = parts[:4]
        sw_train, sw_val = (parts[4], parts[5]) if sample_weight is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                             "your dataset.")
        return (X_train, T_train, sw_train), (X_val, T_val, parts[-1], sw_val)

    def _divergence(self, e):
        head = "Solver produced non-finite parameter weights. The input data may contain large values and need to " \
               "be preprocessed. " if not np.isfinite(e.value) else ""
        return DivergenceError(f"{head}{type(self).__name__}: {e} (learning_rate_init={self.learning_rate_init}: "
                               "try a lower learning_rate_init)", e.value)

    def _diverged_with_validation(self):
        """A diverging fit with early stopping ends there, as sklearn's would: nan is that epoch's validation
        score, and the best finite parameters are kept (restored after the loop)."""
        self.n_iter_ += 1                                                # (t_ stays: no sample was trained)
        self.loss_ = float("nan")
        self.loss_curve_.append(self.loss_)
        assert self.validation_scores_ is not None                       # a list under early stopping
        self.validation_scores_.append(float("nan"))
        self.validation_loss_curve_.append(float("nan"))
        self._no_improvement_count += 1

    def _update_no_improvement_count(self, val):
        """sklearn's rule: no improvement = validation score below best + tol (or training loss above
        best - tol); the best validation score's parameters are kept."""
        if val is None:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])
            return
        X_val, T_val, y_val, sw_val = val
        score = self._score_arrays(X_val, y_val, sample_weight=sw_val)
        assert self.validation_scores_ is not None                       # a list under early stopping
        self.validation_scores_.append(score)
        self.validation_loss_curve_.append(self._val_loss(predict_raw(self._model, X_val), T_val, sw_val))
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            self._best = Trainer.capture(self._model)

    def _score_arrays(self, X, y, sample_weight=None):
        """sklearn's _score_with_function: the score on validated arrays (no feature-name check); nan when a
        prediction is not finite."""
        pred = self._predict_arrays(X)
        if np.issubdtype(np.asarray(pred).dtype, np.floating) and not np.all(np.isfinite(pred)):
            return float("nan")
        return float(self._score_function(y, pred, sample_weight=sample_weight))
