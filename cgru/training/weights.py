"""Class weights as the data brings them: turned into sample weights (checked by
:func:`cgru.sample_weights.check_sample_weight`; how they weigh the loss and the metrics is
:mod:`cgru.sample_weights`'s business).

A batch's ``sample_weight`` is one number per sample, shape ``(batch,)``, or for a model whose
output is a sequence ``(batch, time, ...)`` one per time step, ``(batch, time)``. ``class_weight``
(a dict ``{class id: weight}``) becomes such sample weights from the targets, as Keras 3's data
adapters make them (``class_weight_to_sample_weights`` and the ``tf.data`` map of
``keras/src/trainers/data_adapters``): each target's class is its arg-max over the last axis when
that axis has more than one entry (one-hot or probabilities), else its value rounded to the
nearest integer; classes missing from the dict weigh 1.

For a sequence output, every time step has a class, so the weights are per time step
``(batch, time)`` (Keras's ``tf.data`` path does the same for one-hot targets ``(batch, time,
classes)``; its NumPy path cannot take sequence targets). Integer targets ``(batch, time)`` of a
sequence output of class scores are per-step class ids here.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def check_class_weight(class_weight: Any) -> dict[int, float] | None:
    """``class_weight`` as ``{int: float}`` (None stays None)."""
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict):
        raise TypeError(
            f"class_weight must be a dict mapping class ids to weights, got {type(class_weight).__name__}"
        )
    checked = {}
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, numbers.Integral):
            raise TypeError(f"class_weight keys must be integer class ids, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise TypeError(f"class_weight[{key}] must be a finite number, got {value!r}")
        checked[int(key)] = float(value)
    return checked


def refuse_both(sample_weight: Any, class_weight: Any, what: str) -> None:
    """Keras refuses ``class_weight`` and ``sample_weight`` together: so does ``what``."""
    if class_weight is not None and sample_weight is not None:
        raise ValueError(f"{what}() cannot take class_weight and sample_weight at the same time")


def target_classes(y: np.ndarray, out_shape: tuple) -> np.ndarray:
    """The class of each target: ``(batch,)``, or ``(batch, time)`` for a sequence output.

    ``out_shape`` is the model output's shape (batch first); targets with exactly its shape
    without the class axis are class ids already.
    """
    if y.ndim >= 2 and tuple(y.shape[1:]) != tuple(out_shape[1:-1]):
        y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else np.squeeze(y, axis=-1)
    return np.round(y).astype(np.int64)


def class_weight_to_sample_weight(
    y: np.ndarray, class_weight: dict, out_shape: tuple, dtype: Any
) -> np.ndarray:
    """The sample weights ``class_weight`` gives targets ``y`` of a model with outputs of
    ``out_shape``: ``(batch,)``, or ``(batch, time)`` for a sequence output."""
    classes = target_classes(y, out_shape)
    if classes.ndim > 2:
        raise ValueError(
            f"class_weight needs one class per sample or per time step; targets of shape {y.shape} "
            f"for outputs of shape {out_shape} have more"
        )
    keys = np.array(sorted(class_weight), dtype=np.int64)
    values = np.array([class_weight[k] for k in keys], dtype=dtype)
    weights = np.ones(classes.shape, dtype=dtype)
    if keys.size:
        at = np.clip(np.searchsorted(keys, classes), 0, keys.size - 1)
        hit = keys[at] == classes
        weights[hit] = values[at[hit]]
    return weights


__all__ = [
    "check_class_weight",
    "class_weight_to_sample_weight",
    "refuse_both",
    "target_classes",
]
