"""Compile every declared CUDA kernel for real GPUs, with no GPU: NVVM to PTX, then ptxas to SASS.

The simulator (NUMBA_ENABLE_CUDASIM=1) runs kernels as Python and never types, lowers or compiles them; this
module does what the first launch on a real GPU would do, for every kernel and every argument signature its
``@kernel`` declaration lists (kernels/cuda/launch.py), and reads ptxas' resource report (registers per thread,
spill stores and loads, stack frame, static shared memory), from which :func:`occupancy` gives the theoretical
occupancy at the block size the backend launches with.

Needs the ``[cuda]`` extra: numba-cuda, and NVVM and ptxas from the ``nvidia-cuda-nvcc-cu12`` wheel (or a CUDA
toolkit on PATH). No driver: the compute capability that a device function asks the current device for is
answered with the target's (``_target``). One process compiles for one target (device functions are cached per
argument types, not per target), so :func:`compile_targets` runs :func:`compile_all` once per compute capability,
each in a fresh process (``scripts/cuda_resources.py`` is its command line).
"""
import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
import time

# Per-SM limits of the targets (CUDA C Programming Guide, "Compute Capabilities", table 21; sm_80 = A100,
# sm_90 = H100): registers, register allocation unit (per warp), resident warps, blocks and shared memory, and
# the shared memory the system reserves per block.
ARCH = {
    (8, 0): dict(regs=65536, reg_unit=256, max_regs_thread=255, warps=64, blocks=32, smem=167936,
                 smem_unit=128, smem_reserved=1024),
    (9, 0): dict(regs=65536, reg_unit=256, max_regs_thread=255, warps=64, blocks=32, smem=233472,
                 smem_unit=128, smem_reserved=1024),
}
TARGETS = tuple(ARCH)


def ptxas_path():
    """ptxas from the nvidia-cuda-nvcc wheel, else from PATH; None when neither has it."""
    try:
        import nvidia.cuda_nvcc as nvcc

        for root in nvcc.__path__:
            p = os.path.join(root, "bin", "ptxas")
            if os.path.exists(p):
                return p
    except ImportError:
        pass
    return shutil.which("ptxas")


def missing_tools():
    """Why a compile cannot run here (a sentence), or None."""
    try:
        import numba.cuda  # noqa: F401
        from numba.cuda import compile_ptx  # noqa: F401
    except ImportError as e:
        return f"numba.cuda cannot compile here ({e}); install the extra: pip install -e '.[cuda]'"
    if ptxas_path() is None:
        return "ptxas not found (neither the nvidia-cuda-nvcc-cu12 wheel nor PATH); pip install -e '.[cuda]'"
    return None


class _target:
    """Answer ``get_current_device().compute_capability`` with the target's (numba.cuda asks when it compiles
    a device function; without a driver the question would fail)."""

    def __init__(self, cc):
        self.compute_capability = tuple(cc)

    def __enter__(self):
        from numba.cuda import dispatcher

        self._saved = dispatcher.get_current_device
        dispatcher.get_current_device = lambda: self
        return self

    def __exit__(self, *exc):
        from numba.cuda import dispatcher

        dispatcher.get_current_device = self._saved


_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?")


def parse_ptxas(text):
    """ptxas -v's report of the (one) entry function: registers, spills, stack and static shared memory."""
    m = _ENTRY.search(text)
    if m is None:
        raise ValueError(f"ptxas -v reported no entry function:\n{text[:400]}")
    rest = text[m.end():]
    stack, used = _STACK.search(rest), _USED.search(rest)
    if used is None:
        raise ValueError(f"ptxas -v reported no register count:\n{text[:400]}")
    return dict(registers=int(used.group(1)), smem=int(used.group(3) or 0),
                stack=int(stack.group(1)) if stack else 0,
                spill_stores=int(stack.group(2)) if stack else 0,
                spill_loads=int(stack.group(3)) if stack else 0)


def occupancy(cc, registers, smem, threads):
    """Theoretical occupancy (resident warps / the SM's maximum) of a kernel using ``registers`` per thread and
    ``smem`` bytes of static shared memory per block, launched with ``threads`` per block, and what limits it."""
    a = ARCH[tuple(cc)]
    warps = -(-threads // 32)
    limits = {"warps": a["warps"] // warps, "blocks": a["blocks"]}
    if registers:
        per_warp = -(-registers * 32 // a["reg_unit"]) * a["reg_unit"]
        limits["registers"] = (a["regs"] // per_warp) // warps
    per_block = -(-(smem + a["smem_reserved"]) // a["smem_unit"]) * a["smem_unit"]
    limits["shared memory"] = a["smem"] // per_block
    blocks = min(limits.values())
    limiter = min(limits, key=lambda k: (limits[k], k != "warps"))
    return dict(blocks_per_sm=blocks, occupancy=blocks * warps / a["warps"], limited_by=limiter)


def compile_one(decl, argtypes, cc, ptxas, workdir):
    """PTX for one kernel signature at ``cc``, assembled by ptxas: a result dict (``error`` set on failure)."""
    from numba import cuda

    sig = ", ".join(str(t) for t in argtypes)
    out = dict(kernel=decl.name, signature=sig, cc=f"{cc[0]}.{cc[1]}", threads=decl.block_size())
    t0 = time.perf_counter()
    try:
        with _target(cc):
            ptx, _ = cuda.compile_ptx(decl.dispatcher.py_func, argtypes, cc=cc)
    except Exception as e:                                  # a TypingError, LoweringError, NVVM error: reported
        out["error"] = f"NVVM/Numba: {type(e).__name__}: {str(e)[:1500]}"
        return out
    path = os.path.join(workdir, f"{decl.name}.ptx")
    with open(path, "w") as f:
        f.write(ptx)
    r = subprocess.run([ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", path, "-o", os.devnull],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        out["error"] = f"ptxas: {(r.stderr or r.stdout)[:1500]}"
        return out
    out.update(parse_ptxas(r.stderr + r.stdout))
    out.update(occupancy(cc, out["registers"], out["smem"], out["threads"]))
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def declared_kernels():
    """Every kernel of the backend, declared: importing the modules registers them in launch.KERNELS."""
    from . import _load
    from .launch import KERNELS

    _load()
    return dict(KERNELS)


def compile_all(cc, names=None):
    """Compile every declared signature of every kernel (or of ``names``) for compute capability ``cc``."""
    ptxas = ptxas_path()
    results = []
    with tempfile.TemporaryDirectory() as work:
        for name, decl in declared_kernels().items():
            if names and name not in names:
                continue
            for argtypes in decl.argtypes():
                results.append(compile_one(decl, argtypes, tuple(cc), ptxas, work))
    return results


def _compile_target(cc):
    return compile_all(tuple(cc))


def compile_targets(targets=TARGETS, timeout=900):
    """compile_all for each target, each in a fresh process of its own (``spawn``), all at once:
    {"9.0": [results], ...}. A compile *error* of a kernel is a result, not an exception."""
    ctx = multiprocessing.get_context("spawn")
    saved = os.environ.pop("NUMBA_ENABLE_CUDASIM", None)        # the children compile; they never simulate
    try:
        with ctx.Pool(len(targets)) as pool:
            results = pool.map_async(_compile_target, list(targets)).get(timeout)
    finally:
        if saved is not None:
            os.environ["NUMBA_ENABLE_CUDASIM"] = saved
    return {f"{major}.{minor}": r for (major, minor), r in zip(targets, results)}
