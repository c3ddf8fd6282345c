"""Sparse input: CSR rows into the first Linear layer, never densified; the estimators take scipy.sparse."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sp = pytest.importorskip("scipy.sparse")

import tinynn as tn  # noqa: E402
from tinynn import kernels  # noqa: E402
from tinynn.kernels import ops  # noqa: E402
from tinynn.sparse import CSR  # noqa: E402


def _random_csr(rng, n, d, density, dtype=np.float64):
    X = sp.random(n, d, density=density, random_state=np.random.RandomState(int(rng.integers(2**31))),
                  format="csr", dtype=np.float64)
    return X.astype(dtype)


@given(n=st.integers(1, 12), d=st.integers(1, 40), m=st.integers(1, 7), density=st.floats(0.0, 0.5),
       seed=st.integers(0, 2**16))
def test_sparse_kernels_equal_the_dense_products(n, d, m, density, seed):
    rng = np.random.default_rng(seed)
    X = _random_csr(rng, n, d, density)
    c = CSR.from_scipy(X)
    B, D = rng.standard_normal((d, m)), rng.standard_normal((n, m))
    dense = X.toarray()
    for backend in ("numpy", "cpu"):
        with kernels.use(backend):
            Y = ops.spmm(c.indptr, c.indices, c.data, B)
            G = np.full((d, m), np.nan)
            ops.spmm_t(c.indptr, c.indices, c.data, D, G)
        np.testing.assert_allclose(Y, dense @ B, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(G, dense.T @ D, rtol=1e-12, atol=1e-12)


@given(seed=st.integers(0, 2**16), fmt=st.sampled_from(["csr", "csc", "coo"]))
def test_first_layer_on_sparse_rows_equals_dense(seed, fmt):
    rng = np.random.default_rng(seed)
    X = _random_csr(rng, 6, 30, 0.2).asformat(fmt)
    model = tn.Sequential(tn.Linear(30, 5, dtype=np.float64, rng=1), tn.Tanh(), tn.Linear(5, 3, dtype=np.float64,
                                                                                         rng=2))
    dY = rng.standard_normal((6, 3))
    Ys = model.forward(X).copy()
    model.backward(dY)
    gs = [p.grad.copy() for p in model.parameters()]
    Yd = model.forward(X.toarray()).copy()
    model.backward(dY)
    np.testing.assert_allclose(Ys, Yd, rtol=1e-12, atol=1e-13)
    for a, p in zip(gs, model.parameters()):
        np.testing.assert_allclose(a, p.grad, rtol=1e-12, atol=1e-13)


def test_bad_sparse_structure_is_refused_before_any_kernel():
    X = sp.csr_matrix(np.eye(3))
    X.indices[1] = 7                                        # column out of range
    with pytest.raises((IndexError, ValueError), match="out of range|corrupt"):
        CSR.from_scipy(X)
    Y = sp.csr_matrix(np.eye(3))
    Y.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CSR.from_scipy(Y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_estimator_on_sparse_equals_dense_fit(solver):
    rng = np.random.default_rng(0)
    X = _random_csr(rng, 120, 60, 0.1)
    y = (X @ rng.standard_normal(60) > 0).astype(int)
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, solver=solver)
    a = tn.MLPClassifier(**kw).fit(X, y)
    b = tn.MLPClassifier(**kw).fit(X.toarray(), y)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(ca, cb, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X.toarray()), rtol=1e-10)
    a.partial_fit(X[:50], y[:50]) if solver != "lbfgs" else None
    r = tn.MLPRegressor(**kw).fit(X.tocsc(), y.astype(float))
    assert r.predict(X).shape == (120,)


def test_a_sparse_fit_never_makes_a_dense_copy_of_X(monkeypatch):
    rng = np.random.default_rng(1)
    X = _random_csr(rng, 200, 5000, 0.002)
    y = rng.integers(0, 3, 200)
    calls = []
    for name in ("toarray", "todense"):
        real = getattr(sp.csr_matrix, name)

        def spy(self, *a, _real=real, **k):
            calls.append(self.shape)
            return _real(self, *a, **k)

        monkeypatch.setattr(sp.csr_matrix, name, spy)
    clf = tn.MLPClassifier((16,), max_iter=2, random_state=0).fit(X, y)
    clf.predict(X)
    assert calls == []
