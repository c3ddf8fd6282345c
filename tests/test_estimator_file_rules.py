"""tinynn.estimator._files: what an estimator file's ``params`` and ``fitted`` entries and its arrays must be
(docs/refusals.md), each refusal with its message; and what save writes and load gives back."""
import json
import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import tinynn as tn
from tinynn import io
from tinynn.errors import FileFormatError
from tinynn.estimator import _files as ef
from tinynn.estimator._files import _check_classes, _new_params_to_json, _read_fitted, _read_params

P = "f.npz"
C, R = tn.MLPClassifier, tn.MLPRegressor


def problem(fn, *args, **kw):
    with pytest.raises(FileFormatError) as e:
        fn(*args, **kw)
    assert e.value.path == P
    return e.value.problem


def params(cls=C, **edits):
    p = cls().get_params()
    p["hidden_layer_sizes"] = list(p["hidden_layer_sizes"])
    p.update(edits)
    return p


def reader(d, where):
    return io.MetaReader(P, d, where)


FITTED = {"n_iter_": 2, "n_layers_": 3, "n_outputs_": 1, "out_activation_": "logistic", "n_features_in_": 3,
          "dtype_": "float64", "loss_": 1.0, "t_": 40, "has_optimizer": True, "_no_improvement_count": 0,
          "loss_curve_": [1.1, 1.0], "validation_scores_": None, "validation_loss_curve_": None, "best_loss_": 1.0,
          "best_validation_score_": None, "y_type": "binary", "classes_object": False}


def fitted(cls=C, **edits):
    f = dict(FITTED, **edits)
    if cls is R:
        for k in ("y_type", "classes_object"):
            if k not in edits:
                del f[k]
        f["out_activation_"] = edits.get("out_activation_", "identity")
    return f


# --------------------------------------------------------------------------------------------- params
def test_params_read_back_with_the_new_parameters_defaulted():
    p = params(hidden_layer_sizes=[5])
    for k in ef._NEW_PARAMS:
        del p[k]
    out = _read_params(C, reader(p, "params."))
    assert (out["l1"], out["l1_mode"], out["transform_layer"], out["class_weight"]) == (0.0, "subgradient", -1, None)
    assert out["hidden_layer_sizes"] == [5]
    assert ef._NEW_PARAMS == ("l1", "l1_mode", "transform_layer", "class_weight")


def test_params_missing_and_unexpected():
    p = params()
    del p["alpha"]
    assert problem(_read_params, C, reader(p, "params.")) == "metadata entry params.alpha missing"
    del p["tol"]
    assert problem(_read_params, C, reader(p, "params.")) == "metadata entries params.alpha, params.tol missing"
    assert problem(_read_params, C, reader(params(zeta=1), "params.")) == "unexpected metadata entry params.zeta"


@pytest.mark.parametrize("key, value, says", [
    ("alpha", True, "metadata entry params.alpha is true; expected a number or a name, not true/false"),
    ("batch_size", False, "metadata entry params.batch_size is false; expected a number or a name, not true/false"),
    ("hidden_layer_sizes", [3, 0], "metadata entry params.hidden_layer_sizes[1] must be a positive integer, got 0"),
    ("hidden_layer_sizes", [True], "metadata entry params.hidden_layer_sizes[0] must be a positive integer, got True"),
    ("hidden_layer_sizes", [2.0], "metadata entry params.hidden_layer_sizes[0] must be a positive integer, got 2.0"),
    ("hidden_layer_sizes", "5", "metadata entry params.hidden_layer_sizes must be a JSON array, got '5' (a JSON "
                                "string)"),
    ("solver", "lbfgsb", "metadata entry params.solver is 'lbfgsb', expected one of ['adam', 'lbfgs', 'sgd']"),
    ("device", "tpu", "metadata entry params.device is 'tpu', expected one of ['cpu', 'cuda']"),
    ("dtype", "float16", "metadata entry params.dtype is 'float16', expected one of ['float32', 'float64']"),
    ("batch_norm", 1, "metadata entry params.batch_norm must be true or false, got 1 (a JSON number)"),
    ("dropout", 1.0, "metadata entry params.dropout must be in [0, 1), got 1.0"),
    ("dropout", -0.1, "metadata entry params.dropout must be in [0, 1), got -0.1"),
    ("random_state", -1, "metadata entry params.random_state must be an integer in [0, 4294967295], got -1"),
    ("random_state", 2**32, "metadata entry params.random_state must be an integer in [0, 4294967295], got "
                            "4294967296"),
    ("init", "zeros!", "metadata entry params.init is 'zeros!', expected 'auto' or one of "),
    ("init", 3, "metadata entry params.init must be a string, got 3 (a JSON number)"),
    ("activation", "swishy", "metadata entry params.activation is 'swishy', expected one of "),
    ("optimizer", "adamz", "metadata entry params.optimizer is 'adamz', expected one of "),
    ("lr_schedule", "sometimes", "metadata entry params.lr_schedule is 'sometimes', expected one of "),
    ("l1", -1.0, "metadata entry params.l1 must be in [0, None], got -1.0"),
    ("l1_mode", "lasso", "metadata entry params.l1_mode is 'lasso', expected one of ['proximal', 'subgradient']"),
    ("transform_layer", 1.5, "metadata entry params.transform_layer must be an integer, got 1.5 (a JSON number)"),
    ("class_weight", 3, 'metadata entry params.class_weight must be null, "balanced" or a list of [label, weight] '
                        "pairs, got 3"),
    ("class_weight", "even", 'metadata entry params.class_weight must be null, "balanced" or a list of [label, '
                             "weight] pairs, got 'even'"),
])
def test_params_refusals(key, value, says):
    assert problem(_read_params, C, reader(params(**{key: value}), "params.")).startswith(says)


def test_params_tables_are_named():
    assert problem(_read_params, C, reader(params(init="x"), "params.")).endswith("(tinynn.init.INITIALIZERS)")
    assert problem(_read_params, C, reader(params(activation="x"), "params.")).endswith(" (tinynn.ACTIVATIONS)")
    assert problem(_read_params, C, reader(params(optimizer="x"), "params.")).endswith(" (tinynn.optim.OPTIMIZERS)")
    assert problem(_read_params, C, reader(params(lr_schedule="x"), "params.")).endswith(
        " (tinynn.schedules.SCHEDULES)")


def test_params_accepted_values():
    ok = dict(hidden_layer_sizes=[1, 2], init="auto", optimizer=None, lr_schedule=None, dtype=None, random_state=None,
              dropout=0.0, swa=True, l1=0.0, l1_mode="proximal", transform_layer=-2)
    assert _read_params(C, reader(params(**ok), "params.")) == params(**ok)
    for edits in (dict(random_state=0), dict(random_state=2**32 - 1), dict(optimizer="rmsprop", lr_schedule="cosine"),
                  dict(init="glorot_uniform"), dict(dtype="float32"), dict(dropout=0.999), dict(class_weight=None),
                  dict(class_weight="balanced"), dict(device="cuda")):
        assert _read_params(C, reader(params(**edits), "params.")) == params(**edits)


@pytest.mark.parametrize("pairs, i", [([[0, 1.0], [1]], 1), ([[True, 1.0]], 0), ([["a", "1"]], 0),
                                      ([["a", True]], 0), ([[1.5, 1.0]], 0), ([(0, 1.0)], 0), ([[0, 1.0, 2]], 0),
                                      ([None], 0)])
def test_class_weight_pairs(pairs, i):
    p = params(class_weight=pairs)
    assert problem(_read_params, C, reader(p, "params.")) == (
        f"metadata entry params.class_weight[{i}] must be a [label, weight] pair (label an integer or a string, "
        f"weight a number), got {pairs[i]!r}")


def test_class_weight_pairs_read_as_a_dict():
    out = _read_params(C, reader(params(class_weight=[[0, 1.0], ["b", 2]]), "params."))
    assert out["class_weight"] == {0: 1.0, "b": 2}
    assert _read_params(C, reader(params(class_weight=[]), "params."))["class_weight"] == {}


def test_new_params_to_json():
    p = {"class_weight": {np.int64(1): np.float32(2.0), "a": 3}}
    _new_params_to_json(p)
    assert p == {"class_weight": [[1, 2.0], ["a", 3.0]]} and type(p["class_weight"][0][0]) is int
    for key in (True, 1.5, np.float64(1.0), (1,)):
        with pytest.raises(ValueError) as e:
            _new_params_to_json({"class_weight": {key: 1.0}})
        shown = key.item() if isinstance(key, np.generic) else key
        assert str(e.value) == f"save: class_weight keys must be integers or strings to be written, got {shown!r}"
    for cw in (None, "balanced"):
        p = {"class_weight": cw}
        _new_params_to_json(p)
        assert p == {"class_weight": cw}
    p = {}
    _new_params_to_json(p)
    assert p == {}


# --------------------------------------------------------------------------------------------- fitted
def read_fitted(cls=C, p=None, **edits):
    return _read_fitted(cls, reader(fitted(cls, **edits), "fitted."), p or params(cls, hidden_layer_sizes=[5]))


def test_fitted_read_back():
    out = read_fitted()
    assert out == fitted()
    out = read_fitted(R)
    assert out == fitted(R)
    f = fitted()
    del f["loss_"], f["_no_improvement_count"]
    out = _read_fitted(C, reader(f, "fitted."), params(hidden_layer_sizes=[5]))
    assert out["loss_"] is None and out["_no_improvement_count"] == 0
    assert read_fitted(loss_=float("nan"), best_loss_=float("inf"), loss_curve_=[float("nan"), float("inf")])[
        "best_loss_"] == float("inf")
    out = read_fitted(loss_=float("inf"), best_loss_=float("nan"), best_validation_score_=float("nan"))
    assert out["loss_"] == float("inf") and np.isnan(out["best_loss_"]) and np.isnan(out["best_validation_score_"])
    assert read_fitted(n_iter_=2**53, t_=2**53, _no_improvement_count=2**53)["t_"] == 2**53
    assert read_fitted(n_layers_=2, p=params(hidden_layer_sizes=[]))["n_layers_"] == 2
    assert read_fitted(y_type="multiclass", out_activation_="softmax")["out_activation_"] == "softmax"
    assert read_fitted(y_type="multilabel", out_activation_="logistic")["y_type"] == "multilabel"


@pytest.mark.parametrize("cls, edits, says", [
    (C, dict(extra=1), "unexpected metadata entry fitted.extra"),
    (R, dict(y_type="binary"), "unexpected metadata entry fitted.y_type"),
    (C, dict(n_iter_=-1), "metadata entry fitted.n_iter_ must be an integer in [0, 9007199254740992], got -1"),
    (C, dict(n_iter_=2**53 + 1), "metadata entry fitted.n_iter_ must be an integer in [0, 9007199254740992], got "),
    (C, dict(t_=2**53 + 1), "metadata entry fitted.t_ must be an integer in [0, 9007199254740992], got "),
    (C, dict(_no_improvement_count=-1), "metadata entry fitted._no_improvement_count must be an integer in [0, "
                                        "9007199254740992], got -1"),
    (C, dict(n_outputs_=0), "metadata entry fitted.n_outputs_ must be an integer in [1, inf], got 0"),
    (C, dict(n_features_in_=0), "metadata entry fitted.n_features_in_ must be an integer in [1, inf], got 0"),
    (C, dict(n_layers_=1), "metadata entry fitted.n_layers_ must be an integer in [2, inf], got 1"),
    (C, dict(n_layers_=4), "metadata entry fitted.n_layers_ is 4, but params.hidden_layer_sizes [5] gives 3 layers"),
    (C, dict(dtype_="float16"), "metadata entry fitted.dtype_ is 'float16', expected one of ['float32', 'float64']"),
    (C, dict(loss_="x"), "metadata entry fitted.loss_ must be a number or null, got 'x' (a JSON string)"),
    (C, dict(has_optimizer=None), "metadata entry fitted.has_optimizer must be true or false, got None (a JSON null)"),
    (C, dict(loss_curve_=[1, "x"]), "metadata entry fitted.loss_curve_[1] must be a number, got 'x'"),
    (C, dict(best_validation_score_="x"), "metadata entry fitted.best_validation_score_ must be a number or null, "
                                          "got 'x' (a JSON string)"),
    (C, dict(loss_curve_=None), "metadata entry fitted.loss_curve_ is null, but solver='adam' keeps it"),
    (C, dict(best_loss_=None), "metadata entry fitted.best_loss_ is null, but solver='adam' keeps it"),
    (C, dict(y_type="continuous"), "metadata entry fitted.y_type is 'continuous', expected one of ['binary', "
                                   "'multiclass', 'multilabel']"),
    (C, dict(classes_object="no"), "metadata entry fitted.classes_object must be true or false, got 'no' (a JSON "
                                   "string)"),
    (C, dict(out_activation_="softmax"), "metadata entry fitted.out_activation_ is 'softmax', expected one of "
                                         "['logistic']"),
    (C, dict(y_type="multiclass"), "metadata entry fitted.out_activation_ is 'logistic', expected one of "
                                   "['softmax']"),
    (R, dict(out_activation_="logistic"), "metadata entry fitted.out_activation_ is 'logistic', expected one of "
                                          "['identity']"),
])
def test_fitted_refusals(cls, edits, says):
    assert problem(read_fitted, cls, **edits).startswith(says)


def test_fitted_curves_a_stochastic_fit_keeps():
    es = params(hidden_layer_sizes=[5], solver="sgd", early_stopping=True)
    for name in ("loss_curve_", "validation_scores_", "validation_loss_curve_", "best_validation_score_"):
        f = fitted(**dict(dict(validation_scores_=[0.5], validation_loss_curve_=[1.0], best_validation_score_=0.5),
                          **{name: None}))
        assert problem(_read_fitted, C, reader(f, "fitted."), es) == (f"metadata entry fitted.{name} is null, but "
                                                                      "solver='sgd' with early_stopping keeps it")
    f = fitted(validation_scores_=[0.5], validation_loss_curve_=[1.0], best_validation_score_=0.5, best_loss_=None)
    assert _read_fitted(C, reader(f, "fitted."), es)["best_loss_"] is None
    lbfgs = params(hidden_layer_sizes=[5], solver="lbfgs")
    f = fitted(loss_curve_=None, best_loss_=None, has_optimizer=False)
    assert _read_fitted(C, reader(f, "fitted."), lbfgs)["loss_curve_"] is None


def test_fitted_optimizer_of_the_solver():
    lbfgs = params(hidden_layer_sizes=[5], solver="lbfgs")
    assert problem(_read_fitted, C, reader(fitted(), "fitted."), lbfgs) == (
        "metadata entry fitted.has_optimizer is true, but the estimator's optimizer 'lbfgs' is not one of "
        f"{sorted(tn.optim.OPTIMIZERS)} (solver='lbfgs' keeps no optimizer state)")
    with_opt = params(hidden_layer_sizes=[5], solver="lbfgs", optimizer="rmsprop")
    assert _read_fitted(C, reader(fitted(), "fitted."), with_opt)["has_optimizer"] is True
    assert _read_fitted(C, reader(fitted(), "fitted."), params(hidden_layer_sizes=[5], solver="sgd"))["t_"] == 40


# --------------------------------------------------------------------------------------------- classes_
def F(**kw):
    return dict(dict(y_type="binary", n_outputs_=1, classes_object=False), **kw)


@pytest.mark.parametrize("c, f", [
    (np.array([0, 1]), F()), (np.array([3]), F()), (np.array(["a", "b"]), F(classes_object=True)),
    (np.array([0.5, 1.5]), F()), (np.array([False, True]), F()), (np.array([1, 2, 5]), F(y_type="multiclass",
                                                                                        n_outputs_=3)),
    (np.array([0, 1]), F(y_type="multilabel", n_outputs_=2)), (np.array([0], np.uint8), F(y_type="multilabel")),
])
def test_classes_accepted(c, f):
    _check_classes(P, {"classes_": c}, f)


@pytest.mark.parametrize("c, f, says", [
    (None, F(), "array 'classes_' is missing (an MLPClassifier file holds its classes)"),
    (np.zeros((2, 1)), F(), "array 'classes_' must be a 1-D array of numbers or strings, got a float64 array of "
                            "shape (2, 1)"),
    (np.zeros(2, complex), F(), "array 'classes_' must be a 1-D array of numbers or strings, got a complex128 array "
                                "of shape (2,)"),
    (np.array([0, 1]), F(classes_object=True), "array 'classes_' has dtype int64, but classes_object says strings"),
    (np.array([0.0, np.nan]), F(), "array 'classes_' holds NaN or infinite values"),
    (np.array([0.0, np.inf]), F(), "array 'classes_' holds NaN or infinite values"),
    (np.array([1, 1]), F(), "array 'classes_' must be sorted and without repeats (as np.unique gives them)"),
    (np.array(["b", "a"]), F(), "array 'classes_' must be sorted and without repeats (as np.unique gives them)"),
    (np.array([1, 3, 2]), F(y_type="multiclass", n_outputs_=3), "array 'classes_' must be sorted and without repeats "
                                                                "(as np.unique gives them)"),
    (np.array([0, 1, 2]), F(), "array 'classes_' has 3 classes but the output layer has 1 output(s): a binary "
                               "classifier has 1 or 2 classes and 1 output"),
    (np.array([0, 1]), F(n_outputs_=2), "array 'classes_' has 2 classes but the output layer has 2 output(s): a binary "
                                        "classifier has 1 or 2 classes and 1 output"),
    (np.zeros(0), F(), "array 'classes_' has 0 classes but the output layer has 1 output(s): a binary classifier has "
                       "1 or 2 classes and 1 output"),
    (np.array([0, 1]), F(y_type="multiclass", n_outputs_=2), "array 'classes_' has 2 classes but the output layer "
                                                             "has 2 output(s): a multiclass classifier has as many "
                                                             "classes as outputs (2, at least 3)"),
    (np.array([0, 1, 2]), F(y_type="multiclass", n_outputs_=4), "array 'classes_' has 3 classes but the output layer "
                                                                "has 4 output(s): a multiclass classifier has as many "
                                                                "classes as outputs (4, at least 3)"),
    (np.array([0, 1]), F(y_type="multilabel", n_outputs_=3), "array 'classes_' has 2 classes but the output layer has "
                                                              "3 output(s): a multilabel classifier has as many classes "
                                                              "as outputs (3)"),
    (np.zeros(0), F(y_type="multilabel", n_outputs_=0), "array 'classes_' has 0 classes but the output layer has 0 "
                                                        "output(s): a multilabel classifier has as many classes as "
                                                        "outputs (0)"),
    (np.array([0, 1, 3]), F(y_type="multilabel", n_outputs_=3), "array 'classes_' of a multilabel classifier must be "
                                                                 "0..2, got [0, 1, 3]"),
    (np.array([1, 2]), F(y_type="multilabel", n_outputs_=2), "array 'classes_' of a multilabel classifier must be "
                                                              "0..1, got [1, 2]"),
    (np.array([0.0, 1.0]), F(y_type="multilabel", n_outputs_=2), "array 'classes_' of a multilabel classifier must "
                                                                  "be 0..1, got [0.0, 1.0]"),
])
def test_classes_refused(c, f, says):
    assert problem(_check_classes, P, {} if c is None else {"classes_": c}, f) == says


def test_classes_from_a_header_are_checked_without_values():
    from tinynn._archive import Header

    _check_classes(P, {"classes_": Header((2,), np.dtype("f8"), False, 0)}, F())     # values unknown yet
    _check_classes(P, {"classes_": Header((3,), np.dtype("i8"), False, 0)}, F(y_type="multilabel", n_outputs_=3))
    assert problem(_check_classes, P, {"classes_": Header((3,), np.dtype("f8"), False, 0)}, F()).startswith(
        "array 'classes_' has 3 classes")


# --------------------------------------------------------------------------------------------- save and load
@pytest.fixture(scope="module")
def estimators():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandas as pd

        Xf = pd.DataFrame(X, columns=["a", "b", "c"])
        clf = C(hidden_layer_sizes=(4,), max_iter=2, random_state=np.int64(3)).fit(Xf, np.arange(30) % 2)
        reg = R(hidden_layer_sizes=(), solver="lbfgs", max_iter=3, random_state=np.random.RandomState(0),
                dtype=np.float32).fit(X, X[:, 0])
        bn = C(hidden_layer_sizes=(4,), batch_norm=True, dropout=0.2, max_iter=2, random_state=0).fit(
            X, np.arange(30) % 3)
    return clf, reg, X, bn


@pytest.fixture
def files(estimators, tmp_path):
    """Each test saves the fitted estimators itself (so every test that reads a file runs save too)."""
    clf, reg, X, bn = estimators
    out = {"dir": tmp_path, "X": X}
    for name, est in (("clf", clf), ("reg", reg), ("bn", bn)):
        assert est.save(tmp_path / f"{name}.npz") == tmp_path / f"{name}.npz"
        arrays, meta = io.load_npz(tmp_path / f"{name}.npz")
        out[name] = (est, arrays, json.loads(json.dumps(meta)))
    return out


def edited(files, name, arrays=None, meta=None, **array_edits):
    _, a, m = files[name]
    a = dict(a if arrays is None else arrays, **array_edits)
    payload = {k: v for k, v in a.items() if v is not None}
    payload["__meta__"] = np.array(json.dumps(m if meta is None else meta))
    p = files["dir"] / "edited.npz"
    np.savez(p, **payload)
    return p


def test_save_writes_plain_params(files):
    clf, arrays, meta = files["clf"]
    assert meta["params"]["random_state"] == 3 and type(meta["params"]["random_state"]) is int
    assert meta["params"]["hidden_layer_sizes"] == [4] and meta["params"]["dtype"] is None
    reg, arrays_r, meta_r = files["reg"]
    assert meta_r["params"]["random_state"] is None and meta_r["params"]["dtype"] == "float32"
    assert meta_r["params"]["hidden_layer_sizes"] == []
    assert meta["fitted"]["has_optimizer"] is True and meta_r["fitted"]["has_optimizer"] is False
    assert meta_r["fitted"]["dtype_"] == "float32" and meta["fitted"]["dtype_"] == "float64"
    assert meta["fitted"]["loss_curve_"] == [float(x) for x in clf.loss_curve_]
    assert meta["fitted"]["best_loss_"] == float(clf.best_loss_) and meta["fitted"]["validation_scores_"] is None
    assert meta["fitted"]["t_"] == clf.t_ and meta["fitted"]["_no_improvement_count"] == clf._no_improvement_count
    assert meta["fitted"] == {
        "n_iter_": 2, "n_layers_": 3, "n_outputs_": 1, "out_activation_": "logistic", "n_features_in_": 3,
        "dtype_": "float64", "loss_": clf.loss_, "t_": 60, "has_optimizer": True, "_no_improvement_count": 0,
        "loss_curve_": list(clf.loss_curve_), "validation_scores_": None, "validation_loss_curve_": None,
        "best_loss_": clf.best_loss_, "best_validation_score_": None, "y_type": "binary", "classes_object": False}
    assert meta_r["fitted"]["out_activation_"] == "identity" and meta_r["fitted"]["n_iter_"] == reg.n_iter_
    assert meta_r["fitted"]["n_layers_"] == 2 and meta_r["fitted"]["loss_curve_"] is None
    assert arrays["feature_names_in_"].tolist() == ["a", "b", "c"] and "feature_names_in_" not in arrays_r
    assert any(k.startswith("optim/") for k in arrays) and not any(k.startswith("optim/") for k in arrays_r)


def test_save_of_an_estimator_without_the_later_attributes(files, tmp_path):
    """t_, loss_ and _no_improvement_count absent (an estimator from before they existed): 0, null, 0."""
    import copy

    clf = copy.deepcopy(files["clf"][0])
    for k in ("t_", "loss_", "_no_improvement_count"):
        if hasattr(clf, k):
            delattr(clf, k)
    clf.save(tmp_path / "old.npz")
    f = io.load_npz(tmp_path / "old.npz")[1]["fitted"]
    assert (f["t_"], f["loss_"], f["_no_improvement_count"]) == (0, None, 0)
    clf._no_improvement_count = 3                      # epochs without improvement so far: a continued fit goes on
    clf.save(tmp_path / "waiting.npz")
    assert io.load_npz(tmp_path / "waiting.npz")[1]["fitted"]["_no_improvement_count"] == 3


def test_save_refusals(files, tmp_path):
    with pytest.raises(NotFittedError):
        C().save(tmp_path / "x.npz")
    clf = files["clf"][0]
    import copy

    c2 = copy.deepcopy(clf)
    c2.init = lambda *a, **k: None
    with pytest.raises(ValueError) as e:
        c2.save(tmp_path / "x.npz")
    assert str(e.value) == "save: a callable init cannot be written to a file; use an init name"


def test_load_gives_back_the_fitted_estimator(files):
    for name in ("clf", "reg"):
        est, _, _ = files[name]
        back = type(est).load(files["dir"] / f"{name}.npz")
        X = files["X"]
        if name == "clf":
            import pandas as pd

            X = pd.DataFrame(X, columns=["a", "b", "c"])
            assert back.feature_names_in_.dtype == object and list(back.feature_names_in_) == ["a", "b", "c"]
            np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
            assert hasattr(back, "_opt") and back._opt.t == est._opt.t and back._sched is None
            assert back.random_state == 3 and back.loss_curve_ == [float(x) for x in est.loss_curve_]
        else:
            np.testing.assert_array_equal(back.predict(X), est.predict(X))
            assert not hasattr(back, "_opt") and back.dtype == np.float32 and back._dtype_ == np.float32
            assert not hasattr(back, "feature_names_in_")
            assert back.best_loss_ is None and not hasattr(back, "loss_curve_")   # lbfgs: best_loss_ null, set
        assert back.validation_scores_ is None and back.best_validation_score_ is None
        assert (back.n_iter_, back.t_, back.n_outputs_, back.n_features_in_) == (est.n_iter_, est.t_, est.n_outputs_,
                                                                                 est.n_features_in_)


def test_load_gives_constructor_values_and_leaves_the_global_generator_alone(files):
    """hidden_layer_sizes back as the tuple the constructor took; the network is built from the file's
    random_state (3), not from numpy's global generator, which loading leaves where it was."""
    p = files["dir"] / "clf.npz"
    np.random.seed(0)
    expected = np.random.random()
    np.random.seed(0)
    a = C.load(p)
    assert np.random.random() == expected
    assert a.hidden_layer_sizes == (4,) and type(a.hidden_layer_sizes) is tuple
    assert a.get_params() == files["clf"][0].get_params()


def test_load_batch_norm_and_dropout_with_optimizer_state(files):
    """The layout follows batch_norm and dropout (BatchNorm1d and Dropout layers shift the layer indices), and
    the optimizer's arrays follow the parameters only (not the running statistics)."""
    est, arrays, meta = files["bn"]
    assert "model/1.running_var" in arrays and "model/4.weight" in arrays and "optim/exp_avg.4" in arrays
    back = C.load(files["dir"] / "bn.npz")
    X = files["X"]
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    for a, b in zip(back._opt.state_dict().values(), est._opt.state_dict().values()):
        np.testing.assert_array_equal(a, b)


def test_load_checks_the_headers_before_reading_data(files):
    """An array of the wrong shape whose data is also damaged: refused for its shape, from its header, before
    its data (whose CRC fails) is read."""
    _, arrays, meta = files["clf"]
    big = np.arange(1600.0).reshape(40, 40)
    p = edited(files, "clf", **{"model/0.weight": big})
    data = bytearray(p.read_bytes())
    data[data.index(big.tobytes()[-64:])] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(FileFormatError) as e:
        C.load(p)
    assert e.value.problem == ("array 'model/0.weight' has shape (40, 40), expected (3, 4) (from the architecture the "
                               "metadata describes)")


def test_load_refusals(files):
    _, arrays, meta = files["clf"]
    cases = [
        (dict(feature_names_in_=np.array([1, 2, 3])), None, "array 'feature_names_in_' must hold 3 strings "
                                                             "(n_features_in_), got a int64 array of shape (3,)"),
        (dict(feature_names_in_=np.array(["a", "b"])), None, "array 'feature_names_in_' has shape (2,), expected a "
                                                              "1-D array of 3 items (from the metadata)"),
        (dict(extra=np.zeros(1)), None, "unexpected array(s) ['extra'] in a MLPClassifier file"),
        (dict(classes_=None), None, "array 'classes_' is missing (an MLPClassifier file holds its classes)"),
        (dict(classes_=np.array(["x" * 4097, "y"])), None, "array 'classes_' holds strings of up to 4097 characters; "
                                                           "tinynn reads names of at most 4096"),
        ({}, dict(meta, fitted=dict(meta["fitted"], has_optimizer=False)),
         "the file holds optimizer arrays but its metadata says has_optimizer: false"),
        ({}, dict(meta, params=dict(meta["params"], alpha=-1.0)), "metadata entry params: The 'alpha' parameter of "
                                                                  "MLPClassifier must be"),
        ({"optim/exp_avg.9": np.zeros(4)}, None, "unexpected optimizer array 'optim/exp_avg.9' (expected <state>.<i>, a "
                                                 "state of a tinynn optimizer and i < 4 parameters)"),
        ({}, dict(meta, params=dict(meta["params"], solver="newton")), "metadata entry params.solver is 'newton', "
                                                                     "expected one of ['adam', 'lbfgs', 'sgd']"),
        ({"model/0.weight": np.zeros((3, 4), np.float32)}, None, "array 'model/0.weight' has dtype float32, expected "
                                                                 "float64 (the dtype the metadata gives)"),
    ]
    for arr, m, says in cases:
        p = edited(files, "clf", meta=m, **arr)
        with pytest.raises(FileFormatError) as e:
            C.load(p)
        assert e.value.path == str(p) and e.value.problem.startswith(says), (says, e.value.problem)
    _, arrays_r, meta_r = files["reg"]
    p = edited(files, "reg", classes_=np.array([0, 1]))
    with pytest.raises(FileFormatError, match=r"unexpected array\(s\) \['classes_'\] in a MLPRegressor file"):
        R.load(p)
    p = edited(files, "reg")
    with pytest.raises(FileFormatError, match="holds a 'MLPRegressor', expected a 'MLPClassifier'"):
        C.load(p)
