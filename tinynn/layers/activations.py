r"""Elementwise activations. Each saves its *output* Y and differentiates through it, except GELU and SiLU,
whose derivative is no function of the output: they save their *input* X.

    ReLU:       Y = max(X, 0)                   dX = dY ⊙ [Y > 0]
    LeakyReLU:  Y = X if X > 0 else a X         dX = dY ⊙ (1 if Y > 0 else a)
    Sigmoid:    Y = 1 / (1 + e^-X)              dX = dY ⊙ Y (1 - Y)
    Tanh:       Y = tanh X                      dX = dY ⊙ (1 - Y²)
    Identity:   Y = X                           dX = dY
    Exp:        Y = e^X                         dX = dY ⊙ Y          (Poisson regression's output)
    ELU(α):     Y = X if X > 0 else α(e^X - 1)  dX = dY ⊙ (1 if Y > 0 else Y + α)
    Softplus(β): Y = log(1 + e^(βX)) / β        dX = dY ⊙ (1 - e^(-βY))    (= σ(βX))
    GELU:       Y = X Φ(X) = ½X(1 + erf(X/√2))  dX = dY ⊙ (Φ(X) + X φ(X))
    GELU(approximate="tanh"):
                Y = ½X(1 + tanh u),  u = √(2/π)(X + 0.044715 X³)
                                                dX = dY ⊙ (½(1 + tanh u) + ½X(1 - tanh²u) √(2/π)(1 + 0.134145 X²))
    SiLU:       Y = X σ(X)                      dX = dY ⊙ σ(X)(1 + X(1 - σ(X)))
"""
import math
import numbers

from ..kernels import ops
from ..kernels.config import ELU as ELU_, EXP, FROM_INPUT, GELU as GELU_, GELU_TANH, IDENTITY, LEAKY_RELU, \
    RELU, SIGMOID, SILU, SOFTPLUS, TANH

from .._validation import check_float, no_forward
from .base import Layer


class Activation(Layer):
    kind = IDENTITY
    alpha = 0.0
    Y = None                                                          # the saved output (None: no forward yet)
    saved = None                                                      # what f' is computed from: Y, or X

    @property
    def from_input(self):
        """True where f' is a function of the input (GELU, SiLU): forward saves X, not Y."""
        return self.kind in FROM_INPUT

    def forward(self, X):
        X = check_float(X, type(self).__name__)
        Y = self._ws("Y", X.shape, X.dtype, X)
        ops.act_forward(X, self.kind, self.alpha, out=Y)              # Y = f(X)
        self.Y = Y
        self.saved = X if self.from_input else Y                      # f' is a function of this
        return Y

    def backward(self, dY):
        if self.saved is None:
            raise no_forward(type(self).__name__)
        V = self.saved
        dY = check_float(dY, f"{type(self).__name__}.backward", rows=V.shape[0], width=V.shape[len(V.shape) - 1])
        dX = self._ws("dX", dY.shape, dY.dtype, dY)
        return ops.act_backward(dY, V, self.kind, self.alpha, out=dX)   # dX = dY ⊙ f'(Y or X)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Identity(Activation):
    kind = IDENTITY


class ReLU(Activation):
    kind = RELU


class LeakyReLU(Activation):
    kind = LEAKY_RELU

    def __init__(self, negative_slope=0.01):
        if not isinstance(negative_slope, numbers.Real) or not float(negative_slope) > 0:
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


def _positive(who, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value) > 0 or value == math.inf:
        raise ValueError(f"{who}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


class ELU(Activation):
    """ELU(alpha): X for X > 0, alpha (e^X - 1) below (torch.nn.ELU; alpha > 0, which the output-based
    derivative needs: it keeps the sign of X in Y)."""
    kind = ELU_

    def __init__(self, alpha=1.0):
        self.alpha = _positive("ELU", "alpha", alpha)

    def __repr__(self):
        return f"ELU(alpha={self.alpha})"


class Softplus(Activation):
    """Softplus(beta): log(1 + e^(beta X)) / beta (torch.nn.Softplus, computed stably everywhere, so torch's
    ``threshold`` linearisation, which changes the value by less than float rounding, is not needed)."""
    kind = SOFTPLUS

    def __init__(self, beta=1.0):
        self.alpha = _positive("Softplus", "beta", beta)

    @property
    def beta(self):
        return self.alpha

    def __repr__(self):
        return f"Softplus(beta={self.alpha})"


class GELU(Activation):
    """GELU: X Φ(X) with the exact erf form (``approximate="none"``) or the tanh approximation
    (``approximate="tanh"``), as torch.nn.GELU."""
    kind = GELU_

    def __init__(self, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self.kind = GELU_ if approximate == "none" else GELU_TANH

    def __repr__(self):
        return "GELU()" if self.kind == GELU_ else "GELU(approximate='tanh')"


class GELUTanh(GELU):
    """GELU(approximate="tanh"), as a class of its own for the name tables (``activation="gelu_tanh"``)."""
    kind = GELU_TANH

    def __init__(self, approximate="tanh"):
        super().__init__(approximate)


class SiLU(Activation):
    """SiLU (swish): X σ(X) (torch.nn.SiLU)."""
    kind = SILU


ACTIVATIONS = {"identity": Identity, "relu": ReLU, "leaky_relu": LeakyReLU, "logistic": Sigmoid,
               "sigmoid": Sigmoid, "tanh": Tanh, "exp": Exp, "gelu": GELU, "gelu_tanh": GELUTanh, "silu": SiLU,
               "swish": SiLU, "elu": ELU, "softplus": Softplus}
