"""tinynn.augment and the augmentation ops: the geometry of the warp (shifts, rotations, zero outside), the
Gaussian smoothing, the photometric transforms, the draws (only from the given generator), the preset and
spec parsing, the Trainer hook and bitwise-exact resume with augmentation on.

Parity of every backend with the NumPy reference is in tests/test_kernels.py (tests/augment_cases.py)."""
import json
import os
import sys

import numpy as np
import pytest

import tinynn as tn
from tinynn import io, kernels
from tinynn.augment import PRESETS, TRANSFORMS, Augment, compose_inverse, gaussian_taps, make
from tinynn.kernels import ops

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import train_mnist  # noqa: E402

HOST = ["numpy", "cpu"]


def _images(n=3, H=28, W=28, seed=0):
    return np.random.default_rng(seed).random((n, H, W), dtype=np.float32)


def _map(n, tx=0.0, ty=0.0, theta=0.0, sx=1.0, sy=1.0, shear=0.0):
    f = lambda v: np.full(n, v, float)  # noqa: E731
    return compose_inverse(f(tx), f(ty), f(theta), f(sx), f(sy), f(shear))


@pytest.mark.parametrize("backend", HOST)
def test_identity_map_returns_the_image(backend):
    X = _images()
    with kernels.use(backend):
        np.testing.assert_array_equal(ops.warp_affine(X, _map(3)), X)
        np.testing.assert_array_equal(ops.warp_elastic(X, _map(3), np.zeros((3, 2, 28, 28), np.float32)), X)


@pytest.mark.parametrize("backend", HOST)
def test_integer_translation_shifts_and_fills_with_zeros(backend):
    X = _images(H=10, W=12)
    with kernels.use(backend):
        Y = ops.warp_affine(X, _map(3, tx=2, ty=-1))           # content moves 2 right, 1 up
    np.testing.assert_array_equal(Y[:, :-1, 2:], X[:, 1:, :-2])
    assert np.all(Y[:, :, :2] == 0) and np.all(Y[:, -1, :] == 0)


@pytest.mark.parametrize("backend", HOST)
def test_quarter_turn_is_rot90(backend):
    """θ = 90° on a square image is np.rot90(k=-1): with rows growing downwards, a positive angle turns the
    content clockwise on the screen (pinned so that the convention cannot flip silently)."""
    X = _images(H=9, W=9)
    with kernels.use(backend):
        Y = ops.warp_affine(X, _map(3, theta=np.pi / 2))
    np.testing.assert_allclose(Y, np.rot90(X, k=-1, axes=(1, 2)), atol=1e-6)


@pytest.mark.parametrize("backend", HOST)
def test_half_pixel_shift_is_the_mean_of_neighbours(backend):
    X = _images(n=2, H=5, W=6)
    with kernels.use(backend):
        Y = ops.warp_affine(X, _map(2, tx=-0.5))                # reads x + 0.5
    np.testing.assert_allclose(Y[:, :, :-1], (X[:, :, :-1] + X[:, :, 1:]) / 2, rtol=1e-6)
    np.testing.assert_allclose(Y[:, :, -1], X[:, :, -1] / 2, rtol=1e-6)          # the neighbour outside is 0


def test_compose_inverse_inverts_the_forward_map():
    rng = np.random.default_rng(1)
    n = 5
    tx, ty, th = rng.uniform(-3, 3, n), rng.uniform(-3, 3, n), rng.uniform(-1, 1, n)
    sx, sy, h = rng.uniform(0.8, 1.2, n), rng.uniform(0.8, 1.2, n), rng.uniform(-0.2, 0.2, n)
    A = compose_inverse(tx, ty, th, sx, sy, h, dtype=np.float64)
    p = rng.standard_normal((n, 2))
    for k in range(n):
        c, s = np.cos(th[k]), np.sin(th[k])
        L = np.array([[c, -s], [s, c]]) @ np.array([[1, h[k]], [0, 1]]) @ np.diag([sx[k], sy[k]])
        q = L @ p[k] + [tx[k], ty[k]]                            # forward
        np.testing.assert_allclose(A[k, :, :2] @ q + A[k, :, 2], p[k], atol=1e-12)


@pytest.mark.parametrize("backend", HOST)
def test_blur_of_a_delta_is_the_gaussian(backend):
    F = np.zeros((1, 31, 31), np.float64)
    F[0, 15, 15] = 1
    k = gaussian_taps(2.0, dtype=np.float64)
    r = (len(k) - 1) // 2
    with kernels.use(backend):
        G = ops.blur_separable(F, k, 3.0)
    expected = np.zeros((31, 31))
    expected[15 - r:16 + r, 15 - r:16 + r] = 3.0 * np.outer(k, k)
    np.testing.assert_allclose(G[0], expected, atol=1e-15)
    assert abs(k.sum() - 1) < 1e-12 and len(k) == 2 * 6 + 1      # 3σ each side


def test_blur_matches_scipy_gaussian_filter():
    ndimage = pytest.importorskip("scipy.ndimage")
    F = np.random.default_rng(2).uniform(-1, 1, (4, 28, 28))
    k = gaussian_taps(4.0, truncate=3.0, dtype=np.float64)
    got = ops.blur_separable(F, k, 1.0)
    want = np.stack([ndimage.gaussian_filter(f, 4.0, mode="constant", cval=0.0, truncate=3.0) for f in F])
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("backend", HOST)
def test_photometric_ops_clip(backend):
    X = _images(n=2, H=4, W=4)
    c, b = np.array([2.0, 0.5], np.float32), np.array([0.1, -0.2], np.float32)
    N = np.full_like(X, 0.7)
    with kernels.use(backend):
        Y = ops.brightness_contrast(X, c, b, 0.0, 1.0)
        Z = ops.add_noise(X, N, 0.0, 1.0)
    np.testing.assert_allclose(Y, np.clip(c[:, None, None] * X + b[:, None, None], 0, 1), rtol=1e-6)
    assert Z.min() >= 0.7 - 1e-7 and Z.max() == 1.0


# --------------------------------------------------------------------------- the Augment callable
def test_draws_come_from_the_generator_only():
    X = _images(n=16).reshape(16, 784)
    aug = Augment.from_spec("mnist,noise,brightness,contrast")
    a = aug(X, np.random.default_rng(5)).copy()
    b = aug(X, np.random.default_rng(5)).copy()
    c = aug(X, np.random.default_rng(6)).copy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == X.shape and a.dtype == X.dtype
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(X, _images(n=16).reshape(16, 784))       # the input is not touched


def test_backends_agree_on_a_whole_augmentation():
    X = _images(n=8).reshape(8, 784)
    aug = Augment.from_spec("mnist,noise=0.05,contrast,brightness")
    with kernels.use("numpy"):
        ref = aug(X, np.random.default_rng(3)).copy()
    got = aug(X, np.random.default_rng(3)).copy()
    np.testing.assert_allclose(got, ref, atol=2e-5)


def test_elastic_field_has_the_expected_size():
    """D = α G_σ ⊛ U(-1, 1): in the image centre (away from the zero padding) its standard deviation is
    α √(Σ k²)² / √3 per axis; the distorted digit keeps most of its ink."""
    alpha, sigma = 34.0, 4.0
    k = gaussian_taps(sigma, dtype=np.float64)
    U = np.random.default_rng(0).uniform(-1, 1, (400, 28, 28))
    D = ops.blur_separable(U, k, alpha)
    expected = alpha * np.sum(k ** 2) / np.sqrt(3)
    assert abs(D[:, 10:18, 10:18].std() / expected - 1) < 0.1


def test_augmented_digit_stays_recognisable():
    """A blob moved by the preset stays mostly inside the frame, and no transform is the identity."""
    X = np.zeros((32, 28, 28), np.float32)
    X[:, 9:19, 11:17] = 1
    aug = Augment.from_spec("mnist")
    Y = aug(X.reshape(32, 784), np.random.default_rng(0)).reshape(32, 28, 28)
    ink = Y.sum(axis=(1, 2)) / X.sum(axis=(1, 2))
    assert np.all((ink > 0.4) & (ink < 2.5))       # elastic stretching changes the area, up to ~2x
    assert np.all(np.abs(Y - X).sum(axis=(1, 2)) > 1)


@pytest.mark.parametrize("spec,expected", [
    ("mnist", PRESETS["mnist"]),
    ("rotate,elastic", dict(rotate=TRANSFORMS["rotate"], elastic=TRANSFORMS["elastic"])),
    ("rotate=15, elastic=30:5 ,noise=0.05", dict(rotate=15.0, elastic=(30.0, 5.0), noise=0.05)),
    ("affine,noise", dict(PRESETS["affine"], noise=TRANSFORMS["noise"])),
])
def test_spec(spec, expected):
    aug = Augment.from_spec(spec)
    for name, v in expected.items():
        assert getattr(aug, name) == (tuple(v) if isinstance(v, (list, tuple)) else v), name


@pytest.mark.parametrize("spec,match", [("twist", "unknown augmentation 'twist'"), ("rotate=x", "rotate=NUMBER"),
                                        ("elastic=3", "ALPHA:SIGMA"), ("", "empty"), ("scale=1.5", "< 1"),
                                        ("rotate=-3", ">= 0")])
def test_bad_spec(spec, match):
    with pytest.raises(ValueError, match=match):
        Augment.from_spec(spec)


def test_make_none_and_bad_shape():
    assert make(None) is None and make("none") is None
    with pytest.raises(ValueError, match="28x28"):
        Augment(rotate=5)(np.zeros((2, 100), np.float32), np.random.default_rng(0))


def test_trainer_hook_uses_its_own_generator():
    X = _images(n=64).reshape(64, 784)
    y = np.arange(64) % 10
    seen = []

    def model_and_trainer():
        model = tn.training.build_mlp([784, 16, 10], seed=0)
        opt = tn.optim.SGD(model.parameters(), lr=0.1)
        aug = Augment.from_spec("mnist")

        def spy(Xb, rng):
            out = aug(Xb, rng)
            seen.append(out.copy())
            return out

        return tn.training.Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=32, rng=0, augment=spy,
                                   aug_rng=7)

    t = model_and_trainer()
    t.train_epoch(X, y)
    first = list(seen)
    seen.clear()
    t2 = model_and_trainer()
    t2.train_epoch(X, y)
    assert len(first) == 2
    for a, b in zip(first, seen):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- the script
QUICK = ["--lr", "0.003", "--train-size", "600", "--val-size", "200", "--hidden", "32", "--batch-size", "100",
         "--quiet", "--dropout", "0.3"]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [["--augment", "mnist,noise,contrast"],
                                   ["--augment", "elastic", "--snapshots", "2", "--ema", "0.9"],
                                   ["--augment", "rotate", "--swa", "--batch-norm"]])
def test_resume_with_augmentation_is_bitwise_identical(mnist_path, tmp_path, extra):
    common = ["--data-dir", mnist_path] + QUICK + extra
    straight, part = tmp_path / "straight", tmp_path / "part"
    assert train_mnist.main(common + ["--epochs", "4", "--out", str(straight)]) == 0
    assert train_mnist.main(common + ["--epochs", "4", "--stop-after", "2", "--out", str(part)]) == 0
    resume = ["--resume", str(part / "checkpoint.npz")]
    assert train_mnist.main(common + ["--epochs", "4", "--out", str(part)] + resume) == 0
    for name in ["model.npz"] + [f"model_{k}.npz" for k in ("swa", "ema") if f"--{k}" in extra]:
        a, _ = io.load_npz(straight / name)
        b, _ = io.load_npz(part / name)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: {k}")
    ma = json.loads((straight / "metrics.json").read_text())
    mb = json.loads((part / "metrics.json").read_text())
    assert ma["train_loss"] == mb["train_loss"] and ma["test_accuracy"] == mb["test_accuracy"]
    assert ma.get("averages") == mb.get("averages")
    assert ma["augment"] == Augment.from_spec(extra[1]).config()


@pytest.mark.slow
def test_augmentation_changes_training(mnist_path, tmp_path):
    common = ["--data-dir", mnist_path, "--epochs", "1"] + QUICK
    assert train_mnist.main(common + ["--out", str(tmp_path / "plain")]) == 0
    assert train_mnist.main(common + ["--out", str(tmp_path / "aug"), "--augment", "mnist"]) == 0
    a = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    b = json.loads((tmp_path / "aug" / "metrics.json").read_text())
    assert a["train_loss"] != b["train_loss"]


def test_script_refuses_standardize_with_augment(tmp_path, capsys):
    assert train_mnist.main(["--augment", "mnist", "--standardize", "--out", str(tmp_path)]) == 2
    assert "--standardize" in capsys.readouterr().err
    assert train_mnist.main(["--augment", "spin", "--out", str(tmp_path)]) == 2
    assert "unknown augmentation" in capsys.readouterr().err


@pytest.mark.gpu
def test_augment_on_a_device_batch_equals_the_host():
    """Given a device batch, Augment draws the same numbers on the host and runs the CUDA kernels."""
    X = _images(n=2).reshape(2, 784)
    spec = "rotate,translate,elastic,noise=0.05,contrast,brightness"
    host = Augment.from_spec(spec)(X, np.random.default_rng(1)).copy()
    d = kernels.to_device(X, "cuda")
    out = Augment.from_spec(spec)(d, np.random.default_rng(1))
    assert kernels.device_of(out) == "cuda"
    np.testing.assert_allclose(kernels.to_host(out), host, atol=2e-5)
