"""Pure NumPy definitions of every op: the specification, the "numpy" backend and the test oracle.

NaN propagates through every op, as in IEEE arithmetic, NumPy and PyTorch: an output that depends on a
NaN input is NaN. Piecewise functions computed with comparisons (ReLU and its derivative, the dropout
mask, maxima) would turn NaN into a number, because every comparison with NaN is False; they are written
so that NaN goes through instead, and argmax returns the index of the first NaN (numpy.argmax). The
compiled twins follow, and the parity tests put a NaN into every input of every op to check it.
"""
from ..dispatch import register_backend
# importing a module registers its ops
from . import augment, elementwise, loss, matmul, normalization, optim, reduce, sparse  # noqa: F401
from .memory import record

register_backend(record("numpy"))
