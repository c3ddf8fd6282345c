"""Pure NumPy definitions of every op: the specification, the "numpy" backend and the test oracle."""
from . import elementwise, matmul, normalization, optim, reduce  # noqa: F401  (registers the ops)
