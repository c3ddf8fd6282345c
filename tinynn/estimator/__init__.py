"""MLPClassifier and MLPRegressor: scikit-learn's MLP estimators, rebuilt on tinynn.

Same constructor arguments, defaults, fitted attributes and behaviour as ``sklearn.neural_network``'s, so code
written for sklearn works by changing the import; plus what sklearn's frozen module declined: dropout, batch
norm, custom initialisation, more optimizers and schedules, a GPU, validation-loss curves, best-weight restore,
safe model files.

    _params.py      constructor arguments and their constraints (read from tinynn's name tables)
    _base.py        sklearn's policy: validation, early stopping, n_iter_no_change, best weights, warnings,
                    around the one training loop (tinynn.training.Trainer)
    _lbfgs.py       solver='lbfgs'
    _files.py       save / load
    _classifier.py  MLPClassifier: label encoding, predict_proba, accuracy
    _regressor.py   MLPRegressor: squared error, r2
"""
from ._classifier import MLPClassifier
from ._params import PARAMETERS_DOC
from ._regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "PARAMETERS_DOC"]
