"""MNIST reading (IDX .gz files), one-hot labels, standardisation and mini-batch indices.

``load_mnist(data_dir=None)`` looks in ``data_dir``, else ``$TINYNN_DATA_DIR``, else the cache directory
(``$XDG_CACHE_HOME/tinynn/mnist`` or ``~/.cache/tinynn/mnist``). When the files are not there it downloads
them into the cache from public mirrors and verifies their MD5 checksums; when that fails too, it raises
FileNotFoundError naming every folder tried and how to point at a copy.
"""
from __future__ import annotations

import gzip
import hashlib
import numbers
import os
import shutil
import tempfile
import urllib.request
import zlib

import numpy as np

FILES = {  # name -> MD5 of the *uncompressed* IDX file
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tinynn", "mnist")


def _complete(folder) -> bool:
    return bool(folder) and all(os.path.exists(os.path.join(folder, f)) for f in FILES)


def _md5_uncompressed(path) -> str:
    h = hashlib.md5()
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(folder, timeout=30):
    """Fetch every missing file into ``folder`` (via a temp file, checksum verified, then renamed)."""
    os.makedirs(folder, exist_ok=True)
    for name, md5 in FILES.items():
        dest = os.path.join(folder, name)
        if os.path.exists(dest):
            continue
        errors = []
        for mirror in MIRRORS:
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(mirror + name, timeout=timeout) as r:
                    shutil.copyfileobj(r, out)
                got = _md5_uncompressed(tmp)
                if got != md5:
                    raise ValueError(f"checksum mismatch (md5 {got}, expected {md5})")
                os.replace(tmp, dest)
                break
            except Exception as e:  # try the next mirror
                errors.append(f"{mirror}{name}: {e}")
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            raise OSError("download failed: " + "; ".join(errors))


def find_mnist(data_dir=None, download=True) -> str:
    """The folder holding the four MNIST files (downloading into the cache if needed)."""
    env = os.environ.get("TINYNN_DATA_DIR")
    tried = []
    for folder in (data_dir, env, cache_dir()):
        if folder:
            tried.append(os.path.abspath(folder))
            if _complete(folder):
                return folder
    reason = "downloads disabled"
    if download:
        try:
            _download(cache_dir())
            return cache_dir()
        except OSError as e:
            reason = str(e)
    raise FileNotFoundError(
        "MNIST not found. Looked for " + ", ".join(FILES) + " in: " + "; ".join(tried)
        + f". Download into the cache failed ({reason}). Point tinynn at a copy with --data-dir DIR "
        "(scripts), load_mnist(data_dir=DIR), or the environment variable TINYNN_DATA_DIR=DIR.")


def read_idx(path) -> np.ndarray:
    """Read one IDX(.gz) file: magic (0, 0, dtype 0x08 = ubyte, ndim), dims as big-endian int32, data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: corrupt or truncated IDX file ({type(e).__name__}: {e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header (expected {ndim} dimensions, found {len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    count = 1
    for d in dims:
        count *= d
    if any(d < 0 for d in dims) or data.size != count:
        raise ValueError(f"{path}: expected {count} values for shape {dims}, found {data.size}")
    return data.reshape(dims)


def load_mnist(data_dir=None, download=True, flatten=True):
    """(X_train, y_train, X_test, y_test): pixels as float32 in [0, 1], shape (n, 784) (or (n, 28, 28)),
    labels as int64 in [0, 10)."""
    folder = find_mnist(data_dir, download)
    arrays = [read_idx(os.path.join(folder, f)) for f in FILES]
    Xtr, ytr, Xte, yte = arrays
    scale = np.float32(1.0 / 255.0)
    Xtr = Xtr.astype(np.float32) * scale
    Xte = Xte.astype(np.float32) * scale
    if flatten:
        Xtr, Xte = Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1)
    return Xtr, ytr.astype(np.int64), Xte, yte.astype(np.int64)


def standardize(X_train, *others, eps=1e-7):
    """The lectures' input normalisation: x ← (x - μ) / σ per feature, μ and σ from the training split only."""
    from ._validation import check_float

    X_train = check_float(X_train, "standardize: X_train")
    others = tuple(check_float(X, f"standardize: array {i + 1}", width=X_train.shape[len(X_train.shape) - 1])
                   for i, X in enumerate(others))
    mu = X_train.mean(axis=0, dtype=np.float64)
    sd = X_train.std(axis=0, dtype=np.float64)
    f = lambda X: ((X - mu) / (sd + eps)).astype(X.dtype)  # noqa: E731
    return (f(X_train),) + tuple(f(X) for X in others)


def one_hot(y, n_classes):
    """(n, n_classes) float32 rows with a 1 at each label's column; labels are integers in [0, n_classes)."""
    from ._validation import as_array, check_labels, check_positive_int

    n_classes = check_positive_int(n_classes, "one_hot: n_classes")
    y = as_array(y, "one_hot")
    if y.ndim != 1:
        raise ValueError(f"one_hot: expected a 1-D array of labels, got shape {y.shape}")
    y = check_labels(y, "one_hot", n=y.shape[0], n_classes=n_classes)
    out = np.zeros((len(y), n_classes), np.float32)
    out[np.arange(len(y)), y] = 1
    return out


def gen_batches(n, batch_size, rng=None):
    """Mini-batch index arrays over range(n), shuffled by ``rng`` when given (indices move, not data)."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
        raise ValueError(f"gen_batches: n must be a non-negative integer (the number of samples), got {n!r}")
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"gen_batches: batch_size must be a positive integer, got {batch_size!r}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"gen_batches: rng must be a np.random.Generator or None, got {type(rng).__name__}")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return (order[start:start + batch_size] for start in range(0, int(n), int(batch_size)))


def mnist_split(data_dir=None, seed=0, val_size=5000, train_size=None, standardize_pixels=False):
    """The scripts' split of MNIST: (Xt, yt, Xv, yv, Xte, yte). The validation rows are drawn from the training
    images by ``seed``, then the first ``train_size`` of the rest train; optionally standardised with the
    training split's statistics."""
    Xtr, ytr, Xte, yte = load_mnist(data_dir)
    order = np.random.default_rng(seed).permutation(len(Xtr))
    val, train = order[:val_size], order[val_size:]
    if train_size:
        train = train[:train_size]
    Xv, yv, Xt, yt = Xtr[val], ytr[val], Xtr[train], ytr[train]
    if standardize_pixels:
        Xt, Xv, Xte = standardize(Xt, Xv, Xte)
    return Xt, yt, Xv, yv, Xte, yte
