"""Saving and loading models: one NumPy ``.npz`` file, never a pickle.

The file holds the weights as plain arrays (``weight_0000``, ``weight_0001``... in
``get_weights`` order) and one entry ``__cgru_config__``: UTF-8 JSON (stored as a uint8 array)
with the format name and version, the model config (layer classes and their configs, the input
shape), the compile settings, and each weight's name, shape, dtype and SHA-256 digest.

:func:`load_model` reads it with ``np.load(allow_pickle=False)``, checks everything (the zip
CRCs, the JSON, the format, every weight's shape, dtype and digest) and rebuilds the model, whose
predictions equal the saved model's bit for bit. Truncated, corrupted or foreign files raise
ValueError saying what is wrong. Plugin layers load when their class is registered
(``@cgru.register_layer``) under the saved name.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
import zlib
from typing import Any

import numpy as np

FORMAT = "cgru.Sequential"
WEIGHTS_FORMAT = "cgru.weights"
FORMAT_VERSION = 1
CONFIG_KEY = "__cgru_config__"


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _write(path: Any, meta: dict, weights: list[np.ndarray]) -> None:
    path = os.fspath(path)
    meta = dict(meta)
    meta["weights"] = [{"shape": list(w.shape), "dtype": w.dtype.str, "sha256": _digest(w)} for w in weights]
    arrays = {f"weight_{i:04d}": np.ascontiguousarray(w) for i, w in enumerate(weights)}
    arrays[CONFIG_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written model behind
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_model(model: Any, path: Any) -> None:
    """Write ``model`` (built) to ``path`` as described in the module documentation."""
    from . import __version__

    if not model.built:
        raise ValueError("cannot save a model that is not built: build it or call it on data first")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "cgru_version": __version__,
        "model": model.get_config(),
        "compile": model._compile_config(),
    }
    _write(path, meta, model.get_weights())


def save_weights(model: Any, path: Any) -> None:
    """Write only the weights of ``model`` (``load_weights`` reads them back)."""
    from . import __version__

    if not model.built:
        raise ValueError("cannot save the weights of a model that is not built")
    meta = {"format": WEIGHTS_FORMAT, "format_version": FORMAT_VERSION, "cgru_version": __version__}
    _write(path, meta, model.get_weights())


_READ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError)


def _read(path: Any, formats: tuple[str, ...]) -> tuple[dict, list[np.ndarray]]:
    """Open, check and return (metadata, weights) of a file written by ``_write``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    try:
        npz = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise ValueError(
            f"{path!r} is not a cgru model file: it is not a readable .npz archive "
            f"(truncated or corrupted?): {exc}"
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path!r} is not a cgru model file: it holds a single array, not an .npz archive")
    with npz:
        if CONFIG_KEY not in npz.files:
            raise ValueError(
                f"{path!r} is not a cgru model file: it has no {CONFIG_KEY!r} entry "
                f"(entries: {npz.files[:10]})"
            )
        try:
            raw = npz[CONFIG_KEY]
        except _READ_ERRORS as exc:
            raise ValueError(f"{path!r} is corrupted: its config entry cannot be read: {exc}") from None
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"{path!r} is corrupted: its config entry is not UTF-8 JSON bytes")
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path!r} is corrupted: its config is not valid JSON: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") not in formats:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"{path!r} is not a {' or '.join(formats)} file (format {found!r})")
        version = meta.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            raise ValueError(
                f"{path!r} has format version {version!r}; this cgru reads versions "
                f"1..{FORMAT_VERSION} (saved by cgru {meta.get('cgru_version')})"
            )
        specs = meta.get("weights")
        if not isinstance(specs, list):
            raise ValueError(f"{path!r} is corrupted: its config has no weight list")
        weights = []
        for i, spec in enumerate(specs):
            key = f"weight_{i:04d}"
            if key not in npz.files:
                raise ValueError(f"{path!r} is corrupted or truncated: weight {i} ({key}) is missing")
            try:
                arr = npz[key]
            except _READ_ERRORS as exc:
                raise ValueError(f"{path!r} is corrupted: weight {i} cannot be read: {exc}") from None
            try:
                shape, dtype, digest = tuple(spec["shape"]), np.dtype(spec["dtype"]), spec["sha256"]
            except (KeyError, TypeError) as exc:
                raise ValueError(f"{path!r} is corrupted: bad description of weight {i}: {exc}") from None
            if arr.shape != shape or arr.dtype != dtype:
                raise ValueError(
                    f"{path!r} is corrupted: weight {i} is {arr.dtype}{arr.shape}, "
                    f"the config says {dtype}{shape}"
                )
            if _digest(arr) != digest:
                raise ValueError(f"{path!r} is corrupted: weight {i} does not match its SHA-256 digest")
            weights.append(arr)
    return meta, weights


def load_model(path: Any, compile: bool = True, device: str | None = None) -> Any:
    """Rebuild a model saved by ``Sequential.save`` (compiled again when it was compiled).

    ``device``: the backend for the loaded model (default: follow the current backend).
    Raises ValueError for a file that is truncated, corrupted, foreign or names an unknown
    (unregistered) layer class.
    """
    from .models import Sequential

    meta, weights = _read(path, (FORMAT,))
    try:
        model = Sequential.from_config(meta["model"], device=device)
    except KeyError as exc:
        raise ValueError(f"{os.fspath(path)!r} is corrupted: its model config lacks {exc}") from None
    if not model.built:
        raise ValueError(f"{os.fspath(path)!r} is corrupted: its model config has no input shape")
    model.set_weights(weights)
    compile_config = meta.get("compile")
    if compile and compile_config:
        model.compile(
            optimizer=compile_config["optimizer"],
            loss=compile_config["loss"],
            metrics=compile_config.get("metrics") or None,
        )
    return model


def load_weights(model: Any, path: Any) -> None:
    """Read weights from a file written by ``save_weights`` or ``save`` into ``model``."""
    _, weights = _read(path, (WEIGHTS_FORMAT, FORMAT))
    model._require_built("load_weights()")
    model.set_weights(weights)


__all__ = ["load_model", "load_weights", "save_model", "save_weights"]
