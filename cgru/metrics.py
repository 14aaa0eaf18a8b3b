"""Metrics reported by ``fit``/``evaluate`` (averaged over all samples, and over the valid time
steps of padded sequence outputs).

Names: ``"mae"`` (``"mean_absolute_error"``), ``"mse"`` (``"mean_squared_error"``),
``"accuracy"``/``"acc"`` and the explicit ``"binary_accuracy"``, ``"categorical_accuracy"``,
``"sparse_categorical_accuracy"``. As in Keras, ``"accuracy"`` picks its kind from the loss:
binary cross-entropy -> binary accuracy (prediction > 0.5 equals the target), categorical
cross-entropy -> categorical accuracy (arg-max equal), sparse categorical cross-entropy -> sparse
categorical accuracy; for other losses from the shapes: one output unit -> binary, integer
targets without the class axis -> sparse, else categorical.
"""

from __future__ import annotations

from typing import Any

from .losses import _xp_of, align_targets


class Metric:
    """A metric: ``values(y_true, y_pred)`` gives one value per sample (or per time step)."""

    sparse = False

    def __init__(self, name: str) -> None:
        self.name = name

    def values(self, xp: Any, y_true: Any, y_pred: Any) -> Any:
        raise NotImplementedError

    def sum_count(self, y_true: Any, y_pred: Any, mask: Any = None) -> tuple[float, float]:
        """(sum of values, number of values) over a batch; ``mask`` drops padded steps."""
        xp = _xp_of(y_pred)
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
    def values(self, xp, y_true, y_pred):
        return xp.abs(y_pred - y_true).mean(axis=-1)


class MeanSquaredError(Metric):
    def values(self, xp, y_true, y_pred):
        d = y_pred - y_true
        return (d * d).mean(axis=-1)


class BinaryAccuracy(Metric):
    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5) -> None:
        super().__init__(name)
        self.threshold = float(threshold)

    def values(self, xp, y_true, y_pred):
        return ((y_pred > self.threshold).astype(y_pred.dtype) == y_true).astype(y_pred.dtype).mean(axis=-1)


class CategoricalAccuracy(Metric):
    def values(self, xp, y_true, y_pred):
        return (xp.argmax(y_true, axis=-1) == xp.argmax(y_pred, axis=-1)).astype(y_pred.dtype)


class SparseCategoricalAccuracy(Metric):
    sparse = True

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


def get(
    identifier: Any, loss: Any = None, y_shape: tuple | None = None, out_shape: tuple | None = None
) -> Metric:
    """The metric for ``identifier``; "accuracy" is resolved from the loss (or the shapes)."""
    check(identifier)
    if isinstance(identifier, Metric):
        return identifier
    key = identifier.lower()
    if key in _NAMED:
        return _NAMED[key](identifier)
    kind = getattr(loss, "accuracy", None)
    if kind is None and out_shape is not None:
        if out_shape[-1] == 1:
            kind = "binary_accuracy"
        elif y_shape is not None and len(y_shape) == len(out_shape) - 1:
            kind = "sparse_categorical_accuracy"
        else:
            kind = "categorical_accuracy"
    return _NAMED[kind or "categorical_accuracy"](identifier)


__all__ = [
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Metric",
    "SparseCategoricalAccuracy",
    "get",
]
