"""tinynn._metareader: the typed, bounded reads of a file's JSON metadata, each refusal's exact message.

The messages are part of the contract (docs/refusals.md): a refusal names the file, the entry (with its path
inside the metadata), what was expected and what came, quoted in bounded length."""
import math

import pytest

from tinynn._metareader import (COUNTER_MAX, MetaReader, _is_int, _is_number, _json_type, _listed, _names, _r)
from tinynn.errors import FileFormatError

P = "f.npz"


def problem(fn, *args, **kw):
    with pytest.raises(FileFormatError) as e:
        fn(*args, **kw)
    assert e.value.path == P
    return e.value.problem


def test_counter_max_is_exact_in_a_float64():
    assert COUNTER_MAX == 2**53 and float(COUNTER_MAX) == COUNTER_MAX and float(COUNTER_MAX + 1) == COUNTER_MAX


@pytest.mark.parametrize("v, kind", [(None, "null"), (True, "boolean"), (False, "boolean"), (3, "number"),
                                     (2.5, "number"), ("s", "string"), ([1], "array"), ({}, "object"),
                                     (b"x", "bytes")])
def test_json_type_names(v, kind):
    assert _json_type(v) == kind


@pytest.mark.parametrize("v, is_int, is_number", [(1, True, True), (0, True, True), (True, False, False),
                                                  (False, False, False), (1.0, False, True), ("1", False, False),
                                                  (None, False, False), (float("nan"), False, True)])
def test_int_and_number_exclude_booleans(v, is_int, is_number):
    assert _is_int(v) is is_int and _is_number(v) is is_number


def test_names_lists_the_first_eight_sorted_then_a_count():
    assert _names({"b": 1, "a": 2}) == ["a", "b"]
    eight = [f"n{i}" for i in range(8)]
    assert _names(eight) == eight
    nine = [f"n{i}" for i in range(9)]
    assert _names(nine) == eight + ["... (1 more)"]
    assert _names(nine, 3) == ["n0", "n1", "n2", "... (6 more)"]
    long = "x" * 100
    assert _names([long]) == [long[:8] + "... (92 more characters)"]          # short(.., 40): 40-32 kept
    assert _names(["y" * 40]) == ["y" * 40]


def test_listed_is_a_list_when_few_else_a_count():
    assert _listed(["b", "a"]) == "['a', 'b']"
    assert _listed(["b", "a"], "model/") == "['model/a', 'model/b']"
    eight = [f"n{i}" for i in range(8)]
    assert _listed(eight) == str(eight)
    nine = [f"n{i}" for i in range(9)]
    assert _listed(nine) == f"9 names: {eight} and 1 more"
    assert _listed(nine, first=2) == "9 names: ['n0', 'n1'] and 7 more"
    assert _listed(["z" * 48]) == str(["z" * 48])
    assert _listed(["z" * 49]) == str(["z" * 16 + "... (33 more characters)"])      # short(.., 48)


def test_r_bounds_what_it_quotes():
    assert _r("abc") == "'abc'"
    assert len(_r("a" * 1000)) == 60                             # maxstring: 60 characters of the repr
    assert _r(list(range(100))) == "[0, 1, 2, 3, 4, 5, ...]"     # maxlist 6
    assert _r({i: 0 for i in range(10)}) == "{0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, ...}"    # maxdict 6
    assert _r([[[[1]]]]) == "[[[[...]]]]"                        # maxlevel 3
    assert _r([[[1]]]) == "[[[1]]]"
    assert len(_r(10**100)) == 40                                # maxlong
    assert len(_r(object.__new__(type("T" * 100, (), {})))) == 60    # maxother
    big = ["q" * 100] * 3                         # each string cut to 60 characters, the whole to 80
    elem = "'" + "q" * 27 + "..." + "q" * 28 + "'"
    full = "[" + ", ".join([elem] * 3) + "]"
    assert len(elem) == 60
    assert _r(big) == full[:48] + f"... ({len(full) - 48} more characters)"
    assert _r(big, limit=200) == full


# --------------------------------------------------------------------------------------------- the reader
def test_metadata_that_is_not_an_object():
    assert problem(MetaReader, P, [1]) == "metadata entry the metadata is a JSON array, expected a JSON object"
    assert problem(MetaReader, P, "x", "params.") == ("metadata entry params is a JSON string, expected a JSON "
                                                      "object")
    assert problem(MetaReader, P, None, "rngs.MAX.") == ("metadata entry rngs.MAX is a JSON null, expected a JSON "
                                                         "object")            # only the final '.' is stripped


def test_name_and_missing():
    r = MetaReader(P, {"a": {"b": 1}})
    assert r.name("k") == "metadata entry k"
    s = r.sub("a")
    assert s.name("b") == "metadata entry a.b" and s.where == "a." and s.path == P
    assert problem(s.raw, "c") == "metadata entry a.c is missing"
    assert s.raw("c", default=7) == 7 and s.raw("b") == 1
    assert s.has("b") and not s.has("c")
    assert MetaReader(P, {}).name("k" * 100) == "metadata entry " + "k" * 28 + "... (72 more characters)"
    assert MetaReader(P, {}, "w" * 100).name("k") == "metadata entry " + "w" * 48 + "... (52 more characters)k"


def test_sub_refuses_a_non_object_and_allows_null_only_when_asked():
    r = MetaReader(P, {"a": [1], "n": None})
    assert problem(r.sub, "a") == "metadata entry a must be a JSON object, got [1] (a JSON array)"
    assert problem(r.sub, "n") == "metadata entry n must be a JSON object, got None (a JSON null)"
    assert problem(r.sub, "a", null=True) == "metadata entry a must be a JSON object or null, got [1] (a JSON array)"
    assert r.sub("n", null=True) is None
    assert problem(r.sub, "m") == "metadata entry m is missing"


@pytest.mark.parametrize("v, lo, hi, ok", [(0, 0, 5, True), (5, 0, 5, True), (-1, 0, 5, False), (6, 0, 5, False),
                                           (-10**9, None, 5, True), (10**9, 0, None, True)])
def test_int_bounds_are_inclusive(v, lo, hi, ok):
    r = MetaReader(P, {"k": v})
    if ok:
        assert r.int("k", lo=lo, hi=hi) == v
    else:
        assert problem(r.int, "k", lo=lo, hi=hi) == f"metadata entry k must be an integer in [0, 5], got {v}"


def test_int_messages():
    r = MetaReader(P, {"b": True, "f": 1.0, "s": "1", "n": None, "big": -3, "top": 9})
    assert problem(r.int, "b") == "metadata entry b must be an integer, got True (a JSON boolean)"
    assert problem(r.int, "f") == "metadata entry f must be an integer, got 1.0 (a JSON number)"
    assert problem(r.int, "s") == "metadata entry s must be an integer, got '1' (a JSON string)"
    assert problem(r.int, "n") == "metadata entry n must be an integer, got None (a JSON null)"
    assert problem(r.int, "s", null=True) == "metadata entry s must be an integer or null, got '1' (a JSON string)"
    assert r.int("n", null=True) is None
    assert problem(r.int, "big", lo=0) == "metadata entry big must be an integer in [0, inf], got -3"
    assert problem(r.int, "top", hi=2) == "metadata entry top must be an integer in [-inf, 2], got 9"
    assert r.int("absent", default=4) == 4
    assert r.int("absent", default=None) is None                # an absent entry with default None
    assert problem(r.int, "n", default=None) == "metadata entry n must be an integer, got None (a JSON null)"
    assert problem(r.int, "absent") == "metadata entry absent is missing"


@pytest.mark.parametrize("v, kw, ok", [(0, dict(lo=0), True), (-1e-9, dict(lo=0), False), (1, dict(hi=1), True),
                                       (1.0000001, dict(hi=1), False), (1, dict(hi=1, hi_open=True), False),
                                       (0.999, dict(hi=1, hi_open=True), True)])
def test_number_bounds(v, kw, ok):
    r = MetaReader(P, {"k": v})
    if ok:
        assert r.number("k", **kw) == v
    else:
        lo, hi = kw.get("lo"), kw.get("hi")
        assert problem(r.number, "k", **kw) == (f"metadata entry k must be in [{lo}, {hi}"
                                                f"{')' if kw.get('hi_open') else ']'}, got {v!r}")


def test_number_non_finite():
    r = MetaReader(P, {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "s": "x", "n": None})
    for k, shown in (("nan", "nan"), ("inf", "inf"), ("ninf", "-inf")):
        assert problem(r.number, k) == f"metadata entry {k} must be a finite number, got {shown}"
    assert problem(r.number, "nan", finite=False) == "metadata entry nan must be a finite number, got nan"
    assert math.isnan(r.number("nan", nan=True))
    assert math.isnan(r.number("nan", nan=True, finite=True, lo=0))       # nan allowed: no range check
    assert r.number("inf", finite=False) == math.inf
    assert problem(r.number, "inf", finite=False, hi=5) == "metadata entry inf must be in [None, 5], got inf"
    assert problem(r.number, "inf", nan=True) == "metadata entry inf must be a finite number, got inf"
    assert problem(r.number, "s") == "metadata entry s must be a number, got 'x' (a JSON string)"
    assert r.number("n", null=True) is None
    assert r.number("absent", default=0.5) == 0.5
    assert problem(r.number, "n") == "metadata entry n must be a number, got None (a JSON null)"


def test_bool_str_list():
    r = MetaReader(P, {"b": 1, "t": True, "s": 3, "c": "relu", "l": {}, "n": None})
    assert problem(r.bool, "b") == "metadata entry b must be true or false, got 1 (a JSON number)"
    assert r.bool("t") is True and r.bool("n", null=True) is None and r.bool("absent", default=False) is False
    assert problem(r.str, "s") == "metadata entry s must be a string, got 3 (a JSON number)"
    assert r.str("c", ("relu", "tanh")) == "relu" and r.str("c") == "relu"
    assert problem(r.str, "c", ("tanh", "a")) == "metadata entry c is 'relu', expected one of ['a', 'tanh']"
    assert problem(r.str, "c", ("tanh",), table=" (T)") == "metadata entry c is 'relu', expected one of ['tanh'] (T)"
    many = [f"c{i:02d}" for i in range(30)]
    assert problem(r.str, "c", many) == f"metadata entry c is 'relu', expected one of {many[:24] + ['... (6 more)']}"
    assert r.str("n", ("x",), null=True) is None and r.str("absent", default="d") == "d"
    assert problem(r.list, "l") == "metadata entry l must be a JSON array, got {} (a JSON object)"
    assert r.list("n", null=True) is None and r.list("absent", default=[]) == []


def test_numbers():
    r = MetaReader(P, {"c": [1, 2.5, math.nan, math.inf], "ok": [1, 2.5], "b": [1, True], "n": None})
    assert r.numbers("ok") == [1, 2.5]
    assert problem(r.numbers, "c") == "metadata entry c[2] must be a finite number, got nan"
    assert problem(r.numbers, "c", finite=False) == "metadata entry c[2] must be a number, got nan"
    assert problem(r.numbers, "c", nan=True) == "metadata entry c[2] must be a finite number, got nan"
    assert r.numbers("c", finite=False, nan=True)[:2] == [1, 2.5]
    assert problem(MetaReader(P, {"c": [0, math.inf]}).numbers, "c", nan=True) == ("metadata entry c[1] must be a "
                                                                                  "finite number, got inf")
    assert problem(r.numbers, "b") == "metadata entry b[1] must be a finite number, got True"
    assert r.numbers("n", null=True) is None
    assert problem(r.numbers, "n") == "metadata entry n must be a JSON array, got None (a JSON null)"


def test_only():
    r = MetaReader(P, {"a": 1, "b": 2, "c": 3}, "w.")
    r.only(("a", "b", "c", "d"))
    assert problem(r.only, ("a", "b")) == "unexpected metadata entry w.c"
    assert problem(r.only, ("a",)) == "unexpected metadata entries: ['w.b', 'w.c']"
    assert problem(MetaReader(P, {"x" * 100: 1}).only, ()) == ("unexpected metadata entry " + "x" * 48
                                                               + "... (52 more characters)")
