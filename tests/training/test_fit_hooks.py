"""The callback hooks fit and evaluate call, in Keras 3's order (tests/data/keras_hooks.json,
made by tests/make_keras_golden_hooks.py), and what fit's progress line shows."""

import json
import warnings

import numpy as np
import pytest
from paths import DATA

from cgru import Dense, Sequential, callbacks, optimizers

GOLDEN = json.loads((DATA / "keras_hooks.json").read_text())
HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end"]


def model() -> Sequential:
    m = Sequential([Dense(1, input_shape=(1,))])
    m.compile(optimizer=optimizers.SGD(0.01), loss="mse")
    return m


def recorder(events: list) -> callbacks.LambdaCallback:
    def hook(name):
        return lambda *args, **kwargs: events.append([name, *(a for a in args if isinstance(a, int))])

    return callbacks.LambdaCallback(**{name: hook(name) for name in HOOKS})


def test_fit_with_validation_calls_the_hooks_keras_calls():
    events: list = []
    x, y = np.zeros((GOLDEN["samples"], 1)), np.zeros((GOLDEN["samples"], 1))
    vx, vy = np.zeros((GOLDEN["val_samples"], 1)), np.zeros((GOLDEN["val_samples"], 1))
    model().fit(x, y, batch_size=GOLDEN["batch_size"], epochs=GOLDEN["epochs"], verbose=0, shuffle=False,
                validation_data=(vx, vy), callbacks=[recorder(events)])
    assert events == GOLDEN["fit_events"]


def test_evaluate_calls_the_test_hooks_keras_calls():
    events: list = []
    vx, vy = np.zeros((GOLDEN["val_samples"], 1)), np.zeros((GOLDEN["val_samples"], 1))
    model().evaluate(vx, vy, batch_size=GOLDEN["batch_size"], verbose=0, callbacks=[recorder(events)])
    assert events == GOLDEN["evaluate_events"]


def test_test_batch_logs_are_the_running_logs():
    seen: list = []
    m = model()
    m.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x = np.arange(6, dtype="float32")[:, None]
    spy = callbacks.LambdaCallback(on_test_batch_end=lambda batch, logs: seen.append(dict(logs)))
    final = m.evaluate(x, 2 * x, batch_size=4, callbacks=[spy], return_dict=True)
    assert [sorted(logs) for logs in seen] == [["loss", "mae"]] * 2
    assert seen[-1] == pytest.approx(final)


def test_fit_progress_line_shows_what_callbacks_log(capsys):
    x, y = np.zeros((GOLDEN["samples"], 1)), np.zeros((GOLDEN["samples"], 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ReduceLROnPlateau warns that val_loss is missing
        model().fit(x, y, batch_size=GOLDEN["batch_size"], epochs=1, verbose=2,
                    callbacks=[callbacks.ReduceLROnPlateau()])
    assert ("learning_rate" in capsys.readouterr().out) == GOLDEN["progress_shows_learning_rate"]
