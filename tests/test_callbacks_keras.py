"""EarlyStopping and ModelCheckpoint (cgru.callbacks) against what Keras 3 does.

The expected behaviour comes from tests/data/keras_*.json and keras_early_stopping_fit.npz,
recorded from Keras 3 itself by tests/make_keras_golden.py. The callbacks are driven by hand
exactly as that script drove Keras's: the model's one weight holds the epoch number, so the
weight left after training names the epoch whose weights were restored.
"""

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import cgru
from cgru import GRU, Dense, Sequential, callbacks, metrics, optimizers

DATA = Path(__file__).parent / "data"
CALLBACKS = json.loads((DATA / "keras_callbacks.json").read_text())
#: where cgru differs from Keras on purpose: a NaN first value is not taken as the best
NAN_FIRST = "nan_first"


class EpochModel:
    """The smallest model a callback needs: one weight, set to the epoch number."""

    def __init__(self, metric_identifiers=()):
        self.weight = np.zeros((1, 1), np.float32)
        self.stop_training = False
        self._metrics = list(metric_identifiers)
        self.saved: list[str] = []

    def get_weights(self):
        return [self.weight.copy()]

    def set_weights(self, weights):
        self.weight = np.array(weights[0], np.float32)

    def save(self, path):
        self.saved.append(path)

    save_weights = save


def drive(callback, model, monitor, values, fits, capsys):
    """What make_keras_golden.drive records, for cgru's callback."""
    callback.set_model(model)
    records = []
    for _ in range(fits):
        model.stop_training = False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            callback.on_train_begin({})
            run = 0
            for epoch, value in enumerate(values):
                model.set_weights([np.full((1, 1), float(epoch))])
                callback.on_epoch_begin(epoch, {})
                logs = {"other": 0.0} if value is None else {monitor: value, "other": 0.0}
                callback.on_epoch_end(epoch, logs)
                run += 1
                if model.stop_training:
                    break
            callback.on_train_end({})
        stdout = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip()]
        records.append(
            {
                "epochs_run": run,
                "final_weight_epoch": int(model.get_weights()[0][0, 0]),
                "stdout": stdout,
                "warnings": [str(w.message) for w in caught],
            }
        )
    return records


def same_value(a, b):
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-6)


# --------------------------------------------------------------------------- EarlyStopping
@pytest.mark.parametrize("name", [n for n in CALLBACKS["early_stopping"] if n != NAN_FIRST])
def test_early_stopping_matches_keras(name, capsys):
    case = CALLBACKS["early_stopping"][name]
    stop = callbacks.EarlyStopping(**case["kwargs"])
    ours = drive(stop, EpochModel(), case["kwargs"]["monitor"], case["values"], len(case["fits"]), capsys)
    for mine, keras in zip(ours, case["fits"]):
        assert mine["epochs_run"] == keras["epochs_run"]
        assert mine["final_weight_epoch"] == keras["final_weight_epoch"]
        assert mine["stdout"] == keras["stdout"]
        assert mine["warnings"] == keras["warnings"]
    last = case["fits"][-1]
    assert (stop.stopped_epoch, stop.best_epoch, stop.wait) == (
        last["stopped_epoch"],
        last["best_epoch"],
        last["wait"],
    )
    assert same_value(stop.best, last["best"])


def test_early_stopping_does_not_take_a_nan_first_value_as_the_best(capsys):
    case = CALLBACKS["early_stopping"][NAN_FIRST]
    keras = case["fits"][0]
    # Keras keeps the NaN as its best, so nothing beats it: it stops after `patience` epochs
    # and restores the NaN epoch's weights
    assert math.isnan(keras["best"]) and keras["final_weight_epoch"] == 0 and keras["epochs_run"] == 3
    stop = callbacks.EarlyStopping(**case["kwargs"])
    (ours,) = drive(stop, EpochModel(), "val_loss", case["values"], 1, capsys)
    # values NaN, 3, 2, 1, 0.5: each finite value improves, so training runs to the end and
    # the last epoch's weights are the best
    assert ours["epochs_run"] == 5 and ours["final_weight_epoch"] == 4
    assert (stop.stopped_epoch, stop.best_epoch, stop.best, stop.wait) == (0, 4, 0.5, 0)


def test_monitor_direction_in_auto_mode_matches_keras():
    golden = CALLBACKS["monitor_direction"]
    model = EpochModel(golden["metrics"])
    makers = (
        lambda monitor: callbacks.EarlyStopping(monitor=monitor),
        lambda monitor: callbacks.ModelCheckpoint("m.npz", monitor=monitor, save_best_only=True),
    )
    for monitor, expected in golden["directions"].items():
        for make in makers:
            callback = make(monitor)
            callback.set_model(model)
            if expected == "error":
                with pytest.raises(ValueError, match="mode='max'"):
                    callback.on_train_begin({})
            else:
                callback.on_train_begin({})
                assert callback.direction == expected, monitor


def test_unknown_monitor_direction_fails_before_the_first_epoch(rng):
    model = Sequential([GRU(3, input_shape=(4, 2)), Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    before = model.get_weights()
    x, y = rng.standard_normal((8, 4, 2)), rng.standard_normal((8, 1))
    with pytest.raises(ValueError, match="val_score"):
        model.fit(x, y, epochs=2, callbacks=[callbacks.EarlyStopping(monitor="val_score")], verbose=0)
    for u, v in zip(model.get_weights(), before):
        np.testing.assert_array_equal(u, v)
    # a custom metric object takes its direction from its `direction` attribute
    up = metrics.BinaryAccuracy(name="hits")
    model.compile(optimizer="sgd", loss="mse", metrics=[up])
    stop = callbacks.EarlyStopping(monitor="val_hits")
    stop.set_model(model)
    stop.on_train_begin({})
    assert stop.direction == "max"


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_fit_stops_where_keras_stops_with_min_delta(backend):
    if backend == "cpu" and not cgru.backends.compiled_available():
        pytest.skip("compiled engine not built")
    golden = np.load(DATA / "keras_early_stopping_fit.npz")
    min_delta, learning_rate, patience, epochs = golden["settings"]
    stopped_epoch, best_epoch = (int(e) for e in golden["epochs"])
    model = Sequential([GRU(4, input_shape=(6, 3)), Dense(1)], device=backend)
    model.set_weights([golden[f"initial_{i}"] for i in range(5)])
    model.compile(optimizer=optimizers.SGD(float(learning_rate)), loss="mse")
    stop = callbacks.EarlyStopping(
        monitor="loss", min_delta=float(min_delta), patience=int(patience), restore_best_weights=True
    )
    history = model.fit(
        golden["x"], golden["y"], batch_size=32, epochs=int(epochs), shuffle=False, callbacks=[stop],
        verbose=0,
    )
    assert len(history.history["loss"]) == len(golden["losses"]) < epochs
    np.testing.assert_allclose(history.history["loss"], golden["losses"], rtol=1e-4)
    assert (stop.stopped_epoch, stop.best_epoch) == (stopped_epoch, best_epoch)
    for mine, keras in zip(model.get_weights(), [golden[f"final_{i}"] for i in range(5)]):
        np.testing.assert_allclose(mine, keras, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------ ModelCheckpoint
@pytest.mark.parametrize("name", list(CALLBACKS["model_checkpoint"]))
def test_model_checkpoint_save_best_only_matches_keras(name, tmp_path, capsys):
    case = CALLBACKS["model_checkpoint"][name]
    # with a NaN first value Keras saves that epoch and then never again; cgru never takes NaN
    # as the best, which is what Keras does when told that +inf is the value to beat
    reference = CALLBACKS["model_checkpoint"]["nan_first_threshold_inf" if name == NAN_FIRST else name]
    model = EpochModel()
    ckpt = callbacks.ModelCheckpoint(tmp_path / "m-{epoch:02d}.npz", save_best_only=True, **case["kwargs"])
    ours = drive(ckpt, model, case["kwargs"]["monitor"], case["values"], len(case["fits"]), capsys)
    saved = [int(Path(p).stem.split("-")[1]) for p in model.saved]
    expected = [epoch for fit in reference["fits"] for epoch in fit["saved_epochs"]]
    assert saved == expected
    assert same_value(ckpt.best, reference["fits"][-1]["best"])
    for mine, keras in zip(ours, reference["fits"]):
        shown = [line.replace(str(tmp_path) + os.sep, "") for line in mine["stdout"]]
        assert [line.replace(".npz", ".keras") for line in shown] == keras["stdout"]


@pytest.mark.parametrize(
    "filepath, problem",
    [
        ("{}.npz", "positional"),
        ("m-{0}.npz", "positional"),
        ("m-{epoch:zz}.npz", "cannot be formatted"),
        ("m-{loss:d}.npz", "cannot be formatted"),
        ("m-{epoch.npz", "not a valid format string"),
        ("m-{epoch}}.npz", "not a valid format string"),
        ("m-{epoch!x}.npz", "cannot be formatted"),
        ("m-{batch}.npz", "save_freq"),
        ("m-{epoch}.keras", "must end in '.npz'"),
        ("checkpoint", "must end in '.npz'"),
    ],
)
def test_model_checkpoint_refuses_a_bad_filepath_when_made(filepath, problem):
    with pytest.raises(ValueError, match=problem):
        callbacks.ModelCheckpoint(filepath)


def test_model_checkpoint_filepath_types_and_batch_field(tmp_path):
    with pytest.raises(TypeError, match="filepath"):
        callbacks.ModelCheckpoint(b"m.npz")
    with pytest.raises(TypeError, match="filepath"):
        callbacks.ModelCheckpoint(None)
    callbacks.ModelCheckpoint(tmp_path / "m-{epoch}-{batch:03d}.npz", save_freq=2)


def _small_model(rng):
    model = Sequential([GRU(3, input_shape=(4, 2)), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model, rng.standard_normal((8, 4, 2)), rng.standard_normal((8, 1))


def test_model_checkpoint_directory_checked_before_training(rng, tmp_path):
    model, x, y = _small_model(rng)
    (tmp_path / "afile").write_text("")
    before = model.get_weights()
    for filepath in (tmp_path / "afile" / "m-{epoch}.npz", tmp_path / "afile" / "deeper" / "m.npz"):
        ckpt = callbacks.ModelCheckpoint(filepath)
        with pytest.raises(ValueError, match="not a directory"):
            model.fit(x, y, epochs=2, callbacks=[ckpt], verbose=0)
    (tmp_path / "adir.npz").mkdir()
    with pytest.raises(ValueError, match="existing directory"):
        model.fit(x, y, epochs=2, callbacks=[callbacks.ModelCheckpoint(tmp_path / "adir.npz")], verbose=0)
    for u, v in zip(model.get_weights(), before):
        np.testing.assert_array_equal(u, v)
    # a missing directory is created when saving, as Keras does (also one named per epoch)
    ckpt = callbacks.ModelCheckpoint(tmp_path / "new" / "e{epoch}" / "m-{epoch:02d}.npz")
    model.fit(x, y, epochs=2, callbacks=[ckpt], verbose=0)
    assert (tmp_path / "new" / "e2" / "m-02.npz").is_file()
    cgru.load_model(tmp_path / "new" / "e1" / "m-01.npz")


def test_model_checkpoint_batch_field(rng, tmp_path):
    model, x, y = _small_model(rng)
    ckpt = callbacks.ModelCheckpoint(tmp_path / "m-{epoch}-{batch}.npz", save_freq=3, save_weights_only=True)
    model.fit(x, y, epochs=2, batch_size=2, callbacks=[ckpt], verbose=0)
    # 4 batches per epoch: the 3rd batch of the run is the 3rd of epoch 1, the 6th the 2nd of epoch 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-1-3.npz", "m-2-2.npz"]
