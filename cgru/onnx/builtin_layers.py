"""ONNX exporters of the built-in layers: ``exporter(layer, ctx) -> output name(s)``.

They read layers through their public attributes and weights only. A layer class may instead
define ``to_onnx(self, ctx)`` (see :mod:`cgru.onnx.context`), which takes precedence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..interop import gru_to_gate_rows
from ..layers import GRU, Bidirectional, Dense, Dropout, Embedding, ReverseTimesteps, SelectTimestep
from . import _idioms as idioms
from ._gru_spec import activation_attributes, direction_functions, gate_rows_to_onnx
from .context import ExportContext

_DENSE_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


def export_dense(layer: Dense, ctx: ExportContext) -> str:
    weights = layer.get_weights()
    y = ctx.node("MatMul", [ctx.input, ctx.constant(weights[0], name="kernel")])
    if layer.use_bias:
        y = ctx.node("Add", [y, ctx.constant(weights[1], name="bias")])
    if layer.activation == "softmax":
        return ctx.node("Softmax", [y], axis=-1)
    if layer.activation in _DENSE_ACTIVATIONS:
        return ctx.node(_DENSE_ACTIVATIONS[layer.activation], [y])
    return y


def export_dropout(layer: Dropout, ctx: ExportContext) -> str:
    return ctx.input  # inference: the identity


def export_embedding(layer: Embedding, ctx: ExportContext) -> str:
    if layer.mask_zero:
        ctx.lengths = idioms.lengths_from_ids(ctx, ctx.input, ctx.lengths)
    table = ctx.constant(layer.get_weights()[0], name="embeddings")
    return ctx.node("Gather", [table, ctx.input], axis=0)


def export_select_timestep(layer: SelectTimestep, ctx: ExportContext) -> str:
    return idioms.take(ctx, ctx.input, layer.index, axis=1)


def export_reverse_timesteps(layer: ReverseTimesteps, ctx: ExportContext) -> str:
    return idioms.reverse_time(ctx, ctx.input)


# ------------------------------------------------------------------------------ recurrent
class _Direction:
    """One GRU of a layer as it runs in the graph: its time-aligned output sequence (B, T, H)
    when asked for, and its final state (B, H)."""

    def __init__(self, gru: GRU) -> None:
        self.gru = gru
        self.sequence: str | None = None
        self.state: str = ""


def _node_groups(grus: list[GRU]) -> list[tuple[list[GRU], dict]]:
    """The GRU nodes to emit: one bidirectional node when both directions fit in one (same
    units and reset form, activation parameters expressible), else one node each; forward first."""
    def attrs(group):
        return activation_attributes([f for g in group for f in direction_functions(
            g.recurrent_activation, g.activation)])

    ordered = sorted(grus, key=lambda g: g.go_backwards)
    if len(ordered) == 2:
        a, b = ordered
        shared = attrs(ordered)
        if (a.go_backwards != b.go_backwards and a.units == b.units and a.reset_after == b.reset_after
                and shared is not None):
            return [(ordered, shared)]
    return [([g], attrs([g])) for g in ordered]


def _run_grus(ctx: ExportContext, grus: list[GRU], sequences: bool) -> dict[int, _Direction]:
    """Emit the GRU node(s) for the GRUs reading ``ctx.input``; returns their outputs by id."""
    x = idioms.swap_batch_time(ctx, ctx.input)  # ONNX Runtime's GRU takes layout 0 only
    dtype = np.dtype(ctx.dtype)
    out: dict[int, _Direction] = {}
    for group, act_attrs in _node_groups(grus):
        rows = [gru_to_gate_rows(g.get_weights(), g.reset_after) for g in group]
        w, r, b = gate_rows_to_onnx(rows, dtype)
        inputs = [x, ctx.constant(w, name="W"), ctx.constant(r, name="R"),
                  "" if b is None else ctx.constant(b, name="B"), ctx.lengths or ""]
        states = []
        if ctx.streaming:
            states = [ctx.add_state(g.units, name=_state_name(ctx, g)) for g in group]
            inputs.append(ctx.node("Concat", [idioms.unsqueeze(ctx, s, [0]) for s in states], axis=0)
                          if len(states) > 1 else idioms.unsqueeze(ctx, states[0], [0]))
        while inputs[-1] == "":
            inputs.pop()
        if len(group) == 2:
            direction = "bidirectional"
        else:
            direction = "reverse" if group[0].go_backwards else "forward"
        y, y_h = ctx.node("GRU", inputs, [None if sequences else "", None], hidden_size=group[0].units,
                          direction=direction, linear_before_reset=int(group[0].reset_after), **act_attrs)
        for d, gru in enumerate(group):
            run = _Direction(gru)
            if len(group) == 1:
                run.state = idioms.squeeze(ctx, y_h, [0])
                if sequences:
                    run.sequence = idioms.swap_batch_time(ctx, idioms.squeeze(ctx, y, [1]))
            else:
                run.state = idioms.take(ctx, y_h, d, axis=0)
                if sequences:
                    run.sequence = idioms.swap_batch_time(ctx, idioms.take(ctx, y, d, axis=1))
            if ctx.streaming:
                new = run.state
                if ctx.lengths is not None:
                    # ONNX Runtime zeroes Y_h of a sequence of length 0; cgru keeps its state.
                    moved = idioms.unsqueeze(ctx, ctx.node("Greater", [ctx.lengths, ctx.constant(
                        np.int32(0))]), [1])
                    new = ctx.node("Where", [moved, run.state, states[d]])
                    run.state = new
                ctx.update_state(states[d], new)
            out[id(gru)] = run
    return out


def _state_name(ctx: ExportContext, gru: GRU) -> str:
    if isinstance(ctx.layer, Bidirectional):
        return "forward_state" if gru is ctx.layer.forward_layer else "backward_state"
    return "state"


def export_gru(layer: GRU, ctx: ExportContext) -> Any:
    run = _run_grus(ctx, [layer], layer.return_sequences)[id(layer)]
    if layer.return_sequences:
        # go_backwards returns the output in processing order, each sequence within its length
        out = idioms.reverse_time(ctx, run.sequence) if layer.go_backwards else run.sequence
    else:
        out = run.state
    return [out, run.state] if layer.return_state else out


def export_bidirectional(layer: Bidirectional, ctx: ExportContext) -> Any:
    fwd, bwd = layer.forward_layer, layer.backward_layer
    runs = _run_grus(ctx, [fwd, bwd], layer.return_sequences)
    rf, rb = runs[id(fwd)], runs[id(bwd)]
    if layer.return_sequences:
        # as Keras: the forward half as its layer returns it, the backward half re-reversed
        of = idioms.reverse_time(ctx, rf.sequence) if fwd.go_backwards else rf.sequence
        ob = rb.sequence if bwd.go_backwards else idioms.reverse_time(ctx, rb.sequence)
    else:
        of, ob = rf.state, rb.state
    mode = layer.merge_mode
    if mode == "concat":
        out: Any = ctx.node("Concat", [of, ob], axis=-1)
    elif mode == "sum":
        out = ctx.node("Add", [of, ob])
    elif mode == "mul":
        out = ctx.node("Mul", [of, ob])
    elif mode == "ave":
        out = ctx.node("Div", [ctx.node("Add", [of, ob]), ctx.constant(np.asarray(2, dtype=ctx.dtype))])
    else:
        out = [of, ob]
    if layer.return_state:
        out = (out if isinstance(out, list) else [out]) + [rf.state, rb.state]
    return out


BUILTIN_EXPORTERS: dict[type, Callable[[Any, ExportContext], Any]] = {
    Dense: export_dense,
    Dropout: export_dropout,
    Embedding: export_embedding,
    GRU: export_gru,
    Bidirectional: export_bidirectional,
    SelectTimestep: export_select_timestep,
    ReverseTimesteps: export_reverse_timesteps,
}
