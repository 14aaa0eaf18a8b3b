"""The learning-rate callbacks (ReduceLROnPlateau, LearningRateScheduler), CSVLogger and
LambdaCallback against Keras 3, driven by hand and in real fits, and the learning rate in History.

The Keras records come from tests/make_keras_golden_lr.py (tests/data/keras_lr.json and
keras_lr_fit.npz); the functions of ``LR_FUNCTIONS`` are the generator's.
"""

import contextlib
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from cgru import GRU, Dense, Sequential, callbacks, optimizers
from cgru.optimizers import schedules

DATA = Path(__file__).parent / "data"
GOLDEN = json.loads((DATA / "keras_lr.json").read_text())


def _halve_after_two(epoch, lr):
    return lr if epoch < 2 else lr * 0.5


def _epoch_only(epoch):
    return 0.1 / (epoch + 1)


def _halve_while_above(epoch, lr):
    return lr * 0.5 if lr > 0.001 else lr


def _exponential(epoch, lr):
    return lr if epoch < 10 else lr * math.exp(-0.1)


def _float32_output(epoch, lr):
    return np.float32(lr * 0.75)


LR_FUNCTIONS = {
    "halve_after_two": _halve_after_two,
    "epoch_only": _epoch_only,
    "halve_while_above_1e-3": _halve_while_above,
    "exponential": _exponential,
    "float32_output": _float32_output,
}


@contextlib.contextmanager
def captured():
    """Printed lines and warning messages, as the generator records them."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = {"stdout": [], "warnings": []}
        yield record
    record["stdout"] = [line.strip() for line in out.getvalue().splitlines() if line.strip()]
    record["warnings"] = [str(w.message) for w in caught]


def compiled_model(optimizer) -> Sequential:
    model = Sequential([Dense(1, input_shape=(1,))])
    model.compile(optimizer=optimizer, loss="mse")
    return model


# -------------------------------------------------------------------- ReduceLROnPlateau
@pytest.mark.parametrize("name", list(GOLDEN["reduce_lr_on_plateau"]))
def test_reduce_lr_on_plateau_matches_keras(name):
    case = GOLDEN["reduce_lr_on_plateau"][name]
    model = compiled_model(optimizers.SGD(learning_rate=case["learning_rate"]))
    callback = callbacks.ReduceLROnPlateau(**case["kwargs"])
    callback.set_model(model)
    monitor = case["kwargs"].get("monitor", "val_loss")
    for expected in case["fits"]:
        epochs = []
        with captured() as record:
            callback.on_train_begin({})
            for epoch, value in enumerate(case["values"]):
                callback.on_epoch_begin(epoch, {})
                logs = {"other": 0.0} if value is None else {monitor: value}
                callback.on_epoch_end(epoch, logs)
                epochs.append({
                    "logged": logs["learning_rate"],
                    "after": float(model.optimizer.learning_rate),
                    "wait": callback.wait,
                    "cooldown_counter": callback.cooldown_counter,
                    "best": callback.best,
                })
            callback.on_train_end({})
        assert epochs == expected["epochs"]  # exact: the learning rates are float32 values
        assert record["stdout"] == expected["stdout"]
        assert record["warnings"] == expected["warnings"]


def test_reduce_lr_on_plateau_refuses_bad_arguments():
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="factor"):
        callbacks.ReduceLROnPlateau(factor=-0.5)
    with pytest.raises(TypeError, match="factor"):
        callbacks.ReduceLROnPlateau(factor="half")
    with pytest.raises(ValueError, match="patience"):
        callbacks.ReduceLROnPlateau(patience=-1)
    with pytest.raises(ValueError, match="cooldown"):
        callbacks.ReduceLROnPlateau(cooldown=1.5)
    with pytest.raises(ValueError, match="min_lr"):
        callbacks.ReduceLROnPlateau(min_lr=float("nan"))
    with pytest.raises(ValueError, match="mode"):
        callbacks.ReduceLROnPlateau(mode="up")
    with pytest.raises(TypeError):
        callbacks.ReduceLROnPlateau(epsilon=1e-4)


def test_reduce_lr_on_plateau_cannot_reduce_a_schedule():
    schedule = schedules.ExponentialDecay(0.1, 10, 0.5)
    model = compiled_model(optimizers.SGD(schedule))
    model.optimizer.iterations = 5
    callback = callbacks.ReduceLROnPlateau(monitor="loss", patience=1)
    callback.set_model(model)
    callback.on_train_begin({})
    logs = {"loss": 1.0}
    callback.on_epoch_end(0, logs)  # logs the schedule's value at the step count, as Keras
    assert logs["learning_rate"] == float(np.float32(schedule(5)))
    with pytest.raises(TypeError) as info:
        callback.on_epoch_end(1, {"loss": 1.0})
    assert GOLDEN["lr_setter"]["float_on_schedule"] in str(info.value)
    assert "ReduceLROnPlateau" in str(info.value)


def test_learning_rate_callbacks_need_a_compiled_model():
    model = Sequential([Dense(1, input_shape=(1,))])
    for callback, hook in ((callbacks.ReduceLROnPlateau(mode="min"), "on_epoch_end"),
                           (callbacks.LearningRateScheduler(_epoch_only), "on_epoch_begin")):
        callback.set_model(model)
        with pytest.raises(ValueError, match="compile"):
            getattr(callback, hook)(0, {"val_loss": 1.0})


# ----------------------------------------------------------------- LearningRateScheduler
@pytest.mark.parametrize("name", [n for n in GOLDEN["learning_rate_scheduler"] if not n.startswith("_")])
def test_learning_rate_scheduler_matches_keras(name):
    case = GOLDEN["learning_rate_scheduler"][name]
    model = compiled_model(optimizers.SGD(learning_rate=case["learning_rate"]))
    callback = callbacks.LearningRateScheduler(LR_FUNCTIONS[case["function"]], verbose=case["verbose"])
    callback.set_model(model)
    rows = []
    with captured() as record:
        callback.on_train_begin({})
        for epoch in range(len(case["epochs"])):
            callback.on_epoch_begin(epoch, {})
            during = float(model.optimizer.learning_rate)
            logs = {"loss": 1.0}
            callback.on_epoch_end(epoch, logs)
            rows.append({"during": during, "logged": logs["learning_rate"]})
        callback.on_train_end({})
    assert rows == case["epochs"]
    assert record["stdout"] == case["stdout"]


def test_learning_rate_scheduler_refuses_what_keras_refuses():
    model = compiled_model(optimizers.SGD(0.1))
    callback = callbacks.LearningRateScheduler(lambda epoch, lr: None)
    callback.set_model(model)
    with pytest.raises(ValueError) as info:
        callback.on_epoch_begin(0, {})
    assert str(info.value) == GOLDEN["learning_rate_scheduler"]["_none_output_error"]
    assert model.optimizer.learning_rate == 0.1
    on_schedule = callbacks.LearningRateScheduler(_halve_after_two)
    on_schedule.set_model(compiled_model(optimizers.SGD(schedules.CosineDecay(0.1, 10))))
    with pytest.raises(TypeError) as info:
        on_schedule.on_epoch_begin(0, {})
    assert GOLDEN["lr_setter"]["float_on_schedule"] in str(info.value)
    with pytest.raises(TypeError, match="schedule"):
        callbacks.LearningRateScheduler(0.1)
    with pytest.raises(TypeError, match="epoch"):
        callbacks.LearningRateScheduler(lambda: 0.1)


# ------------------------------------------------------------------------- CSVLogger
@pytest.mark.parametrize("name", list(GOLDEN["csv_logger"]))
def test_csv_logger_writes_what_keras_writes(name, tmp_path):
    case = GOLDEN["csv_logger"][name]
    path = tmp_path / "log.csv"
    if case["before"] is not None:
        path.write_bytes(case["before"].encode())
    for logs_per_epoch, kwargs in zip(case["fits"], case["kwargs"]):
        logger = callbacks.CSVLogger(path, **kwargs)
        logger.on_train_begin({})
        for epoch, logs in enumerate(logs_per_epoch):
            logger.on_epoch_end(epoch, dict(logs))
        logger.on_train_end({})
        assert logger.csv_file.closed
    assert path.read_bytes() == case["file"].encode()


def test_csv_logger_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="separator"):
        callbacks.CSVLogger(tmp_path / "a.csv", separator=", ")
    with pytest.raises(ValueError, match="separator"):
        callbacks.CSVLogger(tmp_path / "a.csv", separator=None)
    with pytest.raises(TypeError, match="filename"):
        callbacks.CSVLogger(3)


# --------------------------------------------------------------------- LambdaCallback
def test_lambda_callback_sees_the_hooks_keras_calls():
    case = GOLDEN["lambda_events"]
    events = []

    def hook(name):
        return lambda *args, **kwargs: events.append([name, *(a for a in args if isinstance(a, int))])

    names = ["on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end", "on_train_batch_begin",
             "on_train_batch_end"]
    callback = callbacks.LambdaCallback(**{name: hook(name) for name in names})
    aliases = callbacks.LambdaCallback(
        on_batch_begin=hook("on_batch_begin"), on_batch_end=hook("on_batch_end")
    )
    model = compiled_model(optimizers.SGD(0.01))
    model.fit(np.zeros((case["samples"], 1)), np.zeros((case["samples"], 1)), batch_size=case["batch_size"],
              epochs=case["epochs"], verbose=0, shuffle=False, callbacks=[callback, aliases])
    assert events == case["events"]


def test_lambda_callback_refuses_unknown_hooks_and_non_functions():
    with pytest.raises(TypeError, match="on_epoch_ends"):
        callbacks.LambdaCallback(on_epoch_ends=print)
    with pytest.raises(TypeError, match="function"):
        callbacks.LambdaCallback(on_epoch_end="print")
    quiet = callbacks.LambdaCallback(on_epoch_end=None, on_test_begin=None)
    quiet.on_epoch_end(0, {})  # the base class's hook: does nothing


# -------------------------------------------------------------------------- real fits
FIT = np.load(DATA / "keras_lr_fit.npz")
FIT_SPECS = json.loads(str(FIT["fits"]))
FIT_NAMES = list(FIT_SPECS)


def fit_like_keras(name: str, device: str):
    """The generator's fit ``name`` (its optimizer, learning rate and callbacks) with cgru."""
    optimizer_name, optimizer_kwargs, callback_specs, epochs = FIT_SPECS[name]
    kwargs = dict(optimizer_kwargs)
    if isinstance(kwargs["learning_rate"], list):
        schedule_name, schedule_kwargs = kwargs["learning_rate"]
        kwargs["learning_rate"] = getattr(schedules, schedule_name)(**schedule_kwargs)
    made = []
    for callback_name, callback_kwargs in callback_specs:
        callback_kwargs = dict(callback_kwargs)
        if "schedule" in callback_kwargs:
            callback_kwargs["schedule"] = LR_FUNCTIONS[callback_kwargs["schedule"]]
        made.append(getattr(callbacks, callback_name)(**callback_kwargs))
    model = Sequential([GRU(4, input_shape=(6, 3)), Dense(1)], device=device)
    model.set_weights([FIT[f"initial_{i}"] for i in range(5)])
    model.compile(optimizer=getattr(optimizers, optimizer_name)(**kwargs), loss="mse")
    history = model.fit(
        FIT["x"], FIT["y"], batch_size=8, epochs=epochs, shuffle=False, callbacks=made, verbose=0
    )
    return model, history


@pytest.mark.parametrize("name", FIT_NAMES)
def test_fit_with_learning_rate_control_matches_keras(name, ops):
    model, history = fit_like_keras(name, ops.name)
    np.testing.assert_allclose(history.history["loss"], FIT[f"{name}/losses"], rtol=2e-4)
    for i, mine in enumerate(model.get_weights()):
        np.testing.assert_allclose(mine, FIT[f"{name}/final_{i}"], rtol=2e-4, atol=2e-5)
    assert model.optimizer.iterations == int(FIT[f"{name}/iterations"])
    if f"{name}/learning_rate" in FIT.files:
        logged = history.history["learning_rate"]
        assert all(type(v) is float for v in logged)
        if isinstance(model.optimizer._learning_rate, schedules.LearningRateSchedule):
            np.testing.assert_allclose(logged, FIT[f"{name}/learning_rate"], rtol=1e-6)
        else:
            assert logged == FIT[f"{name}/learning_rate"].tolist()
    else:
        assert "learning_rate" not in history.history  # as Keras: only the callbacks log it


def test_history_learning_rate_is_the_schedule_after_each_epoch(ops):
    """Independent of Keras: with a schedule, the logged value is the schedule at the step count
    reached at the epoch's end (the rate of the next step)."""
    _, history = fit_like_keras("sgd_exponential_staircase", ops.name)
    schedule = schedules.ExponentialDecay(0.5, decay_steps=3, decay_rate=0.5, staircase=True)
    steps_per_epoch = 4
    expected = [float(np.float32(schedule((e + 1) * steps_per_epoch))) for e in range(6)]
    assert history.history["learning_rate"] == expected


def test_csv_logger_in_a_fit_writes_the_history(tmp_path, ops):
    model = Sequential([GRU(4, input_shape=(6, 3)), Dense(1)], device=ops.name)
    model.set_weights([FIT[f"initial_{i}"] for i in range(5)])
    model.compile(optimizer=optimizers.SGD(0.3), loss="mse", metrics=["mae"])
    path = tmp_path / "log.csv"
    history = model.fit(
        FIT["x"], FIT["y"], batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25,
        callbacks=[callbacks.LearningRateScheduler(_halve_after_two), callbacks.CSVLogger(path)],
    )
    lines = path.read_bytes().decode().split("\r\n")
    assert lines[0] == "epoch,learning_rate,loss,mae,val_loss,val_mae" and lines[-1] == ""
    for epoch, line in enumerate(lines[1:-1]):
        cells = line.split(",")
        assert int(cells[0]) == epoch
        for key, cell in zip(lines[0].split(",")[1:], cells[1:]):
            assert float(cell) == history.history[key][epoch]
