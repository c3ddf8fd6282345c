"""_BaseMLP: scikit-learn's policy around tinynn's one training loop (``tinynn.training.Trainer``).

What stays here is sklearn's: the constructor, validation and encoding of X and y, the early-stopping split,
the n_iter_no_change rule, best weights, warnings, predict. The batches, the step, the L2 penalty, the
divergence guard and rollback, progress and chunked prediction are the Trainer's.

What sklearn optimises, and so does this:
    L = Σ_i w_i ℓ_i / Σ_i w_i  +  (α/2) Σ_layers ‖W‖² / Σ_i w_i        (per mini-batch; w_i = 1 by default)
    ℓ_i: softmax cross-entropy (multiclass), Σ_j binary cross-entropy (binary, multi-label),
         ½ mean_j (ŷ_ij - y_ij)² (regression: tinynn.losses.SquaredError, sklearn's convention)
"""
from __future__ import annotations

import numbers
import types
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d, validate_data

from .. import kernels
from ..kernels import ops

from .. import optim, schedules
from ..errors import DivergenceError
from ..layers import ACTIVATIONS, BatchNorm1d, Dropout, Layer, Linear
from ..model import Sequential
from ..sparse import is_scipy_sparse
from ..training import Trainer
from . import _checks
from ._callbacks import CallbackSupportMixin, FitTasks
from ._averages import AveragingMixin, averaging_start
from ._extras import HiddenFeaturesMixin, PenaltyMixin, ValidationSetMixin
from ._files import FilesMixin
from ._lbfgs import fit_lbfgs
from ._params import PARAMETER_CONSTRAINTS, random_state_of
from ._sklearn_optim import SklearnAdam, SklearnSGD
from ._stopping import StoppingMixin


class _BaseMLP(CallbackSupportMixin, HiddenFeaturesMixin, PenaltyMixin, ValidationSetMixin, AveragingMixin,
               StoppingMixin, FilesMixin, BaseEstimator):
    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

    def __init__(self, hidden_layer_sizes, activation, *, solver, alpha, batch_size, learning_rate,
                 learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, momentum,
                 nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change,
                 max_fun, dropout, batch_norm, init, optimizer, lr_schedule, device, dtype, restore_best_weights,
                 snapshots, swa, ema, l1, l1_mode, transform_layer):
        # no defaults here: MLPClassifier and MLPRegressor declare them (sklearn reads each class's signature)
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.init = init
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.device = device
        self.dtype = dtype
        self.restore_best_weights = restore_best_weights
        self.snapshots = snapshots
        self.swa = swa
        self.ema = ema
        self.l1 = l1
        self.l1_mode = l1_mode
        self.transform_layer = transform_layer

    # ------------------------------------------------------------------ model pieces
    def _hidden(self):
        h = self.hidden_layer_sizes
        h = [h] if not hasattr(h, "__iter__") else list(h)
        if any((not isinstance(v, numbers.Integral)) or v <= 0 for v in h):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {h}.")
        return [int(v) for v in h]

    def _build(self, n_features, n_outputs, dtype):
        """The network, with sklearn's draws: per layer W ~ U(-a, a) then b ~ U(-a, a) from the estimator's
        RandomState, a = √(f / (fan_in + fan_out)), f = 2 for logistic else 6 (init="auto")."""
        sizes = [n_features] + self._hidden() + [n_outputs]
        rs = self._rs
        layers: list[Layer] = []
        for i in range(len(sizes) - 1):
            fan_in, fan_out = sizes[i], sizes[i + 1]
            if self.init == "auto":
                lin = Linear(fan_in, fan_out, dtype=dtype, init="zeros")
                bound = np.sqrt((2.0 if self.activation == "logistic" else 6.0) / (fan_in + fan_out))
                lin.weight.data[...] = rs.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype, copy=False)
                assert lin.bias is not None
                lin.bias.data[...] = rs.uniform(-bound, bound, fan_out).astype(dtype, copy=False)
            else:
                lin = Linear(fan_in, fan_out, dtype=dtype, init=self.init, rng=rs.randint(2**31))
            layers.append(lin)
            if i == len(sizes) - 2:
                break
            if self.batch_norm:
                layers.append(BatchNorm1d(fan_out, dtype=dtype))
            layers.append(ACTIVATIONS[self.activation]())
            if self.dropout:
                layers.append(Dropout(self.dropout, rng=rs.randint(2**31)))
        model = Sequential(*layers)
        if self.device != "cpu":
            model.to(self.device)
        self._model = model
        self._linears = [l for l in model.layers if isinstance(l, Linear)]
        self.n_layers_ = len(sizes)
        self.n_outputs_ = n_outputs

    def _make_optimizer(self):
        """sklearn's update rule for solver 'sgd'/'adam'; with ``optimizer=`` the one named in tinynn.optim's
        table (torch's rules)."""
        params = self._model.parameters()
        # L1 on the Linear weights (the ones alpha penalises): tn.optim's subgradient or proximal form
        l1 = dict(l1=float(self.l1), l1_scope="weights", l1_mode=self.l1_mode) if self.l1 else {}
        if self.optimizer is None and self.solver == "sgd":
            return SklearnSGD(params, self.learning_rate_init, self.momentum, self.nesterovs_momentum, **l1)
        if self.optimizer is None:
            return SklearnAdam(params, lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2),
                               eps=self.epsilon, **{k: v for k, v in l1.items() if k != "l1_mode"})
        return optim.make(self.optimizer or self.solver, self._model.parameters(), lr=self.learning_rate_init,
                          momentum=self.momentum, beta=self.momentum,
                          nesterov=bool(self.nesterovs_momentum and self.momentum > 0),
                          betas=(self.beta_1, self.beta_2), eps=self.epsilon, **l1)

    def _make_schedule(self, steps_per_epoch):
        """The averages' own schedules (snapshots: cosine restarts; swa: cosine then constant), else
        ``lr_schedule`` (per step, over max_iter epochs) if given, else sklearn's ``learning_rate`` for sgd."""
        total = self.max_iter * steps_per_epoch
        if self.snapshots:
            return schedules.make("cosine_restarts", self._opt, total, steps_per_epoch, cycles=self.snapshots)
        if self.swa:
            return schedules.make("swa", self._opt, total, steps_per_epoch,
                                  swa_start=averaging_start(self.max_iter) / self.max_iter)
        if self.lr_schedule is not None:
            return schedules.make(self.lr_schedule, self._opt, self.max_iter * steps_per_epoch, steps_per_epoch)
        if (self.optimizer or self.solver) == "sgd":
            return schedules.make(self.learning_rate, self._opt, power_t=self.power_t)
        return None

    # ------------------------------------------------------------------ validation
    def _fit_dtype(self, X):
        return _checks.fit_dtype(self, X)

    def _validate_X(self, X):
        """Prediction input: sklearn's checks (finite, 2-D, dense, feature count), in the model's dtype."""
        X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc"], dtype=self._dtype_)
        return X.tocsr() if is_scipy_sparse(X) else np.ascontiguousarray(X)

    def _validate_X_y(self, X, y, reset):
        fitted = None if reset else getattr(self, "_dtype_", None)
        X, y = validate_data(self, X, y, reset=reset, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=not self._is_classifier,
                             dtype=fitted if fitted is not None else (np.float64, np.float32))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self._is_classifier:
            check_classification_targets(y)
        dtype = fitted if fitted is not None else self._fit_dtype(X)
        if is_scipy_sparse(X):                                        # CSR rows, never densified
            return X.tocsr().astype(dtype, copy=False), y
        return np.ascontiguousarray(X, dtype=dtype), y

    # ------------------------------------------------------------------ outputs
    def _output(self, Z):
        """The output activation on raw outputs Z (softmax, or an activation of the table), in place."""
        if self.out_activation_ == "softmax":
            return ops.softmax_rows(Z, out=Z)
        act = ACTIVATIONS[self.out_activation_]
        return ops.act_forward(Z, act.kind, act.alpha, out=Z)

    @property
    def _optimizer(self):
        """sklearn's attribute name: the optimizer's current learning rate as ``learning_rate``."""
        if not hasattr(self, "_opt"):
            raise AttributeError("_optimizer: no stochastic fit yet")
        return types.SimpleNamespace(learning_rate=self._opt.lr)

    @property
    def coefs_(self):
        if not hasattr(self, "_linears"):
            raise AttributeError("coefs_: the estimator is not fitted yet")
        return [kernels.to_host(l.weight.data) for l in self._linears]

    @property
    def intercepts_(self):
        if not hasattr(self, "_linears"):
            raise AttributeError("intercepts_: the estimator is not fitted yet")
        return [kernels.to_host(l.bias.data) for l in self._linears]  # type: ignore[union-attr]  # built with biases

    # ------------------------------------------------------------------ fitting
    def _targets(self, y, incremental, reset):
        """Encode y for the loss: sets out_activation_ (on a first pass) and returns (T, n_outputs)."""
        raise NotImplementedError

    def _loss_fn(self):
        raise NotImplementedError

    def _fit(self, X, y, sample_weight=None, incremental=False, X_val=None, y_val=None, sample_weight_val=None):
        self._hidden()
        self._check_l1()
        first_pass = not hasattr(self, "_model") or (not self.warm_start and not incremental)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        self._check_val_given(X_val, y_val, sample_weight_val)
        given = (X, y, sample_weight)                                     # what callbacks see (feature names kept)
        X, y = self._validate_X_y(X, y, first_pass)
        if sample_weight is not None:
            sample_weight = _checks.check_sample_weight(self, sample_weight, X)
        T, n_outputs = self._targets(y, incremental, first_pass)
        sample_weight = self._class_weighted(y, sample_weight, incremental)
        given_val = None if X_val is None else self._validate_val(X_val, y_val, sample_weight_val,
                                                                      X.dtype)
        if T.dtype.kind == "f":
            T = T.astype(X.dtype)                                       # X is in the fit dtype already
        _checks.check_finite_after_cast(self, X, T)                     # before anything is built
        self._rs = random_state_of(self.random_state)                     # as sklearn: at every fit
        if first_pass:
            self._dtype_ = X.dtype
            self._build(X.shape[1], n_outputs, self._dtype_)
            self.n_iter_ = 0
            self.t_ = 0
            self._init_curves()
        # sklearn.callback: the fit is a task, each epoch (L-BFGS iteration; partial_fit: its one epoch) a subtask
        tasks = FitTasks(self, *given, 1 if incremental else self.max_iter + (self.solver == "lbfgs"))
        if self.solver == "lbfgs":
            fit_lbfgs(self, Trainer(self._model, self._loss_fn(), None, penalty=self._penalty(l1_grad=True)),
                      X, T, sample_weight, tasks)
        else:
            self._fit_stochastic(X, T, y, sample_weight, incremental, given_val, tasks)
        assert self._model.flat is not None
        if not np.isfinite(ops.sumsq(self._model.flat.data)):
            raise DivergenceError("Solver produced non-finite parameter weights. The input data may contain large "
                                  "values and need to be preprocessed.")
        tasks.end()
        return self

    def _class_weighted(self, y, sample_weight, incremental):
        """sample_weight times the class weights (MLPClassifier's class_weight); the regressor has none."""
        return sample_weight

    def _batch_size(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        return int(np.clip(self.batch_size, 1, n))

    def _fit_stochastic(self, X, T, y_raw, sample_weight, incremental, given_val=None, tasks=None):
        """sklearn's _fit_stochastic, epoch by epoch through the Trainer: the same draws from the same
        RandomState (split, then one shuffle of the previous order per epoch: sklearn.utils.shuffle(order,
        random_state=rs) is order[rs.permutation(n)], without its validation), the same stopping rule."""
        if not incremental or not hasattr(self, "_opt"):
            self._opt = self._make_optimizer()
            self._sched = None
        if not incremental:
            self._snapshots = None
        if given_val is not None:                                          # fit(..., X_val=, y_val=): no split
            (X_train, T_train, sw_train), val = (X, T, sample_weight), given_val
        elif self.early_stopping:
            (X_train, T_train, sw_train), val = self._split(X, T, y_raw, sample_weight)
            _checks.check_split_weights(self, sw_train, val[3])
        else:
            (X_train, T_train, sw_train), val = (X, T, sample_weight), None
        n = X_train.shape[0]
        bs = self._batch_size(n)
        if not incremental or self._sched is None:
            self._sched = self._make_schedule(-(-n // bs))
        rs = self._rs
        averages = {} if incremental else self._make_averages(-(-n // bs))
        trainer = Trainer(self._model, self._loss_fn(), self._opt, self._sched, batch_size=bs,
                          shuffle=(lambda order: order[rs.permutation(len(order))]) if self.shuffle else False,
                          penalty=self._penalty(l1_grad=False), samples_seen=self.t_,
                          callbacks=list(averages.values()))
        self._val_loss = self._loss_fn()
        self.n_iter_ = 0                                                   # sklearn counts each call's epochs
        bar = None
        try:
            for it in range(self.max_iter):
                if self.verbose:
                    from tqdm.auto import tqdm
                    bar = tqdm(total=n, desc=f"epoch {self.n_iter_ + 1}", unit="smp", leave=False)
                if tasks is not None:
                    tasks.begin_iteration("epoch")
                try:
                    rec = trainer.train_epoch(X_train, T_train, sw_train, progress=bar)
                except DivergenceError as e:
                    cause = _checks.input_overflow(self, X_train, T_train, sw_train)
                    if cause is not None:
                        raise cause from None
                    if val is None:
                        raise self._divergence(e) from None
                    self._diverged_with_validation()                       # sklearn: nan score, stop
                    break
                self.n_iter_ += 1
                self.loss_ = rec["train_loss"]
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                self._update_no_improvement_count(val)
                if bar is not None:
                    bar.close()
                    bar = None
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}" + (
                        f", validation score = {self.validation_scores_[-1]:.6f}"  # type: ignore[index]  # a list
                        if val else ""))
                if tasks is not None and tasks.end_iteration():            # a callback asked to stop
                    break
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if val else "Training loss"
                    msg = (f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                           "consecutive epochs.")
                    if self._sched is None or self._sched.trigger_stopping():
                        if self.verbose:
                            print(msg + " Stopping.")
                        break
                    if self.verbose:
                        print(msg + f" Setting learning rate to {self._opt.lr:f}")
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                                  "optimization hasn't converged yet.", ConvergenceWarning)
        except KeyboardInterrupt:
            trainer.rollback()
            warnings.warn(f"Training interrupted by user; the estimator keeps the weights of the last completed "
                          f"epoch ({self.n_iter_}).")
        finally:
            if bar is not None:
                bar.close()
        if val and self.restore_best_weights and not averages:
            trainer.restore(self._best)
        self._finish_averages(averages, X_train)

    def _check_solver(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]     # float32 fits and transforms in float32
        return tags
