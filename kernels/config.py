"""Launch-time configuration, read when a kernel is launched (never frozen into cached code)."""

THREADS_PER_BLOCK = 256  # 1-D CUDA launches (tests patch this small to exercise multi-block paths)
TILE = 16  # CUDA matmul: a TILE x TILE block of threads computes a (TILE*REG) x TILE output tile
REG = 4  # CUDA matmul register blocking: outputs per thread along rows

# Activation codes shared by every backend (ints so that Numba kernels can branch on them).
IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, EXP = 0, 1, 2, 3, 4, 5
ACTIVATIONS = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU, "sigmoid": SIGMOID, "tanh": TANH,
               "exp": EXP}

# Threads for the CPU augmentation kernels (kernels/cpu/augment.py, the only parallel=True ones; every other CPU
# kernel is serial, kernels/cpu/_jit.py). 1 measured fastest on 2 cores: no second thread pool competes with the
# BLAS threads between GEMMs (DESIGN.md §4).
CPU_THREADS = 1
