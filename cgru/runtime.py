"""Backend information and thread control (the thread count itself lives in
``cgru.backends.parallel``, beside the code that reads it)."""

from __future__ import annotations

from .backends import compiled_available, get_backend
from .backends.parallel import available_cores, get_num_threads, num_threads, set_num_threads

__all__ = ["available_cores", "backend_info", "get_num_threads", "num_threads", "set_num_threads"]


def backend_info() -> dict:
    """What runs the models: ``backend`` name, ``compiled`` (bool), ``blas`` (the BLAS actually
    linked, with version, or None), ``threads`` (cgru's thread count)."""
    compiled = compiled_available()
    if compiled:
        from . import _engine

        blas = _engine.blas_config()
    else:
        blas = None
    return {"backend": get_backend(), "compiled": compiled, "blas": blas, "threads": get_num_threads()}
