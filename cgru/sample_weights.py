"""How sample weights and the mask of padded steps weigh losses and metrics (Keras 3's rules).

A loss or a metric first computes one value per sample, or per time step of a sequence output:
``values`` has the output's shape without its last axis, ``(B,)`` or ``(B, T)``. A sample weight
is ``(B,)`` (one weight per sample) or, for sequence outputs, ``(B, T)`` (one per time step);
``(B, 1)`` and ``(B, T, 1)`` are read as ``(B,)`` and ``(B, T)``. The mask of a right-padded
sequence output (``lengths=``) is ``(B, T)``: 1 at the valid steps, 0 at the padding.

Losses (:func:`reduce_weighted_values`, Keras's ``reduce_weighted_values``):

- ``"sum_over_batch_size"`` (the default, also ``"mean"``): ``sum(w * v) / N``, ``N`` the number
  of values (``B`` or ``B * T``), **not** the sum of the weights; with a mask
  ``sum(w * m * v) / sum(m)``, the number of valid steps;
- ``"sum"``: ``sum(w * m * v)``;
- ``"mean_with_sample_weight"``: ``sum(w * m * v) / sum(w * m)``; without a mask the divisor is
  the sum of the weights as given (a ``(B,)`` weight on ``(B, T)`` values sums ``B`` weights);
- ``"none"``: ``w * m * v``, no reduction.

What a reduction divides by, :func:`loss_denominator`, is a sum over the values (of ``m``, or of
``w * m``) just as the weighted sum it divides is: so the losses of several batches combine
into the loss of their union (how data-parallel training combines its processes' batches,
:mod:`cgru.distributed.combine`).

A per-sample ``(B,)`` weight on a sequence output weighs every step of that sample (Keras 3 asks
for ``(B, 1)`` there and fails on ``(B,)``).

Metrics see one combined weight, :func:`metric_weights`: the sample weight (broadcast over the
time steps) times the mask, so padded steps always have weight 0. Metrics compiled with
``metrics=`` see only the mask (Keras 3 weighs only ``weighted_metrics=`` by sample weights).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .validation import as_numeric_array

#: The reductions a loss accepts (None is "none").
REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight", "sum", "none")


def standardize_reduction(reduction: Any) -> str:
    """``reduction`` checked; None becomes ``"none"``."""
    if reduction is None:
        return "none"
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; known: {REDUCTIONS} or None")
    return reduction


def squeeze_or_expand_to_same_rank(x1: Any, x2: Any, expand_rank_1: bool = True) -> tuple:
    """Keras's rule: when the ranks differ by one and the longer array ends in an axis of size
    1, drop that axis (or, for a rank-1 other array and ``expand_rank_1``, add one to it)."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2.reshape(x2.shape + (1,))
        else:
            x1 = x1.reshape(x1.shape[:-1])
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1.reshape(x1.shape + (1,))
        else:
            x2 = x2.reshape(x2.shape[:-1])
    return x1, x2


def check_sample_weight(
    sample_weight: Any, out_shape: tuple, samples: int, what: str = "sample_weight", dtype: Any = np.float64
) -> np.ndarray | None:
    """The sample weights for ``samples`` samples of outputs shaped ``out_shape`` (batch axis
    first, None for unknown sizes), checked on the host: ``(samples,)`` or, for a sequence
    output, ``(samples, time)``, finite, as a NumPy array of ``dtype``; None stays None.

    ``(samples, 1)`` and ``(samples, time, 1)`` are read as ``(samples,)`` and ``(samples,
    time)``, as Keras does. TypeError/ValueError name ``what`` and the expected shape.
    """
    if sample_weight is None:
        return None
    w = as_numeric_array(sample_weight, what)
    per_value = tuple(out_shape[1:-1])
    sequence = len(per_value) == 1
    time = per_value[0] if sequence else None
    expected = "(samples,)" + (" or (samples, time)" if sequence else "")
    if w.ndim >= 2 and w.shape[-1] == 1:
        w = w.reshape(w.shape[:-1])
    if w.ndim == 0 or w.shape[0] != samples:
        raise ValueError(
            f"{what} must have shape {expected} for outputs of shape {tuple(out_shape)}: one weight "
            f"per sample{' or per time step' if sequence else ''}; got shape {w.shape} for {samples} samples"
        )
    if w.ndim > 1 and not (sequence and w.ndim == 2):
        raise ValueError(
            f"{what} must have shape {expected} for outputs of shape {tuple(out_shape)}, got {w.shape}"
        )
    if w.ndim == 2 and time is not None and w.shape[1] != time:
        raise ValueError(
            f"{what} must have shape ({samples}, {time}) (one weight per time step) or ({samples},), "
            f"got {w.shape}"
        )
    with np.errstate(over="ignore"):
        w = w.astype(dtype, copy=False)
    if not np.isfinite(w).all():
        raise ValueError(f"{what} must be finite numbers (in {np.dtype(dtype).name})")
    return w


def _expand_per_sample(w: Any, values_ndim: int) -> Any:
    """A ``(B,)`` weight on ``(B, T)`` values as ``(B, 1)``: it weighs every step."""
    if w.ndim == 1 and values_ndim == 2:
        return w.reshape(w.shape + (1,))
    return w


def _check_broadcast(weight_shape: tuple, values_shape: tuple) -> None:
    try:
        fits = np.broadcast_shapes(weight_shape, values_shape) == tuple(values_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"sample_weight of shape {tuple(weight_shape)} does not fit values of shape "
            f"{tuple(values_shape)} (one value per sample, or per time step of a sequence output)"
        )


def _aligned_weight(xp: Any, values: Any, sample_weight: Any) -> tuple:
    """``(values, w)``: the sample weight in ``values``' dtype, aligned to broadcast over them
    (Keras's squeeze-or-expand rule, a ``(B,)`` weight over every step of ``(B, T)`` values)."""
    w = xp.asarray(sample_weight, dtype=values.dtype)
    values, w = squeeze_or_expand_to_same_rank(values, w)
    w = _expand_per_sample(w, values.ndim)
    _check_broadcast(w.shape, values.shape)
    return values, w


def reduce_weighted_values(
    xp: Any, values: Any, sample_weight: Any = None, mask: Any = None, reduction: str = "sum_over_batch_size"
) -> tuple:
    """``(reduced, coefficients)``: Keras's weighted reduction of ``values`` (see the module).

    For every reduction but ``"none"``, ``reduced == sum(coefficients * values)`` with
    ``coefficients`` (``values``' shape) independent of the values, so they are also the
    gradient of the reduced loss with respect to each value. For ``"none"`` ``reduced`` is the
    weighted values and ``coefficients`` the weights (None without weights or mask).
    """
    dtype = values.dtype
    w = None
    if sample_weight is not None:
        values, w = _aligned_weight(xp, values, sample_weight)
    if mask is not None:
        m = xp.asarray(mask, dtype=dtype)
        if reduction in ("sum_over_batch_size", "mean"):
            valid = float(m.sum())
            m = m * dtype.type(m.size / valid if valid else 0.0)
        w = m if w is None else w * m
    if reduction == "none":
        return (values if w is None else values * w), w
    coefficients = xp.ones(values.shape, dtype=dtype) if w is None else xp.broadcast_to(w, values.shape) * 1
    if reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        divisor = float(w.sum()) if reduction == "mean_with_sample_weight" and w is not None else values.size
        coefficients = coefficients * dtype.type(1.0 / divisor if divisor else 0.0)
    return float((values * coefficients).sum()), coefficients


def loss_denominator(
    xp: Any,
    values_shape: tuple,
    sample_weight: Any = None,
    mask: Any = None,
    reduction: str = "sum_over_batch_size",
    dtype: Any = None,
) -> float | None:
    """What :func:`reduce_weighted_values` divides the weighted sum of values shaped
    ``values_shape`` by (its arguments as there; ``dtype``: the values' float dtype, in which
    the weights are summed; default the weight's or the mask's, else float64):

    - ``"sum_over_batch_size"``/``"mean"``: the number of values, or with ``mask`` the number
      of valid ones, ``sum(m)``: never the weights (Keras 3);
    - ``"mean_with_sample_weight"``: ``sum(w * m)``, the weights as given (without a mask, a
      ``(B,)`` weight counts once per sample); the number of values without weights or mask;
    - None for ``"sum"`` and ``"none"``, which divide by nothing.

    So ``reduced * denominator == sum(w * m * v)``, except where the denominator is 0: the
    reduction then gives 0. That loses nothing when no value has a weight (no valid values, or
    all weights 0), and is NaN otherwise (``"mean_with_sample_weight"`` with weights of both
    signs that cancel): a NaN denominator says the weighted sum cannot be recovered from the
    reduced loss.
    """
    if reduction in ("sum", "none"):
        return None
    if dtype is None:
        given = sample_weight if sample_weight is not None else mask
        dtype = getattr(given, "dtype", None)
        dtype = dtype if dtype is not None and np.dtype(dtype).kind == "f" else np.float64
    dtype = np.dtype(dtype)
    m = None if mask is None else xp.asarray(mask, dtype=dtype)
    if reduction != "mean_with_sample_weight" or sample_weight is None:
        return float(np.prod(values_shape)) if m is None else float(m.sum())
    _, w = _aligned_weight(xp, xp.zeros(tuple(values_shape), dtype=dtype), sample_weight)
    if m is not None:
        w = w * m
    denominator = float(w.sum())
    if denominator == 0 and bool((w != 0).any()):
        return math.nan
    return denominator


def metric_weights(xp: Any, sample_weight: Any, mask: Any, values_shape: tuple, dtype: Any) -> Any:
    """The weight a metric sees for values of ``values_shape`` (``(B,)`` or ``(B, T)``): the
    sample weight (a ``(B,)`` one broadcast over the steps) times the mask; None when neither."""
    if sample_weight is None and mask is None:
        return None
    w = xp.ones(values_shape, dtype=dtype) if mask is None else xp.asarray(mask, dtype=dtype)
    if sample_weight is not None:
        sw = _expand_per_sample(xp.asarray(sample_weight, dtype=dtype), len(values_shape))
        _check_broadcast(sw.shape, values_shape)
        w = w * sw
    return w


__all__ = [
    "REDUCTIONS",
    "check_sample_weight",
    "loss_denominator",
    "metric_weights",
    "reduce_weighted_values",
    "squeeze_or_expand_to_same_rank",
    "standardize_reduction",
]
