"""tinynn.batches: what the host batch source gives the training loop, stated by hand.

With ``shuffle=False`` the global batches are consecutive slices of range(n), so every batch's indices, rows,
data, weights and weight sums are known without running the code: the source must hand back exactly
those, in order, skip (but still augment) a batch whose weights sum to zero, and count right answers only
when asked to and only for integer class labels on the CPU."""
import numpy as np
import pytest
import scipy.sparse as sp

import tinynn as tn
from tinynn.batches import Batch, BatchSource, HostBatches, batch_weights
from tinynn.training import Trainer, build_mlp


def _trainer(batch_size=4, d=3, out=3, **kw):
    model = build_mlp([d, 5, out], seed=0)
    return Trainer(model, tn.SoftmaxCrossEntropy(), tn.optim.SGD(model.parameters(), lr=0.1),
                   batch_size=batch_size, shuffle=False, **kw)


def _data(n=10, d=3):
    X = np.arange(n * d, dtype=np.float32).reshape(n, d)       # row i is [3i, 3i+1, 3i+2]: easy to recognise
    y = np.arange(n) % 3
    return X, y


# ---------------------------------------------------------------------- Batch and batch_weights
def test_batch_rows_default_to_the_length_of_idx_and_carry_no_loss_yet():
    b = Batch(2, np.arange(5), np.arange(2), "X", "T")
    assert (b.step, b.rows, b.X, b.T, b.weights, b.weight_sum, b.pred) == (2, 5, "X", "T", None, None, None)
    assert b.value is None and b.correct is None               # filled in elsewhere (asynchronous workers)
    assert list(b.idx) == [0, 1, 2, 3, 4] and list(b.local) == [0, 1]
    c = Batch(0, np.arange(5), np.arange(2), None, None, weights="w", weight_sum=3.5, rows=np.int64(7), pred="p")
    assert (c.rows, c.weights, c.weight_sum, c.pred) == (7, "w", 3.5, "p") and type(c.rows) is int


def test_batch_weights_are_the_local_rows_and_the_sum_over_the_global_batch():
    assert batch_weights(None, np.arange(4), np.arange(2)) == (None, None)
    sw = np.array([1.0, 2.0, 0.5, 4.0, 8.0])
    w, total = batch_weights(sw, np.array([4, 1, 2]), np.array([1, 2]))
    assert list(w) == [2.0, 0.5] and total == 10.5 and type(total) is float      # 8 + 2 + 0.5


def test_the_protocol_defaults_are_a_host_source():
    s = BatchSource()
    b = Batch(0, np.arange(3), np.arange(3), None, None)
    assert s.settle(b, 0.25) == ((0.25, 3),) and tuple(s.finish()) == ()
    assert (s.counting, s.correct, s.deferred) == (False, 0, False)
    assert s.abort() is None and s.close() is None


# ---------------------------------------------------------------------- HostBatches
def test_host_batches_are_consecutive_slices_with_their_rows():
    X, y = _data(10)
    src = HostBatches(_trainer(4), X, y)
    assert src.counting is False and src.pred is None            # accuracy is not counted unless asked
    got = [(b.step, list(b.idx), list(b.local), b.rows, b.X.copy(), b.T.copy(), b.weights, b.weight_sum)
           for b in src]
    assert [g[0] for g in got] == [0, 1, 2]
    assert [g[1] for g in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [g[2] for g in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [g[3] for g in got] == [4, 4, 2]
    for (_, idx, _, _, Xb, Tb, w, ws) in got:
        np.testing.assert_array_equal(Xb, 3 * np.array(idx)[:, None] + np.arange(3))
        np.testing.assert_array_equal(Tb, np.array(idx) % 3)
        assert Xb.dtype == np.float32 and w is None and ws is None


def test_full_batches_are_gathered_into_reused_buffers():
    X, y = _data(10)
    src = HostBatches(_trainer(4), X, y)
    assert src.bs == 4 and src.xbuf.shape == (4, 3) and src.tbuf.shape == (4,)
    assert src.xbuf.dtype == np.float32 and src.tbuf.dtype == y.dtype
    batches = [(b.X, b.T) for b in src]
    for Xb, Tb in batches[:2]:
        assert Xb is src.xbuf and Tb is src.tbuf               # the same memory each step
    assert batches[2][0] is not src.xbuf and batches[2][0].shape == (2, 3)   # the short last batch
    np.testing.assert_array_equal(src.xbuf, X[4:8])           # the buffer holds the last full batch


def test_a_batch_size_above_n_gives_one_batch_of_n_rows():
    X, y = _data(5)
    src = HostBatches(_trainer(128), X, y)
    assert src.bs == 5 and src.xbuf.shape == (5, 3)
    (b,) = list(src)
    assert b.rows == 5 and b.X is src.xbuf
    np.testing.assert_array_equal(b.X, X)


def test_multi_column_targets_and_feature_maps_keep_their_trailing_shape():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 2, 3))
    T = rng.standard_normal((6, 2)).astype(np.float32)
    src = HostBatches(_trainer(3, d=3), X, T)
    assert src.xbuf.shape == (3, 2, 3) and src.tbuf.shape == (3, 2) and src.xbuf.dtype == np.float64
    for b in src:
        np.testing.assert_array_equal(b.X, X[b.idx])
        np.testing.assert_array_equal(b.T, T[b.idx])


def test_sparse_rows_go_as_csr_rows():
    X, y = _data(6)
    Xs = sp.csr_matrix(X)
    src = HostBatches(_trainer(4), Xs, y)
    assert src.sparse and src.xbuf is None
    bs = list(src)
    assert [b.rows for b in bs] == [4, 2]
    for b in bs:
        assert sp.issparse(b.X)
        np.testing.assert_array_equal(b.X.toarray(), X[b.idx])
        np.testing.assert_array_equal(b.T, y[b.idx])


def test_sample_weights_per_batch_and_zero_weight_batches_skipped():
    X, y = _data(8)
    # batch sums: 3, 0 (skipped), 1 (exactly one: trained), 0.5
    sw = np.array([1.0, 2.0, 0.0, 0.0, 0.25, 0.75, 0.5, 0.0])
    src = HostBatches(_trainer(2), X, y, sample_weight=sw)
    got = [(b, b.X.copy()) for b in src]                       # full batches share one buffer: copy
    np.testing.assert_array_equal(got[1][1], X[4:6])
    got = [b for b, _ in got]
    assert [b.step for b in got] == [0, 2, 3]                  # step 1 weighs nothing: skipped, still counted
    assert [b.weight_sum for b in got] == [3.0, 1.0, 0.5]
    assert [list(b.weights) for b in got] == [[1.0, 2.0], [0.25, 0.75], [0.5, 0.0]]


def test_augmentation_draws_for_every_batch_and_its_output_is_trained_on():
    X, y = _data(6)
    calls = []

    def augment(Xb, rng):
        calls.append((Xb.copy(), rng))
        return Xb + 100.0

    t = _trainer(2, augment=augment)
    sw = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    got = [(b.step, b.X.copy()) for b in HostBatches(t, X, y, sample_weight=sw)]
    assert len(calls) == 3 and all(rng is t.aug_rng for _, rng in calls)   # the skipped batch drew too
    np.testing.assert_array_equal(calls[1][0], X[2:4])
    assert [s for s, _ in got] == [0, 2]
    np.testing.assert_array_equal(got[1][1], X[4:6] + 100.0)


@pytest.mark.parametrize("accuracy, labels, counting", [
    (True, np.array([0, 1, 2, 0, 1, 2]), True),                                 # signed integers
    (True, np.array([0, 1, 2, 0, 1, 2], np.uint8), True),                       # unsigned integers
    (False, np.array([0, 1, 2, 0, 1, 2]), False),                                # not asked
    (True, np.array([0.0, 1, 2, 0, 1, 2]), False),                               # float labels
    (True, np.eye(3)[[0, 1, 2, 0, 1, 2]].astype(np.int64), False),               # one-hot rows
])
def test_counting_only_integer_labels_on_request(accuracy, labels, counting):
    X, _ = _data(6)
    src = HostBatches(_trainer(4), X, labels, accuracy=accuracy)
    assert src.counting is counting and src.correct == 0
    if counting:
        assert src.pred.shape == (4,) and src.pred.dtype == np.int64
        assert all(b.pred is src.pred for b in src)
    else:
        assert src.pred is None


def test_settle_counts_the_right_answers_of_the_training_forward_pass():
    X = np.random.default_rng(1).standard_normal((10, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 2, 1, 0, 0, 1, 2, 1])
    t = _trainer(4)
    src = HostBatches(t, X, y, accuracy=True)
    expected = 0
    for b in src:
        Z = t.model.forward(b.X)                               # the forward pass the step is about to make
        right = int(np.sum(np.argmax(Z, axis=1) == y[b.idx]))
        expected += right
        value = t.step(b.X, b.T)
        assert src.settle(b, value) == ((value, b.rows),)
        assert src.correct == expected
    assert 0 < expected < 10                                   # a count, neither none nor all


def test_settle_without_counting_leaves_the_count_alone():
    X, y = _data(4)
    t = _trainer(4)
    src = HostBatches(t, X, y.astype(np.float64), accuracy=True)     # float labels: no counting
    (b,) = list(src)
    assert src.settle(b, 1.5) == ((1.5, 4),) and src.correct == 0


def test_settle_skips_the_count_of_a_process_without_rows():
    X, y = _data(4)
    t = _trainer(4)
    src = HostBatches(t, X, y, accuracy=True)
    empty = Batch(0, np.arange(4), np.arange(0), X[:0], y[:0], pred=src.pred)

    class Refuse(type(t.strategy)):
        def count_correct(self, trainer, batch):
            raise AssertionError("counted a batch without rows")

    t.strategy = Refuse()
    assert src.settle(empty, 0.0) == ((0.0, 4),) and src.correct == 0
