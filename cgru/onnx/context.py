"""Building the exported graph: :class:`GraphBuilder` (the whole graph) and
:class:`ExportContext` (what one layer's exporter sees).

A layer exports itself through a method ``to_onnx(self, ctx)``: it adds nodes with
:meth:`ExportContext.node` and constants with :meth:`ExportContext.constant`, reading its input
tensor's name from ``ctx.input``, and returns the name of its output tensor (a list of names
for a layer with several outputs, which Sequential allows only as the last layer). Tensors are
referred to by name (strings) throughout, so a hook needs no import of onnx itself::

    class Scale(cgru.Layer):
        ...
        def to_onnx(self, ctx):
            factor = ctx.constant(np.array(self.factor, dtype=ctx.dtype))
            bias = ctx.constant(self.bias.numpy())
            return ctx.node("Add", [ctx.node("Mul", [ctx.input, factor]), bias])

Conventions the exporter keeps around each layer, as cgru runs it: the input is batch-major
(``(batch, time, features)`` or ``(batch, features)``) in the layer's float dtype (ids, int64,
for an Embedding first); ``ctx.lengths`` is the int32 ``(batch,)`` tensor of valid lengths of a
right-padded batch, or None; the batch and time dimensions are dynamic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_FLOAT_TYPES = {"float32": "FLOAT", "float64": "DOUBLE", "float16": "FLOAT16"}


def tensor_type(onnx: Any, dtype: Any) -> int:
    """The ONNX element type (``TensorProto.FLOAT``...) of a NumPy dtype."""
    return int(onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


class GraphBuilder:
    """Collects nodes, initializers, inputs and outputs, with unique tensor names."""

    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx = onnx
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self.inputs: list = []
        self.outputs: list = []
        self._taken: set[str] = set()
        self._renamed: dict[str, str] = {}  # tensors renamed to graph outputs
        self._outputs_taken: set[str] = set()

    def fresh(self, hint: str) -> str:
        """A tensor name not used yet, built from ``hint``."""
        name, k = hint, 0
        while name in self._taken:
            k += 1
            name = f"{hint}_{k}"
        self._taken.add(name)
        return name

    def reserve(self, name: str) -> str:
        """Claim the exact ``name`` (graph inputs and outputs); ValueError when taken."""
        if name in self._taken:
            raise ValueError(f"the tensor name {name!r} is used twice in the exported graph")
        self._taken.add(name)
        return name

    def node(self, op_type: str, inputs: list, outputs: list, name: str, domain: str = "", **attrs: Any):
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), list(outputs), name=name,
                                                     domain=domain or None, **attrs))

    def output_from(self, tensor: str, name: str) -> str:
        """Make ``tensor`` available as the graph output ``name``: the node computing it writes
        ``name`` directly when it can (fewer nodes to run per call), else an Identity copies it."""
        self.reserve(name)
        tensor = self._renamed.get(tensor, tensor)
        producer = next((n for n in self.nodes if tensor in n.output), None)
        if producer is not None and tensor not in self._outputs_taken:
            for node in self.nodes:
                for field in (node.input, node.output):
                    for i, value in enumerate(field):
                        if value == tensor:
                            field[i] = name
            self._renamed[tensor] = name
            self._outputs_taken.add(name)
        else:
            label = self.fresh(f"{name}/Identity")
            self.nodes.append(self.onnx.helper.make_node("Identity", [tensor], [name], name=label))
        return name

    def constant(self, value: Any, hint: str, dtype: Any = None) -> str:
        array = np.asarray(value, dtype=dtype)
        if array.dtype == np.float16 or array.dtype.kind not in "fiub":
            raise TypeError(f"constant {hint!r}: unsupported dtype {array.dtype}")
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def add_input(self, name: str, dtype: Any, shape: list) -> str:
        self.reserve(name)
        self.inputs.append(self._value_info(name, dtype, shape))
        return name

    def add_output(self, name: str, dtype: Any, shape: Any) -> str:
        self.outputs.append(self._value_info(name, dtype, shape))
        return name

    def _value_info(self, name: str, dtype: Any, shape: Any):
        return self.onnx.helper.make_tensor_value_info(name, tensor_type(self.onnx, dtype), shape)

    def model(self, graph_name: str, doc: str, producer_version: str):
        helper = self.onnx.helper
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs, self.initializers,
                                  doc_string=doc)
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="cgru",
                                  producer_version=producer_version)
        # The oldest IR version that can carry this opset: runtimes that predate newer IR
        # versions still load the file.
        model.ir_version = helper.find_min_ir_version_for(opsets)
        return model


class ExportContext:
    """What a layer's ``to_onnx(self, ctx)`` hook sees and uses to build its part of the graph.

    Attributes (read them; the exporter sets them):
        input: name of the layer's input tensor, batch-major, in the layer's dtype (an
            Embedding's ids are int64).
        input_shape: the layer's input shape as cgru sees it (None for dynamic sizes).
        lengths: name of the int32 ``(batch,)`` tensor of valid lengths, or None. A layer that
            derives lengths (as ``Embedding(mask_zero=True)`` does) assigns a new name to it;
            a layer whose output drops or changes the time axis may assign None (the exporter
            also drops lengths when the output shape loses the time axis, as Sequential does).
        dtype: the layer's float dtype name, "float32" or "float64".
        tensor_type: the ONNX element type of ``dtype`` (for Cast's ``to``).
        opset: the default-domain opset the graph is written for.
        streaming: True when exporting the one-step form (:func:`cgru.to_onnx` ``streaming=True``):
            a recurrent layer then reads its state with :meth:`add_state` and writes the new one
            with :meth:`update_state`.
        layer: the layer being exported.
    """

    def __init__(self, builder: GraphBuilder, layer: Any, input: str, input_shape: tuple,
                 lengths: str | None, streaming: bool) -> None:
        self._builder = builder
        self.layer = layer
        self.input = input
        self.input_shape = tuple(input_shape)
        self.lengths = lengths
        self.streaming = bool(streaming)
        self.dtype = str(getattr(layer, "dtype", "float32"))
        self.tensor_type = tensor_type(builder.onnx, self.dtype)
        self.opset = builder.opset
        self.states: list[tuple[str, str, int]] = []  # (input name, output name, size)
        self._new_states: dict[str, str] = {}

    def _prefix(self) -> str:
        return str(getattr(self.layer, "name", "layer"))

    def node(self, op_type: str, inputs: list, outputs: int | list = 1, *, domain: str = "",
             **attrs: Any) -> Any:
        """Add a node; returns its output name (a list of names when ``outputs`` > 1 or a list).

        ``inputs`` are tensor names ("" for an omitted optional input); ``outputs`` is a count
        (fresh names are made) or a list with an entry per output: a name, None for a fresh
        name, or "" to omit an optional output. Keyword arguments are the node's attributes
        (None values are left out).
        """
        def fresh() -> str:
            return self._builder.fresh(f"{self._prefix()}/{op_type}")

        if isinstance(outputs, int):
            if outputs < 1:
                raise ValueError(f"a node needs at least one output, got {outputs}")
            names = [fresh() for _ in range(outputs)]
            single = outputs == 1
        else:
            names = [fresh() if n is None else (self._builder.reserve(n) if n else "") for n in outputs]
            single = False
        for i, name in enumerate(inputs):
            if not isinstance(name, str):
                raise TypeError(f"{op_type} input {i}: tensor names are strings, got {name!r}")
        node_name = self._builder.fresh(f"{self._prefix()}/{op_type}_node")
        self._builder.node(op_type, inputs, names, node_name, domain, **attrs)
        return names[0] if single else names

    def constant(self, value: Any, dtype: Any = None, name: str = "const") -> str:
        """An initializer holding ``value`` (converted to ``dtype`` when given); returns its name."""
        return self._builder.constant(value, f"{self._prefix()}/{name}", dtype)

    def add_state(self, size: int, name: str = "state") -> str:
        """Streaming export: a graph input ``<layer name>_<name>`` of shape ``(batch, size)``
        in the layer's dtype holding the state before the step; returns its name."""
        if not self.streaming:
            raise ValueError("add_state() is for streaming exports (ctx.streaming is False)")
        in_name = self._builder.add_input(f"{self._prefix()}_{name}", self.dtype, ["batch", int(size)])
        self.states.append((in_name, f"{self._prefix()}_new_{name}", int(size)))
        return in_name

    def update_state(self, state: str, value: str) -> None:
        """Streaming export: ``value`` (batch, size) is the new value of the state ``state``
        (a name :meth:`add_state` returned); it becomes the graph output ``<layer>_new_<name>``."""
        if state not in {s for s, _, _ in self.states}:
            raise ValueError(f"{state!r} is not a state added by add_state()")
        self._new_states[state] = value

    def finished_states(self) -> list[tuple[str, str, str, int, str]]:
        """``(input name, output name, value, size, dtype)`` per state; ValueError for one never updated."""
        out = []
        for in_name, out_name, size in self.states:
            if in_name not in self._new_states:
                raise ValueError(f"layer {self._prefix()!r} added the state {in_name!r} but never updated it")
            out.append((in_name, out_name, self._new_states[in_name], size, self.dtype))
        return out
