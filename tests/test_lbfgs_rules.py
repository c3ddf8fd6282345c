"""The L-BFGS fit end to end (tinynn/estimator/_lbfgs.py): the guard at the initial weights gets this fit's
estimator, X and y: its message names the estimator and the largest |x| and |y| of the data given (the guard
itself is tested on its own in test_estimator_diagnoses.py)."""
import numpy as np
import pytest

import tinynn as tn


def test_initial_overflow_is_diagnosed_with_this_fits_data():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.standard_normal(20) * 1e200
    X[0, 0] = 7.5
    y[0] = 3e200
    est = tn.MLPRegressor(solver="lbfgs", max_iter=5, dtype=np.float64, hidden_layer_sizes=(4,))
    with pytest.raises(ValueError) as e:
        est.fit(X, y)
    msg = str(e.value)
    assert msg.startswith("MLPRegressor: solver='lbfgs': the objective at the initial weights is inf; the loss on "
                          "(X, y) is inf at the initial weights, although the network's output is finite"), msg
    assert "largest |x| = 7.5, largest |y| = 3e+200" in msg, msg



@pytest.mark.parametrize("cls", [tn.MLPRegressor, tn.MLPClassifier])
def test_a_result_that_is_no_model_is_refused_naming_the_estimator(cls, monkeypatch):
    """scipy ending with non-finite weights (a stand-in result: a finite start cannot make scipy's line search
    return them) is a DivergenceError naming the estimator, and no weights are taken from it."""
    import scipy.optimize
    from types import SimpleNamespace

    from tinynn.errors import DivergenceError

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    y = (X[:, 0] > 0).astype(int)

    def minimize(fun, x0, **kw):
        return SimpleNamespace(x=np.full_like(x0, np.nan), fun=float("nan"), status=2, nit=1, message="ABNORMAL")

    monkeypatch.setattr(scipy.optimize, "minimize", minimize)
    with pytest.raises(DivergenceError) as e:
        cls(solver="lbfgs", max_iter=5, hidden_layer_sizes=(4,)).fit(X, y)
    assert str(e.value).startswith(f"{cls.__name__}: solver='lbfgs' ended with a non-finite objective (nan)")
