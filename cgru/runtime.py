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


def get_num_threads() -> int:
    """Threads the compiled engine's BLAS uses (the number set, or the BLAS's own default)."""
    if _threads is not None:
        return _threads
    if compiled_available():
        return max(_engine().blas_get_threads(), 1)
    return os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (n >= 1) in the compiled engine's BLAS calls."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if compiled_available():
        _engine().blas_set_threads(n)
    _threads = n


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Context manager: use ``n`` threads inside the block, then restore the previous count."""
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)


def backend_info() -> dict:
    """What runs the models: ``backend`` name, ``compiled`` (bool), ``blas`` (the BLAS actually
    linked, with version, or None), ``threads``."""
    compiled = compiled_available()
    return {
        "backend": get_backend(),
        "compiled": compiled,
        "blas": _engine().blas_config() if compiled else None,
        "threads": get_num_threads(),
    }
