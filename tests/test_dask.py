"""Model selection scaled out on existing engines: joblib processes and a Dask cluster (two worker processes),
and dask-ml's Incremental streaming a dask array through partial_fit. Needs the ``dask`` extra."""
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("dask.distributed")
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")

import joblib  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV  # noqa: E402

import tinynn as tn  # noqa: E402

GRID = {"alpha": [1e-4, 1e-2], "hidden_layer_sizes": [(8,), (16,)]}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def _search(X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GridSearchCV(tn.MLPClassifier(max_iter=8, random_state=0), GRID, cv=3, **kw).fit(X, y)


@pytest.mark.slow
def test_grid_search_with_joblib_processes_equals_serial(digits):
    X, y = digits
    serial = _search(X, y)
    parallel = _search(X, y, n_jobs=2)
    np.testing.assert_array_equal(serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"])
    assert serial.best_params_ == parallel.best_params_


@pytest.mark.slow
def test_searches_on_a_dask_cluster_equal_serial(digits, client):
    X, y = digits
    serial = _search(X, y)
    with joblib.parallel_backend("dask"):
        on_dask = _search(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rnd = RandomizedSearchCV(tn.MLPRegressor(max_iter=5, random_state=0),
                                     {"alpha": [1e-5, 1e-3, 1e-1], "learning_rate_init": [1e-3, 1e-2]},
                                     n_iter=3, cv=2, random_state=0).fit(X, y.astype(float))
    np.testing.assert_array_equal(serial.cv_results_["mean_test_score"], on_dask.cv_results_["mean_test_score"])
    assert np.all(np.isfinite(rnd.cv_results_["mean_test_score"]))
    workers = {w for w in client.run(lambda: 1)}
    assert len(workers) == 2


@pytest.mark.slow
def test_worker_first_fit_uses_the_kernel_cache(client):
    """A fresh worker compiles nothing: the kernels come from Numba's on-disk cache (measured, not asserted
    against a time: the figure is printed for the README)."""
    def first_fit():
        import time as _t
        import warnings as _w

        from sklearn.datasets import load_digits as _ld

        import tinynn as _tn

        _w.simplefilter("ignore")
        X, y = _ld(return_X_y=True)
        t0 = _t.perf_counter()
        _tn.MLPClassifier(max_iter=3, random_state=0).fit(X / 16.0, y)
        return _t.perf_counter() - t0

    seconds = client.run(first_fit)
    print(f"worker first fit (digits, 3 epochs): {seconds}")
    assert len(seconds) == 2 and all(s > 0 for s in seconds.values())


@pytest.mark.slow
def test_incremental_streams_a_dask_array_through_partial_fit(digits, client):
    import dask.array as da

    X, y = digits
    Xd = da.from_array(X, chunks=(150, X.shape[1]))
    yd = da.from_array(y, chunks=150)
    inc = dask_ml_wrappers.Incremental(tn.MLPClassifier(hidden_layer_sizes=(16,), random_state=0),
                                       scoring="accuracy", shuffle_blocks=False)
    inc.fit(Xd, yd, classes=np.arange(10))
    ref = tn.MLPClassifier(hidden_layer_sizes=(16,), random_state=0)
    for s in range(0, len(X), 150):                       # the same blocks, in order, by hand
        ref.partial_fit(X[s:s + 150], y[s:s + 150], classes=np.arange(10))
    for a, b in zip(inc.estimator_.coefs_, ref.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert inc.score(Xd, yd) == pytest.approx(ref.score(X, y))
