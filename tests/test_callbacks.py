"""cgru.callbacks in real fits: EarlyStopping restoring the best weights, TerminateOnNaN keeping the
last good ones, ModelCheckpoint's files, History.plot."""

import sys

import numpy as np
import pytest
from small_regression import _data, _regression

import cgru
from cgru import callbacks, optimizers


class WeightRecorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epoch_end, self.batch_begin, self.batch_losses = [], [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.batch_begin.append(self.model.get_weights())

    def on_train_batch_end(self, batch, logs=None):
        self.batch_losses.append(logs["batch_loss"])

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end.append(self.model.get_weights())


def test_early_stopping_restores_best_weights(ops, rng):
    x, y = _data(rng, 32)
    model = _regression(ops)
    rec = WeightRecorder()
    # training loss falls, so with mode="max" the first epoch stays the best
    stop = callbacks.EarlyStopping(monitor="loss", mode="max", patience=2, restore_best_weights=True)
    h = model.fit(x, y, epochs=20, batch_size=8, callbacks=[rec, stop], verbose=0)
    assert len(h.history["loss"]) == 3 and stop.stopped_epoch == 2 and stop.best_epoch == 0
    for u, v in zip(model.get_weights(), rec.epoch_end[0]):
        np.testing.assert_array_equal(u, v)
    # min mode keeps the last (best) epoch and runs to the end
    stop = callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True, min_delta=0.0)
    h = model.fit(x, y, epochs=3, batch_size=8, callbacks=[stop], verbose=0)
    assert len(h.history["loss"]) == 3


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_terminate_on_nan_keeps_last_good_weights(ops, rng):
    x, y = _data(rng, 64)
    model = _regression(ops, optimizer=optimizers.SGD(learning_rate=1e4))
    rec = WeightRecorder()
    term = callbacks.TerminateOnNaN()
    h = model.fit(x, y, epochs=5, batch_size=4, callbacks=[rec, term], verbose=0, seed=0)
    assert term.terminated_batch is not None
    assert len(h.history["loss"]) == 1 and model.stop_training
    finite = [i for i, loss in enumerate(rec.batch_losses) if np.isfinite(loss)]
    assert not np.isfinite(rec.batch_losses[-1]) and finite
    restored = model.get_weights()
    assert all(np.isfinite(w).all() for w in restored)
    for u, v in zip(restored, rec.batch_begin[finite[-1]]):
        np.testing.assert_array_equal(u, v)


def test_terminate_on_nan_from_bad_data(ops, rng):
    x, y = _data(rng, 16)
    x[9, 2, 1] = np.nan  # the third batch of 4
    model = _regression(ops)
    rec = WeightRecorder()
    model.fit(
        x, y, epochs=2, batch_size=4, shuffle=False, callbacks=[rec, callbacks.TerminateOnNaN()], verbose=0
    )
    assert len(rec.batch_losses) == 3
    for u, v in zip(model.get_weights(), rec.batch_begin[1]):
        np.testing.assert_array_equal(u, v)


def test_model_checkpoint(ops, rng, tmp_path):
    x, y = _data(rng, 24)
    model = _regression(ops, metrics=["mae"])
    pattern = str(tmp_path / "m-{epoch:02d}-{val_loss:.3f}.npz")
    ckpt = callbacks.ModelCheckpoint(pattern, monitor="val_loss", save_best_only=True)
    h = model.fit(x, y, epochs=4, validation_split=0.25, callbacks=[ckpt], verbose=0)
    files = sorted(p.name for p in tmp_path.iterdir())
    val = h.history["val_loss"]
    improving = [i for i in range(4) if val[i] == min(val[: i + 1]) and (i == 0 or val[i] < min(val[:i]))]
    assert files == [f"m-{i + 1:02d}-{val[i]:.3f}.npz" for i in improving]
    loaded = cgru.load_model(tmp_path / files[-1])
    assert loaded.count_params() == model.count_params()
    every = callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch}.npz"), save_weights_only=True)
    model.fit(x, y, epochs=2, callbacks=[every], verbose=0)
    model.load_weights(tmp_path / "w-2.npz")
    with pytest.raises(ValueError, match="nope"):
        model.fit(
            x, y, epochs=1, callbacks=[callbacks.ModelCheckpoint(str(tmp_path / "{nope}.npz"))], verbose=0
        )


def test_history_plot(rng, tmp_path, monkeypatch):
    h = callbacks.History()
    h.history = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6]}
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        with pytest.raises(ImportError, match="matplotlib"):
            h.plot()
    else:
        ax = h.plot(path=tmp_path / "loss.png")
        assert [line.get_label() for line in ax.get_lines()] == ["loss", "val_loss"]
        assert (tmp_path / "loss.png").stat().st_size > 0
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        h.plot()
