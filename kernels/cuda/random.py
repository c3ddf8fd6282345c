"""Uniform random numbers on the device for dropout masks: xoroshiro128+ states per generator."""
from numba import cuda
from numba.cuda.random import create_xoroshiro128p_states, xoroshiro128p_uniform_float64

from .launch import blocks_for, flat, kernel

_states = {}  # id(np.random.Generator) -> (generator, device RNG states); Generators take no weak references


@kernel("xoroshiro128p[::1], {f}[::1]")
def uniform_kernel(states, out):
    t = cuda.grid(1)
    for i in range(t, out.size, cuda.gridsize(1)):
        out[i] = xoroshiro128p_uniform_float64(states, t)


def uniform(rng, out):
    blocks, tpb = blocks_for(out.size)
    n = blocks * tpb
    entry = _states.get(id(rng))
    st = entry[1] if entry is not None and entry[0] is rng else None
    if st is None or st.size < n:
        st = create_xoroshiro128p_states(max(n, 1), seed=int(rng.integers(2**63)))
        _states[id(rng)] = (rng, st)
    uniform_kernel[blocks, tpb](st, flat(out))
    return out
