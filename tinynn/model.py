"""Sequential: forward and backward through a list of layers."""
from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from . import kernels  # type: ignore[no-redef]  # kernels/ is tinynn.kernels by package_dir, which mypy does not map
from .kernels import ops

from .layers.activations import Activation
from .layers.base import Layer
from .layers.fused import LinearActivation
from .layers.linear import Linear
from ._summary import Summary
from ._typing import Array
from .parameter import FlatParameters, Parameter


class Sequential(Layer):
    r"""Layers applied in order: Y = f_L(… f_2(f_1(X))); backward runs the chain rule in reverse,
    dX_{l} = backward_l(dX_{l+1}).

    Two speed-ups that change no result, both decided once, here:

    * all parameters become views into one flat data buffer and one flat gradient buffer, so an optimizer
      updates the whole model with one fused kernel call;
    * the execution plan replaces each Linear (with a bias) directly followed by an activation by one
      ``LinearActivation`` node: one fused bias+activation kernel forward, one fused activation-backward +
      bias-gradient kernel backward. ``layers`` stays the list the user gave (indexing, names, state_dict).

    The first node computes no input gradient, so ``backward`` returns None.
    """

    layers: list[Layer]                    # as given
    plan: list[tuple[int, Layer]]          # (index of the node's last layer, node)
    _outputs: dict[int, Array]
    flat: Optional[FlatParameters]         # None where the parameters do not share one dtype and device

    def __init__(self, *layers: Layer | Sequence[Layer]) -> None:
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, l in enumerate(layers):
            if not isinstance(l, Layer):
                raise TypeError(f"Sequential: layer {i} is a {type(l).__name__}, expected a tinynn Layer")
        self.layers = list(layers)  # type: ignore[arg-type]  # a list or tuple given alone was unpacked above
        self.plan = self._plan()
        self._outputs = {}
        self.needs_input_grad = False
        self._flatten()

    @property
    def needs_input_grad(self):
        """False (the default): the first node skips dX = dY Wᵀ, so ``backward`` returns None. Set True for
        the input gradient (a gradient check, or a Sequential inside another)."""
        return bool(self.plan) and self.plan[0][1].needs_input_grad

    @needs_input_grad.setter
    def needs_input_grad(self, value):
        if self.plan:
            self.plan[0][1].needs_input_grad = bool(value)

    def output(self, i: int) -> Array:
        """The output of layer i in the last forward pass (a work buffer: copy it to keep it). The output of
        a Linear fused with the activation after it is not materialised; ask for the activation's."""
        if i < 0:
            i += len(self.layers)
        if i not in self._outputs:
            fused = any(isinstance(node, LinearActivation) and end == i + 1 for end, node in self.plan)
            raise ValueError(f"Sequential.output({i}): " + (
                f"layer {i} is a Linear fused with the activation after it; its output before the activation is "
                f"not kept: ask for output({i + 1})" if fused else "no forward pass has run yet"))
        return self._outputs[i]

    def _plan(self):
        """[(index of the node's last layer, node)]: layers as given, Linear+activation pairs fused."""
        plan: list[tuple[int, Layer]] = []
        i, n = 0, len(self.layers)
        while i < n:
            first, second = self.layers[i], self.layers[i + 1] if i + 1 < n else None
            if isinstance(first, Linear) and isinstance(second, Activation) and LinearActivation.fusable(first, second):
                plan.append((i + 1, LinearActivation(first, second)))
                i += 2
            else:
                plan.append((i, self.layers[i]))
                i += 1
        return plan

    def _flatten(self):
        params = self.parameters()
        if params and len({np.dtype(p.dtype) for p in params}) == 1 and \
                len({kernels.device_of(p.data) for p in params}) == 1:
            weights = [l.weight for l in self.layers if type(l) is Linear]
            self.flat = FlatParameters(params, first=weights)  # Linear weights first: flat.data[:n_first]
        else:
            self.flat = None

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return [(f"{i}.{name}", p) for i, layer in enumerate(self.layers) for name, p in layer.named_parameters()]

    @property
    def accumulates_grad(self) -> bool:  # type: ignore[override]  # a Sequential accumulates when a layer does
        """True when some layer adds into its gradients (Embedding): zero them before each backward."""
        return any(layer.accumulates_grad for layer in self.layers)

    def forward(self, X: Any) -> Array:
        outputs = self._outputs
        for i, node in self.plan:
            X = outputs[i] = node.forward(X)
        return X

    def backward(self, dY: Array, hook: Optional[Callable[[int, Layer], object]] = None) -> Array | None:
        """dX of the first layer (None: not computed). ``hook(i, layer)``, if given, is called as soon as the
        gradients of layer i's parameters are final (data-parallel training starts their reduction there)."""
        for i, node in reversed(self.plan):
            dY = node.backward(dY)
            if hook is not None:
                hook(i, node)
            if dY is None:
                break
        return dY

    def train(self, mode: bool = True) -> Sequential:
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def zero_grad(self) -> None:
        if self.flat is not None:
            ops.fill(self.flat.grad, 0.0)
        else:
            for layer in self.layers:
                layer.zero_grad()

    def to(self, device: str) -> Sequential:
        for layer in self.layers:
            layer.to(device)
        for _, node in self.plan:
            node.to(device)
        self._flatten()
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain NumPy arrays: '<layer>.<param>' for parameters, '<layer>.<state>' for running statistics."""
        sd = {name: np.array(kernels.to_host(p.data)) for name, p in self.named_parameters()}
        for i, layer in enumerate(self.layers):
            for s in layer._state_names:
                sd[f"{i}.{s}"] = np.array(kernels.to_host(getattr(layer, s)))
        return sd

    def load_state_dict(self, sd: Mapping[str, Any]) -> Sequential:
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

    def summary(self, input_shape: Optional[Sequence[int]] = None) -> Summary:
        """A Keras-like table: each layer's type, output shape (``None``: the batch dimension), parameter count
        and whether its parameters train ("yes", "frozen", "partly"; "-" without parameters), then the total,
        trainable and frozen parameter counts. Returns the table as a ``str`` (``print(model.summary())``)
        whose ``rows``, ``total``, ``trainable`` and ``frozen`` attributes hold the numbers. ``input_shape``,
        one sample's shape (e.g. ``(3,)`` for three indices per row into an Embedding), is needed only where the
        first layer does not fix it. No forward pass runs (``tinynn._summary``)."""
        from ._summary import summary

        return summary(self, input_shape)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self):
        inner = "\n".join(f"  ({i}): {l!r}" for i, l in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


def host_copy(model):
    """A deep copy of the Sequential ``model`` whose arrays are on the host (``copy.deepcopy`` cannot be trusted
    with device arrays: the simulator's become NumPy arrays, a GPU's have no copy protocol): every device array
    that the model, its layers and execution plan, parameters and flat buffers hold is copied to the host
    first and stands in for it in the copy. Move the copy (or a part of it) with ``.to(device)``."""
    memo: dict[int, Any] = {}
    keep = []                                          # deepcopy's memo holds ids: keep the originals alive

    def host(a):
        if kernels.is_device_array(a) and id(a) not in memo:
            memo[id(a)] = kernels.to_host(a)
            keep.append(a)

    flat = getattr(model, "flat", None)
    if flat is not None:
        host(flat.data)
        host(flat.grad)
    for obj in [model, *model.layers, *(node for _, node in getattr(model, "plan", ()))]:
        for v in vars(obj).values():
            host(v)
    for p in model.parameters():
        host(p.data)
        host(p.grad)
    out = copy.deepcopy(model, memo)
    del keep
    return out
