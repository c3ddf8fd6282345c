"""The reference warps (kernels/reference/augment.py: warp_affine, warp_elastic) on hand-worked examples from
the module docstring's geometry: output pixel (i, j) reads the input at

    sx = A00 (j - cx) + A01 (i - cy) + A02 + cx,   sy = A10 (j - cx) + A11 (i - cy) + A12 + cy,
    cx = (W - 1)/2, cy = (H - 1)/2,

bilinearly, a neighbour outside the image counting as 0; a point with no neighbour inside (sx <= -1, sx >= W,
sy <= -1, sy >= H) gives 0 without reading X; every neighbour inside is read (a NaN neighbour makes the pixel
NaN even at weight 0); NaN coordinates give NaN.

Images are non-square (H != W) so that rows and columns, cx and cy cannot be swapped unnoticed.
"""
import numpy as np
import pytest

from tinynn import kernels
from tinynn.kernels import ops

H, W = 3, 5


def _img(n=1, dtype=np.float64):
    """Distinct values: X[k, i, j] = 100 k + 10 i + j + 1."""
    k, i, j = np.meshgrid(np.arange(n), np.arange(H), np.arange(W), indexing="ij")
    return (100 * k + 10 * i + j + 1).astype(dtype)


def _A(*rows):
    return np.array(rows, dtype=np.float64).reshape(-1, 2, 3)


IDENTITY = [1, 0, 0, 0, 1, 0]


def _warp(X, A, D=None, errors="raise"):
    """The reference warp, with every floating-point warning an error: NaN and huge coordinates are kept away
    from floor() and the integer cast (module docstring), and points outside read nothing."""
    with kernels.use("numpy"), np.errstate(all=errors):
        if D is None:
            return ops.warp_affine(X, A)
        return ops.warp_elastic(X, A, D)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_returns_the_image(dtype):
    X = _img(2, dtype)
    out = _warp(X, _A(IDENTITY, IDENTITY).astype(dtype))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, X)


def test_half_pixel_shifts_average_neighbours():
    """A02 = 0.5: sx = j + 0.5, the mean of columns j and j+1 (the last column's right neighbour is 0);
    A12 = 0.25: sy = i + 0.25, 3/4 of row i and 1/4 of row i+1 (0 below the last row)."""
    X = _img()[0]
    right = np.hstack([X[:, 1:], np.zeros((H, 1))])
    down = np.vstack([X[1:], np.zeros((1, W))])
    np.testing.assert_allclose(_warp(_img(), _A([1, 0, 0.5, 0, 1, 0]))[0], 0.5 * X + 0.5 * right, rtol=1e-15)
    np.testing.assert_allclose(_warp(_img(), _A([1, 0, 0, 0, 1, 0.25]))[0], 0.75 * X + 0.25 * down, rtol=1e-15)
    both = _warp(_img(), _A([1, 0, 0.5, 0, 1, 0.25]))[0]
    corner = np.vstack([right[1:], np.zeros((1, W))])
    np.testing.assert_allclose(both, 0.75 * (0.5 * X + 0.5 * right) + 0.25 * (0.5 * down + 0.5 * corner), rtol=1e-15)


def test_negative_shift_reads_the_left_neighbour():
    """A02 = -0.25: sx = j - 0.25: 3/4 of column j, 1/4 of column j-1 (0 left of column 0)."""
    X = _img()[0]
    left = np.hstack([np.zeros((H, 1)), X[:, :-1]])
    np.testing.assert_allclose(_warp(_img(), _A([1, 0, -0.25, 0, 1, 0]))[0], 0.75 * X + 0.25 * left, rtol=1e-15)
    up = np.vstack([np.zeros((1, W)), X[:-1]])
    np.testing.assert_allclose(_warp(_img(), _A([1, 0, 0, 0, 1, -0.75]))[0], 0.25 * X + 0.75 * up, rtol=1e-15)


def test_scale_about_the_centre():
    """A00 = 2 (columns), cx = 2: sx = 2j - 2 -> columns -2, 0, 2, 4, 6: 0, X[:, 0], X[:, 2], X[:, 4], 0.
    A11 = 2 (rows), cy = 1: sy = 2i - 1 -> rows -1, 1, 3: 0, X[1], 0."""
    X = _img()[0]
    out = _warp(_img(), _A([2, 0, 0, 0, 1, 0]))[0]
    np.testing.assert_array_equal(out, np.stack([np.zeros(H), X[:, 0], X[:, 2], X[:, 4], np.zeros(H)], axis=1))
    out = _warp(_img(), _A([1, 0, 0, 0, 2, 0]))[0]
    np.testing.assert_array_equal(out, np.stack([np.zeros(W), X[1], np.zeros(W)]))


def test_shear_terms_mix_rows_and_columns():
    """A01 = 1: sx = j + (i - cy) (a row's shift grows with its distance from the centre row);
    A10 = 0.5: sy = i + (j - cx)/2."""
    X = _img()[0]
    out = _warp(_img(), _A([1, 1, 0, 0, 1, 0]))[0]
    expected = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            sx = j + (i - 1)
            expected[i, j] = X[i, sx] if 0 <= sx < W else 0
    np.testing.assert_array_equal(out, expected)
    out = _warp(_img(), _A([1, 0, 0, 0.5, 1, 0]))[0]
    for i in range(H):
        for j in range(W):
            sy = i + (j - 2) / 2
            y0 = int(np.floor(sy))
            f = sy - y0
            lo = X[y0, j] if 0 <= y0 < H else 0
            hi = X[y0 + 1, j] if 0 <= y0 + 1 < H else 0
            assert out[i, j] == pytest.approx((1 - f) * lo + f * hi, rel=1e-15), (i, j)


def test_rotation_by_a_right_angle():
    """A = [[0, -1, 0], [1, 0, 0]] on a square image: out[i, j] = X[j, W-1-i] (numpy.rot90)."""
    X = np.arange(1, 17, dtype=np.float64).reshape(1, 4, 4)
    with kernels.use("numpy"):
        out = ops.warp_affine(X, _A([0, -1, 0, 1, 0, 0]))
    np.testing.assert_allclose(out[0], np.rot90(X[0]), atol=1e-12)


def test_each_image_has_its_own_matrix():
    X = _img(3)
    out = _warp(X, _A(IDENTITY, [1, 0, 0.5, 0, 1, 0], [1, 0, 0, 0, 1, 0.5]))
    np.testing.assert_array_equal(out[0], X[0])
    np.testing.assert_allclose(out[1, :, :-1], 0.5 * (X[1, :, :-1] + X[1, :, 1:]), rtol=1e-15)
    np.testing.assert_allclose(out[2, :-1], 0.5 * (X[2, :-1] + X[2, 1:]), rtol=1e-15)


def test_points_with_no_neighbour_inside_give_zero_without_reading_x():
    """sx = j - 1 puts column 0 at sx = -1 exactly: no neighbour inside (its right neighbour, column 0, would
    have weight 0): 0 without reading X, even where X is NaN; the other columns read the NaNs. sx = j + W:
    sx >= W everywhere, 0."""
    X = _img()
    X[0] = np.nan
    out = _warp(X, _A([1, 0, -1.0, 0, 1, 0]))
    np.testing.assert_array_equal(out[0, :, 0], 0)
    assert np.isnan(out[0, :, 1:]).all()
    np.testing.assert_array_equal(_warp(X, _A([1, 0, float(W), 0, 1, 0])), 0)


def test_rows_outside_give_zero_without_reading_x():
    X = _img()
    X[0] = np.inf
    out = _warp(X, _A([1, 0, 0, 0, 1, -1]), errors="ignore")   # sy = i - 1: row 0 reads sy = -1 exactly
    # (rows 1 and 2 read the infinite row 0 at weight 0: inf · 0, a warning)
    np.testing.assert_array_equal(out[0, 0], 0)
    out = _warp(X, _A([1, 0, 0, 0, 1, H]), errors="ignore")  # sy = i + H >= H everywhere
    np.testing.assert_array_equal(out[0], 0)


def test_a_nan_neighbour_at_weight_zero_still_makes_nan():
    """Integer source points read the neighbour at +1 with weight 0: a NaN there reaches the pixel."""
    X = _img()
    X[0, 1, 3] = np.nan
    out = _warp(X, _A(IDENTITY))
    nan = np.zeros((H, W), bool)
    nan[0:2, 2:4] = True                                      # (1, 3) itself and the pixels whose +1 reads it
    np.testing.assert_array_equal(np.isnan(out[0]), nan)


def test_nan_coordinates_give_nan():
    X = _img(2)
    out = _warp(X, _A([np.nan, 0, 0, 0, 1, 0], [1, 0, 0, 0, 1, np.nan]))
    assert np.isnan(out).all()
    D = np.zeros((2, 2, H, W))
    D[0, 0, 1, 2] = np.nan
    D[1, 1, 2, 4] = np.nan
    out = _warp(X, _A(IDENTITY, IDENTITY), D)
    assert np.isnan(out).sum() == 2 and np.isnan(out[0, 1, 2]) and np.isnan(out[1, 2, 4])
    D[0, 0, 1, 2] = 1e300                                      # huge but finite: outside, 0
    D[1, 1, 2, 4] = -1e300
    out = _warp(X, _A(IDENTITY, IDENTITY), D)
    assert out[0, 1, 2] == 0 and out[1, 2, 4] == 0


def test_elastic_displacement_adds_to_the_source_point():
    """D[k, 0] moves the source column, D[k, 1] the source row, per pixel."""
    X = _img(2)
    D = np.zeros((2, 2, H, W), np.float32)
    D[0, 0] = 0.5
    D[1, 1] = 0.25
    D[1, 1, 0, 0] = 1.0
    out = _warp(X.astype(np.float32), _A(IDENTITY, IDENTITY).astype(np.float32), D)
    right = np.concatenate([X[0, :, 1:], np.zeros((H, 1))], axis=1)
    np.testing.assert_allclose(out[0], 0.5 * X[0] + 0.5 * right, rtol=1e-7)
    down = np.concatenate([X[1, 1:], np.zeros((1, W))], axis=0)
    expected = 0.75 * X[1] + 0.25 * down
    expected[0, 0] = X[1, 1, 0]
    np.testing.assert_allclose(out[1], expected, rtol=1e-7)
