"""The loss and metric values ``fit`` and ``evaluate`` report: accumulated in one place.

A step returns a :class:`BatchResult` (the batch's loss and, per metric, the sum of its values
and their count); :class:`LogsAccumulator` adds them up over a pass. The loss is averaged over
samples (each batch's loss weighted by its size) and each metric over all of its values (time
steps of padded sequence outputs included only where valid), as Keras reports them.
"""

from __future__ import annotations

from typing import NamedTuple


class BatchResult(NamedTuple):
    """What one step reports: ``loss`` of the batch, ``size`` (its samples) and ``stats``, one
    ``(sum of values, number of values)`` pair per metric; ``weight``: what the loss's
    reduction divided by (:meth:`cgru.losses.Loss.denominator`; None when it divides by
    nothing), so that results of several batches combine into their union's."""

    loss: float
    size: int
    stats: list
    weight: float | None = None


def metric_means(stats: list) -> list[float]:
    """Each metric's mean from its ``(sum, count)`` pair (0.0 for no values)."""
    return [s / c if c else 0.0 for s, c in stats]


class LogsAccumulator:
    """Running means over the batches of one pass: ``{"loss": ..., <metric name>: ...}``."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.loss_sum = 0.0
        self.seen = 0
        self.sums = [[0.0, 0.0] for _ in self.names]

    def add(self, result: BatchResult) -> None:
        self.loss_sum += result.loss * result.size
        self.seen += result.size
        for acc, (s, c) in zip(self.sums, result.stats):
            acc[0] += s
            acc[1] += c

    def mean_loss(self) -> float:
        return self.loss_sum / self.seen if self.seen else 0.0

    def result(self) -> dict:
        logs = {"loss": self.mean_loss()}
        logs.update(zip(self.names, metric_means(self.sums)))
        return logs


__all__ = ["BatchResult", "LogsAccumulator", "metric_means"]
