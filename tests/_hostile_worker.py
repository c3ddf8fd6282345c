"""Run by tests/test_hostile_files.py, in a subprocess under a memory limit (RLIMIT_AS):

    python tests/_hostile_worker.py LOADER SPEC.json

LOADER is one of ``estimator`` (MLPClassifier.load), ``model`` (training.load_model), ``checkpoint``
(io.load_npz + Trainer.load_state of a trainer with an EMA callback, the test's base checkpoint) and ``resume``
(scripts/train_mnist.py's main with --resume, in this process). SPEC.json: {"files": [...], "data_dir": ...,
"out": ...}. Before each file the worker prints ``START <file>``; after it ``RESULT <json>`` with what the load
did (the exception's type and message, or the script's return code and stderr) and how much the process's peak
resident memory rose during it (ru_maxrss). A crash shows as a negative return code after a START line.
"""
import contextlib
import io as pyio
import json
import os
import resource
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import numpy as np  # noqa: E402

import tinynn as tn  # noqa: E402
from tinynn import averaging, io  # noqa: E402
from tinynn.training import Trainer, build_mlp, load_model  # noqa: E402


def checkpoint_trainer():
    """The trainer that wrote the tests' base checkpoint (tests/test_hostile_files.py ``_base_checkpoint``)."""
    model = build_mlp([4, 5, 3], dropout=0.2, seed=0)
    opt = tn.optim.Adam(model.parameters(), lr=0.01)
    sched = tn.schedules.make("cosine", opt, 20, 5)
    return Trainer(model, tn.SoftmaxCrossEntropy(), opt, sched, batch_size=8, rng=0,
                   callbacks=[averaging.EMA(0.9), averaging.SnapshotEnsemble(2, 10)])


def load(loader, path, spec):
    if loader == "estimator":
        tn.MLPClassifier.load(path)
    elif loader == "model":
        load_model(path)
    elif loader == "checkpoint":
        checkpoint_trainer().load_state(*io.load_npz(path, kind="checkpoint"))
    elif loader == "resume":
        import train_mnist

        err = pyio.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(pyio.StringIO()):
            rc = train_mnist.main(["--resume", path, "--data-dir", spec["data_dir"], "--out", spec["out"],
                                   "--epochs", "2", "--quiet"])
        return {"rc": rc, "stderr": err.getvalue()}
    return {"rc": None}


def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024          # bytes (Linux: KiB)


def main():
    loader, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    if spec.get("warm"):                                 # a good file first: the baseline includes a normal load
        load(loader, spec["warm"], spec)
    for path in spec["files"]:
        print("START " + path, flush=True)
        before = peak()
        out = {"file": path}
        try:
            out.update(load(loader, path, spec) or {})
            out["error"] = None
        except MemoryError as e:
            out.update(error="MemoryError", message=str(e)[:2000])
        except Exception as e:                            # noqa: BLE001 -- reported, the test judges it
            out.update(error=type(e).__name__, message=str(e)[:100_000], message_length=len(str(e)),
                       file_format_error=isinstance(e, tn.errors.FileFormatError),
                       where=traceback.format_exc()[-1500:])
        out["peak_rise"] = peak() - before
        print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
