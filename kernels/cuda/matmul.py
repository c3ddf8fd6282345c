"""CUDA matmul: a naive kernel (one thread per output, kept as the readable baseline, tested) and the
shared-memory tiled kernel with register blocking that ops.matmul uses.

Tiled: a block of TILE x TILE threads computes a (TILE·REG) x TILE tile of C. Per step along k, the block
stages a (TILE·REG) x TILE tile of op(A) and a TILE x TILE tile of op(B) in shared memory; each thread then
accumulates REG outputs (rows ty, ty+TILE, …) in registers, reusing each B value REG times. Edges are
zero-padded, so any shape works. Transposes are read through the index, never copied.
"""
import math

import numba
import numpy as np
from numba import cuda

from .. import config
from ..dispatch import ops
from .launch import kernel

TILE, REG = config.TILE, config.REG  # compile-time constants of the tiled kernel
BM = TILE * REG


@kernel("{f}[:, ::1], {f}[:, ::1], {f}[:, ::1], boolean, boolean", block=(16, 16))
def matmul_naive_kernel(A, B, C, ta, tb):
    i, j = cuda.grid(2)
    m, n = C.shape
    k_dim = A.shape[0] if ta else A.shape[1]
    if i < m and j < n:
        s = 0.0
        for k in range(k_dim):
            a = A[k, i] if ta else A[i, k]
            b = B[j, k] if tb else B[k, j]
            s += a * b
        C[i, j] = s


def _make_tiled(nb_dtype):
    @kernel(f"{nb_dtype}[:, ::1], {nb_dtype}[:, ::1], {nb_dtype}[:, ::1], boolean, boolean", block=(TILE, TILE),
            name=f"matmul_tiled_kernel_{nb_dtype}")
    def matmul_tiled_kernel(A, B, C, ta, tb):
        m, n = C.shape
        k_dim = A.shape[0] if ta else A.shape[1]
        As = cuda.shared.array((BM, TILE), nb_dtype)
        Bs = cuda.shared.array((TILE, TILE), nb_dtype)
        acc = cuda.local.array(REG, nb_dtype)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row0 = cuda.blockIdx.y * BM
        col = cuda.blockIdx.x * TILE + tx
        for r in range(REG):
            acc[r] = 0
        for k0 in range(0, k_dim, TILE):
            kk = k0 + tx
            for r in range(REG):                                  # stage op(A)[row0 + ty + r·TILE, k0 + tx]
                i = row0 + ty + r * TILE
                if i < m and kk < k_dim:
                    As[ty + r * TILE, tx] = A[kk, i] if ta else A[i, kk]
                else:
                    As[ty + r * TILE, tx] = 0
            kb = k0 + ty                                          # stage op(B)[k0 + ty, col]
            if kb < k_dim and col < n:
                Bs[ty, tx] = B[col, kb] if tb else B[kb, col]
            else:
                Bs[ty, tx] = 0
            cuda.syncthreads()
            for k in range(TILE):
                b = Bs[k, tx]
                for r in range(REG):
                    acc[r] += As[ty + r * TILE, k] * b
            cuda.syncthreads()
        for r in range(REG):
            i = row0 + ty + r * TILE
            if i < m and col < n:
                C[i, col] = acc[r]

    return matmul_tiled_kernel


_TILED = {np.dtype(np.float32): _make_tiled(numba.float32), np.dtype(np.float64): _make_tiled(numba.float64)}


def _check(A, B, trans_a, trans_b, out):
    m = A.shape[1] if trans_a else A.shape[0]
    k = A.shape[0] if trans_a else A.shape[1]
    kb = B.shape[1] if trans_b else B.shape[0]
    n = B.shape[0] if trans_b else B.shape[1]
    if k != kb or tuple(out.shape) != (m, n):
        raise ValueError(f"matmul: shapes {tuple(A.shape)}{'ᵀ' if trans_a else ''} @ "
                         f"{tuple(B.shape)}{'ᵀ' if trans_b else ''} -> {tuple(out.shape)} do not match")
    return m, n


@ops.matmul.register("cuda")
def matmul(A, B, trans_a=False, trans_b=False, out=None):
    m, n = _check(A, B, trans_a, trans_b, out)
    kernel = _TILED.get(np.dtype(out.dtype))
    if kernel is None:
        raise TypeError(f"matmul (cuda): float32 or float64 only, got {out.dtype}")
    grid = (math.ceil(n / TILE), math.ceil(m / BM))
    kernel[grid, (TILE, TILE)](A, B, out, bool(trans_a), bool(trans_b))
    return out


def matmul_naive(A, B, trans_a=False, trans_b=False, out=None, threads=16):
    """The baseline kernel, same contract as ops.matmul (device arrays in, device array out)."""
    if out is None:
        m = A.shape[1] if trans_a else A.shape[0]
        n = B.shape[0] if trans_b else B.shape[1]
        out = cuda.device_array((m, n), dtype=A.dtype)
    m, n = _check(A, B, trans_a, trans_b, out)
    grid = (math.ceil(m / threads), math.ceil(n / threads))
    matmul_naive_kernel[grid, (threads, threads)](A, B, out, bool(trans_a), bool(trans_b))
    return out
