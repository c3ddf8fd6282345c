"""The one dispatch point of tinynn.

Every operation is defined once as readable NumPy in ``kernels/reference`` (``@define_op``) and
implemented again per backend (``@ops.<name>.register("cpu")``). A call ``ops.<name>(...)`` picks the
implementation from the *type* of its array arguments:

* any CUDA device array (real or simulated)   -> ``"cuda"``
* plain ``numpy.ndarray``                      -> the current host backend: ``"cpu"`` (Numba) by default,
                                                  ``"numpy"`` (the reference) inside ``with use("numpy"):``
* host and device arrays mixed in one call     -> ``TypeError``

A missing implementation raises ``NotImplementedError`` naming the op and the backend: there is no silent
fallback and no implicit copy. This module is the only place in tinynn that branches on the device.
"""
from __future__ import annotations

import contextlib
import inspect
import threading

import numpy as np

HOST_BACKENDS = ("numpy", "cpu")

_state = threading.local()


def _host_backend() -> str:
    return getattr(_state, "host", "cpu")


@contextlib.contextmanager
def use(backend: str):
    """Choose the implementation used for host (NumPy) arrays inside the block: "numpy" or "cpu"."""
    if backend not in HOST_BACKENDS:
        raise ValueError(f"use(): expected one of {HOST_BACKENDS}, got {backend!r}")
    previous = _host_backend()
    _state.host = backend
    try:
        yield
    finally:
        _state.host = previous


# --------------------------------------------------------------------------- device-array detection
_cuda_types: tuple = ()


def register_device_array_types(*types) -> None:
    """Called by the CUDA backend with its device-array classes (real ``DeviceNDArray`` and the
    simulator's ``FakeCUDAArray``), so detection needs no import of numba.cuda here."""
    global _cuda_types
    _cuda_types = tuple(set(_cuda_types) | set(types))


def is_device_array(a) -> bool:
    """True for a CUDA device array, real or simulated (the simulator's arrays have no
    ``__cuda_array_interface__``, so the check is by class)."""
    return bool(_cuda_types) and isinstance(a, _cuda_types)


def backend_of(*arrays) -> str:
    """The backend that runs an op on these arguments (non-array arguments are ignored)."""
    host = device = False
    ndarray, cuda_types = np.ndarray, _cuda_types
    for a in arrays:
        t = type(a)
        if t is ndarray:                                   # the common case first: one type check
            host = True
        elif t is float or t is int or t is bool or a is None:
            continue
        elif isinstance(a, ndarray):
            host = True
        elif cuda_types and isinstance(a, cuda_types):
            device = True
    if host and device:
        kinds = ", ".join(type(a).__name__ for a in arrays if hasattr(a, "shape"))
        raise TypeError(
            f"host and device arrays mixed in one op (got {kinds}); move them with "
            "tinynn.to_device(x, 'cuda') or tinynn.to_host(x) first"
        )
    return "cuda" if device else _host_backend()


def device_of(a) -> str:
    """"cuda" for a device array, "cpu" for a host array."""
    return "cuda" if is_device_array(a) else "cpu"


# --------------------------------------------------------------------------- allocation per backend
_allocators = {"numpy": np.empty, "cpu": np.empty}


def register_allocator(backend: str, fn) -> None:
    _allocators[backend] = fn


def empty(shape, dtype, like=None, backend: str | None = None):
    """Uninitialised array on the device of ``like`` (or of ``backend``)."""
    b = backend or backend_of(like)
    return _allocators[b](shape, dtype=np.dtype(dtype))


# --------------------------------------------------------------------------- the op registry
class KernelOp:
    """One operation: its reference definition plus one implementation per backend."""

    def __init__(self, reference, alloc=None):
        self.name = reference.__name__
        self.reference = reference
        self.__doc__ = reference.__doc__
        self.impls = {"numpy": reference}
        self.alloc = alloc  # (bound args) -> (shape, dtype) of `out` when the caller gives none
        self._sig = inspect.signature(reference)

    def register(self, backend: str):
        def decorator(fn):
            self.impls[backend] = fn
            return fn

        return decorator

    def __call__(self, *args, **kwargs):
        backend = backend_of(*args, *kwargs.values()) if kwargs else backend_of(*args)
        impl = self.impls.get(backend)
        if impl is None:  # never a silent fallback
            raise NotImplementedError(f"{self.name}: no {backend!r} kernel; have {sorted(self.impls)}")
        if self.alloc is not None and kwargs.get("out") is None:
            bound = self._sig.bind(*args, **kwargs)
            bound.apply_defaults()
            if bound.arguments.get("out") is None:
                shape, dtype = self.alloc(**bound.arguments)
                kwargs = dict(bound.arguments)
                kwargs["out"] = _allocators[backend](shape, dtype=dtype)
                return impl(**kwargs)
        return impl(*args, **kwargs)

    def __repr__(self):
        return f"<op {self.name} backends={sorted(self.impls)}>"


class _Registry:
    """``ops.<name>`` namespace; iterable over the ops for the parity and completeness tests."""

    def __init__(self):
        self._ops: dict[str, KernelOp] = {}

    def add(self, op: KernelOp):
        self._ops[op.name] = op
        setattr(self, op.name, op)

    def __iter__(self):
        return iter(self._ops.values())

    def __getitem__(self, name):
        return self._ops[name]

    def names(self):
        return sorted(self._ops)


ops = _Registry()


def define_op(fn=None, *, alloc=None):
    """Decorator for a reference function: makes it ``ops.<name>`` with the NumPy backend."""

    def wrap(f):
        op = KernelOp(f, alloc=alloc)
        ops.add(op)
        return f

    return wrap(fn) if fn is not None else wrap


def same_as(arg: str):
    """alloc helper: `out` has the shape and dtype of argument ``arg``."""
    return lambda **a: (a[arg].shape, a[arg].dtype)
