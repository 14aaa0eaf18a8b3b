"""Record what Keras 3 does with data pipelines and weights (needs keras 3 and a backend, e.g.
tensorflow-cpu; the suite only reads the files, so it runs without them):

    python tests/make_keras_golden_data.py        # with an interpreter that has keras 3

Writes, in tests/data/:

- ``keras_data.json``:
  ``generator_fit``: ``fit`` on a Python generator of numbered batches (batch ``i`` has targets
  ``i`` and a model whose output is always 0, trained with a learning rate of 0, so each
  batch's loss ``i**2`` names it): per epoch, the batches trained, for several
  ``steps_per_epoch``/``epochs``; how many "ran out of data" warnings; the validation batches
  of a generator given as ``validation_data`` (with and without ``validation_steps``);
  ``generator_evaluate``, ``generator_predict``: the batches two ``evaluate(gen, steps=2)``
  calls on one generator score, and what ``predict`` returns for a generator (``steps`` or not);
  ``py_dataset``: for ``fit``/``evaluate``/``predict`` on a ``keras.utils.PyDataset`` (and as
  ``validation_data``), the calls of ``on_epoch_begin``/``on_epoch_end`` in order among the
  callbacks' ``epoch_begin``/``epoch_end`` and the batches each epoch trained;
  ``class_weight``: ``class_weight_to_sample_weights`` (the NumPy data path) and the
  ``tf.data`` map of Keras for targets of many shapes: the sample weights, or the error;
  ``refusals``: the errors for ``class_weight`` with ``sample_weight``, and ``class_weight``
  with a generator.
- ``keras_data_validation.npz``: a GRU(3) + Dense(1) model, data, sample weights, and the
  ``val_loss`` of ``fit(validation_data=(x, y, sample_weight))`` next to ``evaluate`` with and
  without those weights.
- ``keras_data_weighted.json``: whole trainings weighted by sample weights or class weights
  (:data:`WEIGHTED`): a GRU model with ``metrics`` and ``weighted_metrics``, its initial weights,
  the data, ``fit(batch_size=4, epochs=2, shuffle=False, validation_data=(x, y,
  sample_weight))`` on arrays with ``sample_weight=`` or ``class_weight=``: the history, the
  weights after, and ``evaluate(x, y, sample_weight=)`` then; for the first case also the same
  ``fit`` on a ``keras.utils.PyDataset`` of ``(x, y, sample_weight)`` batches, and for those
  with class weights ``train_on_batch(class_weight=)`` on the first 4 samples.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras.src.trainers.data_adapters import data_adapter_utils, tf_dataset_adapter  # noqa: E402
from keras_data_cases import BATCH, NumberedBatches, endless, generator, numbered  # noqa: E402

DATA = Path(__file__).parent / "data"


def zero_model() -> keras.Model:
    """Outputs 0 whatever comes in, and stays so (learning rate 0): a batch's loss names it."""
    model = keras.Sequential([
        keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    return model


class Recorder(keras.callbacks.Callback):
    """Each trained and each validation batch's number (from the running mean loss), and the
    epoch boundaries, in ``log``."""

    def __init__(self, log: list) -> None:
        super().__init__()
        self.log = log

    def _batch_id(self, key: str, logs: dict) -> int:
        count, total = getattr(self, key, (0, 0.0))
        count += 1
        new_total = logs["loss"] * count
        setattr(self, key, (count, new_total))
        return int(round(float(np.sqrt(max(new_total - total, 0.0)))))

    def on_epoch_begin(self, epoch, logs=None):
        self.log.append(f"epoch_begin {epoch}")
        self._train = (0, 0.0)

    def on_train_batch_end(self, batch, logs=None):
        self.log.append(["train", self._batch_id("_train", logs)])

    def on_test_begin(self, logs=None):
        self._test = (0, 0.0)

    def on_test_batch_end(self, batch, logs=None):
        self.log.append(["val", self._batch_id("_test", logs)])

    def on_epoch_end(self, epoch, logs=None):
        self.log.append(f"epoch_end {epoch}")


def per_epoch(log: list, kind: str = "train") -> list:
    epochs: list = []
    for entry in log:
        if isinstance(entry, str) and entry.startswith("epoch_begin"):
            epochs.append([])
        elif isinstance(entry, list) and entry[0] == kind:
            epochs[-1].append(entry[1])
    return epochs


def count_ran_out(caught: list) -> int:
    return sum("ran out of data" in str(w.message) for w in caught)


def fit_record(x, **kwargs) -> dict:
    log: list = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        zero_model().fit(x, callbacks=[Recorder(log)], verbose=0, **kwargs)
    return {"train": per_epoch(log), "val": per_epoch(log, "val"), "ran_out_warnings": count_ran_out(caught)}


GENERATOR_FIT = {
    # name: (batches (None: endless), fit arguments)
    "one_pass_per_epoch": (5, {"epochs": 3}),
    "steps_continue_the_pass": (5, {"epochs": 3, "steps_per_epoch": 2}),
    "steps_past_the_end": (5, {"epochs": 3, "steps_per_epoch": 3}),
    "more_epochs_than_data": (5, {"epochs": 4, "steps_per_epoch": 2}),
    "endless_with_steps": (None, {"epochs": 2, "steps_per_epoch": 3}),
}


def generator_fit() -> dict:
    out = {}
    for name, (count, kwargs) in GENERATOR_FIT.items():
        data = endless() if count is None else generator(count)
        out[name] = {"batches": count, "fit": kwargs, **fit_record(data, **kwargs)}
    for name, val_count, steps in (("validation_generator", 3, None), ("validation_generator_steps", 5, 2)):
        kwargs = {"epochs": 3, "validation_data": generator(val_count, 100)}
        if steps:
            kwargs["validation_steps"] = steps
        record = fit_record(generator(5), **kwargs)
        out[name] = {"batches": 5, "validation_batches": val_count, "validation_steps": steps, **record}
    return out


def generator_evaluate() -> dict:
    model = zero_model()
    gen = generator(6)
    scored = []
    for _ in range(2):
        log: list = []
        recorder = Recorder(log)
        recorder._test = (0, 0.0)
        model.evaluate(gen, steps=2, verbose=0, callbacks=[recorder])
        scored.append([entry[1] for entry in log])
    return {"batches": 6, "steps": 2, "calls": scored}


def generator_predict() -> dict:
    model = keras.Sequential([
        keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")
    ])

    def inputs(count):
        for i in range(count):
            yield (np.full((BATCH, 1), float(i), "float32"),)

    return {
        "batches": 3,
        "all": model.predict(inputs(3), verbose=0)[:, 0].tolist(),
        "steps_2": model.predict(inputs(3), steps=2, verbose=0)[:, 0].tolist(),
    }


class Numbered(NumberedBatches, keras.utils.PyDataset):
    """``count`` numbered batches (from ``start``); its hooks write into ``log``."""


PY_DATASET_FIT = {
    "fit": (4, {"epochs": 2, "shuffle": False}),
    "fit_steps_continue_the_pass": (4, {"epochs": 3, "shuffle": False, "steps_per_epoch": 3}),
    "fit_steps_past_the_end": (4, {"epochs": 2, "shuffle": False, "steps_per_epoch": 6}),
    "fit_shuffled": (4, {"epochs": 3}),
    "fit_threads": (4, {"epochs": 2, "shuffle": False, "workers": 2}),
}


def py_dataset() -> dict:
    out = {}
    for name, (count, kwargs) in PY_DATASET_FIT.items():
        kwargs = dict(kwargs)
        workers = kwargs.pop("workers", 1)
        log: list = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = Numbered(count, log, workers=workers)
            zero_model().fit(data, callbacks=[Recorder(log)], verbose=0, **kwargs)
        out[name] = {
            "batches": count,
            "workers": workers,
            "fit": kwargs,
            "calls": [e for e in log if isinstance(e, str)],
            "train": per_epoch(log),
            "ran_out_warnings": count_ran_out(caught),
        }
    log = []
    zero_model().fit(
        Numbered(4, log), epochs=2, shuffle=False, verbose=0, callbacks=[Recorder(log)],
        validation_data=Numbered(3, log, start=100, name="validation"),
    )
    out["fit_validation"] = {
        "batches": 4, "validation_batches": 3, "fit": {"epochs": 2, "shuffle": False},
        "calls": [e for e in log if isinstance(e, str)],
        "train": per_epoch(log),
        "val": per_epoch(log, "val"),
    }
    log = []
    zero_model().evaluate(Numbered(3, log), verbose=0)
    out["evaluate"] = {"batches": 3, "calls": list(log)}
    log = []
    zero_model().predict(Numbered(3, log), verbose=0)
    out["predict"] = {"batches": 3, "calls": list(log)}
    return out


def _tf_class_weights(y: np.ndarray, class_weight: dict) -> list:
    import tensorflow as tf

    mapped = tf_dataset_adapter.make_class_weight_map_fn(class_weight)
    _, _, weights = mapped(tf.zeros((y.shape[0], 1)), tf.constant(y))
    return weights.numpy().tolist()


def class_weight_cases() -> list:
    """Targets, the output shape cgru would compute them for, class weights; Keras's weights."""
    cw = {0: 0.5, 1: 2.0, 2: 3.0}
    cases = [
        ("sparse_ids", np.array([0, 1, 2, 1, 0]), [None, 3], cw),
        ("sparse_ids_column", np.array([[2], [0], [1]]), [None, 3], cw),
        ("float_labels_rounded", np.array([0.4, 0.6, 1.5, 2.5, 1.49]), [None, 3], cw),
        ("one_hot", np.eye(3)[[2, 0, 1, 1]], [None, 3], cw),
        ("probabilities_argmax", np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]), [None, 3], cw),
        ("binary_column", np.array([[1.0], [0.0], [1.0]]), [None, 1], {0: 1.0, 1: 4.0}),
        ("binary_flat", np.array([1, 0, 0]), [None, 1], {0: 1.0, 1: 4.0}),
        ("class_missing_from_dict", np.array([0, 3, 1]), [None, 4], {1: 5.0}),
        ("sequence_one_hot", np.eye(3)[[[0, 1, 2], [2, 2, 0]]], [None, 3, 3], cw),
        ("sequence_ids_column", np.array([[[1], [0]], [[2], [2]]]), [None, 2, 3], cw),
    ]
    out = []
    for name, y, out_shape, weights in cases:
        entry = {
            "name": name,
            "y": y.tolist(),
            "out_shape": out_shape,
            "class_weight": {str(k): v for k, v in weights.items()},
        }
        try:
            entry["numpy_path"] = data_adapter_utils.class_weight_to_sample_weights(y, weights).tolist()
        except Exception as exc:  # sequence targets: the NumPy path cannot take them
            entry["numpy_path_error"] = f"{type(exc).__name__}: {exc}"
        if min(weights) >= 0 and y.max() <= max(weights):
            entry["tf_data_path"] = _tf_class_weights(y.astype("float32"), weights)
        out.append(entry)
    return out


def refusals() -> dict:
    out = {}
    model = zero_model()
    x, y = numbered(1)
    for name, call in (
        ("class_weight_and_sample_weight",
         lambda: model.fit(x, y, class_weight={0: 1.0}, sample_weight=np.ones(BATCH), verbose=0)),
        ("class_weight_with_generator", lambda: model.fit(generator(2), class_weight={0: 1.0}, verbose=0)),
    ):
        try:
            call()
            out[name] = None
        except Exception as exc:
            out[name] = f"{type(exc).__name__}: {exc}"
    return out


def validation_triple() -> dict:
    rng = np.random.default_rng(7)
    model = keras.Sequential([keras.Input((5, 2)), keras.layers.GRU(3, seed=1), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    x = rng.standard_normal((8, 5, 2)).astype("float32")
    y = rng.standard_normal((8, 1)).astype("float32")
    xv = rng.standard_normal((6, 5, 2)).astype("float32")
    yv = rng.standard_normal((6, 1)).astype("float32")
    swv = rng.uniform(0.0, 3.0, 6).astype("float32")
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, validation_data=(xv, yv, swv))
    weights = model.get_weights()
    return {
        "x": x, "y": y, "x_val": xv, "y_val": yv, "sample_weight_val": swv,
        **{f"weight_{i}": w for i, w in enumerate(weights)},
        "val_loss": np.float64(history.history["val_loss"][0]),
        "evaluate_weighted": np.float64(model.evaluate(xv, yv, sample_weight=swv, batch_size=4, verbose=0)),
        "evaluate_unweighted": np.float64(model.evaluate(xv, yv, batch_size=4, verbose=0)),
    }


def _tolist(a):
    return None if a is None else np.asarray(a).tolist()


def _floats(logs: dict) -> dict:
    return {k: float(v) for k, v in logs.items()}


class WeightedBatches(keras.utils.PyDataset):
    """``(x, y, sample_weight)`` in batches of ``size``, in order."""

    def __init__(self, x, y, sample_weight, size: int) -> None:
        super().__init__()
        self.arrays, self.size = (x, y, sample_weight), size

    def __len__(self):
        return -(-len(self.arrays[0]) // self.size)

    def __getitem__(self, index):
        rows = slice(index * self.size, (index + 1) * self.size)
        return tuple(a[rows] for a in self.arrays)


#: name: (output: "classes" (3 softmax units, class ids), "binary" (1 sigmoid unit) or "sequence"
#: (2 linear units per step), loss, metrics, weighted_metrics (names or [class name, config]),
#: weights: "sample" (per sample), "step" (per time step) or "class" (class_weight))
WEIGHTED = {
    "classes_sample_weight": (
        "classes", "sparse_categorical_crossentropy", ["sparse_categorical_accuracy"],
        ["sparse_categorical_accuracy", ["SparseTopKCategoricalAccuracy", {"k": 2}]], "sample",
    ),
    "classes_class_weight": (
        "classes", "sparse_categorical_crossentropy", ["sparse_categorical_accuracy"],
        ["sparse_categorical_accuracy"], "class",
    ),
    "binary_class_weight": (
        "binary", "binary_crossentropy", ["binary_accuracy"], ["binary_accuracy", "auc", "mse"], "class",
    ),
    "sequence_step_weight": ("sequence", "mse", ["mae"], ["mae", "RootMeanSquaredError"], "step"),
}
WEIGHTED_SAMPLES, WEIGHTED_VALIDATION, WEIGHTED_TIME = 10, 6, 5


def _metric(spec):
    return spec if isinstance(spec, str) else getattr(keras.metrics, spec[0])(**spec[1])


def _weighted_data(rng, output: str, samples: int) -> tuple:
    x = rng.standard_normal((samples, WEIGHTED_TIME, 2)).astype("float32")
    if output == "classes":
        y = rng.integers(0, 3, samples).astype("int64")
    elif output == "binary":
        y = rng.integers(0, 2, (samples, 1)).astype("float32")
    else:
        y = rng.standard_normal((samples, WEIGHTED_TIME, 2)).astype("float32")
    return x, y


def weighted_case(rng, output, loss, metrics, weighted_metrics, weights) -> dict:
    keras.utils.set_random_seed(3)
    sequence = output == "sequence"
    head = {"classes": (3, "softmax"), "binary": (1, "sigmoid"), "sequence": (2, None)}[output]

    def build():
        model = keras.Sequential([
            keras.Input((WEIGHTED_TIME, 2)),
            keras.layers.GRU(4, return_sequences=sequence, seed=1),
            keras.layers.Dense(head[0], activation=head[1]),
        ])
        model.compile(
            optimizer=keras.optimizers.SGD(0.5),
            loss=loss,
            metrics=[_metric(m) for m in metrics],
            weighted_metrics=[_metric(m) for m in weighted_metrics],
        )
        return model

    x, y = _weighted_data(rng, output, WEIGHTED_SAMPLES)
    xv, yv = _weighted_data(rng, output, WEIGHTED_VALIDATION)
    shape = (WEIGHTED_SAMPLES, WEIGHTED_TIME) if weights == "step" else (WEIGHTED_SAMPLES,)
    sw = rng.uniform(0.0, 2.0, shape).astype("float32")
    swv = rng.uniform(0.0, 2.0, (WEIGHTED_VALIDATION,) + shape[1:]).astype("float32")
    class_weight = {0: 0.5, 1: 2.0, 2: 3.0} if output == "classes" else {0: 1.0, 1: 4.0}
    given = {"class_weight": class_weight} if weights == "class" else {"sample_weight": sw}
    fit_args = {"batch_size": 4, "epochs": 2, "shuffle": False}
    model = build()
    initial = model.get_weights()
    history = model.fit(x, y, validation_data=(xv, yv, swv), verbose=0, **fit_args, **given)
    evaluated = model.evaluate(x, y, sample_weight=sw, batch_size=4, verbose=0, return_dict=True)
    case = {
        "output": output,
        "loss": loss,
        "metrics": metrics,
        "weighted_metrics": weighted_metrics,
        "weights": [w.tolist() for w in initial],
        "x": _tolist(x), "y": _tolist(y), "x_val": _tolist(xv), "y_val": _tolist(yv),
        "sample_weight_val": _tolist(swv),
        "sample_weight": _tolist(sw) if weights != "class" else None,
        "class_weight": {str(k): v for k, v in class_weight.items()} if weights == "class" else None,
        "fit": fit_args,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "weights_after": [w.tolist() for w in model.get_weights()],
        "evaluate": _floats(evaluated),
    }
    if weights == "class":
        once = build()
        once.set_weights(initial)
        logs = once.train_on_batch(x[:4], y[:4], class_weight=class_weight, return_dict=True)
        case["train_on_batch"] = {
            "rows": 4,
            "logs": _floats(logs),
            "weights_after": [w.tolist() for w in once.get_weights()],
        }
    if weights == "sample":
        again = build()
        again.set_weights(initial)
        history = again.fit(
            WeightedBatches(x, y, sw, fit_args["batch_size"]), epochs=fit_args["epochs"], shuffle=False,
            validation_data=(xv, yv, swv), verbose=0,
        )
        case["py_dataset"] = {
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "weights_after": [w.tolist() for w in again.get_weights()],
        }
    return case


def weighted_training() -> dict:
    rng = np.random.default_rng(23)
    return {
        "keras_version": keras.__version__,
        "cases": {name: weighted_case(rng, *spec) for name, spec in WEIGHTED.items()},
    }


def main() -> None:
    keras.utils.set_random_seed(0)
    record = {
        "keras_version": keras.__version__,
        "generator_fit": generator_fit(),
        "generator_evaluate": generator_evaluate(),
        "generator_predict": generator_predict(),
        "py_dataset": py_dataset(),
        "class_weight": class_weight_cases(),
        "refusals": refusals(),
    }
    (DATA / "keras_data.json").write_text(json.dumps(record, indent=1) + "\n")
    np.savez(DATA / "keras_data_validation.npz", **validation_triple())
    (DATA / "keras_data_weighted.json").write_text(json.dumps(weighted_training()) + "\n")
    written = ("keras_data.json", "keras_data_validation.npz", "keras_data_weighted.json")
    print("wrote", *(DATA / name for name in written))


if __name__ == "__main__":
    main()
