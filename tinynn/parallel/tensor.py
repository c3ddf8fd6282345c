r"""Tensor parallelism (Megatron-LM): the weights of an MLP block split across the ranks of a group.

An MLP block Y = f(X A + a) B + b becomes, on rank r of P,

    ColumnParallelLinear  (A split by output units, A = [A_0 … A_{P-1}]):   H_r = f(X A_r + a_r)
    RowParallelLinear     (B split by input units,  B = [B_0; …; B_{P-1}]): Y = Σ_r H_r B_r + b

so X and Y are replicated and H is sharded by columns. Megatron's two conjugate operators carry the one
communication each way: ``f`` (identity forward, allreduce backward) sits at the column layer's input, ``g``
(allreduce forward, identity backward) at the row layer's output. One allreduce of an (n, d_out) activation
forward, one of an (n, d_in) gradient backward per block. Elementwise layers between the two (activations,
dropout, BatchNorm1d, which normalises each feature on its own) act on the shard unchanged.

``tensor_parallel(model, group)`` turns a Sequential into this form: Linear layers are paired
(column, row) from the input on; an unpaired last Linear stays replicated (every rank computes it in full,
from identical inputs, so its gradients agree without communication). ``gather_model`` rebuilds the full
model on rank 0, with the same arrays under the same names as a single-process run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .. import kernels
from ..kernels import ops
from ..kernels.config import IDENTITY

from .. import init as _init
from .._validation import check_float, check_positive_int
from ..layers import Activation, BatchNorm1d, Dropout, Layer, Linear
from ..parameter import Parameter
from ..strategy import ShardedStrategy
from .comm import LocalGroup, check_same, model_signature, split_bounds, world
from .staging import host_copy, model_device

if TYPE_CHECKING:
    from ..model import Sequential
    from .comm import Group


class _ShardedLinear(Layer):
    """Common set-up: the full (in, out) weight is drawn exactly as Linear draws it, then sliced."""

    weight: Parameter                                     # this rank's shard (set by _set_full)
    bias: Optional[Parameter]

    def __init__(self, in_features: int, out_features: int, group: Group | LocalGroup | None = None, *,
                 bias: bool = True, dtype: Any = np.float32, init: Any = "kaiming_uniform", rng: Any = None) -> None:
        self.in_features = check_positive_int(in_features, f"{type(self).__name__}: in_features")
        self.out_features = check_positive_int(out_features, f"{type(self).__name__}: out_features")
        self.dtype = np.dtype(dtype)
        W = _init.get(init)((self.in_features, self.out_features), np.random.default_rng(rng), self.dtype)
        b = np.zeros(self.out_features, self.dtype) if bias else None
        self._set_full(np.asarray(W, self.dtype), b, LocalGroup() if group is None else group)

    @classmethod
    def from_linear(cls, linear: Linear, group):
        """This rank's shard of an existing Linear (its current weights; the Linear is not changed)."""
        if type(linear) is not Linear:
            raise TypeError(f"{cls.__name__}.from_linear: expected a Linear, got {type(linear).__name__}")
        new = cls.__new__(cls)
        new.in_features, new.out_features = linear.in_features, linear.out_features
        new.dtype = np.dtype(linear.weight.dtype)
        b = None if linear.bias is None else np.asarray(linear.bias.data)
        new._set_full(np.asarray(linear.weight.data), b, group)
        new.weight.requires_grad = linear.weight.requires_grad
        if new.bias is not None:
            assert linear.bias is not None
            new.bias.requires_grad = linear.bias.requires_grad
        return new

    def _set_full(self, W, b, group):
        raise NotImplementedError


class ColumnParallelLinear(_ShardedLinear):
    r"""Linear with the weight split by output units: rank r holds A_r = A[:, lo_r:hi_r], a_r = a[lo_r:hi_r].

    Forward:   Y_r = X A_r + a_r                 X (n, d_in) replicated, Y_r (n, d_out,r) this rank's columns
    Backward:  dA_r = Xᵀ dY_r,   da_r = Σ_n dY_r,
               dX = Σ_r dY_r A_rᵀ                 (Megatron's f: the allreduce of the input gradient)

    Since Y = [Y_0 … Y_{P-1}] = X [A_0 … A_{P-1}] + a, ∂L/∂X = Σ_r ∂L/∂Y_r A_rᵀ: each rank holds one term.
    The model's first layer computes no dX (``needs_input_grad`` False): then no communication at all.
    Columns are split as evenly as possible (the first d_out mod P ranks one more).
    """

    def _set_full(self, W, b, group):
        self.group = group
        lo, hi = split_bounds(W.shape[1], group.size, group.rank)
        if W.shape[1] < group.size:                      # checked on every rank alike: all raise, none waits
            raise ValueError(f"ColumnParallelLinear: {W.shape[1]} output units cannot be split over {group.size} "
                             "ranks (each needs at least one)")
        self.tp_split = ("cols", lo, hi)
        self.weight = Parameter(np.ascontiguousarray(W[:, lo:hi]))
        self.bias = Parameter(np.ascontiguousarray(b[lo:hi])) if b is not None else None

    def forward(self, X):
        W = self.weight.data
        X = check_float(X, "ColumnParallelLinear", ndim=2, width=self.in_features, dtype=W.dtype)
        self.X = X                                                        # saved for backward
        Y = self._ws("Y", (X.shape[0], W.shape[1]), W.dtype, X)
        ops.matmul(X, W, out=Y)                                           # Y_r = X A_r
        if self.bias is not None:
            ops.bias_act(Y, self.bias.data, IDENTITY, 0.0, out=Y)         # Y_r += a_r
        return Y

    def backward(self, dY):
        X, W = self.X, self.weight.data
        dY = check_float(dY, "ColumnParallelLinear.backward", ndim=2, width=W.shape[1], rows=X.shape[0])
        if self.weight.requires_grad:
            ops.matmul(X, dY, trans_a=True, out=self.weight.grad)         # dA_r = Xᵀ dY_r
        if self.bias is not None and self.bias.requires_grad:
            ops.sum_rows(dY, out=self.bias.grad)                          # da_r = Σ_n dY_r
        if not self.needs_input_grad:
            return None
        dX = self._ws("dX", X.shape, W.dtype, X)
        ops.matmul(dY, W, trans_b=True, out=dX)                           # dY_r A_rᵀ
        return self.group.allreduce_(dX)                                  # dX = Σ_r dY_r A_rᵀ  (f backward)

    def __repr__(self):
        _, lo, hi = self.tp_split
        return f"ColumnParallelLinear({self.in_features}, {self.out_features}, columns {lo}:{hi})"


class RowParallelLinear(_ShardedLinear):
    r"""Linear with the weight split by input units: rank r holds B_r = B[lo_r:hi_r, :]; the bias b whole.

    Forward:   Y = Σ_r X_r B_r + b              X_r (n, d_in,r) this rank's input columns (a column-parallel
                                                 layer's output), Y (n, d_out) replicated (Megatron's g:
                                                 the allreduce of the partial products; b added once, after)
    Backward:  dB_r = X_rᵀ dY,   db = Σ_n dY    (every rank the same: dY is replicated),
               dX_r = dY B_rᵀ                   (g backward is the identity: no communication)
    """

    def _set_full(self, W, b, group):
        self.group = group
        lo, hi = split_bounds(W.shape[0], group.size, group.rank)
        if W.shape[0] < group.size:
            raise ValueError(f"RowParallelLinear: {W.shape[0]} input units cannot be split over {group.size} "
                             "ranks (each needs at least one)")
        self.tp_split = ("rows", lo, hi)
        self.weight = Parameter(np.ascontiguousarray(W[lo:hi, :]))
        self.bias = Parameter(np.array(b)) if b is not None else None

    def forward(self, X):
        W = self.weight.data
        X = check_float(X, "RowParallelLinear", ndim=2, width=W.shape[0], dtype=W.dtype)
        self.X = X                                                        # saved for backward
        Y = self._ws("Y", (X.shape[0], self.out_features), W.dtype, X)
        ops.matmul(X, W, out=Y)                                           # X_r B_r
        self.group.allreduce_(Y)                                          # Σ_r X_r B_r  (g forward)
        if self.bias is not None:
            ops.bias_act(Y, self.bias.data, IDENTITY, 0.0, out=Y)         # Y += b
        return Y

    def backward(self, dY):
        X, W = self.X, self.weight.data
        dY = check_float(dY, "RowParallelLinear.backward", ndim=2, width=self.out_features, rows=X.shape[0])
        if self.weight.requires_grad:
            ops.matmul(X, dY, trans_a=True, out=self.weight.grad)         # dB_r = X_rᵀ dY
        if self.bias is not None and self.bias.requires_grad:
            ops.sum_rows(dY, out=self.bias.grad)                          # db = Σ_n dY
        if not self.needs_input_grad:
            return None
        dX = self._ws("dX", X.shape, W.dtype, X)
        return ops.matmul(dY, W, trans_b=True, out=dX)                    # dX_r = dY B_rᵀ

    def __repr__(self):
        _, lo, hi = self.tp_split
        return f"RowParallelLinear({self.in_features}, {self.out_features}, rows {lo}:{hi})"


def _shard_batchnorm(bn, lo, hi):
    """A BatchNorm1d over features lo:hi of ``bn`` (batch norm treats each feature on its own)."""
    new = BatchNorm1d(hi - lo, eps=bn.eps, momentum=bn.momentum, dtype=bn.weight.dtype)
    new.weight.data[...] = bn.weight.data[lo:hi]
    new.bias.data[...] = bn.bias.data[lo:hi]
    new.running_mean[...] = bn.running_mean[lo:hi]
    new.running_var[...] = bn.running_var[lo:hi]
    new.weight.requires_grad, new.bias.requires_grad = bn.weight.requires_grad, bn.bias.requires_grad
    setattr(new, "tp_split", ("features", lo, hi))          # a BatchNorm1d of this rank's features
    return new


_BETWEEN = (Activation, Dropout, BatchNorm1d)    # layers that act on each feature on its own


def tensor_parallel(model: Any, group: Group | None = None) -> Sequential:
    """A tensor-parallel copy of the Sequential ``model`` for this rank (``model`` itself is not changed).

    Linear layers are paired (column-parallel, row-parallel) from the input on, when only activations,
    Dropout or BatchNorm1d stand between them; a Linear left without a partner stays replicated. Layer
    indices, and so the names of the state_dict, are those of ``model``. Dropout between a pair draws from a
    per-rank stream (it masks this rank's features); elsewhere the masks must be, and are, the same on every
    rank. Every rank must pass the same model (checked). A model on a device is split on the host and the
    result moved to that device."""
    from ..model import Sequential

    group = world() if group is None else group
    check_same(group, "model (layers, parameter shapes and dtypes)", model_signature(model))
    device = model_device(model)
    src = host_copy(model)
    layers = src.layers
    n = len(layers)
    out = list(layers)
    k = 0
    while k < n:
        if type(layers[k]) is Linear:
            j = k + 1
            while j < n and isinstance(layers[j], _BETWEEN):
                j += 1
            if j < n and type(layers[j]) is Linear:
                col = ColumnParallelLinear.from_linear(layers[k], group)
                _, lo, hi = col.tp_split
                out[k] = col
                for m in range(k + 1, j):
                    if isinstance(layers[m], BatchNorm1d):
                        out[m] = _shard_batchnorm(layers[m], lo, hi)
                    elif isinstance(layers[m], Dropout) and group.rank > 0:
                        layers[m].rng = np.random.Generator(layers[m].rng.bit_generator.jumped(group.rank))
                out[j] = RowParallelLinear.from_linear(layers[j], group)
                k = j + 1
                continue
        k += 1
    tp = Sequential(*out)
    return tp if device == "cpu" else tp.to(device)


def gather_model(tp, full, group=None, root=0):
    """Copy the parameters and running statistics of the tensor-parallel ``tp`` into ``full`` (a model of
    the original architecture) on ``root``: shards are gathered (``Gatherv``) and concatenated along the axis
    they were split on; replicated layers come from ``root``'s copy. Collective: every rank calls it.
    Returns ``full`` on root, None elsewhere."""
    group = world() if group is None else group
    is_root = group.rank == root
    if group.size == 1:
        full.load_state_dict(tp.state_dict())
        return full
    for i, layer in enumerate(tp.layers):
        split = getattr(layer, "tp_split", None)
        names = [name for name, _ in layer.named_parameters()] + list(layer._state_names)
        for name in names:
            mine = kernels.to_host(_array(layer, name))                  # MPI sends host memory
            target = _array(full.layers[i], name) if is_root else None
            if split is None or (split[0] == "rows" and name == "bias"):
                if is_root:
                    assert target is not None
                    kernels.assign(target, mine)
                continue
            axis = 1 if (split[0] == "cols" and mine.ndim == 2) else 0
            block = np.ascontiguousarray(mine.T if axis == 1 else mine)      # split axis first: contiguous
            sizes = group.allgather_object(block.size)
            recv = None
            if is_root:
                recv = np.empty(sum(sizes), block.dtype)
                displs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
                group.comm.Gatherv(block.ravel(), [recv, (sizes, list(displs))], root=root)
                whole = recv.reshape((-1,) + block.shape[1:])
                assert target is not None
                whole = whole.T if axis == 1 else whole
                kernels.assign(target, np.ascontiguousarray(whole) if kernels.is_device_array(target) else whole)
            else:
                group.comm.Gatherv(block.ravel(), None, root=root)
    return full if is_root else None


def _array(layer, name):
    a = getattr(layer, name)
    return a.data if isinstance(a, Parameter) else a


class TensorParallel(ShardedStrategy):
    """The tensor-parallel strategy of ``tinynn.training.Trainer``: every rank trains its shard
    (``tensor_parallel(model)``: build the optimizer over ``strategy.module.parameters()``) on the whole batch;
    the column/row layers carry the communication, so the loss, the replicated layers' gradients and the
    running accuracy are the same on every rank. ``gather`` rebuilds the whole model on rank 0; every rank
    writes its own checkpoint (its shard, optimizer state and dropout streams): resumed under the same number
    of ranks, bitwise."""

    name, devices = "tensor", ("cpu", "cuda")

    def __init__(self, model: Sequential, group: Group | None = None, *, batch_size: int | None = None) -> None:
        self.group = world() if group is None else group
        if batch_size is not None:
            check_same(self.group, "batch size", int(batch_size))
        self.model = model
        self.module = tensor_parallel(model, self.group)

    rank = property(lambda self: self.group.rank)
    size = property(lambda self: self.group.size)

    def gather(self, trainer):
        return gather_model(trainer.model, self.model, self.group)
