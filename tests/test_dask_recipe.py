"""The README's Dask recipe, run as written: nothing of the cluster it starts listens on a public interface.

The block is taken from README.md (the one that starts a ``LocalCluster``), run in a fresh process on a small
slice of the digits data; while its cluster is up, every listening socket of that process and of all its
children (scheduler, nannies, workers) is collected with psutil and must be bound to loopback. Bounded in time
(a subprocess timeout)."""
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("distributed")
pytest.importorskip("psutil")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOPBACK = ("127.", "::1", "::ffff:127.")


def _readme_recipes():
    """Every python block of README.md and docs/*.md that starts a LocalCluster, as written."""
    paths = [os.path.join(ROOT, "README.md")]
    docs = os.path.join(ROOT, "docs")
    paths += [os.path.join(docs, f) for f in sorted(os.listdir(docs)) if f.endswith(".md")]
    blocks = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            text = f.read()
        blocks += [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "LocalCluster(" in b]
    return blocks


# run the recipe, then list the listening sockets of the whole process tree while the cluster is still up
_RUNNER = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import psutil
    from sklearn.datasets import load_digits
    import tinynn as tn
    X, y = load_digits(return_X_y=True)
    X, y = X[:150] / 16.0, y[:150]
    recipe = sys.stdin.read()
    exec(compile(recipe, "README.md recipe", "exec"))
    me = psutil.Process()
    found = []
    for p in [me] + me.children(recursive=True):
        try:
            conns = p.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found += [[p.pid, c.laddr.ip, c.laddr.port] for c in conns if c.status == psutil.CONN_LISTEN]
    print("LISTEN " + json.dumps({"sockets": found, "processes": 1 + len(me.children(recursive=True))}))
    sys.stdout.flush()
""")


def _listening(recipe):
    proc = subprocess.run([sys.executable, "-c", _RUNNER], input=recipe, capture_output=True, text=True,
                          timeout=240, cwd=ROOT)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("LISTEN ")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    return json.loads(line[-1][7:])


def test_there_is_a_recipe_to_check():
    assert _readme_recipes(), "README.md lost its Dask recipe (or this test lost track of it)"


@pytest.mark.parametrize("recipe", _readme_recipes())
def test_recipe_listens_on_loopback_only(recipe):
    assert "dashboard_address" in recipe, "the recipe must say where its dashboard listens (or None)"
    got = _listening(recipe)
    assert got["processes"] >= 3                        # the recipe's workers are there while we look
    assert got["sockets"], "no listening socket found: the check would pass vacuously"
    public = [s for s in got["sockets"] if not s[1].startswith(LOOPBACK)]
    assert not public, f"listening on a public interface: {public}"


def test_the_default_dashboard_would_be_caught():
    """The check fails the README's old recipe, whose dashboard listened on 0.0.0.0:8787."""
    old = ("from dask.distributed import Client, LocalCluster\n"
           "client = Client(LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=':0'))\n")
    got = _listening(old)
    assert [s for s in got["sockets"] if not s[1].startswith(LOOPBACK)]
