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


class _GruNodes:
    """The GRU node(s) computing a layer's GRUs over ``ctx.input``, and their outputs as cgru
    lays them out, made on demand: a GRU's time-aligned sequence (B, T, H) and final state (B, H)."""

    def __init__(self, ctx: ExportContext, grus: list[GRU], sequences: bool, states: bool) -> None:
        self.ctx = ctx
        self.where: dict[int, tuple[str, str, int, int]] = {}  # id(gru) -> (Y, Y_h, index, directions)
        self._cache: dict = {}
        x = idioms.to_time_major(ctx, ctx.input, grus[0].input_dim)  # ONNX Runtime's GRU: layout 0 only
        dtype = np.dtype(ctx.dtype)
        for group, act_attrs in _node_groups(grus):
            rows = [gru_to_gate_rows(g.get_weights(), g.reset_after) for g in group]
            w, r, b = gate_rows_to_onnx(rows, dtype)
            inputs = [x, ctx.constant(w, name="W"), ctx.constant(r, name="R"),
                      "" if b is None else ctx.constant(b, name="B"), ctx.lengths or ""]
            old = []
            if ctx.streaming:
                old = [ctx.add_state(g.units, name=_state_name(ctx, g)) for g in group]
                stacked = [idioms.unsqueeze(ctx, s, [0]) for s in old]
                inputs.append(ctx.node("Concat", stacked, axis=0) if len(stacked) > 1 else stacked[0])
            while inputs[-1] == "":
                inputs.pop()
            if len(group) == 2:
                direction = "bidirectional"
            else:
                direction = "reverse" if group[0].go_backwards else "forward"
            outputs = [None if sequences else "", None if states or ctx.streaming else ""]
            y, y_h = ctx.node("GRU", inputs, outputs, hidden_size=group[0].units, direction=direction,
                              linear_before_reset=int(group[0].reset_after), **act_attrs)
            for d, gru in enumerate(group):
                self.where[id(gru)] = (y, y_h, d, len(group))
                if ctx.streaming:
                    self._stream_state(gru, old[d])

    def _stream_state(self, gru: GRU, old: str) -> None:
        ctx = self.ctx
        new = self.state(gru)
        if ctx.lengths is not None:
            # ONNX Runtime zeroes Y_h of a sequence of length 0; cgru keeps its state.
            stepped = ctx.node("Greater", [ctx.lengths, ctx.constant(np.int32(0))])
            new = ctx.node("Where", [idioms.unsqueeze(ctx, stepped, [1]), new, old])
            self._cache[("state", id(gru))] = new
        ctx.update_state(old, new)

    def state(self, gru: GRU) -> str:
        key = ("state", id(gru))
        if key not in self._cache:
            _, y_h, d, n = self.where[id(gru)]
            ctx = self.ctx
            self._cache[key] = idioms.squeeze(ctx, y_h, [0]) if n == 1 else idioms.take(ctx, y_h, d, axis=0)
        return self._cache[key]

    def sequence(self, gru: GRU) -> str:
        key = ("sequence", id(gru))
        if key not in self._cache:
            y, _, d, n = self.where[id(gru)]
            ctx = self.ctx
            one = idioms.squeeze(ctx, y, [1]) if n == 1 else idioms.take(ctx, y, d, axis=1)
            self._cache[key] = idioms.to_batch_major(ctx, one, gru.units)
        return self._cache[key]

    def concatenated(self, first: GRU, second: GRU) -> str | None:
        """Both directions of one bidirectional node, time-aligned and concatenated (B, T, 2H),
        with one Transpose; None when the two GRUs are not directions 0 and 1 of one node."""
        (y, _, d1, n), (y2, _, d2, _) = self.where[id(first)], self.where[id(second)]
        if n != 2 or y != y2 or (d1, d2) != (0, 1):
            return None
        ctx = self.ctx
        batch_major = ctx.node("Transpose", [y], perm=[2, 0, 1, 3])  # (T, 2, B, H) -> (B, T, 2, H)
        return ctx.node("Reshape", [batch_major, idioms.ints(ctx, [0, 0, first.units + second.units])])


def _state_name(ctx: ExportContext, gru: GRU) -> str:
    if isinstance(ctx.layer, Bidirectional):
        return "forward_state" if gru is ctx.layer.forward_layer else "backward_state"
    return "state"


def export_gru(layer: GRU, ctx: ExportContext) -> Any:
    nodes = _GruNodes(ctx, [layer], layer.return_sequences, not layer.return_sequences or layer.return_state)
    if layer.return_sequences:
        # go_backwards returns the output in processing order, each sequence within its length
        seq = nodes.sequence(layer)
        out = idioms.reverse_time(ctx, seq) if layer.go_backwards else seq
    else:
        out = nodes.state(layer)
    return [out, nodes.state(layer)] if layer.return_state else out


def export_bidirectional(layer: Bidirectional, ctx: ExportContext) -> Any:
    fwd, bwd = layer.forward_layer, layer.backward_layer
    sequences = layer.return_sequences
    nodes = _GruNodes(ctx, [fwd, bwd], sequences, not sequences or layer.return_state)
    mode = layer.merge_mode
    # as Keras: the forward half as its layer returns it, the backward half re-reversed; in the
    # usual case (forward layer forwards, backward layer backwards) both are time-aligned
    fast = None
    if sequences and mode == "concat" and not fwd.go_backwards:
        fast = nodes.concatenated(fwd, bwd)
    if fast is not None:
        out: Any = fast
    else:
        if sequences:
            of = idioms.reverse_time(ctx, nodes.sequence(fwd)) if fwd.go_backwards else nodes.sequence(fwd)
            ob = nodes.sequence(bwd) if bwd.go_backwards else idioms.reverse_time(ctx, nodes.sequence(bwd))
        else:
            of, ob = nodes.state(fwd), nodes.state(bwd)
        if mode == "concat":
            out = ctx.node("Concat", [of, ob], axis=-1)
        elif mode == "sum":
            out = ctx.node("Add", [of, ob])
        elif mode == "mul":
            out = ctx.node("Mul", [of, ob])
        elif mode == "ave":
            out = ctx.node("Div", [ctx.node("Add", [of, ob]), ctx.constant(np.asarray(2, dtype=ctx.dtype))])
        else:
            out = [of, ob]
    if layer.return_state:
        out = (out if isinstance(out, list) else [out]) + [nodes.state(fwd), nodes.state(bwd)]
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
