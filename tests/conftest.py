import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from tinynn import kernels

# Numba compiles on first call, which would trip Hypothesis' default deadline: no deadline, bounded examples.
settings.register_profile("dev", deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=30, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("cudasim", deadline=None, max_examples=5, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
# A slower, exploring profile: many more examples, a new random seed every run (printed with any failure):
# HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest -q tests/test_kernels.py tests/test_layers.py ...
settings.register_profile("explore", deadline=None, max_examples=1000, derandomize=False, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_collection_modifyitems(config, items):
    gpu = [item for item in items if "gpu" in item.keywords]
    if not gpu or kernels.cuda_available():        # probe numba.cuda only when gpu tests were collected
        return
    skip = pytest.mark.skip(reason="CUDA not available (no GPU; set NUMBA_ENABLE_CUDASIM=1 for the simulator)")
    for item in gpu:
        item.add_marker(skip)


def mnist_dir():
    """The MNIST folder for tests: $TINYNN_DATA_DIR or ../shared/data/mnist beside the checkout."""
    d = os.environ.get("TINYNN_DATA_DIR")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [d] if d else []
    candidates.append(os.path.join(here, "..", "shared", "data", "mnist"))
    for c in candidates:
        if c and os.path.exists(os.path.join(c, "train-images-idx3-ubyte.gz")):
            return os.path.abspath(c)
    return None


@pytest.fixture
def mnist_path():
    d = mnist_dir()
    if d is None:
        if os.environ.get("CI"):
            pytest.fail("CI must find MNIST: set TINYNN_DATA_DIR or keep ../shared/data/mnist beside the checkout")
        pytest.skip("MNIST not found: set TINYNN_DATA_DIR to a folder with the four IDX .gz files")
    return d


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_configure(config):
    """On the simulator, every CUDA kernel launch is checked against its @kernel declaration
    (kernels/cuda/launch.py): the signatures that the compile test compiles for real GPUs cannot drift from what
    the wrappers launch. TINYNN_RECORD_LAUNCHES=path records the launches as JSON instead (to write declarations)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        return
    from tinynn.kernels.cuda import launch

    path = os.environ.get("TINYNN_RECORD_LAUNCHES")
    record = [] if path else None
    config._tinynn_undo_launch_check = launch.check_launches(record)
    config._tinynn_launch_record = (path, record)


def pytest_unconfigure(config):
    undo = getattr(config, "_tinynn_undo_launch_check", None)
    if undo is None:
        return
    undo()
    path, record = config._tinynn_launch_record
    if path:
        import json

        seen = sorted({(n, t, b) for n, t, b in record}, key=str)
        with open(path, "w") as f:
            json.dump(seen, f, indent=0)
