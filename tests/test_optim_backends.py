"""Every optimizer variant on every backend: the trajectories of tests/test_optim.py (12 steps on a quadratic,
against recurrences written independently of the kernels) run on the NumPy reference, the Numba CPU backend
and CUDA (a real GPU, or the simulator), with per-tensor and flat parameters; and the variants that only a
model exercises (L1 as a penalty and as a proximal step, the lazy row updates of Adam and Adagrad) against the
reference backend on the others.

Before this, the trajectories ran on the host backends only and the CUDA optimizer kernels were checked one
step at a time (issue 30: the CUDA SGD's first step with dampening went unseen).
"""
import numpy as np
import pytest

import tinynn as tn
from tinynn import kernels, optim
from tests.test_optim import THETA0, TRAJECTORIES, grad

BACKENDS = [pytest.param("numpy", id="numpy"), pytest.param("cpu", id="cpu"),
            pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]


def _on(backend, a):
    return kernels.to_device(a, "cuda") if backend == "cuda" else a


def trajectory(make, backend, flat, steps=12):
    p = tn.Parameter(_on(backend, THETA0.copy()))
    if flat:
        tn.parameter.FlatParameters([p])
    opt = make([p])
    out = []
    with kernels.use("numpy" if backend == "numpy" else "cpu"):
        for _ in range(steps):
            g = grad(kernels.to_host(p.data))
            if backend == "cuda":
                p.grad.copy_to_device(g)
            else:
                p.grad[...] = g
            opt.step()
            out.append(kernels.to_host(p.data).copy())
    return np.array(out)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
@pytest.mark.parametrize("name,make,expected", TRAJECTORIES, ids=[t[0] for t in TRAJECTORIES])
def test_trajectory_on_every_backend(name, make, expected, backend, flat):
    np.testing.assert_allclose(trajectory(make, backend, flat), expected(), rtol=1e-10, atol=1e-12)


def test_every_optimizer_has_a_trajectory():
    """A new optimizer (or one renamed) cannot skip this file: each class in OPTIMIZERS is made by a case."""
    made = {type(make([tn.Parameter(THETA0.copy())])) for _, make, _ in TRAJECTORIES}
    assert set(optim.OPTIMIZERS.values()) <= made, set(optim.OPTIMIZERS.values()) - made


# ----------------------------------------------------------------------------- variants a model exercises
def _model(backend, seed=0):
    rng = np.random.default_rng(seed)
    model = tn.Sequential(tn.Embedding(9, 4, dtype=np.float64), tn.Linear(4, 3, dtype=np.float64))
    for p in model.parameters():
        p.data[...] = rng.uniform(-1, 1, p.data.shape)
    return model.to("cuda") if backend == "cuda" else model


def model_run(make, backend, steps=5):
    """``steps`` steps of ``make(params)`` on a tiny Embedding + Linear model (rows 0-5 of 9 touched, some
    twice in a batch); the parameters afterwards, on the host."""
    model, loss = _model(backend), tn.MSELoss()
    opt = make(model.parameters())
    rng = np.random.default_rng(1)
    with kernels.use("numpy" if backend == "numpy" else "cpu"):
        for _ in range(steps):
            idx = rng.integers(0, 6, 5)
            idx[1] = idx[0]
            T = rng.standard_normal((5, 3))
            x, t = _on(backend, idx.astype(np.int64)), _on(backend, T)
            opt.zero_grad()
            loss(model.forward(x), t)
            model.backward(loss.backward())
            opt.step()
    return [kernels.to_host(p.data).copy() for p in model.parameters()]


VARIANTS = {
    "sgd-l1-penalty": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.5, l1=0.05),
    "sgd-l1-proximal-weights": lambda ps: optim.SGD(ps, lr=0.1, l1=0.3, l1_mode="proximal", l1_scope="weights"),
    "adam-l1-weights": lambda ps: optim.Adam(ps, lr=0.05, l1=0.01, l1_scope="weights"),
    "adam-lazy": lambda ps: optim.Adam(ps, lr=0.05, lazy=True),
    "adamw-lazy-amsgrad": lambda ps: optim.AdamW(ps, lr=0.05, amsgrad=True, lazy=True),
    "adagrad-lazy": lambda ps: optim.Adagrad(ps, lr=0.1, lazy=True),
    "adagrad-large-eps": lambda ps: optim.Adagrad(ps, lr=0.1, eps=0.5),      # eps where it shows: √s + eps
    "rmsprop-centered-momentum": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.9, centered=True),
    "adadelta-wd": lambda ps: optim.Adadelta(ps, lr=0.5, weight_decay=0.1),
}


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.id != "numpy"])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_model_variants_equal_reference(name, backend):
    if backend == "cuda" and "lazy" in name:          # a documented refusal (docs/refusals.md), said at once
        with pytest.raises(NotImplementedError, match=r"lazy=True\) runs on host parameters only"):
            model_run(VARIANTS[name], backend)
        return
    ref = model_run(VARIANTS[name], "numpy")
    got = model_run(VARIANTS[name], backend)
    for i, (g, r) in enumerate(zip(got, ref)):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12, err_msg=f"{name} on {backend}: parameter {i}")


def test_lazy_variants_leave_untouched_rows_alone():
    """The lazy runs are not dense runs in disguise: rows 6-8 of the Embedding are never in a batch."""
    start = _model("numpy").parameters()[0].data.copy()
    for name in ("adam-lazy", "adagrad-lazy"):
        after = model_run(VARIANTS[name], "numpy")[0]
        np.testing.assert_array_equal(after[6:], start[6:], err_msg=name)
        assert not np.allclose(after[:6], start[:6]), name
