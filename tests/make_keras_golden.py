"""Record what Keras 3 does with cgru's Keras-compatible training tools (needs keras 3 and a
backend, e.g. tensorflow-cpu; the suite only reads the files, so it runs without them):

    python tests/make_keras_golden.py        # with an interpreter that has keras 3

Writes, in tests/data/:

- ``keras_callbacks.json``:
  ``early_stopping``: ``keras.callbacks.EarlyStopping`` driven by hand over fixed sequences of
  monitored values (the model's one weight is set to the epoch number before each epoch end,
  so the weight left after ``on_train_end`` names the epoch whose weights were restored): the
  epochs run, ``stopped_epoch``, ``best_epoch``, ``best``, ``wait``, that epoch and what it
  printed, per ``fit`` (a scenario may run several, reusing the callback);
  ``monitor_direction``: which way ``mode="auto"`` goes for monitor names, with a compiled
  model (metrics ``accuracy``, ``acc``, ``mae``), or the error;
  ``model_checkpoint``: ``keras.callbacks.ModelCheckpoint(save_best_only=True)`` driven by hand
  (the model's ``save`` records its calls): the 1-based epochs saved and the messages;
  ``optimizer_clipping``: which combinations of ``clipnorm``/``clipvalue``/``global_clipnorm``
  Keras refuses, with its message.
- ``keras_accuracy.json``: ``metrics=["accuracy", "acc"]`` and the explicit accuracy metrics
  through ``compile``/``evaluate`` of an identity model (so the compile-time resolution from
  the shapes of targets and outputs is Keras's own), for fixed ``y_true``/``y_pred`` of many
  shape and loss combinations: the class "accuracy" resolves to and each value.
- ``keras_early_stopping_fit.npz``: a GRU(4) + Dense(1) model trained by Keras's ``fit`` with
  full-batch SGD and ``EarlyStopping(monitor="loss", min_delta=..., patience=2,
  restore_best_weights=True)``: data, initial and final weights, the loss history, the
  stopped and best epochs.
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
from keras.src.trainers import compile_utils  # noqa: E402
from keras_callback_cases import drive  # noqa: E402

DATA = Path(__file__).parent / "data"
NAN, INF = float("nan"), float("inf")

# name: (EarlyStopping arguments, monitored value per epoch (None: missing from the logs), fits)
EARLY_STOPPING = {
    "min_delta_slow_decrease": (
        {"monitor": "loss", "min_delta": 0.05, "patience": 2, "restore_best_weights": True},
        [1.0, 0.97, 0.95, 0.93, 0.91, 0.89, 0.87, 0.85],
        1,
    ),
    "min_delta_negative_is_absolute": (
        {"monitor": "loss", "min_delta": -0.05, "patience": 2},
        [1.0, 0.97, 0.94, 0.90, 0.86, 0.80],
        1,
    ),
    "min_delta_max_mode": (
        {"monitor": "val_score", "mode": "max", "min_delta": 0.02, "patience": 1,
         "restore_best_weights": True},
        [0.5, 0.51, 0.53, 0.535, 0.54, 0.6],
        1,
    ),
    "min_delta_exact_boundary": (
        {"monitor": "loss", "min_delta": 0.25, "patience": 1},
        [2.0, 1.75, 1.5, 1.0, 0.75, 0.5],
        1,
    ),
    "patience_zero": ({"monitor": "loss"}, [3.0, 2.0, 2.5, 1.0], 1),
    "ties_do_not_improve": ({"monitor": "val_loss", "patience": 2}, [1.0, 1.0, 1.0, 0.5, 0.4], 1),
    "baseline_never_beaten": (
        {"monitor": "val_loss", "baseline": 0.5, "patience": 3, "restore_best_weights": True},
        [0.9, 0.8, 0.7, 0.6, 0.55, 0.52],
        1,
    ),
    "baseline_beaten_later": (
        {"monitor": "val_loss", "baseline": 0.5, "patience": 2, "restore_best_weights": True},
        [0.9, 0.7, 0.45, 0.44, 0.46, 0.47, 0.48],
        1,
    ),
    "start_from_epoch": (
        {"monitor": "loss", "patience": 2, "start_from_epoch": 3, "restore_best_weights": True},
        [5.0, 4.0, 3.0, 2.0, 2.5, 2.6, 2.7, 1.0],
        1,
    ),
    "restore_without_stopping": (
        {"monitor": "loss", "patience": 10, "restore_best_weights": True},
        [3.0, 1.0, 2.0, 2.5],
        1,
    ),
    "restore_first_when_nothing_improves": (
        {"monitor": "val_score", "mode": "max", "patience": 2, "restore_best_weights": True},
        [5.0, 4.0, 3.0, 2.0, 1.0],
        1,
    ),
    "verbose_messages": (
        {"monitor": "loss", "patience": 1, "verbose": 1, "restore_best_weights": True},
        [2.0, 1.0, 1.5, 1.7, 0.5],
        1,
    ),
    "verbose_without_stopping": (
        {"monitor": "loss", "patience": 5, "verbose": 1, "restore_best_weights": True},
        [2.0, 1.0, 1.5],
        1,
    ),
    "missing_values": ({"monitor": "val_loss", "patience": 1}, [None, 2.0, None, 3.0, 4.0], 1),
    "nan_first": (
        {"monitor": "val_loss", "patience": 2, "restore_best_weights": True},
        [NAN, 3.0, 2.0, 1.0, 0.5],
        1,
    ),
    "nan_later": (
        {"monitor": "val_loss", "patience": 2, "restore_best_weights": True},
        [3.0, NAN, 2.0, NAN, NAN, NAN],
        1,
    ),
    "infinities": ({"monitor": "loss", "patience": 1}, [INF, 5.0, INF, 4.0, 4.5, 4.6], 1),
    "below_float32_resolution": ({"monitor": "loss", "patience": 1}, [0.3, 0.3 - 1e-9, 0.3 - 2e-9], 1),
    "reused_across_fits": (
        {"monitor": "loss", "patience": 1, "restore_best_weights": True}, [2.0, 1.0, 3.0, 4.0], 2
    ),
}

# name: (ModelCheckpoint arguments beyond the filepath, monitored value per epoch, fits)
MODEL_CHECKPOINT = {
    "improving": ({"monitor": "val_loss"}, [3.0, 2.0, 2.0, 4.0, 1.0], 1),
    "max_mode": ({"monitor": "val_score", "mode": "max"}, [0.5, 0.7, 0.6, 0.7, 0.8], 1),
    "nan_first": ({"monitor": "val_loss"}, [NAN, 3.0, 2.0, 4.0, 1.0], 1),
    "nan_first_threshold_inf": (
        {"monitor": "val_loss", "initial_value_threshold": INF}, [NAN, 3.0, 2.0, 4.0, 1.0], 1
    ),
    "nan_later": ({"monitor": "val_loss"}, [3.0, NAN, 2.0, NAN, 1.0], 1),
    "threshold": ({"monitor": "val_loss", "initial_value_threshold": 2.5}, [3.0, 2.6, 2.4, 2.5, 1.0], 1),
    "best_kept_across_fits": ({"monitor": "val_loss"}, [3.0, 2.0, 2.5], 2),
    "verbose_messages": ({"monitor": "val_loss", "verbose": 1}, [3.0, 2.0, 2.5, 1.0], 1),
}

# name: (loss, y_true shape, y_pred shape, how y_true is drawn)
ACCURACY_CASES = {
    "multilabel_sigmoid_bce": ("binary_crossentropy", (20, 3), (20, 3), "multilabel"),
    "two_unit_onehot_bce": ("binary_crossentropy", (20, 2), (20, 2), "onehot"),
    "onehot_softmax_cce": ("categorical_crossentropy", (20, 4), (20, 4), "onehot"),
    "sparse_ids": ("sparse_categorical_crossentropy", (20,), (20, 4), "ids"),
    "sparse_ids_trailing_1": ("sparse_categorical_crossentropy", (20, 1), (20, 4), "ids"),
    "single_sigmoid_bce": ("binary_crossentropy", (20, 1), (20, 1), "multilabel"),
    "single_sigmoid_flat_targets": ("binary_crossentropy", (20,), (20, 1), "multilabel"),
    "single_unit_mse": ("mse", (20, 1), (20, 1), "multilabel"),
    "sequence_sparse": ("sparse_categorical_crossentropy", (6, 5), (6, 5, 4), "ids"),
    "sequence_sparse_trailing_1": ("sparse_categorical_crossentropy", (6, 5, 1), (6, 5, 4), "ids"),
    "sequence_onehot": ("categorical_crossentropy", (6, 5, 4), (6, 5, 4), "onehot"),
    "sequence_sigmoid": ("binary_crossentropy", (6, 5, 1), (6, 5, 1), "multilabel"),
    "sequence_multilabel": ("binary_crossentropy", (6, 5, 3), (6, 5, 3), "multilabel"),
}
EXPLICIT_ACCURACIES = {
    "binary_accuracy": keras.metrics.BinaryAccuracy,
    "categorical_accuracy": keras.metrics.CategoricalAccuracy,
    "sparse_categorical_accuracy": keras.metrics.SparseCategoricalAccuracy,
}
MONITORS = ["loss", "val_loss", "accuracy", "val_accuracy", "acc", "val_acc", "mae", "val_mae",
            "binary_accuracy", "val_score"]


def one_weight_model() -> keras.Model:
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])


def early_stopping() -> dict:
    out = {}
    for name, (kwargs, values, fits) in EARLY_STOPPING.items():
        callback = keras.callbacks.EarlyStopping(**kwargs)

        def state(record, cb):
            record.update(stopped_epoch=cb.stopped_epoch, best_epoch=cb.best_epoch, wait=cb.wait,
                          best=None if cb.best is None else float(cb.best))

        records = drive(callback, one_weight_model(), kwargs["monitor"], values, fits, state)
        out[name] = {"kwargs": kwargs, "values": values, "fits": records}
    return out


def monitor_direction() -> dict:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy", "acc", "mae"])
    model.evaluate(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0)  # builds the compiled metrics
    out = {"metrics": ["accuracy", "acc", "mae"], "directions": {}}
    for monitor in MONITORS:
        callback = keras.callbacks.EarlyStopping(monitor=monitor)
        callback.set_model(model)
        try:
            callback._set_monitor_op()
            direction = "min" if callback.monitor_op is keras.ops.less else "max"
        except ValueError:
            direction = "error"
        out["directions"][monitor] = direction
    return out


def model_checkpoint() -> dict:
    out = {}
    for name, (kwargs, values, fits) in MODEL_CHECKPOINT.items():
        with tempfile.TemporaryDirectory() as tmp:
            model = one_weight_model()
            saved: list[str] = []
            model.save = lambda path, overwrite=True, saved=saved: saved.append(path)  # records only
            callback = keras.callbacks.ModelCheckpoint(
                os.path.join(tmp, "m-{epoch:02d}.keras"), save_best_only=True, **kwargs
            )

            def state(record, cb, saved=saved, tmp=tmp):
                record["saved_epochs"] = [int(Path(p).stem.split("-")[1]) for p in saved]
                record["best"] = None if cb.best is None else float(cb.best)
                record["stdout"] = [line.replace(tmp + os.sep, "") for line in record["stdout"]]
                saved.clear()

            records = drive(callback, model, kwargs["monitor"], values, fits, state)
        out[name] = {"kwargs": kwargs, "values": values, "fits": records}
    return out


def optimizer_clipping() -> list:
    out = []
    for clipnorm, clipvalue, global_clipnorm in [
        (1.0, 0.5, None), (1.0, None, 2.0), (None, 0.5, 2.0), (1.0, 0.5, 2.0), (0.0, 0.5, None),
        (1.0, None, None), (None, 0.5, None), (None, None, 2.0),
    ]:
        try:
            keras.optimizers.SGD(clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm)
            error = None
        except ValueError as exc:
            error = str(exc)
        out.append({"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm,
                    "error": error})
    return out


def draw_targets(rng, kind: str, y_shape: tuple, pred_shape: tuple) -> np.ndarray:
    classes = pred_shape[-1]
    if kind == "ids":
        return rng.integers(0, classes, y_shape).astype("int64")
    if kind == "onehot":
        return np.eye(classes, dtype="float32")[rng.integers(0, classes, y_shape[:-1])]
    return rng.integers(0, 2, y_shape).astype("float32")


def applicable_accuracies(y_shape: tuple, pred_shape: tuple) -> list[str]:
    """The explicit accuracies whose meaning fits the shapes (Keras also broadcasts others)."""
    names = []
    if y_shape == pred_shape or (pred_shape[-1] == 1 and y_shape == pred_shape[:-1]):
        names.append("binary_accuracy")
    if y_shape == pred_shape:
        names.append("categorical_accuracy")
    if pred_shape[-1] > 1 and y_shape in (pred_shape[:-1], (*pred_shape[:-1], 1)):
        names.append("sparse_categorical_accuracy")
    return names


def accuracy() -> dict:
    rng = np.random.default_rng(20261212)
    out = {}
    for name, (loss, y_shape, pred_shape, kind) in ACCURACY_CASES.items():
        y_true = draw_targets(rng, kind, y_shape, pred_shape)
        y_pred = rng.uniform(0.02, 0.98, pred_shape).astype("float32")
        if loss == "categorical_crossentropy" or kind == "ids":
            y_pred /= y_pred.sum(axis=-1, keepdims=True)
        model = keras.Sequential([keras.Input(pred_shape[1:]), keras.layers.Identity()])
        model.compile(loss=loss, metrics=["accuracy", "acc"])
        logs = model.evaluate(y_pred, y_true, batch_size=len(y_pred), verbose=0, return_dict=True)
        resolved = compile_utils.get_metric("accuracy", y_true, y_pred)
        explicit = {}
        for metric_name in applicable_accuracies(y_true.shape, y_pred.shape):
            metric = EXPLICIT_ACCURACIES[metric_name]()
            metric.update_state(y_true, y_pred)
            explicit[metric_name] = float(metric.result())
        out[name] = {
            "loss": loss,
            "y_true": y_true.tolist(),
            "y_true_dtype": str(y_true.dtype),
            "y_pred": y_pred.tolist(),
            "resolved": type(resolved).__name__,
            "accuracy": float(logs["accuracy"]),
            "acc": float(logs["acc"]),
            "explicit": explicit,
        }
    return out


def early_stopping_fit() -> dict:
    """Full-batch SGD on a small GRU: the loss falls by less than min_delta per epoch."""
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((32, 6, 3)).astype("float32")
    y = (x[:, :, 0].mean(axis=1, keepdims=True) + 0.5).astype("float32")
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.GRU(4), keras.layers.Dense(1)])
    initial = model.get_weights()
    min_delta, learning_rate, patience, epochs = 0.02, 0.05, 2, 30
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=min_delta, patience=patience,
                                         restore_best_weights=True)
    history = model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, callbacks=[stop], verbose=0)
    losses = np.asarray(history.history["loss"])
    best = losses[0]  # every decision must be clear of the min_delta boundary
    for value in losses[1:]:
        assert abs((value + min_delta) - best) > 1e-3, "a decision sits on the min_delta boundary"
        best = min(best, value) if value + min_delta < best else best
    assert len(losses) < epochs, "Keras did not stop early: pick another scenario"
    arrays = {"x": x, "y": y, "losses": losses,
              "settings": np.array([min_delta, learning_rate, patience, epochs]),
              "epochs": np.array([stop.stopped_epoch, stop.best_epoch])}
    arrays.update({f"initial_{i}": w for i, w in enumerate(initial)})
    arrays.update({f"final_{i}": w for i, w in enumerate(model.get_weights())})
    return arrays


def main() -> None:
    DATA.mkdir(exist_ok=True)
    callbacks = {
        "keras_version": keras.__version__,
        "early_stopping": early_stopping(),
        "monitor_direction": monitor_direction(),
        "model_checkpoint": model_checkpoint(),
        "optimizer_clipping": optimizer_clipping(),
    }
    (DATA / "keras_callbacks.json").write_text(json.dumps(callbacks, indent=1) + "\n")
    acc = {"keras_version": keras.__version__, "cases": accuracy()}
    (DATA / "keras_accuracy.json").write_text(json.dumps(acc) + "\n")
    np.savez(DATA / "keras_early_stopping_fit.npz", **early_stopping_fit())
    print("wrote", *(p.name for p in sorted(DATA.glob("keras_*"))))


if __name__ == "__main__":
    main()
