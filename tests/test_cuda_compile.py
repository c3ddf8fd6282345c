"""The CUDA backend compiled by the real compiler, with no GPU: every declared kernel signature to PTX (NVVM) and
SASS (ptxas) for sm_80 and sm_90, with zero failures and zero register spills; the declarations cannot drift from
the code (every kernel is declared; on the simulator every launch is checked against its declaration, see
tests/conftest.py).

Needs the [cuda] extra (numba-cuda, nvidia-cuda-nvcc-cu12); skipped without it, except in CI, where it fails.
"""
import ast
import os
from pathlib import Path

import numpy as np
import pytest

from tinynn.kernels.cuda import compile as cc_mod

CUDA_DIR = Path(cc_mod.__file__).parent
WHY = cc_mod.missing_tools()

needs_tools = pytest.mark.skipif(WHY is not None and not os.environ.get("CI"),
                                 reason=f"no CUDA compiler here: {WHY}")


@pytest.fixture(scope="module")
def compiled():
    """{"8.0": [...], "9.0": [...]}: one process per target (device functions are cached per argument types,
    not per target), both at once."""
    if WHY is not None:
        pytest.fail(f"CI must compile the CUDA kernels: {WHY}")
    return cc_mod.compile_targets()


def _declared():
    from tinynn.kernels.cuda.launch import parse_signature

    return {(name, ", ".join(map(str, parse_signature(s))))
            for name, decl in cc_mod.declared_kernels().items() for s in decl.signatures}


@needs_tools
@pytest.mark.slow
def test_every_declared_signature_compiles_for_sm80_and_sm90(compiled):
    declared = _declared()
    assert len(declared) >= 100                     # 52 kernels, float32 and float64 (fails if the import broke)
    for key, results in compiled.items():
        assert {(r["kernel"], r["signature"]) for r in results} == declared, key
        failed = [f"{r['kernel']}({r['signature']}): {r['error'][:600]}" for r in results if "error" in r]
        assert not failed, f"sm_{key.replace('.', '')}: {len(failed)} kernels do not compile:\n" + "\n".join(failed)


@needs_tools
@pytest.mark.slow
def test_no_kernel_spills_registers(compiled):
    for key, results in compiled.items():
        spills = [f"{r['kernel']}({r['signature']}): {r['spill_stores']} B stores, {r['spill_loads']} B loads, "
                  f"{r['stack']} B stack" for r in results if r["spill_stores"] or r["spill_loads"] or r["stack"]]
        assert not spills, f"sm_{key.replace('.', '')}: register spills:\n" + "\n".join(spills)
        for r in results:                            # the resource report is complete and plausible
            assert 1 <= r["registers"] <= 255 and 0 < r["occupancy"] <= 1, r


@needs_tools
def test_a_type_error_in_a_kernel_fails_the_compile():
    """What the simulator cannot see: a kernel indexing a 3-D array with four subscripts (the bug warp_affine
    had) fails here with the compiler's message."""
    from numba import cuda

    from tinynn.kernels.cuda.launch import Declared

    def bad_kernel(X, out):
        for t in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            out[t] = X[t, 0, 0, 0]

    decl = Declared("test.bad_kernel", cuda.jit(bad_kernel), ["{f}[:, :, ::1], {f}[::1]"], 256)
    from tinynn.kernels.cuda.launch import parse_signature

    r = cc_mod.compile_one(decl, parse_signature("float32[:, :, ::1], float32[::1]"), (9, 0),
                           cc_mod.ptxas_path(), str(Path(__file__).parent))
    assert "error" in r and "4 indices" in r["error"], r


def _cuda_sources():
    return sorted(p for p in CUDA_DIR.glob("*.py"))


def _is_cuda_jit(node):
    """cuda.jit / cuda.jit(...) as a decorator or callee; returns (is_jit, device=True given)."""
    call = node if isinstance(node, ast.Call) else None
    f = call.func if call else node
    if isinstance(f, ast.Attribute) and f.attr == "jit" and isinstance(f.value, ast.Name) and f.value.id == "cuda":
        device = any(k.arg == "device" and isinstance(k.value, ast.Constant) and k.value.value is True
                     for k in (call.keywords if call else []))
        return True, device
    return False, False


def test_every_kernel_is_defined_through_kernel_with_signatures():
    """A kernel written with a bare @cuda.jit (no declaration) would never be compiled by the test above: only
    device functions may use cuda.jit directly; kernels use @kernel(signatures...)."""
    bare = []
    for path in _cuda_sources():
        if path.name == "launch.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) or isinstance(node, ast.FunctionDef):
                targets = node.decorator_list if isinstance(node, ast.FunctionDef) else [node]
                for d in targets:
                    is_jit, device = _is_cuda_jit(d)
                    if is_jit and not device:
                        bare.append(f"{path.name}:{d.lineno}")
    assert not bare, f"CUDA kernels defined without @kernel(signatures...): {bare}"


def _is_kernel(obj):
    """A numba.cuda kernel (not a device function) of this backend, real or simulated."""
    fn = getattr(obj, "py_func", None) or getattr(obj, "fn", None)
    if not getattr(fn, "__module__", "").startswith("tinynn.kernels.cuda"):
        return False
    if type(obj).__name__ == "FakeCUDAKernel":
        return not obj._device
    opts = getattr(obj, "targetoptions", None)
    return isinstance(opts, dict) and hasattr(obj, "py_func") and not opts.get("device")


def test_every_dispatcher_in_the_backend_is_declared():
    """Every kernel object the backend's modules hold (as globals or in module-level tables, like the tiled
    matmul's per-dtype kernels) carries its declaration."""
    import importlib

    assert len(cc_mod.declared_kernels()) >= 45
    undeclared, seen = [], 0
    for path in _cuda_sources():
        mod = importlib.import_module(f"tinynn.kernels.cuda.{path.stem}")
        for name, obj in vars(mod).items():
            for o in (obj.values() if isinstance(obj, dict) else [obj]):
                if _is_kernel(o):
                    seen += 1
                    if not hasattr(o, "tinynn_kernel"):
                        undeclared.append(f"{path.stem}.{name}")
    assert seen >= 45 and not undeclared, f"kernels without a declaration: {undeclared}"


def test_kernel_requires_a_signature():
    from tinynn.kernels.cuda.launch import kernel

    with pytest.raises(TypeError, match="at least one argument signature"):
        kernel()


def test_launch_check_refuses_undeclared_types_and_blocks():
    from tinynn.kernels.cuda import elementwise
    from tinynn.kernels.cuda.launch import UndeclaredLaunch, check_launch

    k = elementwise.scale_kernel                                        # "{f}[::1], float64"
    check_launch(k, (np.zeros(4, np.float32), 1.0), (256, 1, 1))
    check_launch(k, (np.zeros(4, np.float64), 1.0))
    with pytest.raises(UndeclaredLaunch, match="scale_kernel launched with"):
        check_launch(k, (np.zeros(4, np.float32), 1))                  # an int where float64 is declared
    with pytest.raises(UndeclaredLaunch, match="lacks"):
        check_launch(k, (np.zeros((4, 4), np.float32)[:, 0], 1.0))    # a strided view: layout A
    with pytest.raises(UndeclaredLaunch, match="threads per block"):
        check_launch(k, (np.zeros(4, np.float32), 1.0), (512, 1, 1))


def test_ptxas_report_parsing_and_occupancy():
    text = ("ptxas info    : Compiling entry function '_Z3foo' for 'sm_90'\n"
            "ptxas info    : Function properties for _Z3foo\n"
            "    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n"
            "ptxas info    : Used 63 registers, used 1 barriers, 5120 bytes smem, 400 bytes cmem[0]\n")
    assert cc_mod.parse_ptxas(text) == dict(registers=63, smem=5120, stack=8, spill_stores=4, spill_loads=4)
    # 36 registers: 1152 -> 1280 per warp, 65536 // 1280 = 51 warps, 6 blocks of 8 warps: 48 / 64
    assert cc_mod.occupancy((9, 0), 36, 0, 256) == dict(blocks_per_sm=6, occupancy=0.75, limited_by="registers")
    assert cc_mod.occupancy((9, 0), 32, 0, 256) == dict(blocks_per_sm=8, occupancy=1.0, limited_by="warps")
    # shared memory: (100 KiB + 1 KiB reserved) per block -> 2 blocks on sm_90 (228 KiB), 1 on sm_80 (164 KiB)
    assert cc_mod.occupancy((9, 0), 32, 100 * 1024, 256)["blocks_per_sm"] == 2
    assert cc_mod.occupancy((8, 0), 32, 100 * 1024, 256) == dict(blocks_per_sm=1, occupancy=0.125,
                                                                   limited_by="shared memory")


@needs_tools
@pytest.mark.slow
def test_device_check_script_runs_and_never_overwrites(tmp_path):
    """scripts/gpu_check.sh as the README gives it; without a GPU the hardware tests skip and gpu_bench says so,
    and the compile report still runs. A folder that exists is refused (no earlier run is overwritten)."""
    import subprocess

    root = CUDA_DIR.parent.parent
    if not (root / ".venv" / "bin" / "python").exists():
        pytest.skip("the device check uses the checkout's .venv (made by the README's commands)")
    out = tmp_path / "check"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    r = subprocess.run(["bash", "scripts/gpu_check.sh", str(out)], cwd=root, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = (out / "summary.txt").read_text()
    for step in ("gpu_tests: exit 0", "cuda_resources: exit 0", "gpu_bench: exit 0"):
        assert step in summary, summary
    import json

    res = json.loads((out / "cuda_resources.json").read_text())
    assert set(res) == {"8.0", "9.0"} and all("error" not in x for rs in res.values() for x in rs)
    again = subprocess.run(["bash", "scripts/gpu_check.sh", str(out)], cwd=root, env=env, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 2 and "exists" in again.stderr
