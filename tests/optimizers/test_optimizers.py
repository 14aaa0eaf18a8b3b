"""cgru.optimizers: the updates against Keras's formulas and torch.optim, and gradient clipping,
its arguments checked as Keras 3 checks them (tests/data/keras_callbacks.json, recorded by
tests/make_keras_golden.py)."""

import json
import math

import numpy as np
import pytest
from paths import DATA

import cgru
from cgru import optimizers
from cgru.layers.base import Parameter

CALLBACKS = json.loads((DATA / "keras_callbacks.json").read_text())


def run_optimizer(opt, grads, w0):
    p = Parameter("w", w0.copy())
    for g in grads:
        p.grad = g.copy()
        opt.apply([p])
    return p.value


@pytest.mark.parametrize(
    "name,make,ref",
    [
        ("sgd", lambda: optimizers.SGD(0.1), "sgd"),
        ("momentum", lambda: optimizers.SGD(0.1, momentum=0.9), "momentum"),
        ("nesterov", lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True), "nesterov"),
        ("adam", lambda: optimizers.Adam(0.01), "adam"),
        ("amsgrad", lambda: optimizers.Adam(0.01, amsgrad=True), "amsgrad"),
        ("adamw", lambda: optimizers.AdamW(0.01, weight_decay=0.1), "adamw"),
        ("rmsprop", lambda: optimizers.RMSprop(0.01), "rmsprop"),
        ("rmsprop_centered_momentum", lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True), "rmsc"),
    ],
)
def test_optimizers_follow_keras_formulas(rng, name, make, ref):
    grads = [rng.standard_normal(6) for _ in range(5)]
    w0 = rng.standard_normal(6)
    got = run_optimizer(make(), grads, w0)
    w, m, v, vhat, avg = w0.copy(), np.zeros(6), np.zeros(6), np.zeros(6), np.zeros(6)
    for t, g in enumerate(grads, start=1):
        if ref == "sgd":
            w = w - 0.1 * g
        elif ref in ("momentum", "nesterov"):
            m = 0.9 * m - 0.1 * g
            w = w + (0.9 * m - 0.1 * g if ref == "nesterov" else m)
        elif ref in ("adam", "amsgrad", "adamw"):
            if ref == "adamw":
                w = w - w * 0.1 * 0.01
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            vhat = np.maximum(vhat, v)
            alpha = 0.01 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            w = w - alpha * m / (np.sqrt(vhat if ref == "amsgrad" else v) + 1e-7)
        elif ref == "rmsprop":
            v = 0.9 * v + 0.1 * g * g
            w = w - 0.01 * g / np.sqrt(v + 1e-7)
        else:
            v = 0.9 * v + 0.1 * g * g
            avg = 0.9 * avg + 0.1 * g
            m = 0.5 * m + 0.01 * g / np.sqrt(v - avg * avg + 1e-7)
            w = w - m
    np.testing.assert_allclose(got, w, rtol=1e-12)


@pytest.mark.parametrize("kind", ["sgd_nesterov", "adam", "adamw", "rmsprop_centered"])
def test_optimizers_match_torch(rng, kind):
    torch = pytest.importorskip("torch")
    grads = [rng.standard_normal(5) for _ in range(6)]
    w0 = rng.standard_normal(5)
    tw = torch.tensor(w0.copy(), requires_grad=True)
    if kind == "sgd_nesterov":
        ours, theirs = (
            optimizers.SGD(0.05, momentum=0.8, nesterov=True),
            torch.optim.SGD([tw], lr=0.05, momentum=0.8, nesterov=True),
        )
    elif kind == "adam":  # the epsilon placement differs, so compare without it
        ours, theirs = optimizers.Adam(0.01, epsilon=0.0), torch.optim.Adam([tw], lr=0.01, eps=0.0)
    elif kind == "adamw":
        ours, theirs = (
            optimizers.AdamW(0.01, weight_decay=0.2, epsilon=0.0),
            torch.optim.AdamW([tw], lr=0.01, weight_decay=0.2, eps=0.0),
        )
    else:
        ours, theirs = (
            optimizers.RMSprop(0.01, rho=0.9, momentum=0.3, epsilon=0.0, centered=True),
            torch.optim.RMSprop([tw], lr=0.01, alpha=0.9, momentum=0.3, eps=0.0, centered=True),
        )
    for g in grads:
        theirs.zero_grad()
        tw.grad = torch.tensor(g)
        theirs.step()
    np.testing.assert_allclose(run_optimizer(ours, grads, w0), tw.detach().numpy(), rtol=1e-10)


def test_gradient_clipping(rng):
    g = np.array([3.0, 4.0])
    w = run_optimizer(optimizers.SGD(1.0, clipnorm=1.0), [g], np.zeros(2))
    np.testing.assert_allclose(w, [-0.6, -0.8])
    w = run_optimizer(optimizers.SGD(1.0, clipvalue=2.0), [g], np.zeros(2))
    np.testing.assert_allclose(w, [-2.0, -2.0])
    a, b = Parameter("a", np.zeros(1)), Parameter("b", np.zeros(1))
    a.grad, b.grad = np.array([3.0]), np.array([4.0])
    optimizers.SGD(1.0, global_clipnorm=2.5).apply([a, b])
    np.testing.assert_allclose([a.value[0], b.value[0]], [-1.5, -2.0])
    with pytest.raises(ValueError):
        optimizers.SGD(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get("adamax-ish")
    assert isinstance(optimizers.get("AdamW"), optimizers.AdamW)
    assert optimizers.get("adam").learning_rate == 0.001 and optimizers.get("sgd").learning_rate == 0.01
    assert optimizers.AdamW().weight_decay == 0.004


# ------------------------------------------------------------------------------- clipping
@pytest.mark.parametrize("combo", CALLBACKS["optimizer_clipping"], ids=lambda c: str(c["error"] is not None))
def test_clipping_arguments_as_keras(combo):
    kwargs = {k: combo[k] for k in ("clipnorm", "clipvalue", "global_clipnorm")}
    for cls in (optimizers.SGD, optimizers.Adam, optimizers.AdamW, optimizers.RMSprop):
        if combo["error"] is None:
            cls(**kwargs)
        else:
            with pytest.raises(ValueError) as info:
                cls(**kwargs)
            assert str(info.value) == combo["error"]


def test_zero_clipnorm_means_no_clipping():
    # Keras clips only when the argument is > 0
    g = np.array([3.0, 4.0])
    for kwargs in ({"clipnorm": 0.0}, {"clipvalue": 0.0}, {"global_clipnorm": 0.0}):
        p = cgru.layers.base.Parameter("w", np.zeros(2))
        p.grad = g
        optimizers.SGD(1.0, **kwargs).apply([p])
        np.testing.assert_array_equal(p.value, -g)
