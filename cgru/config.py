"""Global settings: the default float type (``floatx``), Keras's fuzz factor and random seeding.

As in Keras, every layer takes ``dtype=`` and falls back on :func:`floatx` when it is None::

    import cgru
    cgru.set_floatx("float64")     # models built from now on compute in float64
    cgru.floatx()                  # -> "float64"

:func:`set_random_seed` makes everything that is not given an explicit ``seed`` reproducible:
weight initialization of layers created afterwards, dropout masks and ``fit``'s shuffling.
"""

from __future__ import annotations

import threading

import numpy as np

from .validation import check_seed

_FLOATX = "float32"
_EPSILON = 1e-7
_SUPPORTED_FLOATX = ("float32", "float64")

_seed_lock = threading.Lock()
_seed_rng = None  # made on first use: importing numpy.random is a good part of `import cgru`


def floatx() -> str:
    """The default float type of new layers: ``"float32"`` (default) or ``"float64"``."""
    return _FLOATX


def set_floatx(value: str) -> None:
    """Set the default float type of layers created afterwards (``"float32"`` or ``"float64"``)."""
    global _FLOATX
    _FLOATX = standardize_dtype(value, name="floatx")


def epsilon() -> float:
    """The fuzz factor used by the losses (Keras's ``epsilon()``, 1e-7)."""
    return _EPSILON


def set_epsilon(value: float) -> None:
    """Set the fuzz factor used to clip probabilities in the cross-entropy losses."""
    global _EPSILON
    value = float(value)
    if not (0.0 <= value < 0.5):
        raise ValueError(f"epsilon must be in [0, 0.5), got {value}")
    _EPSILON = value


def standardize_dtype(dtype, name: str = "dtype") -> str:
    """Normalise ``dtype`` (None means :func:`floatx`) to ``"float32"`` or ``"float64"``.

    Raises TypeError for something that is not a dtype, ValueError for another dtype.
    """
    if dtype is None:
        return _FLOATX
    try:
        np_dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name} must be 'float32' or 'float64', got {dtype!r}") from exc
    if np_dtype.name not in _SUPPORTED_FLOATX:
        raise ValueError(f"{name} must be one of {_SUPPORTED_FLOATX}, got {np_dtype.name!r}")
    return np_dtype.name


def set_random_seed(seed: int | None) -> None:
    """Seed the generator from which unseeded layers, dropout and ``fit`` shuffling draw their seeds.

    ``None`` goes back to fresh operating-system entropy.
    """
    global _seed_rng
    if seed is not None:
        seed = check_seed(seed)
    with _seed_lock:
        _seed_rng = np.random.default_rng(seed)


def next_seed() -> int:
    """A new seed drawn from the global generator (see :func:`set_random_seed`)."""
    global _seed_rng
    with _seed_lock:
        if _seed_rng is None:
            _seed_rng = np.random.default_rng()
        return int(_seed_rng.integers(0, 2**31 - 1))


__all__ = [
    "check_seed",
    "epsilon",
    "floatx",
    "next_seed",
    "set_epsilon",
    "set_floatx",
    "set_random_seed",
    "standardize_dtype",
]
