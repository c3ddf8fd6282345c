"""The MNIST download path, against a local HTTP server on the loopback interface (no outside network)."""
import functools
import gzip
import http.server
import os
import shutil
import threading

import pytest

import tinynn as tn


@pytest.fixture
def mirror(tmp_path):
    """Serve a folder over http://127.0.0.1:<port>/; yields (folder, url)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def empty_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNN_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tinynn" / "mnist"


def test_downloads_into_cache_and_verifies(mnist_path, mirror, empty_env, monkeypatch):
    folder, url = mirror
    for name in tn.data.FILES:
        shutil.copy(os.path.join(mnist_path, name), folder / name)
    monkeypatch.setattr(tn.data, "MIRRORS", (url,))
    Xtr, ytr, Xte, yte = tn.data.load_mnist()
    assert Xtr.shape == (60000, 784) and Xte.shape == (10000, 784)
    assert sorted(os.listdir(empty_env)) == sorted(tn.data.FILES)   # no .part files left behind
    assert tn.data.find_mnist(download=False) == str(empty_env)     # the cache is found next time


def test_checksum_mismatch_is_refused(mirror, empty_env, monkeypatch):
    folder, url = mirror
    for name in tn.data.FILES:
        with gzip.open(folder / name, "wb") as f:
            f.write(b"\x00\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x07")  # a valid IDX file, wrong content
    monkeypatch.setattr(tn.data, "MIRRORS", (url,))
    with pytest.raises(FileNotFoundError, match="checksum mismatch"):
        tn.data.load_mnist()
    assert not any(p.endswith(".gz") for p in os.listdir(empty_env))  # nothing unverified kept


# ----------------------------------------------------------------------------------------------- leftovers (issue 29)
def _serve_copies(mnist_path, folder):
    for name in tn.data.FILES:
        shutil.copy(os.path.join(mnist_path, name), folder / name)


def test_ctrl_c_during_the_download_leaves_no_part_file(mnist_path, mirror, empty_env, monkeypatch):
    folder, url = mirror
    _serve_copies(mnist_path, folder)
    monkeypatch.setattr(tn.data, "MIRRORS", (url,))
    real_fetch = tn.data._fetch

    def interrupted(u, out, timeout):                   # half a file written, then Ctrl-C
        out.write(b"\x1f\x8b" + b"\x00" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(tn.data, "_fetch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tn.data.load_mnist()
    assert os.listdir(empty_env) == []                  # no .part file, nothing unverified
    monkeypatch.setattr(tn.data, "_fetch", real_fetch)  # the next run downloads as if nothing happened
    assert tn.data.load_mnist()[0].shape == (60000, 784)
    assert sorted(os.listdir(empty_env)) == sorted(tn.data.FILES)


def test_leftovers_of_a_killed_download_are_removed(mnist_path, mirror, empty_env, monkeypatch):
    folder, url = mirror
    _serve_copies(mnist_path, folder)
    monkeypatch.setattr(tn.data, "MIRRORS", (url,))
    os.makedirs(empty_env)
    stale = empty_env / "tmpabc.part"
    stale.write_bytes(b"half a file")
    os.utime(stale, (0, 0))                             # written long ago by a process killed outright
    tn.data.load_mnist()
    assert sorted(os.listdir(empty_env)) == sorted(tn.data.FILES)


def test_cached_files_are_verified_at_every_load(mnist_path, mirror, empty_env, monkeypatch):
    """A file in the cache that is not MNIST's (edited, truncated, swapped) fails its SHA-256 check at the next
    load: removed, then fetched again (or, with downloads off, a ValueError naming it)."""
    folder, url = mirror
    _serve_copies(mnist_path, folder)
    monkeypatch.setattr(tn.data, "MIRRORS", (url,))
    os.makedirs(empty_env)
    _serve_copies(mnist_path, empty_env)
    name = "t10k-labels-idx1-ubyte.gz"
    with gzip.open(empty_env / name, "wb") as f:        # a valid IDX file with the wrong labels
        f.write(b"\x00\x00\x08\x01" + (10000).to_bytes(4, "big") + bytes(10000))
    with pytest.raises(ValueError, match=f"{name}: checksum mismatch .*sha256.*removed"):
        tn.data.load_mnist(download=False)
    assert name not in os.listdir(empty_env)
    (empty_env / name).write_bytes(b"truncated")        # corrupt: refused too, then downloaded again
    Xtr, ytr, Xte, yte = tn.data.load_mnist()
    assert yte[:5].tolist() == [7, 2, 1, 0, 4]


def test_a_mirror_sending_too_much_is_cut_off(mirror, empty_env, monkeypatch):
    folder, url = mirror
    for name in tn.data.FILES:
        (folder / name).write_bytes(os.urandom(5000))
    monkeypatch.setattr(tn.data, "MIRRORS", (url,))
    monkeypatch.setattr(tn.data, "MAX_DOWNLOAD", 4096)
    with pytest.raises(FileNotFoundError, match="exceeds 4096 bytes"):
        tn.data.load_mnist()
    assert os.listdir(empty_env) == []
