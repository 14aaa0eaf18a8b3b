"""The importer's operator handlers for the activation side of a graph (see
:mod:`cgru.onnx.importer`): each takes the interpreter, the abstract values of the node's inputs,
its attributes and its label, and returns the abstract values of its outputs.

Shape-side computations never reach these: :mod:`cgru.onnx._fold` evaluates them first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import _fold
from ._exprs import Chain, DirOut, GruRecord, LayerSpec, Merge, PreDense, describe, direction_params
from ._gru_spec import candidate_activation, gate_activation, read_activations
from ._load import TENSOR_TYPES
from ._values import Aux, Const, Data, Dim, Fill, Lengths, Sym, is_unit, same_size

if TYPE_CHECKING:
    from .importer import _Interpreter

_BIG = 1 << 30  # Slice bounds at least this large mean "to the end"


class ReadingMismatch(ValueError):
    """The graph uses its input otherwise than assumed: in another axis order (a GRU reads it
    batch-major or time-major), or as float-typed ids (cast to ints for an embedding lookup)."""


def _axes_arg(args: list, attrs: dict, what: str) -> list | None:
    if len(args) > 1 and args[1] is not None:
        return _fold.ints(args[1], f"{what} axes")
    return attrs.get("axes")


def _op_transpose(it: _Interpreter, args, attrs, where):
    data = it.data(args[0], "input", where)
    perm = attrs.get("perm") or list(reversed(range(len(data.axes))))
    if sorted(perm) != list(range(len(data.axes))):
        raise ValueError(f"{where}: perm {perm} does not fit rank {len(data.axes)}")
    return [data.with_axes(tuple(data.axes[p] for p in perm))]


def _op_squeeze(it: _Interpreter, args, attrs, where):
    data = it.data(args[0], "input", where)
    rank = len(data.axes)
    axes = _axes_arg(args, attrs, "Squeeze")
    if axes is None:
        axes = [i for i, a in enumerate(data.axes) if is_unit(data, a)]
    pending = sorted({_fold.norm_axis(a, rank, where) for a in axes})
    while pending:
        # a direction axis first, so that a kept time step then applies to the one direction left
        p = next((q for q in pending if data.axes[q] == "D"), pending[0])
        data = it.drop_axis(data, p, where)
        pending = [q - (q > p) for q in pending if q != p]
    return [data]


def _op_unsqueeze(it: _Interpreter, args, attrs, where):
    data = it.data(args[0], "input", where)
    axes = _axes_arg(args, attrs, "Unsqueeze") or []
    rank = len(data.axes) + len(axes)
    labels = list(data.axes)
    for a in sorted(_fold.norm_axis(a, rank, where) for a in axes):
        labels.insert(a, "1")
    return [data.with_axes(tuple(labels))]


def _op_reshape(it: _Interpreter, args, attrs, where):
    value = args[0]
    target = _fold.items(args[1], "Reshape shape")
    if isinstance(value, (Lengths, Aux)):
        return [_relabel(value, target, where)]
    data = it.data(value, "input", where)
    sizes = [it.size(data, a) for a in data.axes]
    dims = [sizes[i] if d == 0 and not attrs.get("allowzero") and i < len(sizes) else d
            for i, d in enumerate(target)]
    # The axes that are not size 1 must map in order onto the target's non-unit sizes: one to
    # one, or a direction axis and the features merged (directions concatenated).
    src = [(a, s) for a, s in zip(data.axes, sizes) if not is_unit(data, a)]
    out: list = []
    wildcard = [i for i, d in enumerate(dims) if not isinstance(d, Dim) and d == -1]
    if len(wildcard) > 1:
        raise ValueError(f"{where}: more than one -1 in the target shape {target}")
    i = 0
    merged_parts = False
    for d in dims:
        if not isinstance(d, Dim) and d == 1:
            out.append("1")
            continue
        if i >= len(src):
            raise ValueError(f"{where}: reshapes axes {it._axes(data)} to {[str(x) for x in target]}")
        label, size = src[i]
        if label == "D" and i + 1 < len(src) and src[i + 1][0] == "F" and (
                not isinstance(d, Dim) and d in (-1, size * data.width)):
            out.append("F")
            merged_parts = True
            i += 2
        elif (not isinstance(d, Dim) and d == -1) or same_size(d, size):
            out.append(label)
            i += 1
        else:
            raise ValueError(f"{where}: reshapes axes {it._axes(data)} (sizes "
                             f"{[str(s) for s in sizes]}) to {[str(x) for x in target]}; cgru keeps the "
                             "batch, time and feature axes apart")
    if i != len(src):
        raise ValueError(f"{where}: reshapes axes {it._axes(data)} to {[str(x) for x in target]}")
    # size-1 axes of the input that vanished: a single direction or a kept step is applied
    result = data
    for position in reversed(range(len(data.axes))):
        label = data.axes[position]
        if is_unit(data, label) and not (label == "D" and merged_parts):
            result = it.drop_axis(result, position, where)
    if merged_parts:
        expr = Merge("concat", result.parts, result.parts[0].kind, where)
        result = Data(tuple(a for a in result.axes if a != "D"), expr, (), len(data.parts) * data.width)
    kept = [a for a in result.axes]
    labels = [a for a in out if a != "1"]
    if kept != labels:
        raise ValueError(f"{where}: reshapes axes {it._axes(data)} to {[str(x) for x in target]}")
    return [result.with_axes(tuple(out))]


def _relabel(value: Any, target: list, where: str) -> Any:
    """Reshape of lengths or a mask intermediate: only unit axes may come and go."""
    kept = [a for a in value.axes if a != "1"]
    out = []
    for d in target:
        if not isinstance(d, Dim) and d == 1:
            out.append("1")
        elif kept:
            out.append(kept.pop(0))
        else:
            raise ValueError(f"{where}: reshapes a lengths computation to {target}")
    if kept:
        raise ValueError(f"{where}: reshapes a lengths computation to {target}")
    if isinstance(value, Lengths):
        return Lengths(value.sources, tuple(out))
    return Aux(value.kind, tuple(out), value.lengths)


def _step_index(index: Any, where: str) -> int:
    """A time index: an int, or ``time + c`` (c < 0) counted from the end."""
    if isinstance(index, Dim):
        if index.symbol == "time" and index.offset < 0:
            return index.offset
        raise ValueError(f"{where}: time index {index} is out of range")
    return int(index)


def _op_gather(it: _Interpreter, args, attrs, where):
    data, indices = args[0], args[1]
    axis = attrs.get("axis", 0)
    if isinstance(data, Const) and isinstance(indices, Aux) and indices.kind == "ids":
        table = data.array
        if axis != 0 or table.ndim != 2 or table.dtype.kind != "f":
            raise ValueError(f"{where}: an embedding lookup needs a 2-D float table gathered on axis 0")
        if it.input_kind != "ids":
            raise ValueError(f"{where}: looks up ids that are not the graph input")
        config = {"input_dim": int(table.shape[0]), "output_dim": int(table.shape[1])}
        spec = LayerSpec("Embedding", config, [table])
        return [Data(indices.axes + ("F",), Chain((spec,), "seq"), width=int(table.shape[1]))]
    data = it.data(data, "data", where)
    if not isinstance(indices, (Const, Sym)):
        raise ValueError(f"{where}: gathers with computed indices, which is not supported")
    picked = _fold.items(indices, "Gather indices")
    scalar = _fold.is_scalar(indices)
    if len(picked) != 1 and not (data.axes[_fold.norm_axis(axis, len(data.axes), where)] == "D"):
        raise ValueError(f"{where}: gathers {len(picked)} entries; one time step or direction is supported")
    position = _fold.norm_axis(axis, len(data.axes), where)
    label = data.axes[position]
    if label == "D":
        chosen = tuple(data.parts[int(i)] for i in picked)
        if scalar:
            return [data.with_axes(data.axes[:position] + data.axes[position + 1:], expr=chosen[0], parts=())]
        return [data.with_axes(data.axes, parts=chosen)]
    if label == "T":
        k = _step_index(picked[0], where)
        step = data.with_axes(data.axes[:position] + (("step", k),) + data.axes[position + 1:])
        return [it.drop_axis(step, position, where) if scalar else step]
    if is_unit(data, label) and not isinstance(picked[0], Dim) and picked[0] in (0, -1):
        return [it.drop_axis(data, position, where) if scalar else data]
    raise ValueError(f"{where}: gathers along the {label} axis of a tensor with axes {it._axes(data)}")


def _op_slice(it: _Interpreter, args, attrs, where):
    data = it.data(args[0], "data", where)
    if it.opset < 10:
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = _fold.items(args[1], "Slice starts"), _fold.items(args[2], "Slice ends")
        axes = _fold.ints(args[3], "Slice axes") if len(args) > 3 and args[3] is not None else None
        steps = _fold.ints(args[4], "Slice steps") if len(args) > 4 and args[4] is not None else None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for axis, start, end, step in zip(axes, starts, ends, steps):
        position = _fold.norm_axis(axis, len(data.axes), where)
        label = data.axes[position]
        if label == "T":
            data = _slice_time(it, data, position, start, end, step, where)
        elif label == "D":
            if isinstance(start, Dim) or isinstance(end, Dim):
                raise ValueError(f"{where}: slices the direction axis with symbolic bounds")
            chosen = tuple(data.parts[i] for i in _fold.slice_indices(start, end, step, len(data.parts)))
            if not chosen:
                raise ValueError(f"{where}: slices away every direction")
            data = data.with_axes(data.axes, parts=chosen)
        else:
            size = it.size(data, label)
            full_end = (not isinstance(end, Dim) and end >= _BIG) or same_size(end, size)
            if not (start == 0 and step == 1 and full_end):
                raise ValueError(f"{where}: slices part of the {label} axis; cgru layers take whole axes")
    return [data]


def _slice_time(it: _Interpreter, data: Data, position: int, start, end, step, where: str) -> Data:
    def is_end(v):  # at or past the last step
        if isinstance(v, Dim):
            return v.symbol == "time" and v.offset >= 0
        return v >= _BIG or (it.time.known is not None and v >= it.time.known)

    def before_start(v):  # before the first step, going backwards
        return not isinstance(v, Dim) and v <= -_BIG

    if step == 1 and start == 0 and is_end(end):
        return data
    if step == -1 and (start == -1 or is_end(start) or (isinstance(start, Dim) and start.offset == -1)) \
            and before_start(end):
        if data.parts:
            return data.with_axes(data.axes, parts=tuple(it.reverse(p, where) for p in data.parts))
        return data.with_axes(data.axes, expr=it.reverse(data.expr, where))
    if step == 1:
        k = _step_index(start, where) if isinstance(start, Dim) else int(start)
        single = (is_end(end) and k == -1) or (not isinstance(end, Dim) and end == k + 1 and k != -1) or (
            isinstance(end, Dim) and isinstance(start, Dim) and end.offset == start.offset + 1)
        if single:
            return data.with_axes(data.axes[:position] + (("step", k),) + data.axes[position + 1:])
    raise ValueError(f"{where}: slices the time axis [{start}:{end}:{step}]; supported: the whole axis, "
                     "the whole axis reversed, or one step")


def _op_concat(it: _Interpreter, args, attrs, where):
    values = [it.data(a, "input", where) for a in args if a is not None]
    first = values[0]
    position = _fold.norm_axis(attrs["axis"], len(first.axes), where)
    label = first.axes[position]
    for v in values[1:]:
        if v.axes != first.axes:
            raise ValueError(f"{where}: concatenates tensors with axes {it._axes(first)} and {it._axes(v)}")
    if len(values) == 1:
        return [first]
    if label == "D":
        return [first.with_axes(first.axes, parts=tuple(p for v in values for p in v.parts))]
    if label == "F":
        exprs = []
        for v in values:
            expr = it.single(v, where)
            exprs.extend(expr.parts if isinstance(expr, Merge) and expr.mode == "concat" else [expr])
        kinds = {getattr(e, "kind", None) for e in exprs}
        return [Data(first.axes, Merge("concat", tuple(exprs), kinds.pop(), where), (),
                     sum(v.width for v in values))]
    raise ValueError(f"{where}: concatenates along the {label} axis; supported: features or directions")


def _scalar(value: Any) -> float | None:
    if isinstance(value, Const) and value.array.size == 1:
        return float(value.array.reshape(-1)[0])
    return None


def _feature_vector(it: _Interpreter, data: Data, const: Const, where: str) -> np.ndarray:
    """A constant that broadcasts along the features only, as a vector of the feature size."""
    arr = np.asarray(const.array)
    rank = len(data.axes)
    if arr.ndim > rank:
        raise ValueError(f"{where}: a constant of shape {arr.shape} does not broadcast onto {it._axes(data)}")
    shape = (1,) * (rank - arr.ndim) + arr.shape
    for label, size in zip(data.axes, shape):
        if size != 1 and label != "F":
            raise ValueError(f"{where}: a constant of shape {arr.shape} varies along the {label} axis of "
                             f"{it._axes(data)}; only per-feature constants are supported")
    if arr.size not in (1, data.width):
        return None
    it.budget.take((data.width,), where)
    return np.broadcast_to(arr.reshape(-1), (data.width,)).copy()


def _op_arith(op: str):
    def handler(it: _Interpreter, args, attrs, where):
        a, b = args[0], args[1]
        if isinstance(b, Aux) and b.kind == "mask" and op == "Mul":
            a, b = b, a
        if isinstance(a, Aux) and a.kind == "mask" and op == "Mul" and isinstance(b, Data):
            it.use_lengths(a.lengths, where)
            return [b]  # zeroing the steps past each length: cgru's packed semantics already do
        if isinstance(a, Data) and isinstance(b, Data):
            if a.axes != b.axes or a.width != b.width:
                raise ValueError(f"{where}: {op} of tensors with axes {it._axes(a)} and {it._axes(b)}")
            if op not in ("Add", "Mul"):
                raise ValueError(f"{where}: {op} of two computed tensors is not supported")
            ea, eb = it.single(a, where), it.single(b, where)
            mode = "sum" if op == "Add" else "mul"
            return [a.with_axes(a.axes, expr=Merge(mode, (ea, eb), ea.kind, where))]
        if isinstance(b, Data) and op in ("Add", "Mul"):
            a, b = b, a
        if not isinstance(a, Data) or not isinstance(b, Const):
            raise ValueError(f"{where}: {op} of {type(a).__name__} and {type(b).__name__} is not supported")
        expr = it.single(a, where)
        c = _scalar(b)
        if (op in ("Mul", "Div") and c == 1.0) or (op in ("Add", "Sub") and c == 0.0):
            return [a]
        halved = (op == "Mul" and c == 0.5) or (op == "Div" and c == 2)
        if isinstance(expr, Merge) and expr.mode == "sum" and halved:
            return [a.with_axes(a.axes, expr=Merge("ave", expr.parts, expr.kind, where))]
        if isinstance(expr, PreDense) and expr.activation == "linear":
            if op in ("Add", "Sub"):
                vec = _feature_vector(it, a, b, where)
                if vec is not None:
                    it.budget.take((2 * vec.size,), where)  # negated, then added
                    vec = vec if op == "Add" else -vec
                    bias = vec if expr.bias is None else expr.bias + vec
                    return [a.with_axes(a.axes, expr=PreDense(expr.source, expr.kernel, bias, expr.activation,
                                                              expr.kind))]
            elif c is not None and c != 0:
                scale = c if op == "Mul" else 1.0 / c
                it.budget.take((expr.kernel.size + (0 if expr.bias is None else expr.bias.size),), where)
                bias = None if expr.bias is None else expr.bias * scale
                return [a.with_axes(a.axes, expr=PreDense(expr.source, expr.kernel * scale, bias, "linear",
                                                          expr.kind))]
        raise ValueError(f"{where}: {op} with a constant applied to {describe(expr)}; cgru has no layer for "
                         "it (supported: a Dense layer's bias and scale, the average of two directions)")
    return handler


def _op_matmul(it: _Interpreter, args, attrs, where):
    data, weight = args[0], args[1]
    data = it.data(data, "first input", where)
    if not isinstance(weight, Const) or weight.array.ndim != 2:
        raise ValueError(f"{where}: MatMul by a computed or non-2-D tensor; a Dense layer multiplies by a "
                         "constant (features, units) matrix")
    if data.axes[-1] != "F" or weight.array.shape[0] != data.width:
        raise ValueError(f"{where}: multiplies axes {it._axes(data)} (features {data.width}) by a "
                         f"{weight.array.shape} matrix")
    return [_dense(it, data, weight.array, None, where)]


def _dense(it: _Interpreter, data: Data, kernel: np.ndarray, bias, where: str) -> Data:
    expr = it.single(data, where)
    source = it.chain(expr, where)
    if source.kind == "ids":
        raise ValueError(f"{where}: multiplies ids")
    return data.with_axes(data.axes, expr=PreDense(source, kernel, bias, "linear", source.kind),
                          width=int(kernel.shape[1]))


def _op_gemm(it: _Interpreter, args, attrs, where):
    data = it.data(args[0], "input A", where)
    weight = args[1]
    if attrs.get("transA", 0) or data.axes != ("B", "F") or not isinstance(weight, Const):
        raise ValueError(f"{where}: Gemm is supported as a Dense layer: A = (batch, features), B constant")
    kernel = np.asarray(weight.array)
    it.budget.take(kernel.shape, where)
    kernel = (kernel.T if attrs.get("transB", 0) else kernel) * attrs.get("alpha", 1.0)
    if kernel.ndim != 2 or kernel.shape[0] != data.width:
        raise ValueError(f"{where}: B of shape {weight.array.shape} does not fit {data.width} features")
    bias = None
    if len(args) > 2 and args[2] is not None:
        if not isinstance(args[2], Const):
            raise ValueError(f"{where}: Gemm's C must be constant")
        it.budget.take((2 * args[2].array.size,), where)  # C scaled, then broadcast
        c = np.asarray(args[2].array) * attrs.get("beta", 1.0)
        if c.size not in (1, kernel.shape[1]) or (c.ndim == 2 and c.shape[0] != 1):
            raise ValueError(f"{where}: C of shape {c.shape} is not a per-unit bias")
        bias = np.broadcast_to(c.reshape(-1), (kernel.shape[1],)).copy()
    out = _dense(it, data, kernel, None, where)
    if bias is not None:
        expr = out.expr
        out = out.with_axes(out.axes, expr=PreDense(expr.source, expr.kernel, bias, "linear", expr.kind))
    return [out]


def _op_activation(name: str):
    def handler(it: _Interpreter, args, attrs, where):
        data = it.data(args[0], "input", where)
        expr = it.single(data, where)
        if name == "softmax":
            rank = len(data.axes)
            axis = attrs.get("axis", -1 if it.opset >= 13 else 1)
            position = _fold.norm_axis(axis, rank, where)
            if data.axes[position] != "F" or (it.opset < 13 and position != rank - 1):
                raise ValueError(f"{where}: Softmax over axis {axis} of {it._axes(data)}; cgru's softmax "
                                 "normalises over the features")
        if not isinstance(expr, PreDense) or expr.activation != "linear":
            raise ValueError(f"{where}: cgru applies {name} only as a Dense layer's activation, here it "
                             f"follows {describe(expr)}")
        dense = PreDense(expr.source, expr.kernel, expr.bias, name, expr.kind)
        return [data.with_axes(data.axes, expr=dense)]
    return handler


def _op_identity(it: _Interpreter, args, attrs, where):
    return [args[0], None]


def _op_cast(it: _Interpreter, args, attrs, where):
    value = args[0]
    kind = np.dtype(TENSOR_TYPES.get(attrs.get("to"), (np.void,))[0]).kind
    if isinstance(value, Data) and kind != "f":
        if isinstance(value.expr, Chain) and not value.expr.layers:
            raise ReadingMismatch(f"{where}: casts the graph input to integers")
        raise ValueError(f"{where}: casts the activations to a non-float type")
    return [value]


def _op_shape(it: _Interpreter, args, attrs, where):
    value = args[0]
    if isinstance(value, Data):
        sizes = [it.size(value, a) for a in value.axes]
    elif isinstance(value, (Aux, Lengths)):
        sizes = [it.batch if a == "B" else it.time if a == "T" else 1 for a in value.axes]
    else:
        raise ValueError(f"{where}: Shape of {type(value).__name__}")
    start, end = attrs.get("start", 0), attrs.get("end")
    return [_fold.sym_or_const(sizes[start:end], False)]


def _op_gru(it: _Interpreter, args, attrs, where):
    x = it.data(args[0], "input X", where)
    w, r = args[1], args[2]
    b = args[3] if len(args) > 3 else None
    seq = args[4] if len(args) > 4 else None
    h0 = args[5] if len(args) > 5 else None
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"{where}: unknown direction {direction!r}")
    nd = 2 if direction == "bidirectional" else 1
    if not isinstance(w, Const) or not isinstance(r, Const) or (b is not None and not isinstance(b, Const)):
        raise ValueError(f"{where}: W, R and B must be constants")
    w, r = w.array, r.array
    hidden = r.shape[-1] if r.ndim == 3 else -1
    if attrs.get("hidden_size") is not None and attrs["hidden_size"] != hidden:
        raise ValueError(f"{where}: hidden_size {attrs['hidden_size']} does not match R of shape {r.shape}")
    if w.ndim != 3 or r.shape != (nd, 3 * hidden, hidden) or w.shape[:2] != (nd, 3 * hidden):
        raise ValueError(f"{where}: W {w.shape} and R {r.shape} do not fit direction={direction!r} "
                         "(W: (directions, 3*hidden, input), R: (directions, 3*hidden, hidden))")
    if b is not None and b.array.shape != (nd, 6 * hidden):
        raise ValueError(f"{where}: B must have shape {(nd, 6 * hidden)}, got {b.array.shape}")
    if attrs.get("clip") is not None:
        raise ValueError(f"{where}: clip is not supported (cgru does not clip the gates)")
    if attrs.get("output_sequence"):
        raise ValueError(f"{where}: output_sequence (GRU-1) is not supported")
    layout = int(attrs.get("layout", 0))
    wanted = ("T", "B", "F") if layout == 0 else ("B", "T", "F")
    if x.axes != wanted:
        raise ReadingMismatch(f"{where}: reads X with axes {it._axes(x)}, but layout={layout} expects "
                              f"({', '.join(wanted)})")
    if w.shape[2] != x.width:
        raise ValueError(f"{where}: W expects {w.shape[2]} input features, X has {x.width}")
    if h0 is not None and not ((isinstance(h0, Fill) and h0.value == 0) or
                               (isinstance(h0, Const) and not np.any(h0.array))):
        raise ValueError(f"{where}: initial_h must be absent or zero (a Sequential starts from zero states)")
    names = attrs.get("activations") or ["Sigmoid", "Tanh"] * nd
    if len(names) != 2 * nd:
        raise ValueError(f"{where}: {len(names)} activations for {nd} direction(s); a GRU takes 2 per "
                         "direction")
    functions = read_activations(names, attrs.get("activation_alpha") or [],
                                 attrs.get("activation_beta") or [])
    lengths = None if seq is None else it.lengths(seq, where)
    source = it.chain(it.single(x, where), where)
    directions = []
    for d in range(nd):
        reverse = direction == "reverse" or d == 1
        directions.append(direction_params(
            hidden, reverse, bool(attrs.get("linear_before_reset", 0)),
            candidate_activation(functions[2 * d + 1], where), gate_activation(functions[2 * d], where),
            w[d], r[d], None if b is None else b.array[d]))
    record = GruRecord(where, source, tuple(directions), lengths)
    ys = tuple(DirOut(record, d, "Y") for d in range(nd))
    states = tuple(DirOut(record, d, "Y_h") for d in range(nd))
    y_axes = ("T", "D", "B", "F") if layout == 0 else ("B", "T", "D", "F")
    h_axes = ("D", "B", "F") if layout == 0 else ("B", "D", "F")
    return [Data(y_axes, None, ys, hidden), Data(h_axes, None, states, hidden)]


def _op_reverse_sequence(it: _Interpreter, args, attrs, where):
    data = it.data(args[0], "input", where)
    lengths = args[1]
    if not isinstance(lengths, Lengths):
        raise ValueError(f"{where}: reverses by lengths that are not the model's sequence lengths")
    batch_axis, time_axis = attrs.get("batch_axis", 1), attrs.get("time_axis", 0)
    if data.axes[batch_axis] != "B" or data.axes[time_axis] != "T":
        raise ValueError(f"{where}: batch_axis/time_axis do not match the axes {it._axes(data)}")
    if lengths.sources:
        it.use_lengths(lengths, where)
    if data.parts:
        return [data.with_axes(data.axes, parts=tuple(it.reverse(p, where) for p in data.parts))]
    return [data.with_axes(data.axes, expr=it.reverse(data.expr, where))]


def _broadcast_axes(a: tuple, b: tuple, where: str) -> tuple:
    """The axis labels of an elementwise result (NumPy broadcasting, unit axes "1")."""
    rank = max(len(a), len(b))
    a, b = ("1",) * (rank - len(a)) + a, ("1",) * (rank - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x != y and "1" not in (x, y):
            raise ValueError(f"{where}: combines axes {x} and {y}")
        out.append(y if x == "1" else x)
    return tuple(out)


def _op_compare(op: str):
    def handler(it: _Interpreter, args, attrs, where):
        a, b = args[0], args[1] if len(args) > 1 else None
        if op == "Not" and isinstance(a, Aux) and a.kind in ("zero", "nonzero"):
            return [Aux("nonzero" if a.kind == "zero" else "zero", a.axes)]
        ids = a if isinstance(a, Aux) and a.kind == "ids" else None
        zero = _scalar(b) == 0
        if ids is not None and zero and op in ("Equal", "Greater"):
            return [Aux("zero" if op == "Equal" else "nonzero", ids.axes)]
        steps, lengths = (a, b) if op == "Less" else (b, a)
        if op in ("Less", "Greater") and isinstance(steps, Aux) and steps.kind == "steps" \
                and isinstance(lengths, Lengths):
            return [Aux("mask", _broadcast_axes(steps.axes, lengths.axes, where), lengths)]
        raise ValueError(f"{where}: {op} of {type(a).__name__} and {type(b).__name__} is not supported")
    return handler


def _op_reduce_sum(it: _Interpreter, args, attrs, where):
    value = args[0]
    if not (isinstance(value, Aux) and value.kind == "nonzero"):
        raise ValueError(f"{where}: ReduceSum is supported only to count the non-zero ids of each sequence")
    axes = _axes_arg(args, attrs, "ReduceSum")
    rank = len(value.axes)
    if axes is None or [value.axes[_fold.norm_axis(a, rank, where)] for a in axes] != ["T"]:
        raise ValueError(f"{where}: counts ids along axes {axes}; the count runs along the time axis")
    keep = attrs.get("keepdims", 1)
    if keep:
        labels = tuple("1" if a == "T" else a for a in value.axes)
    else:
        labels = tuple(a for a in value.axes if a != "T")
    return [Lengths(frozenset({"ids"}), labels)]


def _op_min(it: _Interpreter, args, attrs, where):
    present = [a for a in args if a is not None]
    if not all(isinstance(a, Lengths) for a in present):
        raise ValueError(f"{where}: Min is supported only of sequence lengths")
    return [Lengths(frozenset().union(*(a.sources for a in present)), present[0].axes)]


def _op_range(it: _Interpreter, args, attrs, where):
    start, limit, delta = args[:3]
    if _scalar(start) == 0 and _scalar(delta) == 1 and isinstance(limit, Sym) and limit.items[0] == it.time:
        return [Aux("steps", ("T",))]
    raise ValueError(f"{where}: Range is supported as 0, 1, ..., time-1")


def _op_expand(it: _Interpreter, args, attrs, where):
    value, shape = args[0], _fold.items(args[1], "Expand shape")
    if isinstance(value, Sym) and value.items[0] == it.time and len(shape) == 1 and shape[0] == it.batch:
        return [Lengths(frozenset())]  # every sequence full length
    raise ValueError(f"{where}: Expand of a computed value is supported only for full sequence lengths")


def _op_where(it: _Interpreter, args, attrs, where):
    mask, data, other = args[:3]
    if isinstance(mask, Aux) and mask.kind == "mask" and isinstance(data, Data) and _scalar(other) == 0:
        it.use_lengths(mask.lengths, where)
        return [data]
    raise ValueError(f"{where}: Where is supported only to zero the steps past each sequence's length")


def _op_unit_axes(op: str):
    def handler(it: _Interpreter, args, attrs, where):
        value = args[0]
        if isinstance(value, Data):
            return (_op_squeeze if op == "Squeeze" else _op_unsqueeze)(it, args, attrs, where)
        if isinstance(value, (Aux, Lengths)):
            axes = _axes_arg(args, attrs, op)
            labels = list(value.axes)
            if op == "Unsqueeze":
                for a in sorted(_fold.norm_axis(a, len(labels) + len(axes), where) for a in axes):
                    labels.insert(a, "1")
            else:
                drop = {_fold.norm_axis(a, len(labels), where) for a in axes} if axes is not None else {
                    i for i, a in enumerate(labels) if a == "1"}
                if any(labels[i] != "1" for i in drop):
                    raise ValueError(f"{where}: squeezes a non-unit axis of a lengths computation")
                labels = [a for i, a in enumerate(labels) if i not in drop]
            if isinstance(value, Lengths):
                return [Lengths(value.sources, tuple(labels))]
            return [Aux(value.kind, tuple(labels), value.lengths)]
        raise ValueError(f"{where}: {op} of {type(value).__name__}")
    return handler


HANDLERS = {
    "Transpose": _op_transpose,
    "Squeeze": _op_unit_axes("Squeeze"),
    "Unsqueeze": _op_unit_axes("Unsqueeze"),
    "Reshape": _op_reshape,
    "Gather": _op_gather,
    "Slice": _op_slice,
    "Concat": _op_concat,
    "Add": _op_arith("Add"),
    "Sub": _op_arith("Sub"),
    "Mul": _op_arith("Mul"),
    "Div": _op_arith("Div"),
    "MatMul": _op_matmul,
    "Gemm": _op_gemm,
    "Relu": _op_activation("relu"),
    "Sigmoid": _op_activation("sigmoid"),
    "Tanh": _op_activation("tanh"),
    "Softmax": _op_activation("softmax"),
    "Identity": _op_identity,
    "Dropout": _op_identity,
    "Cast": _op_cast,
    "Shape": _op_shape,
    "GRU": _op_gru,
    "ReverseSequence": _op_reverse_sequence,
    "Equal": _op_compare("Equal"),
    "Greater": _op_compare("Greater"),
    "Less": _op_compare("Less"),
    "Not": _op_compare("Not"),
    "ReduceSum": _op_reduce_sum,
    "Min": _op_min,
    "Range": _op_range,
    "Expand": _op_expand,
    "Where": _op_where,
}
