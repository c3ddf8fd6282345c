"""The Numba kernel cache of an installed (non-editable) tinynn: processes that start at once all compile or
load the kernels without error and fit the same model; the next process compiles nothing.

Two set-ups are checked: Numba caching beside the installed sources (a writable site-packages: __pycache__) and
in ``NUMBA_CACHE_DIR`` (what a read-only system install, a container or a cluster's shared disk uses).
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import hashlib, json, sys
import numpy as np
import tinynn
assert tinynn.__file__.startswith(sys.argv[1]), tinynn.__file__        # the installed copy, not the checkout
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
clf = tinynn.MLPClassifier(hidden_layer_sizes=(32,), max_iter=3, random_state=0, dtype=np.float32)
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf.fit(X.astype(np.float32), y)
from numba.core.registry import CPUDispatcher
import tinynn.kernels.cpu as cpu
hits = misses = 0
for mod in list(sys.modules.values()):
    if getattr(mod, "__name__", "").startswith(cpu.__name__):
        for obj in vars(mod).values():
            if isinstance(obj, CPUDispatcher) and obj.signatures:
                hits += sum(obj.stats.cache_hits.values())
                misses += sum(obj.stats.cache_misses.values())
digest = hashlib.sha256(b"".join(np.ascontiguousarray(c).tobytes() for c in clf.coefs_)).hexdigest()
print(json.dumps({"hits": hits, "misses": misses, "digest": digest}))
"""


def _install(target):
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(target), ROOT], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not os.path.exists(os.path.join(target, "tinynn", "kernels", "cpu", "__pycache__")) or \
        not any(f.endswith(".nbi") for f in os.listdir(os.path.join(target, "tinynn", "kernels", "cpu", "__pycache__")))


def _run_at_once(target, cache_home, n, cache_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env.update(PYTHONPATH=str(target), XDG_CACHE_HOME=str(cache_home), PYTHONDONTWRITEBYTECODE="1")
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(target)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=str(cache_home)) for _ in range(n)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-3000:]
        import json

        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("where", ["beside-sources", "NUMBA_CACHE_DIR"])
def test_installed_cache_shared_by_processes_starting_at_once(tmp_path, where):
    target, cache_home = tmp_path / "site", tmp_path / "home-cache"
    cache_home.mkdir()
    cache_dir = tmp_path / "numba-cache" if where == "NUMBA_CACHE_DIR" else None
    _install(target)
    first = _run_at_once(target, cache_home, 4, cache_dir)              # four processes, one empty cache
    (later,) = _run_at_once(target, cache_home, 1, cache_dir)
    assert len({r["digest"] for r in first + [later]}) == 1, "processes fitted different models"
    assert all(r["misses"] + r["hits"] > 0 for r in first)
    assert later["misses"] == 0 and later["hits"] > 0, later            # everything came from the cache
    index_dir = cache_dir if cache_dir else target / "tinynn" / "kernels" / "cpu" / "__pycache__"
    assert any(f.endswith(".nbi") for _, _, files in os.walk(index_dir) for f in files), f"no index in {index_dir}"
