"""Finite-difference checks of the backward passes of the layers around a GRU, in float64 on
every backend under test: Conv1D (every padding, strides, dilation, lengths), LayerNormalization,
Activation (every name), Dense's input-reading activations, Flatten, TimeDistributed, global
pooling and Masking with lengths, and a whole model of them in front of a GRU."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import cgru
from cgru.layers import activations

EPS = 1e-6
LENGTHS = np.array([6, 3, 0, 5], dtype=np.int64)


def numeric_gradient(loss, a: np.ndarray) -> np.ndarray:
    """Central differences of ``loss()`` with respect to every element of ``a`` (changed in
    place and restored)."""
    grad = np.zeros_like(a)
    flat, out = a.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + EPS
        up = loss()
        flat[i] = keep - EPS
        down = loss()
        flat[i] = keep
        out[i] = (up - down) / (2 * EPS)
    return grad


def check_layer(ops, layer, x: np.ndarray, lengths: Any = None, rng=None) -> None:
    """backward of ``sum(layer(x) * r)`` (input and every weight) equals finite differences."""
    rng = rng or np.random.default_rng(0)
    layer._bind(ops)
    layer._maybe_build((None, *x.shape[1:]))
    y, cache = layer._forward(ops.asarray(x), True, lengths)
    r = rng.standard_normal(tuple(y.shape))
    dx = ops.to_numpy(layer._backward(ops.asarray(r), cache, True))
    grads = [ops.to_numpy(p.grad) for p in layer.trainable_weights]
    weights = layer.get_weights()

    def loss() -> float:
        layer.set_weights(weights)
        out, _ = layer._forward(ops.asarray(x), False, lengths)
        return float(np.sum(ops.to_numpy(out) * r))

    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-5, atol=1e-7, err_msg="input")
    for i, (w, g) in enumerate(zip(weights, grads)):
        np.testing.assert_allclose(g, numeric_gradient(loss, w), rtol=1e-5, atol=1e-7, err_msg=f"weight {i}")


def f64(layer_cls, *args, **kwargs):
    if layer_cls in (cgru.Conv1D, cgru.Dense):
        kwargs.setdefault("bias_initializer", "glorot_uniform")  # a bias that is not zero
    return layer_cls(*args, dtype="float64", seed=3, **kwargs)


@pytest.fixture
def x(rng):
    return rng.standard_normal((4, 6, 3))


CONV = {
    "valid": dict(kernel_size=3),
    "valid_s2": dict(kernel_size=2, strides=2),
    "valid_d2": dict(kernel_size=3, dilation_rate=2),
    "same_k4": dict(kernel_size=4, padding="same", activation="tanh"),
    "same_s2": dict(kernel_size=3, strides=2, padding="same"),
    "same_d2": dict(kernel_size=2, dilation_rate=2, padding="same", activation="selu"),
    "causal_d2": dict(kernel_size=3, dilation_rate=2, padding="causal", activation="softplus"),
    "causal_s3": dict(kernel_size=2, strides=3, padding="causal", use_bias=False),
    "k1": dict(kernel_size=1, activation="sigmoid"),
}


@pytest.mark.parametrize("case", list(CONV))
def test_conv1d(ops, x, case):
    check_layer(ops, f64(cgru.Conv1D, 2, **CONV[case]), x)


@pytest.mark.parametrize("case", [c for c in CONV if c != "same_s2"])  # refuses lengths
def test_conv1d_with_lengths(ops, x, case):
    lengths = np.array([6, 4, 2, 5]) if CONV[case].get("padding", "valid") == "valid" else LENGTHS
    check_layer(ops, f64(cgru.Conv1D, 2, **CONV[case]), x, lengths)


@pytest.mark.parametrize("kwargs", [{}, dict(axis=[1, 2], epsilon=0.01), dict(center=False),
                                    dict(scale=False), dict(gamma_initializer="glorot_uniform",
                                                            beta_initializer="glorot_uniform")])
def test_layer_normalization(ops, x, kwargs):
    check_layer(ops, f64(cgru.LayerNormalization, **kwargs), x)


def away_from_kinks(rng, shape) -> np.ndarray:
    """Values in (-4, 4) at least 0.01 from every point where an activation has a kink."""
    a = rng.uniform(-4, 4, shape)
    for kink in (-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0):
        a = np.where(np.abs(a - kink) < 0.01, a + 0.05, a)
    return a


@pytest.mark.parametrize("name", activations.ACTIVATIONS)
def test_activation(ops, rng, name):
    check_layer(ops, cgru.Activation(name, dtype="float64"), away_from_kinks(rng, (3, 4, 5)))


@pytest.mark.parametrize("name", [n for n in activations.ACTIVATIONS if activations.needs_input(n)])
def test_dense_with_activations_that_read_their_input(ops, x, name):
    check_layer(ops, f64(cgru.Dense, 4, activation=name), x)


def test_flatten(ops, x):
    check_layer(ops, cgru.Flatten(dtype="float64"), x)


@pytest.mark.parametrize("inner", ["dense", "norm", "conv"])
def test_time_distributed(ops, rng, inner):
    layer = {"dense": lambda: f64(cgru.Dense, 2, activation="elu"),
             "norm": lambda: f64(cgru.LayerNormalization),
             "conv": lambda: f64(cgru.Conv1D, 2, kernel_size=2, padding="causal")}[inner]()
    x = rng.standard_normal((2, 3, 4, 3) if inner == "conv" else (2, 3, 4))
    check_layer(ops, cgru.TimeDistributed(layer), x)


@pytest.mark.parametrize("cls", [cgru.GlobalAveragePooling1D, cgru.GlobalMaxPooling1D])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_global_pooling(ops, x, cls, keepdims, with_lengths):
    check_layer(ops, cls(keepdims=keepdims, dtype="float64"), x, LENGTHS if with_lengths else None)


def test_masking_with_lengths(ops, x):
    check_layer(ops, cgru.Masking(dtype="float64"), x, LENGTHS)


def test_a_model_in_front_of_a_gru(ops, rng):
    """Masking -> Conv1D -> GRU -> TimeDistributed(Dense) -> LayerNormalization -> pooling on a
    padded batch: the weights' gradients (padded steps included in the data) by finite
    differences."""
    model = cgru.Sequential([
        cgru.Input(shape=(7, 3)),
        cgru.Masking(dtype="float64"),
        f64(cgru.Conv1D, 4, kernel_size=3, padding="causal", activation="tanh"),
        cgru.GRU(3, return_sequences=True, dtype="float64", seed=1, bias_initializer="glorot_uniform"),
        cgru.TimeDistributed(f64(cgru.Dense, 3)),
        f64(cgru.LayerNormalization),
        cgru.GlobalAveragePooling1D(dtype="float64"),
    ], device=ops.name)
    lengths = [7, 4, 1, 6]
    x = rng.standard_normal((4, 7, 3))
    for row, length in enumerate(lengths):
        x[row, length:] = 0
    r = rng.standard_normal((4, 3))
    _, caches, _ = model._forward(model._prepare_input(x), True, None)
    model._backward(ops.asarray(r), caches)
    grads = [ops.to_numpy(p.grad) for p in model.weights]
    weights = model.get_weights()

    def loss() -> float:
        model.set_weights(weights)
        return float(np.sum(model.predict(x) * r))

    for i, (w, g) in enumerate(zip(weights, grads)):
        np.testing.assert_allclose(g, numeric_gradient(loss, w), rtol=1e-5, atol=1e-7,
                                   err_msg=model.weights[i].name)
