"""cgru.layers.core: Dense's activations over the last axis, Embedding's lookup, mask_zero and
gradient, Dropout, on every backend under test."""

import numpy as np
import pytest
from layer_calls import built, run

from cgru import Dense, Dropout, Embedding


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "softmax"])
def test_dense_activations_over_last_axis(ops, rng, activation):
    x = rng.standard_normal((2, 3, 4))
    layer = built(Dense(5, activation=activation, dtype="float64"), ops, (None, 3, 4))
    W, b = layer.get_weights()
    z = x @ W + b
    expected = {
        None: z,
        "relu": np.maximum(z, 0),
        "sigmoid": 1 / (1 + np.exp(-z)),
        "tanh": np.tanh(z),
        "softmax": np.exp(z) / np.exp(z).sum(-1, keepdims=True),
    }[activation]
    np.testing.assert_allclose(ops.to_numpy(run(layer, x)[0]), expected, atol=1e-12)
    np.testing.assert_allclose(ops.to_numpy(run(layer, x[:, 0])[0]), expected[:, 0], atol=1e-12)
    with pytest.raises(ValueError, match="activation"):
        Dense(3, activation="swishy")


def test_embedding_lookup_and_mask_zero(ops):
    layer = built(Embedding(10, 3, mask_zero=True, dtype="float64"), ops, (None, 5))
    x = np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0], [0, 0, 0, 0, 0], [5, 6, 7, 8, 9]])
    y, _ = run(layer, x)
    np.testing.assert_array_equal(ops.to_numpy(y), layer.get_weights()[0][x])
    np.testing.assert_array_equal(layer.compute_lengths(x, None), [3, 1, 0, 5])
    np.testing.assert_array_equal(layer.compute_lengths(x, np.array([2, 5, 5, 5])), [2, 1, 0, 5])
    assert layer.compute_lengths(x[3:], None) is None  # all full
    with pytest.raises(ValueError, match="right-padded"):
        layer.compute_lengths(np.array([[1, 0, 2]]), None)
    with pytest.raises(ValueError, match="0..9"):
        run(layer, np.array([[1, 10]]))
    with pytest.raises(TypeError):
        run(layer, np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="integer"):
        run(layer, np.array([[1.5, 2.0]]))


def test_dropout_layer(ops, rng):
    layer = built(Dropout(0.4, seed=1), ops, (None, 50, 40))
    x = np.ones((2, 50, 40))
    np.testing.assert_array_equal(run(layer, x)[0], x)
    y, mask = run(layer, x, training=True)
    y = ops.to_numpy(y)
    assert set(np.unique(y).tolist()) <= {0.0, 1 / 0.6}
    assert 0.3 < (y == 0).mean() < 0.5
    np.testing.assert_array_equal(ops.to_numpy(layer.backward(np.ones_like(x), mask)), y)
    shared = built(Dropout(0.5, noise_shape=(None, 1, None), seed=2), ops, (None, 50, 40))
    y, _ = run(shared, x, training=True)
    y = ops.to_numpy(y)
    assert (y == y[:, :1]).all()


def test_embedding_gradient_accumulates_repeated_ids(ops):
    layer = built(Embedding(5, 2, dtype="float64"), ops, (None, 3))
    x = np.array([[1, 1, 4], [0, 1, 2]])
    _, cache = run(layer, x, training=True)
    dy = np.arange(12, dtype=np.float64).reshape(2, 3, 2)
    assert layer.backward(ops.asarray(dy), cache) is None
    g = ops.to_numpy(layer.embeddings.grad)
    np.testing.assert_array_equal(g[1], dy[0, 0] + dy[0, 1] + dy[1, 1])
    np.testing.assert_array_equal(g[3], 0)
