"""scikit-learn's own estimator checks, every one of them, on both estimators."""
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

import tinynn as tn


def _estimators():
    # sklearn's own MLPs run these checks with max_iter=100 (its instance generator); so do these.
    return [tn.MLPClassifier(max_iter=100), tn.MLPRegressor(max_iter=100)]


@parametrize_with_checks(_estimators())
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
