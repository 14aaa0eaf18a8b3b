"""Regression metrics with Keras 3's formulas: mean absolute, squared and absolute percentage
errors (means over the last axis, then weighted means over samples) and the root mean squared
error (the square root of the weighted mean of every squared element)."""

from __future__ import annotations

from typing import Any

from .. import config as _config
from ..sample_weights import squeeze_or_expand_to_same_rank
from .base import target_and_output
from .reduction import FixedFunctionMean, Mean


def _difference(y_true: Any, y_pred: Any) -> tuple:
    xp, y_true, y_pred = target_and_output(y_true, y_pred)
    if y_pred.dtype.kind != "f":
        y_pred = y_pred.astype(_config.floatx())
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true.astype(y_pred.dtype, copy=False), y_pred)
    return xp, y_true, y_pred


def mean_absolute_error(y_true: Any, y_pred: Any) -> Any:
    """``mean(|y_true - y_pred|, axis=-1)``."""
    xp, y_true, y_pred = _difference(y_true, y_pred)
    return xp.abs(y_true - y_pred).mean(axis=-1)


def mean_squared_error(y_true: Any, y_pred: Any) -> Any:
    """``mean((y_true - y_pred)**2, axis=-1)``."""
    xp, y_true, y_pred = _difference(y_true, y_pred)
    d = y_true - y_pred
    return (d * d).mean(axis=-1)


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> Any:
    """``100 * mean(|(y_true - y_pred) / max(|y_true|, eps)|, axis=-1)``."""
    xp, y_true, y_pred = _difference(y_true, y_pred)
    eps = y_pred.dtype.type(_config.epsilon())
    return 100.0 * xp.abs((y_true - y_pred) / xp.maximum(xp.abs(y_true), eps)).mean(axis=-1)


class _Errors(FixedFunctionMean):
    """Shared by the error means: smaller is better."""

    direction = "down"


class MeanAbsoluteError(_Errors):
    def __init__(self, name: str = "mean_absolute_error", dtype: Any = None) -> None:
        super().__init__(mean_absolute_error, name=name, dtype=dtype)


class MeanSquaredError(_Errors):
    def __init__(self, name: str = "mean_squared_error", dtype: Any = None) -> None:
        super().__init__(mean_squared_error, name=name, dtype=dtype)


class MeanAbsolutePercentageError(_Errors):
    def __init__(self, name: str = "mean_absolute_percentage_error", dtype: Any = None) -> None:
        super().__init__(mean_absolute_percentage_error, name=name, dtype=dtype)


class RootMeanSquaredError(Mean):
    """``sqrt`` of the weighted mean of the squared errors, element by element."""

    direction = "down"

    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        xp, y_true, y_pred = _difference(y_true, y_pred)
        d = y_pred - y_true
        super().update_state(d * d, sample_weight=sample_weight)

    def result(self) -> float:
        return super().result() ** 0.5


__all__ = [
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "RootMeanSquaredError",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
]
