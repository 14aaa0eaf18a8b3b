"""Distribution strategies: what changes when several processes train one model together.

``fit``, ``evaluate``, ``train_on_batch`` and ``test_on_batch`` ask their strategy at fixed
points, so a strategy that spans processes (:class:`cgru.distributed.MPIStrategy`) plugs in
without touching the loop:

- ``prepare(model)``: before the first training step of ``fit`` and of ``train_on_batch`` (the
  data checked, the model built and compiled): where the processes start from one set of
  weights and optimizer state;
- ``distribute(source)``: the batch source (:mod:`cgru.training.adapters`: over arrays,
  PyDatasets, iterables or generators) this process runs, for the training and validation data
  of ``fit`` and the data of ``evaluate`` (where the processes agree on the number of steps).
  The source returned offers what the loop asks of the one given: ``steps`` and ``epoch``, and
  ``used_up`` and ``ran_out`` for a generator's; the loop closes the one it gave;
- ``reduce_step(grads_and_params, result)``: after backward, before the optimizer applies the
  gradients, with the step's :class:`~cgru.training.logs.BatchResult`; returns the gradients to
  apply and the result to log. By default it calls ``reduce_gradients(grads_and_params)`` and
  keeps the result; a strategy that sends both in one message overrides it;
- ``reduce_batch(result)``: each batch's result before it is logged, training and evaluation
  alike (across the processes: the loss weighted by its denominator, the sizes summed, each
  metric's :class:`~cgru.metrics.MetricState` merged as :func:`~cgru.metrics.merge_states`
  merges it, i.e. each array combined with its aggregation's operation);
- ``is_chief``: whether this process prints progress;
- ``callbacks(callbacks)``: the callbacks this process runs (others than the chief drop those
  that write files, such as ``ModelCheckpoint``).

:class:`LocalStrategy`, the default, is one process on its own: it changes nothing.
"""

from __future__ import annotations

from typing import Any

from .logs import BatchResult


class LocalStrategy:
    """Training in this process alone."""

    is_chief = True

    def prepare(self, model: Any) -> None:
        """Called before the first training step of ``fit`` and ``train_on_batch``."""

    def distribute(self, source: Any) -> Any:
        """The batch source this process runs."""
        return source

    def reduce_step(self, grads_and_params: list, result: BatchResult) -> tuple[list, BatchResult]:
        """The ``(gradient, Parameter)`` pairs the optimizer applies, and the step's result."""
        return self.reduce_gradients(grads_and_params), result

    def reduce_gradients(self, grads_and_params: list) -> list:
        """The ``(gradient, Parameter)`` pairs the optimizer applies."""
        return grads_and_params

    def reduce_batch(self, result: BatchResult) -> BatchResult:
        """The batch result that is logged."""
        return result

    def callbacks(self, callbacks: list) -> list:
        """The callbacks this process runs."""
        return callbacks


#: What the loop asks of a strategy.
MEMBERS = ("is_chief", "prepare", "distribute", "reduce_step", "reduce_batch", "callbacks")


def resolve(strategy: Any) -> Any:
    """``strategy``, or a :class:`LocalStrategy` for None; TypeError for an object that is not
    one (it lacks a member of :class:`LocalStrategy`)."""
    if strategy is None:
        return LocalStrategy()
    missing = [name for name in MEMBERS if not hasattr(strategy, name)]
    if missing:
        raise TypeError(
            f"strategy must be a distribution strategy such as cgru.distributed.MPIStrategy(), "
            f"got {strategy!r} (it lacks {', '.join(missing)})"
        )
    return strategy


__all__ = ["MEMBERS", "LocalStrategy", "resolve"]
