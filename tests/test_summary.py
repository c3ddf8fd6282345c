"""Sequential.summary(): a Keras-like table of layers, output shapes, parameter counts, trainable or frozen."""
import numpy as np

import tinynn as tn
from tinynn.training import build_mlp


def test_summary_of_an_mlp():
    model = tn.Sequential(tn.Linear(784, 256, rng=0), tn.ReLU(), tn.BatchNorm1d(256), tn.Dropout(0.2),
                          tn.Linear(256, 10, rng=1))
    s = model.summary()
    assert [(r.name, r.output_shape, r.params, r.trainable) for r in s.rows] == [
        ("Linear", (None, 256), 784 * 256 + 256, "yes"),
        ("ReLU", (None, 256), 0, "-"),
        ("BatchNorm1d", (None, 256), 2 * 256, "yes"),
        ("Dropout", (None, 256), 0, "-"),
        ("Linear", (None, 10), 256 * 10 + 10, "yes")]
    assert s.total == sum(p.data.size for p in model.parameters()) == 204_042
    assert (s.trainable, s.frozen) == (204_042, 0)
    lines = s.splitlines()
    assert lines[1].split() == ["#", "Layer", "(type)", "Output", "shape", "Param", "#", "Trainable"]
    assert lines[3].split() == ["0", "Linear", "(None,", "256)", "200,960", "yes"]
    assert "Total params: 204,042" in lines and "Trainable params: 204,042" in lines and "Frozen params: 0" in lines
    assert repr(s) == str(s)                                       # the REPL shows the table itself


def test_frozen_and_partly_frozen_layers():
    model = build_mlp([20, 16, 3], "tanh", 0.0, False, "kaiming_uniform", seed=0)
    model.layers[0].weight.requires_grad = False
    model.layers[0].bias.requires_grad = False
    model.layers[2].bias.requires_grad = False
    s = model.summary()
    assert [r.trainable for r in s.rows] == ["frozen", "-", "partly"]
    assert (s.total, s.trainable, s.frozen) == (20 * 16 + 16 + 16 * 3 + 3, 16 * 3, 20 * 16 + 16 + 3)
    assert "Frozen params: 339" in s


def test_shapes_without_a_forward_pass():
    """Embedding rows concatenate k indices; the shape comes from input_shape; no work buffer is made."""
    model = tn.Sequential(tn.Embedding(100, 8, rng=0), tn.LayerNorm(24), tn.GELU(), tn.Linear(24, 4, rng=1))
    s = model.summary(input_shape=(3,))
    assert [r.output_shape for r in s.rows] == [(None, 24), (None, 24), (None, 24), (None, 4)]
    assert model.summary().rows[0].output_shape == (None, 8)       # one index per row by default
    assert all(not getattr(l, "_ws_cache", None) for l in model.layers)
    out = model.forward(np.zeros((2, 3), np.int64))                # agrees with a real forward pass
    assert out.shape == (2, 4)


def test_custom_layers_and_nested_models():
    class Twice(tn.Layer):                                         # doubles the width, says so
        def forward(self, X):
            return np.concatenate([X, X], axis=1)

        def output_shape(self, shape):
            return (shape[0], 2 * shape[1])

    class Opaque(tn.Layer):
        def forward(self, X):
            return X

    inner = tn.Sequential(tn.Linear(5, 7, rng=0), tn.ReLU())
    s = tn.Sequential(inner, Twice(), Opaque(), tn.ReLU()).summary()
    assert [(r.name, r.output_shape) for r in s.rows] == [("Sequential", (None, 7)), ("Twice", (None, 14)),
                                                          ("Opaque", None), ("ReLU", None)]
    assert s.rows[0].params == 5 * 7 + 7
    assert "?" in s.splitlines()[5]
