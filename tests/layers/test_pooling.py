"""GlobalAveragePooling1D and GlobalMaxPooling1D with lengths: each padded sequence pools its
valid steps only (what it gives alone), a sequence of length 0 pools to zeros, and NaN/inf in
the padding change nothing."""

from __future__ import annotations

import numpy as np
import pytest
from padding import with_padding

from cgru import GRU, GlobalAveragePooling1D, GlobalMaxPooling1D, Masking, Sequential

LENGTHS = np.array([6, 3, 1, 0, 5])


@pytest.mark.parametrize("cls, reduce", [(GlobalAveragePooling1D, np.mean), (GlobalMaxPooling1D, np.max)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_pools_the_valid_steps_only(ops, rng, cls, reduce, keepdims):
    x = with_padding(rng.standard_normal((5, 6, 4)), LENGTHS, poisoned=True)
    layer = cls(keepdims=keepdims, dtype="float64")
    layer._bind(ops)
    got = ops.to_numpy(layer(x, lengths=LENGTHS))
    want = np.stack([reduce(x[i, :n], axis=0) if n else np.zeros(4) for i, n in enumerate(LENGTHS)])
    np.testing.assert_allclose(got, want[:, None, :] if keepdims else want, rtol=1e-12)
    whole = ops.to_numpy(layer(np.nan_to_num(x)))
    np.testing.assert_allclose(whole, reduce(np.nan_to_num(x), axis=1, keepdims=keepdims), rtol=1e-12)


def test_max_gradient_shares_ties_as_tensorflow_does(ops):
    layer = GlobalMaxPooling1D(dtype="float64")
    layer._bind(ops)
    x = np.array([[[1.0, 2.0], [3.0, 2.0], [3.0, 0.0]]])
    _, cache = layer._forward(ops.asarray(x), True, None)
    dx = ops.to_numpy(layer._backward(ops.asarray(np.array([[6.0, 4.0]])), cache, True))
    np.testing.assert_array_equal(dx, [[[0, 2], [3, 2], [3, 0]]])


def test_masked_gru_then_pooling(ops, rng):
    """Masking -> GRU(return_sequences) -> pooling on a padded batch == each sequence alone."""
    lengths = np.array([7, 2, 5])
    x = rng.standard_normal((3, 7, 2)).astype(np.float32)
    for row, n in enumerate(lengths):
        x[row, n:] = 0
    for pool in (GlobalAveragePooling1D, GlobalMaxPooling1D):
        model = Sequential([Masking(input_shape=(None, 2)), GRU(3, return_sequences=True, seed=1), pool()],
                           device=ops.name)
        got = model.predict(x)
        for row, n in enumerate(lengths):
            np.testing.assert_allclose(got[row], model.predict(x[row : row + 1, :n])[0], rtol=1e-5, atol=1e-6)


def test_shapes_config_and_errors():
    layer = GlobalAveragePooling1D(keepdims=True)
    assert layer.compute_output_shape((None, None, 3)) == (None, 1, 3)
    assert GlobalMaxPooling1D().compute_output_shape((2, 5, 3)) == (2, 3)
    assert layer.get_config()["keepdims"] is True and layer.get_config()["data_format"] == "channels_last"
    assert layer.output_lengths(LENGTHS, None, None) is None
    with pytest.raises(ValueError, match="channels_last"):
        GlobalMaxPooling1D(data_format="channels_first")
    with pytest.raises(ValueError, match=r"expects sequences \(batch, time, features\)"):
        Sequential([GlobalAveragePooling1D(input_shape=(3,))])
    empty = Sequential([GlobalMaxPooling1D(input_shape=(None, 2))])
    np.testing.assert_array_equal(empty.predict(np.zeros((2, 0, 2), np.float32)), np.zeros((2, 2)))
