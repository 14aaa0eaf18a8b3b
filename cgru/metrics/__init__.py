"""Metrics for ``compile``, ``fit`` and ``evaluate``, with Keras 3's names, formulas and API.

By name (as Keras 3 resolves them: class names, their snake_case forms, and the aliases
``"mse"``/``"MSE"``, ``"mae"``/``"MAE"``, ``"mape"``/``"MAPE"``) or as objects:

=========================================================  ====================================
``"mae"``, ``"mean_absolute_error"``, ``MeanAbsoluteError``  mean ``|y - p|`` over the last axis
``"mse"``, ``"mean_squared_error"``, ``MeanSquaredError``    mean ``(y - p)**2`` over the last axis
``"mape"``, ``MeanAbsolutePercentageError``                  ``100 * mean |(y - p) / max(|y|, eps)|``
``"RootMeanSquaredError"``, ``"root_mean_squared_error"``    ``sqrt`` of the mean squared error
``"binary_accuracy"``, ``BinaryAccuracy(threshold=0.5)``     ``p > threshold`` equals ``y``
``"categorical_accuracy"``, ``"sparse_categorical_accuracy"``  arg-max agreement
``"top_k_categorical_accuracy"``, ``"sparse_top_k_..."``     target among the ``k=5`` best scores
``"precision"``, ``"recall"``, ``Precision``, ``Recall``     at ``thresholds`` (0.5), ``top_k``, ``class_id``
``"auc"``, ``"AUC"``, ``AUC(curve="ROC" | "PR", ...)``       area under the curve, 200 thresholds
``"true_positives"``... , ``TruePositives``...               weighted confusion-matrix counts
=========================================================  ====================================

``"accuracy"`` and ``"acc"`` (any case) pick their kind from the shapes of the targets and the
model output, never from the loss, exactly as Keras 3 does
(``keras.src.trainers.compile_utils``):

1. the output has one unit on its last axis -> binary accuracy;
2. else the targets have fewer axes than the output, or a last axis of size 1 -> sparse
   categorical accuracy;
3. else -> categorical accuracy.

So a multi-unit sigmoid output trained with binary cross-entropy on multi-label targets reports
categorical accuracy, as in Keras 3; ask for ``"binary_accuracy"`` for the per-label rate.

A metric's key in the logs is the string as given (``"auc"`` logs ``auc``, ``"AUC"`` logs
``AUC``) or the object's ``name``; a repeated name gets ``_1``, ``_2``..., and a
``weighted_metrics`` entry whose name is taken gets the prefix ``weighted_`` (Keras 3's rules).
A plain function ``fn(y_true, y_pred)`` returning one value per sample becomes
:class:`MeanMetricWrapper` named after it.

``metrics=`` are averaged without the sample weights (padded steps of sequence outputs still
never count); ``weighted_metrics=`` use them: ``sum(w * v) / sum(w)`` (see
:mod:`cgru.sample_weights`). Your own metrics subclass :class:`Metric` (see there for the API
and the mergeable state, :func:`merge_states`, that lets processes combine their metrics).

Each metric has a ``direction``, ``"up"`` (higher is better) or ``"down"``; callbacks in
``mode="auto"`` use it to decide whether to maximise a monitored metric.
"""

from __future__ import annotations

import copy
from typing import Any

from .accuracy import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from .base import AGGREGATIONS, Metric, MetricState, MetricVariable, array_module, as_result, merge_states
from .confusion import AUC, FalseNegatives, FalsePositives, Precision, Recall, TrueNegatives, TruePositives
from .reduction import Mean, MeanMetricWrapper, Sum
from .registry import deserialize, register_builtin, register_metric, registered_name, serialize
from .regression import (
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    RootMeanSquaredError,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
)

# Keras-style function aliases
mae, mse, mape = mean_absolute_error, mean_squared_error, mean_absolute_percentage_error

#: The metric classes a string in ``compile`` can name.
_BY_NAME_CLASSES = (
    MeanSquaredError,
    RootMeanSquaredError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    Recall,
    TrueNegatives,
    TruePositives,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
)


def _names() -> dict[str, type]:
    from ..layers.base import to_snake_case

    names: dict[str, type] = {}
    for cls in _BY_NAME_CLASSES:
        names[cls.__name__] = cls
        names[to_snake_case(cls.__name__)] = cls
    for alias, cls in (
        ("mse", MeanSquaredError),
        ("mae", MeanAbsoluteError),
        ("mape", MeanAbsolutePercentageError),
    ):
        names[alias] = names[alias.upper()] = cls
    return names


#: String identifiers and their classes (Keras 3's ``ALL_OBJECTS_DICT``, case-sensitive).
NAMES = _names()
ACCURACY = ("accuracy", "acc")

register_builtin(*_BY_NAME_CLASSES, Accuracy, Mean, Sum, MeanMetricWrapper)


def _is_accuracy(identifier: Any) -> bool:
    return isinstance(identifier, str) and identifier.lower() in ACCURACY


def standardize(identifier: Any) -> Any:
    """What ``compile`` keeps for a metric: a known name (str) or a :class:`Metric`. Config
    dicts are rebuilt, metric classes instantiated and plain functions wrapped in
    :class:`MeanMetricWrapper`; anything else raises (before any data is seen)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier not in NAMES and not _is_accuracy(identifier):
            raise ValueError(f"unknown metric {identifier!r}; known: {sorted({*ACCURACY, *NAMES})}")
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier) and not isinstance(identifier, type):
        return MeanMetricWrapper(identifier)
    raise TypeError(
        "metrics must be names, cgru.metrics.Metric objects or functions of (y_true, y_pred), "
        f"got {identifier!r}"
    )


def accuracy_kind(y_shape: tuple, out_shape: tuple) -> str:
    """The accuracy that ``"accuracy"`` means for targets of ``y_shape`` and outputs of
    ``out_shape`` (both with the batch axis): Keras 3's ``is_binary_or_sparse_categorical``."""
    if out_shape[-1] == 1:
        return "binary_accuracy"
    if len(y_shape) < len(out_shape) or y_shape[-1] == 1:
        return "sparse_categorical_accuracy"
    return "categorical_accuracy"


def get(identifier: Any, y_shape: tuple | None = None, out_shape: tuple | None = None) -> Metric:
    """A new metric for ``identifier`` (objects are copied, names built), named as the logs
    name it; ``"accuracy"``/``"acc"`` need ``y_shape`` and ``out_shape`` (the targets' and the
    model output's shapes, batch axis included) to pick their kind."""
    identifier = standardize(identifier)
    if isinstance(identifier, Metric):
        return copy.deepcopy(identifier)
    if identifier in NAMES:
        return NAMES[identifier](name=identifier)
    if y_shape is None or out_shape is None:
        raise ValueError(f"metric {identifier!r} needs the target and output shapes to pick its kind")
    return NAMES[accuracy_kind(tuple(y_shape), tuple(out_shape))](name=identifier)


def name_of(identifier: Any) -> str:
    """The log key of a metric given by name or object (the name as given, as Keras)."""
    return identifier if isinstance(identifier, str) else identifier.name


def direction_of(identifier: Any) -> str | None:
    """``"up"``, ``"down"`` or None (unknown) for a metric given by name or object."""
    if isinstance(identifier, Metric):
        return identifier.direction
    if _is_accuracy(identifier):
        return "up"
    cls = NAMES.get(identifier) if isinstance(identifier, str) else None
    return None if cls is None else cls.direction


def log_names(metrics: list, weighted_metrics: list = ()) -> list[str]:
    """The log keys of ``metrics`` then ``weighted_metrics`` (Keras 3's ``CompileMetrics``
    rules): a repeated name gets ``_1``, ``_2``...; a weighted metric whose name is taken gets
    ``weighted_`` in front (then ``_1``... if that is taken too)."""
    counters: dict[str, int] = {}
    keys = []

    def claim(name: str) -> str:
        if name not in counters:
            counters[name] = 1
            return name
        index = counters[name]
        counters[name] += 1
        return f"{name}_{index}"

    for identifier in metrics:
        keys.append(claim(name_of(identifier)))
    for identifier in weighted_metrics:
        name = name_of(identifier)
        keys.append(claim(name) if name not in counters else claim(f"weighted_{name}"))
    return keys


def serialize_identifier(identifier: Any) -> Any:
    """A compiled metric as saved: its name, or :func:`serialize` of the object."""
    return identifier if isinstance(identifier, str) else serialize(identifier)


__all__ = [
    "AGGREGATIONS",
    "AUC",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "FalseNegatives",
    "FalsePositives",
    "Mean",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "Metric",
    "MetricState",
    "MetricVariable",
    "NAMES",
    "Precision",
    "Recall",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "Sum",
    "TopKCategoricalAccuracy",
    "TrueNegatives",
    "TruePositives",
    "accuracy",
    "accuracy_kind",
    "array_module",
    "as_result",
    "binary_accuracy",
    "categorical_accuracy",
    "deserialize",
    "direction_of",
    "get",
    "log_names",
    "mae",
    "mape",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "merge_states",
    "mse",
    "name_of",
    "register_metric",
    "registered_name",
    "serialize",
    "serialize_identifier",
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "standardize",
    "top_k_categorical_accuracy",
]
