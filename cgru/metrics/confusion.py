"""Metrics over confusion-matrix counts at thresholds: ``TruePositives``... , ``Precision``,
``Recall`` and ``AUC``, with Keras 3's thresholds, weighting and curve summation.

A prediction ``p`` is positive at threshold ``t`` when ``p > t``; targets are positive when
non-zero. Counts are weighted sums (``sample_weight`` broadcast over the units, padded steps
weigh 0). Evenly spaced thresholds (``i / (n - 1)``, as ``AUC``'s defaults) are counted in one
pass over the predictions (bucketed, then cumulated), others by comparing every prediction with
every threshold, both as Keras does.

``AUC(num_thresholds=200, curve="ROC" | "PR" | "PRGAIN", summation_method="interpolation" |
"minoring" | "majoring")`` uses the thresholds ``-eps, 1/(n-1), ..., (n-2)/(n-1), 1+eps``; the
PR curve with interpolation uses Davis & Goadrich's interpolation of true and false positives
(Keras's ``interpolate_pr_auc``); ``multi_label=True`` keeps one curve per label (the second
axis) and averages the AUCs (weighted by ``label_weights``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import config as _config
from ..sample_weights import broadcast_weight, squeeze_or_expand_to_same_rank
from ..validation import check_int, to_host
from .base import Metric, array_module

#: The threshold below every prediction, for ``top_k`` (Keras's ``NEG_INF``).
NEG_INF = -1e10
KINDS = ("tp", "fp", "tn", "fn")


def parse_thresholds(thresholds: Any, default: float) -> list[float]:
    """The thresholds as a list, each checked to lie in [0, 1]; ``[default]`` for None."""
    if thresholds is None:
        return [float(default)]
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]
    bad = [t for t in values if t is None or not 0 <= float(t) <= 1]
    if bad or not values:
        raise ValueError(f"thresholds must be values in [0, 1], got {thresholds!r}")
    return [float(t) for t in values]


def evenly_distributed(thresholds: Any) -> bool:
    """Whether the thresholds are ``i / (n - 1)`` for ``n >= 3`` (up to the float epsilon)."""
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(thresholds, even, atol=_config.epsilon()))


def _filter_top_k(xp: Any, x: Any, k: int) -> Any:
    """``x`` with all but the ``k`` highest entries of its last axis set to :data:`NEG_INF`
    (ties: lower index first, as ``top_k``)."""
    order = xp.argsort(-x, axis=-1, kind="stable") if xp is np else xp.argsort(-x, axis=-1)
    rank = xp.argsort(order, axis=-1)
    return xp.where(rank < k, x, x.dtype.type(NEG_INF))


def confusion_counts(
    y_true: Any,
    y_pred: Any,
    thresholds: Any,
    kinds: tuple = KINDS,
    top_k: int | None = None,
    class_id: int | None = None,
    sample_weight: Any = None,
    multi_label: bool = False,
    label_weights: Any = None,
    evenly: bool = False,
    dtype: Any = "float32",
) -> dict:
    """Keras's ``update_confusion_matrix_variables``: ``{kind: counts}`` (host float64 arrays
    of shape ``(thresholds,)``, or ``(thresholds, labels)`` with ``multi_label``) for each of
    ``kinds`` (``"tp"``, ``"fp"``, ``"tn"``, ``"fn"``)."""
    xp = array_module(y_pred)
    y_true = xp.asarray(y_true).astype(dtype, copy=False)
    y_pred = xp.asarray(y_pred).astype(dtype, copy=False)
    with_epsilon = evenly and (thresholds[0] < 0.0 or thresholds[-1] > 1.0)
    thresholds = xp.asarray(np.asarray(thresholds, dtype=dtype))
    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            f"y_true of shape {tuple(y_true.shape)} does not match y_pred of shape {tuple(y_pred.shape)}"
        )
    if sample_weight is not None:
        sample_weight = xp.asarray(sample_weight).astype(dtype, copy=False)
        sample_weight = sample_weight.reshape(sample_weight.shape + (1,))
        _, sample_weight = squeeze_or_expand_to_same_rank(y_true, sample_weight, expand_rank_1=False)
    if top_k is not None:
        y_pred = _filter_top_k(xp, y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim == 1:
            raise ValueError(f"class_id needs y_pred of shape (samples, classes), got {tuple(y_pred.shape)}")
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
    weights = _weights(xp, sample_weight, label_weights if not multi_label else None, y_pred, dtype)
    if multi_label and y_pred.ndim != 2:
        raise ValueError(
            f"multi_label needs y_pred of rank 2 (samples, labels), got shape {tuple(y_pred.shape)}"
        )
    if not multi_label:
        y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
        weights = None if weights is None else weights.reshape(-1)
    if evenly:
        counts = _bucketed(xp, y_true, y_pred, weights, len(thresholds), multi_label, with_epsilon, kinds)
    else:
        counts = _compared(xp, y_true, y_pred, weights, thresholds, kinds)
    return {kind: to_host(c).astype(np.float64) for kind, c in counts.items()}


def _weights(xp: Any, sample_weight: Any, label_weights: Any, y_pred: Any, dtype: Any) -> Any:
    """Sample weights times label weights, broadcast to ``y_pred``'s shape (None for none)."""
    weights = None
    if sample_weight is not None:
        weights = broadcast_weight(xp, sample_weight, y_pred.shape, "predictions", sample_weight.shape[:-1])
    if label_weights is not None:
        lw = xp.broadcast_to(xp.asarray(label_weights, dtype=dtype), y_pred.shape)
        weights = lw if weights is None else weights * lw
    return weights


def _bucketed(xp, y_true, y_pred, weights, n, multi_label, with_epsilon, kinds):
    """Counts at the evenly spaced thresholds ``i / (n - 1)``: each prediction falls in the
    bucket of the highest threshold it exceeds; positives at threshold ``i`` are the sum of
    the buckets from ``i`` on."""
    w = 1.0 if weights is None else weights
    y_pred = xp.clip(y_pred, 0.0, 1.0)
    positive = (y_true != 0).astype(y_pred.dtype)
    buckets = xp.ceil(y_pred * y_pred.dtype.type(n - 1)) - 1
    if with_epsilon:
        buckets = xp.maximum(buckets, 0)
    buckets = buckets.astype(np.int64)
    inside = buckets >= 0  # a prediction of exactly 0 exceeds no threshold from 0 on
    buckets = xp.where(inside, buckets, 0)
    true_labels, false_labels = positive * w * inside, (1.0 - positive) * w * inside

    def cumulated(values: Any) -> Any:
        if multi_label:
            labels = values.shape[1]
            index = (buckets + n * xp.arange(labels)[None, :]).reshape(-1)
            per_bucket = xp.bincount(
                index, weights=values.reshape(-1).astype(np.float64), minlength=n * labels
            )
            per_bucket = per_bucket.reshape(labels, n).T
        else:
            per_bucket = xp.bincount(buckets, weights=values.astype(np.float64), minlength=n)
        return xp.cumsum(per_bucket[::-1], axis=0)[::-1]

    tp, fp = cumulated(true_labels), cumulated(false_labels)
    # every prediction exceeds no threshold or some: the rest of the positives are misses
    total_true = (positive * w).astype(np.float64).sum(axis=0)
    total_false = ((1.0 - positive) * w).astype(np.float64).sum(axis=0)
    counts = {"tp": tp, "fp": fp, "fn": total_true - tp, "tn": total_false - fp}
    return {k: counts[k] for k in kinds}


def _compared(xp, y_true, y_pred, weights, thresholds, kinds):
    """Counts by comparing every prediction with every threshold (any thresholds)."""
    shape = (len(thresholds),) + (1,) * y_pred.ndim
    predicted = y_pred[None] > thresholds.reshape(shape)
    actual = (y_true != 0)[None]
    cells = {
        "tp": (actual, predicted),
        "fn": (actual, ~predicted),
        "fp": (~actual, predicted),
        "tn": (~actual, ~predicted),
    }
    counts = {}
    for kind in kinds:
        label, pred = cells[kind]
        hits = (label & pred).astype(np.float64)
        if weights is not None:
            hits = hits * weights[None].astype(np.float64)
        counts[kind] = hits.sum(axis=1)
    return counts


def divide_no_nan(a: Any, b: Any) -> Any:
    """``a / b``, 0 where ``b`` is 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


class _ThresholdCounts(Metric):
    """Shared by the metrics that count confusion-matrix cells at thresholds."""

    #: the cells counted, one state variable each (named after Keras's variables)
    kinds: tuple = ()
    _variable_names = {
        "tp": "true_positives",
        "fp": "false_positives",
        "tn": "true_negatives",
        "fn": "false_negatives",
    }

    def __init__(
        self,
        thresholds: Any = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.top_k = None if top_k is None else check_int(top_k, "top_k", 1)
        self.class_id = None if class_id is None else check_int(class_id, "class_id", 0)
        self.thresholds = parse_thresholds(thresholds, 0.5 if top_k is None else NEG_INF)
        self._evenly = evenly_distributed(self.thresholds)
        for kind in self.kinds:
            setattr(
                self,
                self._variable_names[kind],
                self.add_variable(len(self.thresholds), name=self._variable_names[kind]),
            )

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        counts = confusion_counts(
            y_true,
            y_pred,
            self.thresholds,
            self.kinds,
            self.top_k,
            self.class_id,
            sample_weight,
            evenly=self._evenly,
            dtype=self.dtype,
        )
        for kind, count in counts.items():
            getattr(self, self._variable_names[kind]).assign_add(count)

    def _per_threshold(self, values: Any) -> Any:
        values = np.asarray(values, dtype=np.float64)
        return float(values[0]) if len(self.thresholds) == 1 else values

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "thresholds": self.init_thresholds,
            "top_k": self.top_k,
            "class_id": self.class_id,
        }


class _Count(_ThresholdCounts):
    """One cell's weighted count at each threshold (default 0.5)."""

    direction = None

    def __init__(self, thresholds: Any = None, name: str | None = None, dtype: Any = None) -> None:
        super().__init__(thresholds=thresholds, name=name, dtype=dtype)

    def result(self) -> Any:
        return self._per_threshold(getattr(self, self._variable_names[self.kinds[0]]).value)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds}


class TruePositives(_Count):
    kinds = ("tp",)


class FalsePositives(_Count):
    kinds = ("fp",)


class TrueNegatives(_Count):
    kinds = ("tn",)


class FalseNegatives(_Count):
    kinds = ("fn",)


class Precision(_ThresholdCounts):
    """``tp / (tp + fp)`` at each threshold (default 0.5; with ``top_k`` only the ``k``
    highest scores of each row count as positive; ``class_id`` looks at one class only)."""

    direction = "up"
    kinds = ("tp", "fp")

    def result(self) -> Any:
        tp, fp = self.true_positives.value, self.false_positives.value
        return self._per_threshold(divide_no_nan(tp, tp + fp))


class Recall(_ThresholdCounts):
    """``tp / (tp + fn)`` at each threshold (the arguments as :class:`Precision`)."""

    direction = "up"
    kinds = ("tp", "fn")

    def result(self) -> Any:
        tp, fn = self.true_positives.value, self.false_negatives.value
        return self._per_threshold(divide_no_nan(tp, tp + fn))


CURVES = ("ROC", "PR", "PRGAIN")
SUMMATIONS = ("interpolation", "minoring", "majoring")


class AUC(Metric):
    """The area under the ROC or PR curve, from counts at ``num_thresholds`` thresholds.

    ``thresholds``: explicit thresholds in [0, 1] instead of the evenly spaced ones;
    ``multi_label``: one curve per label (second axis), averaged (``label_weights``: the
    average's weights); ``num_labels``: their number, else taken from the first batch;
    ``from_logits``: apply a sigmoid to the predictions first.
    """

    direction = "up"

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str | None = None,
        dtype: Any = None,
        thresholds: Any = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: Any = None,
        from_logits: bool = False,
    ) -> None:
        curve_key = str(curve).upper()
        if curve_key not in CURVES:
            raise ValueError(f"curve must be one of {CURVES}, got {curve!r}")
        method = str(summation_method).lower()
        if method not in SUMMATIONS:
            raise ValueError(f"summation_method must be one of {SUMMATIONS}, got {summation_method!r}")
        super().__init__(name=name, dtype=dtype)
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(parse_thresholds(thresholds, 0.5))
            self.num_thresholds = len(inner) + 2
            self._evenly = evenly_distributed(np.array([0.0, *inner, 1.0]))
        else:
            self.num_thresholds = check_int(num_thresholds, "num_thresholds", 2)
            inner = [(i + 1) * 1.0 / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
            self._evenly = True
        eps = _config.epsilon()
        self._thresholds = np.array([0.0 - eps, *inner, 1.0 + eps])
        self.curve = curve_key
        self.summation_method = method
        self.multi_label = bool(multi_label)
        self.num_labels = None if num_labels is None else check_int(num_labels, "num_labels", 1)
        self.label_weights = (
            None if label_weights is None else np.asarray(to_host(label_weights), dtype=np.float64)
        )
        self.from_logits = bool(from_logits)
        if not self.multi_label and num_labels:
            raise ValueError("num_labels is needed only when multi_label is True")
        if not self.multi_label:
            self._build(None)
        elif num_labels:
            self._build(int(num_labels))

    @property
    def thresholds(self) -> list[float]:
        return [float(t) for t in self._thresholds]

    def _build(self, labels: int | None) -> None:
        shape = (self.num_thresholds,) if labels is None else (self.num_thresholds, labels)
        self._num_labels = labels
        for kind in KINDS:
            name = _ThresholdCounts._variable_names[kind]
            setattr(self, name, self.add_variable(shape, name=name))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        xp = array_module(y_pred)
        y_pred = xp.asarray(y_pred)
        if not self._variables:
            if y_pred.ndim != 2:
                raise ValueError(
                    f"AUC(multi_label=True) needs y_pred of rank 2, got shape {tuple(y_pred.shape)}"
                )
            self._build(int(y_pred.shape[1]))
        if self.from_logits:
            y_pred = 1.0 / (1.0 + xp.exp(-y_pred.astype(self.dtype)))
        counts = confusion_counts(
            y_true,
            y_pred,
            self._thresholds,
            KINDS,
            sample_weight=sample_weight,
            multi_label=self.multi_label,
            label_weights=None if self.multi_label else self.label_weights,
            evenly=self._evenly,
            dtype=self.dtype,
        )
        for kind, count in counts.items():
            getattr(self, _ThresholdCounts._variable_names[kind]).assign_add(count)

    def _average(self, by_label: np.ndarray) -> float:
        if not self.multi_label:
            return float(by_label.sum())
        per_label = by_label.sum(axis=0)
        if self.label_weights is None:
            return float(per_label.mean())
        return float(divide_no_nan((per_label * self.label_weights).sum(), self.label_weights.sum()))

    def _interpolate_pr_auc(self, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        increments = divide_no_nan(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
        return self._average(increments)

    def result(self) -> float:
        if not self._variables:
            return 0.0
        tp, fp = self.true_positives.value, self.false_positives.value
        tn, fn = self.true_negatives.value, self.false_negatives.value
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc(tp, fp, fn)
        recall = divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, divide_no_nan(tp, tp + fp)
        else:
            scale = divide_no_nan(tp + fn, tn + fp)
            recall_gain = np.maximum(np.where(tp == 0, 0.0, 1.0 - scale * divide_no_nan(fn, tp)), 0.0)
            precision_gain = np.where(tp == 0, 1.0, 1.0 - scale * divide_no_nan(fp, tp))
            x, y = recall_gain, precision_gain
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self._average((x[:-1] - x[1:]) * heights)

    def get_config(self) -> dict:
        config = {
            **super().get_config(),
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
            "from_logits": self.from_logits,
        }
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config


__all__ = [
    "AUC",
    "FalseNegatives",
    "FalsePositives",
    "Precision",
    "Recall",
    "TrueNegatives",
    "TruePositives",
    "confusion_counts",
    "evenly_distributed",
    "parse_thresholds",
]
