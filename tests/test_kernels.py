"""Every op x every host backend == the NumPy reference; registry completeness; dispatch rules."""
import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinynn import kernels
from tinynn.kernels import ops
from tinynn.kernels.cpu.matmul import matmul_numba
from tests.kernel_cases import CASES

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}
ODD = [(1, 1), (7, 3), (33, 10), (2, 33)]


def run_case(name, backend, args, kwargs, to=lambda a: a, back=lambda a: a):
    args = [to(copy.deepcopy(a)) if isinstance(a, np.ndarray) else a for a in args]
    kwargs = {k: to(copy.deepcopy(v)) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with kernels.use(backend if backend in ("numpy", "cpu") else "cpu"):
        ret = ops[name](*args, **kwargs)
    arrays = [back(a) for a in args if hasattr(a, "shape")] + [back(v) for v in kwargs.values() if hasattr(v, "shape")]
    ret = back(ret) if hasattr(ret, "shape") else ret
    return arrays, ret


def assert_parity(name, backend, dtype, n, d, seed, **conv):
    for args, kwargs in CASES[name](np.random.default_rng(seed), dtype, n, d):
        ref_arrays, ref_ret = run_case(name, "numpy", args, kwargs)
        got_arrays, got_ret = run_case(name, backend, args, kwargs, **conv)
        for i, (r, g) in enumerate(zip(ref_arrays, got_arrays)):
            np.testing.assert_allclose(g, r, **TOL[dtype], err_msg=f"{name} on {backend}: array argument {i}")
        if isinstance(ref_ret, float):
            assert got_ret == pytest.approx(ref_ret, rel=TOL[dtype]["rtol"] * 10)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,d", ODD)
def test_cpu_matches_reference_odd_shapes(name, dtype, n, d):
    assert_parity(name, "cpu", dtype, n, d, seed=n * 100 + d)


@pytest.mark.parametrize("name", sorted(CASES))
@given(n=st.integers(1, 40), d=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_cpu_matches_reference_drawn(name, n, d, seed):
    assert_parity(name, "cpu", np.float32, n, d, seed)


def test_every_op_has_a_case():
    assert set(CASES) == set(ops.names()), f"ops without parity cases: {set(ops.names()) - set(CASES)}"


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_registry_complete_host(backend):
    missing = [op.name for op in ops if backend not in op.impls]
    assert not missing, f"ops with no {backend!r} implementation: {missing}"


@pytest.mark.gpu
def test_registry_complete_cuda():
    missing = [op.name for op in ops if "cuda" not in op.impls]
    assert not missing, f"ops with no 'cuda' implementation: {missing}"


def test_missing_backend_raises_by_name():
    op = ops.matmul
    saved = op.impls.pop("cpu")
    try:
        with pytest.raises(NotImplementedError, match="matmul: no 'cpu' kernel"):
            op(np.ones((2, 2)), np.ones((2, 2)))
    finally:
        op.impls["cpu"] = saved


def test_out_is_allocated_when_omitted():
    A, B = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)
    for backend in ("numpy", "cpu"):
        with kernels.use(backend):
            C = ops.matmul(A, B)
            assert C.shape == (3, 2) and C.dtype == np.float32 and np.all(C == 4)
            assert ops.sum_rows(A).shape == (4,)


def test_use_switches_host_backend():
    assert kernels.backend_of(np.ones(2)) == "cpu"
    with kernels.use("numpy"):
        assert kernels.backend_of(np.ones(2)) == "numpy"
    assert kernels.backend_of(np.ones(2)) == "cpu"
    with pytest.raises(ValueError, match="numpy"):
        with kernels.use("gpu"):
            pass


@pytest.mark.parametrize("shape", [(1, 1, 1), (45, 67, 35), (64, 64, 64), (3, 130, 7)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
def test_numba_matmul_from_scratch(shape, ta, tb):
    m, k, n = shape
    rng = np.random.default_rng(0)
    A = rng.standard_normal((k, m) if ta else (m, k))
    B = rng.standard_normal((n, k) if tb else (k, n))
    expected = (A.T if ta else A) @ (B.T if tb else B)
    np.testing.assert_allclose(matmul_numba(A, B, trans_a=ta, trans_b=tb, block=16), expected, rtol=1e-12, atol=1e-12)


def test_cuda_request_without_cuda_is_clear():
    if kernels.CUDA_AVAILABLE:
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        kernels.to_device(np.ones(3), "cuda")
