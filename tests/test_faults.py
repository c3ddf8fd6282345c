"""Faults that must lose nothing: a run interrupted by Ctrl-C (SIGINT) or SIGTERM ends at once with 130/143, no
traceback, the checkpoint on disk and the exact command to continue, and continuing gives the uninterrupted run's
model bit for bit; a write that fails (a file-size limit: EFBIG; a folder replaced by a file) stops the run with a
tinynn error naming the file, the reason and the checkpoint to resume from, leaves no partial file and keeps the
previous one."""
import os
import resource
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tinynn import io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join("scripts", "train_mnist.py")


EPOCHS = 60          # long enough that a signal sent after the first checkpoint lands in the middle of the run


def _args(mnist, out, epochs=EPOCHS):
    return [sys.executable, SCRIPT, "--data-dir", mnist, "--hidden", "48", "--epochs", str(epochs),
            "--train-size", "4000", "--val-size", "500", "--quiet", "--no-plot", "--out", str(out)]


def _run(argv, fsize=None, timeout=300):
    def limit():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, preexec_fn=limit)


def _model(path):
    arrays, _ = io.load_npz(path)
    return arrays


def _same_model(a, b):
    A, B = _model(a), _model(b)
    assert A.keys() == B.keys()
    for k in A:
        np.testing.assert_array_equal(A[k], B[k], err_msg=k)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, request):
    from tests.conftest import mnist_dir

    mnist = mnist_dir()
    if mnist is None:
        pytest.skip("MNIST not found")
    out = tmp_path_factory.mktemp("full")
    r = _run(_args(mnist, out))
    assert r.returncode == 0, r.stderr[-2000:]
    return mnist, out


def _continue_command(stderr):
    lines = stderr.strip().splitlines()
    i = next(i for i, line in enumerate(lines) if line.endswith("continue with:"))
    return shlex.split(lines[i + 1])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_ends_at_once_and_resumes_bitwise(sig, uninterrupted, tmp_path):
    mnist, full = uninterrupted
    out = tmp_path / "cut"
    p = subprocess.Popen(_args(mnist, out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = out / "checkpoint.npz"
    t_end = time.monotonic() + 600
    while not ckpt.exists() and p.poll() is None and time.monotonic() < t_end:
        time.sleep(0.02)
    assert ckpt.exists() and p.poll() is None, "the run wrote no checkpoint, or ended, before the signal"
    t0 = time.monotonic()
    p.send_signal(sig)              # at once: on a loaded machine this poll may see the first checkpoint late
    _, stderr = p.communicate(timeout=30)
    took = time.monotonic() - t0
    assert p.returncode == 128 + sig, (p.returncode, stderr[-2000:])
    assert took < 2.0, f"the run took {took:.1f} s to end"
    assert "Traceback" not in stderr, stderr
    assert f"interrupted by {signal.Signals(sig).name} during epoch " in stderr, stderr
    epoch = io.checkpoint_epoch(ckpt)
    assert 1 <= epoch < EPOCHS and f"the checkpoint of epoch {epoch} is {ckpt}" in stderr, stderr
    assert not [f for f in os.listdir(out) if f.startswith(".tmp-")], os.listdir(out)   # no partial file
    cmd = _continue_command(stderr)
    assert cmd[cmd.index("--resume") + 1] == str(ckpt) and cmd[cmd.index("--out") + 1] == str(out)
    r = subprocess.run(cmd + ["--quiet", "--no-plot"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    _same_model(out / "model.npz", full / "model.npz")


@pytest.mark.slow
def test_a_failing_checkpoint_write_keeps_the_previous_one_and_says_where_to_resume(uninterrupted, tmp_path):
    mnist, full = uninterrupted
    out = tmp_path / "run"
    first = _run(_args(mnist, out, EPOCHS) + ["--stop-after", "2"])
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = out / "checkpoint.npz"
    before = ckpt.read_bytes()
    size = len(before)
    # the resumed run may read everything but write no file of the checkpoint's size: EFBIG at epoch 3's
    r = _run(_args(mnist, out) + ["--resume", str(ckpt)], fsize=size // 2)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    assert f"error: cannot write {ckpt}: File too large" in r.stderr, r.stderr
    assert f"the checkpoint of epoch 2 is {ckpt}" in r.stderr, r.stderr
    assert ckpt.read_bytes() == before                       # the previous checkpoint, intact
    assert not [f for f in os.listdir(out) if f.startswith(".tmp-")], os.listdir(out)
    cmd = _continue_command(r.stderr)                        # and it resumes to the uninterrupted result
    done = subprocess.run(cmd + ["--quiet", "--no-plot"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    _same_model(out / "model.npz", full / "model.npz")


def test_the_writer_leaves_nothing_behind_and_names_the_file(tmp_path):
    from tinynn._write import atomic_open, write_json
    from tinynn.errors import WriteError

    target = tmp_path / "m.json"
    write_json(target, {"a": 1})
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:                                              # a child with a 16-byte file-size limit
        os.close(rfd)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))
        try:
            write_json(target, {"b": "x" * 1000})
        except WriteError as e:
            os.write(wfd, str(e).encode())
            os._exit(7)
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd) as f:
        message = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7, message
    assert f"cannot write {target}: File too large" in message
    assert target.read_text() == '{\n "a": 1\n}'            # the previous file
    assert sorted(os.listdir(tmp_path)) == ["m.json"]          # and no temporary one
    folder = tmp_path / "gone"
    folder.write_text("a file where the folder was")
    with pytest.raises(WriteError, match=r"cannot write .*gone/x\.npz: (Not a directory|File exists)"):
        with atomic_open(folder / "x.npz") as f:
            f.write(b"data")
    with pytest.raises(ZeroDivisionError):                    # an error of the writer's body: no file either
        with atomic_open(tmp_path / "y.bin") as f:
            f.write(b"partial")
            1 / 0
    assert sorted(os.listdir(tmp_path)) == ["gone", "m.json"]


def test_every_file_is_written_through_the_one_writer():
    """No module of the package, the scripts or the benchmarks opens a file for writing, dumps JSON or saves a
    figure except through tinynn._write (the download keeps its own temp-file-and-rename, with a checksum)."""
    import re

    pattern = re.compile(r"""open\([^)]*["'](w|wb|a|ab|x|xb)["']|\.savefig\(|json\.dump\(|np\.save(z|z_compressed|txt)?\(""")
    allowed = {os.path.join("tinynn", "_write.py"), os.path.join("tinynn", "data.py"),
               os.path.join("kernels", "cuda", "compile.py")}          # scratch PTX in a temporary folder
    found = []
    for top in ("tinynn", "kernels", "scripts", "benchmarks"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(d, f), ROOT)
                    if rel in allowed:
                        continue
                    previous = ""
                    for i, line in enumerate(open(os.path.join(d, f), encoding="utf-8"), 1):
                        if pattern.search(line) and "atomic_open" not in line + previous:
                            found.append(f"{rel}:{i}: {line.strip()}")
                        previous = line
    assert not found, "files written around tinynn._write:\n" + "\n".join(found)


@pytest.mark.slow
def test_resume_remembers_the_data_folder(uninterrupted, tmp_path):
    """--resume without --data-dir reads MNIST where the run did (the checkpoint's config keeps --data-dir), with
    no $TINYNN_DATA_DIR and an empty cache."""
    mnist, _ = uninterrupted
    out = tmp_path / "run"
    first = _run(_args(mnist, out, 3) + ["--stop-after", "1"])
    assert first.returncode == 0, first.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k != "TINYNN_DATA_DIR"}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, SCRIPT, "--resume", str(out / "checkpoint.npz"), "--epochs", "3", "--out",
                        str(out), "--quiet", "--no-plot"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert io.checkpoint_epoch(out / "checkpoint.npz") == 3
