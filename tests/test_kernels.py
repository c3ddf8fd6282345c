"""Every op x every registered backend == the NumPy reference, in values and in NaN propagation; registry
completeness; each backend's memory functions; dispatch rules; the lazy CUDA import.

The backends come from the dispatcher's registry, so a new backend is tested without editing this file.
Device backends (CUDA: a real GPU, or ``NUMBA_ENABLE_CUDASIM=1 pytest -m gpu``) carry the ``gpu`` marker,
run tiny shapes (the simulator costs ~150 µs per thread), float32 only on the simulator, and
THREADS_PER_BLOCK patched to 8 so that multi-block grid-stride paths and ragged edges run.
"""
import contextlib
import copy
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynn import kernels
from tinynn.kernels import config, dispatch, ops
from tinynn.kernels.cpu.matmul import matmul_numba
from tests.kernel_cases import CASES

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}


class Target:
    """A backend under test and how to run an op on it: host backends take NumPy arrays through
    ``kernels.use``; device backends get copies moved to their device and back."""

    def __init__(self, name, device):
        self.name, self.device = name, device
        self.host = device == "cpu"
        self.dtypes = [np.float32] if SIM and not self.host else [np.float32, np.float64]
        self.shapes = [(1, 1), (7, 3), (33, 10), (2, 33)] if self.host else [(1, 1), (5, 3), (9, 13)]
        self.max_side = 40 if self.host else 9           # drawn shapes
        self.max_examples = None if self.host else 5     # drawn examples (None: the Hypothesis profile's)
        self.marks = () if self.host else (pytest.mark.gpu,)

    def to(self, a):
        return a if self.host else kernels.to_device(a, self.device)

    def back(self, a):
        return kernels.to_host(a)

    def context(self):
        return kernels.use(self.name) if self.host else contextlib.nullcontext()

    def __repr__(self):
        return self.name


TARGETS = [Target(name, device) for name, device in dispatch.backend_devices().items()]
REFERENCE = next(t for t in TARGETS if t.name == "numpy")
UNDER_TEST = [t for t in TARGETS if t is not REFERENCE]   # the reference is the oracle


def each(targets):
    return [pytest.param(t, marks=t.marks, id=t.name) for t in targets]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(config, "THREADS_PER_BLOCK", 8)


# --------------------------------------------------------------------------- running a case
def run_case(name, target, args, kwargs):
    """Run ops[name] on ``target`` with copies of the arguments; return every array argument afterwards
    and the return value (a float return as a 0-d array), on the host."""
    args = [target.to(copy.deepcopy(a)) if isinstance(a, np.ndarray) else a for a in args]
    kwargs = {k: target.to(copy.deepcopy(v)) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with target.context(), np.errstate(all="ignore"):
        ret = ops[name](*args, **kwargs)
    arrays = [target.back(a) for a in args if hasattr(a, "shape")]
    arrays += [target.back(v) for v in kwargs.values() if hasattr(v, "shape")]
    if isinstance(ret, float):
        arrays.append(np.array(ret))
    return arrays


def assert_same(name, target, got, ref, dtype, what=""):
    """Equal to the reference within the dtype's tolerance, NaN exactly where the reference has NaN."""
    assert len(got) == len(ref)
    for i, (g, r) in enumerate(zip(got, ref)):
        msg = f"{name} on {target.name}{what}: output {i}"
        if r.ndim == 0 and r.dtype.kind == "f":                 # a returned float: summed, looser
            assert np.isnan(g) == np.isnan(r), msg
            np.testing.assert_allclose(g, r, rtol=TOL[dtype]["rtol"] * 10, equal_nan=True, err_msg=msg)
            continue
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r), err_msg=msg + ": NaN in other places")
        np.testing.assert_allclose(g, r, **TOL[dtype], equal_nan=True, err_msg=msg)


def assert_parity(name, target, dtype, n, d, seed):
    for args, kwargs in CASES[name](np.random.default_rng(seed), dtype, n, d):
        assert_same(name, target, run_case(name, target, args, kwargs), run_case(name, REFERENCE, args, kwargs),
                    dtype)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("target,dtype,n,d", [
    pytest.param(t, dt, n, d, marks=t.marks, id=f"{t.name}-{np.dtype(dt).name}-{n}x{d}")
    for t in UNDER_TEST for dt in t.dtypes for n, d in t.shapes])
def test_matches_reference(name, target, dtype, n, d):
    assert_parity(name, target, dtype, n, d, seed=n * 100 + d)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("target", each(UNDER_TEST))
def test_matches_reference_drawn(name, target):
    kw = {} if target.max_examples is None else dict(max_examples=target.max_examples)

    @settings(**kw)
    @given(n=st.integers(1, target.max_side), d=st.integers(1, target.max_side), seed=st.integers(0, 2**16))
    def check(n, d, seed):
        assert_parity(name, target, np.float32, n, d, seed)

    check()


# --------------------------------------------------------------------------- NaN propagation
PROBES = (0.0, 0.99, -7.0, 7.0)   # finite values put in place of one input element to see what it reaches


def _float_slots(args, kwargs):
    """The floating-point array arguments: ("a", position) or ("k", keyword)."""
    slots = [("a", i) for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    return slots + [("k", k) for k, v in kwargs.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]


def _with(args, kwargs, slot, index, value):
    args, kwargs = list(args), dict(kwargs)
    where, key = slot
    a = (args if where == "a" else kwargs)[key].copy()
    a.reshape(-1)[index] = value
    (args if where == "a" else kwargs)[key] = a
    return args, kwargs


def _changed(a, b):
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))


def nan_probes(name, dtype, n=5, d=4, seed=3):
    """For every case of the op, every floating-point array argument and a few elements of it (first, last,
    one in between): (args with that element NaN, kwargs, mask of the outputs that depend on the element).

    Dependence is measured on the reference: an output depends on the element if it changes when the
    element takes one of the finite PROBES values instead."""
    rng = np.random.default_rng(seed)
    for args, kwargs in CASES[name](rng, dtype, n, d):
        base = run_case(name, REFERENCE, args, kwargs)
        for slot in _float_slots(args, kwargs):
            size = (args if slot[0] == "a" else kwargs)[slot[1]].size
            for index in sorted({0, size - 1, int(rng.integers(size))}) if size else ():
                depends = [np.zeros(b.shape, bool) for b in base]
                for value in PROBES:
                    outs = run_case(name, REFERENCE, *_with(args, kwargs, slot, index, value))
                    depends = [dep | _changed(o, b) for dep, o, b in zip(depends, outs, base)]
                yield (*_with(args, kwargs, slot, index, np.nan), depends, f" with NaN at {slot}[{index}]")


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("target", each(TARGETS))
def test_nan_propagates(name, target):
    """A NaN in any input makes every output that depends on it NaN (the reference too), and each backend
    has NaN exactly where the reference has (integer outputs, argmax, equal the reference's)."""
    reached = 0
    for dtype in target.dtypes:
        for args, kwargs, depends, what in nan_probes(name, dtype):
            ref = run_case(name, REFERENCE, args, kwargs)
            got = run_case(name, target, args, kwargs)
            for i, (g, dep) in enumerate(zip(got, depends)):
                if g.dtype.kind == "f":
                    bad = dep & ~np.isnan(g)
                    assert not bad.any(), (f"{name} on {target.name}{what}: output {i} depends on the NaN "
                                           f"but is not NaN at {np.argwhere(bad).tolist()}")
                    reached += int(dep.any())
            assert_same(name, target, got, ref, dtype, what)
    assert reached or name == "fill", f"{name}: no output depends on any input element (weak case?)"


# --------------------------------------------------------------------------- the registry
def test_every_op_has_a_case():
    assert set(CASES) == set(ops.names()), f"ops without parity cases: {set(ops.names()) ^ set(CASES)}"


@pytest.mark.parametrize("target", each(TARGETS))
def test_registry_complete(target):
    dispatch.get_backend(target.name)                  # loads a declared backend
    missing = [op.name for op in ops if target.name not in op.impls]
    assert not missing, f"ops with no {target.name!r} implementation: {missing}"


def test_backends_are_registered_or_declared():
    assert kernels.BACKENDS == tuple(dispatch.backend_devices())
    assert {"numpy", "cpu", "cuda"} <= set(kernels.BACKENDS)
    assert dispatch.host_backends() == ("numpy", "cpu")


@pytest.mark.parametrize("target", each(TARGETS))
def test_backend_memory(target):
    """The record's memory functions, through kernels' public ones: allocate, copy both ways, assign in every
    direction, fill with uniform numbers, and tell the device."""
    with target.context():
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        a = kernels.to_device(x, target.device)
        assert kernels.device_of(a) == target.device and kernels.is_device_array(a) == (not target.host)
        assert kernels.to_device(a, target.device) is a
        np.testing.assert_array_equal(kernels.to_host(a), x)
        e = kernels.empty((2, 3), np.float64, like=a)
        assert e.shape == (2, 3) and e.dtype == np.float64 and kernels.device_of(e) == target.device
        e = kernels.empty((4,), np.float32, backend=target.name)
        assert kernels.device_of(e) == target.device
        b = kernels.empty((2, 3), np.float32, like=a)
        kernels.assign(b, x + 1)                                           # host -> b
        kernels.assign(b, kernels.to_device(kernels.to_host(b) * 2, target.device))   # b's device -> b
        h = np.zeros((2, 3), np.float32)
        kernels.assign(h, b)                                               # b -> host
        np.testing.assert_array_equal(h, (x + 1) * 2)
        np.testing.assert_array_equal(kernels.to_host(kernels.on_device_of(x, b)), x)
        assert kernels.device_of(kernels.on_device_of(x, b)) == target.device
        u = kernels.random_uniform(np.random.default_rng(0), kernels.empty((64,), np.float32, like=a))
        u = kernels.to_host(u)
        assert np.all((0 <= u) & (u < 1)) and 0.25 < u.mean() < 0.75 and len(np.unique(u)) > 50


@pytest.mark.parametrize("target", each(TARGETS))
def test_out_is_allocated_when_omitted(target):
    A, B = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)
    with target.context():
        C = ops.matmul(target.to(A), target.to(B))
        assert kernels.device_of(C) == target.device
        C = target.back(C)
        assert C.shape == (3, 2) and C.dtype == np.float32 and np.all(C == 4)
        assert target.back(ops.sum_rows(target.to(A))).shape == (4,)


def test_missing_backend_raises_by_name():
    op = ops.matmul
    saved = op.impls.pop("cpu")
    try:
        with pytest.raises(NotImplementedError, match="matmul: no 'cpu' kernel"):
            op(np.ones((2, 2)), np.ones((2, 2)))
    finally:
        op.impls["cpu"] = saved


def test_use_switches_host_backend():
    assert kernels.backend_of(np.ones(2)) == "cpu"
    with kernels.use("numpy"):
        assert kernels.backend_of(np.ones(2)) == "numpy"
    assert kernels.backend_of(np.ones(2)) == "cpu"
    with pytest.raises(ValueError, match="numpy"):
        with kernels.use("gpu"):
            pass


def test_non_arrays_are_ignored_by_dispatch():
    assert kernels.backend_of(np.ones(2), 1, 2.0, True, None, np.float32(3), "x") == "cpu"
    assert not kernels.is_device_array(np.float32(1)) and not kernels.is_device_array([1.0])
    assert kernels.device_of(np.ones(2)) == "cpu"


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        kernels.to_device(np.ones(3), "tpu")


@pytest.mark.parametrize("shape", [(1, 1, 1), (45, 67, 35), (64, 64, 64), (3, 130, 7)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
def test_numba_matmul_from_scratch(shape, ta, tb):
    m, k, n = shape
    rng = np.random.default_rng(0)
    A = rng.standard_normal((k, m) if ta else (m, k))
    B = rng.standard_normal((n, k) if tb else (k, n))
    expected = (A.T if ta else A) @ (B.T if tb else B)
    np.testing.assert_allclose(matmul_numba(A, B, trans_a=ta, trans_b=tb, block=16), expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- the lazy CUDA backend
def _python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_does_not_load_cuda():
    r = _python("import sys, numpy as np, tinynn\n"
                "from tinynn import kernels\n"
                "from tinynn.kernels import ops\n"
                "ops.matmul(np.ones((2, 2)), np.ones((2, 2)))\n"
                "kernels.empty((2,), np.float32, like=np.ones(1)); kernels.to_host(np.ones(1))\n"
                "kernels.to_device(np.ones(1), 'cpu'); kernels.device_of(np.ones(1))\n"
                "print(sorted(m for m in sys.modules if m.startswith(('numba.cuda', 'tinynn.kernels.cuda.'))))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_cuda_request_without_cuda_is_clear():
    if kernels.CUDA_AVAILABLE:
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        kernels.to_device(np.ones(3), "cuda")


@pytest.mark.gpu
def test_device_array_made_outside_tinynn_loads_the_backend():
    """A numba.cuda array given to an op is the first use of the device: it loads the backend."""
    r = _python("import numpy as np\n"
                "from numba import cuda\n"
                "from tinynn import kernels\n"
                "from tinynn.kernels import ops\n"
                "x = cuda.to_device(np.arange(3, dtype=np.float32))\n"
                "ops.scale(x, 2.0)\n"
                "print(kernels.is_device_array(x), kernels.backend_of(x), kernels.to_host(x).tolist())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "cuda", "[0.0,", "2.0,", "4.0]"]


# --------------------------------------------------------------------------- aliased outputs
ALIASED = {   # op, how its arguments are built from (Z, b, Y), and which argument ``out`` aliases
    "act_forward out=X": lambda Z, b, Y, k: ("act_forward", (Z, k, 0.1), "X"),
    "bias_act out=Z": lambda Z, b, Y, k: ("bias_act", (Z, b, k, 0.1), "Z"),
    "act_backward out=dY": lambda Z, b, Y, k: ("act_backward", (Z, Y, k, 0.1), "dY"),
    "act_backward out=Y": lambda Z, b, Y, k: ("act_backward", (Z, Y, k, 0.1), "Y"),
}


@pytest.mark.parametrize("case", sorted(ALIASED))
@pytest.mark.parametrize("target", each(UNDER_TEST))
def test_aliased_out_equals_reference(case, target):
    """The CPU kernels compute these ops in place (the vectorised form); ``out`` may be any input they read."""
    rng = np.random.default_rng(7)
    for kind in config.ACTIVATIONS.values():
        for dtype in target.dtypes:
            Z = rng.standard_normal((5, 9)).astype(dtype)
            b = rng.standard_normal(9).astype(dtype)
            Y = rng.random((5, 9)).astype(dtype)
            name, args, alias = ALIASED[case](Z, b, Y, kind)
            expected = ops[name].reference(*args, out=np.empty_like(Z))
            params = list(ops[name]._sig.parameters)
            dev = [target.to(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
            with target.context(), np.errstate(all="ignore"):
                got = ops[name](*dev, out=dev[params.index(alias)])
            np.testing.assert_allclose(target.back(got), expected, **TOL[dtype],
                                       err_msg=f"{case}, activation {kind}, {np.dtype(dtype).name}")


STRIDED = {   # op name -> arguments built from (A, B, b) with A, B strided views
    "act_forward": lambda A, B, b: (A, 1, 0.1),
    "act_backward": lambda A, B, b: (A, B - 0.5, 2, 0.1),
    "bias_act": lambda A, B, b: (A, b, 1, 0.1),
    "mul": lambda A, B, b: (A, B),
    "dropout_mask": lambda A, B, b: (B, 0.3),
}


def _strided(rng, dtype):
    """A (5, 9) block of a (5, 20) array: its rows are not adjacent, so reshape(-1) of it is a copy, not a view."""
    return rng.standard_normal((5, 20)).astype(dtype)[:, 3:12]


@pytest.mark.parametrize("name", sorted(STRIDED) + ["scale"])
def test_strided_arrays_equal_reference(name):
    """Strided (non-contiguous) inputs and ``out`` on the CPU backend: the result lands in ``out`` (a kernel
    that flattened a strided ``out`` with reshape(-1) would write into a copy and leave ``out`` untouched)."""
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        A, B = _strided(rng, dtype), rng.random((5, 20)).astype(dtype)[:, 5:14]
        b = rng.standard_normal(9).astype(dtype)
        assert not A.flags.c_contiguous and not B.flags.c_contiguous
        if name == "scale":
            expected = ops.scale.reference(A.copy(), 2.5)
            got = np.zeros((5, 20), dtype)[:, 3:12]                # a strided array scaled in place
            got[...] = A
            with kernels.use("cpu"):
                ops.scale(got, 2.5)
        else:
            args = STRIDED[name](A, B, b)
            expected = ops[name].reference(*args, out=np.empty((5, 9), dtype))
            got = np.full((5, 20), 7, dtype)[:, 3:12]
            with kernels.use("cpu"), np.errstate(all="ignore"):
                ops[name](*args, out=got)
        np.testing.assert_allclose(got, expected, **TOL[dtype], err_msg=f"{name}, {np.dtype(dtype).name}")
