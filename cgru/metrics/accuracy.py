"""Accuracy metrics, Keras 3's functions and classes (weighted means of per-sample matches).

- ``binary_accuracy``: ``y_pred > threshold`` equals the target, per element;
- ``categorical_accuracy``: arg-max of the one-hot target equals the prediction's arg-max;
- ``sparse_categorical_accuracy``: the integer target equals the prediction's arg-max;
- ``top_k_categorical_accuracy`` / ``sparse_top_k_categorical_accuracy``: the target class is
  among the ``k`` highest scores (ties at the boundary count as in, as TensorFlow's
  ``in_top_k``; a non-finite target score never does);
- ``accuracy`` (the class :class:`Accuracy`): target and prediction equal.

The string ``"accuracy"`` in ``compile`` is not :class:`Accuracy`: it picks binary, sparse
categorical or categorical accuracy from the shapes (see :mod:`cgru.metrics`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import floatx
from ..sample_weights import squeeze_or_expand_to_same_rank
from ..validation import check_int
from .base import target_and_output
from .reduction import FixedFunctionMean


def accuracy(y_true: Any, y_pred: Any) -> Any:
    """1.0 where ``y_true`` equals ``y_pred``, element by element."""
    xp, y_true, y_pred = target_and_output(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true.astype(y_pred.dtype, copy=False), y_pred)
    return (y_true == y_pred).astype(floatx())


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    """1.0 where ``y_pred > threshold`` equals the 0/1 target, element by element."""
    xp, y_true, y_pred = target_and_output(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return ((y_pred > threshold).astype(y_true.dtype) == y_true).astype(floatx())


def _drop_unit_axis(y_true: Any, y_pred_ndim: int) -> tuple[Any, bool]:
    """Sparse targets ``(..., 1)`` of the prediction's rank lose that axis."""
    if y_true.ndim == y_pred_ndim and y_true.shape[-1] == 1:
        return y_true.reshape(y_true.shape[:-1]), True
    return y_true, False


def categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    """1.0 where the arg-max of the one-hot target equals the prediction's arg-max."""
    xp, y_true, y_pred = target_and_output(y_true, y_pred)
    true_ids = xp.argmax(y_true, axis=-1)
    if true_ids.ndim == y_pred.ndim:
        true_ids = true_ids.reshape(true_ids.shape[:-1])
    return (true_ids == xp.argmax(y_pred, axis=-1)).astype(floatx())


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    """1.0 where the integer target equals the prediction's arg-max."""
    xp, y_true, y_pred = target_and_output(y_true, y_pred, sparse=True)
    y_true, _ = _drop_unit_axis(y_true, y_pred.ndim)
    matches = (y_true.astype(y_pred.dtype) == xp.argmax(y_pred, axis=-1).astype(y_pred.dtype)).astype(
        floatx()
    )
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = matches.reshape(matches.shape[:-1])
    return matches


def in_top_k(xp: Any, targets: Any, predictions: Any, k: int) -> Any:
    """TensorFlow's ``in_top_k``: whether each target class scores among the ``k`` highest of
    its row of ``predictions`` (N, C); ties at the boundary count as in."""
    classes = predictions.shape[-1]
    targets = targets.astype(np.int64)
    valid = (targets >= 0) & (targets < classes)
    rows = xp.arange(predictions.shape[0])
    score = predictions[rows, xp.where(valid, targets, 0)]
    above = (predictions > score[:, None]).sum(axis=-1)
    return valid & xp.isfinite(score) & (above < k)


def _top_k_matches(xp: Any, true_ids: Any, y_pred: Any, k: int) -> Any:
    shape = true_ids.shape
    flat_pred = y_pred.reshape(-1, y_pred.shape[-1])
    return in_top_k(xp, true_ids.reshape(-1), flat_pred, k).astype(floatx()).reshape(shape)


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> Any:
    """1.0 where the one-hot target's class is among the ``k`` highest scores."""
    xp, y_true, y_pred = target_and_output(y_true, y_pred)
    return _top_k_matches(xp, xp.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(
    y_true: Any, y_pred: Any, k: int = 5, from_sorted_ids: bool = False
) -> Any:
    """1.0 where the integer target is among the ``k`` highest scores; with ``from_sorted_ids``
    ``y_pred`` holds class ids sorted by score and the first ``k`` are checked."""
    xp, y_true, y_pred = target_and_output(y_true, y_pred, sparse=not from_sorted_ids)
    if from_sorted_ids:
        shape = y_true.shape
        ids = y_pred.reshape(-1, y_pred.shape[-1])[:, :k]
        hits = (ids == y_true.reshape(-1, 1).astype(ids.dtype)).any(axis=1)
        return hits.astype(floatx()).reshape(shape)
    y_true, _ = _drop_unit_axis(y_true, y_pred.ndim)
    return _top_k_matches(xp, y_true, y_pred, k)


class _Accuracies(FixedFunctionMean):
    """Shared by the accuracy classes: larger is better."""

    direction = "up"


class Accuracy(_Accuracies):
    """How often predictions equal targets."""

    def __init__(self, name: str = "accuracy", dtype: Any = None) -> None:
        super().__init__(accuracy, name=name, dtype=dtype)


class BinaryAccuracy(_Accuracies):
    """How often ``y_pred > threshold`` equals the 0/1 target."""

    def __init__(self, name: str = "binary_accuracy", dtype: Any = None, threshold: float = 0.5) -> None:
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=float(threshold))
        self.threshold = float(threshold)

    def get_config(self) -> dict:
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(_Accuracies):
    """How often the arg-max of one-hot targets and predictions agree."""

    def __init__(self, name: str = "categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(_Accuracies):
    """How often integer targets equal the predictions' arg-max."""

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class TopKCategoricalAccuracy(_Accuracies):
    """How often the one-hot target is among the ``k`` (default 5) highest scores."""

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype: Any = None) -> None:
        self.k = check_int(k, "k", 1)
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=self.k)

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(_Accuracies):
    """How often the integer target is among the ``k`` (default 5) highest scores."""

    def __init__(
        self,
        k: int = 5,
        name: str = "sparse_top_k_categorical_accuracy",
        dtype: Any = None,
        from_sorted_ids: bool = False,
    ) -> None:
        self.k = check_int(k, "k", 1)
        self.from_sorted_ids = bool(from_sorted_ids)
        super().__init__(
            sparse_top_k_categorical_accuracy,
            name=name,
            dtype=dtype,
            k=self.k,
            from_sorted_ids=self.from_sorted_ids,
        )

    def get_config(self) -> dict:
        config = {**super().get_config(), "k": self.k}
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config


__all__ = [
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "in_top_k",
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "top_k_categorical_accuracy",
]
