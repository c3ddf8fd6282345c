"""scikit-learn's callback protocol (sklearn.callback, scikit-learn >= 1.9) on tinynn's estimators, with
scikit-learn's own ScoringMonitor and ProgressBar: epochs (L-BFGS iterations) are the iteration level, and
Pipeline and GridSearchCV propagate the callbacks as they do to scikit-learn's estimators."""
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tinynn as tn

callback = pytest.importorskip("sklearn.callback")
ScoringMonitor, ProgressBar = callback.ScoringMonitor, callback.ProgressBar


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")   # short fits


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X)[:300], y[:300]


ARGS = dict(hidden_layer_sizes=(10,), random_state=0, max_iter=4)


def epoch_rows(monitor, name="epoch"):
    return [r for r in monitor.get_logs().data if r["task_name"] == name]


@pytest.mark.parametrize("est,metric", [(tn.MLPClassifier(**ARGS), "accuracy"),
                                        (tn.MLPRegressor(**ARGS), "r2")])
def test_scoring_monitor_scores_each_epochs_weights(digits, est, metric):
    """Row k of the log is the score of the model after k+1 epochs: equal to a fit stopped there."""
    X, y = digits
    sw = np.random.default_rng(0).uniform(0.5, 2, len(y))
    mon = ScoringMonitor(scoring=metric)
    est = clone(est).set_callbacks(mon).fit(X, y, sample_weight=sw)
    rows = epoch_rows(mon)
    assert [r["task_id"] for r in rows] == list(range(est.n_iter_)) == list(range(4))
    for k, row in enumerate(rows):
        ref = clone(est).set_params(max_iter=k + 1).fit(X, y, sample_weight=sw)
        assert row[metric] == ref.score(X, y, sample_weight=sw)          # metadata: the sample weights
    assert [r for r in mon.get_logs().data if r["task_name"] == "fit"][0][metric] == est.score(X, y, sw)


def test_lbfgs_iterations_are_the_tasks(digits):
    """As LogisticRegression's: one task per L-BFGS iteration, scored on that iterate (= a fit stopped there)."""
    X, y = digits
    mon = ScoringMonitor(scoring="neg_log_loss")
    clf = tn.MLPClassifier(solver="lbfgs", **ARGS).set_callbacks(mon).fit(X, y)
    rows = epoch_rows(mon, "lbfgs-iter")
    assert len(rows) == clf.n_iter_ == 4
    for k, row in enumerate(rows):
        ref = clone(clf).set_params(max_iter=k + 1).fit(X, y)
        assert row["neg_log_loss"] == pytest.approx(-log_loss(y, ref.predict_proba(X)), rel=1e-12)


def test_partial_fit_is_one_epoch_task(digits):
    X, y = digits
    mon = ScoringMonitor(scoring="accuracy")
    clf = tn.MLPClassifier(**ARGS).set_callbacks(mon)
    for _ in range(3):
        clf.partial_fit(X, y, classes=np.arange(10))
    runs = mon.get_logs(select="all")
    assert len(runs) == 3 and all(len([r for r in run.data if r["task_name"] == "epoch"]) == 1 for run in runs)


def test_early_stopping_ends_the_epoch_tasks_where_it_stops(digits):
    X, y = digits
    mon = ScoringMonitor(scoring="accuracy")
    clf = tn.MLPClassifier(**dict(ARGS, max_iter=200, early_stopping=True, n_iter_no_change=2, tol=0.5))
    clf.set_callbacks(mon).fit(X, y)
    assert clf.n_iter_ < 200 and len(epoch_rows(mon)) == clf.n_iter_


class CountingProgressBar(ProgressBar):
    """scikit-learn's ProgressBar (it draws with rich), counting the hooks tinynn's estimator calls."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.begun, self.ended = [], []

    def on_fit_task_begin(self, estimator, context):
        self.begun.append((type(estimator).__name__, context.task_name))
        return super().on_fit_task_begin(estimator, context)

    def on_fit_task_end(self, estimator, context):
        self.ended.append((type(estimator).__name__, context.task_name))
        return super().on_fit_task_end(estimator, context)


def test_progress_bar_through_a_pipeline(digits):
    pytest.importorskip("rich")
    X, y = digits
    bar = CountingProgressBar(max_propagation_depth=None)
    pipe = make_pipeline(StandardScaler(), tn.MLPClassifier(**ARGS)).set_callbacks(bar)
    pipe.fit(X, y)
    epochs = [t for t in bar.begun if t == ("MLPClassifier", "epoch")]
    assert len(epochs) == pipe[-1].n_iter_ == 4
    assert sorted(bar.begun) == sorted(bar.ended)                       # every task begun is ended
    assert not getattr(pipe[-1], "_skl_callbacks", [])                  # the Pipeline took its callback back


def test_progress_bar_and_scoring_monitor_under_grid_search(digits):
    pytest.importorskip("rich")
    X, y = digits
    bar = CountingProgressBar(max_propagation_depth=None)
    mon = ScoringMonitor(scoring="accuracy")
    est = tn.MLPClassifier(**ARGS).set_callbacks(mon)                   # clone keeps it (sklearn's rule)
    search = GridSearchCV(est, {"alpha": [1e-4, 1e-1]}, cv=2).set_callbacks(bar).fit(X, y)
    fits = 2 * 2 + 1                                                    # candidates x folds + refit
    assert len([t for t in bar.begun if t == ("MLPClassifier", "epoch")]) == fits * 4
    assert sorted(bar.begun) == sorted(bar.ended)
    run = mon.get_logs()
    assert run.estimator_name == "GridSearchCV"
    assert len([r for r in run.data if r["task_name"] == "epoch"]) == fits * 4
    assert search.best_estimator_.n_iter_ == 4


class StopAfter:
    """A FitCallback (sklearn's protocol) asking to stop after ``n`` epochs."""

    def __init__(self, n):
        self.n, self.seen = n, 0

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context):
        if context.task_name in ("epoch", "lbfgs-iter"):
            self.seen += 1
            return self.seen >= self.n
        return False


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_a_callback_can_stop_the_fit(digits, solver):
    X, y = digits
    clf = tn.MLPClassifier(**dict(ARGS, max_iter=50, solver=solver)).set_callbacks(StopAfter(3)).fit(X, y)
    assert clf.n_iter_ == 3


def test_set_callbacks_refuses_what_is_not_a_callback():
    with pytest.raises(TypeError, match="FitCallback protocol"):
        tn.MLPRegressor().set_callbacks(object())


def test_without_sklearn_callback_everything_else_works():
    # scikit-learn 1.9's own modules import sklearn.callback: load them first, then hide it as an older one lacks it
    code = ("import sys, sklearn.base, sklearn.pipeline, sklearn.model_selection, sklearn.linear_model\n"
            "sys.modules['sklearn.callback'] = None\n"
            "import tinynn.estimator._callbacks as cb; assert not cb.HAVE_CALLBACKS\n"
            "import numpy as np, tinynn as tn\n"
            "X = np.random.default_rng(0).normal(size=(40, 3)); y = (X[:, 0] > 0).astype(int)\n"
            "c = tn.MLPClassifier((4,), max_iter=3).fit(X, y)\n"
            "assert not hasattr(c, 'set_callbacks') and c.transform(X).shape == (40, 4)\n"
            "tn.MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, solver='lbfgs').fit(X, X[:, 0])\n"
            "print('ok')")
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


@pytest.mark.slow
def test_readme_estimator_extras_example_runs(tmp_path, monkeypatch):
    """The README's digits example, then docs/estimators.md's class_weight/l1/X_val/transform/callbacks block,
    as written."""
    import os
    import re

    pytest.importorskip("rich")
    root = os.path.join(os.path.dirname(__file__), "..")
    readme = open(os.path.join(root, "README.md")).read() + open(os.path.join(root, "docs", "estimators.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    digits_block = next(b for b in blocks if "load_digits" in b and "digits.npz" in b)
    extras = next(b for b in blocks if "ScoringMonitor" in b and "X_val=" in b)
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(digits_block, ns)
    exec(extras, ns)
    assert ns["H"].shape == (len(ns["Xte"]), 100)
    assert len(ns["monitor"].get_logs().data) == ns["clf"].n_iter_ + 1


class Ledger(StopAfter):
    """Counts each task's begin and end calls by name."""

    def __init__(self):
        super().__init__(10 ** 9)
        self.begun, self.ended = {}, {}

    def on_fit_task_begin(self, estimator, context):
        self.begun[context.task_name] = self.begun.get(context.task_name, 0) + 1

    def on_fit_task_end(self, estimator, context):
        self.ended[context.task_name] = self.ended.get(context.task_name, 0) + 1
        return False


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_every_task_begun_is_ended(digits, solver):
    """scipy opens no iteration after its last one, but the L-BFGS loop begins the next task at the end of each
    iteration: that last, empty one is ended too."""
    X, y = digits
    ledger = Ledger()
    clf = tn.MLPClassifier(**dict(ARGS, solver=solver)).set_callbacks(ledger).fit(X, y)
    name = "lbfgs-iter" if solver == "lbfgs" else "epoch"
    assert ledger.begun == ledger.ended and ledger.begun[name] >= clf.n_iter_ == 4


class Recorder(StopAfter):
    """Records every hook call with what sklearn's context hands a callback."""

    def __init__(self):
        super().__init__(10 ** 9)
        self.calls = []

    def on_fit_task_begin(self, estimator, context, *, X, y, metadata, fitted_estimator):
        self.calls.append(("begin", context.task_name, context.max_subtasks, estimator, X, y, metadata))

    def on_fit_task_end(self, estimator, context, *, X, y, metadata, fitted_estimator):
        self.calls.append(("end", context.task_name, context.max_subtasks, estimator, X, y, metadata))
        return False


@pytest.mark.parametrize("solver,weighted", [("adam", True), ("lbfgs", False), ("lbfgs", True)])
def test_the_hooks_get_the_fits_data_and_its_weights(digits, solver, weighted):
    """Every task's hooks receive the estimator, X and y as passed to fit and metadata={"sample_weight": sw}
    (None without weights); the fit task announces its subtasks: max_iter epochs, or max_iter L-BFGS iterations
    and the one scipy opens after the last; the empty last L-BFGS iteration ends with the estimator only."""
    X, y = digits
    sw = np.linspace(0.5, 1.5, len(y)) if weighted else None
    rec = Recorder()
    clf = tn.MLPClassifier(**dict(ARGS, solver=solver)).set_callbacks(rec)
    clf.fit(X, y, sample_weight=sw)
    (fit_begin,) = [c for c in rec.calls if c[:2] == ("begin", "fit")]
    assert fit_begin[2] == ARGS["max_iter"] + (solver == "lbfgs")
    metadata = None if sw is None else {"sample_weight": sw}
    name = "epoch" if solver == "adam" else "lbfgs-iter"
    full = [c for c in rec.calls if c[1] in ("fit", name)]
    assert len(full) == len(rec.calls) and rec.calls[0] is fit_begin and rec.calls[-1][:2] == ("end", "fit")
    empty = len(rec.calls) - 2 if solver == "lbfgs" else None           # the iteration scipy never ran
    for i, (kind, task, _, est, X_, y_, meta) in enumerate(rec.calls):
        assert est is clf
        if i == empty:
            assert (kind, task, X_, y_, meta) == ("end", name, None, None, None)
            continue
        assert X_ is X and y_ is y
        assert meta is None if metadata is None else (meta.keys() == {"sample_weight"} and meta["sample_weight"] is sw)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_without_a_callback_context_every_epoch_runs(digits, solver, monkeypatch):
    """Where sklearn has no callbacks the tasks have no context: ending an iteration never asks to stop."""
    from tinynn.estimator import _callbacks

    monkeypatch.setattr(_callbacks, "HAVE_CALLBACKS", False)
    X, y = digits
    clf = tn.MLPClassifier(**dict(ARGS, solver=solver)).fit(X, y)
    assert clf.n_iter_ == ARGS["max_iter"]
