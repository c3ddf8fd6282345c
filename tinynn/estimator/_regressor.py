"""MLPRegressor: sklearn.neural_network.MLPRegressor's interface on tinynn."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._typing import MatrixLike
from sklearn.base import RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ..losses import HuberLoss, L1Loss, PoissonLoss, SquaredError

# output activation, loss
LOSSES = {"squared_error": ("identity", SquaredError), "poisson": ("exp", PoissonLoss),
          "absolute_error": ("identity", L1Loss), "huber": ("identity", HuberLoss)}
from ._base import _BaseMLP


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: sklearn.neural_network.MLPRegressor's interface on tinynn.

    Parameters and attributes as ``MLPClassifier`` (no ``classes_``), plus sklearn's first argument ``loss``:
    "squared_error" (``out_activation_`` "identity", half the mean squared error), "poisson" (log link:
    ``out_activation_`` "exp", half the Poisson deviance; y must be >= 0), or tinynn's robust losses
    "absolute_error" (the mean absolute error, ``tinynn.L1Loss``) and "huber" (``tinynn.HuberLoss``, delta 1.0;
    both "identity" outputs). ``activation`` takes every name of ``tinynn.ACTIVATIONS`` (sklearn's "identity",
    "logistic", "tanh", "relu", and "leaky_relu", "gelu", "gelu_tanh", "silu"/"swish", "elu", "softplus").
    """

    _KIND = "MLPRegressor"
    _is_classifier = False
    _parameter_constraints = {**_BaseMLP._parameter_constraints, "loss": [StrOptions(set(LOSSES))]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0, batch_norm=False,
                 init="auto", optimizer=None, lr_schedule=None, device="cpu", dtype=None, restore_best_weights=True,
                 snapshots=None, swa=False, ema=None, l1=0.0, l1_mode="subgradient", transform_layer=-1):
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
        self.loss = loss

    def _targets(self, y, incremental, reset):
        self.out_activation_ = LOSSES[self.loss][0]
        T = np.asarray(y, dtype=np.float64)
        if self.loss == "poisson" and np.any(T < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")
        T = T.reshape(-1, 1) if T.ndim == 1 else T
        if reset:                       # this fit's width: an explicit y_val (checked before the model is built) too
            self._y_outputs = T.shape[1]
        else:
            width = getattr(self, "_y_outputs", None) or self.n_outputs_     # (a loaded estimator: n_outputs_)
            if T.shape[1] != width:
                raise ValueError(f"y has {T.shape[1]} outputs, but the model was fitted with {width}")
        return np.ascontiguousarray(T), T.shape[1]

    def _loss_fn(self):
        return LOSSES[self.loss][1]()

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: MatrixLike, y: ArrayLike, sample_weight: ArrayLike | None = None, *, X_val: MatrixLike | None = None,
            y_val: ArrayLike | None = None, sample_weight_val: ArrayLike | None = None) -> MLPRegressor:
        """Fit the model to X (n_samples, n_features) and y (n_samples,) or (n_samples, n_outputs). Returns self.

        X_val, y_val, sample_weight_val: an explicit early-stopping set (early_stopping=True) used instead of
        the validation_fraction split, as HistGradientBoostingRegressor's."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False, X_val=X_val, y_val=y_val,
                         sample_weight_val=sample_weight_val)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: MatrixLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> MLPRegressor:
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X: MatrixLike) -> np.ndarray:
        """Predictions, (n_samples,) for one output, else (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._predict_arrays(self._validate_X(X))

    def _predict_arrays(self, X):
        Y = self._forward_pass_fast(X)
        return Y[:, 0].copy() if Y.shape[1] == 1 else Y

    _score_function = staticmethod(r2_score)
