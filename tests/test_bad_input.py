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


def test_sparse_input_refused_beyond_the_first_linear():
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse matrices are not supported"):
        tn.ReLU().forward(sp.csr_matrix(np.ones((2, 3), np.float32)))
    with pytest.raises(ValueError, match="expected sparse input of 3 columns in float32, got 4 columns"):
        tn.Linear(3, 2).forward(sp.csr_matrix(np.ones((2, 4), np.float32)))


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


# ------------------------------------------------------------------------------------------- misuse of the layer API
from tinynn.errors import documented  # noqa: E402


def _layers():
    return {"Linear": tn.Linear(3, 2), "ReLU": tn.ReLU(), "Tanh": tn.Tanh(), "BatchNorm1d": tn.BatchNorm1d(3),
            "LayerNorm": tn.LayerNorm(3), "Dropout": tn.Dropout(0.5, rng=0), "Embedding": tn.Embedding(5, 3),
            "Sequential": tn.Sequential(tn.Linear(3, 4), tn.ReLU(), tn.Linear(4, 2))}


@pytest.mark.parametrize("name", sorted(_layers()))
def test_backward_before_forward_says_so(name):
    layer = _layers()[name]
    with pytest.raises(RuntimeError, match=r"\.backward: called before (a training-mode )?forward.*call .*forward"):
        layer.backward(np.ones((2, 2), np.float32))


def test_batchnorm_backward_after_an_eval_forward_is_refused():
    """Backward differentiates the training-mode formula: after an eval-mode forward it would use a stale x̂."""
    bn = tn.BatchNorm1d(3)
    X = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    bn.forward(X)
    bn.backward(np.ones((4, 3), np.float32))                            # fine in training mode
    bn.eval()
    bn.forward(X)
    with pytest.raises(RuntimeError, match="after an eval-mode forward is not supported"):
        bn.backward(np.ones((4, 3), np.float32))


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble, np.complex64, "garbage"])
def test_layer_dtypes_the_kernels_do_not_run_are_refused_at_construction(dtype):
    for make in (lambda: tn.Linear(3, 2, dtype=dtype), lambda: tn.BatchNorm1d(3, dtype=dtype),
                 lambda: tn.LayerNorm(3, dtype=dtype), lambda: tn.Embedding(5, 2, dtype=dtype)):
        with pytest.raises(TypeError, match="dtype must be float32 or float64"):
            make()


@pytest.mark.parametrize("layer", [tn.ReLU(), tn.Sigmoid(), tn.Dropout(0.5, rng=0), tn.Identity()])
def test_float16_input_is_a_type_error_in_tinynns_words(layer):
    with pytest.raises(TypeError, match=r"dtype float16 is not supported; expected float32 or float64"):
        layer.forward(np.ones((2, 3), np.float16))


def test_float16_to_a_loss():
    with pytest.raises(TypeError, match="float16 is not supported"):
        tn.SoftmaxCrossEntropy()(np.zeros((2, 3), np.float16), np.array([0, 1]))


def test_embedding_backward_input_checked():
    emb = tn.Embedding(5, 2)
    emb.forward(np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="floating-point"):
        emb.backward(np.ones((3, 2), np.int64))
    with pytest.raises(ValueError, match="expected dY with 6 elements"):
        emb.backward(np.ones((4, 2), np.float32))


def test_gen_batches_refuses_what_cannot_batch():
    from tinynn.data import gen_batches

    with pytest.raises(ValueError, match="gen_batches: batch_size must be a positive integer, got 0"):
        gen_batches(10, 0)                                      # at the call, not at the first next()
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 2.5"):
        gen_batches(10, 2.5)
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        gen_batches(-1, 4)
    with pytest.raises(TypeError, match="rng must be a np.random.Generator"):
        gen_batches(10, 4, rng=3)
    assert [len(b) for b in gen_batches(10, 4)] == [4, 4, 2]
    assert list(gen_batches(0, 4)) == []


def test_one_hot_labels_checked():
    from tinynn.data import one_hot

    np.testing.assert_array_equal(one_hot(np.array([0, 2]), 3), [[1, 0, 0], [0, 0, 1]])
    with pytest.raises(IndexError, match=r"label 3 out of range; expected labels in \[0, 3\)"):
        one_hot(np.array([0, 3]), 3)
    with pytest.raises(TypeError, match="integer class labels"):
        one_hot(np.array([0.5]), 3)
    with pytest.raises(ValueError, match="n_classes must be a positive integer"):
        one_hot(np.array([0]), 0)


def test_standardize_checks_its_input():
    from tinynn.data import standardize

    with pytest.raises(TypeError, match="standardize: X_train: expected a floating-point array"):
        standardize(np.ones((3, 2), np.int64))
    with pytest.raises(ValueError, match=r"standardize: array 1: expected 2 features"):
        standardize(np.ones((3, 2)), np.ones((3, 5)))


def test_idx_file_with_a_truncated_header(tmp_path):
    import gzip

    from tinynn.data import read_idx

    p = tmp_path / "x.gz"
    with gzip.open(p, "wb") as f:
        f.write(bytes([0, 0, 8, 3, 0, 0]))                      # 3 dimensions announced, 2 bytes of them
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(p)
    p.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"garbage-deflate")   # a gzip header, then junk
    with pytest.raises(ValueError, match="corrupt or truncated IDX file"):
        read_idx(p)


@given(X=st.one_of(
    hnp.arrays(st.sampled_from([np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.int8]),
               hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)),
    st.none(), st.text(max_size=2)),
    order=st.sampled_from(["forward", "backward", "forward_backward"]))
def test_fuzz_layer_api_in_the_documented_set(X, order):
    """Every layer, any input, any call order: a result or a documented exception, never an internal one."""
    for name, layer in _layers().items():
        try:
            if order in ("forward", "forward_backward"):
                Y = layer.forward(X if name != "Embedding" else np.asarray(X).astype(np.int64) % 5
                                  if isinstance(X, np.ndarray) and X.dtype.kind in "fi" and np.all(np.isfinite(X))
                                  else X)
                if order == "forward_backward" and Y is not None:
                    layer.backward(np.ones_like(np.asarray(Y)))
            else:
                layer.backward(X)
        except Exception as e:  # noqa: BLE001
            assert documented(e) and str(e), f"{name}: {type(e).__name__}: {e}"
