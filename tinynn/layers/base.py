"""Layer: the interface every layer follows.

    Y  = layer.forward(X)      saves what backward needs (and nothing more)
    dX = layer.backward(dY)    writes ∂L/∂θ into each parameter's .grad, returns ∂L/∂X

Outputs and input gradients are written into per-layer work buffers that are reused from step to step
(the training step allocates nothing once warmed up): the array returned by ``forward``/``backward`` is
overwritten by the next call. Copy it (``Y.copy()``) if you keep it across calls.
"""
from __future__ import annotations


from typing import Any, TypeVar

from .._typing import Array

from .. import kernels  # type: ignore[no-redef]  # kernels/ is tinynn.kernels by package_dir (mypy: unmapped)
from ..kernels import ops

from .._workspace import WorkBuffers
from ..parameter import Parameter


_L = TypeVar("_L", bound="Layer")


class Layer(WorkBuffers):
    training = True
    needs_input_grad = True  # Sequential sets False on its first node: no dX is computed there
    accumulates_grad = False  # True where backward adds into .grad (Embedding): zero_grad before each step

    # names of non-learnable state arrays (moved by .to, saved by state_dict), e.g. running statistics
    _state_names: tuple = ()

    def forward(self, X: Any) -> Array:
        raise NotImplementedError

    def backward(self, dY: Array) -> Array | None:
        raise NotImplementedError

    def __call__(self, X: Any) -> Array:
        return self.forward(X)

    # ------------------------------------------------------------------ parameters
    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Parameter)]

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            ops.fill(p.grad, 0.0)

    # ------------------------------------------------------------------ modes and devices
    def train(self: _L, mode: bool = True) -> _L:
        self.training = bool(mode)
        return self

    def eval(self: _L) -> _L:
        return self.train(False)

    @property
    def device(self) -> str:
        ps = self.parameters()
        return kernels.device_of(ps[0].data) if ps else "cpu"

    def to(self: _L, device: str) -> _L:
        """Move parameters and state to ``device`` ("cpu" or "cuda"); work buffers are re-made there."""
        for p in self.parameters():                                   # to_device(a, "cpu") is to_host(a)
            p.data = kernels.to_device(p.data, device)
            p.grad = kernels.to_device(p.grad, device)
            p.flat = None
        for name in self._state_names:
            setattr(self, name, kernels.to_device(getattr(self, name), device))
        self._ws_cache: dict[Any, Any] = {}
        return self

    # ------------------------------------------------------------------ work buffers (WorkBuffers._ws)
    def _grad_out(self, p: Parameter, name: str):
        """Where backward writes p's gradient: p.grad, or a scratch buffer when p is frozen."""
        return p.grad if p.requires_grad else self._ws(name, p.shape, p.dtype, p.data)

    def __repr__(self):
        return f"{type(self).__name__}()"
