"""Random streams: one independent generator per random consumer of a run (shuffling, each layer's
initialisation, each dropout mask, augmentation), all derived from one seed."""
from __future__ import annotations

import zlib

import numpy as np


def stream(seed, *key) -> np.random.Generator:
    """An independent generator for one random consumer, e.g. ``stream(seed, "init", 2)``.

    Streams with different keys are independent (SeedSequence spawn keys), so the shuffle order never
    shares a stream with the initialisation of a layer or a dropout mask."""
    spawn_key = tuple(k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in key)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=spawn_key))


__all__ = ["stream"]
