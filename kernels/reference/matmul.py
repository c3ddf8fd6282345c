"""Matrix products."""
import numpy as np

from ..dispatch import define_op


def _matmul_alloc(A, B, trans_a, trans_b, **_):
    m = A.shape[1] if trans_a else A.shape[0]
    n = B.shape[0] if trans_b else B.shape[1]
    return (m, n), np.result_type(A.dtype, B.dtype)


@define_op(alloc=_matmul_alloc)
def matmul(A, B, trans_a=False, trans_b=False, out=None):
    r"""out = op(A) @ op(B), op(M) = Mᵀ when the matching trans_* flag is set.

    Shapes: op(A) (m, k), op(B) (k, n), out (m, n).
    """
    a = A.T if trans_a else A
    b = B.T if trans_b else B
    np.matmul(a, b, out=out)
    return out
