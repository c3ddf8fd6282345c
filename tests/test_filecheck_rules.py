"""tinynn._filecheck: what a file's arrays and entries must be, checked on arrays, on .npy headers
(``tinynn._archive.Header``) and on metadata, each refusal with its message; the layouts are checked against
the models tinynn builds."""
import json

import numpy as np
import pytest

import tinynn as tn
from tinynn import _filecheck as fc
from tinynn._archive import Header
from tinynn._metareader import COUNTER_MAX, MetaReader
from tinynn.errors import FileFormatError
from tinynn.mlp import build_mlp

P = "f.npz"


def problem(fn, *args, **kw):
    with pytest.raises(FileFormatError) as e:
        fn(*args, **kw)
    assert e.value.path == P
    return e.value.problem


def H(*shape, dtype="f4"):
    return Header(shape, np.dtype(dtype), False, 0)


# --------------------------------------------------------------------------------------------- arrays
@pytest.mark.parametrize("a, kw, says", [
    (np.zeros(3, np.int64), {}, "array 'a' has dtype int64, expected float32 or float64"),
    (np.zeros(3, np.float16), {}, "array 'a' has dtype float16, expected float32 or float64"),
    (np.zeros(3, np.complex64), {}, "array 'a' has dtype complex64, expected float32 or float64"),
    (np.zeros(3, np.float32), dict(dtype="float64"), "array 'a' has dtype float32, expected float64 (the dtype the "
                                                     "metadata gives)"),
    (np.zeros(3), dict(shape=(2,)), "array 'a' has shape (3,), expected (2,) (from the architecture the metadata "
                                    "describes)"),
    (np.zeros((3, 1)), dict(shape=[3]), "array 'a' has shape (3, 1), expected (3,) (from the architecture the "
                                        "metadata describes)"),
    (np.array([1.0, np.nan, np.inf, -np.inf]), {}, "array 'a' holds 3 NaN or infinite value(s); the arrays of a "
                                                   "tinynn file are finite"),
    (np.array([0.0, -1e-30]), dict(nonnegative=True), "array 'a' holds negative values; a variance is >= 0"),
])
def test_check_array_refusals(a, kw, says):
    assert problem(fc.check_array, P, "a", a, **kw) == says


def test_check_array_accepts():
    a = np.array([0.0, 1.0])
    assert fc.check_array(P, "a", a, (2,), "float64", nonnegative=True) is a
    assert fc.check_array(P, "a", np.zeros(0), nonnegative=True).size == 0
    assert fc.check_array(P, "a", np.array([np.nan]), finite=False).shape == (1,)
    assert fc.check_array(P, "a", np.array([-1, 2]), floating=False).dtype == np.int64
    assert fc.check_array(P, "a", np.array([-1.0]), floating=False, nonnegative=False)[0] == -1
    assert problem(fc.check_array, P, "a", np.array([np.inf]), floating=False) == (
        "array 'a' holds 1 NaN or infinite value(s); the arrays of a tinynn file are finite")
    h = H(2, dtype="f8")
    assert fc.check_array(P, "a", h, (2,), "float64", nonnegative=True) is h         # a header: no values
    assert problem(fc.check_array, P, "a", H(2, dtype="i4")) == "array 'a' has dtype int32, expected float32 or float64"
    assert fc.FLOAT_DTYPES == ("float32", "float64")


# --------------------------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("sizes, bn, dropout, input_dropout", [
    ([4], False, 0.0, 0.0), ([4, 3], False, 0.0, 0.0), ([4, 6, 3], False, 0.0, 0.0), ([4, 6, 5, 3], True, 0.2, 0.0),
    ([4, 6, 3], False, 0.5, 0.1), ([2, 3, 3, 3, 1], True, 0.0, 0.3), ([4, 6, 3], True, 0.0, 0.0),
])
def test_mlp_state_layout_is_what_build_mlp_builds(sizes, bn, dropout, input_dropout):
    model = build_mlp(sizes, batch_norm=bn, dropout=dropout, input_dropout=input_dropout)
    assert fc.mlp_state_layout(sizes, bn, dropout, input_dropout) == {k: v.shape for k, v in
                                                                       model.state_dict().items()}


def test_mlp_state_layout_worked_example():
    assert fc.mlp_state_layout([4, 6, 3]) == {"0.weight": (4, 6), "0.bias": (6,), "2.weight": (6, 3), "2.bias": (3,)}
    assert fc.mlp_state_layout([4, 6, 3], True, 0.2, 0.1) == {
        "1.weight": (4, 6), "1.bias": (6,), "2.weight": (6,), "2.bias": (6,), "2.running_mean": (6,),
        "2.running_var": (6,), "5.weight": (6, 3), "5.bias": (3,)}


def test_check_model_arrays():
    layout = {"0.weight": (2, 3), "0.bias": (3,), "1.running_var": (3,)}
    arrays = {"model/0.weight": np.zeros((2, 3)), "model/0.bias": np.zeros(3), "model/1.running_var": np.ones(3),
              "other": np.zeros(1)}
    fc.check_model_arrays(P, arrays, layout, np.float64)
    assert problem(fc.check_model_arrays, P, arrays, layout, np.float32) == (
        "array 'model/0.weight' has dtype float64, expected float32 (the dtype the metadata gives)")
    a = dict(arrays)
    del a["model/0.bias"]
    a["model/9.x"] = np.zeros(1)
    assert problem(fc.check_model_arrays, P, a, layout, None) == (
        "the model's arrays do not match the architecture the metadata describes: missing ['model/0.bias']; "
        "unexpected ['model/9.x']")
    del a["model/9.x"]
    assert problem(fc.check_model_arrays, P, a, layout, None) == (
        "the model's arrays do not match the architecture the metadata describes: missing ['model/0.bias']")
    a = dict(arrays, **{"model/9.x": np.zeros(1)})
    assert problem(fc.check_model_arrays, P, a, layout, None) == (
        "the model's arrays do not match the architecture the metadata describes: unexpected ['model/9.x']")
    a = dict(arrays, **{"model/0.bias": np.zeros(4)})
    assert problem(fc.check_model_arrays, P, a, layout, None) == ("array 'model/0.bias' has shape (4,), expected (3,) "
                                                                  "(from the architecture the metadata describes)")
    a = dict(arrays, **{"model/1.running_var": -np.ones(3)})
    assert problem(fc.check_model_arrays, P, a, layout, None) == ("array 'model/1.running_var' holds negative "
                                                                  "values; a variance is >= 0")
    a = dict(arrays, **{"model/0.bias": -np.ones(3)})
    fc.check_model_arrays(P, a, layout, None)                   # only variances are >= 0
    b = {"p:0.weight": np.zeros((2, 3)), "p:0.bias": np.zeros(3), "p:1.running_var": np.ones(3)}
    fc.check_model_arrays(P, b, layout, None, prefix="p:")
    assert problem(fc.check_model_arrays, P, arrays, layout, None, prefix="p:").startswith(
        "the model's arrays do not match the architecture the metadata describes: missing ['p:0.bias', ")


def test_model_parts_in_layer_order():
    items = [("10.weight", (1,)), ("2.bias", (2,)), ("2.running_var", (3,)), ("2.weight", (4,)),
             ("2.running_mean", (5,)), ("x.weight", (6,)), ("1.runningish", [7])]
    assert fc._model_parts(items) == ([(6,), (7,), (2,), (4,), (1,)], [(5,), (3,)])
    assert fc._param_shapes({"0.weight": (2, 3), "0.bias": (3,), "1.running_mean": (3,)}) == [(3,), (2, 3)]


def test_text_header():
    fc.check_text_header(P, "c", H(3, dtype="<U4096"), length=3)
    fc.check_text_header(P, "c", H(5, dtype="i8"), max_length=5)
    fc.check_text_header(P, "c", H(0, dtype="f8"))
    assert problem(fc.check_text_header, P, "c", H(3, 1), length=3) == ("array 'c' has shape (3, 1), expected a 1-D "
                                                                        "array of 3 items (from the metadata)")
    assert problem(fc.check_text_header, P, "c", H(4), length=3) == ("array 'c' has shape (4,), expected a 1-D "
                                                                     "array of 3 items (from the metadata)")
    assert problem(fc.check_text_header, P, "c", H(6), max_length=5) == ("array 'c' has shape (6,), expected a 1-D "
                                                                         "array of at most 5 items (from the metadata)")
    assert problem(fc.check_text_header, P, "c", H()) == ("array 'c' has shape (), expected a 1-D array of at most "
                                                          "None items (from the metadata)")
    assert problem(fc.check_text_header, P, "c", H(3, dtype="<U4097")) == (
        "array 'c' holds strings of up to 4097 characters; tinynn reads names of at most 4096")
    assert fc.MAX_TEXT == 4096


# --------------------------------------------------------------------------------------------- optimizer headers
def test_optim_headers():
    params = [(2, 3), (3,)]
    ok = {"optim/exp_avg.0": H(2, 3), "optim/exp_avg.1": H(3), "optim/exp_avg_sq.0": H(2, 3), "model/x": H(9)}
    fc.check_optim_headers(P, ok, params)
    six = {f"optim/{s}.{i}": H(*params[i]) for s in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") for i in (0, 1)}
    fc.check_optim_headers(P, six, params)
    seven = dict(six, **{"optim/momentum_buffer.0": H(2, 3)})
    assert problem(fc.check_optim_headers, P, seven, params) == ("the file holds 7 optimizer arrays for 2 parameters; "
                                                                 "a tinynn optimizer keeps at most 3 per parameter")
    for name in ("optim/nope.0", "optim/exp_avg.2", "optim/exp_avg.x", "optim/exp_avg", "optim/exp_avg.-1"):
        assert problem(fc.check_optim_headers, P, {name: H(3)}, params) == (
            f"unexpected optimizer array {name!r} (expected <state>.<i>, a state of a tinynn optimizer and i < 2 "
            "parameters)")
    assert problem(fc.check_optim_headers, P, {"optim/exp_avg.1": H(2, 3)}, params) == (
        "array 'optim/exp_avg.1' has shape (2, 3), expected (3,) (the shape of parameter 1)")
    fc.check_optim_headers(P, {"o:sum.1": H(3)}, params, prefix="o:")
    long = "optim/" + "x" * 100 + ".0"
    assert problem(fc.check_optim_headers, P, {long: H(3)}, params) == (
        f"unexpected optimizer array {long[:28] + '... (80 more characters)'!r} (expected <state>.<i>, a state of a "
        "tinynn optimizer and i < 2 parameters)")
    assert fc._optimizer_state_names() == {"momentum_buffer", "u", "sum", "square_avg", "grad_avg", "exp_avg",
                                           "exp_avg_sq", "max_exp_avg_sq", "acc_delta"}


# --------------------------------------------------------------------------------------------- checkpoint headers
MODEL = {"model/0.weight": H(3, 4), "model/0.bias": H(4), "model/1.weight": H(4), "model/1.bias": H(4),
         "model/1.running_mean": H(4), "model/1.running_var": H(4), "model/3.weight": H(4, 2), "model/3.bias": H(2)}
N_PARAMS = 12 + 4 + 4 + 4 + 8 + 2


def test_checkpoint_headers_accept_what_a_trainer_writes():
    ok = dict(MODEL, **{"optim/exp_avg.0": H(3, 4), "optim/exp_avg.5": H(2), "callback0/avg": H(N_PARAMS),
                        "callback63/snap2/params": H(N_PARAMS), "callback1/snap0/state1": H(4)})
    fc.check_checkpoint_headers(P, {}, ok)
    ok = dict(ok, **{"model/123456." + "w" * 64: H(1, 1), "callback0/avg": H(N_PARAMS + 1),
                     "callback63/snap2/params": H(N_PARAMS + 1), "optim/exp_avg.6": H(1, 1)})
    fc.check_checkpoint_headers(P, {}, ok)


@pytest.mark.parametrize("name", ["model/1234567.weight", "model/0." + "w" * 65, "model/0.1w", "optim/exp_avg.1234567",
                                  "callback1000/avg", "callback0/snap0/state", "callback0/avg2", "x/0.weight",
                                  "model/0.weight.npy", "callback0/snap0/params/"])
def test_checkpoint_header_names(name):
    assert problem(fc.check_checkpoint_headers, P, {}, dict(MODEL, **{name: H(4)})) == (
        f"unexpected array(s) in a checkpoint: {fc._listed([name])} (a checkpoint holds model/, optim/ and callback<i>/ "
        "arrays only)")


@pytest.mark.parametrize("name, header, says", [
    ("model/0.weight", H(3, 4, dtype="i4"), "array 'model/0.weight' has dtype int32, expected float32 or float64"),
    ("optim/bogus.0", H(3, 4), "array 'optim/bogus.0': 'bogus' is the state of no tinynn optimizer (expected one of "
                               "['acc_delta', 'exp_avg', 'exp_avg_sq', 'grad_avg', 'max_exp_avg_sq', "
                               "'momentum_buffer', 'square_avg', 'sum', 'u'])"),
    ("optim/exp_avg.6", H(2), "array 'optim/exp_avg.6' has shape (2,), which is no parameter's shape of the "
                              "checkpoint's model (6 parameters)"),
    ("optim/exp_avg.0", H(5), "array 'optim/exp_avg.0' has shape (5,), which is no parameter's shape of the "
                              "checkpoint's model (6 parameters)"),
    ("callback64/avg", H(N_PARAMS), "array 'callback64/avg': a checkpoint holds at most 64 callbacks"),
    ("callback0/avg", H(N_PARAMS + 1), f"array 'callback0/avg' has shape ({N_PARAMS + 1},), expected ({N_PARAMS},) "
                                       f"(from the checkpoint's model arrays: {N_PARAMS} parameters)"),
    ("callback0/snap1/params", H(N_PARAMS, 1), f"array 'callback0/snap1/params' has shape ({N_PARAMS}, 1), expected "
                                               f"({N_PARAMS},) (from the checkpoint's model arrays: {N_PARAMS} "
                                               "parameters)"),
    ("callback0/snap0/state0", H(3), f"array 'callback0/snap0/state0' has shape (3,), expected (4,) (from the "
                                     f"checkpoint's model arrays: {N_PARAMS} parameters)"),
    ("callback0/snap0/state2", H(4), f"array 'callback0/snap0/state2' has shape (4,), expected none (the model has 2 "
                                     f"statistics) (from the checkpoint's model arrays: {N_PARAMS} parameters)"),
])
def test_checkpoint_header_refusals(name, header, says):
    assert problem(fc.check_checkpoint_headers, P, {}, dict(MODEL, **{name: header})) == says


def test_checkpoint_optimizer_array_count():
    params = [(3, 4), (4,), (4,), (4,), (4, 2), (2,)]
    states = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")
    arrays = {f"optim/{s}.{i}": H(*params[i]) for s in states[:3] for i in range(6)}
    fc.check_checkpoint_headers(P, {}, dict(MODEL, **arrays))                        # 18 = 3 per parameter
    arrays["optim/momentum_buffer.0"] = H(3, 4)
    assert problem(fc.check_checkpoint_headers, P, {}, dict(MODEL, **arrays)) == (
        "the checkpoint holds 19 optimizer arrays for 6 parameters; a tinynn optimizer keeps at most 3 per parameter")


# --------------------------------------------------------------------------------------------- metadata
def test_checkpoint_meta():
    ok = {"epoch": 0, "config": {}, "history": [{"loss": 1.0, "acc": None, "early": True, "n": 3}]}
    fc._check_checkpoint_meta(P, ok)                                    # samples_seen: 0 when absent
    fc._check_checkpoint_meta(P, dict(ok, epoch=COUNTER_MAX, samples_seen=COUNTER_MAX))
    for k in ("epoch", "samples_seen"):
        assert problem(fc._check_checkpoint_meta, P, dict(ok, **{k: COUNTER_MAX + 1})) == (
            f"metadata entry {k} must be an integer in [0, {2**53}], got {2**53 + 1}")
        assert problem(fc._check_checkpoint_meta, P, dict(ok, **{k: -1})) == (
            f"metadata entry {k} must be an integer in [0, {2**53}], got -1")
    assert problem(fc._check_checkpoint_meta, P, dict(ok, history=[{}, 3])) == (
        "metadata entry history[1] must be a JSON object (one epoch's record), got 3")
    assert problem(fc._check_checkpoint_meta, P, dict(ok, history=[{"loss": "x"}])) == (
        "metadata entry history[0].loss must be a number, true/false or null (a measurement), got 'x'")
    assert problem(fc._check_checkpoint_meta, P, dict(ok, history=[{"loss": [1]}])) == (
        "metadata entry history[0].loss must be a number, true/false or null (a measurement), got [1]")
    fc._check_checkpoint_meta(P, dict(ok, history=[{"k" * 64: 1}]))
    assert problem(fc._check_checkpoint_meta, P, dict(ok, history=[{"k" * 65: 1}])) == (
        "metadata entry history[0]." + "k" * 32 + "... (33 more characters) must be a number, true/false or null (a "
        "measurement), got 1")
    assert problem(fc._check_checkpoint_meta, P, dict(ok, config=None)) == ("metadata entry config must be a JSON "
                                                                            "object, got None (a JSON null)")
    assert problem(fc._check_checkpoint_meta, P, {"epoch": 1, "config": {}}) == "metadata entry history is missing"


def test_check_like():
    expected = {"a": 1, "b": 0.5, "c": "s", "d": True, "e": None, "f": {"g": 2}, "h": [1, "x"], "i": np.int64(3),
                "j": np.float32(1.5)}
    good = {"a": 2, "b": float("inf"), "c": "t", "d": False, "e": "any", "f": {"g": 5}, "h": [7, "y"], "i": 4,
            "j": 2}
    fc._check_like(MetaReader(P, good), expected)
    for v in (None, 1, 1.5, "s", False):
        fc._check_like(MetaReader(P, dict(good, e=v)), expected)
    cases = [
        (dict(good, a=1.0), "metadata entry a must be an integer, got 1.0 (a JSON number)"),
        (dict(good, i=1.0), "metadata entry i must be an integer, got 1.0 (a JSON number)"),
        (dict(good, b=float("nan")), "metadata entry b must be a finite number, got nan"),
        (dict(good, b="1"), "metadata entry b must be a number, got '1' (a JSON string)"),
        (dict(good, c=1), "metadata entry c must be a string, got 1 (a JSON number)"),
        (dict(good, d=0), "metadata entry d must be true or false, got 0 (a JSON number)"),
        (dict(good, e=float("nan")), "metadata entry e must be a number, a string, true/false or null, got nan"),
        (dict(good, e=[1]), "metadata entry e must be a number, a string, true/false or null, got [1]"),
        (dict(good, e={}), "metadata entry e must be a number, a string, true/false or null, got {}"),
        (dict(good, f={"g": 2, "z": 1}), "unexpected metadata entry f.z"),
        (dict(good, f={"g": "2"}), "metadata entry f.g must be an integer, got '2' (a JSON string)"),
        (dict(good, h=[1]), "metadata entry h has 1 items, expected 2"),
        (dict(good, h=[1, 2]), "metadata entry h.1 must be a string, got 2 (a JSON number)"),
        (dict(good, h="ab"), "metadata entry h must be a JSON array, got 'ab' (a JSON string)"),
        (dict(good, z=1), "unexpected metadata entry z"),
        ({k: v for k, v in good.items() if k != "c"}, "metadata entry c is missing"),
    ]
    for meta, says in cases:
        assert problem(fc._check_like, MetaReader(P, meta), expected) == says
    fc._check_like(MetaReader(P, dict(good, z=1)), expected, partial=True)
    assert problem(fc._check_like, MetaReader(P, {"t": [1]}), {"t": (1, 2)}) == "metadata entry t has 1 items, expected 2"
    fc._check_like(MetaReader(P, {"o": b"x"}), {"o": b"y"})                        # not JSON: compared by type
    assert problem(fc._check_like, MetaReader(P, {"o": "x"}), {"o": b"y"}) == "metadata entry o has the wrong type: 'x'"


# --------------------------------------------------------------------------------------------- state
def _sgd():
    model = build_mlp([3, 2], seed=0)
    return model, tn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def test_optimizer_state():
    model, opt = _sgd()
    sd = opt.state_dict()
    arrays = {f"optim/{k}": v for k, v in sd.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in sd.items() if not isinstance(v, np.ndarray)}
    r = MetaReader(P, {"optim": scalars})
    osd = fc._checked_optimizer_state(P, r, arrays, opt)
    assert sorted(osd) == sorted(sd) and osd["t"] == 0 and osd["lr"] == 0.1
    assert problem(fc._checked_optimizer_state, P, r, {"optim/x.0": np.zeros(1)}, opt) == (
        "the optimizer state does not match the SGD optimizer: missing ['optim/momentum_buffer.0', "
        "'optim/momentum_buffer.1']; unexpected ['optim/x.0']")
    a = dict(arrays)
    del a["optim/momentum_buffer.1"]
    assert problem(fc._checked_optimizer_state, P, r, a, opt) == (
        "the optimizer state does not match the SGD optimizer: missing ['optim/momentum_buffer.1']")
    assert problem(fc._checked_optimizer_state, P, r, dict(arrays, **{"optim/y": np.zeros(1)}), opt) == (
        "the optimizer state does not match the SGD optimizer: unexpected ['optim/y']")
    a = dict(arrays, **{"optim/momentum_buffer.0": np.zeros((3, 2), np.float64)})
    assert problem(fc._checked_optimizer_state, P, r, a, opt) == (
        "array 'optim/momentum_buffer.0' has dtype float64, expected float32 (the dtype the metadata gives)")
    a = dict(arrays, **{"optim/momentum_buffer.0": np.zeros((2, 3), np.float32)})
    assert problem(fc._checked_optimizer_state, P, r, a, opt) == (
        "array 'optim/momentum_buffer.0' has shape (2, 3), expected (3, 2) (from the architecture the metadata "
        "describes)")
    for edit, says in [({"t": -1}, f"metadata entry optim.t must be an integer in [0, {2**53}], got -1"),
                       ({"t": COUNTER_MAX + 1}, f"metadata entry optim.t must be an integer in [0, {2**53}], got "
                                                f"{2**53 + 1}"),
                       ({"lr": -0.5}, "metadata entry optim.lr must be in [0, None], got -0.5"),
                       ({"extra": 1}, "unexpected metadata entry optim.extra")]:
        r2 = MetaReader(P, {"optim": dict(scalars, **edit)})
        assert problem(fc._checked_optimizer_state, P, r2, arrays, opt) == says
    osd = fc._checked_optimizer_state(P, MetaReader(P, {"optim": dict(scalars, t=COUNTER_MAX, lr=0)}), arrays, opt)
    assert (osd["t"], osd["lr"]) == (COUNTER_MAX, 0)


def test_optimizer_state_other_scalars():
    model = build_mlp([3, 2], seed=0)
    opt = tn.optim.Adam(model.parameters(), lr=0.1)
    opt.extra_flag = True
    sd = {"t": 1, "lr": 0.1, "betas": [0.9, 0.999]}

    class Opt:                                      # an optimizer whose state has scalars beyond t and lr
        def state_dict(self):
            return dict(sd)

    r = MetaReader(P, {"optim": {"t": 1, "lr": 0.1, "betas": [0.8, 0.99]}})
    assert fc._checked_optimizer_state(P, r, {}, Opt())["betas"] == [0.8, 0.99]
    r = MetaReader(P, {"optim": {"t": 1, "lr": 0.1, "betas": [0.8]}})
    assert problem(fc._checked_optimizer_state, P, r, {}, Opt()) == "metadata entry optim.betas has 1 items, expected 2"


def test_rng_state():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    r = MetaReader(P, {"rngs": {"s": state}}).sub("rngs")
    assert fc._checked_rng_state(r, "s", rng) == state
    bad = dict(state, bit_generator="MT19937")
    r = MetaReader(P, {"rngs": {"s": bad}}).sub("rngs")
    assert problem(fc._checked_rng_state, r, "s", rng).startswith("metadata entry rngs.s is not a valid PCG64 "
                                                                  "generator state (ValueError: ")
    r = MetaReader(P, {"rngs": {"s": {"state": 1}}}).sub("rngs")
    assert problem(fc._checked_rng_state, r, "s", rng).startswith("metadata entry rngs.s is not a valid PCG64 "
                                                                  "generator state (")
    assert rng.bit_generator.state == state                              # probed on a copy


def test_dropout_rngs():
    assert fc._dropout_rngs(None) == []
    m = build_mlp([3, 4, 4, 2], dropout=0.5, input_dropout=0.1)
    assert [n for n, _ in fc._dropout_rngs(m)] == ["model.dropout.0", "model.dropout.3", "model.dropout.6"]
    assert fc._dropout_rngs(build_mlp([3, 2])) == []


def test_probe_schedule():
    model, opt = _sgd()
    sched = tn.schedules.StepLR(opt, step_size=2, gamma=0.5)
    state = sched.state_dict()
    fc._probe_schedule(MetaReader(P, dict(state, base_lr=0.0)), sched)           # a rate of 0 is a rate
    for base, shown in ((-0.1, "-0.1"), (float("inf"), "inf")):
        assert problem(fc._probe_schedule, MetaReader(P, dict(state, base_lr=base)), sched) == (
            f"metadata entry schedule: the saved state of the StepLR schedule gives the learning rate {shown}; "
            "expected a finite number >= 0")
    assert problem(fc._probe_schedule, MetaReader(P, dict(state, step_size=0)), sched) == (
        "metadata entry schedule: the saved state of the StepLR schedule gives no learning rate (ZeroDivisionError: "
        "integer division or modulo by zero)")
    assert problem(fc._probe_schedule, MetaReader(P, dict(state, last_epoch="x")), sched).startswith(
        "metadata entry schedule: the saved state of the StepLR schedule gives no learning rate (TypeError: ")
    # the rate one step on is probed too: 1e308 * 10 ** 1 overflows to inf only at t + 1
    s2 = tn.schedules.StepLR(opt, step_size=1, gamma=10)
    assert problem(fc._probe_schedule, MetaReader(P, dict(s2.state_dict(), base_lr=1e308, last_epoch=0)), s2) == (
        "metadata entry schedule: the saved state of the StepLR schedule gives the learning rate inf; expected a "
        "finite number >= 0")
    # now (t = last_epoch) and one step on, no further: 1e302 * 10 ** 5 and ** 6 are finite, ** 7 is not
    fc._probe_schedule(MetaReader(P, dict(s2.state_dict(), base_lr=1e302, last_epoch=5)), s2)
    assert problem(fc._probe_schedule, MetaReader(P, dict(s2.state_dict(), base_lr=1e302, last_epoch=6)), s2).endswith(
        "gives the learning rate inf; expected a finite number >= 0")
    assert sched.state_dict() == state and opt.lr == 0.1                          # probed on a copy
    plateau = tn.schedules.ReduceLROnPlateau(opt)
    fc._probe_schedule(MetaReader(P, plateau.state_dict()), plateau)             # no closed form: loads, no rates


# --------------------------------------------------------------------------------------------- model files
SPEC = {"sizes": [4, 6, 3], "activation": "relu", "dropout": 0.0, "batch_norm": False, "dtype": "float32"}


def test_read_model_spec():
    assert fc.read_model_spec(MetaReader(P, SPEC)) == ([4, 6, 3], "relu", 0.0, False, np.dtype("float32"), 0.0)
    assert fc.read_model_spec(MetaReader(P, dict(SPEC, input_dropout=0.5)))[5] == 0.5
    fc.read_model_spec(MetaReader(P, dict(SPEC, sizes=[1, 1])))
    for sizes in ([4], [4, 0], [4, 2.0], [4, True], [], [4, -1]):
        assert problem(fc.read_model_spec, MetaReader(P, dict(SPEC, sizes=sizes), "spec.")) == (
            f"metadata entry spec.sizes must list at least 2 positive integers (input, ..., output), got {sizes!r}")
    assert problem(fc.read_model_spec, MetaReader(P, dict(SPEC, dropout=1.0))) == ("metadata entry dropout must be "
                                                                                   "in [0, 1), got 1.0")
    assert problem(fc.read_model_spec, MetaReader(P, dict(SPEC, input_dropout=1))) == (
        "metadata entry input_dropout must be in [0, 1), got 1")
    assert problem(fc.read_model_spec, MetaReader(P, dict(SPEC, activation="x"))).endswith(" (tinynn.ACTIVATIONS)")
    assert problem(fc.read_model_spec, MetaReader(P, dict(SPEC, dtype="int8"))) == ("metadata entry dtype is 'int8', "
                                                                                     "expected one of ['float32', "
                                                                                     "'float64']")
    assert fc.read_model_spec(MetaReader(P, dict(SPEC, dtype="float64")))[4] == np.float64


def test_model_file_plan():
    from tinynn.io import Meta

    meta = Meta({"spec": SPEC})
    meta.source = P
    ok = {"model/0.weight": H(4, 6), "model/0.bias": H(6), "model/2.weight": H(6, 3), "model/2.bias": H(3)}
    fc.model_file_plan(meta, ok)
    assert problem(fc.model_file_plan, meta, dict(ok, x=H(1), y=H(1))) == ("unexpected array(s) ['x', 'y'] in a model "
                                                                           "file")
    assert problem(fc.model_file_plan, meta, dict(ok, **{"model/0.bias": H(6, dtype="f8")})) == (
        "array 'model/0.bias' has dtype float64, expected float32 (the dtype the metadata gives)")
    bad = Meta({"spec": dict(SPEC, sizes=[4])})
    bad.source = P
    assert problem(fc.model_file_plan, bad, ok).startswith("metadata entry spec.sizes must list at least 2 ")


@pytest.mark.parametrize("bn, dropout, input_dropout", [(True, 0.0, 0.0), (False, 0.2, 0.0), (False, 0.0, 0.1),
                                                        (True, 0.3, 0.2)])
def test_model_file_plan_follows_the_spec(bn, dropout, input_dropout):
    from tinynn.io import Meta

    spec = dict(SPEC, batch_norm=bn, dropout=dropout, input_dropout=input_dropout)
    meta = Meta({"spec": spec})
    meta.source = P
    model = build_mlp(spec["sizes"], batch_norm=bn, dropout=dropout, input_dropout=input_dropout)
    headers = {f"model/{k}": H(*v.shape) for k, v in model.state_dict().items()}
    fc.model_file_plan(meta, headers)
    plain = {f"model/{k}": H(*v.shape) for k, v in build_mlp(spec["sizes"]).state_dict().items()}
    assert problem(fc.model_file_plan, meta, plain).startswith("the model's arrays do not match the architecture")


# --------------------------------------------------------------------------------------------- trainer state
def test_check_trainer_state():
    from tinynn.averaging import SWA
    from tinynn.training import Trainer

    model, opt = _sgd()
    class Stateful:                                  # a state but no check_state: nothing to check it against
        def state(self):
            return {}, {}

    t = Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=4, callbacks=[object(), SWA(1), Stateful()])
    arrays, meta = t.state()
    meta = json.loads(json.dumps(dict(meta, config={})))
    fc.check_trainer_state(P, arrays, meta, t)
    assert problem(fc.check_trainer_state, P, dict(arrays, **{"callback0/avg": np.zeros(1)}), meta, t) == (
        "unexpected array(s) in the checkpoint for this run: ['callback0/avg'] (its callbacks: ['SWA', 'Stateful'])")
    assert problem(fc.check_trainer_state, P, arrays, dict(meta, callback0={}), t) == ("unexpected metadata entry "
                                                                                        "callback0")
    assert problem(fc.check_trainer_state, P, arrays, dict(meta, callback1=dict(meta["callback1"], count=2)), t) == (
        "metadata entry callback1.count is 2, but the file holds no average (callback1/avg)")
    assert problem(fc.check_trainer_state, P, dict(arrays, **{"callback1/x": np.zeros(1)}), meta, t) == (
        "unexpected array(s) ['callback1/x'] in the state of the SWA average")
    plain = Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=4)
    a2, m2 = plain.state()
    assert problem(fc.check_trainer_state, P, dict(a2, **{"callback1/avg": np.zeros(1)}), m2, plain) == (
        "unexpected array(s) in the checkpoint for this run: ['callback1/avg'] (its callbacks: none)")
    assert problem(fc.check_trainer_state, P, a2, dict(m2, callback1={}), plain) == "unexpected metadata entry callback1"
