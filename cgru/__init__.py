"""cgru: gated recurrent unit networks with a compiled CPU engine and an optional GPU backend.

A Keras-style API over interchangeable backends::

    import numpy as np
    from cgru import GRU, Dense, Sequential

    model = Sequential([GRU(20, return_sequences=True, input_shape=(5, 10)), GRU(20), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.random.rand(64, 5, 10), np.random.rand(64, 1), epochs=2)
    model.predict(np.random.rand(4, 5, 10))
"""

from typing import TYPE_CHECKING

from . import callbacks, initializers, losses, metrics, optimizers, utils
from ._version import __version__ as __version__
from .backends import available_backends, get_backend, get_ops, register_backend, set_backend
from .config import epsilon, floatx, set_epsilon, set_floatx, set_random_seed
from .interop import from_keras, from_torch, from_torch_state_dict, to_torch_state_dict
from .layers import (
    GRU,
    Activation,
    Bidirectional,
    Conv1D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Input,
    InputLayer,
    Layer,
    LayerNormalization,
    Masking,
    Parameter,
    TimeDistributed,
    register_layer,
)
from .models import Sequential
from .runtime import backend_info, get_num_threads, num_threads, set_num_threads

if TYPE_CHECKING:
    from .loading import load_model
    from .onnx import from_onnx, to_onnx

# Loaded on first use: load_model's modules import zipfile, hashlib and json; the ONNX
# functions' package imports the optional onnx only when they are called; cgru.distributed
# imports mpi4py, dask or cupy only when a strategy is made or a dask array predicted.
_LAZY = {"load_model": "loading", "to_onnx": "onnx", "from_onnx": "onnx"}
_LAZY_MODULES = ("distributed",)


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_MODULES))


__all__ = [
    "GRU",
    "Activation",
    "Bidirectional",
    "Conv1D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "Input",
    "InputLayer",
    "Layer",
    "LayerNormalization",
    "Masking",
    "Parameter",
    "Sequential",
    "available_backends",
    "backend_info",
    "callbacks",
    "distributed",
    "epsilon",
    "floatx",
    "from_keras",
    "from_onnx",
    "from_torch",
    "from_torch_state_dict",
    "get_backend",
    "get_num_threads",
    "get_ops",
    "initializers",
    "load_model",
    "losses",
    "metrics",
    "num_threads",
    "optimizers",
    "register_backend",
    "register_layer",
    "set_backend",
    "set_epsilon",
    "set_floatx",
    "set_num_threads",
    "set_random_seed",
    "TimeDistributed",
    "to_onnx",
    "to_torch_state_dict",
    "utils",
]
