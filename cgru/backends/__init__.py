"""Backend registry: names -> factories that build an :class:`~cgru.backends.base.Ops`.

Built-in backends register here exactly as third-party ones do; installed packages may also
provide one through the ``cgru.backends`` entry-point group (the entry point names a factory,
a zero-argument callable returning an ``Ops``). Factories run lazily, on first use, so
``import cgru`` never imports an optional dependency such as CuPy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import import_module

from .base import Ops

_factories: dict[str, Callable[[], Ops]] = {}
_instances: dict[str, Ops] = {}
_lock = threading.Lock()
_current: str | None = None
_entry_points_loaded = False


def register_backend(name: str, factory: Callable[[], Ops]) -> None:
    """Make ``factory`` (a zero-argument callable returning an Ops) available as ``name``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"backend name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"backend factory for {name!r} must be callable, got {type(factory).__name__}")
    with _lock:
        _factories[name] = factory
        _instances.pop(name, None)


def _lazy(module: str, attribute: str) -> Callable[[], Ops]:
    def factory() -> Ops:
        return getattr(import_module(module, __name__), attribute)()

    return factory


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    from importlib.metadata import entry_points  # here: importing it costs ~15 ms

    _entry_points_loaded = True
    for ep in entry_points(group="cgru.backends"):
        if ep.name not in _factories:
            _factories[ep.name] = ep.load


def available_backends() -> list[str]:
    """Names of every registered backend (they may still fail to start, e.g. no GPU)."""
    _load_entry_points()
    return sorted(_factories)


def get_ops(name: str | None = None) -> Ops:
    """The Ops instance for ``name`` (the current backend when None), built on first use."""
    if name is None:
        name = get_backend()
    ops = _instances.get(name)
    if ops is not None:
        return ops
    if name not in _factories:
        _load_entry_points()
    if name not in _factories:
        raise ValueError(f"unknown backend {name!r}; available: {available_backends()}")
    factory = _factories[name]
    ops = factory()
    if isinstance(ops, type):  # an entry point may name the class itself
        ops = ops()
    if not isinstance(ops, Ops):
        raise TypeError(f"backend {name!r} factory returned {type(ops).__name__}, not an Ops")
    with _lock:
        return _instances.setdefault(name, ops)


def compiled_available() -> bool:
    """Whether the compiled CPU engine was built and imports."""
    try:
        import_module("cgru._engine")
    except ImportError:
        return False
    return True


def get_backend() -> str:
    """Name of the current backend: "cpu" when the compiled engine is present, else "numpy"."""
    global _current
    if _current is None:
        _current = "cpu" if compiled_available() else "numpy"
    return _current


def set_backend(name: str) -> None:
    """Select the backend used by models that were not given a ``device``.

    Raises ValueError for an unknown name, and the backend's own error (e.g. ImportError or
    RuntimeError saying that CuPy or a GPU is missing) when it cannot start.
    """
    global _current
    get_ops(name)
    _current = name


register_backend("numpy", _lazy(".numpy_ops", "NumpyOps"))
register_backend("cpu", _lazy(".cpu_ops", "CPUOps"))
register_backend("cuda", _lazy(".cupy_ops", "CupyOps"))

__all__ = [
    "Ops",
    "available_backends",
    "get_backend",
    "get_ops",
    "register_backend",
    "set_backend",
]
