"""Launch-time configuration, read when a kernel is launched (never frozen into cached code)."""

THREADS_PER_BLOCK = 256  # 1-D CUDA launches (tests patch this small to exercise multi-block paths)
TILE = 16  # CUDA matmul: a TILE x TILE block of threads computes a (TILE*REG) x TILE output tile
REG = 4  # CUDA matmul register blocking: outputs per thread along rows

# Activation codes shared by every backend (ints so that Numba kernels can branch on them).
IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, EXP = 0, 1, 2, 3, 4, 5
# the smooth activations (``alpha``: ELU's alpha, Softplus' beta); GELU and SiLU differentiate through their
# *input* (their derivative is not a function of the output), every other code through the output
GELU, GELU_TANH, SILU, ELU, SOFTPLUS = 6, 7, 8, 9, 10
FROM_INPUT = (GELU, GELU_TANH, SILU)
ACTIVATIONS = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU, "sigmoid": SIGMOID, "tanh": TANH,
               "exp": EXP, "gelu": GELU, "gelu_tanh": GELU_TANH, "silu": SILU, "elu": ELU, "softplus": SOFTPLUS}
# robust regression losses (ops.robust_rows / robust_backward): mean absolute error and Huber (``delta``)
L1, HUBER = 0, 1

# Threads for the CPU augmentation kernels (kernels/cpu/augment.py, the only parallel=True ones; every other CPU
# kernel is serial, kernels/cpu/_jit.py). 1 measured fastest on 2 cores: no second thread pool competes with the
# BLAS threads between GEMMs (docs/design.md).
CPU_THREADS = 1
