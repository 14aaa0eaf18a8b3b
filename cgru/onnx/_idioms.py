"""Small graph idioms the exporters share, each written once: axis moves, time reversal within
each sequence's length, the valid-step mask, reductions over axes across opsets and lengths
from padded ids."""

from __future__ import annotations

from typing import Any

import numpy as np

from .context import ExportContext

_INT64_MIN = np.iinfo(np.int64).min
INT32, INT64 = 6, 7  # TensorProto.INT32 and TensorProto.INT64 (fixed by the ONNX standard)


def ints(ctx: ExportContext, values: Any) -> str:
    """An int64 constant (axes, indices, shapes)."""
    return ctx.constant(np.asarray(values, dtype=np.int64), name="ints")


def squeeze(ctx: ExportContext, x: str, axes: list[int]) -> str:
    return ctx.node("Squeeze", [x, ints(ctx, axes)])


def unsqueeze(ctx: ExportContext, x: str, axes: list[int]) -> str:
    return ctx.node("Unsqueeze", [x, ints(ctx, axes)])


def to_time_major(ctx: ExportContext, x: str, features: int) -> str:
    """(B, T, F) -> (T, B, F). Streaming (T = 1), a Reshape: it moves no data."""
    if ctx.streaming:
        return ctx.node("Reshape", [x, ints(ctx, [1, -1, features])])
    return ctx.node("Transpose", [x], perm=[1, 0, 2])


def to_batch_major(ctx: ExportContext, x: str, features: int) -> str:
    """(T, B, F) -> (B, T, F). Streaming (T = 1), a Reshape: it moves no data."""
    if ctx.streaming:
        return ctx.node("Reshape", [x, ints(ctx, [-1, 1, features])])
    return ctx.node("Transpose", [x], perm=[1, 0, 2])


def take(ctx: ExportContext, x: str, index: int, axis: int) -> str:
    """``x`` at ``index`` along ``axis``, that axis removed."""
    return ctx.node("Gather", [x, ints(ctx, index)], axis=axis)


def reverse_time(ctx: ExportContext, x: str) -> str:
    """Reverse the time axis (1) of a batch-major ``x``: each sequence within its own length when
    ``ctx.lengths`` is set (steps past a length stay where they are), else the whole axis."""
    if ctx.lengths is not None:
        lengths = ctx.node("Cast", [ctx.lengths], to=INT64)  # ReverseSequence takes int64 lengths
        return ctx.node("ReverseSequence", [x, lengths], batch_axis=0, time_axis=1)
    return ctx.node("Slice", [x, ints(ctx, [-1]), ints(ctx, [_INT64_MIN]), ints(ctx, [1]), ints(ctx, [-1])])


def valid_steps(ctx: ExportContext, x: str, lengths: str) -> str:
    """bool (B, T, 1): True at the steps ``t < lengths[b]`` of a batch-major ``x``."""
    time = take(ctx, ctx.node("Shape", [x]), 1, axis=0)
    steps = ctx.node("Range", [ctx.constant(np.int64(0)), time, ctx.constant(np.int64(1))])
    limits = unsqueeze(ctx, ctx.node("Cast", [lengths], to=INT64), [1])
    return unsqueeze(ctx, ctx.node("Less", [steps, limits]), [2])


def step_mask(ctx: ExportContext, x: str, lengths: str) -> str:
    """``x`` (B, T, F) with the steps at ``t >= lengths[b]`` set to zero, whatever they held (a
    select, as cgru's zero_padding: NaN or inf there do not survive)."""
    zero = ctx.constant(np.zeros((), dtype=ctx.dtype), name="zero")
    return ctx.node("Where", [valid_steps(ctx, x, lengths), x, zero])


def reduce(ctx: ExportContext, op: str, x: str, axes: list[int], keepdims: bool) -> str:
    """``op`` ("ReduceSum", "ReduceMean", "ReduceMax") over ``axes``: the axes are an input from
    opset 18 on (13 for ReduceSum), an attribute before."""
    if op == "ReduceSum" or ctx.opset >= 18:
        return ctx.node(op, [x, ints(ctx, axes)], keepdims=int(keepdims))
    return ctx.node(op, [x], axes=list(axes), keepdims=int(keepdims))


def lengths_from_ids(ctx: ExportContext, ids: str, lengths: str | None) -> str:
    """int32 (B,): the number of non-zero ids of each right-padded row of ``ids`` (B, T), the
    smaller of that and ``lengths`` when given (as ``Embedding(mask_zero=True)`` derives them)."""
    nonzero = ctx.node("Not", [ctx.node("Equal", [ids, ctx.constant(np.int64(0))])])
    counts = ctx.node("ReduceSum", [ctx.node("Cast", [nonzero], to=INT32), ints(ctx, [1])], keepdims=0)
    return counts if lengths is None else ctx.node("Min", [counts, lengths])
