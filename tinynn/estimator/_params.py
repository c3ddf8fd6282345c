"""The estimators' constructor arguments: sklearn's names, defaults and constraints, plus tinynn's own.

Every name-valued argument is checked against the one table of its kind: activations (tinynn.layers),
optimizers (tinynn.optim), schedules (tinynn.schedules) and initialisers (tinynn.init)."""
from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions

from .. import init as _init
from .. import optim, schedules
from ..layers import ACTIVATIONS

SKLEARN_RATES = ("constant", "invscaling", "adaptive")      # sklearn's learning_rate: SCHEDULES entries

PARAMETER_CONSTRAINTS: dict = {
    "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
    "alpha": [Interval(numbers.Real, 0, None, closed="left")],
    "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
    "learning_rate": [StrOptions(set(SKLEARN_RATES) & set(schedules.SCHEDULES))],
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
    "optimizer": [StrOptions(set(optim.OPTIMIZERS)), None],
    "lr_schedule": [StrOptions(set(schedules.SCHEDULES) - set(SKLEARN_RATES)), None],
    "device": [StrOptions({"cpu", "cuda"})],
    "dtype": [None, type, np.dtype, str],
    "restore_best_weights": ["boolean"],
    "snapshots": [Interval(numbers.Integral, 2, None, closed="left"), None],
    "swa": ["boolean"],
    "ema": [Interval(numbers.Real, 0, 1, closed="neither"), None],
    "l1": [Interval(numbers.Real, 0, None, closed="left")],
    "l1_mode": [StrOptions({"subgradient", "proximal"})],
    "transform_layer": [Interval(numbers.Integral, None, None, closed="neither")],
}

PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, learning_rate_init, power_t,
    max_iter, shuffle, random_state, tol, verbose, warm_start, momentum, nesterovs_momentum, early_stopping,
    validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun
        As in scikit-learn (same names, defaults and meaning). ``activation`` also takes the other names of
        ``tinynn.ACTIVATIONS``; ``random_state`` seeds a ``np.random.Generator``; ``verbose=True`` shows a
        tqdm progress bar per epoch.
    dropout : float in [0, 1), default 0.0
        Inverted dropout after every hidden activation.
    batch_norm : bool, default False
        BatchNorm1d between every hidden Linear and its activation.
    init : "auto" or a name of ``tinynn.init.INITIALIZERS``, default "auto" (sklearn's Glorot-uniform)
    optimizer : None or a name of ``tinynn.optim.OPTIMIZERS``
        Overrides ``solver`` (None: use ``solver``); learning_rate_init is its learning rate; ``momentum``,
        ``nesterovs_momentum``, ``beta_1``, ``beta_2`` and ``epsilon`` go to every optimizer that has them.
    lr_schedule : None or a per-step name of ``tinynn.schedules.SCHEDULES`` ("cosine", "step", ...)
        A per-step schedule over max_iter epochs; it replaces ``learning_rate`` (which applies to sgd only).
    device : "cpu" or "cuda"
    dtype : None, float32 or float64
        None: float32 input trains in float32, anything else in float64 (as sklearn); float32 forces the fast path.
    restore_best_weights : bool, default True
        With early stopping, end with the weights of the best validation score (sklearn always does).
    snapshots : None or int >= 2, default None
        Snapshot ensemble (Huang et al. 2017): ``snapshots`` cosine cycles with restarts over max_iter epochs
        (replaces the schedule); a snapshot at the end of each; predictions average the snapshots' outputs
        (softmax probabilities for classifiers). Applies to ``fit`` (not ``partial_fit``).
    swa : bool, default False
        Stochastic weight averaging (Izmailov et al. 2018): cosine to a tenth of the rate over the first three
        quarters of max_iter, then constant; the weights at the end of the remaining epochs are averaged and
        become the model's (BatchNorm statistics recomputed on the training data). ``fit`` only.
    ema : None or float in (0, 1), default None
        Exponential moving average of the weights after every step with this decay (e.g. 0.999); the average
        becomes the model's weights at the end of ``fit`` (BatchNorm statistics recomputed).
        At most one of snapshots, swa and ema; with them the averaged model replaces restore_best_weights.
    l1 : float >= 0, default 0.0
        L1 penalty on the Linear weights (not the biases), as ``tinynn.optim``'s ``l1``: the objective gets
        ``l1 * Σ|W|`` (beside sklearn's ``alpha/(2n) ‖W‖²``), and ``loss_`` includes it.
    l1_mode : "subgradient" or "proximal", default "subgradient"
        "subgradient": ``l1 * sign(W)`` is added to the gradient (every solver and optimizer). "proximal": the
        SGD step then soft thresholding ``W = sign(W) max(|W| - lr*l1, 0)`` (ISTA; exact zeros); solver="sgd"
        (or optimizer="sgd") only.
    transform_layer : int, default -1
        The hidden layer whose activations ``transform`` returns (0 = first hidden layer, -1 = the last).
"""


def random_state_of(random_state):
    """sklearn's check_random_state, also taking a np.random.Generator (which seeds a RandomState from it).
    Like sklearn, the estimator calls it at every fit: an int gives the same draws each time."""
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(random_state.integers(2**32, dtype=np.uint64))
    return check_random_state(random_state)
