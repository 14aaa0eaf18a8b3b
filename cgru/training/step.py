"""One step on one batch: forward, loss, and for training backward, gradients, optimizer.

:func:`train_step` is the whole training step, in this order:

1. the weights are read once (:meth:`Trainee._pinned_now`): the step computes on that set;
2. forward (``training=True``) and the loss and its gradient (:func:`score`);
3. backward through the layers, which leaves each weight's gradient in its ``grad``;
4. the strategy's ``reduce_step`` (where processes combine their gradients and the batch's
   result; by default its ``reduce_gradients``);
5. the optimizer computes the new weights and publishes them with its new state at once,
   unless another thread replaced the weights meanwhile (then the step is dropped).

:func:`evaluate_step` is steps 1-2 without training. Both return a
:class:`~cgru.training.logs.BatchResult`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..losses import align_targets
from ..padding import step_mask, zero_padding
from .data import Batch
from .logs import BatchResult
from .surface import Trainee


class Scored(NamedTuple):
    """A batch run forward and scored: the targets and the output on the backend, the layers'
    caches, the mask of valid steps of a sequence output (or None), the loss and its gradient
    with respect to the output, and what the loss's reduction divided by
    (:meth:`cgru.losses.Loss.denominator`)."""

    y: Any
    y_pred: Any
    caches: list
    mask: Any
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
    loss, dy = loss_fn.value_and_grad(y_true, y_pred, mask)
    if training and sequence:
        dy = zero_padding(xp, dy, out_lengths)
    return Scored(y, y_pred, caches, mask, loss, dy, loss_fn.denominator(y_pred.shape[:-1], mask))


def metric_stats(metrics: Any, scored: Scored) -> list:
    """``(sum, count)`` of each metric's values on the scored batch."""
    return [m.sum_count(scored.y, scored.y_pred, scored.mask) for m in metrics]


def loss_and_grads(model: Trainee, batch: Batch, metrics: Any = (), pinned: Any = None) -> tuple:
    """Forward and backward on ``batch`` with ``pinned``'s weights (by default the current
    ones): ``(loss, metric (sum, count) pairs)``, each weight's gradient left in its ``grad``.
    Changes no weight."""
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
    "score",
    "train_step",
]
