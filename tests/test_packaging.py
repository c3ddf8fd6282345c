"""The installed names belong to tinynn: the wheel provides one top-level import name, ``tinynn``."""
import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_wheel_has_only_tinynn_as_top_level_name(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), ROOT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = [p for p in os.listdir(tmp_path) if p.endswith(".whl")]
    assert wheel.startswith("tinynn_fc-"), wheel               # the distribution name is tinynn-fc
    with zipfile.ZipFile(tmp_path / wheel) as z:
        names = z.namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"tinynn"}, f"top-level names in the wheel: {sorted(top)}"
    # the kernels (every backend) ship inside tinynn
    for sub in ("kernels/dispatch.py", "kernels/reference/matmul.py", "kernels/cpu/matmul.py",
                "kernels/cuda/matmul.py"):
        assert f"tinynn/{sub}" in names, sub
    # the type hints are public (PEP 561) and the license text ships with the code
    assert "tinynn/py.typed" in names
    licenses = [n for n in names if n.endswith(".dist-info/LICENSE") or "/licenses/LICENSE" in n]
    assert licenses, [n for n in names if "dist-info" in n]
    with zipfile.ZipFile(tmp_path / wheel) as z:
        assert b"MIT License" in z.read(licenses[0])
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    import tinynn
    assert f"\nVersion: {tinynn.__version__}\n" in meta
    with zipfile.ZipFile(tmp_path / wheel) as z:
        top_level = [n for n in names if n.endswith("top_level.txt")]
        if top_level:
            assert z.read(top_level[0]).decode().split() == ["tinynn"]


def test_kernels_import_as_a_tinynn_subpackage():
    import tinynn.kernels as k

    assert k.__name__ == "tinynn.kernels"
    assert "kernels" not in sys.modules or sys.modules["kernels"] is not k


def test_changelog_names_the_current_version():
    import tinynn

    with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as f:
        text = f.read()
    assert f"## [{tinynn.__version__}]" in text


def test_ci_fails_when_any_step_of_an_and_list_fails():
    """bash's set -e does not stop at a failing command inside an && list (only the list's last command
    counts), so a failing pytest in the README's test command would have let CI go on and pass: every && list
    in .ci/run ends with `|| exit 1`."""
    import subprocess

    r = subprocess.run(["bash", "-c", "set -e; true && false && true; echo went-on"], capture_output=True, text=True)
    assert r.stdout.strip() == "went-on"                     # the pitfall itself
    import re

    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        script = f.read()
    lines = [re.sub(r"\$\([^)]*\)", "", line) for line in script.splitlines()]   # a $( ) runs in a subshell
    lists = [line for line in lines if "&&" in line and not line.lstrip().startswith("#")]
    assert lists and all(line.rstrip().endswith("|| exit 1") for line in lists), lists
