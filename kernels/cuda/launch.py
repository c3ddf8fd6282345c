"""One launch helper for every 1-D grid-stride kernel."""
import math

from .. import config

MAX_BLOCKS = 1024


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
