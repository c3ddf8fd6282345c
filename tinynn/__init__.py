"""tinynn: a from-scratch neural-network package with hand-derived backward passes.

Layers (``tinynn.layers``) call operations from ``kernels.ops``, which dispatch on the arrays' type to a NumPy
reference, a Numba CPU backend or a numba.cuda GPU backend.
"""
from .kernels import to_device, to_host, use

from . import data, init, io, losses, optim, schedules
from .layers import (ACTIVATIONS, ELU, GELU, BatchNorm1d, Dropout, Embedding, Identity, Layer, LayerNorm, LeakyReLU,
                     Linear, ReLU, Sigmoid, SiLU, Softplus, Tanh)
from .losses import HuberLoss, L1Loss, MSELoss, PoissonLoss, SigmoidCrossEntropy, SoftmaxCrossEntropy, SquaredError
from .model import Sequential
from .errors import DivergenceError, FileFormatError
from .parameter import Parameter
from .gradcheck import gradcheck, gradcheck_loss

__version__ = "0.2.0"


def __getattr__(name):
    """MLPClassifier / MLPRegressor load scikit-learn on first use, so the core imports only numpy and numba."""
    if name == "testing":                          # needs hypothesis: imported on first use
        import importlib

        return importlib.import_module(".testing", __name__)
    if name in ("MLPClassifier", "MLPRegressor"):
        try:
            from . import estimator
        except ImportError as e:
            raise ImportError(f"tinynn.{name} needs scikit-learn: pip install 'tinynn-fc[sklearn]' ({e})") from e
        return getattr(estimator, name)
    raise AttributeError(f"module 'tinynn' has no attribute {name!r}")

__all__ = ["Parameter", "Layer", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Identity", "GELU", "SiLU", "ELU",
           "Softplus", "BatchNorm1d",
           "LayerNorm", "Dropout", "Embedding", "Sequential", "SoftmaxCrossEntropy", "SigmoidCrossEntropy",
           "MSELoss", "SquaredError", "PoissonLoss", "L1Loss", "HuberLoss", "MLPClassifier", "MLPRegressor", "DivergenceError", "FileFormatError", "data", "init", "io", "losses", "optim", "schedules", "to_device", "to_host", "use", "ACTIVATIONS",
           "gradcheck", "gradcheck_loss"]
