"""``Sequential.summary()``: a Keras-like table of a model's layers, output shapes and parameter counts.

Output shapes are inferred from the layers' own sizes, without a forward pass (no work buffer is made, no
saved input changes): ``None`` stands for the batch dimension. A shape-preserving layer (activations, dropout,
normalization) passes its input's shape on; a Linear gives ``(None, out_features)``; an Embedding
``(None, k · embedding_dim)`` for ``k`` indices per row; a nested Sequential its last layer's; a custom layer
that defines ``output_shape(input_shape) -> tuple`` is asked, and any other custom layer's shape is unknown
(``?``) from there on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from .layers.base import Layer
    from .model import Sequential

Shape = Optional[Tuple[Optional[int], ...]]          # None: not known


class SummaryRow(NamedTuple):
    """One layer of a summary."""

    position: int
    name: str                                # the layer's class name
    output_shape: Shape                      # (None, features) with None for the batch; None when not known
    params: int                              # parameters of the layer (elements)
    trainable: str                           # "yes", "frozen", "partly" (some frozen) or "-" (no parameters)


class Summary(str):
    """The summary table as text (``print(model.summary())``; the REPL shows it as it is); ``rows`` holds
    each layer's ``SummaryRow`` and ``total``/``trainable``/``frozen`` the parameter counts."""

    rows: Tuple[SummaryRow, ...]
    total: int
    trainable: int
    frozen: int

    def __repr__(self) -> str:
        return str(self)


def output_shape(layer: Layer, shape: Shape) -> Shape:
    """The output shape of ``layer`` for an input of ``shape`` (None: not known)."""
    from .layers import Activation, BatchNorm1d, Dropout, Embedding, LayerNorm, Linear
    from .model import Sequential

    if isinstance(layer, Sequential):
        for inner in layer.layers:
            shape = output_shape(inner, shape)
        return shape
    if isinstance(layer, Linear):
        return (None, layer.out_features)
    if isinstance(layer, Embedding):
        k = 1 if shape is None or len(shape) < 2 else shape[1]
        return (None, None if k is None else k * layer.embedding_dim)
    if isinstance(layer, (Activation, Dropout, BatchNorm1d, LayerNorm)):
        return shape
    custom = getattr(layer, "output_shape", None)
    if callable(custom) and shape is not None:
        return tuple(custom(shape))
    return None


def _input_shape(model: Sequential, input_shape: Optional[Sequence[int]]) -> Shape:
    from .layers import Embedding, Linear

    if input_shape is not None:
        return (None, *(int(d) for d in input_shape))
    first = model.layers[0] if model.layers else None
    if isinstance(first, Linear):
        return (None, first.in_features)
    if isinstance(first, Embedding):
        return (None,)
    return None


def _trainable(layer: Layer) -> str:
    flags = [p.requires_grad for p in layer.parameters()]
    if not flags:
        return "-"
    return "yes" if all(flags) else "frozen" if not any(flags) else "partly"


def _shape_text(shape: Shape) -> str:
    return "?" if shape is None else "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def summary(model: Sequential, input_shape: Optional[Sequence[int]] = None) -> Summary:
    """The table of ``model`` (see ``Sequential.summary``)."""
    shape = _input_shape(model, input_shape)
    rows = []
    for i, layer in enumerate(model.layers):
        shape = output_shape(layer, shape)
        n = sum(int(p.data.size) for p in layer.parameters())
        rows.append(SummaryRow(i, type(layer).__name__, shape, n, _trainable(layer)))
    params = model.parameters()
    total = sum(int(p.data.size) for p in params)
    trainable = sum(int(p.data.size) for p in params if p.requires_grad)
    head = ("#", "Layer (type)", "Output shape", "Param #", "Trainable")
    body = [(str(r.position), r.name, _shape_text(r.output_shape), f"{r.params:,}", r.trainable) for r in rows]
    widths = [max(len(c) for c in col) for col in zip(head, *body)]
    right = (True, False, False, True, False)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    rule_w = len(line(head))
    lines = ["=" * rule_w, line(head), "=" * rule_w, *(line(b) for b in body), "=" * rule_w,
             f"Total params: {total:,}", f"Trainable params: {trainable:,}",
             f"Frozen params: {total - trainable:,}", "=" * rule_w]
    out = Summary("\n".join(lines))
    out.rows, out.total, out.trainable, out.frozen = tuple(rows), total, trainable, total - trainable
    return out
