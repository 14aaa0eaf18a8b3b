"""Central finite differences: the independent reference of the gradient checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: The step of the central differences (the checks run in float64).
EPS = 1e-6


def numeric_gradient(loss: Callable[[], float], array: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Central differences of ``loss()`` with respect to every element of ``array``, a NumPy
    array that ``loss`` reads (changed in place, element by element, and restored)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        plus = loss()
        array[index] = saved - eps
        minus = loss()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def assert_weight_gradients(
    ops: Any, weights: Sequence[Any], loss: Callable[[], float], rtol: float, atol: float
) -> None:
    """Each weight's ``grad`` (left by a backward pass on backend ``ops``) equals the central
    differences of ``loss()`` with respect to its value, which is set on the device for each
    evaluation and restored."""
    analytic = [ops.to_numpy(p.grad) for p in weights]
    for p, grad in zip(weights, analytic):
        host = p.numpy()

        def loss_at_host(p=p, host=host) -> float:
            p.value[...] = ops.asarray(host)
            return loss()

        numeric = numeric_gradient(loss_at_host, host)
        p.value[...] = ops.asarray(host)
        np.testing.assert_allclose(grad, numeric, rtol=rtol, atol=atol, err_msg=p.name)
