"""cgru.lean_call: the named structure behind the low-overhead model(x) call."""

import numpy as np
import pytest

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


@pytest.mark.backends
def test_lean_call_sees_every_weight_change(rng):
    """model(x) binds the weights once; in-place updates, set_weights, replaced arrays, training
    and device moves must all show in the next call."""
    from conftest import backends_under_test

    names = backends_under_test()
    model = Sequential([GRU(4, input_shape=(3, 2), seed=1), Dense(2, seed=2)], device=names[0])
    x = rng.standard_normal((2, 3, 2)).astype(np.float32)

    def check():
        np.testing.assert_allclose(np.asarray(model(x)), model.predict(x), rtol=1e-6, atol=1e-7)

    check()
    model.set_weights([w * 0.5 for w in model.get_weights()])
    check()
    gru = model.layers[0]
    gru.kernel.value[...] = 0.1  # in place
    check()
    gru.recurrent_kernel.value = gru.recurrent_kernel.value * 2  # a new array
    check()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.ones((2, 2)), verbose=0)
    check()
    for name in names[::-1]:
        model.to(name)
        check()


def test_lean_call_with_embedding_and_length_deriving_layers(ops, rng):
    ids = rng.integers(1, 10, (3, 5))
    ids[1, 2:] = 0
    plain = Sequential([Embedding(10, 4, seed=1), GRU(3, seed=2)], device=ops.name)
    masked = Sequential([Embedding(10, 4, mask_zero=True, seed=1), GRU(3, seed=2)], device=ops.name)
    plain.build((None, 5))
    masked.build((None, 5))
    np.testing.assert_array_equal(ops.to_numpy(plain(ids)), plain.predict(ids))
    np.testing.assert_array_equal(ops.to_numpy(masked(ids)), masked.predict(ids))
    # the first call binds the lean path; mask_zero derives lengths, so that model keeps the checked one
    assert plain._fast is not None and masked._fast is None
    np.testing.assert_allclose(ops.to_numpy(masked(ids))[1], plain.predict(ids[1:2, :2])[0], rtol=1e-6)
    with pytest.raises(ValueError, match="0..9"):
        plain(np.array([[1, 12]]))
