"""Layers: the :class:`Layer` base class, the registry and the built-in layers.

- :mod:`cgru.layers.base`: ``Layer`` (and what a model asks of a layer), ``register_layer``
- :mod:`cgru.layers.parameters`: ``Parameter``, building without initialising weights
- :mod:`cgru.layers.recurrent`: ``GRU``, ``Bidirectional``
- :mod:`cgru.layers.core`: ``Dense``, ``Dropout``, ``Embedding``, ``Activation``, ``Flatten``
- :mod:`cgru.layers.activations`: the activation functions by Keras name
- :mod:`cgru.layers.input_layer`: ``Input`` (a model's first element, not a layer)
- :mod:`cgru.layers.masking`: ``Masking``
- :mod:`cgru.layers.convolutional`: ``Conv1D``
- :mod:`cgru.layers.normalization`: ``LayerNormalization``
- :mod:`cgru.layers.pooling`: ``GlobalAveragePooling1D``, ``GlobalMaxPooling1D``
- :mod:`cgru.layers.wrappers`: ``TimeDistributed``
- :mod:`cgru.layers.timesteps`: ``SelectTimestep``, ``ReverseTimesteps``
- :mod:`cgru.layers.weights`: how weights change while other threads use them
- :mod:`cgru.layers.stack`: building a model's layers for one input shape, all or nothing
"""

from .base import (
    Layer,
    Parameter,
    deserialize_layer,
    get_layer_class,
    register_layer,
    registered_layers,
    serialize_layer,
)
from .convolutional import Conv1D
from .core import Activation, Dense, Dropout, Embedding, Flatten
from .input_layer import Input, InputLayer
from .masking import Masking
from .normalization import LayerNormalization
from .pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from .recurrent import GRU, Bidirectional
from .timesteps import ReverseTimesteps, SelectTimestep
from .wrappers import TimeDistributed

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
    "ReverseTimesteps",
    "SelectTimestep",
    "TimeDistributed",
    "deserialize_layer",
    "get_layer_class",
    "register_layer",
    "registered_layers",
    "serialize_layer",
]
