#!/usr/bin/env python
"""Mutation testing of tinynn's core with mutmut: which small planted bugs do the tests catch?

mutmut makes every small change of one kind (an operator, a comparison, a constant, a keyword argument, a
string) to each function of the core, one at a time, and runs the tests that call that function; a mutant is
*killed* when a test fails. The score of a module is killed / (mutants - equivalent): an *equivalent* mutant
changes no behaviour (listed with its reason in ``scripts/mutation_equivalent/*.txt``). One command runs it and
writes the report (per-module scores, then every surviving mutant as a diff)::

    .venv/bin/python scripts/mutation.py --out runs/mutation            (every suite: hours on 2 cores)
    .venv/bin/python scripts/mutation.py --out runs/mutation-sched --only tinynn/schedules.py
    .venv/bin/python scripts/mutation.py --out runs/mutation-now --complete runs/mutation runs/mutation-sched

(``--complete``: a report of every mutant of the current source from earlier runs on identical function
source, running only the mutants none of them checked; see docs/testing.md.)

The last committed report is docs/mutation.md. Needs the [mutation] extra (mutmut). Three suites, because the
kernels cannot be mutated where they are compiled:

- ``core`` - tinynn's layers, losses, optimizers, schedules, training loop, estimators, files and data
  parallelism, the NumPy reference kernels and the dispatch, with the Numba kernels compiled as usual;
- ``cpu`` - the Numba kernels, run as Python (``NUMBA_DISABLE_JIT=1``: the same code, uncompiled), against
  the kernel, layer and optimizer tests;
- ``cuda`` - the CUDA kernels on the simulator (``NUMBA_ENABLE_CUDASIM=1``), against the GPU tests.

mutmut leaves decorated functions alone (a decorator runs at import); here the kernel decorators
(``@kernel``, ``@inline``, ``@kernel(signatures...)``, ``cuda.jit``) are let through, since uncompiled they
only wrap the function. Each suite runs in its own copy of the tracked files under ``--out`` (the working
tree is never touched), with ``kernels/`` copied to ``tinynn/kernels`` as it is installed.
"""
import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "scripts" / "mutation_equivalent"     # *.txt: ``mutant name  # why it is equivalent``

# Tests that cannot take part: they scan the source (a mutated copy breaks every size rule), start other
# processes (which import the installed tinynn, not the mutant), or time or download things.
NOT_IN_PROCESS = ["test_architecture.py", "test_conventions.py", "test_docs_examples.py", "test_benchmarks.py",
                  "test_scripts.py", "test_parallel_mpi.py", "test_faults_mpi.py", "test_faults.py", "test_dask.py",
                  "test_dask_recipe.py", "test_hostile_files.py", "test_kernel_cache.py", "test_jit_cache.py",
                  "test_packaging.py", "test_cuda_compile.py", "test_download.py", "test_sklearn_suite.py",
                  "test_reliability.py", "test_parallel_cuda_mpi.py", "test_fork_safety.py"]

CORE = ["tinynn/layers/*", "tinynn/losses.py", "tinynn/optim.py", "tinynn/_optimizer.py", "tinynn/schedules.py",
        "tinynn/training.py", "tinynn/batches.py", "tinynn/estimator/*", "tinynn/io.py", "tinynn/_filecheck.py",
        "tinynn/_archive.py", "tinynn/_metareader.py", "tinynn/parallel/data.py",
        "kernels/reference/*", "kernels/dispatch.py"]
KERNEL_TESTS = ["test_kernels.py", "test_kinks.py", "test_optim.py", "test_optim_backends.py", "test_layers.py",
                "test_holes.py", "test_custom_layers.py", "test_augment.py", "test_sparse.py", "test_l1.py",
                "test_cpu_kernel_edges.py"]

# mutmut forks every mutant's test run from a process that has run parallel kernels already; Numba's default
# threading layer here is GNU OpenMP, which is not fork-safe: a forked child's first parallel kernel sends
# itself SIGTERM ("Terminating: fork() called from a process already using GNU OpenMP"), so a mutant whose tests
# reach one was reported "suspicious" instead of killed or survived. workqueue is fork-safe.
FORK_SAFE = {"NUMBA_THREADING_LAYER": "workqueue"}
SUITES = {
    "core": dict(mutate=CORE, env=FORK_SAFE, tests=None, args=["-m", "not slow and not gpu"]),
    "cpu": dict(mutate=["kernels/cpu/*"], env={"NUMBA_DISABLE_JIT": "1", **FORK_SAFE}, tests=KERNEL_TESTS,
                args=["-m", "not slow and not gpu"]),
    "cuda": dict(mutate=["kernels/cuda/*"],
                 env={"NUMBA_ENABLE_CUDASIM": "1", "HYPOTHESIS_PROFILE": "cudasim", **FORK_SAFE},
                 tests=None,                  # every file: the gpu marker picks the tests (a list left some out)
                 args=["-m", "gpu and not slow"]),
}
# Tooling around the kernels, not arithmetic, tested by their own files: the compile check, the launch
# declarations, the Numba cache guard, device memory, and the CUDA backend's registration (it runs once per
# process, before any mutant is active: every mutant of it would survive unseen).
NOT_MUTATED = ["kernels/cuda/compile.py", "kernels/cuda/launch.py", "kernels/cpu/_jit.py",
               "kernels/cuda/memory.py", "kernels/cuda/__init__.py"]
KERNEL_DECORATORS = {"kernel", "inline", "jit"}   # @kernel, @inline, @kernel("sig", ...), @cuda.jit(...)


def installed_path(path):
    """Where a repository file lives in the installed layout (kernels/ is tinynn.kernels)."""
    return "tinynn/" + path if path.startswith("kernels/") else path


def repo_path(path):
    return path[len("tinynn/"):] if path.startswith("tinynn/kernels/") else path


def prepare(suite, work, only, tests=None):
    """Copy the tracked files to ``work`` in the installed layout and append the suite's mutmut settings."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            dest = work / installed_path(f)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest)
    spec = SUITES[suite]
    patterns = [o for o in only if any(fnmatch.fnmatch(o, p) for p in spec["mutate"])] if only else spec["mutate"]
    patterns = [installed_path(p) for p in patterns]
    if not patterns:
        return False
    tests = tests or spec["tests"] or sorted(p.name for p in (ROOT / "tests").glob("test_*.py") if p.name not in NOT_IN_PROCESS)
    lines = ["", "[mutmut]", "source_paths = tinynn/", "only_mutate ="] + [f"    {p}" for p in patterns]
    lines += ["do_not_mutate ="] + [f"    {installed_path(p)}" for p in NOT_MUTATED]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    tests/{t}" for t in tests]
    lines += ["pytest_add_cli_args ="] + [f"    {a}" for a in spec["args"] + ["-p", "no:cacheprovider"]]
    lines += ["also_copy ="] + [f"    {p}" for p in ("docs/", "README.md", "scripts/", "benchmarks/", "mkdocs.yml")]
    lines += ["timeout_multiplier = 10.0", "timeout_constant = 5.0"]
    from tinynn._write import atomic_open        # here, not at the top: see report()
    text = (work / "setup.cfg").read_text(encoding="utf-8")
    with atomic_open(work / "setup.cfg", "w") as f:
        f.write(text + "\n".join(lines) + "\n")
    return True


def patch_mutmut():
    """Let mutmut mutate the kernels (see the module docstring) and the CUDA simulator run their trampolines."""
    import inspect
    let_kernels_through()

    # mutmut 3.8.1's timeout thread sends SIGXCPU to the process id of every mutant whose deadline passes, ended
    # or not: after the ids wrap (32768 here) that can be any process of the machine (it killed test runs and
    # mpiexec jobs beside these runs). Only a process that is still this one's child is signalled.
    from mutmut.workers import timeout

    class _ChildrenOnly:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def kill(pid, sig):
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                raise ProcessLookupError(pid) from None
            if parent != os.getpid():
                raise ProcessLookupError(pid)
            os.kill(pid, sig)

    timeout.os = _ChildrenOnly()
    # tqdm's write lock includes a multiprocessing RLock, a semaphore shared by every process forked after it
    # was made: a mutant killed at its deadline while a progress bar held it left it locked, and every later
    # mutant that drew a bar waited on it forever (timeouts by the hundred). Each process keeps its own thread
    # lock only, and no monitor thread is started to be forked mid-lock.
    from tqdm import std as tqdm_std
    tqdm_std.TqdmDefaultWriteLock.mp_lock = None
    tqdm_std.tqdm.set_lock(tqdm_std.TqdmDefaultWriteLock())
    tqdm_std.tqdm.monitor_interval = 0
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        # the simulator swaps its per-thread `cuda` into the kernel function's module: for a trampoline (a
        # wrapper from mutmut's module) that is the module of the function it wraps
        from numba.cuda.simulator import kernel, kernelapi
        swap = kernelapi.swapped_cuda_module

        def swapped(fn, fake):
            return swap(inspect.unwrap(fn), fake)

        kernelapi.swapped_cuda_module = kernel.swapped_cuda_module = swapped


def let_kernels_through():
    """mutmut skips decorated functions: the kernel decorators are let through (idempotent)."""
    import libcst as cst
    from mutmut.mutation import file_mutation

    def decorator_name(d):
        node = d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator
        return node.attr.value if isinstance(node, cst.Attribute) else getattr(node, "value", None)

    skip = file_mutation.MutationVisitor._skip_node_and_children

    def skip_unless_kernel(self, node):
        if isinstance(node, cst.FunctionDef) and node.decorators \
                and all(decorator_name(d) in KERNEL_DECORATORS for d in node.decorators):
            return skip(self, node.with_changes(decorators=[]))
        return skip(self, node)

    if getattr(file_mutation.MutationVisitor._skip_node_and_children, "tinynn", False):
        return
    file_mutation.MutationVisitor._skip_node_and_children = skip_unless_kernel
    skip_unless_kernel.tinynn = True


def equivalents():
    """{mutant name: reason} from scripts/mutation_equivalent/*.txt (``name  # reason`` per line)."""
    out = {}
    for path in sorted(EQUIVALENT.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, reason = line.partition("#")
                out[name.strip()] = reason.strip()
    return out


def collect(work, hashes=None):
    """[(module path, mutant name, status)] from mutmut's result files in ``work``; ``hashes`` (a dict) gets
    {mutant name: hash of its function's source} (mutmut's per-function hash)."""
    from mutmut.stats import status_by_exit_code
    rows = []
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        path = repo_path(str(meta.relative_to(work / "mutants"))[:-len(".meta")])
        if path in NOT_MUTATED:                       # measured by a run made before it was left out
            continue
        data = json.loads(meta.read_text(encoding="utf-8"))
        for name, code in data["exit_code_by_key"].items():
            rows.append((path, name, status_by_exit_code[code]))
            if hashes is not None:
                hashes[name] = data.get("hash_by_function_name", {}).get(name.rpartition(".")[2].split("__mutmut_")[0])
    return rows


def suite_paths(suite, only=()):
    """The repository paths of the suite's modules (those of ``only`` where given)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    spec = SUITES[suite]["mutate"]
    return [f for f in files if f.endswith(".py") and f not in NOT_MUTATED and any(fnmatch.fnmatch(f, p) for p in spec)
            and (not only or any(fnmatch.fnmatch(f, o) for o in only))]


def current_mutants(work, paths):
    """{module path: {mutant name: hash of its function's source}} of the source in ``work`` (a suite's copy,
    whose setup.cfg has the mutmut settings), as mutmut will generate them there."""
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name
    let_kernels_through()
    here, out = os.getcwd(), {}
    os.chdir(work)
    try:
        for path in paths:
            ip = installed_path(path)
            mf = mutate_file_contents(ip, Path(ip).read_text(encoding="utf-8"))
            if mf.mutant_names:
                out[path] = {get_mutant_name(Path(ip), n): mf.hash_by_function_name[n.partition("__mutmut_")[0]]
                             for n in mf.mutant_names}
    finally:
        os.chdir(here)
    return out


def listed_in(work, what):
    """The mutants a --complete run in ``work`` ran again ("recheck") or took from other runs ("carried")."""
    path = work / f"tinynn-{what}.json"
    return set(json.loads(path.read_text())) if path.exists() else set()


def consolidate(works, current):
    """{module path: {mutant name: (status, exit code, work, rechecked)}} for every mutant of ``current`` (see
    current_mutants), each verdict from a run whose function source is identical (mutmut's per-function hash):
    killed where any run killed it (every run's tests are tests CI runs), else the last given run that checked
    it, else not checked; a run that ran a carried kill again (--recheck) voids the verdicts of the runs given
    before it."""
    found = {}                                            # (name, hash) -> [(status, code, work, rechecked)]
    for _, work in works:
        hashes, codes, again, carried = {}, {}, listed_in(work, "recheck"), listed_in(work, "carried")
        for meta in (work / "mutants").rglob("*.py.meta"):
            codes.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
        for _, name, status in collect(work, hashes):
            if status != "not checked" and name not in carried:     # a carried verdict counts where it was found
                found.setdefault((name, hashes[name]), []).append((status, codes[name], work, name in again))
    out = {}
    for path, mutants in current.items():
        out[path] = {}
        for name, h in mutants.items():
            got = found.get((name, h), [])
            got = got[max((i for i, g in enumerate(got) if g[3]), default=0):]   # a recheck voids what came before
            pick = ([g for g in got if g[0] == "killed"] or got or [None])[-1]
            out[path][name] = pick or ("not checked", None, None, False)
    return out


def seed(work, paths, current, chosen, recheck=0, rerun_survivors=False):
    """Write mutmut's result files in ``work`` before its run: the verdicts of ``chosen`` (consolidate) where
    they are killed, survived or no tests, so that mutmut (which keeps the verdict of a function whose source
    is unchanged) runs only the rest; ``recheck`` of the carried kills, drawn with a fixed seed, run again.
    ``rerun_survivors``: survivors run again too (after tests were added). Returns (mutants to run, the names
    rechecked)."""
    import random
    from tinynn._write import write_json
    keep = {"killed", "no tests"} if rerun_survivors else {"killed", "survived", "no tests"}
    eq = equivalents() if rerun_survivors else {}        # a listed equivalent survives by definition: not again
    kills = sorted(n for p in paths for n, v in chosen.get(p, {}).items() if v[0] == "killed")
    again = set(random.Random(30).sample(kills, min(recheck, len(kills))))
    todo, carried = 0, []
    for path in paths:
        if path not in current:
            continue
        codes = {n: (v[1] if (v[0] in keep or n in eq) and v[1] is not None and n not in again else None)
                 for n, v in chosen[path].items()}
        carried += [n for n, c in codes.items() if c is not None]
        todo += sum(c is None for c in codes.values())
        funcs = {n.rpartition(".")[2].partition("__mutmut_")[0]: h for n, h in current[path].items()}
        meta = work / "mutants" / (installed_path(path) + ".meta")
        meta.parent.mkdir(parents=True, exist_ok=True)
        write_json(meta, {"exit_code_by_key": codes, "hash_by_function_name": funcs, "type_check_error_by_key": {},
                          "durations_by_key": {}, "estimated_durations_by_key": {}})
    write_json(work / "tinynn-recheck.json", sorted(again))
    write_json(work / "tinynn-carried.json", sorted(carried))
    return todo, sorted(again)


def diff(work, path, name):
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    here = os.getcwd()
    os.chdir(work)
    try:
        text = get_diff_for_mutant(name, path=installed_path(path))
    except (FileNotFoundError, ValueError) as e:      # the copy's source was refreshed after this run
        return f"(no diff: {e})"
    finally:
        os.chdir(here)
    return "\n".join(line for line in text.splitlines()[2:] if line[:1] in "+-")


def stamp_commit():
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + (" (+changes)" if git("status", "--short", "-uno") else "")


def stamp(work, seconds=None):
    """The commit a suite's copy was made from (and whether tracked files had uncommitted changes) and the
    run's seconds: written next to the copy, read back by the report."""
    path = work / "tinynn-run.json"
    if seconds is None:
        info = dict(commit=stamp_commit())
    else:
        info = dict(json.loads(path.read_text()), seconds=round(seconds))
    from tinynn._write import write_json
    write_json(path, info)
    return info


COLUMNS = ("killed", "survived", "no tests", "timeout", "not checked")   # the rest (suspicious, segfault): other


def report(out, works, seconds, current=None):
    """The report of the suites' copies ``works`` [(suite, folder)]: a module measured in several (runs merged
    with --from) counts from the run that checked the largest share of its mutants (of those, the last); a
    mutant that run did not kill counts as killed when another run killed it in a function of the same source
    (mutmut's per-function hash): each run's tests are tests CI runs, so a kill by any of them is a kill.
    With ``current`` (see current_mutants) the report is of the current source instead: every one of its
    mutants, each with the verdict consolidate() gives (runs of another source count only for the functions
    that are identical)."""
    from tinynn._write import atomic_open, write_json   # not at the top: mutmut's run must import the mutants
    eq = equivalents()
    table, survivors, seen = {}, {}, set()
    found_by = {}                                         # module -> (checked share, suite, work, rows, hashes)
    wrongly_listed = []
    killed_in = set()                                     # (mutant, function hash) killed by some run
    for suite, work in works if current is None else ():   # --complete: consolidate() below instead
        hashes = {}
        found = collect(work, hashes)
        killed_in |= {(name, hashes[name]) for _, name, status in found if status == "killed" and hashes[name]}
        for path in {p for p, _, _ in found}:
            rows = [r for r in found if r[0] == path]
            share = sum(status != "not checked" for _, _, status in rows) / len(rows)
            if path not in found_by or share >= found_by[path][0]:
                found_by[path] = (share, suite, work, rows, hashes)
    elsewhere = Counter()                                 # module -> mutants counted killed from another run
    if current is not None:
        suite_of = {work: suite for suite, work in works}
        for path, verdicts in consolidate(works, current).items():
            hashes = {n: "current" for n in verdicts}
            rows = [(path, n, v[0]) for n, v in verdicts.items()]
            used = {v[2] for v in verdicts.values()}
            runs = [w for _, w in works if w in used]
            commits = ", ".join(dict.fromkeys(json.loads((w / "tinynn-run.json").read_text())["commit"].split()[0]
                                              .rstrip(",") for w in runs))
            by_work = {n: v[2] for n, v in verdicts.items()}
            found_by[path] = (1.0, suite_of[runs[0]] if runs else "-", by_work, rows, hashes, commits)
    for path, (_, suite, work, found, hashes, *commits) in found_by.items():
        commit = commits[0] if commits else json.loads((work / "tinynn-run.json").read_text())["commit"]
        c = table[path] = Counter(suite=suite, commit=commit)
        survivors[path] = []
        for _, name, status in found:
            seen.add(name)
            if name in eq and status == "killed":      # a test tells it apart: not equivalent after all
                wrongly_listed.append(name)
            elif name in eq:
                c["equivalent"] += 1
                continue
            if current is None and status != "killed" and (name, hashes[name]) in killed_in:   # the same code killed in another run
                status = "killed"
                elsewhere[path] += 1
            c[status if status in COLUMNS else "other"] += 1
            if status not in ("killed", "not checked"):
                where = work[name] if isinstance(work, dict) else work
                survivors[path].append((path, name, status, diff(where, path, name)))
    survivors = [s for path in sorted(survivors) for s in survivors[path]]
    rows, lines = [], ["| module | suite | mutants | killed | survived | no tests | timeout | other | equivalent | "
                       "not run | score | tree |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for path, c in sorted(table.items()):
        n = sum(v for k, v in c.items() if k not in ("suite", "commit"))
        live = n - c["equivalent"] - c["not checked"]        # a run stopped early: the score of what it ran
        score = c["killed"] / live if live else 1.0
        rows.append(dict(module=path, mutants=n, score=score, **c, **{"killed elsewhere": elsewhere[path]}))
        lines.append(f"| `{path}` | {c['suite']} | {n} | {c['killed']} | {c['survived']} | {c['no tests']} | "
                     f"{c['timeout']} | {c['other']} | {c['equivalent']} | {c['not checked']} | {score:.1%} | "
                     f"{c['commit']} |")
    total = sum(r["mutants"] - r.get("equivalent", 0) - r.get("not checked", 0) for r in rows)
    killed = sum(r.get("killed", 0) for r in rows)
    head = [f"# Mutation score of tinynn's core", "",
            f"{killed} of {total} non-equivalent mutants killed ({killed / max(total, 1):.1%}); mutmut runs of "
            f"{seconds:.0f} s in all (suites {', '.join(sorted({s for s, _ in works}))}), by `scripts/mutation.py`. "
            f"*tree*: the commit each module was measured on. Merged runs: a module counts from the run that checked "
            f"the largest share of its mutants; a mutant it did not kill counts as killed where another run killed "
            f"it in the same function source ({sum(r.get('killed elsewhere', 0) for r in rows)} such).", ""]
    if current is not None:
        checks = []
        for _, w in works:                              # each --recheck run's own verdicts of what it ran again
            again = listed_in(w, "recheck") & {n for m in current.values() for n in m}
            if again:
                own = {n: st for _, n, st in collect(w) if n in again and st != "not checked"}
                lost = sorted(n for n, st in own.items() if st != "killed")
                commit = json.loads((w / "tinynn-run.json").read_text())["commit"]
                checks.append(f"{len(own) - len(lost)} of {len(own)} in the {w.name} suite at {commit}"
                              + (f" (not: {', '.join(f'`{n}`' for n in lost)})" if lost else ""))
        head[2:3] = [f"{killed} of {total} non-equivalent mutants killed ({killed / max(total, 1):.1%}): every mutant "
                     f"of the source at {stamp_commit()}, by `scripts/mutation.py --complete`. Each verdict comes "
                     f"from a run on an identical function source (mutmut's per-function hash): a kill by any run "
                     f"(each run's tests are tests CI runs), else the last run that checked it; a run that ran "
                     f"carried kills again (`--recheck`) voids the verdicts of those given before it; *tree*: the commits of the runs the module's verdicts come from; mutmut runs of "
                     f"{seconds:.0f} s in all. Carried kills run again and killed again (`--recheck`): "
                     f"{'; '.join(checks) or 'none run again'}."]
    body = ["", "## Mutants not killed", ""]
    for path, name, status, d in survivors:
        body += [f"`{name}` ({status})", "```diff", d, "```", ""]
    if wrongly_listed:
        body += ["## Listed as equivalent but killed (counted as killed; remove them from the list)", ""] + \
            [f"- `{s}`" for s in sorted(wrongly_listed)] + [""]
    stale = sorted(set(eq) - seen)
    if stale:
        body += ["## Listed as equivalent but not generated (stale names)", ""] + [f"- `{s}`" for s in stale]
    with atomic_open(out / "report.md", "w") as f:
        f.write("\n".join(head + lines + body) + "\n")
    write_json(out / "report.json", dict(modules=rows, survivors=[dict(module=p, name=n, status=s, diff=d) for p, n, s, d in survivors],
                    killed=killed, mutants=total, seconds=seconds))
    print("\n".join(head + lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="a new folder: the suites' copies, report.md and report.json")
    p.add_argument("--suite", default="core,cpu,cuda", help="comma-separated suites (default: all three)")
    p.add_argument("--only", nargs="*", default=[], help="repository paths or globs to mutate (default: the core)")
    p.add_argument("--tests", nargs="*", default=[], help="test files (names in tests/) instead of the suite's")
    p.add_argument("--max-children", type=int, default=os.cpu_count(), help="mutants run at once")
    p.add_argument("--from", dest="runs", nargs="*", default=[],
                   help="earlier --out folders to merge into one report instead of running (a module counts from "
                        "the run that checked most of its mutants; of those, the last given)")
    p.add_argument("--complete", nargs="*", default=None, metavar="RUN",
                   help="earlier --out folders: report every mutant of the current source, running here only those "
                        "no run checked on an identical function source (and --recheck of the carried kills)")
    p.add_argument("--recheck", type=int, default=0, help="with --complete: carried kills per suite to run again")
    p.add_argument("--rerun-survivors", action="store_true",
                   help="with --complete: run the survivors again too (after tests were added)")
    p.add_argument("--dry-run", action="store_true",
                   help="with --complete: say what would run and report what the runs have, running nothing")
    p.add_argument("--mutmut-run", action="store_true", help=argparse.SUPPRESS)   # inside a suite's copy
    a = p.parse_args(argv)
    if a.mutmut_run:
        patch_mutmut()
        from mutmut.__main__ import cli
        sys.argv = ["mutmut", "run", "--max-children", str(a.max_children)]
        return cli()
    out = Path(a.out).resolve()
    if out.exists():
        p.error(f"--out {out} exists: give a new folder (a report is never overwritten)")
    suites = a.suite.split(",")
    unknown = set(suites) - set(SUITES)
    if unknown:
        p.error(f"--suite: unknown {sorted(unknown)}; expected some of {sorted(SUITES)}")
    import time
    t0, works = time.time(), []
    if a.runs:
        works = [(w.name, w) for r in a.runs for w in sorted(Path(r).resolve().iterdir())
                 if (w / "tinynn-run.json").exists()]
        if not works:
            p.error(f"--from {a.runs}: no suite folders (with tinynn-run.json) there")
        out.mkdir(parents=True)
        seconds = sum(json.loads((w / "tinynn-run.json").read_text()).get("seconds", 0) for _, w in works)
        report(out, works, seconds)
        return 0
    old = []
    if a.complete is not None:
        old = [(w.name, w) for r in a.complete for w in sorted(Path(r).resolve().iterdir())
               if (w / "tinynn-run.json").exists()]
    current = {}
    for suite in suites:
        work = out / suite
        if not prepare(suite, work, a.only, a.tests):
            shutil.rmtree(work, ignore_errors=True)
            continue
        stamp(work)
        if a.complete is not None:
            paths = suite_paths(suite, a.only)
            mutants = current_mutants(work, paths)
            current.update(mutants)
            todo, again = seed(work, paths, mutants, consolidate(old, mutants), a.recheck, a.rerun_survivors)
            print(f"== suite {suite}: {sum(map(len, mutants.values()))} mutants, {todo} to run "
                  f"({len(again)} carried kills among them, run again)", flush=True)
            if a.dry_run or not todo:
                continue
        t1 = time.time()
        env = {**os.environ, "HYPOTHESIS_PROFILE": "ci", **SUITES[suite]["env"]}
        mnist = ROOT.parent / "shared" / "data" / "mnist"          # the copy is elsewhere: where the tests look
        if "TINYNN_DATA_DIR" not in env and mnist.is_dir():
            env["TINYNN_DATA_DIR"] = str(mnist)
        print(f"== suite {suite} in {work}", flush=True)
        rc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--out", str(work),
                             "--mutmut-run", "--max-children", str(a.max_children)], cwd=work, env=env).returncode
        if rc not in (0, None):
            print(f"mutmut failed in suite {suite} (exit {rc}); see above", file=sys.stderr)
            return 1
        stamp(work, time.time() - t1)
        works.append((suite, work))
    if not works and not current:
        p.error(f"--only {a.only}: nothing of the core matches ({', '.join(sum((s['mutate'] for s in SUITES.values()), []))})")
    if a.complete is not None:
        seconds = sum(json.loads((w / "tinynn-run.json").read_text()).get("seconds", 0) for _, w in old)
        report(out, old + works, seconds + time.time() - t0, current)
        return 0
    report(out, works, time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
