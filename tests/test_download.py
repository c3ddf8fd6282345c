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
