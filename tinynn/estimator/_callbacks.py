"""scikit-learn's callback protocol (``sklearn.callback``, scikit-learn >= 1.9) on the estimators.

The task tree is sklearn's: the fit is the root task, each epoch (solver 'sgd'/'adam'; one for ``partial_fit``)
or L-BFGS iteration (solver 'lbfgs', as LogisticRegression's) a subtask. Every task calls the callbacks'
``on_fit_task_begin`` / ``on_fit_task_end`` with the data given to ``fit`` (X and y as passed, so a scorer sees
the feature names; ``metadata={"sample_weight": ...}``) and a ``fitted_estimator``: a shallow copy of the
estimator that predicts with the weights of that moment. ``on_fit_task_end`` returning True ends the fit
after that epoch (or iteration). Meta-estimators (Pipeline, GridSearchCV) propagate their callbacks into the
estimator through ``set_callbacks`` and ``_parent_callback_ctx``, which ``CallbackSupportMixin`` handles.

Without ``sklearn.callback`` (scikit-learn < 1.9) ``CallbackSupportMixin`` is an empty class and every hook here
does nothing: the estimators work as before, without ``set_callbacks``.
"""
from __future__ import annotations

try:
    from sklearn.callback import CallbackSupportMixin
    HAVE_CALLBACKS = True
except ImportError:                                            # scikit-learn < 1.9
    HAVE_CALLBACKS = False

    class CallbackSupportMixin:  # type: ignore[no-redef]  # noqa: D101 (the fallback: nothing to support)
        pass


class FitTasks:
    """The callback tasks of one fit: ``begin`` the root, ``begin_iteration``/``end_iteration`` per epoch,
    ``end``. Does nothing where sklearn has no callbacks or the estimator none set (and no meta-estimator
    passed them in)."""

    def __init__(self, est, X, y, sample_weight, max_subtasks):
        self.est, self.X, self.y = est, X, y
        self.metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        self.root = self.task = None
        if HAVE_CALLBACKS:
            self.root = est._init_callback_context(max_subtasks=max_subtasks)
            self.root.call_on_fit_task_begin(estimator=est, X=X, y=y, metadata=self.metadata)

    def _data(self):
        return dict(estimator=self.est, X=self.X, y=self.y, metadata=self.metadata, reconstruction_attributes={})

    def begin_iteration(self, name):
        if self.root is not None:
            self.task = self.root.subcontext(task_name=name)
            self.task.call_on_fit_task_begin(**self._data())

    def end_iteration(self, ran=True):
        """End the open iteration task (``ran=False``: one that never trained, ended empty); True when a
        callback asks to stop."""
        task, self.task = self.task, None
        if task is None:
            return False
        if not ran:
            task.call_on_fit_task_end(estimator=self.est)
            return False
        return bool(task.call_on_fit_task_end(**self._data()))

    def end(self):
        if self.task is not None:
            self.end_iteration(ran=False)
        if self.root is not None:
            self.root.call_on_fit_task_end(**self._data())
