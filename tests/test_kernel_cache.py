"""The kernel cache survives damage (kernels/cpu/_jit.py, GuardedCache): real cache files of real kernels are
overwritten, truncated, or lose their index or data, and the next fit still succeeds, fits the same model,
warns once naming the cache folder, and leaves a cache that the process after it loads without compiling; a
cache that cannot be written (a file-size limit: EFBIG) costs a warning, never the fit."""
import json
import os
import random
import resource
import subprocess
import sys

import pytest

CHILD = r"""
import hashlib, json, warnings
import numpy as np
import tinynn
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    clf = tinynn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=0, dtype=np.float32)
    clf.fit(X.astype(np.float32), y)
from tinynn.kernels.cpu._jit import KERNELS
hits = sum(sum(d.stats.cache_hits.values()) for d in KERNELS)
misses = sum(sum(d.stats.cache_misses.values()) for d in KERNELS)
digest = hashlib.sha256(b"".join(np.ascontiguousarray(c).tobytes() for c in clf.coefs_)).hexdigest()
print(json.dumps({"hits": hits, "misses": misses, "digest": digest,
                  "warnings": [str(w.message) for w in caught if w.category.__name__ == "KernelCacheWarning"]}))
"""


def _fit(cache, fsize=None):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))

    def limit():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=600,
                       preexec_fn=limit)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _files(cache, suffix):
    out = sorted(os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs if f.endswith(suffix))
    assert out, f"no {suffix} files in {cache}"
    return out


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    first = _fit(cache)
    again = _fit(cache)
    assert first["misses"] > 0 and again["misses"] == 0 and again["hits"] == first["misses"], (first, again)
    return first


def _overwrite(path, rng):
    size = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(max(size, 16))))


def _truncate(frac):
    def damage(path, rng):
        with open(path, "r+b") as f:
            f.truncate(int(os.path.getsize(path) * frac))
    return damage


DAMAGE = {
    "overwrite-index": (".nbi", _overwrite, True),
    "overwrite-data": (".nbc", _overwrite, True),
    "truncate-index-0": (".nbi", _truncate(0.0), True),
    "truncate-index-half": (".nbi", _truncate(0.5), True),
    "truncate-index-99%": (".nbi", _truncate(0.99), True),
    "truncate-data-0": (".nbc", _truncate(0.0), True),
    "truncate-data-10%": (".nbc", _truncate(0.1), True),
    "truncate-data-99%": (".nbc", _truncate(0.99), True),
    "delete-index-keep-data": (".nbi", lambda p, rng: os.remove(p), False),
    "delete-data-keep-index": (".nbc", lambda p, rng: os.remove(p), False),
}


@pytest.mark.slow
@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_cache_is_rebuilt_and_the_fit_succeeds(how, baseline, tmp_path):
    suffix, damage, warns = DAMAGE[how]
    cache = tmp_path / "cache"
    assert _fit(cache)["misses"] == baseline["misses"]
    rng = random.Random(how)
    for path in _files(cache, suffix):                      # every entry of every kernel
        damage(path, rng)
    after = _fit(cache)
    assert after["digest"] == baseline["digest"]            # the same model
    if warns:
        assert len(after["warnings"]) == 1, after["warnings"]
        assert str(cache) in after["warnings"][0] and "could not be read" in after["warnings"][0]
    assert after["misses"] == baseline["misses"]            # every damaged kernel compiled again
    healed = _fit(cache)
    assert healed["misses"] == 0 and healed["hits"] == baseline["misses"] and not healed["warnings"], healed


@pytest.mark.slow
def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_fit(baseline, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    r = _fit(cache, fsize=64)                                # every cache file is larger: EFBIG on write
    assert r["digest"] == baseline["digest"]
    assert len(r["warnings"]) == 1 and "cannot be written" in r["warnings"][0], r["warnings"]
