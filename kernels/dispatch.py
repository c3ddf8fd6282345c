"""The one dispatch point of tinynn.

Every operation is defined once as readable NumPy in ``kernels/reference`` (``@define_op``) and
implemented again per backend (``@ops.<name>.register("cpu")``). A call ``ops.<name>(...)`` picks the
implementation from the *type* of its array arguments:

* arrays of a device backend (CUDA device arrays, real or simulated) -> that backend (``"cuda"``)
* plain ``numpy.ndarray``                      -> the current host backend: ``"cpu"`` (Numba) by default,
                                                  ``"numpy"`` (the reference) inside ``with use("numpy"):``
* host and device arrays mixed in one call     -> ``TypeError``

A missing implementation raises ``NotImplementedError`` naming the op and the backend: there is no silent
fallback and no implicit copy. This module is the only place in tinynn that branches on the device.

A backend is one registered unit, a :class:`Backend` record: its name, the device its arrays live on, the
array types that select it, and the memory functions tinynn needs besides the ops (allocate, copy to and
from the host, copy between arrays, fill with uniform random numbers; optionally a batch feed for the GPU
data path). Each backend package registers its record (``register_backend``). A backend whose import is
costly (CUDA: numba.cuda and a driver probe) is only *declared* at import time (``declare_backend``: a name,
a device, an availability probe, a cheap test of array types, a loader) and loaded on first need: the first
of its arrays seen here, the first request for its device (``backend_for_device``, behind ``to_device``) or
``available(name)``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import threading
from typing import Callable

import numpy as np


# --------------------------------------------------------------------------- backend records
@dataclasses.dataclass(frozen=True)
class Backend:
    """One backend: the key of ``op.impls`` plus where its arrays live and how memory is handled there.

    ``array_types`` is empty for a host backend (its arrays are ``numpy.ndarray``; several host backends
    share them and ``use()`` picks one); a device backend lists the classes of its arrays.
    """

    name: str                          # "numpy", "cpu", "cuda"
    device: str                        # "cpu" for host backends, else the device name ("cuda")
    empty: Callable                    # empty(shape, dtype) -> uninitialised array
    to_device: Callable                # to_device(host_array) -> the array on this device (host: itself)
    to_host: Callable                  # to_host(a, out=None) -> numpy.ndarray (written into out if given)
    copy: Callable                     # copy(dst, src): dst[...] = src; dst here, src here or on the host
    uniform: Callable                  # uniform(rng, out): out[...] ~ Uniform[0, 1), driven by Generator rng
    array_types: tuple = ()
    feed: Callable | None = None       # feed() -> a batch feed for tinynn._feed (pinned buffers, copy stream,
                                       # device loss log); None: batches are copied synchronously (host: no copy)

    @property
    def is_host(self) -> bool:
        return not self.array_types


@dataclasses.dataclass(frozen=True)
class DeclaredBackend:
    """A backend known by name, loaded on first need (see the module docstring)."""

    name: str
    device: str
    probe: Callable[[], bool]          # can it run here? (may import its library; asked once)
    load: Callable[[], None]           # imports the backend package, which calls register_backend
    owns_type: Callable[[type], bool]  # cheap, imports nothing: could instances of this type be its arrays?
    unavailable: str                   # why it cannot run, for the error when probe() is False


_backends: dict[str, Backend] = {}
_declared: dict[str, DeclaredBackend] = {}
_probed: dict[str, bool] = {}
_lock = threading.RLock()


def register_backend(backend: Backend) -> None:
    """Called by each backend package with its record (replacing a declaration of the same name)."""
    with _lock:
        _backends[backend.name] = backend
        _declared.pop(backend.name, None)
        _reset_type_cache()


def declare_backend(name: str, *, device: str, probe, load, owns_type, unavailable: str) -> None:
    """Announce a backend that is imported only when first needed."""
    with _lock:
        if name not in _backends:
            _declared[name] = DeclaredBackend(name, device, probe, load, owns_type, unavailable)


def backend_devices() -> dict:
    """{name: device} of every backend, registered or declared (declared ones are not loaded by this)."""
    out = {name: b.device for name, b in _backends.items()}
    out.update({name: d.device for name, d in _declared.items() if name not in out})
    return out


def available(name: str) -> bool:
    """Whether backend ``name`` can run here; a declared backend is probed once and loaded if it can."""
    if name in _backends:
        return True
    d = _declared.get(name)
    if d is None:
        return False
    if name not in _probed:
        try:
            _probed[name] = bool(d.probe())
        except Exception:  # a broken driver or library: the other backends still work
            _probed[name] = False
    if _probed[name]:
        _load(name)
    return _probed[name]


def _load(name: str) -> Backend:
    with _lock:
        if name not in _backends:
            _declared[name].load()
            if name not in _backends:
                raise RuntimeError(f"backend {name!r}: loading it registered no Backend record")
        return _backends[name]


def get_backend(name: str) -> Backend:
    """The record of backend ``name``, loading a declared one (RuntimeError if it cannot run here)."""
    b = _backends.get(name)
    if b is not None:
        return b
    if name not in _declared:
        raise ValueError(f"unknown backend {name!r}; have {sorted(backend_devices())}")
    if not available(name):
        raise RuntimeError(f"backend {name!r}: {_declared[name].unavailable}")
    return _backends[name]


def backend_for_device(device: str) -> Backend:
    """The record of the backend whose arrays live on ``device`` ("cpu": the current host backend)."""
    if device == "cpu":
        return _backends[_host_backend()]
    for b in list(_backends.values()):
        if b.device == device:
            return b
    for d in list(_declared.values()):
        if d.device == device:
            return get_backend(d.name)
    devices = sorted({"cpu", *backend_devices().values()})
    raise ValueError(f"unknown device {device!r}; expected one of {devices}")


# --------------------------------------------------------------------------- host backend choice
_state = threading.local()
_overridden = [0]          # use() blocks open in any thread: while 0, every thread's host backend is "cpu"


def _host_backend() -> str:
    return getattr(_state, "host", "cpu") if _overridden[0] else "cpu"


def host_backends() -> tuple:
    return tuple(name for name, b in _backends.items() if b.is_host)


@contextlib.contextmanager
def use(backend: str):
    """Choose the implementation used for host (NumPy) arrays inside the block: "numpy" or "cpu"."""
    if backend not in host_backends():
        raise ValueError(f"use(): expected one of {host_backends()}, got {backend!r}")
    previous = getattr(_state, "host", "cpu")
    with _lock:
        _overridden[0] += 1
    _state.host = backend
    try:
        yield
    finally:
        _state.host = previous
        with _lock:
            _overridden[0] -= 1


# --------------------------------------------------------------------------- array type -> backend
_HOST = "<host>"   # kind of numpy.ndarray (and subclasses): the current host backend
_MISSING = object()
_ndarray = np.ndarray
_type_kind: dict = {}  # type -> None (not an array), _HOST, or a device backend's name


def _reset_type_cache() -> None:
    _type_kind.clear()
    _type_kind.update({np.ndarray: _HOST, float: None, int: None, bool: None, type(None): None})


_reset_type_cache()


def _kind_of_type(t):
    """None, _HOST or the name of the device backend owning arrays of type t (cached per type). A type that
    a declared backend claims loads that backend first: this is how a device array created outside tinynn
    (numba.cuda.to_device) brings the CUDA backend in."""
    k = _type_kind.get(t, _MISSING)
    if k is not _MISSING:
        return k
    k = None
    if issubclass(t, np.ndarray):
        k = _HOST
    else:
        for b in list(_backends.values()):
            if b.array_types and issubclass(t, b.array_types):
                k = b.name
                break
        else:
            for d in list(_declared.values()):
                if d.owns_type(t):
                    b = _load(d.name)
                    k = b.name if issubclass(t, b.array_types) else None
                    break
    _type_kind[t] = k
    return k


def is_device_array(a) -> bool:
    """True for an array of a device backend (CUDA, real or simulated: the simulator's arrays have no
    ``__cuda_array_interface__``, so the check is by class)."""
    t = type(a)
    if t is _ndarray:
        return False
    k = _kind_of_type(t)
    return k is not None and k is not _HOST


def backend_of(*arrays) -> str:
    """The backend that runs an op on these arguments (non-array arguments are ignored)."""
    host = False
    device = None
    ndarray, kinds = _ndarray, _type_kind
    for a in arrays:
        t = type(a)
        if t is ndarray:                                   # the common case first: one type check
            host = True
            continue
        k = kinds.get(t, _MISSING)
        if k is _MISSING:
            k = _kind_of_type(t)
        if k is None:
            continue
        if k is _HOST:
            host = True
        elif device is None or device == k:
            device = k
        else:
            raise TypeError(f"arrays of two device backends ({device!r} and {k!r}) mixed in one op")
    if device is None:
        return _host_backend()
    if host:
        kinds = ", ".join(type(a).__name__ for a in arrays if hasattr(a, "shape"))
        raise TypeError(
            f"host and device arrays mixed in one op (got {kinds}); move them with "
            "tinynn.to_device(x, 'cuda') or tinynn.to_host(x) first"
        )
    return device


def backend_record_of(a) -> Backend:
    """The record of the backend ``a`` lives on (the current host backend for host arrays and non-arrays)."""
    t = type(a)
    k = _HOST if t is _ndarray else _kind_of_type(t)
    return _backends[_host_backend() if k is None or k is _HOST else k]


def device_of(a) -> str:
    """The device of an array: "cuda" for a CUDA device array, "cpu" for a host array."""
    return backend_record_of(a).device


def empty(shape, dtype, like=None, backend: str | None = None):
    """Uninitialised array on the device of ``like`` (or of ``backend``)."""
    b = backend or backend_of(like)
    return get_backend(b).empty(shape, np.dtype(dtype))


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
        # backend_of, inlined for the common case of host arrays only (a step makes ~20 of these calls:
        # 1.2 -> 0.5 µs of dispatch each)
        arrays = args + tuple(kwargs.values()) if kwargs else args
        kinds = _type_kind
        for a in arrays:
            t = type(a)
            if t is not _ndarray and kinds.get(t, _MISSING) is not None:
                backend = backend_of(*arrays)            # a device array, a subclass or an unseen type
                break
        else:
            backend = _host_backend() if _overridden[0] else "cpu"
        impl = self.impls.get(backend)
        if impl is None:  # never a silent fallback
            raise NotImplementedError(f"{self.name}: no {backend!r} kernel; have {sorted(self.impls)}")
        if self.alloc is not None and kwargs.get("out") is None:
            bound = self._sig.bind(*args, **kwargs)
            bound.apply_defaults()
            if bound.arguments.get("out") is None:
                shape, dtype = self.alloc(**bound.arguments)
                kwargs = dict(bound.arguments)
                kwargs["out"] = _backends[backend].empty(shape, np.dtype(dtype))
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
