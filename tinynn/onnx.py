"""ONNX export: ``to_onnx(model_or_estimator, X_sample)`` -> ``onnx.ModelProto`` (skl2onnx's argument order).

Built with the ``onnx`` package's helpers (``pip install 'tinynn-fc[onnx]'``) and checked with
``onnx.checker``. What each tinynn piece becomes (eval mode, as ``predict``):

    Linear             MatMul(X, W) + b
    activations        Relu, Tanh, Sigmoid, Identity, Exp; LeakyReLU, ELU, Softplus(beta) from Max/Exp/Log;
                       GELU 0.5x(1+Erf(x/√2)) (Erf in float32: onnxruntime has none in float64); GELU-tanh 0.5x(1+Tanh(√(2/π)(x+0.044715x³))); SiLU x·Sigmoid(x)
    BatchNorm1d        BatchNormalization with the running statistics
    Dropout            nothing (identity at inference)
    MLPRegressor       "variable": the output activation's values, (n,) or (n, n_outputs) -> (n, n_outputs)
    MLPClassifier      "label" (classes_) and "probabilities" (predict_proba's columns)

    LayerNorm          LayerNormalization over the features (opset 17)
    Embedding          Gather of the table's rows (a Sequential that starts with one takes int64 indices, (n,))

``register_skl2onnx()`` registers both estimators with skl2onnx (the same graph spliced into skl2onnx's), so
``skl2onnx.to_onnx(make_pipeline(StandardScaler(), MLPClassifier(...)), X[:1])`` converts a whole Pipeline.

Multi-label classifiers give "label" as predict's indicator matrix (P > 0.5, int64) and "probabilities".
Not exported (refused with NotImplementedError naming what): snapshot ensembles (``snapshots=``), a classifier
fitted on one class.
"""
from __future__ import annotations

import math

import numpy as np

from . import kernels


def _onnx():
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:                                    # pragma: no cover
        raise ImportError(f"tinynn.onnx needs the onnx package: pip install 'tinynn-fc[onnx]' ({e})") from e
    return onnx, TensorProto, helper, numpy_helper


class _Graph:
    def __init__(self, dtype):
        self.onnx, self.TP, self.h, self.nh = _onnx()
        self.dtype = np.dtype(dtype)
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value, base="c", dtype=None):
        name = self.name(base)
        self.inits.append(self.nh.from_array(np.asarray(value, dtype=dtype or self.dtype), name))
        return name

    def op(self, op_type, inputs, base=None, **attrs):
        out = self.name(base or op_type.lower())
        self.nodes.append(self.h.make_node(op_type, list(inputs), [out], **attrs))
        return out


_SIMPLE = {"ReLU": "Relu", "Tanh": "Tanh", "Sigmoid": "Sigmoid", "Identity": "Identity", "Exp": "Exp"}


def _layer(g, layer, x):
    from .layers import BatchNorm1d, Dropout, Embedding, LayerNorm, Linear

    kind = type(layer).__name__
    if isinstance(layer, Linear):
        W = kernels.to_host(layer.weight.data)
        y = g.op("MatMul", [x, g.const(W, "W")])
        return g.op("Add", [y, g.const(kernels.to_host(layer.bias.data), "b")]) if layer.bias is not None else y
    if isinstance(layer, Dropout):
        return x
    if isinstance(layer, BatchNorm1d):
        return g.op("BatchNormalization", [x, g.const(kernels.to_host(layer.weight.data), "gamma"),
                                           g.const(kernels.to_host(layer.bias.data), "beta"),
                                           g.const(kernels.to_host(layer.running_mean), "mean"),
                                           g.const(kernels.to_host(layer.running_var), "var")],
                    epsilon=float(layer.eps))
    if isinstance(layer, LayerNorm):                             # over the features, opset 17's LayerNormalization
        return g.op("LayerNormalization", [x, g.const(kernels.to_host(layer.weight.data), "gamma"),
                                           g.const(kernels.to_host(layer.bias.data), "beta")],
                    axis=-1, epsilon=float(layer.eps))
    if isinstance(layer, Embedding):                             # rows of the table for integer indices
        return g.op("Gather", [g.const(kernels.to_host(layer.weight.data), "table"), x], axis=0)
    return _activation(g, kind, float(getattr(layer, "alpha", 0.0)), x)


def _activation(g, kind, alpha, x):
    if kind in _SIMPLE:
        return g.op(_SIMPLE[kind], [x])
    # written with plain ops: onnxruntime has no float64 LeakyRelu/Elu/Softplus kernels, and its float
    # attribute alpha would round the slope to float32
    if kind == "LeakyReLU":                                      # max(x, αx) for α < 1, else min
        return g.op("Max" if alpha <= 1 else "Min", [x, g.op("Mul", [x, g.const(alpha)])])
    if kind == "ELU":                                            # relu(x) + α(exp(min(x, 0)) - 1)
        neg = g.op("Sub", [g.op("Exp", [g.op("Min", [x, g.const(0.0)])]), g.const(1.0)])
        return g.op("Add", [g.op("Relu", [x]), g.op("Mul", [neg, g.const(alpha)])])
    if kind == "Softplus":                                       # (relu(βx) + log(1 + exp(-|βx|))) / β
        bx = g.op("Mul", [x, g.const(alpha)])
        tail = g.op("Log", [g.op("Add", [g.op("Exp", [g.op("Neg", [g.op("Abs", [bx])])]), g.const(1.0)])])
        return g.op("Div", [g.op("Add", [g.op("Relu", [bx]), tail]), g.const(alpha)])
    if kind == "SiLU":
        return g.op("Mul", [x, g.op("Sigmoid", [x])])
    if kind == "GELU":
        z = g.op("Mul", [x, g.const(1 / math.sqrt(2))])
        if g.dtype == np.float64:                   # onnxruntime has no float64 Erf: that one op runs in float32
            e = g.op("Cast", [g.op("Erf", [g.op("Cast", [z], to=g.TP.FLOAT)])], to=g.TP.DOUBLE)
        else:
            e = g.op("Erf", [z])
        return g.op("Mul", [g.op("Mul", [x, g.const(0.5)]), g.op("Add", [e, g.const(1.0)])])
    if kind == "GELUTanh":
        x3 = g.op("Mul", [g.op("Mul", [x, x]), x])
        inner = g.op("Mul", [g.op("Add", [x, g.op("Mul", [x3, g.const(0.044715)])]), g.const(math.sqrt(2 / math.pi))])
        return g.op("Mul", [g.op("Mul", [x, g.const(0.5)]), g.op("Add", [g.op("Tanh", [inner]), g.const(1.0)])])
    raise NotImplementedError(f"tinynn.onnx: no ONNX export for a {kind} layer yet")


def _input_dtype(g):
    return g.TP.FLOAT if g.dtype == np.float32 else g.TP.DOUBLE


def to_onnx(model, X_sample=None, *, name="tinynn", opset=17):
    """An ``onnx.ModelProto`` computing ``model``'s inference output: a tinynn ``Sequential`` (input "X",
    output "Y"), or a fitted ``MLPRegressor`` ("variable") / ``MLPClassifier`` ("label", "probabilities").
    ``X_sample`` (any rows of the input) fixes the input's dtype (float32 or float64) and width."""
    from .model import Sequential

    onnx, TP, helper, _ = _onnx()
    est = None
    if isinstance(model, Sequential):
        seq = model
    elif hasattr(model, "_model") and hasattr(model, "out_activation_"):
        est, seq = model, model._model
        if getattr(est, "_snapshots", None):
            raise NotImplementedError("tinynn.onnx: a snapshot ensemble (snapshots=) is not exported yet")
    else:
        raise TypeError(f"tinynn.onnx.to_onnx: expected a tinynn Sequential or a fitted MLPClassifier/MLPRegressor, "
                        f"got {type(model).__name__}")
    from .layers import Embedding

    indices = isinstance(seq.layers[0], Embedding)             # a first Embedding takes int64 indices (n,)
    if X_sample is not None and not indices and np.asarray(X_sample).ndim != 2:
        raise ValueError(f"tinynn.onnx.to_onnx: X_sample must be 2-D (n_samples, n_features), got shape "
                         f"{np.asarray(X_sample).shape}")
    g = _Graph(np.dtype(seq.flat.data.dtype) if seq.flat is not None else np.dtype(np.float32))
    ty = _input_dtype(g)
    x = "X" if est is None else "input"
    h = x
    for layer in seq.layers:
        h = _layer(g, layer, h)
    if est is None:
        g.nodes.append(helper.make_node("Identity", [h], ["Y"]))
        outputs = [helper.make_tensor_value_info("Y", ty, [None, None])]
    elif est._is_classifier:
        outputs = _classifier_head(g, est, h, ty)
    else:
        out = _activation(g, {"identity": "Identity", "exp": "Exp", "logistic": "Sigmoid",
                              "tanh": "Tanh", "relu": "ReLU"}.get(est.out_activation_, est.out_activation_), 0.0, h)
        g.nodes.append(helper.make_node("Identity", [out], ["variable"]))
        outputs = [helper.make_tensor_value_info("variable", ty, [None, est.n_outputs_])]
    if indices:
        inputs = [helper.make_tensor_value_info(x, TP.INT64, [None])]
    else:
        first = getattr(seq.layers[0], "weight", None)         # a first Dropout: the width from X_sample only
        n_feat = X_sample.shape[1] if X_sample is not None else (first.shape[0] if first is not None else None)
        inputs = [helper.make_tensor_value_info(x, ty, [None, n_feat])]
    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tinynn")
    m.ir_version = min(m.ir_version, 9)
    onnx.checker.check_model(m, full_check=True)
    return m


def _classifier_head(g, est, h, ty):
    """The classifier's "probabilities" (predict_proba's columns) and "label" (predict) from the raw output h."""
    helper, TP = g.h, g.TP
    classes = np.asarray(est.classes_)
    if getattr(est, "_y_type", None) == "multilabel":          # indicator columns: P > 0.5, as predict
        P = g.op("Sigmoid", [h])
        g.nodes.append(helper.make_node("Identity", [P], ["probabilities"]))
        g.nodes.append(helper.make_node("Cast", [g.op("Greater", [P, g.const(0.5)])], ["label"], to=TP.INT64))
        return [helper.make_tensor_value_info("label", TP.INT64, [None, len(classes)]),
                helper.make_tensor_value_info("probabilities", ty, [None, len(classes)])]
    if len(classes) < 2:
        raise NotImplementedError("tinynn.onnx: a classifier fitted on one class is not exported")
    if est.out_activation_ == "softmax":
        P = g.op("Softmax", [h], axis=1)
    else:                                                       # binary: [1 - p, p]
        p = g.op("Sigmoid", [h])
        P = g.op("Concat", [g.op("Sub", [g.const(np.ones((1, 1))), p]), p], axis=1)
    g.nodes.append(helper.make_node("Identity", [P], ["probabilities"]))
    idx = g.op("ArgMax", [P], axis=1, keepdims=0)
    if classes.dtype.kind in "iub":
        cl, lt = g.const(classes.astype(np.int64), "classes", np.int64), TP.INT64
    elif classes.dtype.kind == "f":
        cl, lt = g.const(classes, "classes", classes.dtype), _input_dtype(_Graph(classes.dtype)) \
            if classes.dtype in (np.float32, np.float64) else TP.DOUBLE
    else:
        cl = g.name("classes")
        g.inits.append(helper.make_tensor(cl, TP.STRING, [len(classes)], [str(c).encode() for c in classes]))
        lt = TP.STRING
    g.nodes.append(helper.make_node("Gather", [cl, idx], ["label"], axis=0))
    return [helper.make_tensor_value_info("label", lt, [None]),
            helper.make_tensor_value_info("probabilities", ty, [None, len(classes)])]


# ------------------------------------------------------------------------------------------------ skl2onnx
def _splice(scope, operator, container):
    """skl2onnx converter: tinynn's own graph for the estimator, its names made unique in skl2onnx's scope, its
    input and outputs bound to the operator's."""
    from onnx import helper, numpy_helper

    est = operator.raw_operator
    dtype = np.float64 if "Double" in type(operator.inputs[0].type).__name__ else np.float32
    n_features = est.n_features_in_
    m = to_onnx(est, np.zeros((1, n_features), dtype))
    outputs = {"label": operator.outputs[0].full_name} if est._is_classifier else {}
    outputs["probabilities" if est._is_classifier else "variable"] = operator.outputs[-1].full_name
    names = {"input": operator.inputs[0].full_name, **outputs}

    def name(n):
        if n not in names:
            names[n] = scope.get_unique_variable_name(f"tinynn_{n}")
        return names[n]

    for init in m.graph.initializer:
        a = numpy_helper.to_array(init)
        values = [v if isinstance(v, bytes) else v for v in a.reshape(-1).tolist()]
        container.add_initializer(name(init.name), init.data_type, list(a.shape), values)
    for node in m.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        container.add_node(node.op_type, [name(i) for i in node.input], [name(o) for o in node.output],
                           name=scope.get_unique_operator_name(f"tinynn_{node.op_type}"),
                           op_version=17 if node.op_type == "LayerNormalization" else None, **attrs)


def register_skl2onnx():
    """Register tinynn's MLPClassifier and MLPRegressor with skl2onnx (idempotent), so that ``skl2onnx.to_onnx``
    converts them alone or inside a Pipeline. Classifiers take skl2onnx's ``zipmap`` option like its own."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (calculate_linear_classifier_output_shapes,
                                                  calculate_linear_regressor_output_shapes)

    from .estimator import MLPClassifier, MLPRegressor

    update_registered_converter(MLPClassifier, "TinynnMLPClassifier", calculate_linear_classifier_output_shapes,
                                _splice, options={"zipmap": [True, False, "columns"], "nocl": [True, False]})
    update_registered_converter(MLPRegressor, "TinynnMLPRegressor", calculate_linear_regressor_output_shapes,
                                _splice)
