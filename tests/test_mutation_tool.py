"""scripts/mutation.py, the mutation-testing command of issue 30 (its full runs take hours; docs/testing.md has
the last report): a small real run through mutmut on one kernel module, and its refusals.

The small run checks what the script adds to mutmut: the Numba kernels are mutated (mutmut leaves decorated
functions alone; ``@kernel`` ones are let through and run uncompiled), the copy in the installed layout imports
the mutants (not the installed tinynn), and the report has the module's counts and each survivor's diff.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "mutation.py"

try:
    import mutmut  # noqa: F401
    WHY = None
except ImportError:
    WHY = "mutmut is not installed (the [mutation] extra)"
needs_mutmut = pytest.mark.skipif(WHY is not None and not os.environ.get("CI"), reason=WHY or "")


def run(*args, timeout=600):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


@pytest.mark.slow
@needs_mutmut
def test_a_kernel_module_is_mutated_and_reported(tmp_path):
    out = tmp_path / "m"
    p = run("--out", str(out), "--suite", "cpu", "--only", "kernels/cpu/reduce.py", "--tests", "test_kinks.py",
            "--max-children", "1")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r = json.loads((out / "report.json").read_text())
    (row,) = r["modules"]
    assert row["module"] == "kernels/cpu/reduce.py" and row["suite"] == "cpu"
    assert row["mutants"] >= 30 and 0 < row["killed"] < row["mutants"]
    assert sum(row.get(k, 0) for k in ("killed", "survived", "no tests", "timeout", "other", "equivalent",
                                       "not checked")) == row["mutants"]
    assert row.get("not checked", 0) == 0                  # a finished run checked every mutant
    names = {s["name"] for s in r["survivors"]}
    # the decorated kernels themselves were mutated (x__sum_rows is the @kernel _sum_rows)
    assert any(".x__sum_rows__mutmut_" in n for n in names), sorted(names)[:10]
    assert all(s["diff"].count("\n-") + s["diff"].startswith("-") >= 1 for s in r["survivors"])
    text = (out / "report.md").read_text()
    assert "| `kernels/cpu/reduce.py` | cpu |" in text and "## Mutants not killed" in text
    # the same run merged into a new report (--from): the same row, with the commit it was measured on
    p = run("--out", str(tmp_path / "merged"), "--from", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert merged["modules"] == r["modules"] and r["modules"][0]["commit"]


def test_refusals(tmp_path):
    (tmp_path / "old").mkdir()
    p = run("--out", str(tmp_path / "old"))
    assert p.returncode == 2 and "exists: give a new folder" in p.stderr
    p = run("--out", str(tmp_path / "new"), "--suite", "core,gpu")
    assert p.returncode == 2 and "unknown ['gpu']" in p.stderr
    assert not (tmp_path / "new").exists()
    p = run("--out", str(tmp_path / "new"), "--from", str(tmp_path / "old"))
    assert p.returncode == 2 and "no suite folders" in p.stderr


@needs_mutmut
def test_mutmut_timeouts_signal_only_its_own_children():
    """mutmut 3.8.1's timeout thread kills expired mutants by process id, ended or not; the script's patch lets
    it signal its children only (a reused id can be any process: pid 1 here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mutation_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.patch_mutmut()
    from mutmut.workers import timeout

    with pytest.raises(ProcessLookupError):
        timeout.os.kill(1, 0)
    child = subprocess.Popen(["sleep", "30"])
    timeout.os.kill(child.pid, 15)
    assert child.wait(timeout=10) == -15


@needs_mutmut
def test_a_mutant_killed_inside_a_progress_bar_blocks_no_later_mutant():
    """tqdm's default lock includes a multiprocessing semaphore shared by every process forked after it; a
    mutant killed while it held it (a timeout) left it taken for all later ones. After the patch a process
    forked like a mutant, dying inside the lock, blocks nobody."""
    import importlib.util
    import multiprocessing

    from tqdm import tqdm

    spec = importlib.util.spec_from_file_location("mutation_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.patch_mutmut()
    ctx = multiprocessing.get_context("fork")
    tqdm.get_lock()                               # made in the parent, as mutmut's stats run (tests drawing bars) does

    def die_holding_the_lock():
        tqdm.get_lock().acquire()
        os._exit(0)

    def draw_a_bar():
        for _ in tqdm(range(3), disable=False, file=open(os.devnull, "w")):
            pass
        os._exit(7)

    first = ctx.Process(target=die_holding_the_lock)
    first.start()
    first.join(10)
    second = ctx.Process(target=draw_a_bar)
    second.start()
    second.join(20)
    if second.exitcode is None:
        second.kill()
    assert first.exitcode == 0 and second.exitcode == 7


@needs_mutmut
def test_a_merged_module_counts_from_the_run_that_checked_most_of_it(tmp_path):
    """--from: a later run that stopped early does not hide an earlier complete one; of equally complete runs
    the last given counts."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mutation_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def run_folder(name, codes, commit, source_hash="h1"):
        work = tmp_path / name / "core"
        meta = work / "mutants" / "tinynn" / "schedules.py.meta"
        meta.parent.mkdir(parents=True)
        meta.write_text(json.dumps({"exit_code_by_key": {f"tinynn.schedules.x_f__mutmut_{i}": c
                                                          for i, c in enumerate(codes)},
                                    "hash_by_function_name": {"x_f": source_hash}}))
        (work / "tinynn-run.json").write_text(json.dumps({"commit": commit}))
        return ("core", work)

    complete = run_folder("a", [1, 1, 1, 1], "aaa")
    stopped = run_folder("b", [1, None, None, None], "bbb")
    again = run_folder("c", [1, 1, 1, 1], "ccc")
    mod.report(tmp_path / "r1", [complete, stopped], 0)
    (row,) = json.loads((tmp_path / "r1" / "report.json").read_text())["modules"]
    assert row["commit"] == "aaa" and row["killed"] == 4
    mod.report(tmp_path / "r2", [complete, stopped, again], 0)
    (row,) = json.loads((tmp_path / "r2" / "report.json").read_text())["modules"]
    assert row["commit"] == "ccc"
    # a mutant the chosen run left unchecked counts as killed where another run killed it in the same source
    mod.report(tmp_path / "r3", [run_folder("d", [1, 1, 1, None], "ddd"), run_folder("e", [None, None, None, 1], "eee")], 0)
    (row,) = json.loads((tmp_path / "r3" / "report.json").read_text())["modules"]
    assert (row["commit"], row["killed"], row["killed elsewhere"], row["mutants"]) == ("ddd", 4, 1, 4)
    mod.report(tmp_path / "r4", [run_folder("f", [1, 1, 1, None], "fff"),
                                 run_folder("g", [None, None, None, 1], "ggg", source_hash="changed")], 0)
    (row,) = json.loads((tmp_path / "r4" / "report.json").read_text())["modules"]
    assert (row["killed"], row.get("killed elsewhere", 0), row["not checked"]) == (3, 0, 1)
    # a mutant listed as equivalent that a test kills is counted as killed and named for removal
    listed = tmp_path / "equivalent"
    listed.mkdir()
    (listed / "x.txt").write_text("tinynn.schedules.x_f__mutmut_0  # thought equivalent\n"
                                  "tinynn.schedules.x_f__mutmut_3  # really equivalent\n")
    mod.EQUIVALENT = listed
    mod.report(tmp_path / "r5", [run_folder("h", [1, 1, 1, None], "hhh")], 0)
    (row,) = json.loads((tmp_path / "r5" / "report.json").read_text())["modules"]
    assert (row["killed"], row["equivalent"]) == (3, 1)
    text = (tmp_path / "r5" / "report.md").read_text()
    assert "## Listed as equivalent but killed" in text and "`tinynn.schedules.x_f__mutmut_0`" in text


@needs_mutmut
def test_complete_reports_every_current_mutant_from_runs_on_identical_source(tmp_path):
    """--complete: a verdict counts only where the run's function source is the current one (mutmut's hash); a
    kill by any such run is a kill, a carried kill run again (--recheck) counts as that run found it, and what
    no run checked is seeded as "not checked" so that mutmut runs only that."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mutation_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.EQUIVALENT = tmp_path / "no-equivalents"
    mod.diff = lambda work, path, name: f"- {work.parent.name}"

    def run_folder(name, codes, hashes, commit, rechecked=(), carried=()):
        work = tmp_path / name / "core"
        meta = work / "mutants" / "tinynn" / "schedules.py.meta"
        meta.parent.mkdir(parents=True)
        meta.write_text(json.dumps({"exit_code_by_key": {f"tinynn.schedules.x_{f}__mutmut_{i}": c
                                                          for f, cs in codes.items() for i, c in enumerate(cs)},
                                    "hash_by_function_name": {f"x_{f}": h for f, h in hashes.items()}}))
        (work / "tinynn-run.json").write_text(json.dumps({"commit": commit}))
        (work / "tinynn-recheck.json").write_text(json.dumps(list(rechecked)))
        (work / "tinynn-carried.json").write_text(json.dumps(list(carried)))
        return ("core", work)

    current = {"tinynn/schedules.py": {**{f"tinynn.schedules.x_f__mutmut_{i}": "F" for i in range(3)},
                                       **{f"tinynn.schedules.x_g__mutmut_{i}": "G" for i in range(2)}}}
    old = run_folder("old", {"f": [1, 0, 0], "g": [1, 1]}, {"f": "F", "g": "G-before"}, "aaa")
    other = run_folder("other", {"f": [0, 1, None], "g": [None, None]}, {"f": "F", "g": "G"}, "bbb")
    v = mod.consolidate([old, other], current)["tinynn/schedules.py"]
    assert [v[f"tinynn.schedules.x_f__mutmut_{i}"][0] for i in range(3)] == ["killed", "killed", "survived"]
    assert v["tinynn.schedules.x_f__mutmut_2"][2] == old[1]              # the survivor's verdict and its run
    assert {v[f"tinynn.schedules.x_g__mutmut_{i}"][0] for i in range(2)} == {"not checked"}   # g changed since
    # seeding: kept verdicts as exit codes, the rest None, the current hashes (mutmut keeps unchanged functions)
    work = tmp_path / "new" / "core"
    todo, again = mod.seed(work, ["tinynn/schedules.py"], current, {"tinynn/schedules.py": v}, recheck=1)
    meta = json.loads((work / "mutants" / "tinynn" / "schedules.py.meta").read_text())
    assert meta["hash_by_function_name"] == {"x_f": "F", "x_g": "G"}
    assert sorted(meta["exit_code_by_key"].values(), key=str) == sorted([0, None, None, None, 1], key=str)
    assert todo == 3 and len(again) == 1 and meta["exit_code_by_key"][again[0]] is None
    assert json.loads((work / "tinynn-recheck.json").read_text()) == again
    assert json.loads((work / "tinynn-carried.json").read_text()) == sorted(
        n for n, c in meta["exit_code_by_key"].items() if c is not None)
    # --rerun-survivors: the survivor runs again too
    todo, _ = mod.seed(tmp_path / "again" / "core", ["tinynn/schedules.py"], current, {"tinynn/schedules.py": v},
                       rerun_survivors=True)
    meta = json.loads((tmp_path / "again" / "core" / "mutants" / "tinynn" / "schedules.py.meta").read_text())
    assert todo == 3 and meta["exit_code_by_key"]["tinynn.schedules.x_f__mutmut_2"] is None
    assert meta["exit_code_by_key"]["tinynn.schedules.x_f__mutmut_0"] == 1
    mod.EQUIVALENT.mkdir()                                  # ... but not a survivor listed as equivalent
    (mod.EQUIVALENT / "x.txt").write_text("tinynn.schedules.x_f__mutmut_2  # the same on every input\n")
    todo, _ = mod.seed(tmp_path / "eq" / "core", ["tinynn/schedules.py"], current, {"tinynn/schedules.py": v},
                       rerun_survivors=True)
    assert todo == 2
    (mod.EQUIVALENT / "x.txt").unlink()
    # a recheck that survived overrides the carried kill; the report says so
    recheck = run_folder("recheck", {"f": [0, 1, 0], "g": [1, 0]}, {"f": "F", "g": "G"}, "ccc",
                         rechecked=["tinynn.schedules.x_f__mutmut_0"],          # carried: counted where found
                         carried=["tinynn.schedules.x_f__mutmut_1", "tinynn.schedules.x_f__mutmut_2"])
    mod.report(tmp_path / "r", [old, other, recheck], 0, current)
    r = json.loads((tmp_path / "r" / "report.json").read_text())
    (row,) = r["modules"]
    assert (row["mutants"], row["killed"], row["survived"], row.get("not checked", 0)) == (5, 2, 3, 0)
    assert row["commit"] == "aaa, bbb, ccc"
    assert {s["name"]: s["diff"] for s in r["survivors"]} == {"tinynn.schedules.x_f__mutmut_0": "- recheck",
                                                              "tinynn.schedules.x_f__mutmut_2": "- old",
                                                              "tinynn.schedules.x_g__mutmut_1": "- recheck"}
    assert "killed again (`--recheck`): 0 of 1 in the core suite at ccc (not: `tinynn.schedules.x_f__mutmut_0`)" \
        in (tmp_path / "r" / "report.md").read_text()
    # a run given after the recheck that kills it (a wider test selection) decides again
    wider = run_folder("wider", {"f": [1, None, None], "g": [None, None]}, {"f": "F", "g": "G"}, "ddd")
    v = mod.consolidate([old, other, recheck, wider], current)["tinynn/schedules.py"]
    assert v["tinynn.schedules.x_f__mutmut_0"][:3] == ("killed", 1, wider[1])
    v = mod.consolidate([wider, recheck], current)["tinynn/schedules.py"]        # given before it: void
    assert v["tinynn.schedules.x_f__mutmut_0"][0] == "survived"


FORK_AFTER_KERNEL = """
import os, numpy as np
from numba import njit, prange
@njit(parallel=True)
def total(a):
    s = 0.0
    for i in prange(a.shape[0]):
        s += a[i]
    return s
total(np.ones(1000))
pid = os.fork()
if pid == 0:
    total(np.ones(1000))
    os._exit(0)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@pytest.mark.parametrize("suite", ["core", "cuda"])
def test_a_suite_forks_mutants_safely_after_parallel_kernels(suite):
    """mutmut forks each mutant's test run from a process that ran parallel kernels; under GNU OpenMP (Numba's
    default layer where libgomp is found) the child's first parallel kernel killed it with SIGTERM, and the
    mutant was reported "suspicious". Each suite's environment picks a fork-safe layer."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mutation_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    env = {**os.environ, **mod.SUITES[suite]["env"]}
    p = subprocess.run([sys.executable, "-c", FORK_AFTER_KERNEL], capture_output=True, text=True, env=env,
                       timeout=300, cwd=ROOT)
    assert p.returncode == 0 and p.stdout.strip() == "0", (p.stdout, p.stderr[-2000:])
