"""tinynn: a from-scratch neural-network package with hand-derived backward passes.

Layers (``tinynn.layers``) call operations from ``kernels.ops``, which dispatch on the arrays' type to a NumPy
reference, a Numba CPU backend or a numba.cuda GPU backend.
"""
from kernels import to_device, to_host, use

from . import init, losses, optim, schedules
from .layers import (ACTIVATIONS, BatchNorm1d, Dropout, Embedding, Identity, Layer, LayerNorm, LeakyReLU, Linear,
                     ReLU, Sigmoid, Tanh)
from .losses import MSELoss, SigmoidCrossEntropy, SoftmaxCrossEntropy
from .model import Sequential
from .estimator import MLPClassifier, MLPRegressor
from .errors import DivergenceError
from .parameter import Parameter

__version__ = "0.1.0"

__all__ = ["Parameter", "Layer", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Identity", "BatchNorm1d",
           "LayerNorm", "Dropout", "Embedding", "Sequential", "SoftmaxCrossEntropy", "SigmoidCrossEntropy",
           "MSELoss", "MLPClassifier", "MLPRegressor", "DivergenceError", "init", "losses", "optim", "schedules", "to_device", "to_host", "use", "ACTIVATIONS"]
