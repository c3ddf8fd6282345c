r"""Elementwise activations. Each saves its *output* Y and differentiates through it:

    ReLU:       Y = max(X, 0)                   dX = dY ⊙ [Y > 0]
    LeakyReLU:  Y = X if X > 0 else a X         dX = dY ⊙ (1 if Y > 0 else a)
    Sigmoid:    Y = 1 / (1 + e^-X)              dX = dY ⊙ Y (1 - Y)
    Tanh:       Y = tanh X                      dX = dY ⊙ (1 - Y²)
    Identity:   Y = X                           dX = dY
    Exp:        Y = e^X                         dX = dY ⊙ Y          (Poisson regression's output)
"""
import numbers

from ..kernels import ops
from ..kernels.config import EXP, IDENTITY, LEAKY_RELU, RELU, SIGMOID, TANH

from .._validation import check_float, no_forward
from .base import Layer


class Activation(Layer):
    kind = IDENTITY
    alpha = 0.0
    Y = None                                                          # the saved output (None: no forward yet)

    def forward(self, X):
        X = check_float(X, type(self).__name__)
        Y = self._ws("Y", X.shape, X.dtype, X)
        ops.act_forward(X, self.kind, self.alpha, out=Y)              # Y = f(X)
        self.Y = Y                                                    # saved: f' is a function of Y
        return Y

    def backward(self, dY):
        if self.Y is None:
            raise no_forward(type(self).__name__)
        dY = check_float(dY, f"{type(self).__name__}.backward", rows=self.Y.shape[0], width=self.Y.shape[len(self.Y.shape) - 1])
        dX = self._ws("dX", dY.shape, dY.dtype, dY)
        return ops.act_backward(dY, self.Y, self.kind, self.alpha, out=dX)   # dX = dY ⊙ f'(Y)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Identity(Activation):
    kind = IDENTITY


class ReLU(Activation):
    kind = RELU


class LeakyReLU(Activation):
    kind = LEAKY_RELU

    def __init__(self, negative_slope=0.01):
        if not isinstance(negative_slope, numbers.Real) or not negative_slope > 0:
            # a > 0 keeps sign(Y) = sign(X), which the output-based backward relies on
            raise ValueError(f"LeakyReLU: negative_slope must be > 0, got {negative_slope!r}")
        self.alpha = float(negative_slope)

    def __repr__(self):
        return f"LeakyReLU(negative_slope={self.alpha})"


class Sigmoid(Activation):
    kind = SIGMOID


class Tanh(Activation):
    kind = TANH


class Exp(Activation):
    kind = EXP


ACTIVATIONS = {"identity": Identity, "relu": ReLU, "leaky_relu": LeakyReLU, "logistic": Sigmoid,
               "sigmoid": Sigmoid, "tanh": Tanh, "exp": Exp}
