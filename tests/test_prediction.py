"""predict in memory-bounded chunks: the same outputs as one call, chunks sized by the bytes of
intermediate activations, an explicit batch_size honoured, stateful rows never split, the peak
memory bounded (tracemalloc on the NumPy reference, whose arrays it sees), and the benchmark
script bench/predict_memory.py in its quick mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from isolated import this_cgru_env

import cgru
from cgru import GRU, Bidirectional, Dense, Embedding, Sequential, prediction
from cgru.backends import compiled_available

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def forward_sizes(monkeypatch):
    """The batch size of every forward run by the models made while it is active."""
    sizes = []
    forward = Sequential._forward

    def counting(self, x, *args, **kwargs):
        sizes.append(x.shape[0])
        return forward(self, x, *args, **kwargs)

    monkeypatch.setattr(Sequential, "_forward", counting)
    return sizes


MODELS = {
    "sequence": lambda: [GRU(8, return_sequences=True, input_shape=(6, 3), seed=1), Dense(2, seed=2)],
    "bidirectional": lambda: [
        Bidirectional(GRU(5, return_sequences=True, seed=1), input_shape=(6, 3)), GRU(4, seed=2)],
    "states": lambda: [GRU(8, return_sequences=True, input_shape=(6, 3), seed=1), GRU(3, return_state=True)],
    "ids": lambda: [Embedding(9, 4, input_shape=(6,)), GRU(5, seed=1)],
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_chunks_give_the_outputs_of_one_call(ops, rng, name, monkeypatch, forward_sizes):
    model = Sequential(MODELS[name](), device=ops.name)
    n = 300
    x = rng.integers(0, 9, (n, 6)) if name == "ids" else rng.standard_normal((n, 6, 3)).astype(np.float32)
    lengths = rng.integers(0, 7, n)
    whole = model.predict(x, batch_size=n, lengths=lengths)
    monkeypatch.setattr(prediction, "CHUNK_BYTES", 4096)
    forward_sizes.clear()
    chunked = model.predict(x, lengths=lengths)
    rows = prediction.min_rows()
    assert forward_sizes == [rows] * (n // rows) + ([n % rows] if n % rows else [])
    as_list = lambda y: y if isinstance(y, list) else [y]  # noqa: E731
    for a, b in zip(as_list(whole), as_list(chunked)):
        np.testing.assert_array_equal(a, b)


def test_the_chunk_is_sized_by_activation_bytes_and_threads(monkeypatch, forward_sizes):
    layers = [GRU(16, return_sequences=True, input_shape=(10, 4)), Dense(2)]
    per_sample = prediction.bytes_per_sample(layers, (None, 10, 4), "float32")
    # input, then four times each output (a GRU's three gate projections and its output)
    assert per_sample == 4 * (10 * 4 + 4 * 10 * 16 + 4 * 10 * 2)
    monkeypatch.setattr(prediction, "CHUNK_BYTES", per_sample * 100)
    with cgru.num_threads(1):
        assert prediction.chunk_rows(layers, (1000, 10, 4), "float32", False) == 100
        assert prediction.chunk_rows(layers, (60, 10, 4), "float32", False) == 60
        assert prediction.chunk_rows(layers, (1000, 10, 4), "float64", False) == 50
        monkeypatch.setattr(prediction, "CHUNK_BYTES", 1)
        assert prediction.chunk_rows(layers, (1000, 10, 4), "float32", False) == prediction.ROWS_PER_THREAD
    with cgru.num_threads(2):
        assert prediction.min_rows() == 2 * prediction.ROWS_PER_THREAD
    assert prediction.chunk_rows(layers, (1000, 10, 4), "float32", True) == 1000  # stateful: one call


def test_an_explicit_batch_size_and_steps_are_honoured(rng, forward_sizes):
    model = Sequential([GRU(4, input_shape=(5, 2), seed=1)])
    x = rng.standard_normal((10, 5, 2)).astype(np.float32)
    whole = model.predict(x)
    assert forward_sizes == [10]
    forward_sizes.clear()
    np.testing.assert_array_equal(model.predict(x, batch_size=4), whole)
    assert forward_sizes == [4, 4, 2]
    forward_sizes.clear()
    np.testing.assert_array_equal(model.predict(x, steps=3), whole)  # batches of ceil(10 / 3)
    assert forward_sizes == [4, 4, 2]
    forward_sizes.clear()
    np.testing.assert_array_equal(model.predict(x, batch_size=3, steps=2), whole[:6])  # Keras: 2 batches
    assert forward_sizes == [3, 3]
    with pytest.raises(ValueError, match="steps"):
        model.predict(x, steps=0)


def test_stateful_rows_are_never_split(rng, monkeypatch, forward_sizes):
    """Each row of a stateful model's batch is a stream with its state in the model: the default
    predict runs all rows in one call, so every row continues its own state exactly as model(x)
    would; an explicit batch_size keeps Keras's meaning (batch after batch, the same rows)."""
    monkeypatch.setattr(prediction, "CHUNK_BYTES", 1)
    def layers():
        return [GRU(6, stateful=True, return_sequences=True, input_shape=(3, 2), seed=1), Dense(2, seed=2)]

    model, twin = Sequential(layers()), Sequential(layers())
    x = rng.standard_normal((200, 6, 2)).astype(np.float32)
    for part in (x[:, :3], x[:, 3:]):
        forward_sizes.clear()
        got = model.predict(part)
        assert forward_sizes == [200]
        np.testing.assert_array_equal(got, np.asarray(twin(part)))
    # Keras's batches: rows 0-99 then rows 100-199 of the next batch continue the same 100 states
    model.reset_states()
    twin.reset_states()
    halves = model.predict(np.concatenate([x[:100, :3], x[:100, 3:]]), batch_size=100)
    twin(x[:100, :3])
    np.testing.assert_array_equal(halves[100:], np.asarray(twin(x[:100, 3:])))


def test_predicting_a_large_input_keeps_the_memory_bounded(monkeypatch):
    """On the NumPy reference (its arrays are what tracemalloc sees): the default predict's peak
    is the output plus about one chunk's working set; one call holds every sample's."""
    model = Sequential([GRU(32, return_sequences=True, input_shape=(40, 8), seed=1)], device="numpy")
    x = np.random.default_rng(0).standard_normal((4096, 40, 8)).astype(np.float32)
    model.predict(x[:2])
    monkeypatch.setattr(prediction, "CHUNK_BYTES", 2 * 2**20)
    output = 4096 * 40 * 32 * 4

    def peak(**kwargs):
        tracemalloc.start()
        try:
            model.predict(x, **kwargs)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    chunked, whole = peak(), peak(batch_size=4096)
    working_set = prediction.bytes_per_sample(model.layers, x.shape, "float32") * prediction.chunk_rows(
        model.layers, x.shape, "float32", False)
    assert chunked < output + 4 * working_set
    assert whole > output + 20 * working_set


def test_outputs_of_batches_of_other_lengths_cannot_be_joined(rng):
    model = Sequential([GRU(2, return_sequences=True, input_shape=(None, 3))])
    batches = iter([rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3))])
    with pytest.raises(ValueError, match="batch 1 has shape"):
        model.predict(batches)
    with pytest.raises(ValueError, match="lengths travel in each batch"):
        model.predict(iter([rng.standard_normal((2, 4, 3))]), lengths=[1, 2])


@pytest.mark.skipif(not compiled_available(), reason="the compiled engine is not built")
def test_the_benchmark_script_runs(tmp_path):
    out = tmp_path / "predict.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "predict_memory.py"), "--quick",
                           "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=this_cgru_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"default", "one call", "batch_size=32"}
    assert rows["default"]["rows"] < rows["one call"]["rows"] == 512
    assert all(r["measured_growth"] >= 0 and r["median_s"] > 0 for r in rows.values())
