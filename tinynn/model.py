"""Sequential: forward and backward through a list of layers."""
from __future__ import annotations

import numpy as np

from tinynn import kernels
from tinynn.kernels import ops

from .layers.activations import Activation
from .layers.base import Layer
from .layers.linear import Linear
from .parameter import FlatParameters


class Sequential(Layer):
    r"""Layers applied in order: Y = f_L(… f_2(f_1(X))); backward runs the chain rule in reverse,
    dX_{l} = backward_l(dX_{l+1}).

    Two speed-ups that change no result:

    * all parameters become views into one flat data buffer and one flat gradient buffer, so an optimizer
      updates the whole model with one fused kernel call;
    * a Linear followed by an activation runs as one fused bias+activation kernel forward, and one fused
      activation-backward + bias-gradient kernel backward.

    The first layer computes no input gradient, so ``backward`` returns None.
    """

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, l in enumerate(layers):
            if not isinstance(l, Layer):
                raise TypeError(f"Sequential: layer {i} is a {type(l).__name__}, expected a tinynn Layer")
        self.layers = list(layers)
        if self.layers:
            self.layers[0].needs_input_grad = False
        self._flatten()

    def _flatten(self):
        params = self.parameters()
        if params and len({np.dtype(p.dtype) for p in params}) == 1 and \
                len({kernels.device_of(p.data) for p in params}) == 1:
            weights = [l.weight for l in self.layers if type(l) is Linear]
            self.flat = FlatParameters(params, first=weights)  # Linear weights first: flat.data[:n_first]
        else:
            self.flat = None

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self):
        return [(f"{i}.{name}", p) for i, layer in enumerate(self.layers) for name, p in layer.named_parameters()]

    def _fusable(self, i):
        """Layer i is a Linear with a trainable bias and layer i+1 an activation: fuse them."""
        if i + 1 >= len(self.layers):
            return False
        lin, act = self.layers[i], self.layers[i + 1]
        return type(lin) is Linear and lin.bias is not None and lin.bias.requires_grad and \
            isinstance(act, Activation)

    def forward(self, X):
        i, n = 0, len(self.layers)
        while i < n:
            layer = self.layers[i]
            if self._fusable(i):
                act = self.layers[i + 1]
                X = layer.forward(X, act.kind, act.alpha)             # Y = act(X W + b), one kernel after the GEMM
                act.Y = X
                i += 2
            else:
                X = layer.forward(X)
                i += 1
        return X

    def backward(self, dY):
        i = len(self.layers) - 1
        while i >= 0:
            layer = self.layers[i]
            if i >= 1 and self._fusable(i - 1) and isinstance(layer, Activation):
                lin = self.layers[i - 1]
                dZ = lin._ws("dZ", dY.shape, dY.dtype, dY)
                ops.act_backward_bias(dY, layer.Y, layer.kind, layer.alpha, dZ, lin.bias.grad)  # dZ, db = Σ dZ
                dY = lin.backward(dZ, bias_done=True)
                i -= 2
            else:
                dY = layer.backward(dY)
                i -= 1
            if dY is None:
                break
        return dY

    def train(self, mode=True):
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def zero_grad(self):
        if self.flat is not None:
            ops.fill(self.flat.grad, 0.0)
        else:
            for layer in self.layers:
                layer.zero_grad()

    def to(self, device):
        for layer in self.layers:
            layer.to(device)
        self._flatten()
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """Plain NumPy arrays: '<layer>.<param>' for parameters, '<layer>.<state>' for running statistics."""
        sd = {name: np.array(kernels.to_host(p.data)) for name, p in self.named_parameters()}
        for i, layer in enumerate(self.layers):
            for s in layer._state_names:
                sd[f"{i}.{s}"] = np.array(kernels.to_host(getattr(layer, s)))
        return sd

    def load_state_dict(self, sd):
        expected = set(self.state_dict())
        got = set(sd)
        if expected != got:
            raise ValueError(f"load_state_dict: keys differ: missing {sorted(expected - got)}, "
                             f"unexpected {sorted(got - expected)}")
        for name, p in self.named_parameters():
            a = np.asarray(sd[name])
            if a.shape != tuple(p.shape):
                raise ValueError(f"load_state_dict: {name}: expected shape {tuple(p.shape)}, got {a.shape}")
            kernels.assign(p.data, a.astype(p.dtype, copy=False))
        for i, layer in enumerate(self.layers):
            for s in layer._state_names:
                kernels.assign(getattr(layer, s), np.asarray(sd[f"{i}.{s}"]).astype(getattr(layer, s).dtype))
        return self

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        inner = "\n".join(f"  ({i}): {l!r}" for i, l in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"
