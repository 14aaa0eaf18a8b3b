"""Recycled training buffers: the saved activations of a released cache are reused, never
those of a cache still alive, and results stay those of fresh arrays."""

import copy
import gc
import weakref

import numpy as np
import pytest

import cgru
from cgru.backends import compiled_available
from cgru.backends.buffers import ArrayPool

requires_compiled = pytest.mark.skipif(not compiled_available(), reason="compiled engine not built")


def test_pool_hands_back_arrays_of_the_same_shape_and_dtype():
    pool = ArrayPool(per_shape=2, shapes=2)
    a, b, c = (np.empty((3, 4), np.float32) for _ in range(3))
    pool.give_back([a, b, c])  # the third is over per_shape and dropped
    assert pool.take((3, 4), np.float64) is not a  # another dtype: a new array
    taken = [pool.take((3, 4), np.float32) for _ in range(3)]
    assert {id(t) for t in taken[:2]} == {id(a), id(b)}
    assert taken[2] is not c and taken[2].shape == (3, 4) and taken[2].dtype == np.float32


def test_pool_keeps_only_the_most_recent_shapes():
    pool = ArrayPool(per_shape=1, shapes=2)
    arrays = {n: np.empty(n, np.float32) for n in (1, 2, 3)}
    for n in (1, 2, 3):
        pool.give_back([arrays[n]])
    assert pool.take((1,), np.float32) is not arrays[1]  # the oldest shape went
    assert pool.take((2,), np.float32) is arrays[2]
    assert pool.take((3,), np.float32) is arrays[3]


class Owner:
    """Stands for a training cache: the only holder of its arrays."""


def test_pool_recycles_when_the_owner_is_released():
    pool = ArrayPool()
    owner = Owner()
    owner.arrays = [np.empty(5)]
    kept = weakref.ref(owner.arrays[0])
    pool.recycle_with(owner, owner.arrays)
    assert pool.take((5,), np.float64) is not kept()  # still owned
    del owner
    gc.collect()
    taken = pool.take((5,), np.float64)  # outside the assert: pytest keeps what it evaluates
    assert taken is kept()


@pytest.mark.parametrize("hold", ["array", "view", "copy of the owner"])
def test_pool_leaves_alone_arrays_still_referred_to(hold):
    pool = ArrayPool()
    owner = Owner()
    owner.arrays = [np.empty(5)]
    kept = weakref.ref(owner.arrays[0])
    pool.recycle_with(owner, owner.arrays)
    held = {"array": owner.arrays[0], "view": owner.arrays[0][1:],
            "copy of the owner": copy.copy(owner)}[hold]
    del owner
    gc.collect()
    assert pool.take((5,), np.float64) is not kept()
    del held
    assert kept() is None  # freed as usual, never pooled


def problem(rng, batch=6, time=5, features=3, units=7):
    x = rng.standard_normal((batch, time, features)).astype(np.float32)
    kernel = (rng.standard_normal((features, 3 * units)) * 0.5).astype(np.float32)
    recurrent = (rng.standard_normal((units, 3 * units)) * 0.5).astype(np.float32)
    bias = rng.standard_normal((2, 3 * units)).astype(np.float32)
    dy = rng.standard_normal((batch, time, units)).astype(np.float32)
    return (x, kernel, recurrent, bias), dy


def reference_gradients(args, dy):
    ops = cgru.get_ops("numpy")
    args64 = [a.astype(np.float64) for a in args]
    _, _, cache = ops.gru_forward(*args64, training=True)
    grads = ops.gru_backward(dy.astype(np.float64), None, cache)
    return grads.dkernel, grads.drecurrent_kernel, grads.dbias


@requires_compiled
@pytest.mark.parametrize("threads", [1, 2])
def test_training_steps_reuse_released_activations_and_stay_exact(rng, threads, monkeypatch):
    from cgru.backends import cpu_ops, parallel

    monkeypatch.setattr(parallel, "MIN_PARALLEL_FLOPS", 0.0)  # two pieces at 2 threads

    ops = cgru.get_ops("cpu")
    cpu_ops.SAVED_ACTIVATIONS.clear()
    args_a, dy_a = problem(rng)
    args_b, dy_b = problem(rng)  # same shapes, other values
    with cgru.num_threads(threads):
        _, _, first = ops.gru_forward(*args_a, training=True)
        assert len(first.pieces) == threads
        first_arrays = {id(p[3]) for p in first.pieces}
        _, _, alive = ops.gru_forward(*args_a, training=True)
        # a cache still held keeps its arrays: a later step must not write into them
        assert not first_arrays & {id(p[3]) for p in alive.pieces}
        del first
        gc.collect()
        _, _, reused = ops.gru_forward(*args_b, training=True)
        assert first_arrays == {id(p[3]) for p in reused.pieces}, "released arrays were not reused"
        grads_alive = ops.gru_backward(dy_a, None, alive)
        grads_reused = ops.gru_backward(dy_b, None, reused)
    for grads, (args, dy) in ((grads_alive, (args_a, dy_a)), (grads_reused, (args_b, dy_b))):
        for got, want in zip(grads[2:], reference_gradients(args, dy)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    cpu_ops.SAVED_ACTIVATIONS.clear()


@requires_compiled
def test_engine_forward_fills_given_arrays_and_checks_them():
    from cgru import _engine

    rng = np.random.default_rng(0)
    (x, kernel, recurrent, bias), _ = problem(rng, batch=2, time=3, features=4, units=5)
    lengths = np.array([3, 1])
    fixed = (x, kernel, recurrent, bias[0], bias[1], np.zeros((2, 5), np.float32), lengths, None,
             False, True, "tanh", "sigmoid", True)
    want = _engine.gru_forward(*fixed)
    y, h = np.full((2, 3, 5), 7, np.float32), np.empty((2, 5), np.float32)  # y is zeroed (lengths)
    saved = (np.empty((3, 2, 5), np.float32), np.empty((3, 2, 20), np.float32))
    got = _engine.gru_forward(*fixed, (y, h), saved)
    assert got[0] is y and got[1] is h and got[2] is saved[0] and got[3] is saved[1]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    with pytest.raises(ValueError, match=r"out\[0\] \(y\) must have shape \(2, 3, 5\)"):
        _engine.gru_forward(*fixed, (np.empty((2, 3, 4), np.float32), h), saved)
    with pytest.raises(ValueError, match=r"saved\[1\] \(saved_gates\) must have shape"):
        _engine.gru_forward(*fixed, (y, h), (saved[0], np.empty((3, 2, 5), np.float32)))
    with pytest.raises(ValueError, match="dtype mismatch"):
        _engine.gru_forward(*fixed, (y.astype(np.float64), h), saved)
    readonly = y.copy()
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _engine.gru_forward(*fixed, (readonly, h), saved)
