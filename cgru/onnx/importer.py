"""``from_onnx``: an ONNX graph of GRU nodes and their glue as a :class:`~cgru.Sequential`.

The graph is run symbolically (see :mod:`cgru.onnx._values`): shape computations are
evaluated, and each activation tensor is tracked as cgru layers plus the axis order it has in
the graph. Nodes are recognised by what they do to the data, never by their names, so the
glue of different exporters (``torch.onnx.export``, tf2onnx, cgru's own) all reads the same.
Only the nodes the graph outputs depend on are read. docs/onnx.md lists what is supported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models import Sequential
from . import _fold
from ._deps import require_onnx
from ._exprs import Chain, DirOut, LayerSpec, Materializer, Merge, describe
from ._load import TENSOR_TYPES, GraphView, load_model, tensor_array
from ._ops import HANDLERS, ReadingMismatch
from ._values import Aux, Const, Data, Dim, Lengths, is_step


class _Failure(ValueError):
    def __init__(self, message: str, progress: int, mismatch: bool) -> None:
        super().__init__(message)
        self.progress = progress
        self.mismatch = mismatch


#: How the graph input is read, tried in turn: (time-major, float input holding ids).
_READINGS = [(False, False), (True, False), (False, True), (True, True)]


def from_onnx(path_or_model: Any) -> Sequential:
    """A :class:`~cgru.Sequential` computing what an ONNX model of GRU nodes computes.

    ``path_or_model``: a path to a ``.onnx`` file, its bytes, or an ``onnx.ModelProto``.

    Reads graphs whose computation is a chain of ``GRU`` nodes (any direction, layout 0 or 1,
    with or without ``sequence_lens`` and a zero ``initial_h``, ``linear_before_reset`` 0 or 1,
    the activations cgru has) with Dense projections (MatMul/Gemm, Add, Relu/Sigmoid/Tanh/
    Softmax), an Embedding (Gather from a constant table) and the glue exporters put around them
    (Transpose, Squeeze, Unsqueeze, Reshape, Concat, Slice, Gather, shape arithmetic...).

    The model takes batch-major input ``(batch, time, features)`` (int ids ``(batch, time)`` with
    an Embedding first) and returns batch-major output whatever the graph's layouts; a GRU's
    direction axis in a graph output becomes features (directions concatenated). A graph input
    feeding ``sequence_lens`` becomes ``predict(x, lengths=...)``; lengths computed from the ids
    (id 0 = padding) become ``Embedding(mask_zero=True)``.

    Raises ValueError naming the first node (index, name, op type) that cannot be represented,
    and for malformed or oversized models (weights beyond the range of the model's dtype
    included); FileNotFoundError for a missing path; ImportError when onnx is missing.
    """
    onnx = require_onnx()
    model = load_model(onnx, path_or_model)
    view = GraphView(model.graph)
    failures = []
    for time_major, float_ids in _READINGS:
        try:
            return _Interpreter(onnx, model, view, time_major, float_ids).run()
        except _Failure as exc:
            # (message, progress, mismatch) only: the exception's traceback holds the failed
            # reading, whose values would otherwise stay alive through the next readings
            failures.append((str(exc), exc.progress, exc.mismatch))
            if not exc.mismatch:
                break
    # report the reading that got furthest (a mismatch only if nothing else went wrong)
    message, _, _ = max(failures, key=lambda f: (not f[2], f[1]))
    raise ValueError(message) from None


def _opset(model: Any) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


class _Interpreter:
    def __init__(self, onnx: Any, model: Any, view: GraphView, time_major: bool, float_ids: bool) -> None:
        self.onnx = onnx
        self.graph = model.graph
        self.view = view
        self.opset = _opset(model)
        self.time_major = time_major
        self.float_ids = float_ids
        self.values: dict[str, Any] = {}
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.materializer = Materializer()
        self.budget = _fold.Budget()  # what this reading may compute
        self.lengths_uses: list[tuple[str, Lengths | None]] = []
        self.batch = Dim("batch")
        self.time = Dim("time")
        self.input_kind: str | None = None  # "seq", "vec" or "ids"
        self.features = 0
        self.dtype = "float32"
        self.progress = 0

    # ------------------------------------------------------------------------------ driver
    def run(self) -> Sequential:
        if self.opset < 7:
            raise _Failure(f"the model uses opset {self.opset}; from_onnx reads opset 7 and newer", 0, False)
        try:
            self._read_inputs()
            for index in self.view.order:
                self._run_node(index)
                self.progress += 1
            return self._build()
        except ReadingMismatch as exc:
            raise _Failure(str(exc), self.progress, True) from None
        except ValueError as exc:  # _fold.Unfoldable included
            raise _Failure(str(exc), self.progress, False) from None

    def _read_inputs(self) -> None:
        needed = {name for i in self.view.order for name in self.graph.node[i].input}
        needed |= {o.name for o in self.graph.output}
        data_inputs = []
        for value_info in self.graph.input:
            name = value_info.name
            if name in self.initializers or name not in needed:
                continue
            tensor = value_info.type.tensor_type
            if not value_info.type.HasField("tensor_type") or not tensor.HasField("shape"):
                raise ValueError(f"graph input {name!r} has no tensor shape; from_onnx needs its rank")
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
            dtype = TENSOR_TYPES.get(tensor.elem_type, (None,))[0]
            kind = np.dtype(dtype).kind if dtype is not None else "?"
            if kind in "iu" and len(dims) == 1:
                self.values[name] = Lengths(frozenset({"input"}))
            elif kind in "iu" and len(dims) == 2 or kind == "f" and len(dims) in (2, 3):
                data_inputs.append((name, kind, dims, np.dtype(dtype)))
            else:
                raise ValueError(f"graph input {name!r} (type {tensor.elem_type}, rank {len(dims)}) is "
                                 "neither the model input (float (batch, time, features), int ids (batch, "
                                 "time)) nor sequence lengths (int (batch,))")
        if len(data_inputs) != 1:
            names = [d[0] for d in data_inputs]
            raise ValueError(f"the graph must have one data input, found {len(names)}: {names}")
        name, kind, dims, dtype = data_inputs[0]
        if self.float_ids:
            if kind != "f" or len(dims) != 2:
                raise ReadingMismatch("the graph input is not a float (batch, time) tensor")
            kind = "i"  # ids in a float tensor, as Keras models take them
        time_axis = 1 if len(dims) == 2 and kind == "f" else (0 if self.time_major else 1)
        batch_axis = 0 if len(dims) == 2 and kind == "f" else (1 if self.time_major else 0)
        self.batch = Dim("batch", known=dims[batch_axis])
        if kind == "f" and len(dims) == 2:
            if dims[1] is None:  # perhaps ids (batch, time) in a float tensor
                raise ReadingMismatch(f"graph input {name!r}: the feature size must be known, got {dims}")
            self.input_kind, self.features = "vec", dims[1]
            self.values[name] = Data(("B", "F"), Chain((), "vec"), width=dims[1])
        else:
            self.time = Dim("time", known=dims[time_axis])
            axes = ("T", "B") if self.time_major else ("B", "T")
            if kind == "f":
                if dims[2] is None:
                    raise ValueError(f"graph input {name!r}: the feature size must be known, got {dims}")
                self.input_kind, self.features = "seq", dims[2]
                self.values[name] = Data(axes + ("F",), Chain((), "seq"), width=dims[2])
            else:
                self.input_kind = "ids"
                self.values[name] = Aux("ids", axes)
        if dtype.kind == "f":
            if dtype == np.float64:
                self.dtype = "float64"
            elif dtype != np.float32 and dtype != np.float16:
                raise ValueError(f"graph input {name!r} has dtype {dtype}; cgru computes in float32 or "
                                 "float64")

    def _value(self, name: str, where: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.initializers:
            value = Const(self._tensor(self.initializers[name], f"initializer {name!r}"))
            self.values[name] = value
            return value
        raise ValueError(f"{where} reads {name!r}, which no node, initializer or graph input provides "
                         "(or a graph input from_onnx does not use as data)")

    def _tensor(self, tensor: Any, what: str) -> np.ndarray:
        """A tensor of the file as an array; ValueError naming ``what`` when it holds finite
        floats that the model's dtype cannot (they would become inf)."""
        array = tensor_array(self.onnx, tensor, what)
        dtype = np.dtype(self.dtype)
        if array.dtype.kind == "f" and array.dtype.itemsize > dtype.itemsize and array.size:
            worst = np.max(np.abs(array), where=np.isfinite(array), initial=0)
            with np.errstate(over="ignore"):
                overflows = np.isinf(dtype.type(worst))
            if overflows:
                raise ValueError(f"{what} holds values up to {worst:.4g}, beyond the {dtype} range of the "
                                 f"model (largest {np.finfo(dtype).max:.4g}): they would become inf")
        return array

    def _attributes(self, node: Any, where: str) -> dict:
        attrs = {}
        for attr in node.attribute:
            if attr.type == self.onnx.AttributeProto.TENSOR:
                attrs[attr.name] = self._tensor(attr.t, f"{where} attribute {attr.name!r}")
            elif attr.type in (self.onnx.AttributeProto.GRAPH, self.onnx.AttributeProto.GRAPHS):
                attrs[attr.name] = None
            else:
                value = self.onnx.helper.get_attribute_value(attr)
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "replace")
                elif isinstance(value, list) and value and isinstance(value[0], bytes):
                    value = [v.decode("utf-8", "replace") for v in value]
                attrs[attr.name] = value
        return attrs

    def _run_node(self, index: int) -> None:
        node = self.graph.node[index]
        where = self.view.label(index)
        if node.domain not in ("", "ai.onnx"):
            raise ValueError(f"{where}: operators of the domain {node.domain!r} are not supported")
        attrs = self._attributes(node, where)
        args = [self._value(name, where) if name else None for name in node.input]
        op = node.op_type
        try:
            if op == "Constant":
                outs = [self._constant(attrs, where)]
            else:
                outs = _fold.fold(op, args, attrs, self.opset, self.budget)
                if outs is None:
                    handler = HANDLERS.get(op)
                    if handler is None:
                        raise ValueError(f"{where}: op type {op!r} is not supported by from_onnx (it reads "
                                         "GRU nodes, Dense and Embedding patterns and the glue around them)")
                    outs = handler(self, args, attrs, where)
        except _fold.Unfoldable as exc:
            message = str(exc)
            raise ValueError(message if message.startswith(where) else f"{where}: {message}") from None
        except (IndexError, KeyError, TypeError, AttributeError, ArithmeticError) as exc:
            # inputs or attributes missing or of the wrong kind for the op
            raise ValueError(f"{where}: malformed node ({type(exc).__name__}: {exc})") from None
        for name, value in zip(node.output, outs):
            if name:
                self.values[name] = value

    def _constant(self, attrs: dict, where: str) -> Const:
        if attrs.get("value") is not None:
            return Const(attrs["value"])
        for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                           ("value_ints", np.int64)):
            if key in attrs:
                return Const(np.asarray(attrs[key], dtype=dtype))
        raise ValueError(f"{where}: a Constant without a dense value is not supported")

    # ---------------------------------------------------------------------------- helpers
    def size(self, data: Data, label: Any) -> Any:
        if label == "F":
            return data.width
        if label == "D":
            return len(data.parts)
        if label == "B":
            return self.batch
        if label == "T":
            return self.time
        return 1

    def chain(self, expr: Any, where: str) -> Chain:
        return self.materializer.chain(expr, where)

    def data(self, value: Any, what: str, where: str) -> Data:
        if not isinstance(value, Data):
            raise ValueError(f"{where}: its {what} must be computed from the graph input, got "
                             f"{type(value).__name__}")
        return value

    def single(self, data: Data, where: str) -> Any:
        """The expression of a tensor without a direction axis."""
        if data.parts:
            raise ValueError(f"{where}: this use of a GRU output that still has its direction axis "
                             f"(axes {self._axes(data)}) is not supported")
        return data.expr

    def _axes(self, data: Data) -> str:
        return "(" + ", ".join(f"step {a[1]}" if is_step(a) else str(a) for a in data.axes) + ")"

    def take_step(self, expr: Any, k: int, where: str) -> Any:
        """Time step ``k`` (negative: from the end) of a sequence expression."""
        if isinstance(expr, DirOut) and expr.output == "Y" and expr.record.lengths is None:
            # the last step a direction processes is its final state
            processing_last = -1 if expr.reversed == expr.params.reverse else 0
            if k == processing_last:
                return DirOut(expr.record, expr.d, "Y_h")
        chain = self.chain(expr, where)
        if chain.kind != "seq":
            raise ValueError(f"{where}: takes a time step of {describe(expr)}, which has no time axis")
        return chain.then(LayerSpec("SelectTimestep", {"index": int(k)}), "vec")

    def reverse(self, expr: Any, where: str) -> Any:
        if isinstance(expr, DirOut) and expr.output == "Y":
            return DirOut(expr.record, expr.d, "Y", not expr.reversed)
        chain = self.chain(expr, where)
        if chain.kind != "seq":
            raise ValueError(f"{where}: reverses the time axis of {describe(expr)}, which has none")
        return chain.then(LayerSpec("ReverseTimesteps", {}), "seq")

    def drop_axis(self, data: Data, position: int, where: str) -> Data:
        """Remove a unit axis (a single direction, a kept time step, a size-1 axis)."""
        label = data.axes[position]
        axes = data.axes[:position] + data.axes[position + 1:]
        if label == "1":
            return data.with_axes(axes)
        if label == "D" and len(data.parts) == 1:
            return data.with_axes(axes, expr=data.parts[0], parts=())
        if is_step(label):
            if data.parts:
                parts = tuple(self.take_step(p, label[1], where) for p in data.parts)
                return data.with_axes(axes, parts=parts)
            return data.with_axes(axes, expr=self.take_step(data.expr, label[1], where))
        raise ValueError(f"{where}: removes the {label} axis of a tensor with axes {self._axes(data)}")

    @staticmethod
    def lengths(value: Any, where: str) -> Lengths:
        """``value`` as sequence lengths; ValueError when it is something else."""
        if not isinstance(value, Lengths):
            raise ValueError(f"{where}: its sequence lengths must come from a graph input or the ids, got "
                             f"{type(value).__name__}")
        return value

    def use_lengths(self, value: Any, where: str) -> None:
        """Note that ``where`` applies these lengths (checked against the GRUs' at the end)."""
        self.lengths_uses.append((where, self.lengths(value, where)))

    # ----------------------------------------------------------------------------- build
    def _build(self) -> Sequential:
        exprs = []
        for output in self.graph.output:
            value = self.values.get(output.name)
            if not isinstance(value, Data):
                raise ValueError(f"graph output {output.name!r} is not computed from the graph input "
                                 f"(it is {type(value).__name__})")
            if value.parts:
                kind = value.parts[0].kind
                expr = value.parts[0] if len(value.parts) == 1 else Merge(
                    "concat", value.parts, kind, f"graph output {output.name!r}")
            else:
                expr = value.expr
            exprs.append(expr)
        if not exprs:
            raise ValueError("the graph has no outputs")
        chain = self.chain(exprs[0], f"graph output {self.graph.output[0].name!r}") if len(exprs) == 1 \
            else self._multi_output(exprs)
        if not chain.layers:
            raise ValueError("the graph output is the graph input: there are no layers to import")
        self._check_lengths(chain)
        layers = [spec.make(self.dtype) for spec in chain.layers]
        model = Sequential(layers)
        shape = {"seq": (None, None, self.features), "vec": (None, self.features), "ids": (None, None)}
        model.build(shape[self.input_kind])
        for layer, spec in zip(layers, chain.layers):
            layer.set_weights(spec.all_weights())  # converted to the layer's dtype, and checked
        return model

    def _check_lengths(self, chain: Chain) -> None:
        seen = {}
        for spec in chain.layers:
            for sub in spec.sub or (spec,):
                if sub.origin is not None:
                    record = sub.origin[0]
                    seen[record.label] = record.lengths
        seen.update((where, lengths) for where, lengths in self.lengths_uses)
        kinds = {(None if v is None or not v.sources else v.sources) for v in seen.values()}
        if len(kinds) > 1:
            described = "; ".join(f"{where}: {'none' if v is None or not v.sources else sorted(v.sources)}"
                                  for where, v in seen.items())
            raise ValueError("cgru applies one set of sequence lengths to every layer, but the graph's "
                             f"nodes use different ones ({described})")
        sources = next(iter(kinds)) if kinds else None
        if sources and "ids" in sources:
            first = chain.layers[0]
            if first.kind != "Embedding":
                raise ValueError("lengths computed from ids need an Embedding first layer")
            first.config["mask_zero"] = True

    def _multi_output(self, exprs: list) -> Chain:
        where = f"graph outputs {[o.name for o in self.graph.output]}"
        main, states = exprs[0], exprs[1:]
        a, b = exprs[0], exprs[1]
        if (isinstance(a, DirOut) and isinstance(b, DirOut) and a.output == b.output
                and a.params.reverse != b.params.reverse):
            # the two halves of a Bidirectional with merge_mode=None (its states may follow)
            main, states = Merge(None, (a, b), a.kind, where), exprs[2:]
        chain = self.chain(main, where)
        last = chain.layers[-1] if chain.layers else None
        origins = [s.origin for s in (last.sub or (last,))] if last is not None else []
        expected = [DirOut(rec, d, "Y_h") for rec, d in (o for o in origins if o is not None)]
        if states:
            if last is None or last.kind not in ("GRU", "Bidirectional") or list(states) != expected:
                raise ValueError(f"{where}: several graph outputs are supported only as a last GRU or "
                                 "Bidirectional layer's outputs ([output, state(s)] as return_state=True "
                                 "returns them, or the two halves of merge_mode=None)")
            for sub in last.sub or (last,):
                sub.config["return_state"] = True
        elif isinstance(main, Merge) and main.mode is None:
            pass
        else:
            raise ValueError(f"{where}: a Sequential has one output (several only as a last GRU or "
                             "Bidirectional layer's return_state outputs or merge_mode=None halves)")
        return chain
