"""Metric classes by saved name, so that ``save``/``load_model`` can rebuild a model compiled
with metric objects.

Built-in classes are registered under their class names. Register your own
:class:`~cgru.metrics.Metric` subclass with :func:`register_metric` before saving and before
loading; the file keeps ``{"class_name": <registered name>, "config": metric.get_config()}``.
A :class:`~cgru.metrics.MeanMetricWrapper` of a plain function cannot be saved (the file cannot
name the function): subclass it and register the subclass instead.
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import Metric

METRICS = Registry("metric", Metric, "cgru.metrics.register_metric", "cgru.metrics.Metric")

#: ``@register_metric`` or ``@register_metric(name="mypkg.MyMetric")`` (see :class:`Registry`)
register_metric = METRICS.register


def register_builtin(*classes: type) -> None:
    for cls in classes:
        METRICS.register_builtin(cls)


def registered_name(cls: type) -> str | None:
    """The name ``cls`` is registered under, or None."""
    return METRICS.name_of(cls)


def serialize(metric: Metric) -> dict:
    """``{"class_name", "config"}`` for a metric of a registered class (ValueError otherwise)."""
    return METRICS.serialize(metric, f"metric {metric.name!r}")


def deserialize(spec: Any) -> Metric:
    """A metric from :func:`serialize`'s output."""
    return METRICS.deserialize(spec)


__all__ = ["METRICS", "deserialize", "register_metric", "registered_name", "serialize"]
