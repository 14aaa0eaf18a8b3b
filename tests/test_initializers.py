"""cgru.initializers: by name, seeded, with the bounds and properties of Keras's."""

import numpy as np
import pytest

from cgru import GRU, initializers


def test_initializers_by_name_and_seeded():
    rng = np.random.default_rng(0)
    w = initializers.get("glorot_uniform")((40, 60), rng=rng)
    assert np.abs(w).max() <= np.sqrt(6 / 100) and w.dtype == np.float32
    w = initializers.get("he_uniform")((50, 10), dtype="float64", rng=rng)
    assert np.abs(w).max() <= np.sqrt(6 / 50) and w.dtype == np.float64
    q = initializers.get("orthogonal")((8, 24), dtype="float64", rng=rng)
    np.testing.assert_allclose(q @ q.T, np.eye(8), atol=1e-12)
    for name in (
        "zeros",
        "ones",
        "random_normal",
        "random_uniform",
        "truncated_normal",
        "glorot_normal",
        "he_normal",
        "lecun_uniform",
        "lecun_normal",
        "GlorotUniform",
    ):
        assert initializers.get(name)((3, 4)).shape == (3, 4)
    assert np.all(initializers.get("zeros")((2, 2)) == 0) and np.all(initializers.get("ones")((2, 2)) == 1)
    a = initializers.RandomNormal(seed=3)((5,))
    np.testing.assert_array_equal(a, initializers.RandomNormal(seed=3)((5,)))
    with pytest.raises(ValueError, match="unknown initializer"):
        initializers.get("glorious")
    with pytest.raises(ValueError, match="unknown initializer"):
        GRU(3, kernel_initializer="nope")
