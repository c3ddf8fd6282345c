"""The MLPs tinynn builds from a seed (``build_mlp``) and their model files (``save_model`` / ``load_model``:
model.npz, the parameters and running statistics as arrays, the architecture as JSON)."""
from __future__ import annotations

import numpy as np

from . import init as _init
from . import io
from .layers import ACTIVATIONS, BatchNorm1d, Dropout, Layer, Linear
from .model import Sequential
from .streams import stream


def build_mlp(sizes, activation="relu", dropout=0.0, batch_norm=False, init="kaiming_uniform", dtype=np.float32,
              seed=0, input_dropout=0.0):
    """Linear → [BatchNorm1d] → activation → [Dropout] per hidden layer, then a Linear output layer.

    ``sizes`` = [d_in, h_1, …, h_k, d_out]. Layer i is initialised from ``stream(seed, "init", i)`` and each
    Dropout draws its masks from ``stream(seed, "dropout", i)``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
    _init.get(init)                                                      # unknown names fail here, listed
    layers: list[Layer] = []
    if input_dropout:
        layers.append(Dropout(input_dropout, rng=stream(seed, "dropout", "input")))
    for i in range(len(sizes) - 1):
        layers.append(Linear(sizes[i], sizes[i + 1], dtype=dtype, init=init, rng=stream(seed, "init", i)))
        if i == len(sizes) - 2:
            break
        if batch_norm:
            layers.append(BatchNorm1d(sizes[i + 1], dtype=dtype))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(Dropout(dropout, rng=stream(seed, "dropout", i)))
    return Sequential(*layers)


def save_model(path, model, spec):
    """model.npz: the parameters and running statistics as arrays, the architecture ``spec`` as JSON."""
    arrays, meta = io.pack_state(model)
    meta["spec"] = spec
    io.save_npz(path, arrays, meta, kind="sequential")


def load_model(path):
    """A working Sequential back from ``save_model``'s file (read with allow_pickle=False).

    The architecture ``spec`` is checked (sizes, activation from tinynn.ACTIVATIONS, dropout, batch_norm,
    dtype) and every array against it (names, dtype, shapes, finite values) before the model is built; any
    mismatch raises ``tinynn.errors.FileFormatError`` (a ValueError) naming the file and the entry."""
    arrays, meta = io.load_npz(path, kind="sequential", plan=io.model_file_plan)   # arrays vs spec before read
    path = meta.source
    spec = io.MetaReader(path, meta).sub("spec")
    sizes = spec.list("sizes")
    if len(sizes) < 2 or not all(io._is_int(v) and v >= 1 for v in sizes):
        spec.fail(f"{spec.name('sizes')} must list at least 2 positive integers (input, ..., output), got {sizes!r}")
    activation = spec.str("activation", ACTIVATIONS, table=" (tinynn.ACTIVATIONS)")
    dropout = spec.number("dropout", lo=0, hi=1, hi_open=True)
    batch_norm = spec.bool("batch_norm")
    dtype = np.dtype(spec.str("dtype", io.FLOAT_DTYPES))
    input_dropout = spec.number("input_dropout", lo=0, hi=1, hi_open=True, default=0.0)
    io.check_model_arrays(path, arrays, io.mlp_state_layout(sizes, batch_norm, dropout, input_dropout), dtype)
    extra = sorted(k for k in arrays if not k.startswith("model/"))
    if extra:
        raise io.FileFormatError(path, f"unexpected array(s) {extra} in a model file")
    model = build_mlp(sizes, activation, dropout, batch_norm, dtype=dtype, input_dropout=input_dropout)
    io.unpack_state(arrays, meta, model)
    return model


__all__ = ["build_mlp", "save_model", "load_model"]
