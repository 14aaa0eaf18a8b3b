"""Element-wise activations of layers (``Dense``, ``Activation``, ``Conv1D``), written against a
backend's array module ``xp``, with Keras 3's names and formulas.

Each activation has a forward ``f(xp, x) -> y`` and a backward ``g(xp, x, y, dy) -> dx``. Most
backwards need only the output ``y``; those that need the input say so (:func:`needs_input`),
so that a layer keeps ``x`` for training only when it must.

``gelu`` (Keras's exact form needs erf, which NumPy lacks), ``glu`` (it halves the last axis),
``sparsemax`` and ``threshold`` (it takes arguments) are not provided.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

# Keras 3's constants (tf.nn.selu).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
LEAKY_RELU_SLOPE = 0.2  # keras.activations.leaky_relu's default negative_slope
SHRINK_THRESHOLD = 0.5  # soft_shrink's and hard_shrink's default threshold
SQUAREPLUS_B = 4.0


def _sigmoid(xp, x):
    # exp of a non-positive number only: no overflow, full relative precision near 0 and 1.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(xp, x):
    """log(1 + exp(x)) without overflow."""
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def _softmax(xp, x):
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(xp, x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def _hard_sigmoid(xp, x):
    return xp.clip(x + 3, 0, 6) / 6


def _inside(x, low, high):
    """1 where low < x < high, else 0 (in x's dtype): the slope of a clip."""
    return ((x > low) & (x < high)).astype(x.dtype)


def _elu_like(xp, x, alpha):
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0)))


def _mish_tanh(xp, x):
    return xp.tanh(_softplus(xp, x))


def _mish_slope(xp, x):
    """d/dx of x * tanh(softplus(x))."""
    t = _mish_tanh(xp, x)
    return t + x * (1 - t * t) * _sigmoid(xp, x)


class Activation(NamedTuple):
    """An activation: ``forward(xp, x)``, ``backward(xp, x, y, dy)``, whether the backward reads ``x``."""

    forward: Callable[[Any, Any], Any]
    backward: Callable[[Any, Any, Any, Any], Any]
    needs_input: bool = False


def _by_output(forward, backward) -> Activation:
    """An activation whose backward ``backward(xp, y, dy)`` needs only the output."""
    return Activation(forward, lambda xp, x, y, dy: backward(xp, y, dy), False)


def _by_input(forward, backward) -> Activation:
    """An activation whose backward ``backward(xp, x, y, dy)`` needs the input."""
    return Activation(forward, backward, True)


_TABLE: dict[str, Activation] = {
    "linear": _by_output(lambda xp, x: x, lambda xp, y, dy: dy),
    "relu": _by_output(lambda xp, x: xp.maximum(x, 0), lambda xp, y, dy: dy * (y > 0)),
    "sigmoid": _by_output(_sigmoid, lambda xp, y, dy: dy * y * (1 - y)),
    "tanh": _by_output(lambda xp, x: xp.tanh(x), lambda xp, y, dy: dy * (1 - y * y)),
    "softmax": _by_output(_softmax, lambda xp, y, dy: y * (dy - (dy * y).sum(axis=-1, keepdims=True))),
    "log_softmax": _by_output(
        _log_softmax, lambda xp, y, dy: dy - xp.exp(y) * dy.sum(axis=-1, keepdims=True)
    ),
    "exponential": _by_output(lambda xp, x: xp.exp(x), lambda xp, y, dy: dy * y),
    "relu6": _by_input(lambda xp, x: xp.clip(x, 0, 6), lambda xp, x, y, dy: dy * _inside(x, 0, 6)),
    "hard_tanh": _by_input(lambda xp, x: xp.clip(x, -1, 1), lambda xp, x, y, dy: dy * _inside(x, -1, 1)),
    "leaky_relu": _by_input(
        lambda xp, x: xp.where(x > 0, x, x * x.dtype.type(LEAKY_RELU_SLOPE)),
        lambda xp, x, y, dy: xp.where(x > 0, dy, dy * dy.dtype.type(LEAKY_RELU_SLOPE)),
    ),
    "elu": _by_input(
        lambda xp, x: _elu_like(xp, x, 1.0), lambda xp, x, y, dy: xp.where(x > 0, dy, dy * (y + 1))
    ),
    "celu": _by_input(  # alpha = 1: the same function as elu, written as Keras writes it
        lambda xp, x: xp.maximum(x, 0) + xp.expm1(xp.minimum(x, 0)),
        lambda xp, x, y, dy: xp.where(x > 0, dy, dy * xp.exp(xp.minimum(x, 0))),
    ),
    "selu": _by_input(
        lambda xp, x: SELU_SCALE * _elu_like(xp, x, SELU_ALPHA),
        lambda xp, x, y, dy: dy * xp.where(x > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA),
    ),
    "softplus": _by_input(_softplus, lambda xp, x, y, dy: dy * _sigmoid(xp, x)),
    "softsign": _by_input(lambda xp, x: x / (1 + xp.abs(x)), lambda xp, x, y, dy: dy / (1 + xp.abs(x)) ** 2),
    "silu": _by_input(
        lambda xp, x: x * _sigmoid(xp, x),
        lambda xp, x, y, dy: dy * _sigmoid(xp, x) * (1 + x * (1 - _sigmoid(xp, x))),
    ),
    "log_sigmoid": _by_input(
        lambda xp, x: -_softplus(xp, -x), lambda xp, x, y, dy: dy * _sigmoid(xp, -x)
    ),
    "hard_sigmoid": _by_input(_hard_sigmoid, lambda xp, x, y, dy: dy * _inside(x, -3, 3) / 6),
    "hard_silu": _by_input(
        lambda xp, x: x * _hard_sigmoid(xp, x),
        lambda xp, x, y, dy: dy * (_hard_sigmoid(xp, x) + x * _inside(x, -3, 3) / 6),
    ),
    "mish": _by_input(lambda xp, x: x * _mish_tanh(xp, x), lambda xp, x, y, dy: dy * _mish_slope(xp, x)),
    "tanh_shrink": _by_input(lambda xp, x: x - xp.tanh(x), lambda xp, x, y, dy: dy * xp.tanh(x) ** 2),
    "soft_shrink": _by_input(
        lambda xp, x: xp.where(x > SHRINK_THRESHOLD, x - SHRINK_THRESHOLD,
                               xp.where(x < -SHRINK_THRESHOLD, x + SHRINK_THRESHOLD, 0)),
        lambda xp, x, y, dy: dy * (xp.abs(x) > SHRINK_THRESHOLD),
    ),
    "hard_shrink": _by_input(
        lambda xp, x: xp.where(xp.abs(x) > SHRINK_THRESHOLD, x, 0),
        lambda xp, x, y, dy: dy * (xp.abs(x) > SHRINK_THRESHOLD),
    ),
    "squareplus": _by_input(
        lambda xp, x: (x + xp.sqrt(x * x + SQUAREPLUS_B)) / 2,
        lambda xp, x, y, dy: dy * (1 + x / xp.sqrt(x * x + SQUAREPLUS_B)) / 2,
    ),
    "sparse_plus": _by_input(
        lambda xp, x: xp.where(x <= -1, 0, xp.where(x < 1, (x + 1) ** 2 / 4, x)),
        lambda xp, x, y, dy: dy * xp.where(x <= -1, 0, xp.where(x < 1, (x + 1) / 2, 1)),
    ),
    "sparse_sigmoid": _by_input(
        lambda xp, x: xp.where(x <= -1, 0, xp.where(x >= 1, 1, (x + 1) / 2)),
        lambda xp, x, y, dy: dy * _inside(x, -1, 1) / 2,
    ),
}

#: Every activation name (Keras 3's), "swish" and "hard_swish" included as aliases.
ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}
ACTIVATIONS = tuple(_TABLE) + tuple(ALIASES)


def check_activation(name: Any, what: str = "activation") -> str:
    """Normalise an activation name (None means "linear", aliases give the Keras name they stand
    for); ValueError for an unknown one, TypeError for a non-string."""
    if name is None:
        return "linear"
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a name such as 'relu', got {type(name).__name__}")
    name = ALIASES.get(name, name)
    if name not in _TABLE:
        raise ValueError(f"unknown {what} {name!r}; known: {ACTIVATIONS}")
    return name


def _get(name: str) -> Activation:
    try:
        return _TABLE[ALIASES.get(name, name)]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {ACTIVATIONS}") from None


def needs_input(name: str) -> bool:
    """Whether the backward of activation ``name`` reads its input (else its output is enough)."""
    return _get(name).needs_input


def apply(name: str, xp: Any, x: Any) -> Any:
    """``name``'s activation of ``x``, in ``x``'s dtype."""
    if name == "linear":
        return x
    return _get(name).forward(xp, x).astype(x.dtype, copy=False)


def gradient(name: str, xp: Any, x: Any, y: Any, dy: Any) -> Any:
    """The gradient of the input, from the input ``x`` (may be None when the activation does not
    :func:`need it <needs_input>`), the output ``y`` and the output's gradient ``dy``."""
    if name == "linear":
        return dy
    return _get(name).backward(xp, x, y, dy).astype(dy.dtype, copy=False)


sigmoid = _sigmoid
softmax = _softmax
