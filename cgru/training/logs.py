"""The loss and metric values ``fit`` and ``evaluate`` report: accumulated in one place.

A step returns a :class:`BatchResult`: the batch's loss, its number of samples and, per metric,
the :class:`~cgru.metrics.MetricState` that the batch alone adds (what a freshly reset metric
holds after updating on it). :class:`LogsAccumulator` keeps Keras 3's running values over a
pass: the loss is a mean over batches weighted by their sizes (Keras's loss tracker, a ``Mean``
updated with each batch's loss and size) and each metric is its result on the merge of the
states of all batches so far. Because states merge (:func:`~cgru.metrics.merge_states`), a
strategy that spans processes combines each batch's states before they are logged.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..metrics import MetricState, as_result, merge_states


class BatchResult(NamedTuple):
    """What one step reports: ``loss`` of the batch, ``size`` (its samples) and ``stats``, one
    :class:`~cgru.metrics.MetricState` per metric (this batch's contribution); ``weight``: what
    the loss's reduction divided the batch's weighted values by
    (:meth:`cgru.losses.Loss.denominator`; None when it divides by nothing), so that results of
    several batches combine into their union's (:mod:`cgru.distributed.combine`)."""

    loss: float
    size: int
    stats: list
    weight: float | None = None


class LogsAccumulator:
    """Running values over the batches of one pass: ``{"loss": ..., <metric name>: ...}``.

    ``metrics``: the pass's :class:`~cgru.training.compiled.BoundMetric` s, in log order.
    """

    def __init__(self, metrics: list) -> None:
        self.metrics = list(metrics)
        self.names = [m.name for m in self.metrics]
        self.loss_sum = 0.0
        self.seen = 0
        self.states: list[MetricState] = [MetricState((), ()) for _ in self.metrics]

    def add(self, result: BatchResult) -> None:
        self.loss_sum += result.loss * result.size
        self.seen += result.size
        self.states = [merge_states([mine, theirs]) for mine, theirs in zip(self.states, result.stats)]

    def mean_loss(self) -> float:
        return self.loss_sum / self.seen if self.seen else 0.0

    def metric_results(self) -> list[Any]:
        """Each metric's result on the states so far (0.0 for a metric that saw nothing)."""
        return [metric_result(bound.metric, state) for bound, state in zip(self.metrics, self.states)]

    def result(self) -> dict:
        logs = {"loss": self.mean_loss()}
        logs.update(zip(self.names, self.metric_results()))
        return logs


def metric_result(metric: Any, state: MetricState) -> Any:
    """``metric``'s result on ``state`` (a float, or an array for several thresholds); 0.0 for
    an empty state."""
    if not state.values:
        return 0.0
    return as_result(metric.stateless_result(state))


__all__ = ["BatchResult", "LogsAccumulator", "metric_result"]
