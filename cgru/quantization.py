"""``Sequential.quantize``: a model's inference-only reduced-precision form (Keras 3's name).

``model.quantize(mode)`` turns the weight matrices of the model's GRU and Dense layers (the
two GRUs of a Bidirectional included) into ``mode``'s form, in place; every other layer keeps
its float32 weights (Embedding, Conv1D, LayerNormalization, TimeDistributed, plugin layers,
and a subclass of a built-in layer with its own ``forward``). The modes and their numerics:
:mod:`cgru.backends.quantize`; the weights a quantized layer holds: :mod:`cgru.layers.quantized`.

A quantized model predicts, streams (``stateful``), evaluates, saves and loads (the file holds
the quantized weights: what the model runs, at a half or a quarter of the size); ``fit`` and
``train_on_batch`` raise. It runs on the "cpu" backend (the compiled kernels) and on "numpy"
(the reference of each mode); other backends refuse it.
"""

from __future__ import annotations

from typing import Any

from .backends.quantize import MODES
from .layers import quantized as _quantized
from .layers.weights import read_values


def model_mode(model: Any) -> str | None:
    """The mode ``model`` (a Sequential, or a list of layers) is quantized to, or None (float)."""
    for layer in model.layers if hasattr(model, "layers") else model:
        for sub in layer._quantizable_layers():
            if sub.quantization_mode is not None:
                return sub.quantization_mode
    return None


def quantize_model(model: Any, mode: Any) -> None:
    """``Sequential.quantize`` (see there): checks everything, then installs every layer's
    quantized weights, computed from one consistent set of the model's weights."""
    if mode not in MODES:
        raise ValueError(f"Invalid quantization mode. Expected one of {MODES}. Received: mode={mode!r}")
    if not model.built:
        raise ValueError(
            f"Cannot quantize a model that isn't yet built: build model {model.name!r} first "
            "(build((None, time, features)), an Input, or call it on data)"
        )
    current = model_mode(model)
    if current is not None:
        raise ValueError(
            f"model {model.name!r} is already quantized to {current!r}. Received: mode={mode!r} "
            "(quantize the float model again)"
        )
    layers = [sub for layer in model.layers for sub in layer._quantizable_layers()]
    if not layers:
        raise ValueError(
            f"model {model.name!r} has no layer that quantize() applies to (GRU, Bidirectional, Dense)"
        )
    ops = model._current_ops()
    for layer in layers:
        layer._check_quantizable(mode)
    with model._lock:
        for layer in layers:
            _quantized.check_backend(layer, ops, mode)
        params = [p for layer in layers for p in layer.weights]
        _, values = read_values(params)
        plans, start = [], 0
        for layer in layers:
            count = len(layer.weights)
            host = [ops.to_numpy(v) for v in values[start:start + count]]
            plans.append((layer, layer._quantized_weights(mode, host)))
            start += count
        for layer, arrays in plans:
            layer._install_quantized(mode, arrays)
        model._make_fast()


def check_backend(model: Any, ops: Any) -> None:
    """Raise ValueError, before anything moves, when ``model`` is quantized and ``ops`` cannot
    run its quantized layers."""
    for layer in model.layers:
        for sub in layer._quantizable_layers():
            _quantized.check_backend(sub, ops)


def check_trainable(model: Any, what: str) -> None:
    """Raise ValueError when ``model`` is quantized: ``what`` (fit, train_on_batch) trains."""
    mode = model_mode(model)
    if mode is not None:
        raise ValueError(
            f"{what}() cannot train model {model.name!r}: it is quantized to {mode!r} "
            "(model.quantize), which makes an inference-only model. Train the float32 model, "
            "then quantize it"
        )


def check_exportable(model: Any, what: str) -> None:
    """Raise ValueError when ``model`` (a Sequential, or a list of layers) is quantized:
    ``what`` writes float weights."""
    mode = model_mode(model)
    if mode is not None:
        whose = f"model {model.name!r}" if hasattr(model, "layers") else "the layers"
        raise ValueError(
            f"{what} needs float weights, but {whose} is quantized to {mode!r}: convert the float32 model"
        )


__all__ = ["check_backend", "check_exportable", "check_trainable", "model_mode", "quantize_model"]
