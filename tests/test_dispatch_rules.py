"""The dispatcher's contract (kernels/dispatch.py docstring) with made-up backends: a device backend whose
arrays are a class of this file, a declared one loaded on first need, and ops defined here. Every test works
on a copy of the registry state, restored afterwards, so the real backends are untouched.

- registration replaces a declaration; a declaration never hides a registered backend;
- a declared backend is probed once (a probe that raises counts as unavailable) and loaded only when it can
  run; loading that registers nothing is an error naming the backend;
- errors name what was expected and what came (unknown backend, unknown device, mixed arrays, a missing
  kernel, use() of a non-host backend);
- arrays pick the backend by type: ndarray (and subclasses) the current host backend, a device class its
  backend, anything else is ignored; use() switches the host backend in its own thread only;
- an op allocates ``out`` through ``alloc`` on the backend it runs on when none is given.
"""
import threading

import numpy as np
import pytest

from tinynn.kernels import dispatch, ops
from tinynn.kernels.dispatch import Backend, KernelOp


class Dev:
    """An array of the made-up device "fake" (device name "fakedev")."""

    def __init__(self, data):
        self.data = np.asarray(data)
        self.shape, self.dtype = self.data.shape, self.data.dtype


class Dev2(Dev.__base__):
    """An array of a second made-up device (not a subclass of Dev)."""

    __init__ = Dev.__init__


class Claimed:
    """A type the declared backend claims (by its owns_type) but does not list among its array types."""


class HostSub(np.ndarray):
    """A subclass of ndarray: a host array."""


def _record(name="fake", device="fakedev", types=(Dev,), **kw):
    calls = kw.pop("calls", [])

    def empty(shape, dtype):
        calls.append(("empty", shape, dtype))
        return types[0](np.zeros(shape, dtype))

    return Backend(name=name, device=device, empty=empty, to_device=lambda x: types[0](x),
                   to_host=lambda a, out=None: a.data, copy=lambda d, s: d, uniform=lambda r, o: o,
                   array_types=types, **kw)


@pytest.fixture(autouse=True)
def isolated():
    """The registry as it was, after each test: backends, declarations, probes, the type cache, ops."""
    saved = (dict(dispatch._backends), dict(dispatch._declared), dict(dispatch._probed), dict(dispatch._type_kind),
             dict(ops._ops), list(dispatch._overridden))
    yield
    for d, s in zip((dispatch._backends, dispatch._declared, dispatch._probed, dispatch._type_kind, ops._ops), saved):
        d.clear()
        d.update(s)
    for name in list(vars(ops)):
        if name not in ("_ops",) and name not in ops._ops:
            delattr(ops, name)
    dispatch._overridden[:] = saved[5]


def _declare(name="lazy", device="lazydev", probe=lambda: True, owns=lambda t: t is Dev2, load=None, log=None):
    log = [] if log is None else log

    def default_load():
        log.append("load")
        dispatch.register_backend(_record(name, device, (Dev2,)))

    def counted_probe():
        log.append("probe")
        return probe()

    dispatch.declare_backend(name, device=device, probe=counted_probe, load=load or default_load, owns_type=owns,
                             unavailable=f"{name} needs a lazy device")
    return log


# --------------------------------------------------------------------------- registration and declaration
def test_register_replaces_a_declaration():
    log = _declare("fake", device="olddev")
    dispatch.register_backend(_record())
    assert dispatch.available("fake") and log == []           # registered: neither probed nor loaded
    with pytest.raises(ValueError, match="^unknown device 'olddev'"):   # the declaration is gone
        dispatch.backend_for_device("olddev")
    assert dispatch.backend_devices()["fake"] == "fakedev"
    assert dispatch.get_backend("fake").array_types == (Dev,)
    _declare("fake", device="elsewhere")                          # a declaration never hides a registered one
    assert dispatch.backend_devices()["fake"] == "fakedev"
    assert dispatch.backend_for_device("fakedev").name == "fake"


def test_register_forgets_what_types_were():
    """A type seen before its backend existed was no array; once the backend registers, it is its array."""
    assert dispatch.backend_of(Dev([1.0])) == "cpu"              # not an array yet: ignored
    dispatch.register_backend(_record())
    assert dispatch.backend_of(Dev([1.0])) == "fake"
    assert dispatch.is_device_array(Dev([1.0]))


def test_backend_devices_lists_declared_ones_without_loading():
    log = _declare()
    devices = dispatch.backend_devices()
    assert devices["lazy"] == "lazydev" and devices["numpy"] == "cpu" and devices["cpu"] == "cpu"
    assert list(devices)[:2] == ["numpy", "cpu"] and log == []


def test_declared_backend_is_probed_once_and_loaded():
    log = _declare()
    assert dispatch.available("lazy") is True
    assert dispatch.available("lazy") is True
    assert log == ["probe", "load"]
    assert dispatch.get_backend("lazy").device == "lazydev"


@pytest.mark.parametrize("probe", [lambda: False, lambda: 0, lambda: 1 / 0])
def test_unavailable_declared_backend(probe):
    log = _declare(probe=probe)
    assert dispatch.available("lazy") is False
    assert dispatch.available("lazy") is False
    assert log == ["probe"]                                      # asked once, never loaded
    with pytest.raises(RuntimeError, match="^backend 'lazy': lazy needs a lazy device$"):
        dispatch.get_backend("lazy")
    with pytest.raises(RuntimeError, match="^backend 'lazy': lazy needs a lazy device$"):
        dispatch.backend_for_device("lazydev")


def test_probe_answer_is_a_bool():
    _declare(probe=lambda: "yes")
    assert dispatch.available("lazy") is True


def test_unknown_names():
    assert dispatch.available("nope") is False
    have = sorted(dispatch.backend_devices())
    with pytest.raises(ValueError) as e:
        dispatch.get_backend("nope")
    assert str(e.value) == f"unknown backend 'nope'; have {have}"


def test_loading_that_registers_nothing_is_an_error():
    _declare(load=lambda: None)
    with pytest.raises(RuntimeError) as e:
        dispatch.available("lazy")
    assert str(e.value) == "backend 'lazy': loading it registered no Backend record"


def test_backend_for_device():
    dispatch.register_backend(_record())
    log = _declare()
    assert dispatch.backend_for_device("cpu").name == "cpu"
    with dispatch.use("numpy"):
        assert dispatch.backend_for_device("cpu").name == "numpy"
    assert dispatch.backend_for_device("fakedev").name == "fake"
    assert log == []
    assert dispatch.backend_for_device("lazydev").name == "lazy"      # a declared one: loaded
    assert log == ["probe", "load"]
    with pytest.raises(ValueError) as e:
        dispatch.backend_for_device("tpu")
    assert str(e.value) == f"unknown device 'tpu'; expected one of {sorted({'cpu', 'fakedev', 'lazydev', 'cuda'})}"


def test_a_type_claimed_by_a_declared_backend_loads_it():
    log = _declare()
    assert dispatch.backend_of(Dev2([1.0])) == "lazy"
    assert log == ["load"]                                         # an array of it exists: no probe needed
    assert dispatch.device_of(Dev2([1.0])) == "lazydev"


def test_a_claimed_type_that_is_not_an_array_is_ignored():
    """owns_type is a cheap guess; the loaded backend's array types decide."""
    log = _declare(owns=lambda t: t is Claimed)
    assert dispatch.backend_of(Claimed(), np.ones(1)) == "cpu"
    assert log == ["load"] and not dispatch.is_device_array(Claimed())


# --------------------------------------------------------------------------- arrays -> backend
def test_host_arrays_and_non_arrays():
    sub = np.ones(2).view(HostSub)
    assert dispatch.backend_of(sub) == "cpu" and not dispatch.is_device_array(sub)
    assert dispatch.backend_of(1, 2.0, True, None) == "cpu"
    with dispatch.use("numpy"):
        assert dispatch.backend_of(sub) == "numpy"
        assert dispatch.backend_of() == "numpy"
        assert dispatch.backend_record_of(sub).name == "numpy"
        assert dispatch.backend_record_of(np.ones(1)).name == "numpy"
        assert dispatch.backend_record_of(3.0).name == "numpy"
    assert dispatch.backend_record_of(sub).name == "cpu"
    assert dispatch.backend_record_of("text").name == "cpu"
    assert dispatch.device_of(np.ones(1)) == "cpu" and dispatch.device_of(sub) == "cpu"


def test_device_arrays():
    dispatch.register_backend(_record())
    a = Dev([1.0, 2.0])
    assert dispatch.backend_of(a) == "fake" and dispatch.backend_of(a, a, 3, None) == "fake"
    with dispatch.use("numpy"):
        assert dispatch.backend_of(a) == "fake"
    assert dispatch.is_device_array(a) and not dispatch.is_device_array(np.ones(1))
    assert not dispatch.is_device_array(1.0) and not dispatch.is_device_array([1.0])
    assert dispatch.backend_record_of(a).name == "fake" and dispatch.device_of(a) == "fakedev"


def test_mixed_arrays_are_refused_by_name():
    dispatch.register_backend(_record())
    dispatch.register_backend(_record("other", "otherdev", (Dev2,)))
    with pytest.raises(TypeError) as e:
        dispatch.backend_of(np.ones(2), 3.0, Dev([1.0]))
    assert str(e.value) == ("host and device arrays mixed in one op (got ndarray, Dev); move them with "
                            "tinynn.to_device(x, 'cuda') or tinynn.to_host(x) first")
    with pytest.raises(TypeError) as e:
        dispatch.backend_of(Dev([1.0]), np.ones(2))
    assert "(got Dev, ndarray)" in str(e.value)
    with pytest.raises(TypeError) as e:
        dispatch.backend_of(Dev([1.0]), Dev2([1.0]))
    assert str(e.value) == "arrays of two device backends ('fake' and 'other') mixed in one op"


def test_empty_allocates_on_the_backend_of_like():
    calls = []
    dispatch.register_backend(_record(calls=calls))
    e = dispatch.empty((2, 3), "float32", like=Dev([1.0]))
    assert isinstance(e, Dev) and calls == [("empty", (2, 3), np.dtype(np.float32))]
    e = dispatch.empty((4,), np.float64, backend="fake")
    assert calls[-1] == ("empty", (4,), np.dtype(np.float64))
    h = dispatch.empty((2,), np.int64, like=np.ones(1))
    assert isinstance(h, np.ndarray) and h.shape == (2,) and h.dtype == np.int64


# --------------------------------------------------------------------------- use()
def test_use_nests_and_restores():
    assert dispatch.backend_of(np.ones(1)) == "cpu"
    with dispatch.use("numpy"):
        with dispatch.use("cpu"):
            assert dispatch.backend_of(np.ones(1)) == "cpu"
        assert dispatch.backend_of(np.ones(1)) == "numpy"
    assert dispatch.backend_of(np.ones(1)) == "cpu" and dispatch._overridden == [0]


def test_use_restores_after_an_error():
    with pytest.raises(KeyError):
        with dispatch.use("numpy"):
            raise KeyError("x")
    assert dispatch.backend_of(np.ones(1)) == "cpu" and dispatch._overridden == [0]


def test_use_refuses_a_device_backend():
    dispatch.register_backend(_record())
    with pytest.raises(ValueError) as e:
        with dispatch.use("fake"):
            pass
    assert str(e.value) == "use(): expected one of ('numpy', 'cpu'), got 'fake'"
    assert dispatch.host_backends() == ("numpy", "cpu") and dispatch._overridden == [0]


def test_use_is_per_thread():
    """Another thread keeps the default host backend while this one is inside use("numpy")."""
    seen = {}

    def other():
        seen["backend"] = dispatch.backend_of(np.ones(1))
        seen["op"] = ops.sum_rows(np.ones((2, 2))).tolist()

    with dispatch.use("numpy"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert dispatch.backend_of(np.ones(1)) == "numpy"
    assert seen == {"backend": "cpu", "op": [2.0, 2.0]}


# --------------------------------------------------------------------------- ops
def _define(**kw):
    def twice(X, k=2.0, out=None):
        """out = k X."""
        out[...] = k * X
        return out

    return dispatch.define_op(twice, **kw) if kw else dispatch.define_op(twice)


def test_define_op_registers_the_reference():
    f = _define()
    op = ops.twice
    assert op is ops["twice"] and op.reference is f and op.name == "twice" and op.__doc__ == "out = k X."
    assert op.impls == {"numpy": f} and "twice" in ops.names() and op in list(ops)
    assert ops.names() == sorted(ops.names())
    assert repr(op) == "<op twice backends=['numpy']>"
    with pytest.raises(NotImplementedError) as e:
        op(np.ones(2), out=np.empty(2))
    assert str(e.value) == "twice: no 'cpu' kernel; have ['numpy']"
    with dispatch.use("numpy"):
        assert op(np.ones(2), 3.0, np.empty(2)).tolist() == [3.0, 3.0]


def test_register_adds_an_implementation():
    _define()
    calls = []

    @ops.twice.register("cpu")
    def cpu_twice(X, k=2.0, out=None):
        calls.append(k)
        out[...] = k * X
        return out

    assert ops.twice.impls["cpu"] is cpu_twice
    assert repr(ops.twice) == "<op twice backends=['cpu', 'numpy']>"
    assert ops.twice(np.ones(2), out=np.empty(2)).tolist() == [2.0, 2.0] and calls == [2.0]


def test_alloc_makes_out_on_the_backend_that_runs():
    calls = []
    dispatch.register_backend(_record(calls=calls))
    _define(alloc=dispatch.same_as("X"))
    got = {}

    @ops.twice.register("fake")
    def fake_twice(X, k=2.0, out=None):
        got.update(X=X, k=k, out=out)
        return out

    X = Dev(np.ones((2, 3), np.float32))
    out = ops.twice(X)
    assert calls == [("empty", (2, 3), np.dtype(np.float32))] and got["out"] is out and got["k"] == 2.0
    ops.twice(X, 5.0, out=None)                                   # out=None given: allocated too
    assert len(calls) == 2 and got["k"] == 5.0
    mine = Dev(np.zeros((2, 3)))
    assert ops.twice(X, 1.0, mine) is mine and ops.twice(X, out=mine) is mine and len(calls) == 2
    ops.twice(X=X, k=4.0)                                          # every argument by keyword: the device array
    assert got["k"] == 4.0 and got["X"] is X and len(calls) == 3  # in kwargs selects the backend


def test_alloc_on_the_host():
    _define(alloc=dispatch.same_as("X"))
    with dispatch.use("numpy"):
        out = ops.twice(np.ones((2, 2), np.float32), k=3.0)
        assert out.dtype == np.float32 and out.tolist() == [[3.0, 3.0], [3.0, 3.0]]
        out = ops.twice(X=np.ones(3))
        assert out.tolist() == [2.0, 2.0, 2.0]


def test_same_as():
    a = np.ones((4, 5), np.int16)
    assert dispatch.same_as("B")(A=None, B=a) == ((4, 5), np.dtype(np.int16))


def test_kernel_op_without_alloc_passes_arguments_through():
    op = KernelOp(lambda X, out=None: (X, out))
    op.name = "passthrough"
    with dispatch.use("numpy"):
        X = np.ones(1)
        assert op(X)[1] is None and op(X, out=X)[1] is X


def test_backend_is_host():
    assert _record(types=()).is_host and not _record().is_host


def test_define_op_as_a_decorator_factory():
    @dispatch.define_op(alloc=lambda X, **_: ((2,), X.dtype))
    def firsttwo(X, out=None):
        out[...] = X[:2]
        return out

    assert ops.firsttwo.reference is firsttwo and ops.firsttwo.alloc is not None
    with dispatch.use("numpy"):
        assert ops.firsttwo(np.arange(5.0)).tolist() == [0.0, 1.0]


def test_a_fresh_registry_is_empty_and_lists_what_is_added():
    reg = dispatch._Registry()
    assert list(reg) == [] and reg.names() == []
    op = KernelOp(lambda X: X)
    reg.add(op)
    assert reg["<lambda>"] is op and getattr(reg, "<lambda>") is op and list(reg) == [op]


def test_a_host_subclass_with_a_device_array_is_mixed():
    dispatch.register_backend(_record())
    with pytest.raises(TypeError, match="^host and device arrays mixed in one op"):
        dispatch.backend_of(np.ones(2).view(HostSub), Dev([1.0]))


def test_types_are_looked_up_once():
    """The kind of a type is cached: a declared backend's owns_type is asked once per type."""
    asked = []

    class Other:
        pass

    _declare(owns=lambda t: asked.append(t) or False)
    for _ in range(3):
        assert dispatch.backend_of(Other(), np.ones(1)) == "cpu"
        assert not dispatch.is_device_array(Other())
    assert asked == [Other]
