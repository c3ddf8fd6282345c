"""Every ```python and ```bash block of README.md and docs/*.md runs as written, from the checkout's venv.

The blocks run in order, README.md first, then docs/*.md (as a user goes through them: the ONNX export of
docs/estimators.md reads the README's MNIST model), in one temporary working directory laid out like a clone (the checkout's
scripts/, benchmarks/, tests/, docs/, .venv and packaging files linked in; ../shared/data/mnist linked to the
MNIST folder of the suite), so a documented command writes under that directory's runs/, never into the
checkout (checked: the checkout's tracked files are unchanged afterwards).

An HTML comment between the previous block and a block directs its run; the block's text stays what a user
copies. Directives, separated by ";":

- ``args A B ...``: appended to every command of a bash block (argparse keeps the last value), to make a
  training of minutes a short run, e.g. ``<!-- test: args --epochs 1 --train-size 2000 -->``;
- ``after-install``: the block starts with ``python3 -m venv .venv && .venv/bin/pip install ... &&``: that part
  made the venv this test runs from and is not run again; the rest runs as written;
- ``skip REASON`` (alone in its comment): not run here, for the reason given (reported by pytest as a
  skip with that reason: ``pytest -rs``).

Python blocks run as a script (``.venv/bin/python block.py``); bash blocks with ``bash -e``.
Blocks inserted with ``--8<-- "README.md:section"`` (mkdocs snippets) run where they are written, in README.md.
"""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
LINKED = ["scripts", "benchmarks", "tests", "docs", "tinynn", "kernels", ".venv", "setup.cfg", "pyproject.toml",
          "README.md", "mkdocs.yml"]
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```$", re.S | re.M)
DIRECTIVE = re.compile(r"<!--\s*test:\s*(.*?)\s*-->", re.S)
INSTALL = re.compile(r'^python3 -m venv \.venv && \.venv/bin/pip install [^&]*&& ')


def blocks(path):
    """(language, code, directives) of every python/bash block of the file, in order."""
    text = path.read_text(encoding="utf-8")
    out, last = [], 0
    for m in BLOCK.finditer(text):
        directives = {}
        for d in DIRECTIVE.findall(text[last:m.start()]):
            if d.startswith("skip "):                       # the rest of the comment is the reason
                directives["skip"] = d[5:].strip()
                continue
            for part in d.split(";"):
                key, _, value = part.strip().partition(" ")
                directives[key] = value.strip()
        out.append((m.group(1), m.group(2), directives))
        last = m.end()
    return out


def commands(code):
    """The logical lines of a bash block (backslash continuations joined), comments and blanks left out."""
    return [c for c in (ln.strip() for ln in code.replace("\\\n", " ").splitlines()) if c and not c.startswith("#")]


def test_every_directive_is_known_and_every_skip_has_a_reason():
    for path in DOCS:
        for lang, code, d in blocks(path):
            assert set(d) <= {"args", "after-install", "skip"}, (path.name, d)
            if "skip" in d:
                assert len(d["skip"]) > 20, f"{path.name}: a skip without its reason: {code[:80]}"
            if "after-install" in d:
                assert INSTALL.match(code), (path.name, code[:80])


def test_no_documented_command_writes_into_the_checkout_or_over_another_run():
    """Every script and benchmark command names an --out under runs/, and no two runs share one (a resumed run
    continues its own folder)."""
    seen = {}
    for path in DOCS:
        for lang, code, d in blocks(path):
            if lang != "bash":
                continue
            for cmd in commands(code):
                if not re.search(r"scripts/\S+\.py|-m benchmarks\.|scripts/gpu_check\.sh", cmd):
                    continue
                words = shlex.split(cmd)
                out = words[words.index("--out") + 1] if "--out" in words else (
                    words[-1] if "gpu_check.sh" in cmd else None)
                assert out and out.startswith("runs/"), f"{path.name}: {cmd}"
                if "--resume" in words:
                    assert out in seen, f"{path.name}: resumes a run not documented before: {cmd}"
                    continue
                assert out not in seen, f"{path.name}: {cmd} writes over {seen[out]}"
                seen[out] = f"{path.name}: {cmd}"


def _cases():
    for path in DOCS:
        items = blocks(path)
        if items:
            rel = path.relative_to(ROOT).as_posix()
            yield pytest.param(path, id=rel)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("clone")
    work = tmp_path / "tinynn"
    work.mkdir()
    for name in LINKED:
        if (ROOT / name).exists():
            (work / name).symlink_to(ROOT / name)
    data = tmp_path / "shared" / "data"
    data.mkdir(parents=True)
    from conftest import mnist_dir

    if mnist_dir() is not None:
        (data / "mnist").symlink_to(Path(mnist_dir()).resolve())
    return work


def _tracked_state():
    r = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                       text=True)
    return r.stdout if r.returncode == 0 else None


@pytest.mark.slow
@pytest.mark.parametrize("path", list(_cases()))
def test_blocks_run_as_written(path, clone, tmp_path, mnist_path):
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("the blocks run from the checkout's .venv (made by the README's commands)")
    before = _tracked_state()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM", "PYTHONPATH")}
    env["MPLBACKEND"] = "Agg"
    env["TINYNN_DATA_DIR"] = str(Path(mnist_path).resolve())
    for i, (lang, code, d) in enumerate(blocks(path)):
        where = f"{path.name}, block {i + 1} ({lang}): {code.strip().splitlines()[0][:100]}"
        if "skip" in d:
            continue
        if lang == "python":
            script = tmp_path / f"block{i + 1}.py"
            script.write_text(code)
            argv = [str(clone / ".venv" / "bin" / "python"), str(script)]
        else:
            cmds = commands(code)
            if "after-install" in d:
                cmds = [INSTALL.sub("", c) for c in cmds]
            if d.get("args"):
                cmds = [f"{c} {d['args']}" for c in cmds]
            argv = ["bash", "-e", "-c", "\n".join(cmds)]
        r = subprocess.run(argv, cwd=clone, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{where}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
    assert _tracked_state() == before, "a documented command changed the checkout's tracked files"


def _skipped():
    for path in DOCS:
        for i, (lang, code, d) in enumerate(blocks(path)):
            if "skip" in d:
                yield pytest.param(d["skip"], id=f"{path.relative_to(ROOT).as_posix()}-block{i + 1}")


@pytest.mark.parametrize("reason", list(_skipped()))
def test_blocks_not_run_here(reason):
    """The blocks a skip directive leaves out, each listed with its reason (pytest -rs shows them)."""
    pytest.skip(reason)
