"""ONNX exporters of the built-in layers: ``exporter(layer, ctx) -> output name(s)``.

They read layers through their public attributes and weights only. A layer class may instead
define ``to_onnx(self, ctx)`` (see :mod:`cgru.onnx.context`), which takes precedence.

Layers that look at more than one time step at once (Conv1D with windows of several steps or
strides, global pooling, Flatten of a sequence, LayerNormalization over the time axis) cannot
be exported in the streaming one-step form, and say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..interop import gru_to_gate_rows
from ..layers import (
    GRU,
    Activation,
    Bidirectional,
    Conv1D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    LayerNormalization,
    Masking,
    ReverseTimesteps,
    SelectTimestep,
    TimeDistributed,
)
from ..layers.activations import LEAKY_RELU_SLOPE, SELU_ALPHA, SELU_SCALE, SHRINK_THRESHOLD, SQUAREPLUS_B
from . import _idioms as idioms
from ._gru_spec import activation_attributes, direction_functions, gate_rows_to_onnx
from .context import ExportContext

#: Activations that are one ONNX operator (with its attributes).
_ONE_OPERATOR = {
    "relu": ("Relu", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}),
    "softmax": ("Softmax", {"axis": -1}), "log_softmax": ("LogSoftmax", {"axis": -1}),
    "exponential": ("Exp", {}), "softplus": ("Softplus", {}),
    "softsign": ("Softsign", {}), "leaky_relu": ("LeakyRelu", {"alpha": LEAKY_RELU_SLOPE}),
    "elu": ("Elu", {"alpha": 1.0}), "celu": ("Elu", {"alpha": 1.0}),  # celu with alpha 1 is elu
    "selu": ("Selu", {"alpha": SELU_ALPHA, "gamma": SELU_SCALE}),
    "hard_sigmoid": ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}),
    "soft_shrink": ("Shrink", {"lambd": SHRINK_THRESHOLD, "bias": SHRINK_THRESHOLD}),
    "hard_shrink": ("Shrink", {"lambd": SHRINK_THRESHOLD}),
}


def activation(ctx: ExportContext, name: str, x: str) -> str:
    """The activation ``name`` (cgru's names, see :mod:`cgru.layers.activations`) of ``x``."""
    def const(value: float) -> str:
        return ctx.constant(np.asarray(value, dtype=ctx.dtype))

    def clip(v: str, low: float, high: float) -> str:
        return ctx.node("Clip", [v, const(low), const(high)])

    def node(op: str, *inputs: str, **attrs: Any) -> str:
        return ctx.node(op, list(inputs), **attrs)

    if name == "linear":
        return x
    if name in _ONE_OPERATOR:
        op, attrs = _ONE_OPERATOR[name]
        return node(op, x, **attrs)
    if name == "relu6":
        return clip(x, 0.0, 6.0)
    if name == "hard_tanh":
        return clip(x, -1.0, 1.0)
    if name == "silu":
        return node("Mul", x, node("Sigmoid", x))
    if name == "hard_silu":
        return node("Mul", x, node("HardSigmoid", x, alpha=1 / 6, beta=0.5))
    if name == "log_sigmoid":
        return node("Neg", node("Softplus", node("Neg", x)))
    if name == "mish":
        return node("Mul", x, node("Tanh", node("Softplus", x)))
    if name == "tanh_shrink":
        return node("Sub", x, node("Tanh", x))
    if name == "squareplus":
        root = node("Sqrt", node("Add", node("Mul", x, x), const(SQUAREPLUS_B)))
        return node("Div", node("Add", x, root), const(2.0))
    if name == "sparse_plus":  # ((clip(x, -1, 1) + 1) ** 2) / 4 + relu(x - 1)
        shifted = node("Add", clip(x, -1.0, 1.0), const(1.0))
        return node("Add", node("Div", node("Mul", shifted, shifted), const(4.0)),
                    node("Relu", node("Sub", x, const(1.0))))
    if name == "sparse_sigmoid":
        return clip(node("Div", node("Add", x, const(1.0)), const(2.0)), 0.0, 1.0)
    raise ValueError(f"layer {ctx.layer.name!r}: no ONNX form for the activation {name!r}")


def refuse_streaming(ctx: ExportContext, why: str) -> None:
    if ctx.streaming:
        raise ValueError(f"layer {ctx.layer.name!r} ({type(ctx.layer).__name__}) cannot be exported in the "
                         f"streaming one-step form: {why}")


def export_dense(layer: Dense, ctx: ExportContext) -> str:
    weights = layer.get_weights()
    y = ctx.node("MatMul", [ctx.input, ctx.constant(weights[0], name="kernel")])
    if layer.use_bias:
        y = ctx.node("Add", [y, ctx.constant(weights[1], name="bias")])
    return activation(ctx, layer.activation, y)


def export_activation(layer: Activation, ctx: ExportContext) -> str:
    return activation(ctx, layer.activation, ctx.input)


def export_flatten(layer: Flatten, ctx: ExportContext) -> str:
    if len(ctx.input_shape) >= 3:
        refuse_streaming(ctx, "it flattens the time axis")
    return ctx.node("Flatten", [ctx.input], axis=1)


def export_masking(layer: Masking, ctx: ExportContext) -> str:
    """The lengths of the steps whose features are not all ``mask_value`` (the data must be
    right-padded, which cgru checks and a graph cannot), the smaller with given lengths; the
    output zero at the masked steps."""
    x = ctx.input
    value = ctx.constant(np.asarray(layer.mask_value, dtype=ctx.dtype), name="mask_value")
    differs = ctx.node("Cast", [ctx.node("Not", [ctx.node("Equal", [x, value])])], to=idioms.INT32)
    unmasked = ctx.node("Cast", [ctx.node("Greater", [idioms.reduce(ctx, "ReduceSum", differs, [2], False),
                                                      ctx.constant(np.int32(0))])], to=idioms.INT32)
    lengths = idioms.reduce(ctx, "ReduceSum", unmasked, [1], False)
    ctx.lengths = lengths if ctx.lengths is None else ctx.node("Min", [lengths, ctx.lengths])
    return idioms.step_mask(ctx, x, ctx.lengths)


def export_conv1d(layer: Conv1D, ctx: ExportContext) -> str:
    span, stride = layer.receptive_field, layer.strides
    if span > 1 or stride > 1:
        refuse_streaming(ctx, "its windows span several time steps")
    x = ctx.input
    if ctx.lengths is not None:
        if layer.padding == "same" and stride > 1:
            raise ValueError(f"layer {layer.name!r}: Conv1D(padding='same', strides={stride}) cannot take "
                             "sequence_lens (see cgru.Conv1D)")
        x = idioms.step_mask(ctx, x, ctx.lengths)
    if layer.padding == "valid":
        pads: dict = {"pads": [0, 0]}
    elif layer.padding == "causal":
        pads = {"pads": [span - 1, 0]}
    elif stride == 1:
        pads = {"pads": [(span - 1) // 2, span - 1 - (span - 1) // 2]}
    else:
        pads = {"auto_pad": "SAME_UPPER"}  # TensorFlow's placement: the extra step at the end
    weights = layer.get_weights()
    inputs = [ctx.node("Transpose", [x], perm=[0, 2, 1]),
              ctx.constant(np.ascontiguousarray(weights[0].transpose(2, 1, 0)), name="kernel")]
    if layer.use_bias:
        inputs.append(ctx.constant(weights[1], name="bias"))
    y = ctx.node("Conv", inputs, kernel_shape=[layer.kernel_size], strides=[stride],
                 dilations=[layer.dilation_rate], **pads)
    if ctx.lengths is not None:
        lengths = ctx.lengths
        if layer.padding == "valid":  # max(L - span + stride, 0) // stride
            lengths = ctx.node("Max", [ctx.node("Sub", [lengths, ctx.constant(np.int32(span - stride))]),
                                       ctx.constant(np.int32(0))])
        else:  # ceil(L / stride)
            lengths = ctx.node("Add", [lengths, ctx.constant(np.int32(stride - 1))])
        ctx.lengths = ctx.node("Div", [lengths, ctx.constant(np.int32(stride))])
    return activation(ctx, layer.activation, ctx.node("Transpose", [y], perm=[0, 2, 1]))


def export_layer_normalization(layer: LayerNormalization, ctx: ExportContext) -> str:
    axes = list(layer._axes)
    if 1 in axes:
        refuse_streaming(ctx, "it normalises over the time axis")
    x = ctx.input
    centered = ctx.node("Sub", [x, idioms.reduce(ctx, "ReduceMean", x, axes, True)])
    variance = idioms.reduce(ctx, "ReduceMean", ctx.node("Mul", [centered, centered]), axes, True)
    eps = ctx.constant(np.asarray(layer.epsilon, dtype=ctx.dtype), name="epsilon")
    y = ctx.node("Div", [centered, ctx.node("Sqrt", [ctx.node("Add", [variance, eps])])])
    shape = [1] * len(ctx.input_shape)
    for a in axes:
        shape[a] = ctx.input_shape[a]
    for param, op in ((layer.gamma, "Mul"), (layer.beta, "Add")):
        if param is not None:
            value = ctx.constant(param.numpy().reshape(shape[1:]), name=param.name.split("/")[-1])
            y = ctx.node(op, [y, value])
    return y


def export_global_average_pooling(layer: GlobalAveragePooling1D, ctx: ExportContext) -> str:
    refuse_streaming(ctx, "it pools over the whole time axis")
    x, lengths = ctx.input, ctx.lengths
    if lengths is None:
        count = _elements(ctx, ctx.node("Shape", [x]), 1, 2)
    else:
        x = idioms.step_mask(ctx, x, lengths)
        count = idioms.unsqueeze(ctx, lengths, [1])
    count = ctx.node("Cast", [ctx.node("Max", [ctx.node("Cast", [count], to=idioms.INT64),
                                                ctx.constant(np.int64(1))])], to=ctx.tensor_type)
    if layer.keepdims:
        count = idioms.unsqueeze(ctx, count, [1]) if lengths is not None else count
    return ctx.node("Div", [idioms.reduce(ctx, "ReduceSum", x, [1], layer.keepdims), count])


def export_global_max_pooling(layer: GlobalMaxPooling1D, ctx: ExportContext) -> str:
    refuse_streaming(ctx, "it pools over the whole time axis")
    x, lengths = ctx.input, ctx.lengths
    if lengths is None:
        return idioms.reduce(ctx, "ReduceMax", x, [1], layer.keepdims)
    lowest = ctx.constant(np.asarray(-np.inf, dtype=ctx.dtype), name="lowest")
    candidates = ctx.node("Where", [idioms.valid_steps(ctx, x, lengths), x, lowest])
    peak = idioms.reduce(ctx, "ReduceMax", candidates, [1], layer.keepdims)
    some = ctx.node("Greater", [lengths, ctx.constant(np.int32(0))])  # a length-0 sequence pools to 0
    some = idioms.unsqueeze(ctx, some, [1, 2] if layer.keepdims else [1])
    return ctx.node("Where", [some, peak, ctx.constant(np.zeros((), dtype=ctx.dtype), name="zero")])


def export_time_distributed(layer: TimeDistributed, ctx: ExportContext) -> str:
    """The wrapped layer's export on the steps merged into the batch axis, split back after."""
    from .export import _exporter  # the exporter table and hooks (export imports this module)

    inner = layer.layer
    rest = tuple(ctx.input_shape[2:])
    if None in rest:
        raise ValueError(f"layer {layer.name!r}: TimeDistributed exports need the sizes after the time "
                         f"axis, got input shape {ctx.input_shape}")
    batch_time = _elements(ctx, ctx.node("Shape", [ctx.input]), 0, 2)
    merged = ctx.node("Reshape", [ctx.input, idioms.ints(ctx, [-1, *rest])])
    sub = ExportContext(ctx._builder, inner, merged, (None, *rest), None, ctx.streaming)
    out = _exporter(inner)(inner, sub)
    out_rest = tuple(inner.compute_output_shape((None, *rest)))[1:]
    shape = ctx.node("Concat", [batch_time, idioms.ints(ctx, list(out_rest))], axis=0)
    return ctx.node("Reshape", [out, shape])


def _elements(ctx: ExportContext, x: str, start: int, stop: int) -> str:
    """``x[start:stop]`` of a 1-D ``x`` (a shape)."""
    return ctx.node("Slice", [x, idioms.ints(ctx, [start]), idioms.ints(ctx, [stop])])


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
    Activation: export_activation,
    Conv1D: export_conv1d,
    Flatten: export_flatten,
    GlobalAveragePooling1D: export_global_average_pooling,
    GlobalMaxPooling1D: export_global_max_pooling,
    LayerNormalization: export_layer_normalization,
    Masking: export_masking,
    TimeDistributed: export_time_distributed,
    Dense: export_dense,
    Dropout: export_dropout,
    Embedding: export_embedding,
    GRU: export_gru,
    Bidirectional: export_bidirectional,
    SelectTimestep: export_select_timestep,
    ReverseTimesteps: export_reverse_timesteps,
}
