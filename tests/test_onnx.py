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


# ------------------------------------------------------------------ LayerNorm, Embedding, skl2onnx, the MNIST script
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layernorm_and_embedding_sequentials(dtype):
    rng = np.random.default_rng(0)
    seq = tn.Sequential(tn.Linear(5, 8, dtype=dtype, rng=0), tn.GELU(), tn.LayerNorm(8, dtype=dtype),
                        tn.Linear(8, 3, dtype=dtype, rng=1))
    seq.layers[2].weight.data[...] = rng.uniform(0.5, 2, 8)
    seq.layers[2].bias.data[...] = rng.standard_normal(8)
    X = rng.standard_normal((20, 5)).astype(dtype)
    seq.eval()
    with tn.use("numpy"):
        want = np.array(seq.forward(X))
    np.testing.assert_allclose(run(to_onnx(seq, X[:1]), X)[0], want, rtol=RTOL[dtype] * 10, atol=1e-6)
    emb = tn.Sequential(tn.Embedding(7, 4, dtype=dtype, rng=0), tn.Linear(4, 2, dtype=dtype, rng=0), tn.Tanh())
    idx = rng.integers(0, 7, 15)
    with tn.use("numpy"):
        want = np.array(emb.forward(idx))
    np.testing.assert_allclose(run(to_onnx(emb, idx), idx.astype(np.int64))[0], want, rtol=RTOL[dtype], atol=1e-7)


def test_skl2onnx_converts_a_pipeline_with_a_tinynn_estimator(digits):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tinynn.onnx import register_skl2onnx

    register_skl2onnx()
    X, y = digits
    X = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = make_pipeline(StandardScaler(), tn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=20,
                                                               activation="gelu", random_state=0,
                                                               dtype=np.float32)).fit(X, y)
        reg = make_pipeline(StandardScaler(), tn.MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0,
                                                              dtype=np.float32)).fit(X, y.astype(np.float32))
    label, P = run(skl2onnx.to_onnx(clf, X[:1], options={tn.MLPClassifier: {"zipmap": False}}), X)
    np.testing.assert_array_equal(label, clf.predict(X))
    np.testing.assert_allclose(P, clf.predict_proba(X), rtol=1e-4, atol=1e-6)
    label, P = run(skl2onnx.to_onnx(clf, X[:1]), X)                # skl2onnx's default: a ZipMap of dicts
    assert isinstance(P, list) and set(P[0]) == set(clf.classes_.tolist())
    np.testing.assert_allclose([P[0][c] for c in clf.classes_], clf.predict_proba(X[:1])[0], rtol=1e-4, atol=1e-6)
    v = run(skl2onnx.to_onnx(reg, X[:1]), X)[0]
    np.testing.assert_allclose(v[:, 0], reg.predict(X), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_mnist_export_script(tmp_path, mnist_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "scripts/train_mnist.py", "--data-dir", mnist_path, "--hidden", "32",
                        "--epochs", "1", "--train-size", "3000", "--val-size", "0", "--quiet", "--no-plot", "--out",
                        str(out)], cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "scripts/export_onnx.py", "--model", str(out / "model.npz"), "--data-dir",
                        mnist_path, "--out", str(out / "model.onnx")], cwd=root, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    import re

    m = re.search(r"test accuracy ([\d.]+)% in onnxruntime, ([\d.]+)% in tinynn; largest output difference (\S+)",
                  r.stdout)
    assert m and m.group(1) == m.group(2) and float(m.group(3)) < 1e-4, r.stdout
    onnx.checker.check_model(onnx.load(str(out / "model.onnx")), full_check=True)


def test_readme_onnx_example_runs(tmp_path):
    import os
    import re
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = open(os.path.join(root, "docs", "estimators.md")).read()
    code = re.compile(r"```python\n(.*?)```", re.S).search(text, text.index("<!-- example: onnx -->")).group(1)
    (tmp_path / "onnx_example.py").write_text(code)
    r = subprocess.run([sys.executable, "onnx_example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    agree, diff = map(float, r.stdout.split()[-2:])
    assert agree == 1.0 and diff < 1e-4, r.stdout


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multilabel_classifier(digits, dtype):
    X, y = digits
    X = X.astype(dtype)
    Y = np.stack([y % 2, (y > 4).astype(int), (y == 3).astype(int)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = tn.MLPClassifier(hidden_layer_sizes=(12,), max_iter=30, random_state=0, dtype=dtype).fit(X, Y)
    label, P = run(to_onnx(clf, X[:1]), X)
    np.testing.assert_allclose(P, clf.predict_proba(X), rtol=RTOL[dtype])
    np.testing.assert_array_equal(label, clf.predict(X))
