"""Backend information and thread control."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from .backends import compiled_available, get_backend

_threads: int | None = None


def _engine():
    from . import _engine

    return _engine


def available_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def get_num_threads() -> int:
    """Threads the compiled backend spreads one op over (default: the cores available)."""
    return _threads if _threads is not None else available_cores()


def set_num_threads(n: int) -> None:
    """Let the compiled backend spread one op over ``n`` threads (n >= 1).

    The engine's BLAS itself stays single-threaded: cgru splits a batch's independent sequences,
    and the two directions of a Bidirectional layer, across the threads instead (see
    ``cgru.backends.parallel``).
    """
    global _threads
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _threads = n


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Context manager: use ``n`` threads inside the block, then restore the previous count."""
    previous = _threads
    set_num_threads(n)
    try:
        yield
    finally:
        globals()["_threads"] = previous


def backend_info() -> dict:
    """What runs the models: ``backend`` name, ``compiled`` (bool), ``blas`` (the BLAS actually
    linked, with version, or None), ``threads`` (cgru's thread count)."""
    compiled = compiled_available()
    return {
        "backend": get_backend(),
        "compiled": compiled,
        "blas": _engine().blas_config() if compiled else None,
        "threads": get_num_threads(),
    }
