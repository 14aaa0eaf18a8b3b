"""Argument checks shared by the whole package: one home for each rule.

Every check raises TypeError for a value of the wrong kind and ValueError for a value of the
right kind out of range, naming the argument and what was expected; each returns the value
normalised (a Python int or float, a tuple, an array).

``lengths`` (one valid length per sequence of a right-padded batch) is checked once, where it
enters: :class:`~cgru.Sequential`'s entry points, a layer called on its own, and the ops entry
(``Ops.gru_forward``) for direct users of a backend. What runs below an entry point trusts it;
the native engine still checks every size before touching memory.

This module imports only NumPy, so that every part of the package, backends included, can use it.
"""

from __future__ import annotations

import importlib
import math
import sys
from typing import Any

import numpy as np


# ------------------------------------------------------------------------------------ arrays
def is_dask_array(a: Any) -> bool:
    """Whether ``a`` is a ``dask.array.Array`` (never imports dask: one exists only if it was)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(a, getattr(module, "Array", ()))


def xp_of(a: Any) -> Any:
    """The array module of ``a``: ``numpy`` for NumPy arrays and anything that is not a GPU
    array, else the module that defines the array's type (``cupy``)."""
    if isinstance(a, np.ndarray) or not hasattr(a, "__cuda_array_interface__"):
        return np
    return importlib.import_module(type(a).__module__.split(".")[0])


def to_host(x: Any) -> np.ndarray:
    """A NumPy array from array-like ``x`` (CuPy arrays are copied to the host)."""
    if not isinstance(x, np.ndarray) and hasattr(x, "get") and hasattr(x, "__cuda_array_interface__"):
        x = x.get()
    return np.asarray(x)


def as_numeric_array(x: Any, name: str, xp: Any = np) -> Any:
    """``x`` as an array of ``xp`` with a numeric dtype; TypeError/ValueError saying what is wrong."""
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    if xp is np or not hasattr(x, "__cuda_array_interface__"):
        try:
            x = to_host(x)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a rectangular numeric array: {exc}") from None
    else:
        x = xp.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got an array of dtype {x.dtype}")
    return x


def as_batch_array(x: Any, name: str = "x") -> np.ndarray:
    """:func:`as_numeric_array` on the host, with at least a batch axis."""
    x = as_numeric_array(x, name)
    if x.ndim < 1:
        raise ValueError(f"{name} must have a batch axis")
    return x


def check_lengths(lengths: Any, batch: int, time: int) -> np.ndarray | None:
    """Validate ``lengths``: None, or ``batch`` integers in 0..time. Returns a C-contiguous int64
    NumPy array, or None when there are none or every sequence fills the time axis."""
    if lengths is None:
        return None
    arr = to_host(lengths)
    if arr.dtype.kind not in "iu":
        integral = arr.dtype.kind == "f" and bool(np.all(np.isfinite(arr) & (arr == np.round(arr))))
        if not integral:
            raise TypeError(f"lengths must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.ndim != 1 or arr.shape[0] != batch:
        raise ValueError(
            f"lengths must have one entry per sequence: expected shape ({batch},), "
            f"got {np.shape(lengths)}"
        )
    if arr.size and (arr.min() < 0 or arr.max() > time):
        raise ValueError(f"lengths must be in 0..{time} (the time axis), got {arr.min()}..{arr.max()}")
    if arr.size and arr.min() == time:
        return None
    return np.ascontiguousarray(arr)


def check_lengths_for(lengths: Any, shape: tuple) -> np.ndarray | None:
    """:func:`check_lengths` for an input of ``shape`` (batch, time, ...)."""
    if lengths is None:
        return None
    if len(shape) < 2:
        raise ValueError("lengths need an input with a time axis (batch, time, ...)")
    return check_lengths(lengths, shape[0], shape[1])


# ------------------------------------------------------------------------------------ shapes
def check_shape(shape: Any, name: str, allow_none: bool = True) -> tuple:
    """A shape tuple of non-negative ints (None allowed for unknown sizes)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}")
    out = []
    for d in shape:
        if d is None and allow_none:
            out.append(None)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0:
            out.append(int(d))
        else:
            raise ValueError(f"{name} must contain non-negative ints or None, got {tuple(shape)}")
    return tuple(out)


# ----------------------------------------------------------------------------------- numbers
def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int(value: Any, name: str, minimum: int) -> int:
    """An int >= ``minimum`` (a bool is not an int here)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_int(value: Any, name: str) -> int:
    """An int >= 1, for sizes (units, dimensions)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """None or a non-negative int."""
    if seed is None:
        return None
    if not _is_int(seed):
        raise TypeError(f"{name} must be an int or None, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name} must be >= 0, got {seed}")
    return int(seed)


def check_rate(value: Any, name: str) -> float:
    """A fraction in [0, 1) (dropout rates, validation splits)."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a float in [0, 1), got {value!r}") from None
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return rate


def as_float(value: Any, name: str) -> float:
    """A number (not a bool) as a float."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None


def check_float(value: Any, name: str, lo: float = 0.0, hi: float = math.inf, hi_open: bool = False) -> float:
    """A number in ``[lo, hi]`` (``[lo, hi)`` with ``hi_open``), never NaN."""
    f = as_float(value, name)
    if not (lo <= f <= hi) or (hi_open and f == hi) or math.isnan(f):
        raise ValueError(f"{name} must be in [{lo}, {hi}{')' if hi_open else ']'}, got {value}")
    return f


def accepts_positional(fn: Any, count: int) -> bool:
    """Whether ``fn`` can be called with ``count`` positional arguments (True when Python
    cannot tell, e.g. for some built-in functions)."""
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


__all__ = [
    "accepts_positional",
    "as_batch_array",
    "as_float",
    "as_numeric_array",
    "check_float",
    "check_int",
    "check_lengths",
    "check_lengths_for",
    "check_positive_int",
    "check_rate",
    "check_seed",
    "check_shape",
    "to_host",
    "xp_of",
]
