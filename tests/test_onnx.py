"""tinynn.onnx.to_onnx: the exported graph passes onnx.checker and gives tinynn's predictions in onnxruntime."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import tinynn as tn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from tinynn.onnx import to_onnx  # noqa: E402

RTOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16, y[:300]


def run(model, X):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: X})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(), dict(activation="tanh"), dict(activation="logistic"),
                                dict(activation="leaky_relu"), dict(activation="gelu", batch_norm=True, dropout=0.3),
                                dict(activation="gelu_tanh"), dict(activation="silu"), dict(activation="elu"),
                                dict(activation="softplus"), dict(activation="identity")])
def test_classifier_equals_predict_proba(digits, dtype, kw):
    X, y = digits
    X = X.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = tn.MLPClassifier((12, 7), max_iter=5, random_state=0, **kw).fit(X, y)
    m = to_onnx(clf, X[:1])
    onnx.checker.check_model(m, full_check=True)
    label, P = run(m, X)
    rtol = 1e-6 if (dtype == np.float64 and kw.get("activation") == "gelu") else RTOL[dtype]   # Erf in float32
    np.testing.assert_allclose(P, clf.predict_proba(X), rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_array_equal(label, clf.predict(X))


def test_binary_string_labels_and_regressors(digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = tn.MLPClassifier((5,), max_iter=5, random_state=0).fit(X, np.array(["low", "high"])[(y > 4) * 1])
        label, P = run(to_onnx(clf, X[:1]), X)
        np.testing.assert_array_equal(label.astype(str), clf.predict(X))
        np.testing.assert_allclose(P, clf.predict_proba(X), rtol=1e-12)
        for loss in ("squared_error", "poisson"):
            reg = tn.MLPRegressor(loss=loss, hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(X, y)
            np.testing.assert_allclose(run(to_onnx(reg, X[:1]), X)[0][:, 0], reg.predict(X), rtol=1e-12)


def test_refusals():
    with pytest.raises(TypeError, match="expected a tinynn Sequential or a fitted MLPClassifier"):
        to_onnx(object(), np.zeros((1, 2)))
