"""Reusable work buffers, shared by layers and losses: the training step allocates no arrays once warm."""
from typing import Any
import numpy as np

from . import kernels


class WorkBuffers:
    def _ws(self, name: str, shape, dtype, like):
        """A reusable buffer on the device of ``like`` (re-allocated only when shape, dtype or device change)."""
        cache: dict[Any, Any] = self.__dict__.setdefault("_ws_cache", {})
        buf = cache.get(name)
        if buf is not None and type(buf) is type(like) and buf.shape == shape and buf.dtype == dtype:
            return buf                                    # the steady state: one test per step
        if buf is None or buf.shape != tuple(shape) or buf.dtype != np.dtype(dtype) or \
                kernels.is_device_array(buf) != kernels.is_device_array(like):
            buf = kernels.empty(tuple(shape), dtype, like=like)
            cache[name] = buf
        return buf

    def __getstate__(self):  # pickling: work buffers and saved activations are not state
        return {k: v for k, v in self.__dict__.items() if k not in ("_ws_cache", "X", "Y")}
