"""cgru.losses: the values against Keras's formulas, the gradients by finite differences."""

import math

import numpy as np
import pytest
from finite_differences import numeric_gradient

from cgru import losses


def test_losses_match_keras_formulas():
    y = np.array([[0.0, 1.0], [2.0, 3.0]])
    p = np.array([[1.0, 1.0], [2.0, 5.0]])
    assert losses.get("mse")(y, p) == pytest.approx(1.25)
    assert losses.get("mae")(y, p) == pytest.approx(0.75)
    assert losses.get("huber")(y, p) == pytest.approx(0.5)
    assert losses.Huber(delta=2.0)(y, p) == pytest.approx((0.25 + 1.0) / 2)
    assert losses.get("mse")(np.array([1.0, 2.0]), np.array([[1.5], [2.0]])) == pytest.approx(0.125)
    bce = losses.get("binary_crossentropy")
    assert bce(np.array([[1.0, 0.0]]), np.array([[0.9, 0.2]])) == pytest.approx(
        -(math.log(0.9) + math.log(0.8)) / 2
    )
    assert bce(np.array([[0.0]]), np.array([[1.0]])) == pytest.approx(-math.log(1e-7), rel=1e-6)
    z = np.array([[0.3, -2.0]])
    assert losses.BinaryCrossentropy(from_logits=True)(np.array([[1.0, 0.0]]), z) == pytest.approx(
        bce(np.array([[1.0, 0.0]]), 1 / (1 + np.exp(-z))), rel=1e-9
    )
    cce = losses.get("categorical_crossentropy")
    assert cce(np.array([[0, 1, 0]]), np.array([[0.2, 0.6, 0.2]])) == pytest.approx(-math.log(0.6))
    assert cce(np.array([[0, 1, 0]]), np.array([[1.0, 3.0, 1.0]])) == pytest.approx(-math.log(0.6))
    assert losses.get("sparse_categorical_crossentropy")(
        np.array([1]), np.array([[0.2, 0.6, 0.2]])
    ) == pytest.approx(-math.log(0.6))
    logits = np.array([[1.0, 2.0, 0.5]])
    softmax = np.exp(logits) / np.exp(logits).sum()
    assert losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([[2]]), logits) == pytest.approx(
        -math.log(softmax[0, 2])
    )
    assert losses.get("mse").name == "mse"
    assert losses.MeanSquaredError(reduction="sum")(y, p) == pytest.approx(2.5)
    np.testing.assert_allclose(losses.mean_squared_error(y, p), [0.5, 2.0])
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("hinge-ish")
    with pytest.raises(TypeError):
        losses.get(lambda a, b: 0.0)


@pytest.mark.parametrize(
    "name",
    [
        "mse",
        "mae",
        "huber",
        "binary_crossentropy",
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "bce_logits",
        "cce_logits",
    ],
)
def test_loss_gradients_finite_differences(rng, name):
    loss = {
        "bce_logits": losses.BinaryCrossentropy(from_logits=True),
        "cce_logits": losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    }.get(name)
    loss = loss or losses.get(name)
    p = rng.uniform(0.05, 0.95, (4, 3, 5))
    if name == "sparse_categorical_crossentropy":
        y = rng.integers(0, 5, (4, 3))
    elif "categorical" in name or name == "cce_logits":
        y = np.eye(5)[rng.integers(0, 5, (4, 3))]
    elif "binary" in name or "bce" in name:
        y = rng.integers(0, 2, (4, 3, 5)).astype(float)
    else:
        y = rng.standard_normal((4, 3, 5))
    mask = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], float)
    y_al = losses.align_targets(y, p, loss.sparse)
    value, grad = loss.value_and_grad(y_al, p, mask)
    assert value == pytest.approx(loss(y, p, mask=mask))
    moved = p.copy()
    numeric = numeric_gradient(lambda: loss(y, moved, mask=mask), moved)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
