#!/usr/bin/env python
"""Export a model trained by train_mnist.py to ONNX and score it in onnxruntime against tinynn.

    .venv/bin/python scripts/export_onnx.py --model runs/mnist/model.npz --data-dir ../shared/data/mnist \
        --out runs/mnist/model.onnx

Reads the model file (tinynn.training.load_model), writes the ONNX graph (tinynn.onnx.to_onnx; checked with
onnx.checker) to --out, runs it with onnxruntime on the 10,000 MNIST test images and prints both test
accuracies and the largest difference between the two models' outputs. A run trained with --standardize is
refused (its metrics.json says so; the pixel statistics are not part of the model file). Needs the [onnx] extra.
"""
import argparse
import json
import os
import sys

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model.npz written by scripts/train_mnist.py")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $TINYNN_DATA_DIR, then the cache)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    args = p.parse_args(argv)
    try:
        import onnxruntime as ort

        from tinynn.onnx import to_onnx
    except ImportError as e:
        print(f"error: {e}; install the extra: pip install -e '.[onnx]'", file=sys.stderr)
        return 2
    from tinynn._write import atomic_open
    from tinynn.data import load_mnist
    from tinynn.errors import FileFormatError, WriteError
    from tinynn.training import load_model, predict_raw

    try:
        model = load_model(args.model)
    except (FileNotFoundError, FileFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics = os.path.join(os.path.dirname(os.path.abspath(args.model)), "metrics.json")
    if os.path.exists(metrics):
        with open(metrics) as f:
            if (json.load(f).get("config") or {}).get("standardize"):
                print(f"error: {metrics}: the model was trained on standardised pixels, whose statistics the model "
                      "file does not hold; export a run trained without --standardize", file=sys.stderr)
                return 2
    _, _, X, y = load_mnist(args.data_dir)
    X = X.astype(model.flat.data.dtype, copy=False)
    onnx_model = to_onnx(model, X[:1])
    try:
        with atomic_open(args.out) as f:
            f.write(onnx_model.SerializeToString())
    except WriteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    session = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    Z_onnx = session.run(None, {session.get_inputs()[0].name: X})[0]
    Z = predict_raw(model, X)
    acc_tinynn = float(np.mean(Z.argmax(1) == y))
    acc_onnx = float(np.mean(Z_onnx.argmax(1) == y))
    print(f"wrote {args.out}: test accuracy {100 * acc_onnx:.2f}% in onnxruntime, {100 * acc_tinynn:.2f}% in tinynn; "
          f"largest output difference {float(np.max(np.abs(Z - Z_onnx))):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
