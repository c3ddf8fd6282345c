"""The training loop behind scripts/train_mnist.py: model building, epochs, evaluation, checkpoints.

A checkpoint holds everything an exact resume needs: model parameters and running statistics, optimizer
state, schedule state, the states of the shuffling and dropout generators, the epoch and the history.
Resuming from it gives a model bitwise identical to the uninterrupted run (CPU).
"""
from __future__ import annotations

import numpy as np

from tinynn import kernels
from tinynn.kernels import ops

from . import io, optim, schedules
from .data import gen_batches
from .errors import DivergenceError, DivergenceGuard
from .layers import ACTIVATIONS, BatchNorm1d, Dropout, Linear
from .losses import SoftmaxCrossEntropy
from .model import Sequential


def build_mlp(sizes, activation="relu", dropout=0.0, batch_norm=False, init="kaiming_uniform", dtype=np.float32,
              seed=0, input_dropout=0.0):
    """Linear → [BatchNorm1d] → activation → [Dropout] per hidden layer, then a Linear output layer.

    ``sizes`` = [d_in, h_1, …, h_k, d_out]. Dropout generators are seeded from ``seed`` as well.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
    seeds = np.random.SeedSequence(seed).spawn(2 * len(sizes))
    layers = []
    if input_dropout:
        layers.append(Dropout(input_dropout, rng=np.random.default_rng(seeds[-1])))
    for i in range(len(sizes) - 1):
        last = i == len(sizes) - 2
        layers.append(Linear(sizes[i], sizes[i + 1], dtype=dtype, init=init, rng=np.random.default_rng(seeds[2 * i])))
        if last:
            break
        if batch_norm:
            layers.append(BatchNorm1d(sizes[i + 1], dtype=dtype))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(Dropout(dropout, rng=np.random.default_rng(seeds[2 * i + 1])))
    return Sequential(*layers)


def make_optimizer(name, params, lr, weight_decay=0.0):
    if name not in optim.OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(optim.OPTIMIZERS)}")
    cls = optim.OPTIMIZERS[name]
    kw = {"weight_decay": weight_decay} if name != "momentum" else {}
    if name == "sgd":
        kw["momentum"] = 0.9
    return cls(params, lr=lr, **kw)


def make_schedule(name, opt, total_steps, warmup_steps):
    """'none', 'cosine', 'step' (×0.1 at 50% and 75%: as two StepLRs is not possible, use gamma per third),
    'exponential', 'warmup_cosine': per-step schedules over ``total_steps``."""
    if name in (None, "none", "constant"):
        return None
    if name == "cosine":
        return schedules.CosineAnnealingLR(opt, T_max=total_steps)
    if name == "step":
        return schedules.StepLR(opt, step_size=max(1, total_steps // 3), gamma=0.1)
    if name == "exponential":
        return schedules.ExponentialLR(opt, gamma=0.01 ** (1.0 / max(1, total_steps)))
    if name == "warmup_cosine":
        after = schedules.CosineAnnealingLR(opt, T_max=max(1, total_steps - warmup_steps))
        return schedules.LinearWarmup(opt, warmup_steps=max(1, warmup_steps), after=after)
    raise ValueError(f"unknown schedule {name!r}; expected none, cosine, step, exponential or warmup_cosine")


def evaluate(model, X, y, batch_size=2000):
    """(mean cross-entropy, accuracy) in eval mode, in batches."""
    was = model.training
    model.eval()
    loss = SoftmaxCrossEntropy()
    total, correct = 0.0, 0
    for s in range(0, len(X), batch_size):
        xb, yb = X[s:s + batch_size], y[s:s + batch_size]
        Z = model.forward(kernels.to_device(xb, model.device) if model.device != "cpu" else xb)
        total += loss(Z, kernels.to_device(yb, model.device) if model.device != "cpu" else yb) * len(xb)
        correct += int(np.sum(np.argmax(kernels.to_host(Z), axis=1) == yb))
    model.train(was)
    return total / len(X), correct / len(X)


class Trainer:
    """Mini-batch training of a Sequential classifier with softmax cross-entropy."""

    def __init__(self, model, optimizer, schedule=None, batch_size=128, seed=0, device="cpu"):
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.batch_size, self.device = int(batch_size), device
        self.loss = SoftmaxCrossEntropy()
        self.shuffle_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
        self.epoch = 0
        self.guard = DivergenceGuard()
        self.history = {"train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": [],
                        "epoch_seconds": []}

    def _dropouts(self):
        return [l for l in self.model.layers if isinstance(l, Dropout)]

    def train_epoch(self, X, y, progress=None):
        """One pass over (X, y) in shuffled mini-batches; returns (mean training loss, running training
        accuracy). The accuracy is counted from the training forward passes (dropout active), on the CPU only
        (None on a GPU, where it would cost a device-to-host copy per step)."""
        n, bs = len(X), self.batch_size
        xbuf = np.empty((bs, X.shape[1]), X.dtype)
        ybuf = np.empty(bs, y.dtype)
        pred = np.empty(bs, np.int64)
        total, seen, correct = 0.0, 0, 0
        self.model.train()
        for step, idx in enumerate(gen_batches(n, bs, self.shuffle_rng)):
            if len(idx) == bs:                                 # gather into preallocated buffers
                xb, yb = np.take(X, idx, axis=0, out=xbuf, mode="clip"), np.take(y, idx, out=ybuf, mode="clip")  # clip: unbuffered
            else:
                xb, yb = X[idx], y[idx]
            if self.device != "cpu":
                xb, yb = kernels.to_device(xb, self.device), kernels.to_device(yb, self.device)
            self.optimizer.zero_grad()
            value = self.loss(self.model.forward(xb), yb)
            if self.guard.diverged(value):
                raise DivergenceError(
                    f"the training loss became {value} at epoch {self.epoch + 1}, step {step + 1}; the parameters "
                    "of the last completed epoch are in the checkpoint. Try a lower learning rate.")
            if self.device == "cpu":                           # running accuracy from this forward pass
                correct += int(np.count_nonzero(ops.argmax_rows(self.loss.P, out=pred[:len(idx)]) == yb))
            self.model.backward(self.loss.backward())
            self.optimizer.step()
            if self.schedule is not None:
                self.schedule.step()
            total += value * len(idx)
            seen += len(idx)
            if progress is not None:
                progress.update(len(idx))
                if step % 20 == 0:
                    progress.set_postfix(loss=f"{value:.4f}", refresh=False)
        return total / seen, (correct / seen if self.device == "cpu" else None)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_arrays(self):
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        osd = self.optimizer.state_dict()
        arrays.update({f"optim/{k}": v for k, v in osd.items() if isinstance(v, np.ndarray)})
        meta = {
            "epoch": self.epoch,
            "history": self.history,
            "optim_scalars": {k: v for k, v in osd.items() if not isinstance(v, np.ndarray)},
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "shuffle_rng": io.rng_state(self.shuffle_rng),
            "dropout_rngs": [io.rng_state(d.rng) for d in self._dropouts()],
        }
        return arrays, meta

    def save_checkpoint(self, path, config):
        arrays, meta = self.checkpoint_arrays()
        meta["config"] = config
        io.save_npz(path, arrays, meta, kind="checkpoint")

    def load_checkpoint(self, arrays, meta):
        self.model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        osd = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
        osd.update(meta["optim_scalars"])
        self.optimizer.load_state_dict(osd)
        if self.schedule is not None and meta["schedule"] is not None:
            self.schedule.load_state_dict(meta["schedule"])
        io.set_rng_state(self.shuffle_rng, meta["shuffle_rng"])
        for d, st in zip(self._dropouts(), meta["dropout_rngs"]):
            io.set_rng_state(d.rng, st)
        self.epoch = int(meta["epoch"])
        self.history = meta["history"]


def save_model(path, model, spec):
    """model.npz: the parameters and running statistics as arrays, the architecture ``spec`` as JSON."""
    io.save_npz(path, model.state_dict(), {"spec": spec}, kind="sequential")


def load_model(path):
    """A working Sequential back from ``save_model``'s file (read with allow_pickle=False)."""
    arrays, meta = io.load_npz(path, kind="sequential")
    spec = meta["spec"]
    model = build_mlp(spec["sizes"], spec["activation"], spec["dropout"], spec["batch_norm"],
                      dtype=np.dtype(spec["dtype"]), input_dropout=spec.get("input_dropout", 0.0))
    return model.load_state_dict(arrays)

