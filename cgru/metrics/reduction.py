"""Weighted means and sums of values: ``Mean``, ``Sum`` and ``MeanMetricWrapper`` (Keras 3's).

A weighted mean is ``sum(w * v) / sum(w)`` over everything seen: :class:`Mean` keeps ``total``
and ``count``. The values of one batch are first reduced to one per sample exactly as Keras's
``reduce_to_samplewise_values`` does: trailing axes the weight lacks are averaged, the weight of
a sample is the mean of its weights over its steps, and without weights every sample counts 1
(its value being the mean over its steps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..sample_weights import broadcast_weight, squeeze_or_expand_to_same_rank
from .base import Metric, array_module


def _mean_over(xp: Any, a: Any, first: int) -> Any:
    return a.mean(axis=tuple(range(first, a.ndim))) if a.ndim > first else a


def _sum_over(xp: Any, a: Any, first: int) -> Any:
    return a.sum(axis=tuple(range(first, a.ndim))) if a.ndim > first else a


def reduce_to_samplewise_values(
    xp: Any, values: Any, sample_weight: Any, reduce_fn: Callable, dtype: Any
) -> tuple[Any, Any]:
    """Keras's ``reduce_to_samplewise_values``: ``(weighted values per sample, weight per
    sample)``; ``reduce_fn(xp, array, first_axis)`` is the mean or the sum over the axes from
    ``first_axis`` on."""
    values = xp.asarray(values).astype(dtype, copy=False)
    if sample_weight is not None:
        sample_weight = xp.asarray(sample_weight).astype(dtype, copy=False)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        weight_ndim = sample_weight.ndim
        values = reduce_fn(xp, values, weight_ndim)
        sample_weight = broadcast_weight(xp, sample_weight, values.shape)
        values = values * sample_weight
        if weight_ndim > 1:
            sample_weight = reduce_fn(xp, sample_weight, 1)
    values = reduce_fn(xp, values, 1)
    return values, sample_weight


class Sum(Metric):
    """The weighted sum of the values given to ``update_state(values, sample_weight=None)``."""

    def __init__(self, name: str = "sum", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        xp = array_module(values)
        values, _ = reduce_to_samplewise_values(xp, values, sample_weight, _sum_over, self.dtype)
        self.total.assign_add(values.sum())

    def result(self) -> float:
        return float(self.total.value)


class Mean(Metric):
    """The weighted mean of the values given to ``update_state(values, sample_weight=None)``."""

    def __init__(self, name: str = "mean", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total")
        self.count = self.add_variable((), name="count")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        xp = array_module(values)
        values, sample_weight = reduce_to_samplewise_values(xp, values, sample_weight, _mean_over, self.dtype)
        self.total.assign_add(values.sum())
        if sample_weight is not None:
            self.count.assign_add(sample_weight.sum())
        else:
            self.count.assign_add(values.shape[0] if values.ndim >= 1 else 1)

    def result(self) -> float:
        count = float(self.count.value)
        return float(self.total.value) / count if count else 0.0


class MeanMetricWrapper(Mean):
    """The weighted mean of ``fn(y_true, y_pred, **kwargs)``: ``fn`` returns one value per
    sample (or per time step, or per element), as arrays of ``y_pred``'s module.

    A plain function given to ``compile(metrics=[fn])`` becomes ``MeanMetricWrapper(fn)``,
    named after the function.
    """

    def __init__(self, fn: Callable, name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be a function of (y_true, y_pred), got {fn!r}")
        super().__init__(name=name or getattr(fn, "__name__", "mean_metric_wrapper"), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self) -> dict:
        raise ValueError(
            f"metric {self.name!r} wraps the function {getattr(self._fn, '__name__', self._fn)!r}, which a "
            "file cannot name: subclass MeanMetricWrapper and register the subclass "
            "(@cgru.metrics.register_metric) to save it"
        )


class FixedFunctionMean(MeanMetricWrapper):
    """Base of the built-in classes that each wrap one function of their own (the accuracies,
    the error means): the class names the function, so its config leaves the function out
    (``name`` and ``dtype``, plus a subclass's own arguments)."""

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}


__all__ = ["FixedFunctionMean", "Mean", "MeanMetricWrapper", "Sum", "reduce_to_samplewise_values"]
