"""model.predict of a dask array: lazy, chunked like the input's batch axis, equal to predict of
the computed array on a LocalCluster of two worker processes; the model's bytes are one key of
the graph, and each worker rebuilds the model once."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import cgru
from cgru import GRU, Bidirectional, Dense, Sequential
from cgru.distributed import model_cache
from cgru.pickling import model_bytes

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

T, F = 7, 3


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


def make_model():
    model = Sequential([Bidirectional(GRU(6, return_sequences=True, seed=1), input_shape=(T, F)),
                        Dense(2, seed=2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, T, F)).astype(np.float32), rng.integers(0, T + 1, n)


def test_predict_on_two_worker_processes_equals_predict_of_the_computed_array(client):
    model = make_model()
    x, lengths = data()
    xd = da.from_array(x, chunks=(8, T, 2))  # split along the features too: joined first
    ld = da.from_array(lengths, chunks=13)  # chunked otherwise than x: rechunked to it
    before = {w: info["loads"] for w, info in client.run(model_cache.cache_info).items()}
    y = cgru.distributed.predict(model, xd, lengths=ld, threads=1)
    assert isinstance(y, da.Array) and y.shape == (50, T, 2) and y.dtype == np.float32
    assert y.chunks[0] == xd.chunks[0]
    computed = client.compute(y).result()
    np.testing.assert_allclose(computed, model.predict(x, lengths=lengths), rtol=1e-6, atol=1e-7)
    # each worker that ran tasks rebuilt the model once, and uses one thread per task
    after = client.run(model_cache.cache_info)
    loads = [after[w]["loads"] - before[w] for w in after]
    assert 1 <= sum(loads) <= 2 and max(loads) == 1
    assert all(info["models"] <= model_cache.MAX_MODELS for info in after.values())
    threads = client.run(cgru.get_num_threads)
    assert [threads[w] for w in after if after[w]["loads"] > before[w]] == [1] * sum(loads)
    # predict itself routes dask arrays here (NumPy lengths are split like x)
    again = model.predict(xd, lengths=lengths, batch_size=3)
    np.testing.assert_allclose(client.compute(again).result(), computed, rtol=1e-6, atol=1e-7)


def test_the_graph_holds_the_model_bytes_once(rng):
    model = make_model()
    x, _ = data(64)
    y = model.predict(da.from_array(x, chunks=4))  # 16 tasks
    graph = dict(y.__dask_graph__())
    payload = model_bytes(model)  # the same bytes each time: a model file is reproducible
    holders = [key for key, value in graph.items() if isinstance(getattr(value, "value", value), bytes)]
    assert [graph[key].value for key in holders] == [payload]
    assert len(holders) == 1 and holders[0].startswith("cgru-model-")
    serialized = pickle.dumps(graph)
    probe = payload[len(payload) // 2:len(payload) // 2 + 256]  # a slice of the weights
    assert serialized.count(probe) == 1
    assert len(serialized) < len(payload) + x.nbytes + 16 * 2000


def test_without_a_cluster_the_local_scheduler_computes_it(rng):
    model = make_model()
    x, lengths = data(20, seed=1)
    y = model.predict(da.from_array(x, chunks=6), lengths=da.from_array(lengths, chunks=6))
    np.testing.assert_allclose(y.compute(scheduler="threads"), model.predict(x, lengths=lengths),
                               rtol=1e-6, atol=1e-7)


def test_unknown_batch_chunk_sizes_are_fine_others_are_refused():
    model = make_model()
    x, lengths = data(30, seed=2)
    xd = da.from_array(x, chunks=10)
    keep = xd[:, 0, 0] > 0
    filtered = xd[keep]  # chunks of unknown size along the batch axis
    assert np.isnan(filtered.chunks[0][0])
    np.testing.assert_allclose(model.predict(filtered).compute(scheduler="sync"),
                               model.predict(x[x[:, 0, 0] > 0]), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="split like it"):
        model.predict(filtered, lengths=lengths)
    with pytest.raises(ValueError, match="unknown chunk sizes cannot be matched"):
        model.predict(filtered, lengths=da.from_array(lengths, chunks=10))
    unknown_time = da.from_array(x, chunks=10).map_blocks(lambda b: b, chunks=((10, 10, 10), (np.nan,), (F,)))
    with pytest.raises(ValueError, match="non-batch axes"):
        model.predict(unknown_time)


def test_what_cannot_be_predicted_as_a_dask_array_is_refused():
    x, lengths = data(10, seed=3)
    xd = da.from_array(x, chunks=5)
    with pytest.raises(ValueError, match="one entry per sequence"):
        make_model().predict(xd, lengths=lengths[:4])
    with pytest.raises(TypeError, match="x must be a dask array"):
        make_model().predict(x, lengths=da.from_array(lengths, chunks=5))
    with pytest.raises(ValueError, match="expects input of shape"):
        make_model().predict(da.from_array(np.ones((4, T, F + 1), np.float32), chunks=2))
    two_outputs = Sequential([Bidirectional(GRU(2), merge_mode=None, input_shape=(T, F))])
    with pytest.raises(ValueError, match="single output"):
        two_outputs.predict(xd)
    stateful = Sequential([GRU(2, stateful=True, input_shape=(T, F))])
    with pytest.raises(ValueError, match="stateful"):
        stateful.predict(xd)
    with pytest.raises(ValueError, match="threads"):
        cgru.distributed.predict(make_model(), xd, threads=0)


def test_the_worker_cache_keeps_one_model_per_digest():
    model_cache.clear()
    start = model_cache.cache_info()["loads"]
    payload = model_bytes(make_model())
    digest = model_cache.digest_of(payload)
    first = model_cache.model_for(digest, payload)
    assert model_cache.model_for(digest, payload) is first
    assert model_cache.cache_info() == {"models": 1, "loads": start + 1}
    for seed in range(model_cache.MAX_MODELS + 1):
        other = Sequential([Dense(1, input_shape=(seed + 1,))])
        data_ = model_bytes(other)
        model_cache.model_for(model_cache.digest_of(data_), data_)
    assert model_cache.cache_info()["models"] == model_cache.MAX_MODELS
    model_cache.clear()
