"""transform / fit_transform: the hidden layers' activations as features (both estimators)."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tinynn as tn

ACT = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "logistic": lambda z: 1 / (1 + np.exp(-z)),
       "identity": lambda z: z}


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")   # short fits


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X)[:400], y[:400]


def by_hand(est, X, layer):
    """sklearn's forward pass written out from coefs_/intercepts_ (no batch norm, no dropout at predict)."""
    h = X
    for W, b in list(zip(est.coefs_, est.intercepts_))[:layer + 1]:
        h = ACT[est.activation](h @ W + b)
    return h


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
@pytest.mark.parametrize("layer", [0, 1, -1, -3])
def test_transform_is_the_hidden_activation(digits, activation, layer):
    X, y = digits
    clf = tn.MLPClassifier((12, 9, 7), activation=activation, max_iter=5, random_state=0).fit(X, y)
    clf.set_params(transform_layer=layer)
    H = clf.transform(X)
    assert H.shape == (len(X), (12, 9, 7)[layer])
    np.testing.assert_allclose(H, by_hand(clf, X, layer % 3), rtol=1e-10, atol=1e-12)
    assert clf.get_feature_names_out().tolist() == [f"mlpclassifier{i}" for i in range(H.shape[1])]


def test_regressor_transform_fit_transform_and_dtypes():
    X, y = make_regression(100, 5, random_state=0)
    reg = tn.MLPRegressor(hidden_layer_sizes=(6, 4), max_iter=3, random_state=0)
    H = reg.fit_transform(X, y / 100)
    np.testing.assert_array_equal(H, reg.transform(X))
    np.testing.assert_allclose(H, by_hand(reg, X, 1), rtol=1e-10)
    assert H.dtype == np.float64
    H32 = tn.MLPRegressor(hidden_layer_sizes=(6,), max_iter=3, random_state=0).fit(X.astype(np.float32), y).transform(X)
    assert H32.dtype == np.float32                                     # the model's dtype, as predict
    Hs = reg.transform(sp.csr_matrix(X))                                # sparse input too
    np.testing.assert_allclose(Hs, H, rtol=1e-12)


def test_eval_mode_dropout_off_batchnorm_running_statistics(digits):
    X, y = digits
    clf = tn.MLPClassifier((16,), dropout=0.5, batch_norm=True, max_iter=5, random_state=0).fit(X, y)
    a, b = clf.transform(X), clf.transform(X)
    np.testing.assert_array_equal(a, b)                                 # no dropout mask drawn
    np.testing.assert_array_equal(clf.transform(X[:7]), a[:7])          # BN's running stats, not the batch's
    assert clf._model.training is True or clf._model.training is False  # mode left as it was
    bn = [l for l in clf._model.layers if type(l).__name__ == "BatchNorm1d"][0]
    z = X @ clf.coefs_[0] + clf.intercepts_[0]
    z = (z - bn.running_mean) / np.sqrt(bn.running_var + bn.eps) * bn.weight.data + bn.bias.data
    np.testing.assert_allclose(a, np.maximum(z, 0), rtol=1e-8, atol=1e-10)


def test_set_output_pandas_and_a_pipeline_on_the_features(digits):
    pd = pytest.importorskip("pandas")
    X, y = digits
    clf = tn.MLPClassifier((10,), max_iter=20, random_state=0).fit(X, y)
    df = clf.set_output(transform="pandas").transform(X)
    assert isinstance(df, pd.DataFrame) and df.columns.tolist() == list(clf.get_feature_names_out())
    np.testing.assert_array_equal(df.to_numpy(), clf.set_output(transform="default").transform(X))
    pipe = make_pipeline(tn.MLPClassifier((10,), max_iter=100, learning_rate_init=0.01, random_state=0), LogisticRegression(max_iter=500))
    pipe.fit(X, y)                                                    # the MLP as a feature extractor
    assert pipe.score(X, y) > 0.9
    assert pipe[:-1].get_feature_names_out().tolist()[:2] == ["mlpclassifier0", "mlpclassifier1"]
    Xdf = pd.DataFrame(X, columns=[f"px{i}" for i in range(X.shape[1])])
    out = tn.MLPClassifier((4,), max_iter=2, random_state=0).set_output(transform="pandas").fit_transform(Xdf, y)
    assert out.columns.tolist() == [f"mlpclassifier{i}" for i in range(4)]


def test_refusals(digits):
    X, y = digits
    with pytest.raises(NotFittedError):
        tn.MLPClassifier().transform(X)
    clf = tn.MLPClassifier((5, 3), max_iter=2, random_state=0, transform_layer=2).fit(X, y)
    with pytest.raises(ValueError, match=r"transform_layer=2 is not a hidden layer.*2 hidden layer\(s\) \(5, 3\).*"
                                         r"\[-2, 1\]"):
        clf.transform(X)
    with pytest.raises(ValueError, match="transform_layer=2"):
        clf.get_feature_names_out()
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 64"):
        clf.set_params(transform_layer=0).transform(X[:, :3])


def test_transform_layer_survives_save_and_load(tmp_path, digits):
    X, y = digits
    clf = tn.MLPClassifier((6, 4), max_iter=2, random_state=0, transform_layer=0).fit(X, y)
    back = tn.MLPClassifier.load(clf.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(back.transform(X), clf.transform(X))


@pytest.mark.gpu
def test_transform_and_l1_on_the_gpu_backend_equal_the_cpu():
    """transform on a CUDA model, and an l1-penalised fit on the GPU (‖W‖₁ read back each step), give the CPU's."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    fits = {}
    for device in ("cpu", "cuda"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[device] = tn.MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0, l1=1e-3,
                                            dtype=np.float32, device=device).fit(X, y)
    np.testing.assert_allclose(fits["cuda"].loss_curve_, fits["cpu"].loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(fits["cuda"].transform(X), fits["cpu"].transform(X), rtol=1e-4, atol=1e-5)
