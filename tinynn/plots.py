"""Training curves as a picture (matplotlib, loaded only when a plot is drawn; the ``scripts`` extra)."""
from __future__ import annotations

import numpy as np

from ._write import save_figure


def plot_curves(history, path, title="tinynn MNIST training"):
    """curves.png: loss (log scale) and accuracy per epoch from ``history`` (lists under "train_loss",
    "val_loss", "train_accuracy", "val_accuracy"; missing or None entries are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def have(key):
        return history.get(key) and history[key][0] is not None

    ep = np.arange(1, len(history["train_loss"]) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, history["train_loss"], "o-", label="train")
    if have("val_loss"):
        a.plot(ep, history["val_loss"], "o-", label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("cross-entropy"), a.set_yscale("log"), a.legend(), a.grid(alpha=0.3)
    if have("train_accuracy"):
        b.plot(ep, 100 * np.array(history["train_accuracy"]), "o-", color="C0", label="train (running, dropout on)")
    if have("val_accuracy"):
        b.plot(ep, 100 * np.array(history["val_accuracy"]), "o-", color="C1", label="validation")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy (%)"), b.legend(), b.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)
