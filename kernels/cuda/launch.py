"""One launch helper for every 1-D grid-stride kernel, and ``kernel``: the one way to define a CUDA kernel.

``@kernel(signature, ..., block=...)`` compiles like ``cuda.jit`` (lazily, at the first launch) and declares,
once, every argument signature the host wrappers launch the kernel with and the block size they use. A
signature is Numba's type syntax for the arguments, where ``{f}`` stands for the floating dtype and expands to
float32 and float64 (``"{f}[::1], int64, {f}[::1]"``: C-contiguous 1-D arrays, a Python int). The declaration
serves twice: ``tests/test_cuda_compile.py`` compiles every declared signature to PTX for real GPUs (sm_80,
sm_90) with NVVM and assembles it with ptxas (``scripts/cuda_resources.py`` reports registers, spills, shared
memory and occupancy from the same compile), and on the simulator every launch is checked against it
(``check_launches``), so a wrapper that launches a type the declaration lacks fails its test instead of
compiling an untested specialization on the first real GPU.
"""
import math

from numba import cuda

from .. import config

MAX_BLOCKS = 1024
FLOATS = ("float32", "float64")
THREADS = "THREADS_PER_BLOCK"     # block=THREADS: config.THREADS_PER_BLOCK (1-D grid-stride launches)

# "module.name" -> Declared, in definition order
KERNELS = {}


class Declared:
    """A kernel's declaration: its dispatcher, its argument signatures (strings, ``{f}`` expanded) and block."""

    def __init__(self, name, dispatcher, signatures, block):
        self.name = name
        self.dispatcher = dispatcher
        self.signatures = signatures
        self.block = block

    def block_size(self):
        """Threads per block as the wrappers launch it (config read now)."""
        if self.block == THREADS:
            return config.THREADS_PER_BLOCK
        return math.prod(self.block) if isinstance(self.block, tuple) else int(self.block)

    def argtypes(self):
        """The declared signatures as tuples of Numba types."""
        return [parse_signature(s) for s in self.signatures]


def parse_signature(text):
    """``"{f}[::1], int64"`` (expanded) -> a tuple of Numba types; names: numba.types plus ``xoroshiro128p``
    (numba.cuda.random's generator state record)."""
    from numba.core import types
    from numba.cuda.random import xoroshiro128p_type

    names = {k: v for k, v in vars(types).items() if not k.startswith("_")}
    names["xoroshiro128p"] = xoroshiro128p_type
    return tuple(eval(f"({text},)", {"__builtins__": {}}, names))  # noqa: S307 (our own declarations only)


def _expand(signatures):
    out = []
    for s in signatures:
        for f in (FLOATS if "{f}" in s else (None,)):
            t = s.replace("{f}", f) if f else s
            if t not in out:
                out.append(t)
    return out


def kernel(*signatures, block=THREADS, name=None):
    """``cuda.jit`` with the kernel's launch signatures and block size declared (module docstring)."""
    if not signatures:
        raise TypeError("kernel(): declare at least one argument signature (what the host wrappers launch)")

    def deco(fn):
        dispatcher = cuda.jit(fn)
        key = f"{fn.__module__.rsplit('.', 1)[-1]}.{name or fn.__name__}"
        if key in KERNELS:
            raise ValueError(f"kernel(): {key} is declared twice (give one a name=)")
        decl = Declared(key, dispatcher, _expand(signatures), block)
        KERNELS[key] = decl
        dispatcher.tinynn_kernel = decl
        return dispatcher

    return deco


def blocks_for(n, threads=None):
    """Blocks for n work items at ``config.THREADS_PER_BLOCK`` (read now, so tests can patch it)."""
    tpb = threads or config.THREADS_PER_BLOCK
    return max(1, min(MAX_BLOCKS, math.ceil(n / tpb))), tpb


def launch(kernel, n, *args):
    """kernel[blocks, threads](*args) over n items; the kernel loops grid-stride over the rest."""
    if n == 0:
        return
    blocks, tpb = blocks_for(n)
    kernel[blocks, tpb](*args)


def flat(a):
    """A 1-D view of a contiguous device array."""
    return a.reshape(a.size) if len(a.shape) != 1 else a


# ----------------------------------------------------------------------------------------------------------------
# launch checking (tests): the type numba.cuda gives each launch argument, compared with the declaration

def launch_type(arg):
    """The Numba type that numba.cuda's dispatcher gives a launch argument (device arrays: dtype, ndim and
    layout as ``DeviceNDArray._numba_type_`` computes them; scalars: ``numba.typeof``)."""
    import numba
    import numpy as np
    from numba.core import types
    from numba.np import numpy_support

    nt = getattr(arg, "_numba_type_", None)
    if isinstance(nt, types.Array):
        return nt
    ary = getattr(arg, "_ary", arg)                       # the simulator's FakeCUDAArray wraps a NumPy array
    if isinstance(ary, np.ndarray) and ary.ndim > 0:
        broadcast = 0 in ary.strides and ary.size != 0
        if ary.flags["C_CONTIGUOUS"] and not broadcast:
            layout = "C"
        elif ary.flags["F_CONTIGUOUS"] and not broadcast:
            layout = "F"
        else:
            layout = "A"
        return types.Array(numpy_support.from_dtype(ary.dtype), ary.ndim, layout)
    return numba.typeof(arg)


class UndeclaredLaunch(TypeError):
    pass


def check_launch(dispatcher, args, block_dim=None):
    """Raise UndeclaredLaunch unless ``args`` (and the block size) match the kernel's declaration."""
    decl = getattr(dispatcher, "tinynn_kernel", None)
    name = getattr(dispatcher, "__name__", repr(dispatcher))
    if decl is None:
        raise UndeclaredLaunch(f"CUDA kernel {name} was launched but never declared: define it with "
                               f"@kernel(signatures...) in kernels/cuda/launch.py's way")
    got = tuple(launch_type(a) for a in args)
    if got not in decl.argtypes():
        raise UndeclaredLaunch(
            f"CUDA kernel {decl.name} launched with ({', '.join(map(str, got))}), which its @kernel declaration "
            f"lacks (declared: {'; '.join(decl.signatures)}): add the signature so the compile test covers it")
    if block_dim is not None and math.prod(block_dim) > decl.block_size():
        raise UndeclaredLaunch(f"CUDA kernel {decl.name} launched with {math.prod(block_dim)} threads per block, "
                               f"more than its declared {decl.block_size()} (block={decl.block!r})")
    return got


def check_launches(record=None):
    """On the simulator, check every kernel launch from now on against its declaration (``record``: a list that
    collects ``(name, types)`` instead of raising, for writing declarations). Returns an undo function."""
    from numba.cuda.simulator import kernel as sim

    original = sim.FakeCUDAKernel.__call__

    def checked(self, *args):
        if not (self._device or sim._kernel_context):
            if record is not None:
                record.append((self.__name__, tuple(str(launch_type(a)) for a in args),
                               tuple(self.block_dim) if self.block_dim else None))
            else:
                check_launch(self, args, self.block_dim)
        return original(self, *args)

    sim.FakeCUDAKernel.__call__ = checked

    def undo():
        sim.FakeCUDAKernel.__call__ = original

    return undo
