"""cgru.config: floatx and the random seed, as layers see them."""

import numpy as np
import pytest
from layer_calls import built, run

import cgru
from cgru import GRU, Dense


def test_layer_seed_makes_weights_reproducible(ops):
    a = built(GRU(5, seed=11), ops, (None, 2, 3)).get_weights()
    b = built(GRU(5, seed=11), ops, (None, 2, 3)).get_weights()
    c = built(GRU(5, seed=12), ops, (None, 2, 3)).get_weights()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    cgru.set_random_seed(5)
    d = built(Dense(4), ops, (None, 3)).get_weights()[0]
    cgru.set_random_seed(5)
    np.testing.assert_array_equal(d, built(Dense(4), ops, (None, 3)).get_weights()[0])
    cgru.set_random_seed(None)


def test_floatx(ops, rng):
    assert cgru.floatx() == "float32"
    try:
        cgru.set_floatx("float64")
        layer = built(GRU(3, return_sequences=True), ops, (None, 2, 4))
        assert layer.dtype == "float64"
        assert (
            ops.to_numpy(run(layer, rng.standard_normal((1, 2, 4)).astype(np.float32))[0]).dtype == np.float64
        )
        with pytest.raises(ValueError):
            cgru.set_floatx("float16")
    finally:
        cgru.set_floatx("float32")
    assert GRU(3).dtype == "float32"
    assert GRU(3, dtype=np.float64).dtype == "float64"
