"""MLPClassifier and MLPRegressor: scikit-learn's MLP estimators, rebuilt on tinynn.

Same constructor arguments, defaults, fitted attributes and behaviour as ``sklearn.neural_network``'s, so code
written for sklearn works by changing the import; plus what sklearn's frozen module declined: dropout, batch
norm, custom initialisation, more optimizers and schedules, a GPU, validation-loss curves, best-weight restore,
safe model files. The estimator is glue: Sequential + loss + optimizer + schedule + mini-batches.

What sklearn optimises, and so does this:
    L = Σ_i w_i ℓ_i / Σ_i w_i  +  (α/2) Σ_layers ‖W‖² / Σ_i w_i        (per mini-batch; w_i = 1 by default)
    ℓ_i: softmax cross-entropy (multiclass), Σ_j binary cross-entropy (binary, multi-label),
         ½ Σ_j (ŷ_ij - y_ij)² (regression; sklearn reports loss_ averaged over outputs)
Adam and SGD follow torch.optim's rules (tinynn.optim), which equal sklearn's for a constant learning rate up
to where eps sits in Adam's denominator.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from tinynn import kernels
from tinynn.kernels import ops
from tinynn.kernels.config import ACTIVATIONS as ACT_CODES

from . import init as _init
from . import io, optim
from .errors import DivergenceError, DivergenceGuard
from .layers import ACTIVATIONS, BatchNorm1d, Dropout, Linear
from .losses import MSELoss, SigmoidCrossEntropy, SoftmaxCrossEntropy
from .model import Sequential
from .training import make_schedule

_SKLEARN_ACT = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_EXTRA_OPTIMIZERS = {"sgd", "adam", "momentum", "rmsprop", "adagrad", "adamw"}
_SCHEDULES = {"cosine", "step", "exponential", "warmup_cosine"}


def _as_generator(random_state):
    """random_state (None, int, RandomState, Generator) -> a np.random.Generator (no global np.random)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


class _BaseMLP(BaseEstimator):
    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state", np.random.Generator],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"), Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "init": [StrOptions({"auto"} | set(_init.INITIALIZERS)), callable],
        "optimizer": [StrOptions(_EXTRA_OPTIMIZERS), None],
        "lr_schedule": [StrOptions(_SCHEDULES), None],
        "device": [StrOptions({"cpu", "cuda"})],
        "dtype": [None, type, np.dtype, str],
        "restore_best_weights": ["boolean"],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0, batch_norm=False, init="auto",
                 optimizer=None, lr_schedule=None, device="cpu", dtype=None, restore_best_weights=True):
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

    # ------------------------------------------------------------------ model pieces
    def _hidden(self):
        h = self.hidden_layer_sizes
        h = [h] if not hasattr(h, "__iter__") else list(h)
        if any((not isinstance(v, numbers.Integral)) or v <= 0 for v in h):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {h}.")
        return [int(v) for v in h]

    def _build(self, n_features, n_outputs, dtype):
        sizes = [n_features] + self._hidden() + [n_outputs]
        rng = self._rng
        layers = []
        for i in range(len(sizes) - 1):
            fan_in, fan_out = sizes[i], sizes[i + 1]
            if self.init == "auto":  # sklearn's: Glorot-uniform weights and intercepts, factor 2 for logistic
                bound = np.sqrt((2.0 if self.activation == "logistic" else 6.0) / (fan_in + fan_out))
                lin = Linear(fan_in, fan_out, dtype=dtype, init=lambda s, r, d: r.uniform(-bound, bound, s).astype(d),
                             rng=rng)
                lin.bias.data[...] = rng.uniform(-bound, bound, fan_out)
            else:
                lin = Linear(fan_in, fan_out, dtype=dtype, init=self.init, rng=rng)
            layers.append(lin)
            if i == len(sizes) - 2:
                break
            if self.batch_norm:
                layers.append(BatchNorm1d(fan_out, dtype=dtype))
            layers.append(ACTIVATIONS[_SKLEARN_ACT[self.activation]]())
            if self.dropout:
                layers.append(Dropout(self.dropout, rng=np.random.default_rng(rng.integers(2**63))))
        model = Sequential(*layers)
        if self.device != "cpu":
            model.to(self.device)
        self._model = model
        self._linears = [l for l in model.layers if isinstance(l, Linear)]
        self.n_layers_ = len(sizes)
        self.n_outputs_ = n_outputs

    def _make_optimizer(self):
        name = self.optimizer or self.solver
        params = self._model.parameters()
        lr = self.learning_rate_init
        if name == "adam":
            return optim.Adam(params, lr=lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        if name == "adamw":
            return optim.AdamW(params, lr=lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        if name == "sgd":
            return optim.SGD(params, lr=lr, momentum=self.momentum,
                             nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        if name == "momentum":
            return optim.Momentum(params, lr=lr, beta=self.momentum, nesterov=self.nesterovs_momentum)
        if name == "rmsprop":
            return optim.RMSprop(params, lr=lr, eps=self.epsilon)
        return optim.Adagrad(params, lr=lr)

    # ------------------------------------------------------------------ validation
    def _fit_dtype(self, X):
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64

    def _validate_X(self, X):
        """Prediction input: sklearn's checks (finite, 2-D, dense, feature count), in the model's dtype."""
        X = validate_data(self, X, reset=False, accept_sparse=False, dtype=self._dtype_)
        return np.ascontiguousarray(X)

    def _validate_X_y(self, X, y, reset):
        fitted = None if reset else getattr(self, "_dtype_", None)
        X, y = validate_data(self, X, y, reset=reset, accept_sparse=False, multi_output=True,
                             y_numeric=not self._is_classifier,
                             dtype=fitted if fitted is not None else (np.float64, np.float32))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self._is_classifier:
            check_classification_targets(y)
        return np.ascontiguousarray(X, dtype=fitted if fitted is not None else self._fit_dtype(X)), y

    # ------------------------------------------------------------------ forward helpers
    def _to_dev(self, a):
        return a if self.device == "cpu" else kernels.to_device(np.ascontiguousarray(a), self.device)

    def _raw_output(self, X):
        """Network output (logits) on the host, evaluated in chunks in eval mode."""
        model = self._model
        was = model.training
        model.eval()
        out = np.empty((X.shape[0], self.n_outputs_), dtype=self._dtype_)
        for s in range(0, X.shape[0], 4096):
            out[s:s + 4096] = kernels.to_host(model.forward(self._to_dev(X[s:s + 4096])))
        model.train(was)
        return out

    def _forward_pass_fast(self, X):
        """sklearn's name: the output after the output activation."""
        Z = self._raw_output(X)
        act = self.out_activation_
        if act == "softmax":
            return ops.softmax_rows(Z, out=Z)
        if act == "logistic":
            return ops.act_forward(Z, ACT_CODES["sigmoid"], 0.0, out=Z)
        return Z

    # ------------------------------------------------------------------ attributes as sklearn's
    @property
    def coefs_(self):
        if not hasattr(self, "_linears"):
            raise AttributeError("coefs_: the estimator is not fitted yet")
        return [kernels.to_host(l.weight.data) for l in self._linears]

    @property
    def intercepts_(self):
        if not hasattr(self, "_linears"):
            raise AttributeError("intercepts_: the estimator is not fitted yet")
        return [kernels.to_host(l.bias.data) for l in self._linears]

    # ------------------------------------------------------------------ fitting
    def _targets(self, y, incremental, reset):
        """Encode y for the loss: sets out_activation_ (on a first pass) and returns (T, n_outputs)."""
        raise NotImplementedError

    def _loss_fn(self):
        raise NotImplementedError

    def _fit(self, X, y, sample_weight=None, incremental=False):
        self._hidden()
        first_pass = not hasattr(self, "_model") or (not self.warm_start and not incremental)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        X, y = self._validate_X_y(X, y, first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        T, n_outputs = self._targets(y, incremental, first_pass)
        if first_pass:
            self._rng = _as_generator(self.random_state)
            self._dtype_ = X.dtype
            self._build(X.shape[1], n_outputs, self._dtype_)
            self.n_iter_ = 0
            self.t_ = 0
            self._init_curves()
        elif not hasattr(self, "_rng"):
            self._rng = _as_generator(self.random_state)
        if T.dtype.kind == "f":
            T = T.astype(self._dtype_)
        self._lossf = self._loss_fn()
        self._val_lossf = self._loss_fn()   # its own work buffers: validation batches differ in size and device
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, T, sample_weight)
        else:
            self._fit_stochastic(X, T, y, sample_weight, incremental)
        return self

    def _init_curves(self):
        if self.solver == "lbfgs":
            return
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.validation_loss_curve_ = []
            self.best_validation_score_ = -np.inf
            self._best_val_loss = np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _objective(self, Xb, Tb, swb, training=True):
        """Forward + loss (+ backward into the flat gradient buffer when training); returns the loss value.

        The L2 term touches the weights only; Sequential places every Linear weight at the front of its flat
        buffer, so W = flat.data[:n_first] and one dot and one axpy cover all layers."""
        model, lossf = self._model, self._lossf
        value = lossf(model.forward(Xb), Tb, swb)
        n = Xb.shape[0] if swb is None else float(np.sum(swb))
        flat = model.flat
        W = flat.data[:flat.n_first]                                          # every Linear weight
        if not training:
            return value + (0.5 * self.alpha * ops.sumsq(W) / n if self.alpha else 0.0)
        dZ = lossf.backward()
        if self._grad_scale != 1.0:
            ops.scale(dZ, self._grad_scale)
        model.backward(dZ)                                                    # overwrites every gradient
        if self.alpha:
            # ∂/∂W (α/2)‖W‖²/Σw = αW/Σw added to the gradient, ‖W‖² returned by the same pass
            value += 0.5 * self.alpha * ops.add_l2(W, flat.grad[:flat.n_first], self.alpha / n) / n
        return value

    def _fit_stochastic(self, X, T, y_raw, sample_weight, incremental):
        model = self._model
        if not incremental or not hasattr(self, "_opt"):
            self._opt = self._make_optimizer()
            self._sched = None
        opt = self._opt
        early_stopping = self.early_stopping
        if early_stopping:
            stratify = y_raw if (self._is_classifier and self.n_outputs_ == 1 or
                                 getattr(self, "_y_type", "") == "multiclass") else None
            split_seed = int(self._rng.integers(2**31 - 1))
            parts = train_test_split(X, T, *(() if sample_weight is None else (sample_weight,)), y_raw,
                                     random_state=split_seed, test_size=self.validation_fraction, stratify=stratify)
            if sample_weight is None:
                X_train, X_val, T_train, T_val, _, y_val = parts
                sw_train = sw_val = None
            else:
                X_train, X_val, T_train, T_val, sw_train, sw_val, _, y_val = parts
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                                 "your dataset.")
        else:
            X_train, T_train, sw_train = X, T, sample_weight
            X_val = T_val = y_val = sw_val = None
        n = X_train.shape[0]
        if self.batch_size == "auto":
            bs = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            bs = int(np.clip(self.batch_size, 1, n))
        steps = -(-n // bs)
        if self.lr_schedule is not None and (not incremental or self._sched is None):
            self._sched = make_schedule(self.lr_schedule, opt, self.max_iter * steps, steps)
        flat = model.flat
        snapshot = kernels.empty(flat.data.shape, flat.data.dtype, like=flat.data)
        xbuf = np.empty((bs, X_train.shape[1]), X_train.dtype)
        tbuf = np.empty((bs,) + T_train.shape[1:], T_train.dtype)
        order = np.arange(n)
        bar = None
        guard = DivergenceGuard()
        try:
            for it in range(self.max_iter):
                kernels.assign(snapshot, flat.data)                        # last completed epoch, for rollback
                if self.shuffle:
                    order = self._rng.permutation(n)
                if self.verbose:
                    from tqdm.auto import tqdm
                    bar = tqdm(total=n, desc=f"epoch {self.n_iter_ + 1}", unit="smp", leave=False)
                total = 0.0
                model.train()
                for step, s in enumerate(range(0, n, bs)):
                    idx = order[s:s + bs]
                    if len(idx) == bs:
                        Xb, Tb = np.take(X_train, idx, axis=0, out=xbuf, mode="clip"), np.take(T_train, idx, axis=0, out=tbuf, mode="clip")
                    else:
                        Xb, Tb = X_train[idx], T_train[idx]
                    swb = None if sw_train is None else sw_train[idx]
                    if swb is not None and swb.sum() <= 0:
                        continue                                           # a batch of zero weight teaches nothing
                    # no zero_grad: backward overwrites every gradient of this model (DESIGN: no accumulation)
                    value = self._objective(self._to_dev(Xb), self._to_dev(Tb), swb)
                    if guard.diverged(value):
                        kernels.assign(flat.data, snapshot)
                        raise DivergenceError(
                            f"{type(self).__name__}: the training loss became {value} at epoch {self.n_iter_ + 1}, "
                            f"step {step + 1} (learning_rate_init={self.learning_rate_init}); the weights of the last "
                            "completed epoch were kept. Try a lower learning_rate_init.")
                    opt.step()
                    if self._sched is not None:
                        self._sched.step()
                    total += value * len(idx)
                    if bar is not None:
                        bar.update(len(idx))
                if not math.isfinite(ops.sumsq(flat.data)):                # weights blew up, loss not yet
                    kernels.assign(flat.data, snapshot)
                    raise DivergenceError(
                        f"{type(self).__name__}: the weights became non-finite during epoch {self.n_iter_ + 1} "
                        f"(learning_rate_init={self.learning_rate_init}); the weights of the last completed epoch "
                        "were kept. Try a lower learning_rate_init.")
                self.n_iter_ += 1
                self.loss_ = total / n
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                self._update_no_improvement_count(early_stopping, X_val, T_val, y_val, sw_val)
                if bar is not None:
                    post = {"loss": f"{self.loss_:.4f}"}
                    if early_stopping:
                        post["val"] = f"{self.validation_scores_[-1]:.4f}"
                    bar.set_postfix(post)
                    bar.close()
                    bar = None
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}" +
                          (f", validation score = {self.validation_scores_[-1]:.6f}" if early_stopping else ""))
                if self.learning_rate == "invscaling" and (self.optimizer or self.solver) == "sgd":
                    opt.lr = self.learning_rate_init / (self.t_ + 1) ** self.power_t
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                           "consecutive epochs.")
                    if self.learning_rate == "adaptive" and (self.optimizer or self.solver) == "sgd" and opt.lr > 1e-6:
                        opt.lr /= 5.0
                        if self.verbose:
                            print(msg + f" Setting learning rate to {opt.lr:f}")
                        self._no_improvement_count = 0
                    else:
                        if self.verbose:
                            print(msg + " Stopping.")
                        break
                if incremental:
                    break
                if self.n_iter_ == self.max_iter or it == self.max_iter - 1:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                                  "optimization hasn't converged yet.", ConvergenceWarning)
        except KeyboardInterrupt:
            kernels.assign(flat.data, snapshot)
            warnings.warn(f"Training interrupted by user; the estimator keeps the weights of the last completed "
                          f"epoch ({self.n_iter_}).")
        finally:
            if bar is not None:
                bar.close()
        if early_stopping and self.restore_best_weights and hasattr(self, "_best_params"):
            kernels.assign(flat.data, self._best_params)
            self._restore_state(self._best_state)

    def _module_state(self):
        return [kernels.to_host(getattr(l, s)).copy() for l in self._model.layers for s in l._state_names]

    def _restore_state(self, state):
        it = iter(state)
        for l in self._model.layers:
            for s in l._state_names:
                kernels.assign(getattr(l, s), next(it))

    def _update_no_improvement_count(self, early_stopping, X_val, T_val, y_val, sw_val):
        """sklearn's rule: no improvement = validation score below best + tol (or training loss above
        best - tol). One addition: a validation score *equal* to the best, with a validation loss lower by
        more than tol, counts as an improvement (and as a new best). Accuracy on a small validation set
        moves in steps of 1/n_val and plateaus while the model still improves; sklearn then stops early
        and, on load_digits, sometimes 10 points short."""
        if early_stopping:
            score = self._score(X_val, y_val, sample_weight=sw_val)
            self.validation_scores_.append(score)
            Z = self._raw_output(X_val)                                  # host logits, on any device
            val_loss = self._val_lossf(Z, T_val, sw_val) * self._loss_report_scale
            self.validation_loss_curve_.append(val_loss)
            best_loss = getattr(self, "_best_val_loss", np.inf)
            tie_better = score >= self.best_validation_score_ and val_loss < best_loss - self.tol
            if score < self.best_validation_score_ + self.tol and not tie_better:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_ or (score == self.best_validation_score_ and val_loss < best_loss):
                self.best_validation_score_ = score
                self._best_val_loss = val_loss
                self._best_params = kernels.to_host(self._model.flat.data).copy()
                self._best_state = self._module_state()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _fit_lbfgs(self, X, T, sample_weight):
        import scipy.optimize

        flat = self._model.flat
        Xd, Td = self._to_dev(X), self._to_dev(T)
        self._model.train()

        def fun(theta):
            kernels.assign(flat.data, theta.astype(flat.data.dtype))
            ops.fill(flat.grad, 0.0)
            value = self._objective(Xd, Td, sample_weight)
            return value, np.asarray(kernels.to_host(flat.grad), dtype=np.float64).copy()

        theta0 = np.asarray(kernels.to_host(flat.data), dtype=np.float64).copy()
        res = scipy.optimize.minimize(fun, theta0, method="L-BFGS-B", jac=True,
                                      options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        if res.status != 0:
            warnings.warn(f"lbfgs failed to converge after {res.nit} iteration(s) (status={res.status}): "
                          f"{res.message}. Increase max_iter or max_fun, or scale the data.", ConvergenceWarning)
        if not np.all(np.isfinite(res.x)):
            raise DivergenceError(f"{type(self).__name__}: L-BFGS produced non-finite weights")
        kernels.assign(flat.data, res.x.astype(flat.data.dtype))
        self.n_iter_ = int(res.nit)
        self.loss_ = float(res.fun)

    def _check_solver(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    def _score(self, X, y, sample_weight=None):
        raise NotImplementedError

    # ------------------------------------------------------------------ files
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
        arrays = {f"model/{k}": v for k, v in self._model.state_dict().items()}
        fitted = {"n_iter_": self.n_iter_, "n_layers_": self.n_layers_, "n_outputs_": self.n_outputs_,
                  "out_activation_": self.out_activation_, "n_features_in_": self.n_features_in_,
                  "dtype_": np.dtype(self._dtype_).name, "loss_": getattr(self, "loss_", None),
                  "t_": getattr(self, "t_", 0)}
        for name in ("loss_curve_", "validation_scores_", "validation_loss_curve_"):
            v = getattr(self, name, None)
            fitted[name] = None if v is None else [float(x) for x in v]
        for name in ("best_loss_", "best_validation_score_"):
            v = getattr(self, name, None)
            fitted[name] = None if v is None else float(v)
        if hasattr(self, "feature_names_in_"):
            arrays["feature_names_in_"] = np.asarray(self.feature_names_in_, dtype=str)
        if hasattr(self, "_opt"):  # optimizer and generator state: partial_fit after load continues exactly
            osd = self._opt.state_dict()
            arrays.update({f"optim/{k}": v for k, v in osd.items() if isinstance(v, np.ndarray)})
            fitted["optim_scalars"] = {k: v for k, v in osd.items() if not isinstance(v, np.ndarray)}
        fitted["rng_state"] = io.rng_state(self._rng)
        fitted["dropout_rngs"] = [io.rng_state(l.rng) for l in self._model.layers if isinstance(l, Dropout)]
        self._save_extra(arrays, fitted)
        io.save_npz(path, arrays, {"params": params, "fitted": fitted}, kind=self._KIND)
        return path

    def _save_extra(self, arrays, fitted):
        pass

    @classmethod
    def load(cls, path):
        """A fitted estimator from ``save``'s file; read with allow_pickle=False (nothing is unpickled)."""
        arrays, meta = io.load_npz(path, kind=cls._KIND)
        params = meta["params"]
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        if params.get("dtype") is not None:
            params["dtype"] = np.dtype(params["dtype"])
        est = cls(**params)
        fitted = meta["fitted"]
        est._rng = _as_generator(params["random_state"])
        est._dtype_ = np.dtype(fitted.pop("dtype_"))
        est._load_extra(arrays, fitted)
        est._build(fitted["n_features_in_"], fitted["n_outputs_"], est._dtype_)
        est._model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        optim_scalars = fitted.pop("optim_scalars", None)
        if optim_scalars is not None:
            est._opt = est._make_optimizer()
            est._sched = None
            osd = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
            est._opt.load_state_dict({**osd, **optim_scalars})
        io.set_rng_state(est._rng, fitted.pop("rng_state"))
        for l, st in zip([l for l in est._model.layers if isinstance(l, Dropout)], fitted.pop("dropout_rngs")):
            io.set_rng_state(l.rng, st)
        for k, v in fitted.items():
            if v is not None or k in ("validation_scores_", "best_validation_score_", "best_loss_"):
                setattr(est, k, v)
        if "feature_names_in_" in arrays:
            est.feature_names_in_ = arrays["feature_names_in_"].astype(object)
        return est

    def _load_extra(self, arrays, fitted):
        pass

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: sklearn.neural_network.MLPClassifier's interface on tinynn.

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, learning_rate_init, power_t,
    max_iter, shuffle, random_state, tol, verbose, warm_start, momentum, nesterovs_momentum, early_stopping,
    validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun
        As in scikit-learn (same names, defaults and meaning). ``random_state`` seeds a
        ``np.random.Generator``; ``verbose=True`` shows a tqdm progress bar per epoch.
    dropout : float in [0, 1), default 0.0
        Inverted dropout after every hidden activation.
    batch_norm : bool, default False
        BatchNorm1d between every hidden Linear and its activation.
    init : "auto" or a name of ``tinynn.init.INITIALIZERS``, default "auto" (sklearn's Glorot-uniform)
    optimizer : None or "sgd", "adam", "momentum", "rmsprop", "adagrad", "adamw"
        Overrides ``solver`` (None: use ``solver``); learning_rate_init is its learning rate.
    lr_schedule : None or "cosine", "step", "exponential", "warmup_cosine"
        A per-step schedule over max_iter epochs, on top of ``learning_rate``.
    device : "cpu" or "cuda"
    dtype : None, float32 or float64
        None: float32 input trains in float32, anything else in float64 (as sklearn); float32 forces the fast path.
    restore_best_weights : bool, default True
        With early stopping, end with the weights of the best validation score (sklearn always does).

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
    _grad_scale = 1.0
    _loss_report_scale = 1.0

    def _targets(self, y, incremental, reset):
        y_type = type_of_target(y)
        if y_type == "multiclass-multioutput":
            raise ValueError("MLPClassifier: multiclass-multioutput targets are not supported")
        if reset and not (incremental and hasattr(self, "classes_")):
            if y_type.startswith("multilabel"):
                self.classes_ = np.arange(y.shape[1])
                self._y_type = "multilabel"
            else:
                self.classes_ = unique_labels(y)
                if len(self.classes_) < 2:
                    raise ValueError(f"MLPClassifier needs samples of at least 2 classes in the data, but the data "
                                     f"contains only one class: {self.classes_[0]!r}")
                self._y_type = "binary" if len(self.classes_) == 2 else "multiclass"
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
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features) and y (n_samples,) or a (n_samples, n_labels) indicator.

        Returns self.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y). ``classes`` (all labels) is required on the first call."""
        if not hasattr(self, "classes_"):
            if classes is None and not type_of_target(y).startswith("multilabel"):
                raise ValueError("classes must be passed on the first call to partial_fit.")
            if type_of_target(y).startswith("multilabel"):
                self.classes_ = np.arange(np.asarray(y).shape[1])
                self._y_type = "multilabel"
            else:
                self.classes_ = unique_labels(classes)
                self._y_type = "binary" if len(self.classes_) == 2 else "multiclass"
                if len(self.classes_) < 2:
                    raise ValueError("partial_fit needs at least 2 classes in `classes`")
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"`classes={classes}` is not the same as on the first call to partial_fit, "
                             f"which was {self.classes_}")
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), columns ordered as ``classes_``."""
        check_is_fitted(self)
        X = self._validate_X(X)
        P = self._forward_pass_fast(X)
        if self._y_type == "binary":
            p = P[:, 0]
            return np.vstack([1 - p, p]).T
        return P

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted classes (n_samples,), or a (n_samples, n_labels) indicator for multi-label targets."""
        check_is_fitted(self)
        X = self._validate_X(X)
        P = self._forward_pass_fast(X)
        if self._y_type == "multilabel":
            return (P > 0.5).astype(int)
        if self._y_type == "binary":
            return self.classes_[(P[:, 0] > 0.5).astype(int)]
        return self.classes_[np.argmax(P, axis=1)]

    def _score(self, X, y, sample_weight=None):
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)

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


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: sklearn.neural_network.MLPRegressor's interface on tinynn.

    Parameters and attributes as ``MLPClassifier`` (no ``classes_``; ``out_activation_`` is "identity"), plus
    ``loss="squared_error"`` (sklearn's first argument; "poisson" is not supported).
    """

    _KIND = "MLPRegressor"
    _is_classifier = False
    _parameter_constraints = {**_BaseMLP._parameter_constraints, "loss": [StrOptions({"squared_error"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0, batch_norm=False,
                 init="auto", optimizer=None, lr_schedule=None, device="cpu", dtype=None, restore_best_weights=True):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         dropout=dropout, batch_norm=batch_norm, init=init, optimizer=optimizer,
                         lr_schedule=lr_schedule, device=device, dtype=dtype,
                         restore_best_weights=restore_best_weights)
        self.loss = loss

    def _targets(self, y, incremental, reset):
        self.out_activation_ = "identity"
        T = np.asarray(y, dtype=np.float64)
        T = T.reshape(-1, 1) if T.ndim == 1 else T
        if not reset and hasattr(self, "n_outputs_") and T.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {T.shape[1]} outputs, but the model was fitted with {self.n_outputs_}")
        self._grad_scale = T.shape[1] / 2.0      # MSE grad 2(ŷ-y)/(d n) -> sklearn's (ŷ-y)/n, summed over outputs
        self._loss_report_scale = 0.5
        return np.ascontiguousarray(T), T.shape[1]

    def _loss_fn(self):
        return _HalfMSE()

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features) and y (n_samples,) or (n_samples, n_outputs). Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predictions, (n_samples,) for one output, else (n_samples, n_outputs)."""
        check_is_fitted(self)
        X = self._validate_X(X)
        Y = self._forward_pass_fast(X)
        return Y[:, 0].copy() if Y.shape[1] == 1 else Y

    def _score(self, X, y, sample_weight=None):
        return r2_score(y, self.predict(X), sample_weight=sample_weight)


class _HalfMSE(MSELoss):
    """sklearn's squared loss: ½ · mean over outputs of the (weighted) mean over samples of (ŷ - y)²."""

    def forward(self, P, T, sample_weight=None):
        return 0.5 * super().forward(P, T, sample_weight)
