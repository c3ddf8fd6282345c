"""scikit-learn's own MLP tests, run against tinynn.

The installed sklearn/neural_network/tests/test_mlp.py is copied to a temporary folder with its one import
line ``from sklearn.neural_network import MLPClassifier, MLPRegressor`` pointed at tinynn, beside a conftest
that provides the ``global_random_seed`` fixture of sklearn's own conftest, and run under pytest. Every test
must pass except those listed in PRIVATE, which call sklearn's private methods or set its private attributes.
"""
import os
import subprocess
import sys

import pytest

sklearn = pytest.importorskip("sklearn")

IMPORT_LINE = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
PRIVATE = {
    "test_fit": "sets sklearn's private _coef_grads/_intercept_grads/_intercept_velocity and calls _initialize",
    "test_gradient": "calls sklearn's private _loss_grad_lbfgs / _unpack",
}
CONFTEST = '''
import pytest


@pytest.fixture(params=[42])
def global_random_seed(request):
    """sklearn's conftest draws seeds from SKLEARN_TESTS_GLOBAL_RANDOM_SEED (default 42)."""
    return request.param
'''


@pytest.mark.slow
def test_sklearn_test_mlp_passes_on_tinynn(tmp_path):
    src = os.path.join(os.path.dirname(sklearn.__file__), "neural_network", "tests", "test_mlp.py")
    text = open(src).read()
    assert text.count(IMPORT_LINE) == 1, "sklearn's test module changed its import line"
    (tmp_path / "test_mlp.py").write_text(text.replace(IMPORT_LINE, "from tinynn import MLPClassifier, MLPRegressor"))
    (tmp_path / "conftest.py").write_text(CONFTEST)
    deselect = [f"--deselect=test_mlp.py::{name}" for name in PRIVATE]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "test_mlp.py",
                        *deselect, "-W", "ignore::DeprecationWarning"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900)
    tail = r.stdout[-6000:]
    assert r.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail and "error" not in tail.lower().split("passed")[-1], tail
