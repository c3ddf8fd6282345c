"""Bad input raises a clear exception naming what was expected and what came, before any kernel runs."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynn as tn


def test_linear_wrong_width():
    with pytest.raises(ValueError, match=r"expected 4 features.*shape \(3, 5\)"):
        tn.Linear(4, 2).forward(np.ones((3, 5), np.float32))


def test_linear_wrong_rank():
    with pytest.raises(ValueError, match=r"expected a 2-D array, got shape \(4,\)"):
        tn.Linear(4, 2).forward(np.ones(4, np.float32))


def test_linear_non_float_and_wrong_dtype():
    with pytest.raises(TypeError, match="floating-point"):
        tn.Linear(2, 2).forward(np.ones((3, 2), np.int64))
    with pytest.raises(TypeError, match="expected dtype float32, got float64"):
        tn.Linear(2, 2).forward(np.ones((3, 2)))


def test_linear_accepts_lists_and_non_contiguous():
    lin = tn.Linear(2, 3, dtype=np.float64, rng=0)
    X = np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2]
    np.testing.assert_allclose(lin.forward(X), X @ lin.weight.data)
    np.testing.assert_allclose(lin.forward([[1.0, 2.0]]), np.array([[1.0, 2.0]]) @ lin.weight.data)


def test_labels_out_of_range_or_negative():
    Z = np.zeros((3, 4), np.float32)
    with pytest.raises(IndexError, match=r"label 4 out of range; expected labels in \[0, 4\)"):
        tn.SoftmaxCrossEntropy()(Z, np.array([0, 4, 1]))
    with pytest.raises(IndexError, match=r"label -1 out of range"):
        tn.SoftmaxCrossEntropy()(Z, np.array([0, -1, 1]))


def test_labels_not_integers():
    with pytest.raises(TypeError, match="integer class labels"):
        tn.SoftmaxCrossEntropy()(np.zeros((2, 3)), np.array([0.5, 1.0]))
    with pytest.raises(TypeError, match="integer class labels"):
        tn.SoftmaxCrossEntropy()(np.zeros((2, 3)), np.array(["a", "b"]))


def test_batch_size_mismatch():
    with pytest.raises(ValueError, match=r"batch-size mismatch: expected labels of shape \(3,\), got \(2,\)"):
        tn.SoftmaxCrossEntropy()(np.zeros((3, 4), np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"prediction shape \(3, 2\) and target shape \(4, 2\) differ"):
        tn.MSELoss()(np.zeros((3, 2)), np.zeros((4, 2)))


def test_embedding_indices():
    emb = tn.Embedding(5, 2)
    with pytest.raises(IndexError, match=r"index 5 out of range; expected indices in \[0, 5\)"):
        emb.forward(np.array([0, 5]))
    with pytest.raises(IndexError, match=r"index -2 out of range"):
        emb.forward(np.array([-2, 1]))
    with pytest.raises(TypeError, match="integer indices"):
        emb.forward(np.array([0.0, 1.0]))


def test_backward_shape_checked():
    lin = tn.Linear(3, 2)
    lin.forward(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="batch-size mismatch: expected 4 rows, got 5"):
        lin.backward(np.ones((5, 2), np.float32))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        tn.Linear(0, 3)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        tn.Dropout(1.5)
    with pytest.raises(ValueError, match="negative_slope"):
        tn.LeakyReLU(-1)
    with pytest.raises(TypeError, match="expected a tinynn Layer"):
        tn.Sequential(tn.Linear(2, 2), "relu")


def test_sparse_input_refused():
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse matrices are not supported"):
        tn.Linear(3, 2).forward(sp.csr_matrix(np.ones((2, 3), np.float32)))


def test_batchnorm_single_row_in_training():
    with pytest.raises(ValueError, match="more than 1 row"):
        tn.BatchNorm1d(3).forward(np.ones((1, 3), np.float32))


ALLOWED = (ValueError, TypeError, IndexError)


@given(X=st.one_of(
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.int32, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)),
    st.lists(st.floats(allow_nan=True), max_size=4),
    st.lists(st.lists(st.floats(-10, 10), min_size=3, max_size=3), max_size=3),
    st.none(), st.text(max_size=3)))
def test_fuzz_layers(X, ):
    """Any input: a correct result or a documented exception, never a crash or garbage shape."""
    model = tn.Sequential(tn.Linear(3, 4, rng=0), tn.ReLU(), tn.Linear(4, 2, rng=1))
    try:
        Y = model.forward(X)
    except ALLOWED:
        return
    X = np.asarray(X)
    assert X.ndim == 2 and X.shape[1] == 3 and X.dtype == np.float32
    assert Y.shape == (X.shape[0], 2)


@given(n=st.integers(0, 4), c=st.integers(1, 4),
       y=st.one_of(hnp.arrays(st.sampled_from([np.int64, np.float64, np.int8]),
                              hnp.array_shapes(min_dims=0, max_dims=2, max_side=5),
                              elements=st.integers(-3, 6)), st.lists(st.integers(-2, 5), max_size=5)))
def test_fuzz_softmax_ce(n, c, y):
    Z = np.zeros((n, c), np.float32)
    try:
        value = tn.SoftmaxCrossEntropy()(Z, y)
    except ALLOWED:
        return
    assert np.isfinite(value) and value == pytest.approx(np.log(c), rel=1e-6)
