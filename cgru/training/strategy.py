"""Distribution strategies: what changes when several processes train one model together.

``fit`` and ``evaluate`` ask their strategy at fixed points, so a strategy that spans processes
plugs in without touching the loop:

- ``reduce_gradients(grads_and_params)``: after backward, before the optimizer applies the
  gradients (an all-reduce that averages each gradient over the processes goes here);
- ``reduce_batch(result)``: each batch's :class:`~cgru.training.logs.BatchResult` before it is
  logged (across the processes: the size-weighted loss and the sizes summed, each metric's
  :class:`~cgru.metrics.MetricState` merged by :func:`~cgru.metrics.merge_states`, i.e. each
  array all-reduced with its aggregation's operation);
- ``is_chief``: whether this process prints progress;
- ``callbacks(callbacks)``: the callbacks this process runs (others than the chief would drop
  those that write files, such as ``ModelCheckpoint``).

:class:`LocalStrategy`, the default, is one process on its own: it changes nothing.
"""

from __future__ import annotations

from typing import Any

from .logs import BatchResult


class LocalStrategy:
    """Training in this process alone."""

    is_chief = True

    def reduce_gradients(self, grads_and_params: list) -> list:
        """The ``(gradient, Parameter)`` pairs the optimizer applies."""
        return grads_and_params

    def reduce_batch(self, result: BatchResult) -> BatchResult:
        """The batch result that is logged."""
        return result

    def callbacks(self, callbacks: list) -> list:
        """The callbacks this process runs."""
        return callbacks


def resolve(strategy: Any) -> Any:
    """``strategy``, or a :class:`LocalStrategy` for None."""
    return LocalStrategy() if strategy is None else strategy


__all__ = ["LocalStrategy", "resolve"]
