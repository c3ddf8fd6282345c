"""MNIST reading (IDX .gz files), one-hot labels, standardisation and mini-batch indices.

``load_mnist(data_dir=None)`` looks in ``data_dir``, else ``$TINYNN_DATA_DIR``, else the cache directory
(``$XDG_CACHE_HOME/tinynn/mnist`` or ``~/.cache/tinynn/mnist``). When the files are not there it downloads
them into the cache from public mirrors and verifies their MD5 and SHA-256 checksums (files in the cache are
verified again at every load); when that fails too, it raises
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
from typing import Iterator, Optional

import numpy as np

from ._typing import PathLike

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


SHA256 = {  # name -> SHA-256 of the *uncompressed* IDX file (checked after a download and at every load from the cache)
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SIZES = {  # name -> bytes of the uncompressed IDX file
    "train-images-idx3-ubyte.gz": 47040016, "train-labels-idx1-ubyte.gz": 60008,
    "t10k-images-idx3-ubyte.gz": 7840016, "t10k-labels-idx1-ubyte.gz": 10008,
}
MAX_DOWNLOAD = 64 << 20          # bytes of one compressed file from a mirror (the largest is 9.9 MB)
STALE_PART = 600                 # seconds after which a .part file in the cache is a leftover of a killed download


class ChecksumError(ValueError):
    """A MNIST file whose content is not the published one (``path``: the file)."""

    def __init__(self, path, message):
        super().__init__(message)
        self.path = path


def _digests_uncompressed(path, limit):
    """(md5, sha256) of the uncompressed content of a .gz file, reading at most ``limit`` + 1 bytes of it."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    n = 0
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            n += len(chunk)
            if n > limit:
                raise ValueError(f"checksum mismatch (the file decompresses to more than the {limit} bytes "
                                 "expected)")
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def _md5_uncompressed(path) -> str:
    return _digests_uncompressed(path, 1 << 40)[0]


def _fetch(url, out, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        n = 0
        for chunk in iter(lambda: r.read(1 << 20), b""):
            n += len(chunk)
            if n > MAX_DOWNLOAD:
                raise ValueError(f"the download exceeds {MAX_DOWNLOAD} bytes; the MNIST files are smaller")
            out.write(chunk)


def _remove_stale_parts(folder):
    """.part files older than STALE_PART seconds: what a download killed by a signal left behind."""
    import time

    for entry in os.scandir(folder):
        if entry.name.endswith(".part") and entry.is_file():
            try:
                if time.time() - entry.stat().st_mtime > STALE_PART:
                    os.unlink(entry.path)
            except OSError:
                pass


def _download(folder, timeout=30):
    """Fetch every missing file into ``folder`` (via a temp file, checksums verified, then renamed).

    The temp ``.part`` file is removed whatever ends the download: an error, a bad checksum, Ctrl-C
    (KeyboardInterrupt) or another exception; leftovers of a process killed outright are removed at the next
    download."""
    os.makedirs(folder, exist_ok=True)
    _remove_stale_parts(folder)
    for name, md5 in FILES.items():
        dest = os.path.join(folder, name)
        if os.path.exists(dest):
            continue
        errors = []
        for mirror in MIRRORS:
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out:
                    _fetch(mirror + name, out, timeout)
                got_md5, got_sha = _digests_uncompressed(tmp, SIZES[name])
                if got_md5 != md5 or got_sha != SHA256[name]:
                    raise ValueError(f"checksum mismatch (sha256 {got_sha}, expected {SHA256[name]})")
                os.replace(tmp, dest)
                break
            except Exception as e:  # try the next mirror
                errors.append(f"{mirror}{name}: {e}")
            finally:                # Ctrl-C too: no .part file is left in the cache
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            raise OSError("download failed: " + "; ".join(errors))


def find_mnist(data_dir: Optional[PathLike] = None, download: bool = True) -> PathLike:
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


def read_idx(path: PathLike, sha256: Optional[str] = None) -> np.ndarray:
    """Read one IDX(.gz) file: magic (0, 0, dtype 0x08 = ubyte, ndim), dims as big-endian int32, data.

    ``sha256``: the SHA-256 the uncompressed content must have (ChecksumError, a ValueError, otherwise)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        if sha256 is not None:
            raise ChecksumError(path, f"{path}: corrupt or truncated ({type(e).__name__}: {e})") from None
        raise ValueError(f"{path}: corrupt or truncated IDX file ({type(e).__name__}: {e})") from None
    if sha256 is not None:
        got = hashlib.sha256(raw).hexdigest()
        if got != sha256:
            raise ChecksumError(path, f"{path}: checksum mismatch (sha256 {got}, expected {sha256})")
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


def mnist_input_width(data_dir: Optional[PathLike] = None) -> int:
    """Pixels per image of an MNIST-format folder, from its training images' IDX header: 784 for MNIST itself
    (and when no folder is named or it holds no images yet: the cache's MNIST is 28×28)."""
    path = os.path.join(data_dir, "train-images-idx3-ubyte.gz") if data_dir else None
    if path is None or not os.path.exists(path):
        return 784
    with gzip.open(path, "rb") as f:
        head = f.read(16)
    dims = np.frombuffer(head, dtype=">i4", count=3, offset=4) if len(head) == 16 and head[3] == 3 else None
    return 784 if dims is None else int(dims[1]) * int(dims[2])


def load_mnist(data_dir: Optional[PathLike] = None, download: bool = True,
               flatten: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test): pixels as float32 in [0, 1], shape (n, 784) (or (n, 28, 28)),
    labels as int64 in [0, 10)."""
    folder = find_mnist(data_dir, download)
    arrays = _read_all(folder, download)
    Xtr, ytr, Xte, yte = arrays
    scale = np.float32(1.0 / 255.0)
    Xtr = Xtr.astype(np.float32) * scale
    Xte = Xte.astype(np.float32) * scale
    if flatten:
        Xtr, Xte = Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1)
    return Xtr, ytr.astype(np.int64), Xte, yte.astype(np.int64)


def _is_cache(folder):
    try:
        return os.path.samefile(folder, cache_dir())
    except OSError:
        return False


def _read_all(folder, download):
    """The four IDX arrays of ``folder``. In tinynn's cache every file is verified against its SHA-256 at each
    load; a file that fails is removed and downloaded again (when downloads are allowed), else refused with a
    ValueError naming it. Folders given by the user (data_dir, $TINYNN_DATA_DIR) are read as they are."""
    if not _is_cache(folder):
        return [read_idx(os.path.join(folder, f)) for f in FILES]
    try:
        return [read_idx(os.path.join(folder, f), SHA256[f]) for f in FILES]
    except ChecksumError as e:
        os.unlink(e.path)
        if not download:
            raise ValueError(f"{e} in the cache; it was removed (downloads are disabled; load_mnist(download=True) "
                             "fetches it again)") from None
    try:
        _download(folder)
    except OSError as e:
        raise FileNotFoundError(f"a cached MNIST file failed its SHA-256 check and was removed; downloading it "
                                f"again failed ({e})") from None
    return [read_idx(os.path.join(folder, f), SHA256[f]) for f in FILES]


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


def one_hot(y: np.ndarray, n_classes: int) -> np.ndarray:
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


def gen_batches(n: int, batch_size: int, rng: Optional[np.random.Generator] = None) -> Iterator[np.ndarray]:
    """Mini-batch index arrays over range(n), shuffled by ``rng`` when given (indices move, not data)."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
        raise ValueError(f"gen_batches: n must be a non-negative integer (the number of samples), got {n!r}")
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"gen_batches: batch_size must be a positive integer, got {batch_size!r}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"gen_batches: rng must be a np.random.Generator or None, got {type(rng).__name__}")
    order = rng.permutation(int(n)) if rng is not None else np.arange(int(n))
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
