r"""How the ranks' steps combine into the step of their global batch: the math of one all-reduce.

Global batch ``i`` is the concatenation, in rank order, of every rank's batch ``i``:
:math:`B = B_0 \cup \dots \cup B_{R-1}`. Its loss is what one process computes on all of it.

**The loss and its gradient.** Write :math:`V(B)` for the values of a batch's loss (one per
sample, or one per time step of a sequence output), :math:`w_v` for the weight of value
:math:`v` (its sample weight, 1 without; a per-sample weight counts at each step of its
sequence) and :math:`m_v` for its mask (0 at the steps past a sequence's ``lengths``, 1
elsewhere and without ``lengths``). Every reduction a model trains with
(:mod:`cgru.sample_weights`) divides the weighted sum

.. math:: N(B) = \sum_{v \in V(B)} w_v m_v \ell_v

by a denominator :math:`D(B)` (:meth:`cgru.losses.Loss.denominator`,
:func:`cgru.sample_weights.loss_denominator`):

- ``"sum_over_batch_size"`` (the default) and ``"mean"``: :math:`D(B) = \sum_v m_v`, the number
  of valid values, *not* the sum of the weights (Keras 3 divides by the number of values);
- ``"mean_with_sample_weight"``: :math:`D(B) = \sum_v w_v m_v` (without a mask, the sum of the
  weights as given);
- ``"sum"``: no denominator, :math:`L(B) = N(B)`.

Both :math:`N` and :math:`D` are sums over the values, and the values of :math:`B` are the
disjoint union of the ranks', so :math:`N(B) = \sum_r N_r` and :math:`D(B) = \sum_r D_r`. With
:math:`L_r = N_r / D_r`, the loss of rank :math:`r`'s batch as that rank computes it:

.. math::
   L(B) = \frac{N(B)}{D(B)} = \frac{\sum_r D_r L_r}{\sum_r D_r},
   \qquad
   \nabla L(B) = \frac{\sum_r D_r \nabla L_r}{\sum_r D_r},

since the weights and the mask do not depend on the model's weights, so the gradient splits
the same way (for ``"sum"``: :math:`L(B) = \sum_r L_r`, :math:`\nabla L(B) = \sum_r \nabla
L_r`). The exact gradient of the global batch is the :math:`D_r`-weighted average of the ranks'
gradients: weighted by sample counts for one value per sample, by valid-step counts for
padded sequences, by the sums of the weights for ``"mean_with_sample_weight"``, and never by
the sample weights under ``"sum_over_batch_size"``. An unweighted average of the ranks'
gradients is exact only when every :math:`D_r` is the same, and is wrong for uneven shards, a
short last batch or ragged ``lengths``.

:math:`D_r L_r = N_r` holds wherever :math:`D_r \ne 0`. A zero :math:`D_r` is a batch without
valid values or without weight (an empty batch of a rank whose shard ran out: :math:`N_r = 0`,
zero gradients; it adds nothing), except under ``"mean_with_sample_weight"`` with weights of
both signs that cancel: the rank's loss is then 0 while :math:`N_r` need not be. Its
denominator is NaN (:func:`~cgru.sample_weights.loss_denominator`), which the sum carries to
every rank, and every rank raises ValueError before the optimizer step. Clipping, weight decay
and the optimizer's update then run on the global gradient, as one process would run them.

**Metrics.** Each metric's state is a list of arrays, each with an aggregation
(:class:`cgru.metrics.MetricState`): the state of the global batch is the merge of the ranks'
states (:func:`cgru.metrics.merge_states`), what one process reaches for a mergeable metric.
``"sum"`` arrays add up in the same sum as the gradients. A ``"max"`` or ``"min"`` array
cannot: each rank writes it into its own one of :math:`R` slots, zeros in the others, so that
the sum leaves every rank's array on every rank (:math:`x + 0 = x` exactly, infinities
included), and each rank then takes the maximum (minimum) over the slots itself. Those arrays
take :math:`R` times their size in the buffer; most metrics have none.

**The buffer.** So each rank sends, in one buffer (:class:`~cgru.distributed.fused.FusedLayout`,
in the gradients' dtype): :math:`D_r \nabla L_r` for every trainable weight, then the scalars
:math:`D_r`, :math:`n_r` (samples), :math:`D_r L_r` (:math:`L_r` for ``"sum"``), one flag per
weight (1 when this rank has its gradient), the summed metric arrays and the slots of the
others (:class:`StateLayout`). One ``Allreduce(SUM)`` leaves the global sums on every rank, and
:meth:`StepLayout.global_step` divides and merges. The logged loss of the step is :math:`L(B)`,
its size :math:`\sum_r n_r`, its metric states the merged ones: what one process logs for
batch :math:`B`.

Counts and metric states travel as floats of the gradients' dtype: exact up to :math:`2^{24}`
per step in float32, and a float32 model's metric states (float64 in the metrics) arrive
rounded to float32.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Any

import numpy as np

from ..metrics import AGGREGATIONS, MetricState
from ..training.logs import BatchResult
from .fused import FusedLayout

#: Scalars before the per-weight flags: D_r, n_r, D_r * L_r.
_HEAD = 3

#: What every rank raises when a rank's loss cannot be combined (a NaN denominator).
CANCELLING_WEIGHTS = (
    "the sample weights of a rank's batch sum to 0 while not all 0 (weights of both signs that "
    "cancel), so under reduction='mean_with_sample_weight' its loss is 0 and its weighted values "
    "cannot be combined with the other ranks': give weights that do not cancel within a batch, or "
    "use reduction='sum_over_batch_size'"
)


def state_spec(states: list) -> tuple:
    """The layout of a step's metric states (one :class:`~cgru.metrics.MetricState` per metric):
    per metric, ``(shape, dtype, aggregation)`` of each array. TypeError for a state that is not
    arrays of numbers."""
    spec = []
    for state in states:
        if not isinstance(state, MetricState):
            raise TypeError(f"a metric state must be a cgru.metrics.MetricState, got {type(state).__name__}")
        arrays = []
        for value, aggregation in zip(state.values, state.aggregations):
            value = np.asarray(value)
            if value.dtype.kind not in "fiub" or aggregation not in AGGREGATIONS:
                raise TypeError(
                    f"a metric state array of dtype {value.dtype} with aggregation {aggregation!r} "
                    f"cannot be combined across processes: metric states are arrays of numbers "
                    f"aggregated by one of {sorted(AGGREGATIONS)}"
                )
            arrays.append((value.shape, value.dtype.str, aggregation))
        spec.append(tuple(arrays))
    return tuple(spec)


class StateLayout:
    """Where the metric states of ``spec`` (:func:`state_spec`) lie among the scalars that
    ``ranks`` processes sum: first every ``"sum"`` array, then ``ranks`` slots each holding one
    rank's ``"max"``/``"min"`` arrays. ``size``: the scalars it takes."""

    def __init__(self, spec: tuple, ranks: int) -> None:
        self.spec = spec
        self.ranks = int(ranks)
        arrays = [item for metric in spec for item in metric]
        self.summed = sum(math.prod(shape) for shape, _, agg in arrays if agg == "sum")
        self.gathered = sum(math.prod(shape) for shape, _, agg in arrays if agg != "sum")
        self.size = self.summed + self.ranks * self.gathered

    def pack(self, states: list, rank: int) -> np.ndarray:
        """This rank's part of the sums (float64): its ``"sum"`` arrays, its other arrays in
        slot ``rank``, zeros in the other slots."""
        if state_spec(states) != self.spec:
            raise ValueError(
                f"the metric states changed layout during training: {state_spec(states)} instead of "
                f"{self.spec}"
            )
        out = np.zeros(self.size, dtype=np.float64)
        summed, gathered = 0, self.slot_start(rank)
        for state in states:
            for value, aggregation in zip(state.values, state.aggregations):
                flat = np.asarray(value, dtype=np.float64).reshape(-1)
                if aggregation == "sum":
                    out[summed:summed + flat.size] = flat
                    summed += flat.size
                else:
                    out[gathered:gathered + flat.size] = flat
                    gathered += flat.size
        return out

    def slot_start(self, rank: int) -> int:
        """Where rank ``rank``'s slot starts."""
        return self.summed + rank * self.gathered

    def unpack(self, sums: np.ndarray) -> list[MetricState]:
        """The merged states from the summed scalars: the ``"sum"`` arrays as they are, the
        others reduced over the ranks' slots with their aggregation."""
        summed = 0
        gathered = 0
        slots = [sums[self.slot_start(r):self.slot_start(r) + self.gathered] for r in range(self.ranks)]
        states = []
        for metric in self.spec:
            values, aggregations = [], []
            for shape, dtype, aggregation in metric:
                size = math.prod(shape)
                if aggregation == "sum":
                    flat = sums[summed:summed + size]
                    summed += size
                else:
                    parts = [slot[gathered:gathered + size] for slot in slots]
                    flat = reduce(AGGREGATIONS[aggregation], parts)
                    gathered += size
                values.append(np.asarray(flat, dtype=np.dtype(dtype)).reshape(shape))
                aggregations.append(aggregation)
            states.append(MetricState(tuple(values), tuple(aggregations)))
        return states


def mean_reduction(result: BatchResult) -> bool:
    """Whether the loss divides by a denominator (the mean reductions) or not ("sum")."""
    return result.weight is not None


def result_head(result: BatchResult) -> list[float]:
    """The batch result's loss and size as they add up: ``[D_r, n_r, D_r * L_r]`` (``[0, n_r,
    L_r]`` for ``"sum"``)."""
    if mean_reduction(result):
        return [result.weight, result.size, result.weight * result.loss]
    return [0.0, result.size, result.loss]


def global_result(head: Any, mean: bool, states: list) -> BatchResult:
    """The global batch's result from the summed :func:`result_head` and the merged metric
    states. ValueError (on every rank alike) when a rank's loss could not be combined."""
    weight, size, loss_sum = (float(v) for v in head)
    if mean and math.isnan(weight):
        raise ValueError(CANCELLING_WEIGHTS)
    loss = (loss_sum / weight if weight else 0.0) if mean else loss_sum
    return BatchResult(loss, int(round(size)), states, weight if mean else None)


def result_scalars(result: BatchResult, layout: StateLayout, rank: int) -> np.ndarray:
    """A batch result as the float64 scalars an evaluation step sums (no gradients)."""
    head = np.asarray(result_head(result), dtype=np.float64)
    return np.concatenate([head, layout.pack(result.stats, rank)])


def result_from_sums(sums: np.ndarray, mean: bool, layout: StateLayout) -> BatchResult:
    """The global batch's result from the summed :func:`result_scalars`."""
    return global_result(sums[:_HEAD], mean, layout.unpack(sums[_HEAD:]))


class StepLayout:
    """The buffer of one training step for a fixed list of weights and metric-state layout."""

    def __init__(self, shapes: list[tuple], states: StateLayout, dtype: Any) -> None:
        self.weights = len(shapes)
        self.states = states
        self.fused = FusedLayout(shapes, _HEAD + self.weights + states.size, dtype)

    def contribution(self, xp: Any, grads: list, result: BatchResult, rank: int) -> Any:
        """This rank's buffer: its gradients times its denominator, then its scalars."""
        flags = [0.0 if g is None else 1.0 for g in grads]
        scalars = np.concatenate([result_head(result), flags, self.states.pack(result.stats, rank)])
        scale = result.weight if mean_reduction(result) else 1.0
        return self.fused.pack(self.fused.new_buffer(xp), grads, scale, scalars)

    def global_step(self, summed: Any, mean: bool) -> tuple[list, BatchResult]:
        """The global batch's gradients (None for a weight no rank had a gradient for) and
        result, from the summed buffer (its gradient part divided in place)."""
        sums = self.fused.scalar_values(summed)
        head, flags = sums[:_HEAD], sums[_HEAD:_HEAD + self.weights]
        result = global_result(head, mean, self.states.unpack(sums[_HEAD + self.weights:]))
        if mean and result.weight:
            part = summed[:self.fused.array_size]
            part /= part.dtype.type(result.weight)
        grads = [g if flag else None for g, flag in zip(self.fused.views(summed), flags)]
        return grads, result


__all__ = [
    "CANCELLING_WEIGHTS",
    "StateLayout",
    "StepLayout",
    "global_result",
    "mean_reduction",
    "result_from_sums",
    "result_head",
    "result_scalars",
    "state_spec",
]
