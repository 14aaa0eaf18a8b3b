"""cgru.distributed's data-parallel strategy in one process: ranks as threads over in-process
collectives (the same calls MPI makes), checked against one process training on the global
batches (the rank-order concatenation of the ranks' batches).

The same strategy over real MPI processes is tests/test_distributed_mpi.py.
"""

from __future__ import annotations

import threading
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from error_range import ErrorRange

import cgru
from cgru import GRU, Bidirectional, Dense, Sequential, callbacks, metrics, optimizers
from cgru.distributed.combine import StateLayout, StepLayout, state_spec
from cgru.distributed.fused import FusedLayout, pack_bytes, unpack_bytes
from cgru.distributed.strategy import DataParallelStrategy, EqualSteps, Silenced, writes_files
from cgru.training import Batch, loop
from cgru.training.data import ArrayBatches
from cgru.training.step import batch_result, metric_stats, score
from cgru.training.strategy import LocalStrategy, resolve

T, F, OUT = 6, 3, 2


# ---------------------------------------------------------------------- in-process ranks
class ThreadGroup:
    """What the ranks of one group share: a barrier and one slot per rank."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.barrier = threading.Barrier(size, timeout=120)
        self.slots: list = [None] * size
        self.calls: list = []


class ThreadCollectives:
    """The collectives DataParallelStrategy asks for, between threads; sums in rank order."""

    def __init__(self, group: ThreadGroup, rank: int) -> None:
        self.group, self.rank, self.size = group, rank, group.size
        self.host = self

    def _exchange(self, value):
        group = self.group
        group.slots[self.rank] = value
        group.barrier.wait()
        values = list(group.slots)
        group.barrier.wait()
        return values

    def allreduce_sum(self, buffer):
        self.group.calls.append(("allreduce", self.rank, buffer.size))
        values = self._exchange(np.array(buffer, copy=True))
        total = values[0].copy()
        for value in values[1:]:
            total += value
        buffer[...] = total
        return buffer

    def broadcast(self, buffer, root=0):
        self.group.calls.append(("broadcast", self.rank, buffer.size))
        buffer[...] = self._exchange(np.array(buffer, copy=True))[root]
        return buffer

    def allgather(self, obj):
        return self._exchange(obj)

    def broadcast_object(self, obj, root=0):
        return self._exchange(obj)[root]


def run_ranks(size: int, work, group: ThreadGroup | None = None, strategy_of=None, other_groups=()) -> list:
    """``work(rank, strategy)`` on ``size`` threads; their results in rank order (the first
    exception re-raised, after the barriers of ``group`` and ``other_groups`` are broken so that
    no rank waits for it). ``strategy_of(rank)``: each rank's strategy (default: data-parallel
    over ``group``)."""
    group = group or ThreadGroup(size)
    if strategy_of is None:
        def strategy_of(rank):
            return DataParallelStrategy(ThreadCollectives(group, rank))
    results: list = [None] * size
    errors: list = [None] * size

    def run(rank):
        try:
            results[rank] = work(rank, strategy_of(rank))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors[rank] = exc
            for broken in (group, *other_groups):
                broken.barrier.abort()

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None and not isinstance(error, threading.BrokenBarrierError):
            raise error
    for error in errors:
        if error is not None:
            raise error
    return results


# -------------------------------------------------------------------------------- data
def make_model(ops, dtype="float64", seed=0, loss="mse", lr=0.01):
    """The model every test trains; its metric computes in the model's dtype (a metric's own
    default is cgru.floatx(), as in Keras), so that float64 logs compare at 1e-12."""
    model = Sequential([
        Bidirectional(GRU(5, return_sequences=True, seed=seed, dtype=dtype), input_shape=(T, F)),
        Dense(OUT, seed=seed + 1, dtype=dtype),
    ], device=ops.name)
    model.compile(optimizer=optimizers.Adam(lr), loss=loss, metrics=[metrics.MeanAbsoluteError("mae", dtype)])
    return model


def make_data(rng, n, dtype="float64"):
    x = rng.standard_normal((n, T, F)).astype(dtype)
    y = rng.standard_normal((n, T, OUT)).astype(dtype)
    lengths = rng.integers(0, T + 1, n)
    lengths[0] = T
    return x, y, lengths


def shards(n_per_rank):
    """Row indices of each rank's shard of ``sum(n_per_rank)`` samples."""
    bounds = np.cumsum([0, *n_per_rank])
    return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def global_batches(rows_per_rank, batch_size, orders=None):
    """The rows of each global batch: the rank-order concatenation of each rank's batch i
    (``orders``: each rank's permutation of its own rows, for shuffled passes)."""
    if orders is not None:
        rows_per_rank = [rows[order] for rows, order in zip(rows_per_rank, orders)]
    steps = max(-(-len(rows) // batch_size) for rows in rows_per_rank)
    return [np.concatenate([rows[i * batch_size:(i + 1) * batch_size] for rows in rows_per_rank])
            for i in range(steps)]


# ------------------------------------------------------------------------------ the math
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
def test_combined_gradient_is_the_global_batch_gradient(ops, rng, reduction):
    """Each rank's gradient weighted by its loss denominator (valid steps here: ragged lengths,
    uneven batches, one empty) sums to the gradient of the global batch's loss; an unweighted
    mean of the ranks' gradients does not."""
    loss = cgru.losses.MeanSquaredError(reduction=reduction)
    model = make_model(ops, loss=loss)
    x, y, lengths = make_data(rng, 11)
    metrics = loop.resolve_metrics(model, y.shape, (None, T, OUT))  # the compiled "mae"
    parts = [slice(0, 6), slice(6, 6), slice(6, 8), slice(8, 11)]
    params = model.trainable_weights

    def run(rows):
        scored = score(model, Batch(x[rows], y[rows], lengths[rows]), model._pinned_now(), training=True)
        model._backward(scored.dy, scored.caches)
        return [p.grad.copy() for p in params], batch_result(scored, metrics)

    whole_grads, whole = run(slice(None))
    states = StateLayout(state_spec(whole.stats), len(parts))
    layout = StepLayout([p.shape for p in params], states, np.float64)
    summed = None
    rank_grads = []
    for rank, rows in enumerate(parts):
        grads, result = run(rows)
        rank_grads.append(grads)
        buffer = layout.contribution(np, grads, result, rank)
        summed = buffer if summed is None else summed + buffer
    grads, combined = layout.global_step(summed, reduction != "sum")
    for got, want in zip(grads, whole_grads):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert combined.loss == pytest.approx(whole.loss, rel=1e-12)
    assert combined.size == whole.size == 11
    assert combined.weight == whole.weight
    assert_same_states(combined.stats, whole.stats, 1e-12)
    if reduction == "sum":
        assert combined.weight is None
    else:
        assert whole.weight == float(lengths.sum())  # the valid steps, not the samples
        naive = [sum(g[i] for g in rank_grads) / len(parts) for i in range(len(params))]
        assert max(float(abs(a - b).max()) for a, b in zip(naive, whole_grads)) > 1e-3


def test_fused_layout_packs_scaled_arrays_zeros_and_scalars():
    layout = FusedLayout([(2, 3), (4,)], 2, np.float32)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    buffer = layout.pack(np.full(layout.size, np.nan, np.float32), [a, None], 2.0, [7, 8])
    np.testing.assert_array_equal(buffer, [0, 2, 4, 6, 8, 10, 0, 0, 0, 0, 7, 8])
    views = layout.views(buffer)
    np.testing.assert_array_equal(views[0], 2 * a)
    np.testing.assert_array_equal(layout.scalar_values(buffer), [7.0, 8.0])
    with pytest.raises(ValueError, match="shape"):
        layout.pack(layout.new_buffer(np), [a.T, None])
    arrays = [np.arange(3, dtype=np.float64), np.ones((2, 2), np.float32), np.array([1, 2], np.int8)]
    packed = pack_bytes(arrays)
    assert packed.dtype == np.uint8 and packed.size == 24 + 16 + 2
    for got, want in zip(unpack_bytes(packed, [(a.shape, a.dtype) for a in arrays]), arrays):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype


def assert_same_states(got, want, rtol):
    """Metric states (lists of MetricState) equal: layouts exactly, values within ``rtol`` of
    the largest of their array (counts computed by differences of sums carry rounding noise
    around 0)."""
    assert [s.aggregations for s in got] == [s.aggregations for s in want]
    for a, b in zip(got, want):
        assert len(a.values) == len(b.values)
        for p, q in zip(a.values, b.values):
            assert np.shape(p) == np.shape(q)
            scale = float(np.max(np.abs(q), initial=0.0)) if np.all(np.isfinite(q)) else 0.0
            np.testing.assert_allclose(p, q, rtol=rtol, atol=rtol * scale)


def test_metric_states_flatten_and_rebuild():
    """Each rank's states go into the sums as flat numbers and come back in their structure:
    "sum" arrays summed, "max"/"min" arrays through one slot per rank, reduced afterwards."""
    def state(total, count, peak, low):
        return [
            metrics.MetricState((np.float64(total), np.float64(count)), ("sum", "sum")),
            metrics.MetricState((np.array([[peak, -peak]]), np.array([low, low + 1])), ("max", "min")),
        ]

    ranks = [state(1.0, 2, 3.0, 5.0), state(4.0, 1, -7.0, -2.0), state(0.5, 3, 2.0, 9.0)]
    layout = StateLayout(state_spec(ranks[0]), len(ranks))
    assert (layout.summed, layout.gathered, layout.size) == (2, 4, 2 + 3 * 4)
    packed = [layout.pack(s, rank) for rank, s in enumerate(ranks)]
    np.testing.assert_array_equal(packed[1], [4.0, 1.0, 0, 0, 0, 0, -7.0, 7.0, -2.0, -1.0, 0, 0, 0, 0])
    merged = layout.unpack(sum(packed))
    want = [metrics.merge_states([s[i] for s in ranks]) for i in range(2)]
    assert_same_states(merged, want, 0)
    np.testing.assert_array_equal(merged[1].values[0], [[3.0, 7.0]])
    np.testing.assert_array_equal(merged[1].values[1], [-2.0, -1.0])
    with pytest.raises(TypeError, match="cannot be combined"):
        state_spec([metrics.MetricState((np.array(["a"]),), ("sum",))])
    with pytest.raises(ValueError, match="changed layout"):
        layout.pack(state(1.0, 2, 3.0, 5.0)[:1], 0)


def make_classifier(ops, dtype="float64", seed=0, reduction="sum_over_batch_size", lr=0.01):
    """Bidirectional GRU + sigmoid Dense on binary targets, weighted: metrics whose states are
    sums (mae), sums that combine nonlinearly (AUC) and maxima and minima (ErrorRange)."""
    model = Sequential([
        Bidirectional(GRU(5, return_sequences=True, seed=seed, dtype=dtype), input_shape=(T, F)),
        Dense(OUT, activation="sigmoid", seed=seed + 1, dtype=dtype),
    ], device=ops.name)
    model.compile(
        optimizer=optimizers.Adam(lr),
        loss=cgru.losses.BinaryCrossentropy(reduction=reduction),
        metrics=[ErrorRange(dtype=dtype)],
        weighted_metrics=[
            metrics.MeanAbsoluteError("mae", dtype), metrics.AUC(num_thresholds=50, dtype=dtype)
        ],
    )
    return model


def make_weighted_data(rng, n, dtype="float64", per_step=True):
    """Ragged sequences, binary targets and sample weights (per step, or per sample), some 0."""
    x, _, lengths = make_data(rng, n, dtype)
    y = rng.integers(0, 2, (n, T, OUT)).astype(dtype)
    w = rng.uniform(0.0, 2.0, (n, T) if per_step else (n,)).astype(dtype)
    w[rng.random(w.shape) < 0.2] = 0.0
    return x, y, lengths, w


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean_with_sample_weight", "sum"])
@pytest.mark.parametrize("per_step", [True, False], ids=["step-weights", "sample-weights"])
def test_weighted_losses_and_every_aggregation_combine_exactly(ops, rng, reduction, per_step):
    """With sample weights, the ranks' gradients weighted by their loss denominators (the valid
    steps for sum_over_batch_size, never the weights; the weights' sums for
    mean_with_sample_weight) sum to the global batch's gradient, and every metric state (sums,
    maxima, minima) merges into the global batch's: its results are one process's."""
    model = make_classifier(ops, reduction=reduction)
    x, y, lengths, w = make_weighted_data(rng, 11, per_step=per_step)
    bound = loop.resolve_metrics(model, y.shape, (None, T, OUT))
    parts = [slice(0, 5), slice(5, 5), slice(5, 7), slice(7, 11)]
    params = model.trainable_weights

    def run(rows):
        batch = Batch(x[rows], y[rows], lengths[rows], w[rows])
        scored = score(model, batch, model._pinned_now(), training=True)
        model._backward(scored.dy, scored.caches)
        return [p.grad.copy() for p in params], batch_result(scored, bound)

    whole_grads, whole = run(slice(None))
    states = StateLayout(state_spec(whole.stats), len(parts))
    layout = StepLayout([p.shape for p in params], states, np.float64)
    summed = sum(layout.contribution(np, *run(rows), rank) for rank, rows in enumerate(parts))
    grads, combined = layout.global_step(summed, reduction != "sum")
    for got, want in zip(grads, whole_grads):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14)
    assert combined.loss == pytest.approx(whole.loss, rel=1e-12)
    assert combined.size == whole.size == 11
    assert_same_states(combined.stats, whole.stats, 1e-12)
    assert [s.aggregations for s in combined.stats][0] == ("max", "min")
    for b, got, want in zip(bound, combined.stats, whole.stats):
        assert b.metric.stateless_result(got) == pytest.approx(b.metric.stateless_result(want), rel=1e-12)
    valid = np.arange(T)[None, :] < lengths[:, None]
    if reduction == "sum_over_batch_size":
        assert whole.weight == float(valid.sum())  # the valid steps: the weights never count
    elif reduction == "mean_with_sample_weight":
        per_value = w if per_step else np.broadcast_to(w[:, None], (11, T))
        assert whole.weight == pytest.approx(float((per_value * valid).sum()), rel=1e-12)


# --------------------------------------------------------------------- training over ranks
def fit_ranks(ops, x, y, lengths, rows_per_rank, batch_size, epochs, dtype="float64", validation=None,
              **fit_kwargs):
    """Every rank fits its shard from its own initial weights (``validation``: ``(x, y, lengths,
    rows per rank)``, each rank validating on its own rows); returns each rank's
    ``(weights, history, optimizer iterations)``."""

    def work(rank, strategy):
        model = make_model(ops, dtype, seed=10 * rank)  # different initial weights on every rank
        rows = rows_per_rank[rank]
        kwargs = dict(fit_kwargs)
        if validation is not None:
            vx, vy, vl, val_rows = validation
            own = val_rows[rank]
            kwargs["validation_data"] = ({"x": vx[own], "lengths": vl[own]}, vy[own])
        history = model.fit(x[rows], y[rows], lengths=lengths[rows], batch_size=batch_size, epochs=epochs,
                            verbose=0, strategy=strategy, **kwargs)
        strategy.check_replicas(model)
        return model.get_weights(), history.history, model.optimizer.iterations

    return run_ranks(len(rows_per_rank), work)


def assert_same_weights(a, b, tol):
    for p, q in zip(a, b):
        np.testing.assert_allclose(p, q, rtol=0, atol=tol)


@pytest.mark.parametrize("n_per_rank", [(12, 9), (8, 8, 6)], ids=["2-ranks", "3-ranks"])
def test_fit_equals_one_process_on_the_interleaved_data(ops, rng, n_per_rank):
    batch_size, epochs = 4, 3
    n = sum(n_per_rank)
    x, y, lengths = make_data(rng, n)
    rows_per_rank = shards(n_per_rank)
    val_rows = shards([6] + [5] * (len(n_per_rank) - 1))  # validation batches of 4 + 2, 4 + 1...
    vx, vy, vl = make_data(rng, sum(len(rows) for rows in val_rows))
    ranks = fit_ranks(ops, x, y, lengths, rows_per_rank, batch_size, epochs,
                      validation=(vx, vy, vl, val_rows), shuffle=False)
    # one process, global batch size, on the rank-order concatenation of the ranks' batches
    # (the validation data's too: with ragged lengths the logged loss, a mean of per-batch
    # means as Keras logs it, depends on the batches)
    order = np.concatenate(global_batches(rows_per_rank, batch_size))
    val_order = np.concatenate(global_batches(val_rows, batch_size))
    global_size = batch_size * len(n_per_rank)
    reference = make_model(ops, seed=0)
    history = reference.fit(x[order], y[order], lengths=lengths[order], batch_size=global_size,
                            epochs=epochs, shuffle=False, verbose=0,
                            validation_data=({"x": vx[val_order], "lengths": vl[val_order]}, vy[val_order]))
    for weights, logs, iterations in ranks:
        np.testing.assert_array_equal(weights[0], ranks[0][0][0])  # bitwise the same replicas
        assert_same_weights(weights, reference.get_weights(), 1e-12)
        assert iterations == reference.optimizer.iterations
        assert logs.keys() == history.history.keys()
        for key in logs:
            np.testing.assert_allclose(logs[key], history.history[key], rtol=1e-12)


def test_uneven_steps_and_shuffled_epochs_equal_their_global_batches(ops, rng):
    """Shards of 12 and 5 with batches of 4: global batches of 8, 5 and 4 samples (rank 1 runs an
    empty batch last); each rank reshuffles its own shard with the generator its seed makes."""
    batch_size, epochs, n_per_rank, seeds = 4, 2, (12, 5), (7, 8)
    x, y, lengths = make_data(rng, sum(n_per_rank))
    rows_per_rank = shards(n_per_rank)

    def work(rank, strategy):
        model = make_model(ops, seed=10 * rank)
        rows = rows_per_rank[rank]
        model.fit(x[rows], y[rows], lengths=lengths[rows], batch_size=batch_size, epochs=epochs,
                  verbose=0, strategy=strategy, seed=seeds[rank])
        return model.get_weights()

    ranks = run_ranks(2, work)
    reference = make_model(ops, seed=0)
    generators = [np.random.default_rng(seed) for seed in seeds]
    sizes = []
    for _ in range(epochs):
        orders = [g.permutation(len(rows)) for g, rows in zip(generators, rows_per_rank)]
        for rows in global_batches(rows_per_rank, batch_size, orders):
            reference.train_on_batch(x[rows], y[rows], lengths=lengths[rows])
            sizes.append(len(rows))
    assert sizes == [8, 5, 4] * epochs
    for weights in ranks:
        assert_same_weights(weights, reference.get_weights(), 1e-12)


def test_float32_replicas_match_one_process_within_float32_rounding(ops, rng):
    x, y, lengths = make_data(rng, 21, "float32")
    rows_per_rank = shards((12, 9))
    ranks = fit_ranks(ops, x, y, lengths, rows_per_rank, 4, 3, dtype="float32", shuffle=False)
    order = np.concatenate(global_batches(rows_per_rank, 4))
    reference = make_model(ops, "float32", seed=0)
    reference.fit(x[order], y[order], lengths=lengths[order], batch_size=8, epochs=3, shuffle=False,
                  verbose=0)
    for weights, _, _ in ranks:
        for p, q in zip(weights, ranks[0][0]):
            np.testing.assert_array_equal(p, q)
        assert_same_weights(weights, reference.get_weights(), 1e-5)


def test_train_on_batch_and_evaluate_over_ranks(ops, rng):
    x, y, lengths = make_data(rng, 10)
    parts = [np.arange(0, 7), np.arange(7, 10)]

    def work(rank, strategy):
        model = make_model(ops, seed=3 * rank)
        rows = parts[rank]
        logs = model.train_on_batch(x[rows], y[rows], lengths=lengths[rows], strategy=strategy)
        scores = model.evaluate(x[rows], y[rows], lengths=lengths[rows], batch_size=4, strategy=strategy)
        return model.get_weights(), logs, scores

    ranks = run_ranks(2, work)
    reference = make_model(ops, seed=0)
    logs = reference.train_on_batch(x, y, lengths=lengths)
    # evaluate's global batches: 4 + 3 rows, then 3 + 0; the logged loss is their losses'
    # mean weighted by their sizes (Keras's), the metric the mean over all valid steps
    batches = global_batches(parts, 4)
    assert [len(rows) for rows in batches] == [7, 3]
    losses = [reference.test_on_batch(x[rows], y[rows], lengths=lengths[rows])[0] for rows in batches]
    loss = np.dot(losses, [7, 3]) / 10
    mae = reference.evaluate(x, y, lengths=lengths)[1]
    for weights, rank_logs, rank_scores in ranks:
        assert_same_weights(weights, reference.get_weights(), 1e-12)
        np.testing.assert_allclose(rank_logs, logs, rtol=1e-12)
        np.testing.assert_allclose(rank_scores, [loss, mae], rtol=1e-12)


def test_one_fused_allreduce_per_training_step(ops, rng):
    x, y, lengths = make_data(rng, 16)
    group = ThreadGroup(2)
    params = sum(int(np.prod(p.shape)) for p in make_model(ops).trainable_weights)

    def work(rank, strategy):
        model = make_model(ops, seed=rank)
        rows = slice(8 * rank, 8 * rank + 8)
        model.fit(x[rows], y[rows], lengths=lengths[rows], batch_size=4, epochs=2, verbose=0,
                  shuffle=False, strategy=strategy)

    run_ranks(2, work, group)
    reduces = [c for c in group.calls if c[0] == "allreduce" and c[1] == 0]
    assert len(reduces) == 2 * 2  # epochs x steps, one each
    assert all(size > params for _, _, size in reduces)  # every weight's gradient in it
    assert len([c for c in group.calls if c[0] == "broadcast" and c[1] == 0]) == 1


def interleave(rows_per_rank, batch_size, *arrays):
    """Each array laid out as the rank-order concatenation of the ranks' batches."""
    order = np.concatenate(global_batches(rows_per_rank, batch_size))
    return [None if a is None else a[order] for a in arrays]


@pytest.mark.parametrize(
    ("n_per_rank", "reduction"),
    [
        ((12, 9), "sum_over_batch_size"),
        ((8, 8, 6), "sum_over_batch_size"),
        ((9, 12), "mean_with_sample_weight"),
    ],
    ids=["2-ranks", "3-ranks", "2-ranks-mean-with-sample-weight"],
)
def test_weighted_fit_logs_every_metric_as_one_process(ops, rng, n_per_rank, reduction):
    """Sample weights (training and validation) and metrics whose states are sums, nonlinear
    in their sums (AUC) or maxima and minima: weights, History and evaluate's logs on every
    rank equal one process's on the global batches."""
    batch_size, epochs = 4, 2
    x, y, lengths, w = make_weighted_data(rng, sum(n_per_rank))
    rows_per_rank = shards(n_per_rank)
    val_rows = shards([6] + [5] * (len(n_per_rank) - 1))
    vx, vy, vl, vw = make_weighted_data(rng, sum(len(rows) for rows in val_rows), per_step=False)

    def work(rank, strategy):
        model = make_classifier(ops, seed=10 * rank, reduction=reduction)
        rows, own = rows_per_rank[rank], val_rows[rank]
        history = model.fit(
            {"x": x[rows], "lengths": lengths[rows]}, y[rows], sample_weight=w[rows], batch_size=batch_size,
            epochs=epochs, shuffle=False, verbose=0, strategy=strategy,
            validation_data=({"x": vx[own], "lengths": vl[own]}, vy[own], vw[own]),
        )
        scores = model.evaluate({"x": vx[own], "lengths": vl[own]}, vy[own], sample_weight=vw[own],
                                batch_size=batch_size, return_dict=True, strategy=strategy)
        return model.get_weights(), history.history, scores

    ranks = run_ranks(len(n_per_rank), work)
    gx, gy, gl, gw = interleave(rows_per_rank, batch_size, x, y, lengths, w)
    hx, hy, hl, hw = interleave(val_rows, batch_size, vx, vy, vl, vw)
    reference = make_classifier(ops, reduction=reduction)
    history = reference.fit(
        {"x": gx, "lengths": gl}, gy, sample_weight=gw, batch_size=batch_size * len(n_per_rank),
        epochs=epochs, shuffle=False, verbose=0, validation_data=({"x": hx, "lengths": hl}, hy, hw),
    )
    scores = reference.evaluate({"x": hx, "lengths": hl}, hy, sample_weight=hw,
                                batch_size=batch_size * len(n_per_rank), return_dict=True)
    assert set(history.history) == {"loss", "error_range", "mae", "auc", "val_loss", "val_error_range",
                                    "val_mae", "val_auc"}
    for weights, logs, rank_scores in ranks:
        assert_same_weights(weights, reference.get_weights(), 1e-12)
        assert logs.keys() == history.history.keys()
        for key in logs:
            np.testing.assert_allclose(logs[key], history.history[key], rtol=1e-12, err_msg=key)
        assert logs == ranks[0][1]  # identical on every rank
        assert rank_scores.keys() == scores.keys()
        for key in scores:
            assert rank_scores[key] == pytest.approx(scores[key], rel=1e-12), key


def test_cancelling_weights_are_refused_on_every_rank(ops, rng):
    """Under mean_with_sample_weight, a rank whose weights cancel (sum 0, not all 0) has loss 0
    whatever its values: its part of the global loss is lost, so every rank refuses the step,
    leaving the weights as they were."""
    x, y, lengths, _ = make_weighted_data(rng, 4)
    w = np.ones((4, T))
    w[2:] = [[1.0] * T, [-1.0] * T]  # rank 1's batch: two samples whose weights cancel
    lengths[2:] = T

    def work(rank, strategy):
        model = make_classifier(ops, reduction="mean_with_sample_weight")
        rows = slice(2 * rank, 2 * rank + 2)
        before = model.get_weights()
        with pytest.raises(ValueError, match="cancel") as raised:
            model.train_on_batch({"x": x[rows], "lengths": lengths[rows]}, y[rows], sample_weight=w[rows],
                                 strategy=strategy)
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)
        return str(raised.value)

    messages = run_ranks(2, work)
    assert messages[0] == messages[1]


def test_ranks_with_different_metrics_are_refused_on_every_rank(ops, rng):
    x, y, lengths, w = make_weighted_data(rng, 4)

    def work(rank, strategy):
        model = make_classifier(ops)
        if rank == 1:
            model.compile(optimizer=optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["mae"])
        with pytest.raises(ValueError, match=r"metric states .* of rank\(s\) \[1\] differ") as raised:
            model.fit(x, y, lengths=lengths, batch_size=2, verbose=0, strategy=strategy)
        return str(raised.value)

    messages = run_ranks(2, work)
    assert messages[0] == messages[1]


# ------------------------------------------------------------------- data pipelines over ranks
class Batches(cgru.utils.PyDataset):
    """Batches by index over rows of arrays (x as {"x", "lengths"}, sample weights)."""

    def __init__(self, x, y, lengths, w, rows, batch_size):
        super().__init__()
        self.parts = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
        self.arrays = x, y, lengths, w

    def __len__(self):
        return len(self.parts)

    def __getitem__(self, index):
        x, y, lengths, w = self.arrays
        rows = self.parts[index]
        return {"x": x[rows], "lengths": lengths[rows]}, y[rows], w[rows]


def test_py_datasets_and_generators_train_as_one_process(ops, rng):
    """Rank 0 trains on a PyDataset of 3 batches, rank 1 on a generator of 5 batches, with
    steps_per_epoch=2 (Keras's rules: an epoch continues the pass, a pass that ends ends the
    epoch, the next epoch starts a new pass): rank 0 runs batches 0, 1 | 2 | 0, 1, rank 1
    0, 1 | 2, 3 | 4. Every epoch both run 2 steps, a rank without a batch an empty one. One
    process on the global batches, batch by batch, ends at the same weights."""
    batch_size, epochs = 3, 3
    x, y, lengths, w = make_weighted_data(rng, 24)
    rows0, rows1 = np.arange(0, 9), np.arange(9, 24)

    def generator():
        for start in range(0, 15, batch_size):
            rows = rows1[start:start + batch_size]
            yield {"x": x[rows], "lengths": lengths[rows]}, y[rows], w[rows]

    def work(rank, strategy):
        model = make_classifier(ops, seed=rank)
        data = Batches(x, y, lengths, w, rows0, batch_size) if rank == 0 else generator()
        history = model.fit(data, steps_per_epoch=2, epochs=epochs, verbose=0, shuffle=False,
                            strategy=strategy)
        return model.get_weights(), history.history

    with warnings.catch_warnings():  # "Your input ran out of data": warnings are process-wide
        warnings.simplefilter("ignore")
        ranks = run_ranks(2, work)
    parts0 = [rows0[i:i + batch_size] for i in range(0, 9, batch_size)]
    parts1 = [rows1[i:i + batch_size] for i in range(0, 15, batch_size)]
    none = rows0[:0]
    steps0 = [parts0[0], parts0[1], parts0[2], none, parts0[0], parts0[1]]
    steps1 = [*parts1, none]
    reference = make_classifier(ops)
    for mine, theirs in zip(steps0, steps1):
        rows = np.concatenate([mine, theirs])
        reference.train_on_batch({"x": x[rows], "lengths": lengths[rows]}, y[rows], sample_weight=w[rows])
    for weights, logs in ranks:
        assert_same_weights(weights, reference.get_weights(), 1e-12)
        assert len(logs["loss"]) == epochs
        assert logs == ranks[0][1]


def test_py_datasets_of_different_lengths_run_empty_batches_on_the_shorter(ops, rng):
    """Without steps_per_epoch an epoch is a whole pass: 3 batches on rank 0, 1 on rank 1,
    which runs 2 empty batches (of its data's shapes, known before its first batch)."""
    x, y, lengths, w = make_weighted_data(rng, 12)
    rows0, rows1 = np.arange(0, 9), np.arange(9, 12)

    def work(rank, strategy):
        model = make_classifier(ops, seed=rank)
        rows = rows0 if rank == 0 else rows1
        history = model.fit(Batches(x, y, lengths, w, rows, 3), epochs=2, shuffle=False, verbose=0,
                            strategy=strategy)
        return model.get_weights(), history.history

    ranks = run_ranks(2, work)
    reference = make_classifier(ops)
    for _ in range(2):
        for rows in global_batches([rows0, rows1], 3):
            reference.train_on_batch({"x": x[rows], "lengths": lengths[rows]}, y[rows], sample_weight=w[rows])
    for weights, logs in ranks:
        assert_same_weights(weights, reference.get_weights(), 1e-12)
        assert logs == ranks[0][1]


def test_an_empty_batch_adds_each_metrics_reset_state(ops, rng):
    """A rank's empty batch never reaches a metric's update_state (which may not take zero
    samples): it adds the reset state, in the layout of the others."""

    class NoEmptyBatches(ErrorRange):
        def update_state(self, y_true, y_pred, sample_weight=None):
            assert np.shape(y_pred)[0] > 0, "updated on an empty batch"
            super().update_state(y_true, y_pred, sample_weight)

    model = make_classifier(ops)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=[NoEmptyBatches(), "auc"])
    x, y, lengths, _ = make_weighted_data(rng, 3)
    bound = loop.resolve_metrics(model, y.shape, (None, T, OUT))
    empty = ArrayBatches(x, y, lengths, 2).empty
    assert empty.x.shape == (0, T, F) and empty.lengths.shape == (0,)
    scored = score(model, empty, model._pinned_now(), training=False)
    states = metric_stats(bound, scored)
    full = metric_stats(bound, score(model, Batch(x, y, lengths), model._pinned_now(), training=False))
    assert state_spec(states) == state_spec(full)
    assert [float(v) for v in states[0].values] == [-np.inf, np.inf]
    assert all(not np.any(v) for v in states[1].values)
    assert scored.loss == 0.0 and scored.weight == 0.0


def test_fit_ends_when_every_ranks_generator_is_used_up(ops, rng):
    x, y, lengths, w = make_weighted_data(rng, 12)

    def generator(rows):
        for start in range(0, len(rows), 2):
            part = rows[start:start + 2]
            yield {"x": x[part], "lengths": lengths[part]}, y[part], w[part]

    def work(rank, strategy):
        model = make_classifier(ops, seed=rank)
        rows = np.arange(0, 8) if rank == 0 else np.arange(8, 12)  # 4 and 2 batches
        history = model.fit(generator(rows), steps_per_epoch=2, epochs=5, verbose=0, strategy=strategy)
        return history.epoch

    with warnings.catch_warnings(record=True) as caught:  # process-wide: every thread's
        warnings.simplefilter("always")
        epochs = run_ranks(2, work)
    assert epochs == [[0, 1], [0, 1]]  # rank 1's generator ended first: fit went on with rank 0's
    ends = [str(w.message) for w in caught if "ran out of data after" in str(w.message)]
    assert len(ends) == 2 and all("after 2 of 5 epochs" in m for m in ends)  # on both ranks, together


@pytest.mark.parametrize("what", ["fit", "fit (validation)", "evaluate"])
def test_generators_without_steps_are_refused_on_every_rank(ops, rng, what):
    """The number of batches of a generator is unknown until it ends: under a strategy that
    spans processes it must be given, or every rank raises the same error (none is left
    waiting for the others)."""
    x, y, lengths, w = make_weighted_data(rng, 8)

    def batches():
        for start in range(0, 8, 4):
            yield {"x": x[start:start + 4], "lengths": lengths[start:start + 4]}, y[start:start + 4]

    def work(rank, strategy):
        model = make_classifier(ops)
        data = batches() if rank == 1 else Batches(x, y, lengths, w, np.arange(8), 4)
        with pytest.raises(ValueError, match=r"unknown on rank\(s\) \[1\]") as raised:
            if what == "fit":
                model.fit(data, verbose=0, strategy=strategy)
            elif what == "evaluate":
                model.evaluate(data, strategy=strategy)
            else:
                model.fit(Batches(x, y, lengths, w, np.arange(8), 4), validation_data=data, verbose=0,
                          strategy=strategy)
        return str(raised.value)

    messages = run_ranks(2, work)
    assert messages[0] == messages[1] and "steps_per_epoch" in messages[0]


# ---------------------------------------------------------------------- replicas agree
def test_prepare_gives_every_rank_rank_0s_weights_and_optimizer_state(ops, rng):
    x, y, lengths = make_data(rng, 8)

    def work(rank, strategy):
        model = make_model(ops, seed=5 * rank)
        for _ in range(rank + 1):  # different weights, Adam moments and step counts
            model.train_on_batch(x, y * (rank + 1), lengths=lengths)
        before = model.get_weights(), model.optimizer.iterations
        strategy.prepare(model)
        state = model.optimizer.get_state(model.trainable_weights)
        return before, model.get_weights(), state

    (before0, after0, state0), (_, after1, state1) = run_ranks(2, work)
    assert state0["iterations"] == state1["iterations"] == 1
    for a, b, c in zip(before0[0], after0, after1):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(b, c)
    for slots0, slots1 in zip(state0["slots"], state1["slots"]):
        assert sorted(slots0) == sorted(slots1) == ["m", "v"]
        for name in slots0:
            np.testing.assert_array_equal(slots0[name], slots1[name])


def test_different_models_raise_on_every_rank(ops, rng):
    x, y, lengths = make_data(rng, 4)

    def work(rank, strategy):
        model = make_model(ops, lr=0.01 * (rank + 1))
        try:
            model.fit(x, y, lengths=lengths, verbose=0, strategy=strategy)
        except ValueError as exc:
            return str(exc)
        return None

    messages = run_ranks(2, work)
    assert all(m is not None and "rank(s) [1] differ from rank 0" in m for m in messages)


def test_check_replicas_names_the_rank_that_differs(ops, rng):
    def work(rank, strategy):
        model = make_model(ops, seed=rank)
        with pytest.raises(RuntimeError, match=r"rank\(s\) \[1\]"):
            strategy.check_replicas(model)
        strategy.broadcast(model)
        return strategy.check_replicas(model)

    digests = run_ranks(2, work)
    assert digests[0] == digests[1]


def test_equal_steps_pads_short_ranks_with_empty_batches(rng):
    x, y, lengths = make_data(rng, 9)

    def work(rank, strategy):
        rows = slice(0, 9) if rank == 0 else slice(0, 2)
        source = strategy.distribute(ArrayBatches(x[rows], y[rows], lengths[rows], 4))
        sizes = [b.x.shape[0] for b in source.epoch(0)]
        return source.steps, sizes, [b.lengths.shape for b in source.epoch(1)]

    (steps0, sizes0, _), (steps1, sizes1, shapes1) = run_ranks(2, work)
    assert steps0 == steps1 == 3
    assert sizes0 == [4, 4, 1] and sizes1 == [2, 0, 0]
    assert shapes1 == [(2,), (0,), (0,)]


def test_sources_of_unknown_length_are_refused_on_every_rank(rng):
    x, y, lengths = make_data(rng, 4)

    class Stream:
        steps = None

        def epoch(self, index=0):
            yield Batch(x, y, lengths)

    def work(rank, strategy):
        source = Stream() if rank == 1 else ArrayBatches(x, y, lengths, 2)
        with pytest.raises(ValueError, match=r"unknown on rank\(s\) \[1\]"):
            EqualSteps(source, strategy.collectives)

    run_ranks(2, work)


def test_only_rank_0_prints_and_writes_files_and_all_ranks_stop_together(ops, rng, tmp_path, capsys):
    x, y, lengths = make_data(rng, 16)
    vx, vy, vl = make_data(rng, 4)

    def work(rank, strategy):
        model = make_model(ops, seed=rank, lr=0.05)
        rows = slice(8 * rank, 8 * rank + 8)
        stopper = callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0, verbose=1)
        checkpoint = callbacks.ModelCheckpoint(str(tmp_path / f"rank{rank}-{{epoch}}.npz"))
        history = model.fit(x[rows], y[rows], lengths=lengths[rows], batch_size=4, epochs=5, verbose=2,
                            validation_data=({"x": vx, "lengths": vl}, vy), callbacks=[stopper, checkpoint],
                            strategy=strategy)
        return history.epoch, stopper.stopped_epoch

    results = run_ranks(2, work)
    assert results[0] == results[1] == ([0, 1], 1)  # min_delta=10 never improves: stop after epoch 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0-1.npz", "rank0-2.npz"]
    out = capsys.readouterr().out
    assert out.count("Epoch 1/5") == 1 and out.count("early stopping") == 1


def test_which_callbacks_write_files():
    assert writes_files(callbacks.ModelCheckpoint("m.npz"))
    assert not writes_files(callbacks.EarlyStopping())

    class Uploader(callbacks.Callback):
        chief_only = True

    assert writes_files(Uploader())
    quiet = Silenced(callbacks.History())
    quiet.on_epoch_end(0, {"loss": 1.0})
    assert quiet.callback.history == {"loss": [1.0]}


# ------------------------------------------------------------------------- the seam
def test_a_strategy_must_be_one():
    assert isinstance(resolve(None), LocalStrategy)
    with pytest.raises(TypeError, match="distribution strategy"):
        resolve("mpi")


def test_local_strategy_leaves_fit_unchanged(ops, rng):
    x, y, lengths = make_data(rng, 9)
    a, b = make_model(ops), make_model(ops)
    a.fit(x, y, lengths=lengths, batch_size=4, epochs=2, shuffle=False, verbose=0)
    b.fit(x, y, lengths=lengths, batch_size=4, epochs=2, shuffle=False, verbose=0, strategy=LocalStrategy())
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)


def test_batch_results_carry_the_loss_denominator(ops, rng):
    model = make_model(ops)
    x, y, lengths = make_data(rng, 5)
    scored = score(model, Batch(x, y, lengths), model._pinned_now(), training=False)
    assert scored.weight == float(lengths.sum())
    result = batch_result(scored, [])
    assert result.weight == scored.weight and result.size == 5
    assert metric_stats([], scored) == []
    model.compile(optimizer="adam", loss=cgru.losses.MeanSquaredError(reduction="sum"))
    assert score(model, Batch(x, y, lengths), model._pinned_now(), training=False).weight is None
    plain = Sequential([GRU(2, input_shape=(T, F)), Dense(3)], device=ops.name)
    plain.compile(optimizer="sgd", loss="mse")
    assert score(plain, Batch(x, y[:, 0, :1].repeat(3, 1), None), plain._pinned_now(), False).weight == 5.0


def test_loop_helpers_match_the_public_fit(ops, rng):
    """loop.fit takes the strategy as its last argument (Sequential.fit passes it through)."""
    x, y, lengths = make_data(rng, 4)
    model = make_model(ops)
    calls = []

    class Recording(LocalStrategy):
        def prepare(self, model):
            calls.append("prepare")

        def distribute(self, source):
            calls.append("distribute")
            return source

    loop.fit(model, x, y, 4, 1, 0, None, 0.0, None, False, lengths, 0, None, Recording())
    model.fit(x, y, lengths=lengths, verbose=0, strategy=Recording())
    model.train_on_batch(x, y, lengths=lengths, strategy=Recording())
    model.evaluate(x, y, lengths=lengths, strategy=Recording())
    assert calls == ["distribute", "prepare"] * 2 + ["prepare", "distribute"]


# ------------------------------------------------------------- the same over NCCL's calls
class FakeNccl:
    """The names of ``cupy.cuda.nccl`` that NCCLCollectives uses, over threads: each call reads
    and writes the buffers at the addresses it is given, as NCCL does on the GPU."""

    NCCL_UINT8, NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64 = 1, 6, 7, 8
    NCCL_SUM = 0
    DTYPES = {1: np.uint8, 6: np.float16, 7: np.float32, 8: np.float64}

    def __init__(self, group: ThreadGroup) -> None:
        self.group = group
        self.calls: list = []
        fake = self

        class NcclCommunicator:
            def __init__(self, ndev, unique_id, rank):
                assert (ndev, unique_id) == (group.size, ("id", 42))
                self.rank = rank
                self.host = ThreadCollectives(group, rank)

            def allReduce(self, send, recv, count, datatype, op, stream):  # noqa: N802 (NCCL's name)
                fake.calls.append(("allReduce", self.rank, count, datatype, op, stream))
                assert op == fake.NCCL_SUM
                values = self.host._exchange(fake.memory(send, count, datatype).copy())
                total = values[0].copy()
                for value in values[1:]:
                    total += value
                fake.memory(recv, count, datatype)[...] = total

            def bcast(self, buffer, count, datatype, root, stream):
                fake.calls.append(("bcast", self.rank, count, datatype, root, stream))
                data = fake.memory(buffer, count, datatype)
                data[...] = self.host._exchange(data.copy())[root]

        self.NcclCommunicator = NcclCommunicator

    def memory(self, address, count, datatype):
        import ctypes

        dtype = np.dtype(self.DTYPES[datatype])
        raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(address)
        return np.frombuffer(raw, dtype=dtype, count=count)

    @staticmethod
    def get_unique_id():
        return ("id", 42)


def nccl_ranks(size, work):
    """Like :func:`run_ranks`, each rank's strategy over NCCLCollectives (host messages between
    threads); also returns the NCCL calls made."""
    from cgru.distributed.nccl import NCCLCollectives

    group, host_group = ThreadGroup(size), ThreadGroup(size)
    nccl = FakeNccl(group)
    stream = SimpleNamespace(ptr=0xC0DE)
    cupy = SimpleNamespace(cuda=SimpleNamespace(get_current_stream=lambda: stream))

    def strategy_of(rank):
        collectives = NCCLCollectives(ThreadCollectives(host_group, rank), cupy, nccl)
        return DataParallelStrategy(collectives)

    return run_ranks(size, work, group, strategy_of, (host_group,)), nccl.calls


def test_nccl_collectives_train_like_one_process_on_the_emulated_gpu(emulator, rng):
    """NCCLCollectives' calls (addresses, counts, NCCL datatypes, the stream) checked by an
    in-process stand-in for NCCL, on the CuPy backend run by the CPU emulator: the fused
    buffers on the (emulated) device reduce to one process's training."""
    fake, lib = emulator
    ops = fake.emulated_ops(fake.FakeCupy(lib))
    cgru.register_backend("cuda-emulated-nccl", lambda: ops)
    device = SimpleNamespace(name="cuda-emulated-nccl")
    x, y, lengths = make_data(rng, 13)
    rows_per_rank = shards((8, 5))

    def work(rank, strategy):
        model = make_model(device, seed=rank)
        rows = rows_per_rank[rank]
        model.fit(x[rows], y[rows], lengths=lengths[rows], batch_size=4, epochs=2, shuffle=False, verbose=0,
                  strategy=strategy)
        return model.get_weights()

    ranks, calls = nccl_ranks(2, work)
    order = np.concatenate(global_batches(rows_per_rank, 4))
    reference = make_model(cgru.get_ops("numpy"), seed=0)
    reference.fit(x[order], y[order], lengths=lengths[order], batch_size=8, epochs=2, shuffle=False,
                  verbose=0)
    for weights in ranks:
        assert_same_weights(weights, reference.get_weights(), 1e-12)
    reduces = [c for c in calls if c[0] == "allReduce" and c[1] == 0]
    assert len(reduces) == 2 * 2  # one per step
    assert all(c[3] == FakeNccl.NCCL_FLOAT64 and c[5] == 0xC0DE for c in reduces)
    broadcasts = [c for c in calls if c[0] == "bcast" and c[1] == 0]
    weight_bytes = sum(w.nbytes for w in reference.get_weights())
    assert [(c[2], c[3], c[4]) for c in broadcasts] == [(weight_bytes, FakeNccl.NCCL_UINT8, 0)]


def test_nccl_refuses_buffers_it_has_no_datatype_for():
    from cgru.distributed.nccl import NCCLCollectives

    host = SimpleNamespace(rank=0, size=1, broadcast_object=lambda obj, root: obj)
    collectives = NCCLCollectives(host, SimpleNamespace(), FakeNccl(ThreadGroup(1)))
    with pytest.raises(TypeError, match="int64"):
        collectives.allreduce_sum(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="1-D"):
        collectives.broadcast(np.zeros((2, 2), np.float32))


def test_silencing_one_thread_keeps_the_others_output(capsys):
    class Loud(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            print("from the silenced callback")
            inside.set()
            release.wait(10)

    inside, release = threading.Event(), threading.Event()
    quiet = Silenced(Loud())
    thread = threading.Thread(target=quiet.on_epoch_end, args=(0,))
    thread.start()
    inside.wait(10)
    print("from another thread meanwhile")  # while the other thread is silenced
    release.set()
    thread.join()
    out = capsys.readouterr().out
    assert out == "from another thread meanwhile\n"


def test_missing_packages_say_what_to_install(monkeypatch):
    import sys

    from cgru.distributed import dask as dask_predict
    from cgru.distributed import mpi

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # `import mpi4py` raises ImportError
    with pytest.raises(ImportError, match='pip install ".\\[mpi\\]" mpich'):
        mpi.MPIStrategy()
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match='pip install ".\\[dask\\]"'):
        dask_predict.predict(Sequential([Dense(1, input_shape=(2,))]), np.ones((2, 2)))
    with pytest.raises(ValueError, match="gpu_collectives"):
        mpi.MPIStrategy(gpu_collectives="gloo")
