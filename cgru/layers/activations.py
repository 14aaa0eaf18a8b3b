"""Element-wise activations of Dense layers, written against a backend's array module ``xp``.

Each activation has a forward ``f(xp, x)`` and a backward ``g(xp, y, dy)`` expressed through the
output ``y`` (so a layer only keeps its output for training).
"""

from __future__ import annotations

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")


def _sigmoid(xp, x):
    # exp of a non-positive number only: no overflow, full relative precision near 0 and 1.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softmax(xp, x):
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _forward(name, xp, x):
    if name == "linear":
        return x
    if name == "relu":
        return xp.maximum(x, 0)
    if name == "sigmoid":
        return _sigmoid(xp, x)
    if name == "tanh":
        return xp.tanh(x)
    if name == "softmax":
        return _softmax(xp, x)
    raise ValueError(f"unknown activation {name!r}; known: {ACTIVATIONS}")


def _backward(name, xp, y, dy):
    if name == "linear":
        return dy
    if name == "relu":
        return dy * (y > 0)
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "tanh":
        return dy * (1 - y * y)
    if name == "softmax":
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    raise ValueError(f"unknown activation {name!r}; known: {ACTIVATIONS}")


def check_activation(name, what: str = "activation") -> str:
    """Normalise an activation name (None means "linear"); ValueError for an unknown one."""
    if name is None:
        return "linear"
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a name such as 'relu', got {type(name).__name__}")
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown {what} {name!r}; known: {ACTIVATIONS}")
    return name


apply = _forward
gradient = _backward
sigmoid = _sigmoid
softmax = _softmax
