"""TimeDistributed: one layer over every time step, equal to a loop over the steps, with the
wrapped layer's weights, config and parameter count; the layers it cannot wrap."""

from __future__ import annotations

import numpy as np
import pytest

import cgru
from cgru import (
    GRU,
    Activation,
    Conv1D,
    Dense,
    Dropout,
    Embedding,
    LayerNormalization,
    Sequential,
    TimeDistributed,
)


@pytest.mark.parametrize("inner", ["dense", "activation", "norm", "conv", "gru"])
def test_equals_a_loop_over_the_steps(ops, rng, inner):
    layer = {"dense": lambda: Dense(3, activation="relu", seed=1), "activation": lambda: Activation("mish"),
             "norm": lambda: LayerNormalization(), "conv": lambda: Conv1D(2, 2, seed=1),
             "gru": lambda: GRU(2, seed=1)}[inner]()
    shape = (2, 4, 5, 3) if inner in ("conv", "gru") else (2, 4, 3)
    x = rng.standard_normal(shape).astype(np.float32)
    td = TimeDistributed(layer)
    td._bind(ops)
    got = ops.to_numpy(td(x))
    want = np.stack([ops.to_numpy(layer(x[:, t])) for t in range(shape[1])], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_dropout_inside_draws_a_mask_per_step(rng):
    td = TimeDistributed(Dropout(0.5, seed=3))
    x = np.ones((4, 6, 50), np.float32)
    y, cache = td._forward(x, True, None)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert not all(np.array_equal(y[:, 0], y[:, t]) for t in range(1, 6))  # a new mask per step
    np.testing.assert_array_equal(td._backward(np.ones_like(x), cache, True), y)
    np.testing.assert_array_equal(td(x), x)  # inference: the identity


def test_weights_names_config_and_counts(tmp_path, rng):
    td = TimeDistributed(Dense(4, name="proj"), name="td")
    model = Sequential([cgru.Input(shape=(5, 3)), td, GRU(2)])
    assert [p.name for p in td.weights] == ["proj/kernel", "proj/bias"]
    assert [w.shape for w in td.get_weights()] == [(3, 4), (4,)]
    assert td.count_params() == 16 and model.layers[0] is td
    assert td.compute_output_shape((None, 5, 3)) == (None, 5, 4)
    config = td.get_config()
    assert config["layer"]["class_name"] == "Dense" and config["layer"]["config"]["name"] == "proj"
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    model.save(tmp_path / "m.npz")
    loaded = cgru.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert isinstance(loaded.layers[0].layer, Dense) and loaded.layers[0].layer.name == "proj"


def test_lengths_go_past_it(rng):
    model = Sequential([TimeDistributed(Dense(3, seed=1), input_shape=(None, 2)), GRU(2, seed=2)])
    x = rng.standard_normal((2, 5, 2)).astype(np.float32)
    got = model.predict(x, lengths=[5, 2])
    np.testing.assert_allclose(got[1], model.predict(x[1:, :2])[0], rtol=1e-6)


def test_refuses_what_it_cannot_wrap():
    with pytest.raises(ValueError, match="returns several outputs"):
        TimeDistributed(GRU(2, return_state=True))
    with pytest.raises(ValueError, match="stateful"):
        TimeDistributed(GRU(2, stateful=True))
    with pytest.raises(ValueError, match="derives lengths"):
        TimeDistributed(cgru.Masking())
    with pytest.raises(ValueError, match="takes integer ids"):
        TimeDistributed(Embedding(5, 2))
    with pytest.raises(TypeError, match="wraps a cgru Layer"):
        TimeDistributed("dense")
    with pytest.raises(ValueError, match=r"rank >= 3"):
        Sequential([TimeDistributed(Dense(2), input_shape=(3,))])
