"""The estimators' objective is scikit-learn's: same loss value and same gradients for the same coefs_.

sklearn's private ``_backprop`` is the oracle (loss + (α/2)‖W‖²/Σw and its gradients); tinynn's side is the
one training loop's ``Trainer.loss_and_grad``."""
import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkRegressor  # noqa: E402

import tinynn as tn  # noqa: E402
from tinynn.training import L2Penalty, Trainer  # noqa: E402


def _problem(kind, rng, n=40, d=5):
    X = rng.standard_normal((n, d))
    if kind == "binary":
        return X, rng.integers(0, 2, n)
    if kind == "multiclass":
        return X, rng.integers(0, 4, n)
    if kind == "multilabel":
        return X, rng.integers(0, 2, (n, 3))
    if kind == "poisson":
        return X, rng.poisson(2.0, n).astype(float)
    return X, rng.standard_normal((n, 2)) if kind == "regression2" else rng.standard_normal(n)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression", "regression2", "poisson"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("activation", ["relu", "logistic", "tanh"])
def test_loss_and_gradients_equal_sklearns(kind, weighted, activation):
    rng = np.random.default_rng(abs(hash((kind, weighted, activation))) % 2**32)
    X, y = _problem(kind, rng)
    sw = rng.uniform(0.2, 2.0, len(X)) if weighted else None
    regression = kind.startswith("regression") or kind == "poisson"
    kw = dict(hidden_layer_sizes=(7, 6), activation=activation, alpha=0.3, max_iter=1, random_state=0)
    if kind == "poisson":
        kw["loss"] = "poisson"
    ours = (tn.MLPRegressor if regression else tn.MLPClassifier)(**kw).fit(X, y)
    sk = (SkRegressor if regression else SkClassifier)(**kw).fit(X, y)
    sk.coefs_ = [c.copy() for c in ours.coefs_]
    sk.intercepts_ = [b.copy() for b in ours.intercepts_]
    assert sk.out_activation_ == ours.out_activation_

    Y = y.reshape(len(X), -1).astype(float) if regression else sk._label_binarizer.transform(y).astype(float)
    L = sk.n_layers_
    acts = [X] + [None] * (L - 1)
    cg = [np.empty_like(c) for c in sk.coefs_]
    ig = [np.empty_like(b) for b in sk.intercepts_]
    sk_loss, sk_cg, sk_ig = sk._backprop(X, Y, sw, acts, [None] * (L - 1), cg, ig)

    T, _ = ours._targets(y, incremental=False, reset=False)
    T = T.astype(np.float64) if T.dtype.kind == "f" else T
    trainer = Trainer(ours._model, ours._loss_fn(), None, penalty=L2Penalty(ours.alpha))
    loss = trainer.loss_and_grad(X, T, sw, weight_sum=None if sw is None else float(sw.sum()))
    np.testing.assert_allclose(loss, sk_loss, rtol=1e-12)
    for lin, gW, gb in zip(ours._linears, sk_cg, sk_ig):
        np.testing.assert_allclose(lin.weight.grad, gW, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(lin.bias.grad, gb, rtol=1e-10, atol=1e-14)


def test_regressor_curves_share_one_convention():
    """loss_curve_ and validation_loss_curve_ are both sklearn's ½·MSE: evaluated on the same data they agree."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = X @ rng.standard_normal(4) + 0.1 * rng.standard_normal(300)
    est = tn.MLPRegressor(hidden_layer_sizes=(8,), early_stopping=True, validation_fraction=0.5, max_iter=30,
                          random_state=0, alpha=0.0, batch_size=300, learning_rate_init=0.01).fit(X, y)
    # the validation loss of the last epoch is the squared error ½·mean((ŷ-y)²) of the model at that epoch on
    # a held-out half: the same order as the training loss, not half or a quarter of it
    ratio = est.validation_loss_curve_[-1] / est.loss_curve_[-1]
    assert 0.6 < ratio < 1.6, ratio
    pred = est.predict(X)
    half_mse = 0.5 * np.mean((pred - y) ** 2)
    assert 0.6 < half_mse / est.validation_loss_curve_[-1] < 1.6
