"""Reference ops against hand-worked values: the robust losses (L1 and Huber, at and around delta), the
shape and dtype of an allocated matmul output, CSR products with empty rows, and the host memory functions
of the "numpy" and "cpu" backend records (kernels/reference/memory.py).
"""
import numpy as np
import pytest

from tinynn import kernels
from tinynn.kernels import dispatch, ops
from tinynn.kernels.config import HUBER, L1

R = np.array([-3.0, -1.5, -1.0, -0.25, 0.0, 0.5, 1.5, 2.0])


def _ref(name, *args, **kwargs):
    with kernels.use("numpy"):
        return ops[name](*args, **kwargs)


def test_l1_rows_sum_absolute_residuals():
    P = np.vstack([R, -R]) + 1
    T = np.ones_like(P)
    assert _ref("robust_rows", P, T, L1, 0.0).tolist() == [9.75, 9.75]
    assert _ref("robust_rows", P, T, L1, 1.0).tolist() == [9.75, 9.75]       # delta plays no part in L1


@pytest.mark.parametrize("delta", [1.5, 0.5])
def test_huber_rows_are_quadratic_inside_delta_linear_outside(delta):
    def rho(r):   # torch.nn.functional.huber_loss, reduction none
        return 0.5 * r * r if abs(r) < delta else delta * (abs(r) - 0.5 * delta)

    P = np.vstack([R, 2 * R])
    T = np.zeros_like(P)
    expected = [sum(rho(r) for r in R), sum(rho(2 * r) for r in R)]
    np.testing.assert_allclose(_ref("robust_rows", P, T, HUBER, delta), expected, rtol=1e-15)


def test_huber_by_hand():
    """delta = 1.5: r = -3 -> 1.5 (3 - 0.75) = 3.375, r = -1 -> 0.5, r = 0.5 -> 0.125, r = 1.5 -> 1.125 (both
    pieces agree at delta), r = 2 -> 1.5 (2 - 0.75) = 1.875."""
    P = np.array([[-3.0], [-1.0], [0.5], [1.5], [2.0]])
    out = _ref("robust_rows", P, np.zeros_like(P), HUBER, 1.5)
    assert out.tolist() == [3.375, 0.5, 0.125, 1.125, 1.875]


def test_robust_nan_residual_is_nan():
    P = np.array([[np.nan, 1.0]])
    with np.errstate(invalid="ignore"):
        for kind in (L1, HUBER):
            assert np.isnan(_ref("robust_rows", P, np.zeros_like(P), kind, 1.0)[0])


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_allocates_the_product_shape(ta, tb):
    """op(A) (2, 3) @ op(B) (3, 4): out (2, 4), whichever operands are given transposed."""
    A = np.arange(6, dtype=np.float64).reshape(2, 3)
    B = np.arange(12, dtype=np.float64).reshape(3, 4)
    out = _ref("matmul", A.T.copy() if ta else A, B.T.copy() if tb else B, trans_a=ta, trans_b=tb)
    assert out.shape == (2, 4)
    np.testing.assert_array_equal(out, A @ B)


@pytest.mark.parametrize("da,db,dc", [(np.float32, np.float32, np.float32), (np.float32, np.float64, np.float64),
                                      (np.float64, np.float32, np.float64)])
def test_matmul_allocates_the_promoted_dtype(da, db, dc):
    out = _ref("matmul", np.ones((2, 3), da), np.ones((3, 1), db))
    assert out.dtype == dc and out.shape == (2, 1) and (out == 3).all()


def test_spmm_by_hand_with_empty_rows():
    """X = [[0, 2, 0], [0, 0, 0], [1, 0, 3], [0, 0, 0]] in CSR (rows 1 and 3 empty)."""
    indptr = np.array([0, 1, 1, 3, 3])
    indices = np.array([1, 0, 2])
    data = np.array([2.0, 1.0, 3.0])
    B = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    assert _ref("spmm", indptr, indices, data, B).tolist() == [[4, 40], [0, 0], [10, 100], [0, 0]]
    D = np.array([[1.0], [5.0], [2.0], [7.0]])
    out = np.full((3, 1), 9.0)
    _ref("spmm_t", indptr, indices, data, D, out)            # Xᵀ D
    assert out.tolist() == [[2.0], [2.0], [6.0]]


@pytest.mark.parametrize("name", ["numpy", "cpu"])
def test_host_record(name):
    """A host backend's record: device "cpu", host arrays moved nowhere, copies into the destination."""
    b = dispatch.get_backend(name)
    assert b.name == name and b.device == "cpu" and b.is_host and b.array_types == () and b.feed is None
    x = np.arange(4.0)
    assert b.to_device(x) is x and b.to_host(x) is x
    out = np.zeros(4)
    assert b.to_host(x, out=out) is out and out.tolist() == [0, 1, 2, 3]
    dst = np.zeros(4)
    assert b.copy(dst, x + 1) is dst and dst.tolist() == [1, 2, 3, 4]
    e = b.empty((2, 3), np.dtype(np.float32))
    assert e.shape == (2, 3) and e.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_host_uniform_is_the_generators_stream(dtype):
    """uniform(rng, out) fills out from the Generator in out's dtype: the draws rng.random(dtype=...) gives."""
    out = np.empty(1000, dtype)
    assert dispatch.get_backend("numpy").uniform(np.random.default_rng(5), out) is out
    np.testing.assert_array_equal(out, np.random.default_rng(5).random(1000, dtype=dtype))


def test_record_builds_a_host_backend():
    """record(name): a Backend for host arrays under any name: device "cpu", no array types, NumPy's empty,
    transfers that return host arrays as they are, and the Generator's uniform stream."""
    from tinynn.kernels.reference.memory import record
    b = record("host2")
    assert (b.name, b.device, b.array_types, b.feed, b.is_host) == ("host2", "cpu", (), None, True)
    e = b.empty((3,), np.dtype(np.int32))
    assert type(e) is np.ndarray and e.shape == (3,) and e.dtype == np.int32
    x = np.arange(3.0)
    assert b.to_device(x) is x and b.to_host(x) is x
    dst = np.zeros(3)
    assert b.copy(dst, x) is dst and dst.tolist() == [0, 1, 2]
    u = b.uniform(np.random.default_rng(1), np.empty(4))
    np.testing.assert_array_equal(u, np.random.default_rng(1).random(4))


def test_leaky_relu_backward_multiplies_in_the_arrays_dtype():
    """float32 in: dY · alpha with alpha rounded to float32 first, the product rounded once (as the CPU kernel
    computes it); not the float64 product rounded."""
    rng = np.random.default_rng(0)
    dY = rng.standard_normal((4, 64)).astype(np.float32)
    Y = -np.abs(rng.standard_normal((4, 64))).astype(np.float32)          # every slope the negative one
    got = _ref("act_backward", dY, Y, 2, 0.1)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, dY * np.float32(0.1))
