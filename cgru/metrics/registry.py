"""Metric classes and metric functions by saved name, so that ``save``/``load_model`` can
rebuild a model compiled with metric objects.

Built-in classes are registered under their class names. Register your own
:class:`~cgru.metrics.Metric` subclass (or a function wrapped by
:class:`~cgru.metrics.MeanMetricWrapper`) with :func:`register_metric` before saving and before
loading; the file keeps ``{"class_name": <registered name>, "config": metric.get_config()}``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from .base import Metric

_REGISTRY: dict[str, Any] = {}
_NAMES: dict[Any, str] = {}
_BUILTIN: set[str] = set()
_lock = threading.Lock()


def register_metric(obj: Any = None, *, name: str | None = None, override: bool = False) -> Any:
    """Register a :class:`Metric` subclass or a metric function under ``name`` (default: its
    ``__name__``). Use as ``@register_metric`` or ``@register_metric(name="mypkg.MyMetric")``.
    Re-registering the same object (or a redefinition from the same module) replaces the entry;
    another object under a taken name raises ValueError unless ``override=True``."""

    def decorate(o: Any) -> Any:
        is_class = isinstance(o, type)
        if (is_class and not issubclass(o, Metric)) or (not is_class and not callable(o)):
            raise TypeError(
                f"register_metric expects a subclass of cgru.metrics.Metric or a function, got {o!r}"
            )
        key = name if name is not None else getattr(o, "__name__", None)
        if not isinstance(key, str) or not key:
            raise TypeError(f"metric name must be a non-empty string, got {key!r}")
        with _lock:
            existing = _REGISTRY.get(key)
            if existing is not None and existing is not o and not override:
                same = (getattr(existing, "__module__", None), getattr(existing, "__qualname__", None)) == (
                    getattr(o, "__module__", None),
                    getattr(o, "__qualname__", None),
                )
                if key in _BUILTIN or not same:
                    raise ValueError(
                        f"cannot register {o!r} as {key!r}: that name belongs to {existing!r}; pass "
                        "register_metric(name='yourpackage.Name') to use another name, or override=True"
                    )
            if existing is not None:
                _NAMES.pop(existing, None)
            _REGISTRY[key] = o
            _NAMES[o] = key
        return o

    return decorate if obj is None else decorate(obj)


def register_builtin(*objects: Any) -> None:
    for o in objects:
        register_metric(o)
        _BUILTIN.add(o.__name__)


def registered_name(obj: Any) -> str | None:
    """The name ``obj`` (a class or function) is registered under, or None."""
    try:
        return _NAMES.get(obj)
    except TypeError:  # unhashable
        return None


def get_registered(name: Any) -> Any:
    """The class or function registered as ``name``; ValueError naming the known ones otherwise."""
    found = _REGISTRY.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValueError(
            f"unknown metric class {name!r}: register it with @cgru.metrics.register_metric before "
            f"loading (or load the model with compile=False); registered: {sorted(_REGISTRY)}"
        )
    return found


def serialize(metric: Metric) -> dict:
    """``{"class_name", "config"}`` for a metric of a registered class."""
    class_name = registered_name(type(metric))
    if class_name is None:
        raise ValueError(
            f"metric {metric.name!r} is a {type(metric).__name__}, which is not registered: decorate "
            "the class with @cgru.metrics.register_metric to save a model compiled with it"
        )
    config = metric.get_config()
    try:
        json.dumps(config)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"get_config() of metric {metric.name!r} is not JSON-serialisable: {exc}") from None
    return {"class_name": class_name, "config": config}


def deserialize(spec: Any) -> Metric:
    """A metric from :func:`serialize`'s output."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config", {}), dict) or "class_name" not in spec:
        raise ValueError(
            f"a metric description must be {{'class_name': ..., 'config': {{...}}}}, got {spec!r}"
        )
    cls = get_registered(spec["class_name"])
    if not isinstance(cls, type):
        raise ValueError(f"{spec['class_name']!r} is a registered metric function, not a metric class")
    return cls.from_config(dict(spec.get("config") or {}))


__all__ = ["deserialize", "get_registered", "register_metric", "registered_name", "serialize"]
