"""How a model travels to another process: as the bytes of its save format.

``pickle.dumps(model)`` (and cloudpickle, ``copy.deepcopy``, ``multiprocessing``, joblib, Dask,
Ray, Spark: everything that pickles) stores what ``model.save`` writes (config, weights, compile
settings with the metric objects and a learning-rate schedule, and the optimizer's state: its
slots and step count, so a schedule goes on at the saved step; see :mod:`cgru.saving`) plus the
model's ``device``, never its live parts: backend arrays, the engine's handles and workspaces,
locks, thread pools. The receiving process rebuilds the model with :func:`cgru.load_model`'s
checks, so its predictions, its metrics and its next training step equal the sender's bit for
bit. A model that is not built yet travels as its config and compile settings.

What the save format does not hold does not travel: the ``history`` of the last ``fit``, the
states of ``stateful=True`` layers (the copy starts from zero states), and metrics that a file
cannot name (plain functions and unregistered classes: left out with a warning, see
:mod:`cgru.training.compiled`). A model whose learning rate is a plain function cannot be saved,
so it does not pickle either (TypeError): write the function as a registered
:class:`~cgru.optimizers.schedules.LearningRateSchedule`.

:func:`model_bytes` and :func:`model_from_bytes` are the two ends, for code that moves the
bytes itself (:mod:`cgru.distributed` sends a model to Dask workers this way).
"""

from __future__ import annotations

import io
from typing import Any


def model_bytes(model: Any) -> bytes:
    """The bytes of ``model.save`` (a built model)."""
    buffer = io.BytesIO()
    model.save(buffer)
    return buffer.getvalue()


def model_from_bytes(data: bytes, device: str | None = None) -> Any:
    """The model whose :func:`model_bytes` are ``data`` (checked as :func:`cgru.load_model`
    checks a file), on ``device`` (default: follow the current backend)."""
    from .loading import load_model

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be the bytes of a saved model, got {type(data).__name__}")
    return load_model(io.BytesIO(data), device=device)


def _restore_unbuilt(config: dict, compile_config: Any, device: str | None) -> Any:
    from .loading import compile_as_saved
    from .models import Sequential

    model = Sequential.from_config(config, device=device)
    if compile_config:
        compile_as_saved(model, compile_config, "the pickled model")
    return model


def reduce_model(model: Any) -> tuple:
    """``Sequential.__reduce__``: rebuild from the save format's bytes (or, for a model not
    built yet, from its config and compile settings)."""
    from .training import compile_config

    device = model._device
    if not model.built:
        return _restore_unbuilt, (model.get_config(), compile_config(model), device)
    return model_from_bytes, (model_bytes(model), device)


__all__ = ["model_bytes", "model_from_bytes", "reduce_model"]
