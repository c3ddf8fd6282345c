"""MLPClassifier's classes: their order and dtype through fit, partial_fit, save and load; one class; multi-label
targets with class_weight (sklearn's compute_sample_weight meaning)."""
import numpy as np
import pytest
from sklearn.utils.class_weight import compute_sample_weight

import tinynn as tn

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.default_rng(3)
X = RNG.standard_normal((30, 3))
Y = np.c_[X[:, 0] > 0, X[:, 1] > 0.5, X[:, 2] > 1].astype(int)      # three labels, unbalanced
ARGS = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0)


def test_one_class_is_certain():
    clf = tn.MLPClassifier(**ARGS).fit(X, np.full(30, 7))
    P = clf.predict_proba(X[:4])
    np.testing.assert_array_equal(P, np.ones((4, 1)))
    assert P.dtype == np.float64
    np.testing.assert_array_equal(clf.predict(X[:4]), [7, 7, 7, 7])


def test_multilabel_balanced_class_weight_is_compute_sample_weight():
    a = tn.MLPClassifier(class_weight="balanced", **ARGS).fit(X, Y)
    b = tn.MLPClassifier(**ARGS).fit(X, Y, sample_weight=compute_sample_weight("balanced", Y))
    c = tn.MLPClassifier(**ARGS).fit(X, Y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


def test_multilabel_balanced_with_sample_weight_multiplies():
    sw = RNG.uniform(0.5, 2, 30)
    a = tn.MLPClassifier(class_weight="balanced", **ARGS).fit(X, Y, sample_weight=sw)
    b = tn.MLPClassifier(**ARGS).fit(X, Y, sample_weight=sw * compute_sample_weight("balanced", Y))
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])


def test_multilabel_partial_fit_needs_no_classes():
    clf = tn.MLPClassifier(**ARGS).partial_fit(X, Y)
    assert list(clf.classes_) == [0, 1, 2] and clf.predict(X).shape == (30, 3)
    clf.partial_fit(X, Y)                                            # the same columns: accepted
    assert clf.t_ == 60


def test_partial_fit_with_the_same_classes_again():
    clf = tn.MLPClassifier(**ARGS).partial_fit(X, Y[:, 0], classes=[1, 0])
    clf.partial_fit(X, Y[:, 0], classes=np.array([0, 1]))
    assert list(clf.classes_) == [0, 1] and clf.t_ == 60


def test_partial_fit_with_a_subset_of_the_classes():
    clf = tn.MLPClassifier(**ARGS).partial_fit(X, Y[:, 0] + 2 * Y[:, 1], classes=[0, 1, 2, 3])
    clf.partial_fit(X[Y[:, 0] == 0], np.zeros(int((Y[:, 0] == 0).sum()), int))
    assert list(clf.classes_) == [0, 1, 2, 3] and clf.predict_proba(X).shape == (30, 4)


def test_warm_start_with_the_same_classes_in_another_order():
    y = np.array(["b", "a", "c"])[np.arange(30) % 3]
    clf = tn.MLPClassifier(warm_start=True, **ARGS).fit(X, y)
    clf.fit(X[::-1], y[::-1])
    assert list(clf.classes_) == ["a", "b", "c"] and clf.n_iter_ == 3


@pytest.mark.parametrize("labels,dtype", [(np.array(["x", "y"]), "U"), (np.array(["x", "y"], dtype=object), "U"),
                                          (np.array([3, 5]), "i")])
def test_classes_keep_their_dtype_through_save_and_load(tmp_path, labels, dtype):
    y = labels[(X[:, 0] > 0).astype(int)]
    clf = tn.MLPClassifier(**ARGS).fit(X, y)
    back = tn.MLPClassifier.load(clf.save(tmp_path / "clf"))
    assert back.classes_.dtype.kind == dtype == clf.classes_.dtype.kind
    np.testing.assert_array_equal(back.classes_, clf.classes_)
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    assert back._y_type == "binary"


def test_multilabel_survives_save_and_load(tmp_path):
    clf = tn.MLPClassifier(**ARGS).fit(X, Y)
    back = tn.MLPClassifier.load(clf.save(tmp_path / "clf"))
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    assert back._y_type == "multilabel"
