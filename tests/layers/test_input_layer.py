"""Input(shape=...) as a Sequential's first element, as in Keras 3: it fixes the input shape and
builds the model, is not one of model.layers, shows a fixed batch size in input_shape and
summary, and survives save/load."""

from __future__ import annotations

import numpy as np
import pytest

import cgru
from cgru import GRU, Dense, Input, Sequential
from cgru.summary import summary_lines


def test_input_builds_the_model_and_is_not_a_layer(rng):
    spec = Input(shape=(None, 3), name="features")
    model = Sequential([spec, GRU(4), Dense(1)])
    assert model.built and model.input_shape == (None, None, 3) and model.input is spec
    assert [type(layer) for layer in model.layers] == [GRU, Dense]
    assert model.predict(rng.standard_normal((2, 5, 3)).astype(np.float32)).shape == (2, 1)
    empty = Sequential()
    empty.add(Input(shape=(7,)))
    assert not empty.built and empty.layers == []
    empty.add(Dense(2))
    assert empty.built and empty.input_shape == (None, 7)


def test_batch_size_shows_in_input_shape_and_summary(rng):
    model = Sequential([Input(shape=(5, 3), batch_size=4), GRU(2, return_sequences=True)])
    assert model.input_shape == (4, 5, 3)
    assert any("(4, 5, 2)" in line for line in summary_lines(model))
    assert model.predict(rng.standard_normal((6, 5, 3)).astype(np.float32)).shape == (6, 5, 2)  # as Keras
    assert Input(batch_shape=(2, None, 3)).batch_size == 2


def test_saved_and_loaded(tmp_path):
    model = Sequential([Input(shape=(None, 3), batch_size=8, dtype="float64", name="x_in"), GRU(2)])
    model.save(tmp_path / "m.npz")
    loaded = cgru.load_model(tmp_path / "m.npz")
    assert loaded.input.get_config() == {"batch_shape": [8, None, 3], "dtype": "float64", "name": "x_in"}
    assert loaded.input_shape == (8, None, 3) and loaded.get_config() == model.get_config()


def test_errors():
    with pytest.raises(ValueError, match="must be the first element"):
        Sequential([Dense(2, input_shape=(3,)), Input(shape=(3,))])
    model = Sequential([Input(shape=(3,))])
    with pytest.raises(ValueError, match="already has an Input"):
        model.add(Input(shape=(3,)))
    with pytest.raises(ValueError, match=r"input_shape \(4,\), but the model's Input has shape \(3,\)"):
        model.add(Dense(2, input_shape=(4,)))
    assert model.layers == []  # the refused layer was not kept
    with pytest.raises(ValueError, match="needs shape="):
        Input()
    with pytest.raises(ValueError, match="not both"):
        Input(shape=(3,), batch_shape=(None, 3))
    with pytest.raises(ValueError, match="sparse=True"):
        Input(shape=(3,), sparse=True)
    with pytest.raises(ValueError, match="must be numeric"):
        Input(shape=(3,), dtype="str")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        Input(shape=(3,), batch_size=0)
    with pytest.raises(ValueError, match="non-negative ints or None"):
        Input(shape=(-1, 3))
    Sequential([Input(shape=(3,)), Dense(2, input_shape=(3,))])  # the same shape twice is fine
