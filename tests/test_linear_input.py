"""What Linear takes besides a plain float ndarray (its fast path): an ndarray subclass or a device array goes
through the full check (rank, width, dtype, the layer's name in the message), and a scipy sparse batch is
converted to the layer's dtype and device (a float64 scipy matrix feeds a float32 layer)."""
import numpy as np
import pytest
import scipy.sparse as sp

from tinynn import kernels
from tinynn.layers import Linear


class Sub(np.ndarray):
    """An ndarray subclass (as np.memmap is): not the fast path's exact type."""


def test_an_ndarray_subclass_is_checked_as_a_plain_array():
    lin = Linear(3, 2, rng=0)
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(lin.forward(X.view(Sub)), lin.forward(X))
    with pytest.raises(ValueError, match=r"^Linear: expected 3 features \(last axis\), got shape \(4, 5\)"):
        lin.forward(np.ones((4, 5), np.float32).view(Sub))
    with pytest.raises(ValueError, match=r"^Linear: expected a 2-D array, got shape \(3,\)"):
        lin.forward(np.ones(3, np.float32).view(Sub))
    with pytest.raises(TypeError, match=r"^Linear: expected dtype float32, got float64"):
        lin.forward(np.ones((4, 3)).view(Sub))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_scipy_batch_takes_the_layers_dtype(dtype):
    lin = Linear(3, 2, rng=0, dtype=dtype)
    dense = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]])
    got = lin.forward(sp.csr_matrix(dense))                     # float64 scipy, whatever the layer's dtype
    assert got.dtype == dtype
    np.testing.assert_allclose(got, lin.forward(dense.astype(dtype)), rtol=1e-6)


@pytest.mark.gpu
def test_a_scipy_batch_goes_to_the_layers_device():
    lin = Linear(3, 2, rng=0).to("cuda")
    dense = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]], np.float32)
    got = lin.forward(sp.csr_matrix(dense))
    assert kernels.is_device_array(got)
    np.testing.assert_allclose(kernels.to_host(got), kernels.to_host(lin.forward(kernels.to_device(dense, "cuda"))),
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"^Linear: expected 3 features"):
        lin.forward(kernels.to_device(np.ones((2, 4), np.float32), "cuda"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_callable_init_gets_the_layers_dtype_and_its_weights_are_kept_in_it(dtype):
    """init may be any callable (shape, rng, dtype) -> array: it is told the layer's dtype, and whatever dtype
    it returns, the weight is stored in the layer's."""
    seen = []

    def init(shape, rng, dt):
        seen.append(dt)
        return np.full(shape, 0.5)                               # float64, whatever it was asked for

    lin = Linear(3, 2, dtype=dtype, init=init, rng=0)
    assert seen == [dtype] and lin.weight.data.dtype == dtype and (lin.weight.data == 0.5).all()
