"""Splitting one op across threads (batch rows, Bidirectional directions) changes no result."""

import threading

import numpy as np
import pytest

import cgru
from cgru.backends import compiled_available, parallel

pytestmark = pytest.mark.skipif(not compiled_available(), reason="compiled engine not built")


@pytest.fixture
def always_split(monkeypatch):
    """Split every op, however small, over 3 threads; yields the sizes of the task lists run."""
    from cgru.backends import cpu_ops

    monkeypatch.setattr(parallel, "MIN_PARALLEL_FLOPS", 0.0)
    sizes = []

    def recording_run_all(tasks):
        sizes.append(len(tasks))
        return parallel.run_all(tasks)

    monkeypatch.setattr(cpu_ops, "run_all", recording_run_all)
    with cgru.num_threads(3):
        yield sizes


def run_gru(ops, rng, batch, **options):
    x = rng.standard_normal((batch, 6, 4)).astype(np.float32)
    kernel = rng.standard_normal((4, 15)).astype(np.float32)
    recurrent = rng.standard_normal((5, 15)).astype(np.float32) * 0.5
    bias = rng.standard_normal((2, 15)).astype(np.float32)
    h0 = rng.standard_normal((batch, 5)).astype(np.float32)
    y, h, cache = ops.gru_forward(x, kernel, recurrent, bias, h0=h0, training=True, **options)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grads = ops.gru_backward(dy, np.ones_like(h), cache)
    return [y, h, *grads]


@pytest.mark.parametrize("batch", [1, 2, 5, 7])
def test_split_batch_equals_single_piece(always_split, batch):
    ops = cgru.get_ops("cpu")
    lengths = np.arange(batch) % 7
    options = {"lengths": lengths, "reverse": True,
               "recurrent_mask": np.random.default_rng(0).random((batch, 5)).astype(np.float32)}
    split = run_gru(ops, np.random.default_rng(batch), batch, **options)
    assert max(always_split) == min(batch, 3)
    with cgru.num_threads(1):
        whole = run_gru(ops, np.random.default_rng(batch), batch, **options)
    for s, w in zip(split, whole):
        np.testing.assert_allclose(s, w, rtol=2e-6, atol=2e-6)
        assert s.shape == w.shape and s.dtype == w.dtype


def test_pieces_rules(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PARALLEL_FLOPS", 100.0)
    with cgru.num_threads(4):
        assert parallel.pieces(10, 1000.0) == 4
        assert parallel.pieces(3, 1000.0) == 3
        assert parallel.pieces(1, 1000.0) == 1
        assert parallel.pieces(10, 10.0) == 1
        inner = parallel.run_all([lambda: parallel.pieces(10, 1000.0)] * 3)
        assert inner == [1, 1, 1]  # nothing splits again inside a piece
    with cgru.num_threads(1):
        assert parallel.pieces(10, 1000.0) == 1
    assert parallel.row_bounds(7, 3) == [(0, 2), (2, 4), (4, 7)]


def test_errors_in_pieces_are_raised_after_all_finish():
    finished = threading.Event()

    def slow():
        finished.wait(0.05)
        finished.set()
        return 1

    def broken():
        raise RuntimeError("piece failed")

    with cgru.num_threads(2), pytest.raises(RuntimeError, match="piece failed"):
        parallel.run_all([broken, slow])
    assert finished.is_set()


def test_prepared_forward_splits_rows_in_place(always_split):
    ops = cgru.get_ops("cpu")
    rng = np.random.default_rng(3)
    kernel, recurrent = rng.standard_normal((4, 15)), rng.standard_normal((5, 15)) * 0.5
    prepared = ops.prepare_gru(kernel.astype(np.float32), recurrent.astype(np.float32))
    x = rng.standard_normal((5, 6, 4)).astype(np.float32)
    h = np.zeros((5, 5), np.float32)
    y = prepared.forward(x, h, [6, 1, 0, 3, 6])
    assert always_split == [3]
    with cgru.num_threads(1):
        expected_y, expected_h, _ = ops.gru_forward(x, kernel, recurrent, None, lengths=[6, 1, 0, 3, 6])
    np.testing.assert_allclose(y, expected_y, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h, expected_h, rtol=1e-6, atol=1e-6)


def test_bidirectional_model_trains_identically_in_parallel(always_split):
    def build():
        model = cgru.Sequential([
            cgru.Bidirectional(cgru.GRU(6, return_sequences=True), input_shape=(5, 3)),
            cgru.Bidirectional(cgru.GRU(4)),
            cgru.Dense(2),
        ])
        model.compile(optimizer="adam", loss="mse")
        return model

    initial = build().get_weights()

    def train():
        model = build()
        model.set_weights(initial)
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((16, 5, 3)), rng.standard_normal((16, 2))
        model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, lengths=rng.integers(1, 6, 16))
        return model.get_weights()

    parallel_weights = train()
    assert 2 in always_split  # the directions ran as a pair
    with cgru.num_threads(1):
        serial_weights = train()
    for p, s in zip(parallel_weights, serial_weights):
        np.testing.assert_allclose(p, s, rtol=1e-5, atol=1e-6)
