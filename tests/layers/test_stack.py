"""cgru.layers.stack: building a model's layers for one input shape, all or nothing."""

import numpy as np
import pytest

from cgru import GRU, Dense, Sequential
from cgru.layers.stack import build_stack


def test_a_failed_build_leaves_every_layer_as_it_was(ops):
    built = Dense(4)
    built._maybe_build((None, 3))
    fresh, bad = Dense(2), GRU(2)  # a GRU cannot follow a 2-D output
    with pytest.raises(ValueError, match="3-D"):
        build_stack([built, fresh, bad], (None, 3), ops)
    assert built.built and not fresh.built and not bad.built and fresh.weights == []


def test_adding_a_layer_built_for_another_shape_is_refused(ops):
    model = Sequential([Dense(3, input_shape=(2,))], device=ops.name)
    other = Dense(1)
    other._maybe_build((None, 5))
    with pytest.raises(ValueError, match="was built for input shape"):
        model.add(other)
    assert len(model.layers) == 1 and model.output_shape == (None, 3)
    model.add(Dense(1))
    assert model.predict(np.ones((2, 2))).shape == (2, 1)
