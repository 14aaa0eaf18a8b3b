"""Layers: the :class:`Layer` base class, the registry and the built-in layers.

- :mod:`cgru.layers.base`: ``Layer`` (and what a model asks of a layer), ``register_layer``
- :mod:`cgru.layers.parameters`: ``Parameter``, building without initialising weights
- :mod:`cgru.layers.recurrent`: ``GRU``, ``Bidirectional``
- :mod:`cgru.layers.core`: ``Dense``, ``Dropout``, ``Embedding``
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
from .core import Dense, Dropout, Embedding
from .recurrent import GRU, Bidirectional
from .timesteps import ReverseTimesteps, SelectTimestep

__all__ = [
    "GRU",
    "Bidirectional",
    "Dense",
    "Dropout",
    "Embedding",
    "Layer",
    "Parameter",
    "ReverseTimesteps",
    "SelectTimestep",
    "deserialize_layer",
    "get_layer_class",
    "register_layer",
    "registered_layers",
    "serialize_layer",
]
