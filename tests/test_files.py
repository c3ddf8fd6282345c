"""Model and checkpoint files: refused pickles, corrupt files, version checks, atomic writes."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tinynn import io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def good_file(path, value=1.0):
    io.save_npz(path, {"w": np.full((3, 2), value)}, {"note": "x"}, kind="thing")
    return path


def test_roundtrip(tmp_path):
    arrays, meta = io.load_npz(good_file(tmp_path / "a.npz"), kind="thing")
    np.testing.assert_array_equal(arrays["w"], np.ones((3, 2)))
    assert meta["note"] == "x" and meta["format_version"] == io.FORMAT_VERSION


def test_pickled_objects_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    np.savez(path, w=np.array([Evil()], dtype=object), __meta__=np.array(json.dumps(
        {"format": "tinynn", "format_version": io.FORMAT_VERSION, "kind": "thing"})))
    with pytest.raises(ValueError, match=r"evil.npz: refused: the file holds pickled objects"):
        io.load_npz(path)
    assert not marker.exists()  # nothing ran


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "flipped"])
def test_corrupt_files_name_the_file(tmp_path, damage):
    path = good_file(tmp_path / "m.npz")
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    else:  # a flipped byte inside the stored array: the zip CRC catches it
        i = data.index(b"\x00\x00\xf0?")  # the bytes of the float 1.0
        path.write_bytes(data[:i] + b"\x01" + data[i + 1:])
    with pytest.raises(ValueError, match="m.npz"):
        io.load_npz(path)


def test_other_format_version_says_so(tmp_path):
    path = tmp_path / "old.npz"
    np.savez(path, w=np.ones(2), __meta__=np.array(json.dumps({"format": "tinynn", "format_version": 99, "kind": "x"})))
    with pytest.raises(ValueError, match="format version 99"):
        io.load_npz(path)


def test_not_a_tinynn_file(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.ones(2))
    with pytest.raises(ValueError, match="not a tinynn file"):
        io.load_npz(path)


def test_killed_writer_leaves_previous_file_intact(tmp_path):
    """SIGKILL a process in the middle of writing a large checkpoint: the old file must still load."""
    path = tmp_path / "ckpt.npz"
    good_file(path, value=7.0)
    script = textwrap.dedent(f"""
        import numpy as np, sys
        sys.path.insert(0, {ROOT!r})
        from tinynn import io
        big = {{"w%d" % i: np.random.default_rng(i).standard_normal(4_000_000) for i in range(40)}}
        print("writing", flush=True)
        while True:
            io.save_npz({str(path)!r}, big, {{}}, kind="thing")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.5)  # well inside the ~1.3 GB write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    arrays, _ = io.load_npz(path, kind="thing")
    assert set(arrays) == {"w"} or len(arrays) == 40   # the old file, or a complete new one; never a torn one
    if set(arrays) == {"w"}:
        np.testing.assert_array_equal(arrays["w"], np.full((3, 2), 7.0))
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    assert len(leftovers) <= 1  # at most the killed writer's temp file, never renamed into place
