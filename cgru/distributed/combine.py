r"""How the ranks' steps combine into the step of their global batch: the math of one all-reduce.

Global batch ``i`` is the concatenation, in rank order, of every rank's batch ``i``:
:math:`B = B_0 \cup \dots \cup B_{R-1}`. Its loss is what one process computes on all of it.
Write :math:`V(B)` for the loss values of a batch (one per sample, or one per valid time step of
a padded sequence output: steps past a sequence's ``lengths`` are not values) and
:math:`D(B)` for what the loss's reduction divides their sum by
(:meth:`cgru.losses.Loss.denominator`):

- ``"sum_over_batch_size"`` (the default): :math:`D(B) = |V(B)|` (the valid steps of padded
  sequence outputs, not the samples), and

  .. math::
     L(B) = \frac{1}{D(B)} \sum_{v \in V(B)} \ell_v
          = \frac{\sum_r D_r L_r}{\sum_r D_r},
     \qquad
     \nabla L(B) = \frac{\sum_r D_r \nabla L_r}{\sum_r D_r},

  with :math:`L_r = L(B_r)`, :math:`D_r = D(B_r)`: since :math:`V(B)` is the disjoint union of
  the :math:`V(B_r)`, :math:`D(B) = \sum_r D_r` and the sum splits, and the gradient is linear
  in the values. So the exact gradient of the global batch's mean loss is the
  :math:`D_r`-weighted average of the ranks' mean-loss gradients: weighted by sample counts for
  one value per sample, by valid-step counts for padded sequences. An unweighted average of the
  ranks' gradients is exact only when every :math:`D_r` is the same, and is wrong for uneven
  shards, a short last batch, or ragged ``lengths``.
- ``"sum"``: :math:`D` is None, :math:`L(B) = \sum_r L_r` and :math:`\nabla L(B) = \sum_r
  \nabla L_r`.

An empty batch (a rank whose shard ran out) has :math:`D_r = 0`, :math:`L_r = 0` and zero
gradients: it adds nothing. Clipping, weight decay and the optimizer's update then run on the
global gradient, as one process would run them.

So each rank sends, in one buffer (:class:`~cgru.distributed.fused.FusedLayout`, in the
gradients' dtype), :math:`D_r \nabla L_r` for every trainable weight, then the scalars
:math:`D_r`, :math:`n_r` (samples), :math:`D_r L_r` (:math:`L_r` for ``"sum"``), one flag per
weight (1 when this rank has its gradient) and its metric states (sums and counts), which add
up; one ``Allreduce(SUM)`` leaves the global sums on every rank, and :func:`global_step` divides.
The logged loss of the step is :math:`L(B)`, its size :math:`\sum_r n_r`, its metric states
the sums: what one process logs for batch :math:`B`.

Counts travel as floats of the gradients' dtype: exact up to :math:`2^{24}` per step in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..training.logs import BatchResult
from .fused import FusedLayout

#: Scalars before the per-weight flags: D_r, n_r, D_r * L_r.
_HEAD = 3


def flatten_numbers(tree: Any) -> tuple[list[float], Any]:
    """The numbers of a metric state (nested tuples/lists of numbers and NumPy arrays) as a flat
    list, and a function that rebuilds the same structure from such a list."""
    if isinstance(tree, (tuple, list)):
        parts = [flatten_numbers(item) for item in tree]
        sizes = [len(values) for values, _ in parts]
        kind = type(tree)

        def rebuild(values: list) -> Any:
            out, start = [], 0
            for (_, build), size in zip(parts, sizes):
                out.append(build(values[start:start + size]))
                start += size
            return kind(out)

        return [v for values, _ in parts for v in values], rebuild
    if isinstance(tree, np.ndarray) and tree.dtype.kind in "fiub":
        shape = tree.shape
        return [float(v) for v in tree.reshape(-1)], lambda values: np.asarray(values).reshape(shape)
    if isinstance(tree, (int, float, np.number)) and not isinstance(tree, bool):
        return [float(tree)], lambda values: float(values[0])
    raise TypeError(
        f"a metric state of type {type(tree).__name__} cannot be summed across processes: "
        "metric states must be numbers or NumPy arrays that add up (sums and counts)"
    )


def mean_reduction(result: BatchResult) -> bool:
    """Whether the loss divides by a denominator (the mean reductions) or not ("sum")."""
    return result.weight is not None


def result_scalars(result: BatchResult) -> tuple[list[float], Any]:
    """The batch result's part of the sums, and what rebuilds its metric states."""
    stats, rebuild = flatten_numbers(list(result.stats))
    if mean_reduction(result):
        head = [result.weight, result.size, result.weight * result.loss]
    else:
        head = [0.0, result.size, result.loss]
    return head + stats, rebuild


def global_result(sums: np.ndarray, mean: bool, rebuild: Any) -> BatchResult:
    """The global batch's result from the summed scalars of :func:`result_scalars`."""
    weight, size, loss_sum = (float(v) for v in sums[:_HEAD])
    loss = (loss_sum / weight if weight else 0.0) if mean else loss_sum
    stats = rebuild(list(sums[_HEAD:]))
    return BatchResult(loss, int(round(size)), stats, weight if mean else None)


class StepLayout:
    """The buffer of one training step for a fixed list of weights and metric-state size."""

    def __init__(self, shapes: list[tuple], stat_count: int, dtype: Any) -> None:
        self.weights = len(shapes)
        self.fused = FusedLayout(shapes, _HEAD + self.weights + stat_count, dtype)

    def contribution(self, xp: Any, grads: list, result: BatchResult) -> tuple[Any, Any]:
        """This rank's buffer, and what rebuilds the metric states of the summed one."""
        scalars, rebuild = result_scalars(result)
        flags = [0.0 if g is None else 1.0 for g in grads]
        scalars = scalars[:_HEAD] + flags + scalars[_HEAD:]
        scale = result.weight if mean_reduction(result) else 1.0
        buffer = self.fused.pack(self.fused.new_buffer(xp), grads, scale, scalars)
        return buffer, rebuild

    def global_step(self, summed: Any, mean: bool, rebuild: Any) -> tuple[list, BatchResult]:
        """The global batch's gradients (None for a weight no rank had a gradient for) and
        result, from the summed buffer (its gradient part divided in place)."""
        sums = self.fused.scalar_values(summed)
        head, flags, stats = sums[:_HEAD], sums[_HEAD:_HEAD + self.weights], sums[_HEAD + self.weights:]
        result = global_result(np.concatenate([head, stats]), mean, rebuild)
        if mean and result.weight:
            part = summed[:self.fused.array_size]
            part /= part.dtype.type(result.weight)
        grads = [g if flag else None for g, flag in zip(self.fused.views(summed), flags)]
        return grads, result


__all__ = [
    "StepLayout",
    "flatten_numbers",
    "global_result",
    "mean_reduction",
    "result_scalars",
]
