"""The input of a :class:`~cgru.Sequential`: :func:`Input` and :class:`InputLayer` (Keras's
``keras.Input`` and ``keras.layers.InputLayer``).

As in Keras 3, an ``Input`` given as a model's first element fixes the shape of one sample (and
optionally the batch size shown by ``summary``), builds the model as soon as its first layer is
added, and is not one of ``model.layers``: it has no weights and computes nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import config as _config
from ..validation import check_int, check_shape
from .base import unique_name


def _input_dtype(dtype: Any) -> str:
    """The name of a NumPy dtype the input may declare (default: :func:`cgru.floatx`)."""
    if dtype is None:
        return _config.floatx()
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"Input dtype must be a dtype name such as 'float32' or 'int64', got {dtype!r}"
        ) from None
    if resolved.kind not in "fiub":
        raise ValueError(f"Input dtype must be numeric (float, int or bool), got {resolved}")
    return resolved.name


class InputLayer:
    """The input of a model: the shape of its samples, an optional fixed batch size, a dtype.

    Give it (usually through :func:`Input`) as a :class:`~cgru.Sequential`'s first element.
    ``dtype`` records what the data is (as in Keras, each layer still computes in its own dtype;
    ids for an ``Embedding`` are any integer dtype). ``batch_size`` appears in the model's
    ``input_shape`` and ``summary``; batches of other sizes are accepted, as Keras accepts them.
    """

    def __init__(
        self,
        shape: Any = None,
        batch_size: int | None = None,
        dtype: Any = None,
        name: str | None = None,
        batch_shape: Any = None,
        sparse: bool | None = None,
        ragged: bool | None = None,
        optional: bool = False,
        input_tensor: Any = None,
    ) -> None:
        for flag, value in (("sparse", sparse), ("ragged", ragged), ("optional", optional)):
            if value:
                raise ValueError(f"Input: {flag}=True is not supported by cgru (dense batches only)")
        if input_tensor is not None:
            raise ValueError("Input: tensor= is not supported by cgru (a Sequential takes arrays)")
        if shape is not None and batch_shape is not None:
            raise ValueError("Input: give shape or batch_shape, not both")
        if batch_size is not None and batch_shape is not None:
            raise ValueError("Input: give batch_size or batch_shape, not both")
        if shape is None and batch_shape is None:
            raise ValueError("Input needs shape=, the shape of one sample, e.g. shape=(None, 16)")
        if shape is not None:
            batch = None if batch_size is None else check_int(batch_size, "batch_size", 1)
            batch_shape = (batch, *check_shape(shape, "shape"))
        else:
            batch_shape = check_shape(batch_shape, "batch_shape")
            if not batch_shape:
                raise ValueError("Input: batch_shape must include the batch axis, e.g. (None, 10, 3)")
            if batch_shape[0] is not None:
                check_int(batch_shape[0], "batch size (batch_shape[0])", 1)
        if len(batch_shape) < 2:
            raise ValueError(
                f"Input: a sample needs at least one axis (shape=(features,) or (time, features)), "
                f"got batch shape {batch_shape}"
            )
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        self.batch_shape: tuple = tuple(batch_shape)
        self.dtype = _input_dtype(dtype)
        self.name = name or unique_name("input_layer")

    @property
    def shape(self) -> tuple:
        """The shape of one sample (the batch shape without the batch axis)."""
        return self.batch_shape[1:]

    @property
    def batch_size(self) -> int | None:
        return self.batch_shape[0]

    def get_config(self) -> dict:
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> InputLayer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<InputLayer name={self.name!r} batch_shape={self.batch_shape} dtype={self.dtype}>"


def Input(  # noqa: N802 (Keras's name)
    shape: Any = None,
    batch_size: int | None = None,
    dtype: Any = None,
    name: str | None = None,
    batch_shape: Any = None,
    sparse: bool | None = None,
    ragged: bool | None = None,
    optional: bool = False,
    tensor: Any = None,
) -> InputLayer:
    """The input of a :class:`~cgru.Sequential` (Keras's ``keras.Input``)::

        model = cgru.Sequential([cgru.Input(shape=(None, 16)), cgru.GRU(32), cgru.Dense(1)])

    Args:
        shape: the shape of one sample, e.g. ``(time, features)``; None for a size that varies
            (the time axis of variable-length batches).
        batch_size: a fixed batch size to show in ``input_shape`` and ``summary`` (optional).
        dtype: the dtype of the data (default :func:`cgru.floatx`).
        name: a name (default "input_layer", "input_layer_1"...).
        batch_shape: the shape with the batch axis first, instead of ``shape`` and ``batch_size``.
        sparse, ragged, optional, tensor: Keras options cgru does not have; accepted when off.
    """
    return InputLayer(
        shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape,
        sparse=sparse, ragged=ragged, optional=optional, input_tensor=tensor,
    )


__all__ = ["Input", "InputLayer"]
