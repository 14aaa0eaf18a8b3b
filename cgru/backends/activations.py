"""The GRU's activations, in one table: their names, the integer codes the compiled kernels take
and their formulas (the NumPy reference's; Dense layers have their own set, in
``cgru.layers.activations``).

The codes are those of the C engine's enums (``src/cgru/gru_kernels.h``) and of the CUDA
kernels' (``gru.cu``); the Cython driver and the CUDA backend pass them from here, and tests
check every enum against this table. Each derivative is written through the activation's output
``y``, which is what the forward saves.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp overflows to inf for x << 0, giving exactly 0
        return 1 / (1 + np.exp(-x))


#: name -> (code, f(x), f'(x) through y = f(x)): the candidate activation of the state.
_ACTIVATIONS: dict[str, tuple[int, Callable, Callable]] = {
    "tanh": (0, np.tanh, lambda y: 1 - y * y),
    "relu": (1, lambda x: np.maximum(x, 0), lambda y: (y > 0).astype(y.dtype)),
    "linear": (2, lambda x: x, np.ones_like),
}
#: The same for the recurrent activation of the update and reset gates.
_RECURRENT_ACTIVATIONS: dict[str, tuple[int, Callable, Callable]] = {
    "sigmoid": (0, _sigmoid, lambda y: y * (1 - y)),
    "hard_sigmoid": (1, lambda x: np.clip((x + 3) / 6, 0, 1),  # Keras 3's relu6(x + 3) / 6
                     lambda y: ((y > 0) & (y < 1)).astype(y.dtype) / 6),
}

ACTIVATIONS = tuple(_ACTIVATIONS)
RECURRENT_ACTIVATIONS = tuple(_RECURRENT_ACTIVATIONS)
ACTIVATION_CODES = {name: code for name, (code, _, _) in _ACTIVATIONS.items()}
RECURRENT_ACTIVATION_CODES = {name: code for name, (code, _, _) in _RECURRENT_ACTIVATIONS.items()}
_FORMULAS = {**_ACTIVATIONS, **_RECURRENT_ACTIVATIONS}


def _formulas(name: str) -> tuple[int, Callable, Callable]:
    formulas = _FORMULAS.get(name)
    if formulas is None:
        raise ValueError(f"unknown activation {name!r}")
    return formulas


def activate(name: str, x: np.ndarray) -> np.ndarray:
    """Apply an activation by name ("tanh", "relu", "linear", "sigmoid", "hard_sigmoid")."""
    return _formulas(name)[1](x)


def activation_grad(name: str, y: np.ndarray) -> np.ndarray:
    """Derivative of an activation, expressed through its output ``y``."""
    return _formulas(name)[2](y)
