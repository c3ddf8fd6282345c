"""solver='lbfgs': scipy's L-BFGS-B on the flat parameter vector, with the Trainer's objective and gradient."""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .. import kernels

from . import _checks


def fit_lbfgs(est, trainer, X, T, sample_weight, tasks=None):
    """Minimise the estimator's full-batch objective (loss + L2 penalty) over every parameter at once.
    ``tasks`` (_callbacks.FitTasks): each L-BFGS iteration is a callback task, as in LogisticRegression."""
    import scipy.optimize

    flat = trainer.model.flat
    Xd, Td = trainer.on_device(X), trainer.on_device(T)
    wsum = None if sample_weight is None else float(np.sum(sample_weight))
    trainer.model.train()

    def fun(theta):
        kernels.assign(flat.data, theta.astype(flat.data.dtype))
        value = trainer.loss_and_grad(Xd, Td, sample_weight, weight_sum=wsum)
        return value, np.asarray(kernels.to_host(flat.grad), dtype=np.float64).copy()

    fun = _checks.guard_lbfgs(est, fun, X, T, sample_weight)
    theta0 = np.asarray(kernels.to_host(flat.data), dtype=np.float64).copy()
    callback = None
    if tasks is not None and tasks.root is not None:
        def callback(xk):                           # scipy's end of an iteration: the model takes its weights
            kernels.assign(flat.data, xk.astype(flat.data.dtype))
            stop = tasks.end_iteration()
            tasks.begin_iteration("lbfgs-iter")
            if stop:
                raise StopIteration                 # scipy >= 1.11 ends the minimisation there
        tasks.begin_iteration("lbfgs-iter")
    res = scipy.optimize.minimize(fun, theta0, method="L-BFGS-B", jac=True, callback=callback,
                                  options={"maxfun": est.max_fun, "maxiter": est.max_iter, "gtol": est.tol})
    # the iteration the last callback opened never runs: FitTasks.end() closes it empty, after the fit's checks
    _checks.check_lbfgs_result(est, res)
    if res.status != 0:
        warnings.warn(f"lbfgs failed to converge after {res.nit} iteration(s) (status={res.status}): "
                      f"{res.message}. Increase max_iter or max_fun, or scale the data.", ConvergenceWarning)
    kernels.assign(flat.data, res.x.astype(flat.data.dtype))
    est.n_iter_ = int(res.nit)
    est.loss_ = float(res.fun)
