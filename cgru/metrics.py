"""Metrics reported by ``fit``/``evaluate`` (averaged over all samples, and over the valid time
steps of padded sequence outputs).

Names: ``"mae"`` (``"mean_absolute_error"``), ``"mse"`` (``"mean_squared_error"``),
``"accuracy"``/``"acc"`` and the explicit ``"binary_accuracy"`` (prediction > 0.5 equals the
target, averaged over the last axis), ``"categorical_accuracy"`` (arg-max of target and
prediction equal) and ``"sparse_categorical_accuracy"`` (integer target equals the prediction's
arg-max).

``"accuracy"`` and ``"acc"`` pick their kind from the shapes of the targets and the model output,
never from the loss, exactly as Keras 3 does (``keras.src.trainers.compile_utils``):

1. the output has one unit on its last axis -> binary accuracy;
2. else the targets have fewer axes than the output, or a last axis of size 1 -> sparse
   categorical accuracy;
3. else -> categorical accuracy.

So a multi-unit sigmoid output trained with binary cross-entropy on multi-label targets reports
categorical accuracy (whether the highest-scored unit is the first positive label), as in
Keras 3; ask for ``"binary_accuracy"`` to get the per-label rate.

Each metric has a ``direction``, ``"up"`` (higher is better: the accuracies) or ``"down"``;
callbacks in ``mode="auto"`` use it to decide whether to maximise a monitored metric.
"""

from __future__ import annotations

from typing import Any

from .losses import align_targets
from .validation import xp_of


class Metric:
    """A metric: ``values(y_true, y_pred)`` gives one value per sample (or per time step)."""

    sparse = False
    #: "up" when larger values are better, "down" when smaller are; None: not known (a
    #: callback monitoring it then needs an explicit ``mode``)
    direction: str | None = None

    def __init__(self, name: str) -> None:
        self.name = name

    def values(self, xp: Any, y_true: Any, y_pred: Any) -> Any:
        raise NotImplementedError

    def sum_count(self, y_true: Any, y_pred: Any, mask: Any = None) -> tuple[float, float]:
        """(sum of values, number of values) over a batch; ``mask`` drops padded steps."""
        xp = xp_of(y_pred)
        y_true = align_targets(y_true, y_pred, self.sparse)
        v = self.values(xp, y_true, y_pred)
        if mask is None:
            return float(v.sum()), float(v.size)
        keep = xp.asarray(mask) > 0
        return float(xp.where(keep, v, 0).sum()), float(keep.sum())

    def __call__(self, y_true: Any, y_pred: Any, mask: Any = None) -> float:
        s, c = self.sum_count(y_true, y_pred, mask)
        return s / c if c else 0.0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class MeanAbsoluteError(Metric):
    direction = "down"

    def values(self, xp, y_true, y_pred):
        return xp.abs(y_pred - y_true).mean(axis=-1)


class MeanSquaredError(Metric):
    direction = "down"

    def values(self, xp, y_true, y_pred):
        d = y_pred - y_true
        return (d * d).mean(axis=-1)


class BinaryAccuracy(Metric):
    direction = "up"

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5) -> None:
        super().__init__(name)
        self.threshold = float(threshold)

    def values(self, xp, y_true, y_pred):
        return ((y_pred > self.threshold).astype(y_pred.dtype) == y_true).astype(y_pred.dtype).mean(axis=-1)


class CategoricalAccuracy(Metric):
    direction = "up"

    def values(self, xp, y_true, y_pred):
        return (xp.argmax(y_true, axis=-1) == xp.argmax(y_pred, axis=-1)).astype(y_pred.dtype)


class SparseCategoricalAccuracy(Metric):
    sparse = True
    direction = "up"

    def values(self, xp, y_true, y_pred):
        return (y_true == xp.argmax(y_pred, axis=-1)).astype(y_pred.dtype)


_NAMED = {
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
}
KNOWN = (*_NAMED, "accuracy", "acc")


def check(identifier: Any) -> None:
    """Raise for an unknown metric (before any data is seen)."""
    if isinstance(identifier, Metric):
        return
    if not isinstance(identifier, str):
        raise TypeError(f"metrics must be names or cgru.metrics.Metric objects, got {identifier!r}")
    if identifier.lower() not in KNOWN:
        raise ValueError(f"unknown metric {identifier!r}; known: {list(KNOWN)}")


def accuracy_kind(y_shape: tuple, out_shape: tuple) -> str:
    """The accuracy that ``"accuracy"`` means for targets of ``y_shape`` and outputs of
    ``out_shape`` (both with the batch axis): Keras 3's ``is_binary_or_sparse_categorical``."""
    if out_shape[-1] == 1:
        return "binary_accuracy"
    if len(y_shape) < len(out_shape) or y_shape[-1] == 1:
        return "sparse_categorical_accuracy"
    return "categorical_accuracy"


def get(identifier: Any, y_shape: tuple | None = None, out_shape: tuple | None = None) -> Metric:
    """The metric for ``identifier``; "accuracy"/"acc" need ``y_shape`` and ``out_shape`` (the
    targets' and the model output's shapes, batch axis included) to pick their kind."""
    check(identifier)
    if isinstance(identifier, Metric):
        return identifier
    key = identifier.lower()
    if key in _NAMED:
        return _NAMED[key](identifier)
    if y_shape is None or out_shape is None:
        raise ValueError(f"metric {identifier!r} needs the target and output shapes to pick its kind")
    return _NAMED[accuracy_kind(tuple(y_shape), tuple(out_shape))](identifier)


def name_of(identifier: Any) -> str:
    """The log key of a metric given by name or object (the name as given, as Keras)."""
    return identifier if isinstance(identifier, str) else identifier.name


def direction_of(identifier: Any) -> str | None:
    """``"up"``, ``"down"`` or None (unknown) for a metric given by name or object."""
    if isinstance(identifier, Metric):
        return identifier.direction
    key = str(identifier).lower()
    if key in ("accuracy", "acc"):
        return "up"
    cls = _NAMED.get(key)
    return None if cls is None else cls.direction


__all__ = [
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Metric",
    "SparseCategoricalAccuracy",
    "accuracy_kind",
    "direction_of",
    "get",
    "name_of",
]
