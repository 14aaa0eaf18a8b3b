"""cgru.lean_call: the named structure behind the low-overhead model(x) call."""

import numpy as np

from cgru import GRU, Dense, Embedding, Sequential
from cgru.lean_call import LeanCall, lean_input


def test_the_lean_call_names_what_it_checks(ops, rng):
    model = Sequential([GRU(3, input_shape=(4, 2), seed=1), Dense(1, seed=2)], device=ops.name)
    assert model._fast is None  # bound by the first checked call
    x = rng.standard_normal((2, 4, 2)).astype(np.float32)
    expected = model.predict(x)
    model(x)
    fast = model._fast
    assert isinstance(fast, LeanCall)
    assert (fast.ops, fast.dtype, fast.ndim, fast.features) == (ops, np.float32, 3, 2)
    assert fast.array_type is ops.xp.ndarray and fast.count == fast.changes.count
    np.testing.assert_allclose(ops.to_numpy(model(x)), expected, rtol=1e-6)
    model.set_weights(model.get_weights())  # a publication: the next call binds again
    model(x)
    assert model._fast is not fast and model._fast.count > fast.count


def test_what_the_lean_path_accepts_comes_from_the_layers():
    ids = [Embedding(10, 3), GRU(2)]
    for layer in ids:
        layer._maybe_build((None, 5) if layer is ids[0] else (None, 5, 3))
    assert lean_input(ids, (None, 5)) == (np.dtype(np.int64), 2, None)
    assert lean_input([Embedding(10, 3, mask_zero=True), GRU(2)], (None, 5)) is None  # derives lengths
    assert lean_input([Dense(2, dtype="float64")], (None, 3)) == (np.dtype(np.float64), 2, 3)
