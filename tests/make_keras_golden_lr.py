"""Record what Keras 3 does with learning rates, for cgru's schedules and learning-rate callbacks
(needs keras 3 and a backend, e.g. tensorflow-cpu; the suite only reads the files):

    python tests/make_keras_golden_lr.py        # with an interpreter that has keras 3

Writes, in tests/data/:

- ``keras_lr.json``:
  ``schedules``: each ``keras.optimizers.schedules`` class with several argument sets: its
  ``get_config()``, ``serialize()`` and its value at every step of ``STEPS`` (called with an
  int64 step, as the optimizer calls it with its iteration count); ``schedule_errors``: the
  arguments Keras refuses and its message;
  ``reduce_lr_on_plateau``: ``keras.callbacks.ReduceLROnPlateau`` driven by hand (no training)
  over fixed monitored values, on a model compiled with ``SGD(learning_rate)``: per epoch the
  logged ``learning_rate``, the learning rate after the epoch, ``wait``, ``cooldown_counter``,
  ``best``, what it printed and warned, per ``fit`` (a scenario may reuse the callback);
  ``learning_rate_scheduler``: ``keras.callbacks.LearningRateScheduler`` driven the same way
  with the functions of ``LR_FUNCTIONS`` (tests/keras_callback_cases.py's, which the test uses);
  ``lr_setter``: what setting a float on an optimizer built with a schedule raises;
  ``csv_logger``: the bytes ``keras.callbacks.CSVLogger`` writes for fixed epoch logs
  (several fits into one file, ``append``, separators, missing and extra keys, odd values);
  ``lambda_events``: the hooks a ``keras.callbacks.LambdaCallback`` sees during a ``fit``.
- ``keras_lr_fit.npz``: a GRU(4) + Dense(1) model trained by Keras's ``fit`` (batches of 8 of
  32 samples, no shuffling) with each optimizer and learning-rate setting of ``FITS`` (stored
  as JSON under ``fits``): data, initial and final weights, the loss and ``learning_rate``
  histories, the optimizer's final step count.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras_callback_cases import (  # noqa: E402
    LR_FUNCTIONS,
    drive_lr_scheduler,
    drive_reduce_lr,
    fit_setup,
    plain,
)

DATA = Path(__file__).parent / "data"
SCHEDULES = keras.optimizers.schedules
STEPS = list(range(0, 61)) + [99, 100, 101, 250, 1000]

# name: (class name, arguments)
SCHEDULE_CASES = {
    "exponential": ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}),
    "exponential_staircase": (
        "ExponentialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.9, "staircase": True},
    ),
    "exponential_growth_float_steps": (
        "ExponentialDecay", {"initial_learning_rate": 0.01, "decay_steps": 2.5, "decay_rate": 1.5},
    ),
    "piecewise": ("PiecewiseConstantDecay", {"boundaries": [10, 20], "values": [1.0, 0.5, 0.1]}),
    "piecewise_one_boundary": ("PiecewiseConstantDecay", {"boundaries": [0], "values": [0.1, 0.01]}),
    "piecewise_float_boundaries": (
        "PiecewiseConstantDecay", {"boundaries": [2.5, 7.5, 30], "values": [0.3, 0.2, 0.1, 0.05]},
    ),
    "piecewise_equal_boundaries": (
        "PiecewiseConstantDecay", {"boundaries": [5, 5, 8], "values": [1.0, 2.0, 3.0, 4.0]},
    ),
    "polynomial_defaults": ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 10}),
    "polynomial_sqrt": (
        "PolynomialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 25, "end_learning_rate": 0.01, "power": 0.5},
    ),
    "polynomial_cycle": (
        "PolynomialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 8, "end_learning_rate": 0.001, "power": 2.0,
         "cycle": True},
    ),
    "polynomial_rising": (
        "PolynomialDecay", {"initial_learning_rate": 0.001, "decay_steps": 12, "end_learning_rate": 0.1},
    ),
    "inverse_time": ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 5, "decay_rate": 0.5}),
    "inverse_time_staircase": (
        "InverseTimeDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 1.0, "decay_rate": 0.5, "staircase": True},
    ),
    "inverse_time_staircase_7": (
        "InverseTimeDecay",
        {"initial_learning_rate": 0.5, "decay_steps": 7, "decay_rate": 2.0, "staircase": True},
    ),
    "cosine": ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 20}),
    "cosine_alpha": ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 30, "alpha": 0.1}),
    "cosine_warmup": (
        "CosineDecay",
        {"initial_learning_rate": 0.0, "decay_steps": 20, "warmup_target": 0.1, "warmup_steps": 5},
    ),
    "cosine_warmup_alpha": (
        "CosineDecay",
        {"initial_learning_rate": 0.01, "decay_steps": 40, "alpha": 0.2, "warmup_target": 0.05,
         "warmup_steps": 10},
    ),
    "cosine_warmup_down": (
        "CosineDecay",
        {"initial_learning_rate": 0.2, "decay_steps": 10, "warmup_target": 0.1, "warmup_steps": 4},
    ),
    "cosine_warmup_zero_steps": (
        "CosineDecay", {"initial_learning_rate": 0.3, "decay_steps": 15, "warmup_target": 0.1},
    ),
    "named": (
        "ExponentialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5, "name": "my_decay"},
    ),
}

SCHEDULE_ERRORS = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 0, "decay_rate": 0.5}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": -3, "decay_rate": 0.5}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 0, "decay_rate": 0.5}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": -1}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 0}),
    ("PiecewiseConstantDecay", {"boundaries": [1, 2], "values": [0.1, 0.2]}),
    ("PiecewiseConstantDecay", {"boundaries": [1], "values": [0.1, 0.2, 0.3]}),
]

NAN = float("nan")

# name: (ReduceLROnPlateau arguments, initial learning rate, monitored value per epoch
# (None: missing from the logs), fits)
REDUCE_LR = {
    "plateau": (
        {"monitor": "val_loss", "factor": 0.5, "patience": 2, "verbose": 1},
        0.1, [1.0, 0.9, 0.9, 0.95, 0.91, 0.8, 0.85, 0.85, 0.85, 0.85], 1,
    ),
    "defaults": ({}, 0.01, [1.0] * 13, 1),
    "patience_zero": (
        {"monitor": "loss", "patience": 0, "verbose": 1}, 0.2, [3.0, 2.0, 2.5, 2.5, 1.0, 1.5], 1,
    ),
    "cooldown": (
        {"monitor": "loss", "factor": 0.2, "patience": 1, "cooldown": 2, "verbose": 1},
        0.5, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.6, 0.6, 0.6, 0.6], 1,
    ),
    "min_lr_floor": (
        {"monitor": "loss", "factor": 0.1, "patience": 1, "min_lr": 1e-4, "verbose": 1},
        0.1, [1.0] * 10, 1,
    ),
    "min_lr_float32_edge": (
        {"monitor": "loss", "factor": 0.1, "patience": 0, "min_lr": 1e-4, "verbose": 1},
        0.001, [1.0, 1.0, 1.0, 1.0], 1,
    ),
    "min_lr_equal_in_float32": (  # float32(min_lr) is the learning rate: no reduction
        {"monitor": "loss", "factor": 0.5, "patience": 0, "min_lr": 9.9999997e-05, "verbose": 1},
        1e-4, [1.0, 1.0, 1.0], 1,
    ),
    "min_delta": (
        {"monitor": "loss", "factor": 0.5, "patience": 1, "min_delta": 0.1, "verbose": 1},
        0.1, [1.0, 0.95, 0.85, 0.8, 0.75, 0.6, 0.55], 1,
    ),
    "max_mode": (
        {"monitor": "val_acc", "mode": "max", "factor": 0.3, "patience": 1, "verbose": 1},
        0.05, [0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.69], 1,
    ),
    "missing_monitor": ({"monitor": "val_loss", "patience": 0}, 0.1, [None, None, 1.0, None], 1),
    "two_fits": (
        {"monitor": "loss", "factor": 0.5, "patience": 1, "cooldown": 1},
        0.1, [1.0, 1.0, 1.0, 0.9, 0.9], 2,
    ),
}

# name: (function name in LR_FUNCTIONS, initial learning rate, epochs, verbose)
LR_SCHEDULER = {
    "halve_after_two": ("halve_after_two", 0.1, 6, 1),
    "epoch_only": ("epoch_only", 0.5, 5, 1),
    "threshold_at_float32": ("halve_while_above_1e-3", 0.004, 6, 0),
    "exponential": ("exponential", 0.01, 15, 0),
    "float32_output": ("float32_output", 0.1, 3, 1),
}


# name: ([(logs per epoch, ...) per fit], CSVLogger arguments per fit, text in the file before)
CSV_CASES = {
    "no_val_keys": ([[{"loss": 0.5, "mae": 0.25}, {"loss": 0.125, "mae": 0.0625}]], [{}], None),
    "val_keys_and_lr": (
        [[{"loss": 0.123456789, "val_loss": 1e-10, "learning_rate": 0.0010000000474974513},
          {"loss": 123456789.5, "val_loss": 2.5e-5, "learning_rate": 0.0005000000237487257}]],
        [{}], None,
    ),
    "missing_and_extra_keys": (
        [[{"loss": 1.0, "val_loss": 2.0, "mse": 3.0}, {"loss": 0.5, "extra": 9.0}, {"mse": 1.5}]], [{}], None,
    ),
    "odd_values": (
        [[{"loss": NAN, "val_loss": float("inf"), "note": "a,b", "vec": [1.5, 2.0], "count": 3,
           "neg": -float("inf"), "tiny": 5e-324}]],
        [{}], None,
    ),
    "semicolon": (
        [[{"loss": 0.5, "val_loss": 0.75}, {"loss": 0.25, "val_loss": 0.5}]], [{"separator": ";"}], None,
    ),
    "tab": ([[{"b": 1.0, "a": 2.0}]], [{"separator": "\t"}], None),
    "empty_logs": ([[{}, {}]], [{}], None),
    "overwrite": ([[{"loss": 0.5}], [{"loss": 0.25}]], [{}, {}], None),
    "append_second_fit": (
        [[{"loss": 0.5, "val_loss": 0.6}], [{"loss": 0.25, "val_loss": 0.3}]], [{}, {"append": True}], None,
    ),
    "append_to_empty_file": ([[{"loss": 0.5}]], [{"append": True}], ""),
    "append_to_missing_file": ([[{"loss": 0.5}]], [{"append": True}], None),
    "append_to_other_text": ([[{"loss": 0.5}]], [{"append": True}], "header,of,another\r\n"),
}

# name: (optimizer class, optimizer arguments (learning_rate may be (schedule class, arguments)),
# callbacks [(name, arguments)], epochs)
FITS = {
    "sgd_exponential_staircase": (
        "SGD", {"learning_rate": ("ExponentialDecay",
                                  {"initial_learning_rate": 0.5, "decay_steps": 3, "decay_rate": 0.5,
                                   "staircase": True})},
        [("ReduceLROnPlateau", {"monitor": "loss", "patience": 100})], 6,
    ),
    "adam_cosine_warmup": (
        "Adam", {"learning_rate": ("CosineDecay",
                                   {"initial_learning_rate": 0.001, "decay_steps": 12, "alpha": 0.1,
                                    "warmup_target": 0.02, "warmup_steps": 6})},
        [("ReduceLROnPlateau", {"monitor": "loss", "patience": 100})], 6,
    ),
    "rmsprop_polynomial_cycle": (
        "RMSprop", {"learning_rate": ("PolynomialDecay",
                                      {"initial_learning_rate": 0.01, "decay_steps": 5,
                                       "end_learning_rate": 0.001, "power": 2.0, "cycle": True})},
        [], 5,
    ),
    "sgd_momentum_scheduler": (
        "SGD", {"learning_rate": 0.3, "momentum": 0.5},
        [("LearningRateScheduler", {"schedule": "halve_after_two"})], 6,
    ),
    "sgd_reduce_on_plateau": (
        "SGD", {"learning_rate": 0.3},
        [("ReduceLROnPlateau", {"monitor": "loss", "factor": 0.5, "patience": 0, "min_delta": 0.07})], 10,
    ),
}


#: TensorFlow's warnings about NumPy 2 say nothing about the callbacks
TF_NUMPY_WARNING = "__array__"


def schedules() -> dict:
    out = {}
    for name, (cls, kwargs) in SCHEDULE_CASES.items():
        schedule = getattr(SCHEDULES, cls)(**kwargs)
        values = [float(schedule(keras.ops.convert_to_tensor(step, dtype="int64"))) for step in STEPS]
        out[name] = {"class_name": cls, "kwargs": kwargs, "config": schedule.get_config(),
                     "serialized": SCHEDULES.serialize(schedule), "steps": STEPS, "values": values}
    return out


def schedule_errors() -> list:
    out = []
    for cls, kwargs in SCHEDULE_ERRORS:
        try:
            getattr(SCHEDULES, cls)(**kwargs)
        except ValueError as exc:
            out.append({"class_name": cls, "kwargs": kwargs, "error": str(exc)})
        else:
            raise AssertionError(f"Keras accepted {cls}({kwargs})")
    return out


def compiled_model(optimizer) -> keras.Model:
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def reduce_lr_on_plateau() -> dict:
    out = {}
    for name, (kwargs, lr, values, fits) in REDUCE_LR.items():
        model = compiled_model(keras.optimizers.SGD(learning_rate=lr))
        callback = keras.callbacks.ReduceLROnPlateau(**kwargs)
        monitor = kwargs.get("monitor", "val_loss")
        records = drive_reduce_lr(callback, model, monitor, values, fits, ignore=TF_NUMPY_WARNING)
        out[name] = {"kwargs": kwargs, "learning_rate": lr, "values": values, "fits": records}
    return out


def learning_rate_scheduler() -> dict:
    out = {}
    for name, (function, lr, epochs, verbose) in LR_SCHEDULER.items():
        model = compiled_model(keras.optimizers.SGD(learning_rate=lr))
        callback = keras.callbacks.LearningRateScheduler(LR_FUNCTIONS[function], verbose=verbose)
        record = drive_lr_scheduler(callback, model, epochs, ignore=TF_NUMPY_WARNING)
        out[name] = {"function": function, "learning_rate": lr, "verbose": verbose, **record}
    model = compiled_model(keras.optimizers.SGD(0.1))
    callback = keras.callbacks.LearningRateScheduler(lambda epoch, lr: None)
    callback.set_model(model)
    try:
        callback.on_epoch_begin(0, {})
    except ValueError as exc:
        out["_none_output_error"] = str(exc)
    return out


def lr_setter() -> dict:
    optimizer = keras.optimizers.SGD(SCHEDULES.ExponentialDecay(0.1, 10, 0.5))
    try:
        optimizer.learning_rate = 0.1
    except TypeError as exc:
        return {"float_on_schedule": str(exc)}
    raise AssertionError("Keras let a float replace a schedule")


def csv_logger() -> dict:
    out = {}
    for name, (fits, kwargs_per_fit, before) in CSV_CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "log.csv")
            if before is not None:
                with open(path, "w", newline="") as f:
                    f.write(before)
            for logs_per_epoch, kwargs in zip(fits, kwargs_per_fit):
                callback = keras.callbacks.CSVLogger(path, **kwargs)
                callback.on_train_begin({})
                for epoch, logs in enumerate(logs_per_epoch):
                    callback.on_epoch_end(epoch, dict(logs))
                callback.on_train_end({})
            with open(path, "rb") as f:
                text = f.read().decode("utf-8")
        out[name] = {"fits": [[{k: plain(v) for k, v in logs.items()} for logs in fit] for fit in fits],
                     "kwargs": kwargs_per_fit, "before": before, "file": text}
    return out


def lambda_events() -> dict:
    events = []

    def hook(name):
        def record(*args, **kwargs):
            index = [a for a in args if isinstance(a, int)]
            events.append([name, *index])
        return record

    hooks = ["on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end", "on_train_batch_begin",
             "on_train_batch_end"]
    callback = keras.callbacks.LambdaCallback(**{name: hook(name) for name in hooks})
    aliases = keras.callbacks.LambdaCallback(on_batch_begin=hook("on_batch_begin"),
                                             on_batch_end=hook("on_batch_end"))
    model = compiled_model(keras.optimizers.SGD(0.01))
    model.fit(np.zeros((10, 1)), np.zeros((10, 1)), batch_size=4, epochs=2, verbose=0, shuffle=False,
              callbacks=[callback, aliases])
    return {"samples": 10, "batch_size": 4, "epochs": 2, "events": events}


def make_fit_data():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((32, 6, 3)).astype("float32")
    y = (np.tanh(x[:, :, 0].sum(axis=1, keepdims=True)) + 0.3 * x[:, -1, 1:2]).astype("float32")
    return x, y


def fits() -> dict:
    x, y = make_fit_data()
    arrays = {"x": x, "y": y, "fits": np.array(json.dumps(FITS))}
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.GRU(4), keras.layers.Dense(1)])
    initial = model.get_weights()
    arrays.update({f"initial_{i}": w for i, w in enumerate(initial)})
    for name, spec in FITS.items():
        optimizer, made, epochs = fit_setup(spec, keras.optimizers, SCHEDULES, keras.callbacks)
        callbacks = spec[2]
        model.set_weights(initial)
        model.compile(optimizer=optimizer, loss="mse")
        history = model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, callbacks=made, verbose=0)
        losses = np.asarray(history.history["loss"])
        for cb_name, cb_kwargs in callbacks:
            if cb_name == "ReduceLROnPlateau" and cb_kwargs["patience"] < 100:
                min_delta, best = cb_kwargs["min_delta"], losses[0]
                for value in losses[1:]:  # every decision must be clear of the min_delta boundary
                    assert abs((value + min_delta) - best) > 2e-4, f"{name}: a borderline decision"
                    best = min(best, value) if value + min_delta < best else best
        arrays[f"{name}/losses"] = losses
        if "learning_rate" in history.history:
            arrays[f"{name}/learning_rate"] = np.asarray(history.history["learning_rate"])
        arrays.update({f"{name}/final_{i}": w for i, w in enumerate(model.get_weights())})
        arrays[f"{name}/iterations"] = np.asarray(int(model.optimizer.iterations))
    return arrays


def main() -> None:
    DATA.mkdir(exist_ok=True)
    golden = {
        "keras_version": keras.__version__,
        "schedules": schedules(),
        "schedule_errors": schedule_errors(),
        "reduce_lr_on_plateau": reduce_lr_on_plateau(),
        "learning_rate_scheduler": learning_rate_scheduler(),
        "lr_setter": lr_setter(),
        "csv_logger": csv_logger(),
        "lambda_events": lambda_events(),
    }
    (DATA / "keras_lr.json").write_text(json.dumps(golden, indent=1) + "\n")
    np.savez(DATA / "keras_lr_fit.npz", **fits())
    print("wrote keras_lr.json, keras_lr_fit.npz")


if __name__ == "__main__":
    main()
