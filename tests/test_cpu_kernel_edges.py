"""The Numba CPU kernels (kernels/cpu) where the parity tests' uniform inputs do not reach: their own documented
behaviour (subnormal optimizer state flushed to zero, below the smallest normal and not at it), the first NaN
of a row for argmax, every keyword and default of the from-scratch matmul, and the reference on inputs built
to separate wrong kernels from right ones (odd shapes, exact ties, values at the kinks).

Checked against the NumPy reference or against values worked out by hand; runs compiled in CI and uncompiled
(NUMBA_DISABLE_JIT=1) in the mutation runs, so shapes stay small.
"""
import numpy as np
import pytest

from tinynn import kernels
from tinynn.kernels import ops
from tinynn.kernels.cpu.matmul import matmul_numba

F32 = np.float32
TINY = np.finfo(F32).tiny                    # smallest normal float32, 1.18e-38
ROOT_TINY = F32(np.sqrt(np.float64(TINY)))   # below it, d² would be subnormal


def _cpu(name, *args):
    with kernels.use("cpu"), np.errstate(all="ignore"):
        return ops[name](*args)


def _ref(name, *args):
    with kernels.use("numpy"), np.errstate(all="ignore"):
        return ops[name](*args)


def _both(name, args):
    """(cpu arrays, reference arrays) after running ``name`` on copies of args."""
    a = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
    b = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
    _cpu(name, *a)
    _ref(name, *b)
    return a, b


# --------------------------------------------------------------------------- subnormal state flushed to zero
def test_adam_moments_below_the_smallest_normal_are_zero():
    """β₁ = β₂ = 0.5, g = 0 (no L2 term: wd reaches only AdamW's decay of θ): m = ½ m, v = ½ v. From 2·tiny the new value is tiny, kept; from tiny it is tiny/2,
    subnormal, stored as 0. The parameter moves as the reference's (within float32)."""
    for decoupled, ams in [(False, False), (True, False), (False, True), (True, True)]:
        p = np.ones(4, F32)
        g = np.zeros(4, F32)
        m = np.array([2 * TINY, TINY, -2 * TINY, -TINY], F32)
        v = np.array([2 * TINY, TINY, 2 * TINY, TINY], F32)
        vmax = np.zeros(4, F32)
        args = (p, g, m, v, vmax, 1e-3, 0.5, 0.5, 1e-8, 0.1 if decoupled else 0.0, 0.5, 0.75, ams, decoupled)
        got, ref = _both("adam_update", args)
        assert got[2].tolist() == [TINY, 0.0, -TINY, 0.0], (decoupled, ams)
        assert got[3].tolist() == [TINY, 0.0, TINY, 0.0], (decoupled, ams)
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-6)
        if ams:
            assert got[4].tolist() == [TINY, 0.0, TINY, 0.0]


def test_adam_square_of_a_tiny_gradient_is_zero():
    """|d| < √tiny: d² would be subnormal; v gets 0 from it (v starts at 0), m gets (1-β₁) d."""
    d = F32(1e-20)
    assert abs(d) < ROOT_TINY
    p, g = np.zeros(2, F32), np.array([d, -d], F32)
    m, v, vmax = np.zeros(2, F32), np.zeros(2, F32), np.zeros(2, F32)
    got, ref = _both("adam_update", (p, g, m, v, vmax, 1e-3, 0.5, 0.5, 1e-8, 0.0, 0.5, 0.75, False, False))
    assert got[3].tolist() == [0.0, 0.0]
    assert got[2].tolist() == [F32(0.5) * d, -(F32(0.5) * d)]
    big = F32(2) * ROOT_TINY                              # above √tiny: its square is normal and is kept
    g = np.array([big], F32)
    got, _ = _both("adam_update", (np.zeros(1, F32), g, np.zeros(1, F32), np.zeros(1, F32), np.zeros(1, F32), 1e-3,
                                   0.5, 0.5, 1e-8, 0.0, 0.5, 0.75, False, False))
    assert got[3][0] == F32(0.5) * (big * big) and got[3][0] >= TINY


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_buffer_is_flushed(nesterov):
    """buf = μ buf + (1 - τ) d with μ = 0.5, τ = 0, g = 0: 2·tiny -> tiny (kept), tiny -> 0."""
    p, g = np.ones(2, F32), np.zeros(2, F32)
    buf = np.array([2 * TINY, TINY], F32)
    got, ref = _both("sgd_update", (p, g, buf, 0.1, 0.5, 0.0, 0.0, nesterov, False))
    assert got[2].tolist() == [TINY, 0.0]
    np.testing.assert_array_equal(got[0], ref[0])


def test_momentum_state_is_flushed():
    p, g = np.ones(2, F32), np.zeros(2, F32)
    u = np.array([2 * TINY, -TINY], F32)
    for nesterov in (False, True):
        got, ref = _both("momentum_update", (p, g, u, 0.1, 0.5, 1.0, nesterov))
        assert got[2].tolist() == [TINY, 0.0]
        np.testing.assert_array_equal(got[0], ref[0])


@pytest.mark.parametrize("centered,momentum", [(False, 0.0), (True, 0.0), (True, 0.5), (False, 0.5)])
def test_rmsprop_state_is_flushed(centered, momentum):
    """α = 0.5, g = 0: sq, gavg halve (2·tiny -> tiny kept; tiny -> 0); buf = μ buf + 0/avg likewise."""
    p, g = np.ones(2, F32), np.zeros(2, F32)
    sq = np.array([2 * TINY, TINY], F32)
    gavg = np.array([-2 * TINY, TINY], F32)
    buf = np.array([2 * TINY, TINY], F32) if momentum else np.zeros(2, F32)
    got, ref = _both("rmsprop_update", (p, g, sq, gavg, buf, 0.01, 0.5, 1e-8, 0.0, momentum, centered))
    assert got[2].tolist() == [TINY, 0.0]
    if centered:
        assert got[3].tolist() == [-TINY, 0.0]
    if momentum:
        assert got[4].tolist() == [TINY, 0.0]
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-6)


def test_rmsprop_and_adagrad_tiny_gradients_square_to_zero():
    d = F32(1e-20)
    got, _ = _both("rmsprop_update", (np.zeros(1, F32), np.array([d], F32), np.zeros(1, F32), np.zeros(1, F32),
                                      np.zeros(1, F32), 0.01, 0.5, 1e-8, 0.0, 0.0, False))
    assert got[2].tolist() == [0.0]
    s = np.zeros(1, F32)
    got, _ = _both("adagrad_update", (np.zeros(1, F32), np.array([d], F32), s, 0.1, 0.0, 1e-10))
    assert got[2].tolist() == [0.0]
    big = F32(2) * ROOT_TINY
    got, _ = _both("adagrad_update", (np.zeros(1, F32), np.array([big], F32), np.zeros(1, F32), 0.1, 0.0, 1e-10))
    assert got[2][0] == big * big


def test_adadelta_state_is_flushed():
    """ρ = 0.5, g = 0: sq and acc halve; 2·tiny -> tiny (kept), tiny -> 0."""
    p, g = np.ones(2, F32), np.zeros(2, F32)
    sq = np.array([2 * TINY, TINY], F32)
    acc = np.array([2 * TINY, TINY], F32)
    got, ref = _both("adadelta_update", (p, g, sq, acc, 1.0, 0.5, 1e-6, 0.0))
    assert got[2].tolist() == [TINY, 0.0] and got[3].tolist() == [TINY, 0.0]
    np.testing.assert_array_equal(got[0], ref[0])


# --------------------------------------------------------------------------- argmax: ties and NaN
@pytest.mark.parametrize("row", [
    [1.0, 3.0, 3.0, 2.0],                 # a tie: the first maximum
    [3.0, 1.0, 3.0],
    [np.nan, 5.0, 1.0],                   # NaN first
    [5.0, np.nan, 9.0, np.nan],           # the first of two NaNs, after a larger value
    [1.0, 2.0, np.nan],
    [1.0, np.nan],                        # a number, then only NaNs
    [2.0, np.nan, np.nan],
    [-np.inf, -np.inf],
    [7.0],
])
def test_argmax_rows_is_numpys(row):
    X = np.array([row, row[::-1]])
    assert _cpu("argmax_rows", X, np.empty(2, np.int64)).tolist() == np.argmax(X, axis=1).tolist()


# --------------------------------------------------------------------------- the from-scratch matmul
def test_matmul_numba_defaults_and_dtypes():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((3, 70))                    # k beyond the default block of 64: two k-blocks
    B = rng.standard_normal((70, 2)).astype(F32)
    out = matmul_numba(A, B)
    assert out.dtype == np.float64 and out.shape == (3, 2)
    np.testing.assert_allclose(out, A @ B.astype(np.float64), rtol=1e-12)
    given = np.full((2, 3), np.nan)
    assert matmul_numba(B, A, trans_a=True, trans_b=True, out=given) is given
    np.testing.assert_allclose(given, B.T.astype(np.float64) @ A.T, rtol=1e-12)


def test_adagrad_square_at_root_tiny_is_kept():
    """The threshold itself squares: d = √tiny (as float32) adds d·d to s (s has no flush)."""
    got, _ = _both("adagrad_update", (np.zeros(1, F32), np.array([ROOT_TINY], F32), np.zeros(1, F32), 0.1, 0.0,
                                      1e-10))
    assert got[2][0] == ROOT_TINY * ROOT_TINY and got[2][0] > 0


def test_adam_constants_cache_stays_bounded():
    """A schedule that changes lr every step: the constants cache stays at most 65 entries, and the latest
    entry is kept (the next call with it finds it)."""
    from tinynn.kernels.cpu import optim as cpu_optim
    cpu_optim._adam_consts.clear()
    for step in range(100):
        c = cpu_optim._adam_step_constants(np.dtype(F32), 1e-3 * (1 + step), 0.9, 0.999, 1e-8, 0.01, True)
        assert len(cpu_optim._adam_consts) <= 65
    assert cpu_optim._adam_step_constants(np.dtype(F32), 1e-3 * 100, 0.9, 0.999, 1e-8, 0.01, True) is c
    b1, b2, c1, c2, eps, decay, wd, tiny, root_tiny = c
    assert (b1, b2, eps, tiny) == (F32(0.9), F32(0.999), F32(1e-8), TINY) and root_tiny == ROOT_TINY
    assert c1 == F32(1 - 0.9) and c2 == F32(1 - 0.999) and decay == F32(1 - 0.1 * 0.01) and wd == 0
    assert all(type(x) is F32 for x in c)
    b1, b2, c1, c2, eps, decay, wd, tiny, root_tiny = cpu_optim._adam_step_constants(
        np.dtype(np.float64), 0.1, 0.9, 0.999, 1e-8, 0.01, False)
    assert decay == 1 and wd == 0.01 and type(wd) is np.float64 and tiny == np.finfo(np.float64).tiny


# --------------------------------------------------------------------------- elementwise kinks
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_mask_keeps_a_uniform_equal_to_p(dtype):
    """[U >= p] / (1 - p): U exactly p is kept (scaled by 1/(1-p) = 4/3 at p = 0.25), just below is dropped."""
    p = 0.25
    below = np.nextafter(dtype(p), dtype(0))
    U = np.array([[p, below, 0.0, 0.999]], dtype)
    out = _cpu("dropout_mask", U, p, np.empty_like(U))
    np.testing.assert_allclose(out, [[4 / 3, 0, 0, 4 / 3]], rtol=1e-7)
    np.testing.assert_array_equal(out, _ref("dropout_mask", U, p, np.empty_like(U)))


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_elu_gradient_at_a_zero_output_is_alpha(alpha):
    """elu' = 1 if Y > 0 else Y + α: at Y = 0 (X = 0) it is α, not 1 (alpha other than 1 tells them apart)."""
    Y = np.array([[0.0, -0.0, 0.5, -0.25]])
    dY = np.array([[2.0, 2.0, 2.0, 2.0]])
    out = _cpu("act_backward", dY, Y, 9, alpha, np.empty_like(Y))
    np.testing.assert_allclose(out, [[2 * alpha, 2 * alpha, 2.0, 2 * (alpha - 0.25)]], rtol=1e-15)
    dZ, db = np.empty_like(Y), np.empty(4)
    _cpu("act_backward_bias", dY, Y, 9, alpha, dZ, db)
    np.testing.assert_allclose(dZ, out, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_of_negative_zero_is_positive_zero(dtype):
    """max(-0.0, 0) is +0.0 in the reference (numpy.maximum); the kernels agree to the sign bit."""
    X = np.array([[-0.0, 0.0, -1.0]], dtype)
    for name, args in [("act_forward", (X, 1, 0.0)), ("bias_act", (X, np.zeros(3, dtype), 1, 0.0)),
                       ("bias_act", (X, np.array([-0.0, -0.0, 0.0], dtype), 3 - 2, 0.0))]:
        got = _cpu(name, *args, np.empty_like(X))
        ref = _ref(name, *args, np.empty_like(X))
        assert got.tolist() == [[0.0, 0.0, 0.0]] and not np.signbit(got).any(), name
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))


@pytest.mark.parametrize("shape", [(2, 3), (2, 1, 3)])
def test_lerp_of_any_shape(shape):
    """R = (1 - m) R + m c X elementwise, in place, for running statistics of any shape (not only vectors)."""
    R = np.arange(6.0).reshape(shape)
    X = np.full(shape, 10.0)
    got = _cpu("lerp", R.copy(), X, 0.25, 2.0)
    np.testing.assert_allclose(got, 0.75 * R + 0.25 * 2.0 * X, rtol=1e-15)
    assert got.shape == shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_loss_with_fractional_targets(dtype):
    """t log t - t z - t + e^z with t between 0 and 1 (t log t < 0 there), 1 (t log t = 0) and 0 (0 by
    definition): rates and frequencies are targets too, not only counts."""
    Z = np.array([[0.5, -1.0, 0.0, 2.0]], dtype)
    T = np.array([[0.5, 0.25, 1.0, 0.0]], dtype)
    P, loss = np.empty_like(Z), np.empty(1, dtype)
    _cpu("poisson_loss", Z, T, P, loss)
    expected = sum((t * np.log(t) if t > 0 else 0.0) - t * z - t + np.exp(z)
                   for z, t in zip(Z[0].astype(float), T[0].astype(float)))
    np.testing.assert_allclose(loss, [expected], rtol=1e-6)
    np.testing.assert_allclose(P, np.exp(Z.astype(float)), rtol=1e-6)


def test_matmul_numba_keeps_float32():
    A = np.arange(6, dtype=F32).reshape(2, 3)
    out = matmul_numba(A, A.T.copy())
    assert out.dtype == np.float32 and out.tolist() == (A.astype(float) @ A.T.astype(float)).tolist()


def test_spmm_t_beyond_one_column_block():
    """spmm_t walks output columns in blocks of 64: D with 130 columns spans three blocks."""
    indptr, indices = np.array([0, 2, 2, 4]), np.array([0, 3, 3, 1])
    data = np.array([1.0, 2.0, -1.0, 0.5])
    D = np.random.default_rng(2).standard_normal((3, 130))
    got, ref = np.full((4, 130), np.nan), np.full((4, 130), np.nan)
    _cpu("spmm_t", indptr, indices, data, D, got)
    _ref("spmm_t", indptr, indices, data, D, ref)
    np.testing.assert_allclose(got, ref, rtol=1e-15, atol=1e-15)


# --------------------------------------------------------------------------- augmentation at exact borders
@pytest.mark.parametrize("tx, ty", [(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)])
def test_warp_samples_exactly_one_pixel_outside_are_zero_whatever_the_border_holds(tx, ty):
    """A shift of exactly one pixel puts the first (or last) output column's source at -1 (or W): outside,
    so 0, even where the border pixel it would weigh by 0 is infinite (0 * inf is NaN) or lies past the edge."""
    n, H, W = 2, 4, 5
    X = np.arange(n * H * W, dtype=F32).reshape(n, H, W)
    X[:, 0, :] = np.inf
    X[:, :, 0] = -np.inf
    X[:, -1, :] = np.inf
    X[:, :, -1] = np.inf
    A = np.zeros((n, 2, 3), F32)
    A[:, 0, 0] = A[:, 1, 1] = 1.0
    A[:, 0, 2], A[:, 1, 2] = tx, ty
    out_cpu = _cpu("warp_affine", X, A)
    out_ref = _ref("warp_affine", X, A)
    np.testing.assert_array_equal(out_cpu, out_ref)
    edge = {(-1.0, 0.0): (slice(None), 0), (1.0, 0.0): (slice(None), W - 1),
            (0.0, -1.0): (0, slice(None)), (0.0, 1.0): (H - 1, slice(None))}[(tx, ty)]
    assert np.all(out_cpu[(slice(None), *edge)] == 0)


@pytest.mark.parametrize("name", ["brightness_contrast", "add_noise"])
def test_clip_keeps_a_value_equal_to_its_bound_with_its_sign(name):
    """numpy.clip returns v itself when v equals a bound: -0.0 clipped to [0, 1] stays -0.0, and 0.0 clipped
    to [-1, -0.0] stays 0.0. The CPU kernels match the reference bit for bit there."""
    X = np.array([[[-0.0, 0.0, 0.5]]], F32)
    for lo, hi, want in ((0.0, 1.0, [True, False, False]), (-1.0, -0.0, [True, False, True])):
        if name == "brightness_contrast":
            args = (X, np.ones(1, F32), np.full(1, -0.0, F32), lo, hi)
        else:
            args = (X, np.full_like(X, -0.0), lo, hi)
        a, b = _cpu(name, *args), _ref(name, *args)
        np.testing.assert_array_equal(np.signbit(a), np.signbit(b))
        assert np.signbit(a).ravel()[:2].tolist() == want[:2]
