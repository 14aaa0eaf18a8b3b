"""One deserialised copy of each model per process, for workers that receive models as bytes.

A Dask worker runs many tasks of one computation, each given the same model bytes (one key of
the graph, :mod:`cgru.distributed.dask`). :func:`model_for` rebuilds the model the first time a
digest is seen in this process and hands the same model to every later task, from any thread
(one model serves concurrent ``predict`` calls). The cache keeps the :data:`MAX_MODELS` models
used last.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

#: Models kept per process (the least recently used goes first).
MAX_MODELS = 4

_models: OrderedDict = OrderedDict()
_lock = threading.Lock()
_loads = [0]


def digest_of(data: bytes) -> str:
    """The key of a model's bytes: their SHA-256 digest."""
    return hashlib.sha256(data).hexdigest()


def model_for(digest: str, data: bytes, device: str | None = None) -> Any:
    """The model of ``data`` (whose :func:`digest_of` is ``digest``) on ``device``, rebuilt once
    per process."""
    key = (digest, device)
    with _lock:
        model = _models.get(key)
        if model is not None:
            _models.move_to_end(key)
            return model
        from ..pickling import model_from_bytes

        model = model_from_bytes(data, device)
        _loads[0] += 1
        _models[key] = model
        while len(_models) > MAX_MODELS:
            _models.popitem(last=False)
        return model


def cache_info() -> dict:
    """``{"models": held now, "loads": models rebuilt by this process so far}``."""
    with _lock:
        return {"models": len(_models), "loads": _loads[0]}


def clear() -> None:
    """Forget every model (the load count stays)."""
    with _lock:
        _models.clear()


__all__ = ["MAX_MODELS", "cache_info", "clear", "digest_of", "model_for"]
