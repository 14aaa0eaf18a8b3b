"""``load_model``: a :class:`~cgru.Sequential` rebuilt from a file that ``save`` wrote.

The file format and its checks are :mod:`cgru.saving`'s; this module builds the model the
file's config describes without running initializers
(:func:`cgru.layers.base.deferred_weights`), compiles it as it was, checks its weights against
the file's, and only then reads the data and installs it. Plugin layers load when their class is
registered (``@cgru.register_layer``) under the saved name.
"""

from __future__ import annotations

from typing import Any

from .layers.base import deferred_weights, install_weights
from .models import Sequential
from .saving import FORMAT, ModelFile
from .training import restore_optimizer_state

#: What rebuilding or compiling from a corrupted or foreign config raises.
_CONFIG_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def _describe(exc: BaseException) -> str:
    return f"it lacks {exc}" if isinstance(exc, KeyError) else str(exc)


def _build_without_init(model_file: ModelFile, device: str | None) -> Sequential:
    """The model of the file's config, its weight placeholders checked against the file's."""
    where = model_file.where
    if device is not None:
        Sequential._resolve_device(device)  # a bad device is the caller's error, not the file's
    try:
        with deferred_weights():
            model = Sequential.from_config(model_file.meta.get("model"), device=device)
    except _CONFIG_ERRORS as exc:
        raise ValueError(f"{where}: cannot rebuild the model from its config: {_describe(exc)}") from exc
    if not model.built:
        raise ValueError(f"{where} is corrupted: its model config has no input shape")
    model_file.check_params(model.weights)
    return model


def compile_as_saved(model: Sequential, compile_config: Any, where: str) -> None:
    if not isinstance(compile_config, dict):
        raise ValueError(f"{where} is corrupted: its compile config is not an object")
    for key in ("optimizer", "loss"):
        if key not in compile_config:
            raise ValueError(f"{where} is corrupted: its compile config lacks {key!r}")
    try:
        model.compile(
            optimizer=compile_config["optimizer"],
            loss=compile_config["loss"],
            metrics=compile_config.get("metrics") or None,
            weighted_metrics=compile_config.get("weighted_metrics") or None,
        )
    except _CONFIG_ERRORS as exc:
        raise ValueError(f"{where}: cannot compile the model as saved: {_describe(exc)}") from exc


def load_model(path: Any, compile: bool = True, device: str | None = None) -> Sequential:
    """Rebuild a model saved by ``Sequential.save`` (compiled again when it was compiled, its
    optimizer continuing from the saved state). ``path``: a path, or a seekable binary file
    object holding the file's bytes (``io.BytesIO(data)``).

    ``device``: the backend for the loaded model (default: follow the current backend).
    Raises FileNotFoundError for a missing path, and ValueError for anything else that is not
    a cgru model file this cgru can read: not a regular file (a directory or FIFO), truncated,
    corrupted, crafted, foreign, or naming an unknown (unregistered) layer class. The work
    and memory are bounded by the file's size: nothing the file claims is built before its
    claims are checked, and no initializer runs.
    """
    with ModelFile(path, (FORMAT,)) as model_file:
        model = _build_without_init(model_file, device)
        compile_config = model_file.meta.get("compile")
        compiled = bool(compile and compile_config)
        if compiled:
            compile_as_saved(model, compile_config, model_file.where)
        arrays = model_file.read_weights()
        optimizer_state = model_file.read_optimizer_state() if compiled else None
        install_weights(model.weights, arrays, f"model {model.name!r}", model._current_ops(), fresh=True)
        if optimizer_state is not None:
            try:
                restore_optimizer_state(model, optimizer_state)
            except ValueError as exc:
                raise ValueError(f"{model_file.where} is corrupted: {exc}") from None
    return model


__all__ = ["compile_as_saved", "load_model"]
