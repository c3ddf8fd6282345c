"""The CUDA matmuls on shapes that span several blocks in every direction, in every transposition, against
NumPy: the tiled kernel built afresh with small tiles (TILE 4, REG 2: the same code, so that a simulated run
crosses tile edges, partial tiles and several k-steps at a few hundred threads), and the naive baseline with
4 x 4 blocks, allocating its output. (The kernels the backend made at import are checked by test_kernels.py and
test_cuda.py; building one here also makes the factory's code part of what the tests run.)
"""
import numba
import numpy as np
import pytest

from tinynn import kernels
from tinynn.kernels import ops

pytestmark = pytest.mark.gpu

TRANS = [(False, False), (True, False), (False, True), (True, True)]


def _operands(rng, dt, m, k, n, ta, tb):
    A = rng.standard_normal((k, m) if ta else (m, k)).astype(dt)
    B = rng.standard_normal((n, k) if tb else (k, n)).astype(dt)
    return A, B, (A.T if ta else A) @ (B.T if tb else B)


@pytest.fixture
def small_tiles(monkeypatch):
    from tinynn.kernels.cuda import launch, matmul as cm

    # a second declaration of the same kernels, for this test only (the registry refuses twins)
    monkeypatch.setattr(launch, "KERNELS", {k: v for k, v in launch.KERNELS.items() if "matmul_tiled" not in k})
    monkeypatch.setattr(cm, "TILE", 4)
    monkeypatch.setattr(cm, "REG", 2)
    monkeypatch.setattr(cm, "BM", 8)
    for dt, nb in ((np.float32, numba.float32), (np.float64, numba.float64)):
        monkeypatch.setitem(cm._TILED, np.dtype(dt), cm._make_tiled(nb))
    return cm


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_tiled_kernel_across_tiles(small_tiles, ta, tb, dt):
    rng = np.random.default_rng(1)
    for m, k, n in ((19, 9, 10), (8, 4, 4), (1, 13, 3)):          # partial, exact and single-row tiles
        A, B, want = _operands(rng, dt, m, k, n, ta, tb)
        out = kernels.to_device(np.full((m, n), np.nan, dt), "cuda")
        got = kernels.to_host(ops.matmul(kernels.to_device(A, "cuda"), kernels.to_device(B, "cuda"), trans_a=ta,
                                         trans_b=tb, out=out))
        tol = 1e-5 if dt == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=f"{m}x{k}x{n} ta={ta} tb={tb}")


def test_tiled_kernel_refuses_other_dtypes_and_shapes(small_tiles):
    A = kernels.to_device(np.ones((3, 4), np.float32), "cuda")
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) @ \(3, 4\) -> \(3, 4\) do not match"):
        ops.matmul(A, A, out=kernels.to_device(np.ones((3, 4), np.float32), "cuda"))
    with pytest.raises(ValueError, match=r"shapes \(3, 4\)ᵀ @ \(3, 4\)ᵀ"):
        ops.matmul(A, A, trans_a=True, trans_b=True, out=kernels.to_device(np.ones((3, 3), np.float32), "cuda"))


@pytest.mark.parametrize("ta,tb", TRANS)
def test_naive_kernel_across_blocks(ta, tb):
    from tinynn.kernels.cuda.matmul import matmul_naive

    rng = np.random.default_rng(2)
    A, B, want = _operands(rng, np.float64, 9, 6, 7, ta, tb)
    got = matmul_naive(kernels.to_device(A, "cuda"), kernels.to_device(B, "cuda"), trans_a=ta, trans_b=tb,
                       threads=4)
    assert got.shape == want.shape
    np.testing.assert_allclose(kernels.to_host(got), want, rtol=1e-12, atol=1e-12)
