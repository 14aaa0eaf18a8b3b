"""What a model asks of the layers around a GRU (the protocol of cgru.layers.base): each
declares what it does with lengths, none keeps state or returns several outputs, and those with
weights bind to the arrays a call reads once (no lock around their calls), TimeDistributed only
when the layer it wraps can."""

from __future__ import annotations

import numpy as np
import pytest

import cgru
from cgru import GRU
from cgru.layers.weights import Changes, Pinned

#: layer factory, uses_lengths, derives_lengths
LAYERS = {
    "masking": (lambda: cgru.Masking(), True, True),
    "conv1d": (lambda: cgru.Conv1D(3, 2), True, False),
    "time_distributed": (lambda: cgru.TimeDistributed(cgru.Dense(3)), False, False),
    "average": (lambda: cgru.GlobalAveragePooling1D(), True, False),
    "max": (lambda: cgru.GlobalMaxPooling1D(), True, False),
    "layer_norm": (lambda: cgru.LayerNormalization(), False, False),
    "activation": (lambda: cgru.Activation("elu"), False, False),
    "flatten": (lambda: cgru.Flatten(), False, False),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_protocol_members(name):
    make, uses_lengths, derives_lengths = LAYERS[name]
    layer = make()
    model = cgru.Sequential([cgru.Input(shape=(5, 4)), layer])
    assert layer.uses_lengths is uses_lengths and layer.derives_lengths is derives_lengths
    assert not layer.takes_ids and not layer.zeroes_padded_steps and not layer.multiple_outputs
    assert layer.stateful_layers() == [] and layer.state_batch_size is None
    assert not Pinned.take(model.layers, model._current_ops(), Changes()).guarded
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x), model.predict(x))  # the lean call and the checked one


@cgru.register_layer(name="tests.ReadsItsWeight")
class ReadsItsWeight(cgru.Layer):
    """A plugin layer whose forward reads its Parameter as it runs."""

    def build(self, input_shape):
        self.scale = self.add_weight("scale", (input_shape[-1],), initializer="ones")

    def forward(self, x, training=False):
        return x * self.scale.value, None


def test_time_distributed_binds_when_its_layer_does():
    plugin = cgru.Sequential([cgru.Input(shape=(5, 4)), cgru.TimeDistributed(ReadsItsWeight())])
    assert Pinned.take(plugin.layers, plugin._current_ops(), Changes()).guarded
    x = np.ones((2, 5, 4), np.float32)
    plugin.set_weights([np.full(4, 3.0, np.float32)])
    np.testing.assert_array_equal(plugin(x), 3 * x)
    np.testing.assert_array_equal(plugin.predict(x), 3 * x)


def test_calls_see_the_weights_read_at_their_start():
    """A pinned call of Conv1D/LayerNormalization/TimeDistributed computes with the arrays it
    was bound to, even when the Parameters change afterwards."""
    layers = [cgru.Conv1D(3, 2, padding="causal"), cgru.LayerNormalization(),
              cgru.TimeDistributed(cgru.Dense(2))]
    model = cgru.Sequential([cgru.Input(shape=(None, 4)), *layers])
    x = np.random.default_rng(1).standard_normal((2, 5, 4)).astype(np.float32)
    pinned = model._pinned_now()
    before = model.predict(x)
    model.set_weights([w + 1 for w in model.get_weights()])
    out = x
    for forward in pinned.forwards:
        out, _ = forward(out, False, None)
    np.testing.assert_array_equal(out, before)
    assert not np.array_equal(model.predict(x), before)


def test_layer_call_builds_and_accepts_lists():
    layer = GRU(2)
    y = layer([[[0.1, 0.2], [0.3, 0.4]]])
    assert layer.built and y.shape == (1, 2) and y.dtype == np.float32
    with pytest.raises(ValueError, match="features"):
        GRU(2).build((None, 3))
