"""A process forked after tinynn ran its parallel CPU kernels can still run them.

Numba's GNU OpenMP threading layer (its default where libgomp is found, as on this project's machines) kills a
forked child with SIGTERM at its first parallel kernel when the parent's pool had run. multiprocessing forks by
default on Linux, so a Pool of workers made after a fit with augmentation lost every worker. In such a child
tinynn runs the parallel kernels (the augmentation ones and the from-scratch matmul) serially: same loops, the
same results as the parent's.
"""
import subprocess
import sys

SCRIPT = r"""
import os
import numpy as np
import numba
from tinynn import kernels
from tinynn.kernels import ops
from tinynn.kernels.cpu.matmul import matmul_numba

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 6, 7)).astype(np.float32)
A = np.tile(np.array([[0.9, 0.1, 0.3], [-0.2, 1.1, -0.4]], np.float32), (3, 1, 1))
D = rng.standard_normal((3, 2, 6, 7)).astype(np.float32)
N = rng.standard_normal(X.shape).astype(np.float32)
M = rng.standard_normal((70, 90))


def run():
    with kernels.use("cpu"):
        return [ops.warp_affine(X, A), ops.warp_elastic(X, A, D),
                ops.blur_separable(X, np.array([0.25, 0.5, 0.25], np.float32), 1.0),
                ops.brightness_contrast(X, np.full(3, 1.5, np.float32), np.full(3, 0.1, np.float32), -1.0, 1.0),
                ops.add_noise(X, N, -1.0, 1.0), matmul_numba(M, M.T, block=16)]


parent = run()
print(numba.threading_layer(), flush=True)
pid = os.fork()
if pid == 0:
    child = run()
    os._exit(0 if all(np.array_equal(a, b, equal_nan=True) for a, b in zip(parent, child)) else 3)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_forked_child_runs_the_parallel_kernels_and_gets_the_parents_results():
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    layer, status = p.stdout.split()
    assert status == "0", f"the forked child ended with {status} under Numba's {layer} layer: {p.stderr[-2000:]}"


def test_a_multiprocessing_pool_after_parallel_kernels_works():
    code = SCRIPT.split("parent = run()")[0] + r"""
import multiprocessing as mp
parent = run()
def job(i):
    return all(np.array_equal(a, b, equal_nan=True) for a, b in zip(parent, run()))
with mp.get_context("fork").Pool(2) as pool:
    print(pool.map(job, range(2), chunksize=1))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0 and p.stdout.strip() == "[True, True]", (p.stdout, p.stderr[-3000:])
