"""cgru.training.loop: the batch loop fit and evaluate share, run on any source of batches, the
strategy points between backward and the optimizer, and test_on_batch."""

import numpy as np
import pytest

import cgru
from cgru import GRU, Dense, Sequential, callbacks, optimizers
from cgru.training import loop, step
from cgru.training.data import Batch
from cgru.training.logs import LogsAccumulator
from cgru.training.strategy import LocalStrategy


def make_model(ops, lr=0.1):
    model = Sequential([GRU(4, input_shape=(5, 3), seed=1), Dense(2, seed=2)], device=ops.name)
    model.compile(optimizer=optimizers.SGD(lr), loss="mse", metrics=["mae"])
    return model


def data(rng, n=12):
    return rng.standard_normal((n, 5, 3)).astype(np.float32), rng.standard_normal((n, 2)).astype(np.float32)


def fit(model, x, y, strategy=None, **kwargs):
    """training.fit with fit's defaults, shuffle off."""
    args = dict(batch_size=4, epochs=1, verbose=0, callbacks=None, validation_split=0.0,
                validation_data=None, shuffle=False, lengths=None, initial_epoch=0, seed=None)
    args.update(kwargs)
    return loop.fit(model, x, y, *args.values(), strategy=strategy)


def test_test_on_batch_scores_one_batch_and_trains_nothing(ops, rng):
    model = make_model(ops)
    x, y = data(rng)
    before = model.get_weights()
    loss, mae = model.test_on_batch(x, y)
    pred = model.predict(x).astype(np.float64)
    assert loss == pytest.approx(np.mean((pred - y) ** 2), rel=1e-5)
    assert mae == pytest.approx(np.mean(np.abs(pred - y)), rel=1e-5)
    assert model.optimizer.iterations == 0
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    model.compile(optimizer="sgd", loss="mse")
    assert model.test_on_batch(x, y) == pytest.approx(loss, rel=1e-6)  # no metrics: the loss alone
    with pytest.raises(ValueError, match="compile"):
        Sequential([Dense(1, input_shape=(2,))]).test_on_batch(np.ones((1, 2)), np.ones((1, 1)))


def test_the_loop_runs_any_source_batch_by_batch(ops, rng):
    """A source of batches with different time lengths (as a generator gives): the loop's
    logs are the size-weighted means of each batch's own evaluation."""
    model = Sequential([GRU(4, input_shape=(None, 3), seed=1), Dense(2, seed=2)], device=ops.name)
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    batches = [
        Batch(*data(rng, 3)),
        Batch(rng.standard_normal((5, 7, 3)), rng.standard_normal((5, 2)), np.array([7, 2, 5, 1, 7])),
    ]

    class Source:
        steps = None

        def epoch(self, index):
            yield from batches

    metrics = loop.resolve_metrics(model, (None, 2), (None, 2))
    logs = LogsAccumulator(metrics)
    model._ensure_bound()
    done = model._run_pinned(
        lambda pinned: loop.run_epoch(
            Source(), 0, lambda b: step.evaluate_step(model, b, metrics, pinned), logs, LocalStrategy(),
            loop.LoopHooks(),
        )
    )
    assert done == 2
    each = [model.evaluate(b.x, b.y, lengths=b.lengths, batch_size=len(b.x)) for b in batches]
    sizes = np.array([3, 5])
    assert logs.result()["loss"] == pytest.approx(np.dot([e[0] for e in each], sizes) / 8, rel=1e-6)
    # the metric is a mean over all samples (each sample one value here)
    assert logs.result()["mae"] == pytest.approx(np.dot([e[1] for e in each], sizes) / 8, rel=1e-6)


class Halving(LocalStrategy):
    """Halves every gradient before the optimizer step; records what passes through it."""

    def __init__(self):
        self.batches = []

    def reduce_gradients(self, grads_and_params):
        return [(g * 0.5, p) for g, p in grads_and_params]

    def reduce_batch(self, result):
        self.batches.append(result)
        return result._replace(loss=2 * result.loss)


def test_gradients_pass_through_the_strategy_before_the_optimizer(ops, rng):
    x, y = data(rng)
    halved, reference = make_model(ops, lr=0.2), make_model(ops, lr=0.1)
    strategy = Halving()
    history = fit(halved, x, y, strategy, epochs=2, validation_data=(x[:4], y[:4]))
    plain = reference.fit(
        x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, validation_data=(x[:4], y[:4])
    )
    for a, b in zip(halved.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # every batch's logs (training and validation) pass through reduce_batch before they are logged
    assert len(strategy.batches) == 2 * (3 + 1)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(history.history[key], 2 * np.array(plain.history[key]), rtol=1e-5)


class Worker(LocalStrategy):
    """Another process than the chief: prints nothing, runs no callback that writes."""

    is_chief = False

    def callbacks(self, cbs):
        return [cb for cb in cbs if not isinstance(cb, callbacks.ModelCheckpoint)]


def test_the_strategy_decides_who_prints_and_which_callbacks_run(ops, rng, tmp_path, capsys):
    x, y = data(rng)
    path = tmp_path / "ckpt.npz"
    model = make_model(ops)
    fit(model, x, y, Worker(), verbose=2, callbacks=[callbacks.ModelCheckpoint(str(path))])
    assert capsys.readouterr().out == "" and not path.exists()
    fit(model, x, y, None, verbose=2, callbacks=[callbacks.ModelCheckpoint(str(path))])
    assert "Epoch 1/1" in capsys.readouterr().out and path.exists()
    assert cgru.load_model(path).count_params() == model.count_params()
