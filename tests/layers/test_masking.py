"""Masking: the lengths it derives feed the GRU exactly as lengths= does, masks that are not
trailing are refused with the sequence and step named (before training changes a weight), and
NaN/inf in the masked steps change nothing."""

from __future__ import annotations

import numpy as np
import pytest
from padding import assert_same_and_finite

import cgru
from cgru import GRU, Bidirectional, Dense, Masking, Sequential


def padded(rng, lengths, value=0.0, time=6, features=3):
    x = rng.standard_normal((len(lengths), time, features)).astype(np.float32)
    for row, length in enumerate(lengths):
        x[row, length:] = value
    return x


def zeroed(x, lengths):
    return np.where(np.arange(x.shape[1])[None, :, None] < lengths[:, None, None], x, 0).astype(x.dtype)


@pytest.mark.parametrize("value", [0.0, -1.0, 7.5])
def test_masking_equals_explicit_lengths(ops, rng, value):
    """Masking + GRU stack on a padded batch == the same GRU stack given lengths=."""
    lengths = np.array([6, 2, 0, 4, 1])
    x = padded(rng, lengths, value)
    gru = [Bidirectional(GRU(3, return_sequences=True, seed=1)), GRU(2, return_sequences=True, seed=2),
           Dense(2, seed=3)]
    with_mask = Sequential([Masking(mask_value=value, input_shape=(None, 3)), *gru], device=ops.name)
    plain = Sequential([cgru.Input(shape=(None, 3)),
                        *[cgru.layers.deserialize_layer(cgru.layers.serialize_layer(g)) for g in gru]],
                       device=ops.name)
    plain.set_weights(with_mask.get_weights())
    np.testing.assert_array_equal(with_mask.predict(x), plain.predict(zeroed(x, lengths), lengths=lengths))


def test_derived_and_explicit_lengths_combine_by_the_smaller(rng):
    layer = Masking()
    x = padded(rng, [6, 3, 5])
    np.testing.assert_array_equal(layer.compute_lengths(x, None), [6, 3, 5])
    np.testing.assert_array_equal(layer.compute_lengths(x, np.array([4, 6, 0])), [4, 3, 0])
    assert layer.compute_lengths(padded(rng, [6, 6]), None) is None  # nothing masked
    # a masked step past an explicit length does not count as a gap
    x[1, 1] = 0
    np.testing.assert_array_equal(layer.compute_lengths(x, np.array([6, 1, 5])), [6, 1, 5])


def test_a_mask_that_is_not_trailing_is_refused(rng):
    x = padded(rng, [6, 4, 6])
    x[2, 1] = 0.0  # a masked step inside sequence 2
    model = Sequential([Masking(name="mask", input_shape=(None, 3)), GRU(2)])
    with pytest.raises(ValueError, match=r"Masking 'mask': step 1 of sequence 2 has every feature equal to "
                                         r"mask_value=0.0, but a later step of that sequence does not"):
        model.predict(x)


def test_fit_refuses_non_trailing_masks_before_training(rng):
    x = padded(rng, [6, 4, 6, 5] * 10)
    x[37, 2] = 0.0
    model = Sequential([Masking(input_shape=(None, 3)), GRU(2, seed=1)])
    model.compile("sgd", "mse")
    before = model.get_weights()
    with pytest.raises(ValueError, match="step 2 of sequence 37"):
        model.fit(x, np.zeros((40, 2)), batch_size=4, verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_training_with_masking_equals_training_with_lengths(ops, rng):
    """One step on a batch padded with mask_value equals one step on the zero-padded batch
    given lengths= (Masking outputs zeros at the masked steps, as Keras does)."""
    lengths = np.array([6, 3, 1, 5])
    x = padded(rng, lengths, value=3.0)
    y = rng.standard_normal((4, 2)).astype(np.float32)
    masked = Sequential([Masking(mask_value=3.0, input_shape=(None, 3)), Dense(4, seed=1), GRU(2, seed=2)],
                        device=ops.name)
    plain = Sequential([Dense(4, input_shape=(None, 3)), GRU(2)], device=ops.name)
    plain.set_weights(masked.get_weights())
    masked.compile("adam", "mse")
    plain.compile("adam", "mse")
    assert masked.train_on_batch(x, y) == pytest.approx(plain.train_on_batch(zeroed(x, lengths), y,
                                                                             lengths=lengths), rel=1e-6)
    for got, want in zip(masked.get_weights(), plain.get_weights()):
        assert_same_and_finite(got, want, "weights after a step")


def test_protocol_and_config(tmp_path, rng):
    layer = Masking(mask_value=-2)
    assert layer.derives_lengths and layer.uses_lengths and not layer.zeroes_padded_steps
    assert layer.get_config()["mask_value"] == -2.0
    model = Sequential([cgru.Input(shape=(None, 2)), layer, GRU(2)])
    assert model._lean_call(model._pinned_now()) is None  # every call derives lengths: checked path
    x = padded(rng, [4, 2], value=-2.0, features=2)
    model.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(cgru.load_model(tmp_path / "m.npz").predict(x), model.predict(x))
    with pytest.raises(TypeError, match="mask_value must be a number"):
        Masking(mask_value="0")
    with pytest.raises(ValueError, match=r"expects sequences \(batch, time, features\)"):
        Sequential([Masking(input_shape=(4,))])
