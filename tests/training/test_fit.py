"""fit end to end (cgru.training.loop's entry point): learning, History's keys, the validation split,
seeded shuffling, float64 training, dropout and embedding models, padded sequence targets."""

import numpy as np
import pytest
from small_regression import _data, _regression

import cgru
from cgru import GRU, Bidirectional, Dense, Dropout, Embedding, Sequential, optimizers


def test_fit_learns_and_history_has_keras_keys(ops, rng):
    x, y = _data(rng)
    model = _regression(ops, metrics=["mae"])
    before = model.evaluate(x, y)[0]
    history = model.fit(x, y, epochs=8, batch_size=16, validation_split=0.25, verbose=0, seed=1)
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert all(len(v) == 8 for v in history.history.values())
    assert history.epoch == list(range(8))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, y)[0] < before
    assert model.history is history


def test_validation_split_takes_the_last_samples(ops, rng):
    x, y = _data(rng, 8)
    a = _regression(ops, optimizer=optimizers.SGD(0.05))
    b = _regression(ops, optimizer=optimizers.SGD(0.05))
    h = a.fit(x, y, batch_size=6, epochs=1, validation_split=0.25, shuffle=False, verbose=0)
    b.fit(x[:6], y[:6], batch_size=6, epochs=1, shuffle=False, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert h.history["val_loss"][0] == pytest.approx(a.evaluate(x[6:], y[6:]), rel=1e-6)
    val = a.fit(x, y, epochs=1, validation_data=({"x": x[:3], "lengths": [6, 2, 3]}, y[:3]), verbose=0)
    assert val.history["val_loss"][0] == pytest.approx(a.evaluate(x[:3], y[:3], lengths=[6, 2, 3]), rel=1e-6)


def test_shuffle_is_seeded(ops, rng):
    x, y = _data(rng, 40)
    runs = []
    for seed in (3, 3, 4):
        model = _regression(ops)
        model.fit(x, y, batch_size=8, epochs=2, seed=seed, verbose=0)
        runs.append(model.get_weights())
    for u, v in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_float64_training_stays_float64(ops, rng):
    cgru.set_floatx("float64")
    try:
        model = _regression(ops)
    finally:
        cgru.set_floatx("float32")
    x, y = _data(rng, 16)
    model.fit(x, y, epochs=1, verbose=0)
    assert all(w.dtype == np.float64 for w in model.get_weights())
    assert all(p.grad.dtype == np.float64 for p in model.weights)
    assert model.predict(x).dtype == np.float64


def test_dropout_and_embedding_models_train(ops, rng):
    ids = rng.integers(1, 30, (32, 7))
    lengths = rng.integers(1, 8, 32)
    for b, L in enumerate(lengths):
        ids[b, L:] = 0
    y = (ids[:, 0] % 2).astype(np.int64)
    model = Sequential(
        [
            Embedding(30, 6, mask_zero=True, seed=1),
            Bidirectional(GRU(5, return_sequences=True, dropout=0.2, recurrent_dropout=0.2, seed=2)),
            Dropout(0.3, seed=3),
            GRU(4, seed=4),
            Dense(2, activation="softmax", seed=5),
        ],
        device=ops.name,
    )
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h = model.fit(ids, y, epochs=3, batch_size=8, verbose=0)
    assert set(h.history) == {"loss", "accuracy"}
    assert all(np.isfinite(h.history["loss"]))


def test_sequence_classification_with_padding_stays_finite(ops, rng):
    """Zeroed (padded) softmax outputs and NaN padding targets must not leak into the loss."""
    ids = rng.integers(1, 20, (32, 6))
    lengths = rng.integers(1, 7, 32)
    for b, n in enumerate(lengths):
        ids[b, n:] = 0
    tags = ids % 3
    model = Sequential(
        [
            Embedding(20, 8, mask_zero=True, seed=1),
            Bidirectional(GRU(8, return_sequences=True, seed=2)),
            Dense(3, activation="softmax", seed=3),
        ],
        device=ops.name,
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h = model.fit(ids, tags, epochs=3, batch_size=8, verbose=0)
    assert np.all(np.isfinite(h.history["loss"])) and h.history["loss"][-1] < h.history["loss"][0]
    pred = model.predict(ids)
    valid = np.arange(6)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(pred[~valid], 0)
    acc = (pred.argmax(-1) == tags)[valid].mean()
    assert model.evaluate(ids, tags)[1] == pytest.approx(acc)
    regression = Sequential([GRU(3, return_sequences=True, seed=1), Dense(2, seed=2)], device=ops.name)
    regression.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = rng.standard_normal((4, 5, 2)), rng.standard_normal((4, 5, 2))
    y[1, 3:] = np.nan
    loss, mae = regression.evaluate(x, y, lengths=[5, 3, 5, 5])
    assert np.isfinite(loss) and np.isfinite(mae)
