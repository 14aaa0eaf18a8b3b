"""``to_onnx``: a built :class:`~cgru.Sequential` as an ONNX model.

The graph (see docs/onnx.md for the exact contract):

- input ``input``: ``(batch, time, features)`` in the first layer's float dtype, ``(batch,
  features)`` for a model whose input has no time axis, int64 ids ``(batch, time)`` when the
  first layer is an Embedding. ``batch`` and ``time`` are dynamic (``time`` is 1 when streaming).
- optional input ``sequence_lens`` (``sequence_lens=True``): int32 ``(batch,)``, the valid
  lengths of a right-padded batch, with cgru's packed-sequence semantics (``predict(x,
  lengths=...)``).
- outputs: ``output`` (``output_0``, ``output_1``... for a last layer with several outputs, in
  the order ``predict`` lists them).
- streaming: per recurrent direction an input ``<layer>_state`` (``<layer>_forward_state`` and
  ``<layer>_backward_state`` for a Bidirectional) of shape ``(batch, units)`` and an output
  ``<layer>_new_state``..., after the model outputs.
"""

from __future__ import annotations

from typing import Any

from ..layers import GRU, Bidirectional, Embedding, Layer
from ..models import Sequential
from . import _idioms as idioms
from ._deps import require_onnx, resolve_opset
from .builtin_layers import BUILTIN_EXPORTERS
from .context import ExportContext, GraphBuilder

#: The method a layer class defines to export itself (see :mod:`cgru.onnx.context`).
HOOK = "to_onnx"


def _exporter(layer: Layer):
    hook = getattr(type(layer), HOOK, None)
    if callable(hook):
        return lambda lyr, ctx: hook(lyr, ctx)
    exporter = BUILTIN_EXPORTERS.get(type(layer))
    if exporter is None:
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__module__}.{type(layer).__qualname__}) cannot be exported "
            f"to ONNX: it is not a built-in layer and its class defines no {HOOK}(self, ctx) method "
            "(see cgru.onnx.ExportContext)"
        )
    return exporter


def _lengths_apply(before: tuple, after: Any, mapped: bool) -> bool:
    """Whether lengths apply to a layer's output, as Sequential decides at run time: the output
    is a sequence on the same time axis, or on a new one the layer mapped them to (``mapped``:
    the exporter gave ``ctx.lengths`` a new tensor, as Conv1D's does)."""
    if isinstance(after, list) or len(after) != 3:
        return False
    return mapped or (len(before) >= 2 and after[1] == before[1])


def _check_result(layer: Layer, out: Any, shape: Any) -> None:
    """An exporter returns one tensor name per output of the layer."""
    count = len(shape) if isinstance(shape, list) else 1
    names = out if isinstance(out, list) else [out]
    if len(names) != count or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"layer {layer.name!r}: its exporter returned {out!r}, but the layer has {count} "
                         "output(s): return one tensor name per output (a list for several)")


def _output_dims(shape: tuple) -> list:
    """Declared output dimensions: "batch", "time" (the second axis of a sequence), sizes."""
    dims: list = []
    for i, d in enumerate(shape):
        if d is not None:
            dims.append(int(d))
        elif i == 0:
            dims.append("batch")
        else:
            dims.append("time" if i == 1 and len(shape) == 3 else None)
    return dims


def to_onnx(model: Sequential, path: Any = None, *, opset: int | None = None, streaming: bool = False,
            sequence_lens: bool = False):
    """Export a built :class:`~cgru.Sequential` to an ``onnx.ModelProto`` (and to ``path`` when given).

    Args:
        model: a built Sequential (build it, give its first layer ``input_shape=``, or call it once).
        path: where to save the model (a path or a writable binary file), or None.
        opset: the default-domain opset to write (13 up to the newest the installed onnx knows;
            default 17).
        streaming: export the one-step form of the model: the input has one time step
            ``(batch, 1, features)``, each recurrent direction's state is an extra input and its
            new value an extra output (see the module documentation for the names), so a
            runtime can run the loop that ``stateful=True`` layers run in cgru.
        sequence_lens: add the graph input ``sequence_lens`` (int32, one length per sequence):
            the exported model then computes ``predict(x, lengths=sequence_lens)``.

    Needs only the ``onnx`` package (``pip install 'cgru[onnx]'``); running the result needs a
    runtime such as ONNX Runtime. The model is checked with ``onnx.checker.check_model``.

    Raises TypeError for a model that is not a Sequential, ValueError for an unbuilt model, a
    layer that cannot be exported (named, with its class) or conflicting options.
    """
    onnx = require_onnx()
    if not isinstance(model, Sequential):
        raise TypeError(f"to_onnx expects a cgru Sequential model, got {type(model).__name__}")
    if not model.built:
        raise ValueError("the model is not built yet, so it has no weights to export: build it with "
                         "model.build((None, time, features)), give its first layer input_shape=, or "
                         "call it once")
    from ..quantization import check_exportable

    check_exportable(model, "to_onnx")
    opset = resolve_opset(onnx, opset)
    streaming, sequence_lens = bool(streaming), bool(sequence_lens)
    if streaming and sequence_lens:
        raise ValueError("streaming=True exports one time step per call: it takes no sequence_lens")
    layers = model.layers
    exporters = [_exporter(layer) for layer in layers]  # refuse before building anything
    builder = GraphBuilder(onnx, opset)

    shape = tuple(model.input_shape)
    first = layers[0]
    if isinstance(first, Embedding):
        in_dtype = "int64"
    else:
        in_dtype = first.dtype
    has_time = len(shape) >= 3 or (isinstance(first, Embedding) and len(shape) >= 2)
    dims = ["batch"] + [(1 if streaming else "time") if i == 1 and has_time else d
                        for i, d in enumerate(shape[1:], start=1)]
    if any(d is None for d in dims):
        raise ValueError(f"the model's input shape {shape} has an unknown size besides batch and time")
    current = builder.add_input("input", in_dtype, dims)
    lengths = builder.add_input("sequence_lens", "int32", ["batch"]) if sequence_lens else None

    current_dtype = in_dtype
    states: list = []
    for layer, exporter in zip(layers, exporters):
        ctx = ExportContext(builder, layer, current, shape, lengths, streaming)
        if current_dtype != ctx.dtype and current_dtype != "int64":
            ctx.input = ctx.node("Cast", [current], to=ctx.tensor_type)
        out = exporter(layer, ctx)
        after = layer.compute_output_shape(shape)
        _check_result(layer, out, after)
        lengths = ctx.lengths if _lengths_apply(shape, after, ctx.lengths is not lengths) else None
        states += ctx.finished_states()
        current, shape, current_dtype = out, after, ctx.dtype

    last = layers[-1]
    if lengths is not None and not isinstance(last, (GRU, Bidirectional)) and not isinstance(current, list):
        ctx = ExportContext(builder, last, current, shape, lengths, streaming)
        current = idioms.step_mask(ctx, current, lengths)

    outputs = current if isinstance(current, list) else [current]
    shapes = shape if isinstance(shape, list) else [shape]
    names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    for name, tensor, out_shape in zip(names, outputs, shapes):
        builder.add_output(builder.output_from(tensor, name), current_dtype, _output_dims(tuple(out_shape)))
    for _, out_name, value, size, dtype in states:
        builder.add_output(builder.output_from(value, out_name), dtype, ["batch", size])

    from .._version import __version__

    proto = builder.model(model.name, f"cgru model {model.name!r}", __version__)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ValueError(f"the exported graph does not pass onnx.checker: {exc}") from None
    if path is not None:
        onnx.save_model(proto, path)
    return proto
