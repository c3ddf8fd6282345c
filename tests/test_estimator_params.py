"""The constructors: sklearn's defaults (sklearn's own MLPs are the oracle), tinynn's documented defaults, and
every argument kept as given (get_params returns it, so clone and GridSearchCV see it)."""
import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.neural_network import MLPRegressor as SkRegressor

import tinynn as tn

TINYNN_DEFAULTS = dict(dropout=0.0, batch_norm=False, init="auto", optimizer=None, lr_schedule=None, device="cpu",
                       dtype=None, restore_best_weights=True, snapshots=None, swa=False, ema=None, l1=0.0,
                       l1_mode="subgradient", transform_layer=-1)
GIVEN = dict(hidden_layer_sizes=(7, 3), activation="tanh", solver="sgd", alpha=0.5, batch_size=17,
             learning_rate="invscaling", learning_rate_init=0.25, power_t=0.75, max_iter=33, shuffle=False,
             random_state=5, tol=0.125, verbose=True, warm_start=True, momentum=0.5, nesterovs_momentum=False,
             early_stopping=True, validation_fraction=0.3, beta_1=0.5, beta_2=0.75, epsilon=1e-3,
             n_iter_no_change=4, max_fun=99, dropout=0.25, batch_norm=True, init="kaiming_normal",
             optimizer="adamw", lr_schedule="cosine", device="cuda", dtype=np.float32,
             restore_best_weights=False, snapshots=3, swa=True, ema=0.5, l1=0.125, l1_mode="proximal",
             transform_layer=0)


@pytest.mark.parametrize("ours,theirs", [(tn.MLPClassifier, SkClassifier), (tn.MLPRegressor, SkRegressor)])
def test_defaults(ours, theirs):
    mine, sk = ours().get_params(), theirs().get_params()
    shared = set(mine) & set(sk)
    assert len(shared) >= 23
    assert {k: mine[k] for k in shared} == {k: sk[k] for k in shared}
    assert {k: mine[k] for k in TINYNN_DEFAULTS} == TINYNN_DEFAULTS


@pytest.mark.parametrize("cls,extra", [(tn.MLPClassifier, dict(class_weight="balanced")),
                                       (tn.MLPRegressor, dict(loss="huber"))])
def test_every_argument_is_kept(cls, extra):
    kw = {**GIVEN, **extra}
    assert cls(**kw).get_params() == kw
