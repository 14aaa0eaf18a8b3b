"""Record which callback hooks Keras 3 calls, in what order, during ``fit`` with validation
data and during ``evaluate(callbacks=...)``, and whether its per-epoch progress line shows the
learning rate that ReduceLROnPlateau logs. Writes tests/data/keras_hooks.json.

Run with Keras 3 installed (not a dependency of cgru):
    python tests/make_keras_golden_hooks.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent / "data" / "keras_hooks.json"

HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end"]
CASE = {"samples": 10, "val_samples": 6, "batch_size": 4, "epochs": 2}


def model() -> keras.Model:
    m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return m


def recorder(events: list) -> keras.callbacks.LambdaCallback:
    def hook(name):
        def record(*args, **kwargs):
            events.append([name, *(a for a in args if isinstance(a, int))])
        return record

    return keras.callbacks.LambdaCallback(**{name: hook(name) for name in HOOKS})


def main() -> None:
    x, y = np.zeros((CASE["samples"], 1)), np.zeros((CASE["samples"], 1))
    vx, vy = np.zeros((CASE["val_samples"], 1)), np.zeros((CASE["val_samples"], 1))
    fit_events: list = []
    model().fit(x, y, batch_size=CASE["batch_size"], epochs=CASE["epochs"], verbose=0, shuffle=False,
                validation_data=(vx, vy), callbacks=[recorder(fit_events)])
    evaluate_events: list = []
    model().evaluate(vx, vy, batch_size=CASE["batch_size"], verbose=0, callbacks=[recorder(evaluate_events)])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        model().fit(x, y, batch_size=CASE["batch_size"], epochs=1, verbose=2,
                    callbacks=[keras.callbacks.ReduceLROnPlateau()])
    OUT.write_text(json.dumps({
        **CASE,
        "fit_events": fit_events,
        "evaluate_events": evaluate_events,
        "progress_shows_learning_rate": "learning_rate" in printed.getvalue(),
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
