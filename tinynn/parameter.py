"""Parameter: a tensor's ``.data`` and its gradient ``.grad``, on one device (a Caffe Blob without sync)."""
from __future__ import annotations
from typing import Optional

import numpy as np

from . import kernels


class Parameter:
    """A learnable array and its gradient.

    Parameters
    ----------
    data : array of float, host (NumPy) or CUDA device array
    requires_grad : bool
        False freezes the parameter: layers compute no gradient for it and optimizers skip it.

    ``grad`` has the shape, dtype and device of ``data``; ``backward`` *overwrites* it (tinynn has no
    weight sharing, so nothing needs to accumulate). ``rows`` is set by sparse layers (Embedding) to the
    rows the last backward touched, for lazy optimizers.
    """

    __slots__ = ("data", "grad", "requires_grad", "rows", "flat")

    def __init__(self, data, requires_grad: bool = True):
        if not kernels.is_device_array(data):
            data = np.ascontiguousarray(data)
            if data.dtype.kind != "f":
                raise TypeError(f"Parameter: expected a floating-point array, got dtype {data.dtype}")
        self.data = data
        self.grad = kernels.empty(data.shape, data.dtype, like=data)
        _zero(self.grad)
        self.requires_grad = bool(requires_grad)
        self.rows: Optional[np.ndarray] = None
        self.flat: Optional[FlatParameters] = None  # the FlatParameters group this parameter is a view into, if any

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    # Pickling: a parameter inside a flat buffer is stored as a reference to that buffer, and the views
    # are rebuilt on load; otherwise pickle would write independent copies, and an optimizer updating the
    # flat buffer would no longer move the layer's weights.
    def __getstate__(self):
        state = {k: getattr(self, k) for k in self.__slots__ if hasattr(self, k)}
        if self.flat is not None:
            del state["data"], state["grad"]
        return state

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)
        flat = self.flat
        if "data" not in state and flat is not None and getattr(flat, "data", None) is not None:
            flat.link(self)

    def __repr__(self):
        return (f"Parameter(shape={tuple(self.data.shape)}, dtype={np.dtype(self.data.dtype).name}, "
                f"device={kernels.device_of(self.data)!r}, requires_grad={self.requires_grad})")


def _zero(a):
    """a[...] = 0 on the array's own device."""
    kernels.ops.fill(a, 0.0)


class FlatParameters:
    """All parameters of a model as views into one data buffer and one gradient buffer.

    With one flat buffer, an optimizer step is one fused kernel call for the whole model. ``first`` lists
    parameters to place at the front of the buffer (Sequential puts the Linear weights there, so that
    ``data[:n_first]`` covers exactly the weights an L2 penalty applies to); ``params`` keeps its order.
    """

    def __init__(self, params: list[Parameter], first=()):
        if not params:
            raise ValueError("FlatParameters: no parameters")
        dtypes = {np.dtype(p.dtype) for p in params}
        if len(dtypes) != 1:
            raise TypeError(f"FlatParameters: parameters must share one dtype, got {sorted(map(str, dtypes))}")
        dtype = dtypes.pop()
        like = params[0].data
        total = sum(int(np.prod(p.shape)) for p in params)
        self.data = kernels.empty((total,), dtype, like=like)
        self.grad = kernels.empty((total,), dtype, like=like)
        _zero(self.grad)
        self.params = list(params)
        first_ids = {id(p) for p in first}
        layout = [p for p in params if id(p) in first_ids] + [p for p in params if id(p) not in first_ids]
        where = {}
        o = 0
        for p in layout:
            size = int(np.prod(p.shape))
            view = self.data[o:o + size].reshape(p.shape)
            kernels.assign(view, p.data)
            p.data = view
            p.grad = self.grad[o:o + size].reshape(p.shape)
            p.flat = self
            where[id(p)] = (o, size)
            o += size
        self.offsets = [where[id(p)] for p in self.params]  # aligned with self.params
        self.shapes = [tuple(p.shape) for p in self.params]
        self.n_first = sum(where[id(p)][1] for p in layout if id(p) in first_ids)

    def link(self, p):
        """Point ``p.data``/``p.grad`` at their views of the flat buffers (used after unpickling)."""
        for q, (o, size), shape in zip(self.params, self.offsets, self.shapes):
            if q is p:
                p.data = self.data[o:o + size].reshape(shape)
                p.grad = self.grad[o:o + size].reshape(shape)

    def __setstate__(self, state):
        self.__dict__.update(state)
        for p in self.params:
            self.link(p)

    def __len__(self):
        return self.data.shape[0]
