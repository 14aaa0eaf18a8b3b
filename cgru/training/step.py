"""One step on one batch: forward, loss, and for training backward, gradients, optimizer.

:func:`train_step` is the whole training step, in this order:

1. the weights are read once (:meth:`Trainee._pinned_now`): the step computes on that set;
2. forward (``training=True``) and the loss and its gradient (:func:`score`), weighted by the
   batch's sample weights and the mask of padded steps (:mod:`cgru.sample_weights`);
3. backward through the layers, which leaves each weight's gradient in its ``grad``;
4. the strategy's ``reduce_step`` (where processes combine their gradients and the batch's
   result; by default its ``reduce_gradients``);
5. the optimizer computes the new weights and publishes them with its new state at once,
   unless another thread replaced the weights meanwhile (then the step is dropped).

:func:`evaluate_step` is steps 1-2 without training. Both return a
:class:`~cgru.training.logs.BatchResult`, whose metric states (:func:`metric_stats`) come from
the output before the update: ``metrics=`` see the mask of padded steps as their weights,
``weighted_metrics=`` the sample weights times that mask (Keras 3).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..losses import align_targets
from ..metrics import MetricState
from ..padding import step_mask, zero_padding
from ..sample_weights import metric_weights
from ..validation import xp_of
from .data import Batch
from .logs import BatchResult
from .surface import Trainee


class Scored(NamedTuple):
    """A batch run forward and scored: the targets (host) and the output (backend), the layers'
    caches, the mask of valid steps of a sequence output and its lengths (or None), the sample
    weights on the backend (or None), the weighted loss and its gradient with respect to the
    output, and what the loss's reduction divided the weighted values by
    (:meth:`cgru.losses.Loss.denominator`)."""

    y: Any
    y_pred: Any
    caches: list
    mask: Any
    lengths: Any
    sample_weight: Any
    loss: float
    dy: Any
    weight: float | None


def score(model: Trainee, batch: Batch, pinned: Any, training: bool) -> Scored:
    """Run ``batch`` forward on ``pinned``'s weights and compute the compiled loss."""
    ops = model._current_ops()
    xp = ops.xp
    lengths = batch.lengths
    x = model._prepare_input(batch.x)
    if training and lengths is not None and x.dtype.kind == "f":
        # Zeros in the padded steps: layers that do not take lengths (Dense, Dropout before
        # the first GRU) would carry NaN or inf there into their weight gradients (0 * inf).
        x = zero_padding(xp, x, lengths)
    y_pred, caches, out_lengths = model._forward(x, training, lengths, pinned)
    loss_fn = model.loss
    y = xp.asarray(batch.y)
    y_true = align_targets(y if loss_fn.sparse else ops.asarray(y), y_pred, loss_fn.sparse)
    sequence = out_lengths is not None and y_pred.ndim == 3
    mask = step_mask(xp, out_lengths, y_pred) if sequence else None
    weights = None if batch.sample_weight is None else xp.asarray(batch.sample_weight, dtype=y_pred.dtype)
    loss, dy = loss_fn.value_and_grad(y_true, y_pred, mask, sample_weight=weights)
    if training and sequence:
        dy = zero_padding(xp, dy, out_lengths)
    weight = loss_fn.denominator(y_pred.shape[:-1], weights, mask)
    return Scored(y, y_pred, caches, mask, out_lengths if sequence else None, weights, loss, dy, weight)


def metric_stats(metrics: Any, scored: Scored) -> list:
    """What the scored batch adds to each metric's state (a list of
    :class:`~cgru.metrics.MetricState`); ``metrics`` are
    :class:`~cgru.training.compiled.BoundMetric` s. Padded steps get weight 0 and zeros for
    targets and output, whatever they held."""
    if not metrics:
        return []
    y_pred = scored.y_pred
    xp = xp_of(y_pred)
    y_true = xp.asarray(scored.y)
    if scored.lengths is not None:  # the model's output is zero there already (Sequential._forward)
        y_true = zero_padding(xp, y_true, scored.lengths)
    values_shape = tuple(y_pred.shape[:-1])
    plain = metric_weights(xp, None, scored.mask, values_shape, y_pred.dtype)
    weighted = metric_weights(xp, scored.sample_weight, scored.mask, values_shape, y_pred.dtype)
    if y_pred.shape[0] == 0:
        return [nothing_added(b.metric, y_true, y_pred, weighted if b.weighted else plain) for b in metrics]
    return [b.metric.batch_state(y_true, y_pred, weighted if b.weighted else plain) for b in metrics]


def nothing_added(metric: Any, y_true: Any, y_pred: Any, sample_weight: Any) -> MetricState:
    """What a batch of no samples (a process whose data ran out, :mod:`cgru.distributed`) adds
    to ``metric``: its reset state, in the layout of every other batch's state, which changes
    nothing merged into states that started from it (every batch's does). Only a metric that
    builds its state on its first update (and has not yet) is updated on the empty arrays."""
    if not metric.variables:
        return metric.batch_state(y_true, y_pred, sample_weight)
    return MetricState(tuple(metric.stateless_reset_state()), tuple(v.aggregation for v in metric.variables))


def loss_and_grads(model: Trainee, batch: Batch, metrics: Any = (), pinned: Any = None) -> tuple:
    """Forward and backward on ``batch`` with ``pinned``'s weights (by default the current
    ones): ``(loss, metric states)`` (see :func:`metric_stats`), each weight's gradient left in
    its ``grad``. Changes no weight."""
    if pinned is None:
        pinned = model._pinned_now()
    scored = score(model, batch, pinned, training=True)
    model._backward(scored.dy, scored.caches)
    return scored.loss, metric_stats(metrics, scored)


def batch_result(scored: Scored, metrics: Any) -> BatchResult:
    """What a step reports about its scored batch."""
    return BatchResult(scored.loss, scored.y_pred.shape[0], metric_stats(metrics, scored), scored.weight)


def train_step(model: Trainee, batch: Batch, metrics: Any, strategy: Any) -> BatchResult:
    """One optimizer step on ``batch`` (see the module documentation); returns the result the
    strategy gives back (the global batch's, for a strategy that spans processes)."""
    pinned = model._pinned_now()
    scored = score(model, batch, pinned, training=True)
    model._backward(scored.dy, scored.caches)
    grads_and_params = [(p.grad, p) for p in model.trainable_weights]
    grads, result = strategy.reduce_step(grads_and_params, batch_result(scored, metrics))
    model.optimizer._step(grads, expected=zip(pinned.params, pinned.values))
    return result


def evaluate_step(model: Trainee, batch: Batch, metrics: Any, pinned: Any) -> BatchResult:
    """The loss and metrics of ``batch`` on ``pinned``'s weights, nothing trained."""
    return batch_result(score(model, batch, pinned, training=False), metrics)


__all__ = [
    "Scored",
    "batch_result",
    "evaluate_step",
    "loss_and_grads",
    "metric_stats",
    "nothing_added",
    "score",
    "train_step",
]
