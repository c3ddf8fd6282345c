r"""LinearActivation: a Linear followed by an activation, computed as one node.

    Forward:   Z = X W + b,   Y = f(Z)                    (one GEMM, then one fused bias + f kernel)
    Backward:  dZ = dY ⊙ f'(Y),  db = Σ_n dZ              (one fused kernel)
               dW = Xᵀ dZ,       dX = dZ Wᵀ               (two GEMMs)

It is the composition of the two layers it is built from (``Linear.forward`` then ``Activation.forward``) with
no change in result; only the number of passes over memory drops. ``Sequential`` plans these nodes once, when
it is built, for every Linear with a bias that is directly followed by an activation. The node reads the two
layers' parameters and constants and writes only its own buffers and the Linear's gradients.
"""
from ..kernels import ops

from .._validation import check_float, no_forward
from .activations import Activation
from .base import Layer
from ..sparse import CSR
from .linear import Linear, check_input, xt_dy, xw


class LinearActivation(Layer):
    """Y = f(X W + b) for ``linear`` (a Linear with a bias) and ``activation`` (an Activation)."""

    X = None                                                              # the saved input (None: no forward yet)

    def __init__(self, linear: Linear, activation: Activation):
        if type(linear) is not Linear or linear.bias is None:
            raise TypeError(f"LinearActivation: expected a Linear with a bias, got {linear!r}")
        if not isinstance(activation, Activation):
            raise TypeError(f"LinearActivation: expected an Activation, got {activation!r}")
        self.linear, self.activation = linear, activation

    @staticmethod
    def fusable(first, second) -> bool:
        # GELU and SiLU differentiate through their input, which the fused node does not keep
        return type(first) is Linear and first.bias is not None and isinstance(second, Activation) \
            and not second.from_input

    def named_parameters(self):
        return self.linear.named_parameters()

    def forward(self, X):
        lin, act = self.linear, self.activation
        W = lin.weight.data
        X = check_input(X, "Linear", lin.in_features, W)
        self.X = X                                                        # saved for backward
        Y = self._ws("Y", (X.shape[0], lin.out_features), W.dtype, W)
        xw(X, W, Y)                                                       # Z = X W
        assert lin.bias is not None                                      # fusable: a Linear with a bias
        ops.bias_act(Y, lin.bias.data, act.kind, act.alpha, out=Y)       # Y = f(Z + b), in place
        self.Y = Y                                                        # saved: f' is a function of Y
        return Y

    def backward(self, dY):
        lin, act = self.linear, self.activation
        X, W = self.X, lin.weight.data
        if X is None:
            raise no_forward("Linear")
        dY = check_float(dY, "Linear.backward", ndim=2, width=lin.out_features, rows=X.shape[0])
        dZ = self._ws("dZ", dY.shape, dY.dtype, dY)
        assert lin.bias is not None
        db = self._grad_out(lin.bias, "db")
        ops.act_backward_bias(dY, self.Y, act.kind, act.alpha, dZ, db)   # dZ = dY ⊙ f'(Y), db = Σ_n dZ
        if lin.weight.requires_grad:
            xt_dy(X, dZ, lin.weight.grad)                                 # dW = Xᵀ dZ
        if not self.needs_input_grad or isinstance(X, CSR):               # first layer, or data: no dX
            return None
        dX = self._ws("dX", X.shape, W.dtype, X)
        return ops.matmul(dZ, W, trans_b=True, out=dX)                    # dX = dZ Wᵀ

    def to(self, device):
        self._ws_cache = {}                                               # the layers move their own parameters
        return self

    def __repr__(self):
        return f"LinearActivation({self.linear!r}, {self.activation!r})"
