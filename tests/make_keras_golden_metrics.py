"""Regenerate tests/data/keras_metrics.json: metrics, weighted losses and weighted training steps
computed by Keras 3, for tests/metrics/test_metrics_keras.py and tests/test_sample_weights.py.

Run with an environment that has ``keras==3.15.1`` and ``tensorflow-cpu==2.21.0``::

    python tests/make_keras_golden_metrics.py

Sections of the file:

- ``metrics``: a metric (class name and config) updated batch by batch on one of
  ``datasets`` (batches of ``y_true``, ``y_pred``, optional ``sample_weight``); its result after
  each batch. Binary, multi-label, categorical
  and sequence outputs, weights per sample and per time step, several thresholds.
- ``losses``: a loss (class name and config) on one batch, with or without a sample weight of
  each shape; its value per reduction, and for sequences also with the mask of valid steps
  (``"<reduction>/masked"``; Keras reads the mask from ``y_pred``).
- ``models``: a small model with fixed weights, its compile settings, and per batch
  ``test_on_batch`` logs, ``train_on_batch`` logs (SGD) and the weights after the step; plus
  ``evaluate`` over several batches (``evaluate_logs``: Keras's running means).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras.src import backend  # noqa: E402

OUT = Path(__file__).parent / "data" / "keras_metrics.json"
rng = np.random.default_rng(20240607)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def tolist(a):
    """A JSON list of ``a``; float32 values written with their shortest repr (they read back as
    the same float32)."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype == np.float32:
        return np.vectorize(lambda v: float(str(v)), otypes=[object])(a).tolist() if a.ndim else float(str(a))
    return a.tolist()


def pythonify(value):
    value = np.asarray(value)
    return float(value) if value.size == 1 else value.tolist()


# -------------------------------------------------------------------------------- data
def probabilities(shape, ties=False):
    p = rng.uniform(0.0, 1.0, shape)
    if ties:  # few distinct values: ties between classes and exact threshold hits
        p = np.round(p * 4) / 4
    return f32(p)


def binary_batches(units, sizes, weights=None, ties=False):
    """Batches of 0/1 targets and probabilities; ``weights``: None, "sample" or "sample_col"."""
    out = []
    for n in sizes:
        y = f32(rng.integers(0, 2, (n, units)))
        p = probabilities((n, units), ties)
        w = None
        if weights == "sample":
            w = f32(rng.uniform(0, 2, n))
        elif weights == "sample_col":
            w = f32(rng.uniform(0, 2, (n, 1)))
        out.append((y, p, w))
    return out


def sequence_batches(units, time, sizes, weights, sparse=False, binary=False):
    """Sequence targets and outputs (B, T, U); ``weights``: None, "sample" or "step"."""
    out = []
    for n in sizes:
        if sparse:
            y = f32(rng.integers(0, units, (n, time)))
        elif binary:
            y = f32(rng.integers(0, 2, (n, time, units)))
        else:
            y = f32(np.eye(units)[rng.integers(0, units, (n, time))])
        p = rng.uniform(0.01, 1.0, (n, time, units))
        if not binary:
            p = p / p.sum(-1, keepdims=True)
        w = None
        if weights == "sample":
            w = f32(rng.uniform(0, 2, n))
        elif weights == "step":
            w = f32(rng.uniform(0, 2, (n, time)) * (rng.uniform(size=(n, time)) > 0.25))
        out.append((y, f32(p), w))
    return out


def categorical_batches(classes, sizes, weights=None, sparse=False, ties=False):
    out = []
    for n in sizes:
        ids = rng.integers(0, classes, n)
        y = f32(ids[:, None]) if sparse else f32(np.eye(classes)[ids])
        p = probabilities((n, classes), ties)
        w = f32(rng.uniform(0, 2, n)) if weights else None
        out.append((y, p, w))
    return out


def regression_batches(shape_tail, sizes, weights=None):
    out = []
    for n in sizes:
        y = f32(rng.standard_normal((n, *shape_tail)))
        y[np.abs(y) < 0.05] = 0.0  # exact zeros: MAPE's epsilon
        p = f32(rng.standard_normal((n, *shape_tail)))
        w = None
        if weights == "sample":
            w = f32(rng.uniform(0, 2, n))
        elif weights == "step":
            w = f32(rng.uniform(0, 2, (n, shape_tail[0])))
        out.append((y, p, w))
    return out


# ----------------------------------------------------------------------------- metrics
#: The batches the metric cases run on, written once each: {key: [batch, ...]}
DATASETS: dict = {}
_SEEN: list = []  # (batches, key): keeps each data set alive, so that identity means sameness


def dataset_key(batches):
    for seen, key in _SEEN:
        if seen is batches:
            return key
    key = f"d{len(_SEEN)}"
    _SEEN.append((batches, key))
    DATASETS[key] = [
        {"y_true": tolist(y), "y_pred": tolist(p), "sample_weight": tolist(w)} for y, p, w in batches
    ]
    return key


def metric_case(name, class_name, config, batches):
    metric = getattr(keras.metrics, class_name)(**config)
    results = []
    for y, p, w in batches:
        metric.update_state(y, p, sample_weight=w)
        results.append(pythonify(metric.result()))
    return {
        "name": name,
        "class_name": class_name,
        "config": config,
        "dataset": dataset_key(batches),
        "results": results,
    }


def metric_cases():
    sizes = (5, 7, 4)
    cases = []
    add = cases.append
    for weights in (None, "sample"):
        tag = "weighted" if weights else "plain"
        reg = regression_batches((3,), sizes, weights)
        for cls in (
            "MeanAbsoluteError",
            "MeanSquaredError",
            "MeanAbsolutePercentageError",
            "RootMeanSquaredError",
        ):
            add(metric_case(f"{cls}-{tag}", cls, {}, reg))
        seq = regression_batches((4, 2), sizes, weights)
        for cls in ("MeanAbsoluteError", "RootMeanSquaredError"):
            add(metric_case(f"{cls}-sequence-{tag}", cls, {}, seq))
        binary = binary_batches(1, sizes, weights)
        multi = binary_batches(3, sizes, weights, ties=True)
        add(metric_case(f"BinaryAccuracy-{tag}", "BinaryAccuracy", {}, binary))
        add(metric_case(f"BinaryAccuracy-0.7-multilabel-{tag}", "BinaryAccuracy", {"threshold": 0.7}, multi))
        cat = categorical_batches(5, sizes, weights, ties=True)
        sparse = categorical_batches(5, sizes, weights, sparse=True, ties=True)
        add(metric_case(f"CategoricalAccuracy-{tag}", "CategoricalAccuracy", {}, cat))
        add(metric_case(f"SparseCategoricalAccuracy-{tag}", "SparseCategoricalAccuracy", {}, sparse))
        for k in (1, 2, 5):
            add(metric_case(f"TopK-{k}-{tag}", "TopKCategoricalAccuracy", {"k": k}, cat))
            add(metric_case(f"SparseTopK-{k}-{tag}", "SparseTopKCategoricalAccuracy", {"k": k}, sparse))
        for cls in ("Precision", "Recall"):
            add(metric_case(f"{cls}-binary-{tag}", cls, {}, binary))
            add(metric_case(f"{cls}-multilabel-{tag}", cls, {}, multi))
            add(metric_case(f"{cls}-thresholds-{tag}", cls, {"thresholds": [0.3, 0.5, 0.75]}, multi))
            add(
                metric_case(
                    f"{cls}-even-thresholds-{tag}", cls, {"thresholds": [0.0, 0.25, 0.5, 0.75, 1.0]}, multi
                )
            )
            add(metric_case(f"{cls}-top_k-{tag}", cls, {"top_k": 2}, multi))
            add(metric_case(f"{cls}-class_id-{tag}", cls, {"class_id": 1, "thresholds": 0.4}, multi))
        for cls in ("TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives"):
            add(metric_case(f"{cls}-{tag}", cls, {"thresholds": [0.25, 0.5]}, multi))
        smooth = binary_batches(3, sizes, weights)
        auc_configs = {
            "roc": {},
            "pr": {"curve": "PR"},
            "pr-minoring": {"curve": "PR", "summation_method": "minoring"},
            "roc-majoring": {"summation_method": "majoring"},
            "roc-minoring": {"summation_method": "minoring"},
            "prgain": {"curve": "PRGAIN"},
            "roc-50": {"num_thresholds": 50},
            "roc-given-thresholds": {"thresholds": [0.1, 0.35, 0.5, 0.9]},
            "pr-given-even": {"curve": "PR", "thresholds": [0.25, 0.5, 0.75]},
            "multilabel": {"multi_label": True},
            "multilabel-pr-weights": {"multi_label": True, "curve": "PR", "label_weights": [0.5, 1.0, 2.0]},
            "multilabel-num_labels": {"multi_label": True, "num_labels": 3},
            "label_weights": {"label_weights": [1.0, 0.0, 3.0]},
        }
        for key, config in auc_configs.items():
            add(metric_case(f"AUC-{key}-{tag}", "AUC", config, smooth))
            if key in ("roc", "pr"):
                add(metric_case(f"AUC-{key}-ties-{tag}", "AUC", config, multi))
        logits = [(y, f32(np.log(p / (1 - p + 1e-3) + 1e-3)), w) for y, p, w in smooth]
        add(metric_case(f"AUC-from_logits-{tag}", "AUC", {"from_logits": True}, logits))
    # sequence outputs, per-step weights (zero weights stand for padding)
    steps = sequence_batches(3, 4, sizes, "step", binary=True)
    for cls, config in (
        ("BinaryAccuracy", {}),
        ("Precision", {}),
        ("Recall", {"thresholds": [0.2, 0.6]}),
        ("AUC", {}),
        ("AUC", {"curve": "PR"}),
        ("RootMeanSquaredError", {}),
        ("MeanSquaredError", {}),
    ):
        add(metric_case(f"{cls}-{json.dumps(config)}-sequence-steps", cls, config, steps))
    cat_steps = sequence_batches(4, 5, sizes, "step")
    sparse_steps = sequence_batches(4, 5, sizes, "step", sparse=True)
    for cls, config, data in (
        ("CategoricalAccuracy", {}, cat_steps),
        ("TopKCategoricalAccuracy", {"k": 2}, cat_steps),
        ("SparseCategoricalAccuracy", {}, sparse_steps),
        ("SparseTopKCategoricalAccuracy", {"k": 2}, sparse_steps),
        ("MeanAbsoluteError", {}, cat_steps),
    ):
        add(metric_case(f"{cls}-sequence-steps", cls, config, data))
    sample_seq = sequence_batches(4, 5, sizes, "sample")
    add(metric_case("CategoricalAccuracy-sequence-sample", "CategoricalAccuracy", {}, sample_seq))
    add(metric_case("MeanSquaredError-sequence-sample", "MeanSquaredError", {}, sample_seq))
    return cases


# ------------------------------------------------------------------------------ losses
def loss_cases():
    cases = []
    b, t = 4, 5
    mask = np.arange(t)[None, :] < np.array([5, 2, 4, 1])[:, None]
    losses = {
        "MeanSquaredError": ({}, "dense"),
        "MeanAbsoluteError": ({}, "dense"),
        "Huber": ({"delta": 0.7}, "dense"),
        "BinaryCrossentropy": ({}, "binary"),
        "BinaryCrossentropy-logits": ({"from_logits": True}, "logits"),
        "CategoricalCrossentropy": ({"label_smoothing": 0.1}, "categorical"),
        "SparseCategoricalCrossentropy": ({}, "sparse"),
    }
    weight_shapes = {
        "none": None,
        "sample_col": (b, 1),
        "step": (b, t),
        "step_col": (b, t, 1),
    }
    for key, (config, kind) in losses.items():
        class_name = key.split("-")[0]
        for sequence in (False, True):
            shape = (b, t, 3) if sequence else (b, 3)
            if kind == "sparse":
                y = f32(rng.integers(0, 3, shape[:-1]))
            elif kind in ("binary", "logits"):
                y = f32(rng.integers(0, 2, shape))
            elif kind == "categorical":
                y = f32(np.eye(3)[rng.integers(0, 3, shape[:-1])])
            else:
                y = f32(rng.standard_normal(shape))
            p = rng.uniform(0.05, 1.0, shape)
            if kind in ("categorical", "sparse"):
                p = p / p.sum(-1, keepdims=True)
            elif kind == "logits":
                p = rng.standard_normal(shape) * 2
            elif kind == "dense":
                p = rng.standard_normal(shape)
            p = f32(p)
            shapes = {"none": None, "sample": (b,), "sample_col": (b, 1)} if not sequence else weight_shapes
            for wname, wshape in shapes.items():
                w = None if wshape is None else f32(rng.uniform(0, 2, wshape))
                values = {}
                for reduction in ("sum_over_batch_size", "sum", "mean_with_sample_weight", "none"):
                    for masked in (False, True) if sequence else (False,):
                        loss = getattr(keras.losses, class_name)(reduction=reduction, **config)
                        pred = tf.constant(p)
                        if masked:
                            backend.set_keras_mask(pred, tf.constant(mask))
                        value = loss(tf.constant(y), pred, sample_weight=w)
                        values[f"{reduction}{'/masked' if masked else ''}"] = tolist(value.numpy())
                cases.append(
                    {
                        "class_name": class_name,
                        "config": config,
                        "y_true": tolist(y),
                        "y_pred": tolist(p),
                        "sample_weight": tolist(w),
                        "mask": tolist(mask) if sequence else None,
                        "values": values,
                        "label": f"{key}/{'seq' if sequence else 'flat'}/{wname}",
                    }
                )
    return cases


# ------------------------------------------------------------------------------- names
NAME_IDENTIFIERS = [
    "auc",
    "AUC",
    "precision",
    "Precision",
    "recall",
    "mse",
    "MSE",
    "mean_squared_error",
    "mape",
    "MAPE",
    "mean_absolute_percentage_error",
    "RootMeanSquaredError",
    "root_mean_squared_error",
    "top_k_categorical_accuracy",
    "TopKCategoricalAccuracy",
    "sparse_top_k_categorical_accuracy",
    "mae",
    "MAE",
    "binary_accuracy",
    "categorical_accuracy",
    "true_positives",
    "Mse",
    "Auc",
    "rmse",
    "accuracy",
    "acc",
    "ACC",
    "Accuracy",
]


def name_cases():
    """How Keras resolves metric strings (the class, the log key, or an error), and the log keys
    of repeated names in metrics and weighted_metrics."""
    from keras.src.trainers import compile_utils

    y_true, y_pred = np.zeros((2, 3), np.float32), np.full((2, 3), 0.5, np.float32)
    resolved = {}
    for identifier in NAME_IDENTIFIERS:
        try:
            metric = compile_utils.get_metric(identifier, y_true, y_pred)
            resolved[identifier] = {"class_name": type(metric).__name__, "name": metric.name}
        except (ValueError, TypeError) as exc:
            resolved[identifier] = {"error": type(exc).__name__}
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    duplicates = {"metrics": ["mae", "mae", "mse"], "weighted_metrics": ["mae", "mse", "mae", "auc"]}
    model.compile(loss="mse", **duplicates)
    logs = model.evaluate(np.ones((4, 2)), np.ones((4, 3)), verbose=0, return_dict=True)
    return {"resolved": resolved, "duplicates": {**duplicates, "log_keys": list(logs)}}


# ------------------------------------------------------------------------------ models
def dense_model(out_units, activation):
    return keras.Sequential(
        [
            keras.Input((6, 3)),
            keras.layers.GRU(4, seed=1),
            keras.layers.Dense(out_units, activation=activation),
        ]
    )


def keras_metric(spec):
    """A metric from its description: a name, or ``[class name, config]``."""
    return spec if isinstance(spec, str) else getattr(keras.metrics, spec[0])(**spec[1])


def keras_loss(spec):
    return spec if isinstance(spec, str) else getattr(keras.losses, spec[0])(**spec[1])


def model_case(name, layers_spec, build, compile_spec, batches, evaluate_batch_size=None):
    """``compile_spec``: loss, metrics and weighted_metrics as names or [class name, config]."""
    keras.utils.set_random_seed(7)
    model = build()
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras_loss(compile_spec["loss"]),
        metrics=[keras_metric(m) for m in compile_spec["metrics"]],
        weighted_metrics=[keras_metric(m) for m in compile_spec["weighted_metrics"]],
    )
    weights = [w.tolist() for w in model.get_weights()]
    steps = []
    for x, y, w in batches:
        test = model.test_on_batch(x, y, sample_weight=w, return_dict=True)
        train = model.train_on_batch(x, y, sample_weight=w, return_dict=True)
        steps.append(
            {
                "x": tolist(x),
                "y": tolist(y),
                "sample_weight": tolist(w),
                "test": {k: pythonify(v) for k, v in test.items()},
                "train": {k: pythonify(v) for k, v in train.items()},
                "weights_after": [a.tolist() for a in model.get_weights()],
            }
        )
    case = {
        "name": name,
        "layers": layers_spec,
        "compile": compile_spec,
        "weights": weights,
        "steps": steps,
    }
    if evaluate_batch_size:
        x = np.concatenate([s[0] for s in batches])
        y = np.concatenate([s[1] for s in batches])
        w = None if batches[0][2] is None else np.concatenate([s[2] for s in batches])
        logs = model.evaluate(
            x, y, sample_weight=w, batch_size=evaluate_batch_size, verbose=0, return_dict=True
        )
        case["evaluate"] = {
            "batch_size": evaluate_batch_size,
            "weights": [a.tolist() for a in model.get_weights()],
            "logs": {k: pythonify(v) for k, v in logs.items()},
        }
    return case


def model_cases():
    cases = []
    n = 7
    # binary classification, per-sample weights
    batches = []
    for _ in range(3):
        x = f32(rng.standard_normal((n, 6, 3)))
        y = f32(rng.integers(0, 2, (n, 1)))
        batches.append((x, y, f32(rng.uniform(0, 2, n))))
    cases.append(
        model_case(
            "binary",
            [["GRU", {"units": 4}], ["Dense", {"units": 1, "activation": "sigmoid"}]],
            lambda: dense_model(1, "sigmoid"),
            {
                "loss": "binary_crossentropy",
                "metrics": ["accuracy", "auc", "precision", "recall", "mse"],
                "weighted_metrics": ["accuracy", "auc", "mae", "RootMeanSquaredError"],
            },
            batches,
            evaluate_batch_size=5,
        )
    )
    # categorical, weights as a loss reduction, top-k
    batches = []
    for _ in range(2):
        x = f32(rng.standard_normal((n, 6, 3)))
        y = f32(np.eye(4)[rng.integers(0, 4, n)])
        batches.append((x, y, f32(rng.uniform(0, 2, n))))
    cases.append(
        model_case(
            "categorical",
            [["GRU", {"units": 4}], ["Dense", {"units": 4, "activation": "softmax"}]],
            lambda: dense_model(4, "softmax"),
            {
                "loss": ["CategoricalCrossentropy", {"reduction": "mean_with_sample_weight"}],
                "metrics": ["acc", "top_k_categorical_accuracy"],
                "weighted_metrics": ["acc", ["TopKCategoricalAccuracy", {"k": 2, "name": "top2"}]],
            },
            batches,
            evaluate_batch_size=3,
        )
    )

    # sequence output with padding (Embedding mask_zero): per-step, then per-sample weights
    def build_sequence():
        return keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Embedding(9, 3, mask_zero=True),
                keras.layers.GRU(4, return_sequences=True, seed=2),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )

    lengths_all = [[6, 3, 1, 5, 6, 2, 4], [2, 6, 6, 1, 3, 5, 4], [4, 4, 6, 2, 1, 3, 6]]
    for weights in ("step", "sample"):
        batches = []
        for lengths in lengths_all:
            ids = rng.integers(1, 9, (n, 6))
            ids[np.arange(6)[None, :] >= np.array(lengths)[:, None]] = 0
            y = f32(rng.integers(0, 3, (n, 6)))
            w = f32(rng.uniform(0, 2, (n, 6) if weights == "step" else (n, 1)))
            batches.append((f32(ids), y, w))
        cases.append(
            model_case(
                f"sequence_masked_{weights}",
                [
                    ["Embedding", {"input_dim": 9, "output_dim": 3, "mask_zero": True}],
                    ["GRU", {"units": 4, "return_sequences": True}],
                    ["Dense", {"units": 3, "activation": "softmax"}],
                ],
                build_sequence,
                {
                    "loss": "sparse_categorical_crossentropy",
                    "metrics": ["accuracy", "sparse_top_k_categorical_accuracy"],
                    "weighted_metrics": [
                        "accuracy",
                        ["SparseTopKCategoricalAccuracy", {"k": 2, "name": "top2"}],
                    ],
                },
                batches,
                evaluate_batch_size=4,
            )
        )
    # sequence regression without padding, loss reduction "sum"
    batches = []
    for _ in range(2):
        x = f32(rng.standard_normal((n, 6, 3)))
        y = f32(rng.standard_normal((n, 6, 2)))
        batches.append((x, y, f32(rng.uniform(0, 2, (n, 6)))))

    def build_regression():
        return keras.Sequential(
            [
                keras.Input((6, 3)),
                keras.layers.GRU(4, return_sequences=True, seed=3),
                keras.layers.Dense(2),
            ]
        )

    cases.append(
        model_case(
            "sequence_regression",
            [["GRU", {"units": 4, "return_sequences": True}], ["Dense", {"units": 2}]],
            build_regression,
            {
                "loss": ["MeanSquaredError", {"reduction": "sum"}],
                "metrics": ["mae", "mape", "RootMeanSquaredError"],
                "weighted_metrics": ["mse", "mae"],
            },
            batches,
        )
    )
    return cases


def main():
    data = {
        "keras_version": keras.__version__,
        "metrics": metric_cases(),
        "datasets": DATASETS,
        "names": name_cases(),
        "losses": loss_cases(),
        "models": model_cases(),
    }
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(
        f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB): {len(data['metrics'])} metric cases, "
        f"{len(data['losses'])} loss cases, {len(data['models'])} models"
    )


if __name__ == "__main__":
    main()
