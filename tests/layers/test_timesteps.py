"""SelectTimestep and ReverseTimesteps: forward against NumPy indexing loops, backward as the
exact adjoint of the forward (both are linear), lengths, errors, save/load and training."""

from __future__ import annotations

import numpy as np
import pytest

import cgru
from cgru import GRU, Dense, Sequential
from cgru.layers import ReverseTimesteps, SelectTimestep


def reversed_within_lengths(x, lengths):
    out = np.zeros_like(x)
    for b, n in enumerate(lengths):
        for t in range(n):
            out[b, t] = x[b, n - 1 - t]
    return out


@pytest.mark.parametrize("index", [0, 2, -1, -4])
def test_select_timestep_forward_and_adjoint(rng, index):
    layer = SelectTimestep(index)
    x = rng.standard_normal((3, 4, 5))
    layer.build(x.shape)
    y, cache = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, x[:, index])
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy, cache)
    # <dy, f(x)> == <f*(dy), x> for the linear f, with an x the layer has not seen
    x2 = rng.standard_normal(x.shape)
    assert np.sum(dy * layer.forward(x2)[0]) == pytest.approx(np.sum(dx * x2), rel=1e-12)


@pytest.mark.parametrize("lengths", [None, [4, 1, 0]])
def test_reverse_timesteps_forward_and_adjoint(rng, lengths):
    layer = ReverseTimesteps()
    x = rng.standard_normal((3, 4, 2))
    layer.build(x.shape)
    lens = None if lengths is None else np.asarray(lengths)
    y, cache = layer.forward(x, training=True, lengths=lens)
    np.testing.assert_array_equal(y, reversed_within_lengths(x, lengths or [4, 4, 4]))
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy, cache)
    x2 = rng.standard_normal(x.shape)
    assert np.sum(dy * layer.forward(x2, lengths=lens)[0]) == pytest.approx(np.sum(dx * x2), rel=1e-12)


def test_in_a_model_with_lengths_save_and_training(tmp_path, rng):
    model = Sequential([GRU(4, return_sequences=True, input_shape=(None, 3), seed=1), ReverseTimesteps(),
                        SelectTimestep(0), Dense(2, seed=2)])
    x = rng.standard_normal((5, 6, 3)).astype(np.float32)
    lengths = [6, 3, 1, 6, 2]
    # reversed within each length, step 0 is each sequence's last valid output: the final state
    states = Sequential([GRU(4, input_shape=(None, 3), seed=1)])
    states.build((None, None, 3))
    states.set_weights(model.layers[0].get_weights())
    expected = model.layers[-1](states.predict(x, lengths=lengths))
    np.testing.assert_allclose(model.predict(x, lengths=lengths), expected, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m.cgru")
    loaded = cgru.load_model(tmp_path / "m.cgru")
    assert [type(layer).__name__ for layer in loaded.layers] == ["GRU", "ReverseTimesteps", "SelectTimestep",
                                                                  "Dense"]
    np.testing.assert_array_equal(loaded.predict(x, lengths=lengths), model.predict(x, lengths=lengths))
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, rng.standard_normal((5, 2)), epochs=2, verbose=0, lengths=lengths)
    assert np.all(np.isfinite(history.history["loss"]))


def test_errors():
    with pytest.raises(TypeError, match="index must be an int"):
        SelectTimestep(1.5)
    with pytest.raises(ValueError, match="takes step 5, but the input has 3 time steps"):
        SelectTimestep(5)(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"expects input \(batch, time, features...\)"):
        Sequential([Dense(3, input_shape=(4,)), SelectTimestep()])
    with pytest.raises(ValueError, match=r"expects input \(batch, time, features...\)"):
        Sequential([Dense(3, input_shape=(4,)), ReverseTimesteps()])
