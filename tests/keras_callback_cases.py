"""What the Keras 3 callback golden scripts (tests/make_keras_golden.py,
tests/make_keras_golden_lr.py) and the callback tests share, so that cgru's callbacks are driven
and recorded exactly as Keras's were:

- :func:`captured`: the printed lines and warnings of a block;
- :func:`drive`, :func:`drive_reduce_lr`, :func:`drive_lr_scheduler`: a callback driven by hand
  over fixed epochs, as ``fit`` would, and what it did;
- :data:`LR_FUNCTIONS`: the LearningRateScheduler functions, by name;
- :func:`fit_setup`: a learning-rate fit's optimizer and callbacks, from its spec.

Imports neither library.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


@contextlib.contextmanager
def captured(ignore: str | None = None) -> Iterator[dict]:
    """A record ``{"stdout": [...], "warnings": [...]}`` of the non-blank printed lines
    (stripped) and the warning messages of the ``with`` block, filled when it ends; ``ignore``
    leaves out the warnings whose message contains it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record: dict = {"stdout": [], "warnings": []}
        yield record
    record["stdout"] = [line.strip() for line in out.getvalue().splitlines() if line.strip()]
    messages = [str(w.message) for w in caught]
    record["warnings"] = [m for m in messages if ignore is None or ignore not in m]


def drive(
    callback: Any, model: Any, monitor: str, values: list, fits: int, on_epoch: Callable | None = None
) -> list[dict]:
    """Drive ``callback`` over ``values`` (the monitored value per epoch; None: missing from
    the logs) ``fits`` times as ``fit`` would, the model's one (1, 1) weight set to the epoch
    number before each epoch ends; one record per fit: :func:`captured`'s, ``epochs_run`` and
    ``final_weight_epoch`` (the weight after ``on_train_end``), then ``on_epoch(record,
    callback)``."""
    callback.set_model(model)
    records = []
    for _ in range(fits):
        model.stop_training = False
        with captured() as record:
            callback.on_train_begin({})
            run = 0
            for epoch, value in enumerate(values):
                model.set_weights([np.full((1, 1), float(epoch), dtype="float32")])
                callback.on_epoch_begin(epoch, {})
                logs = {"other": 0.0} if value is None else {monitor: value, "other": 0.0}
                callback.on_epoch_end(epoch, logs)
                run += 1
                if model.stop_training:
                    break
            callback.on_train_end({})
        record["epochs_run"] = run
        record["final_weight_epoch"] = int(model.get_weights()[0][0, 0])
        if on_epoch is not None:
            on_epoch(record, callback)
        records.append(record)
    return records


def drive_reduce_lr(
    callback: Any, model: Any, monitor: str, values: list, fits: int, ignore: str | None = None
) -> list[dict]:
    """Drive a ReduceLROnPlateau ``callback`` of a compiled ``model`` over ``values`` (the
    monitored value per epoch; None: missing from the logs) ``fits`` times; one record per fit:
    :func:`captured`'s (``ignore`` passed on) and ``epochs``, per epoch the logged learning rate,
    the optimizer's after the epoch, ``wait``, ``cooldown_counter`` and ``best``."""
    callback.set_model(model)
    records = []
    for _ in range(fits):
        epochs = []
        with captured(ignore) as record:
            callback.on_train_begin({})
            for epoch, value in enumerate(values):
                callback.on_epoch_begin(epoch, {})
                logs = {"other": 0.0} if value is None else {monitor: value}
                callback.on_epoch_end(epoch, logs)
                epochs.append({
                    "logged": logs["learning_rate"],
                    "after": float(model.optimizer.learning_rate),
                    "wait": callback.wait,
                    "cooldown_counter": callback.cooldown_counter,
                    "best": plain(callback.best),
                })
            callback.on_train_end({})
        record["epochs"] = epochs
        records.append(record)
    return records


def drive_lr_scheduler(callback: Any, model: Any, epochs: int, ignore: str | None = None) -> dict:
    """Drive a LearningRateScheduler ``callback`` of a compiled ``model`` over ``epochs``
    epochs: :func:`captured`'s record (``ignore`` passed on) and ``epochs``, per epoch the
    optimizer's learning rate during it and the logged one."""
    callback.set_model(model)
    rows = []
    with captured(ignore) as record:
        callback.on_train_begin({})
        for epoch in range(epochs):
            callback.on_epoch_begin(epoch, {})
            during = float(model.optimizer.learning_rate)
            logs = {"loss": 1.0}
            callback.on_epoch_end(epoch, logs)
            rows.append({"during": during, "logged": logs["learning_rate"]})
        callback.on_train_end({})
    record["epochs"] = rows
    return record


def plain(value: Any) -> Any:
    """JSON-ready: NumPy scalars become Python's (NaN and infinities are written as JSON's
    NaN/Infinity tokens, which Python's json reads back)."""
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


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


#: The LearningRateScheduler functions, by the name the golden data records.
LR_FUNCTIONS = {
    "halve_after_two": _halve_after_two,
    "epoch_only": _epoch_only,
    "halve_while_above_1e-3": _halve_while_above,
    "exponential": _exponential,
    "float32_output": _float32_output,
}


def fit_setup(spec: Any, optimizers: Any, schedules: Any, callbacks: Any) -> tuple[Any, list, int]:
    """The optimizer, the callbacks and the epochs of a learning-rate fit ``spec`` (``(optimizer
    class name, its arguments, [(callback class name, its arguments)], epochs)``, as
    tests/make_keras_golden_lr.py's ``FITS`` or its JSON copy), made with either library's
    ``optimizers``, ``schedules`` and ``callbacks`` modules. A ``learning_rate`` of ``(schedule
    class name, its arguments)`` is that schedule; a callback's ``"schedule"`` names a function
    of :data:`LR_FUNCTIONS`."""
    optimizer_name, optimizer_kwargs, callback_specs, epochs = spec
    kwargs = dict(optimizer_kwargs)
    if isinstance(kwargs["learning_rate"], (list, tuple)):
        schedule_name, schedule_kwargs = kwargs["learning_rate"]
        kwargs["learning_rate"] = getattr(schedules, schedule_name)(**schedule_kwargs)
    made = []
    for callback_name, callback_kwargs in callback_specs:
        callback_kwargs = dict(callback_kwargs)
        if "schedule" in callback_kwargs:
            callback_kwargs["schedule"] = LR_FUNCTIONS[callback_kwargs["schedule"]]
        made.append(getattr(callbacks, callback_name)(**callback_kwargs))
    return getattr(optimizers, optimizer_name)(**kwargs), made, epochs
