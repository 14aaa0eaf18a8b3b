"""A layer's weights: :class:`Parameter`, and building layers without initialising them.

A :class:`Parameter` holds one weight array, which cgru never writes into: every change makes a
new array and publishes it (:mod:`cgru.layers.weights`). :func:`validate_weights`,
:func:`assign_weights` and :func:`install_weights` check and publish a list of new values at
once. Under :func:`deferred_weights` layers are built with :class:`WeightPlaceholder` values
(no initializer runs), for loaders that install the real arrays right after.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..validation import as_numeric_array, to_host, xp_of
from .weights import publish

#: The dtypes of quantized weight matrices (cgru.layers.quantized), which take arrays of their
#: own dtype only: what their integers mean depends on scales a conversion would not know.
_QUANTIZED_DTYPES = {np.dtype(np.uint16): "bfloat16 bits (uint16)", np.dtype(np.int8): "int8"}


class Parameter:
    """One weight of a layer.

    ``value`` is the array (on the layer's backend), ``grad`` its gradient from the last
    ``backward`` (None before), ``trainable`` whether optimizers update it.

    cgru never writes into the array: assigning ``value``, :meth:`assign`, ``set_weights``,
    ``load_weights`` and optimizer steps each put a new array in its place, published together
    with the others they change (see :mod:`cgru.layers.weights`). So an array taken from
    ``value`` keeps its values, and a call that is running keeps the weights it started with.
    """

    __slots__ = ("name", "_value", "grad", "trainable", "_watchers")

    def __init__(self, name: str, value: Any, trainable: bool = True) -> None:
        self.name = name
        self._value = value
        self.grad = None
        self.trainable = trainable
        self._watchers: tuple = ()  # weak references to the Changes of the models holding it

    @property
    def value(self) -> Any:
        """The weight array. Assigning one publishes a copy converted to the parameter's dtype
        (C-contiguous, on its device); the shape must stay the same."""
        return self._value

    @value.setter
    def value(self, new: Any) -> None:
        publish([(self, self._checked(new, f"value for {self.name}"))])

    @property
    def shape(self) -> tuple:
        return tuple(self.value.shape)

    @property
    def dtype(self):
        return self.value.dtype

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the value."""
        return np.array(to_host(self.value), copy=True)

    def assign(self, value: Any) -> None:
        """Set the value (same shape) from ``value``: the same as assigning ``value``."""
        self.value = value

    def _checked(self, value: Any, what: str, copy: bool = True) -> Any:
        """``value`` as a new C-contiguous array of this parameter's shape, dtype and device;
        ValueError/TypeError naming ``what`` when it cannot be (a float value beyond the range
        of the parameter's dtype included: it would become inf). ``copy=False``: ``value``
        itself when it already is such an array (for arrays nobody else holds). A weight without
        a value yet (a :class:`WeightPlaceholder`) is checked on the host."""
        current = self._value
        xp = np if isinstance(current, WeightPlaceholder) else xp_of(current)
        arr = as_numeric_array(value, what, xp)
        if tuple(arr.shape) != tuple(current.shape):
            raise ValueError(f"{what} must have shape {tuple(current.shape)}, got {tuple(arr.shape)}")
        quantized = _QUANTIZED_DTYPES.get(np.dtype(current.dtype))
        if quantized is not None:
            _check_quantized(arr, current.dtype, quantized, what)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
            if copy:
                out = xp.array(arr, dtype=current.dtype, order="C", copy=True)
            else:
                out = xp.ascontiguousarray(arr, dtype=current.dtype)
        if arr.dtype.kind == "f" and out.dtype.kind == "f" and arr.dtype.itemsize > out.dtype.itemsize:
            overflow = xp.isinf(out) & xp.isfinite(arr)
            if bool(overflow.any()):
                worst = float(xp.abs(arr[overflow]).max())
                raise ValueError(
                    f"{what} has values beyond the {out.dtype} range (up to {worst:.4g}; the "
                    f"largest {out.dtype} is {float(np.finfo(out.dtype).max):.4g}), which would "
                    "become inf"
                )
        return out

    def __repr__(self) -> str:
        return f"<Parameter {self.name} shape={self.shape} dtype={self.dtype}>"


def _check_quantized(arr: Any, dtype: Any, kind: str, what: str) -> None:
    """A new value of a quantized weight matrix: its own dtype, and int8 in -127..127."""
    if arr.dtype != dtype:
        raise TypeError(
            f"{what} is a quantized weight ({kind}, from Sequential.quantize), so it takes {dtype} "
            f"values as get_weights() returns them, got {arr.dtype}: to use float weights, set them "
            "on the float model and quantize it again"
        )
    if arr.dtype == np.int8 and arr.size and int(arr.min()) < -127:
        raise ValueError(f"{what} holds int8 weights in -127..127 (symmetric), got {int(arr.min())}")


# ------------------------------------------------------------------ building without initialising
class WeightPlaceholder:
    """The value of a weight created under :func:`deferred_weights` until it receives its array:
    a shape and a dtype, no data. Anything that needs the data raises TypeError."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple, dtype: Any) -> None:
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("this weight has no value yet: built under deferred_weights(), it was never set")

    def __repr__(self) -> str:
        return f"<WeightPlaceholder shape={self.shape} dtype={self.dtype}>"


class _Deferral(threading.local):
    active = False


_deferral = _Deferral()


def deferring() -> bool:
    """Whether this thread is inside :func:`deferred_weights`."""
    return _deferral.active


@contextlib.contextmanager
def deferred_weights() -> Iterator[None]:
    """Build layers without initialising their weights, in this thread, inside the block.

    ``add_weight`` of a layer class with ``defer_weight_init = True`` then gives each weight a
    :class:`WeightPlaceholder` (no initializer runs, no memory is used); other layers initialise
    as usual. Whoever builds this way must give every weight its value, with
    :func:`install_weights`, before the layer runs: ``load_model`` and the converters do, with
    the arrays they read.
    """
    previous = _deferral.active
    _deferral.active = True
    try:
        yield
    finally:
        _deferral.active = previous


def validate_weights(params: list[Parameter], weights: Any, owner: str, copy: bool = True) -> list:
    """Check a list of new weight values against ``params``; returns them as new arrays of each
    parameter's dtype and device, ready for :func:`assign_weights` (``copy=False``: the given
    arrays themselves where they already are such arrays)."""
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise TypeError(f"weights for {owner} must be a list of arrays, got {type(weights).__name__}")
    if len(weights) != len(params):
        names = ", ".join(p.name for p in params) or "none"
        raise ValueError(f"{owner} expects {len(params)} weight arrays ({names}), got {len(weights)}")
    arrays = []
    for i, (p, w) in enumerate(zip(params, weights)):
        arrays.append(p._checked(w, f"weight {i} ({p.name}) of {owner}", copy))
    return arrays


def assign_weights(params: list[Parameter], arrays: list) -> None:
    """Publish :func:`validate_weights`'s arrays as the values of ``params``, all at once."""
    publish(zip(params, arrays))
    for p in params:
        p.grad = None


def install_weights(params: list[Parameter], weights: Any, owner: str, ops: Any, fresh: bool = False) -> None:
    """Give freshly built ``params`` their values, checked as ``set_weights`` checks them, all
    at once.

    A :class:`WeightPlaceholder` (from :func:`deferred_weights`) takes its array on ``ops``'s
    device in the parameter's dtype. ``fresh``: the arrays are new and nobody else holds them
    (read from a file), so those already in the right dtype and layout are used as they are.
    """
    arrays = validate_weights(params, weights, owner, copy=not fresh)
    updates = [
        (p, ops.asarray(a, dtype=p.dtype) if isinstance(p.value, WeightPlaceholder) else a)
        for p, a in zip(params, arrays)
    ]
    assign_weights([p for p, _ in updates], [a for _, a in updates])


__all__ = [
    "Parameter",
    "WeightPlaceholder",
    "assign_weights",
    "deferred_weights",
    "deferring",
    "install_weights",
    "validate_weights",
]
