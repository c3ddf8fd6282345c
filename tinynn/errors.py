"""Exceptions of tinynn.

What tinynn raises on bad input, bad files and misuse (``docs/refusals.md`` lists every refusal):

    ValueError          a value is wrong: shapes, ranges, names, non-finite or overflowing input, sample weights
                        that cannot train, a damaged or edited file (``FileFormatError``), training that
                        diverged (``DivergenceError``)
    TypeError           a type is wrong: not an array, not floating-point, a dtype the kernels do not support
                        (only float32 and float64 are), a sparse matrix
    IndexError          a class label or an embedding index out of its range
    FileNotFoundError   a file to load does not exist (MNIST not found)
    WriteError          a file could not be written (an OSError: no space, file too large, a read-only or vanished
                        folder); the file it would have replaced is intact and no partial file is left
    RuntimeError        a call in the wrong state: backward before forward, a device that is not there
                        (``device="cuda"`` without CUDA)

Anything else escaping from tinynn (KeyError, AttributeError, ZeroDivisionError, NotImplementedError from a
kernel, ...) is a bug: the fuzz tests (tests/test_fuzz_estimators.py, tests/test_file_mutation.py) assert it.
"""


class DivergenceError(FloatingPointError, ValueError):
    """The loss or a gradient became NaN or infinite during training.

    A FloatingPointError that is also a ValueError, so code written for scikit-learn (which catches
    ValueError) keeps working. The model's parameters are left at their last finite values. ``value`` is the
    loss that diverged (nan when the weights did).
    """

    def __init__(self, message, value=float("nan")):
        super().__init__(message)
        self.value = value


MAX_PROBLEM = 500                        # characters of one problem in a message: values are cut, lists counted


def short(text, limit=200) -> str:
    """``text`` cut to about ``limit`` characters, saying how many were left out (messages stay bounded: a
    100-million-character string in a file is not repeated in its refusal)."""
    text = str(text)
    if len(text) <= limit:
        return text
    keep = max(limit - 32, 8)
    return f"{text[:keep]}... ({len(text) - keep} more characters)"


class FileFormatError(ValueError):
    """A file tinynn cannot load: not an .npz archive, truncated or corrupt, pickled objects, another format
    version or kind, or contents (metadata entries, arrays) that do not match the format.

    A ValueError whose message starts with the file's path and says what is wrong; ``path`` and ``problem``
    hold the two parts. The problem is at most ``MAX_PROBLEM`` characters (values quoted from a file are cut,
    lists of names counted)."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = short(problem, MAX_PROBLEM)
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self):                                  # picklable across processes (tinynn.parallel)
        return (type(self), (self.path, self.problem))


class WriteError(OSError):
    """A file tinynn writes (through ``tinynn._write.atomic_open``) could not be written. ``path`` is the file,
    ``reason`` the operating system's (``errno`` is kept); the file ``path`` held before, if any, is intact and no
    partial file is left."""

    def __init__(self, path, error: OSError):
        self.path = str(path)
        self.reason = error.strerror or str(error) or type(error).__name__
        super().__init__(error.errno, f"cannot write {self.path}: {self.reason}")

    def __str__(self):
        return f"cannot write {self.path}: {self.reason} (the previous {self.path}, if any, is intact)"


class DivergenceGuard:
    """Decides when training has diverged: a NaN or infinite loss, or a loss 10⁶ times the first one seen
    (no sane run climbs a million-fold; a learning rate far too large can keep the loss finite but huge)."""

    def __init__(self, factor=1e6):
        self.factor = factor
        self.ceiling = None

    def diverged(self, value) -> bool:
        import math

        if self.ceiling is None and math.isfinite(value):
            self.ceiling = self.factor * max(1.0, abs(value))
        return not math.isfinite(value) or value > self.ceiling


DOCUMENTED = (ValueError, TypeError, IndexError, FileNotFoundError, RuntimeError)
"""The exception types tinynn's public entry points raise on bad input, bad files and misuse; of
RuntimeError's subclasses, NotImplementedError and RecursionError are not among them."""
UNDOCUMENTED = (NotImplementedError, RecursionError)


def documented(exc: BaseException) -> bool:
    """True when ``exc`` is of the documented set (what the fuzz tests accept)."""
    return isinstance(exc, DOCUMENTED) and not isinstance(exc, UNDOCUMENTED)
