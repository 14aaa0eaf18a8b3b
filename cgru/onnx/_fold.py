"""The shape side of an imported graph: constant folding and symbolic shape arithmetic.

Exporters surround a GRU with small computations on shapes (``Shape -> Gather -> Unsqueeze ->
Concat -> ConstantOfShape`` for a zero initial state, ``Range`` for a step mask...). They are
evaluated here on :class:`Const`, :class:`Sym` and :class:`Fill` values. Every array the
importer computes is charged to the :class:`Budget` of the graph's reading before its memory is
spent: at most ``MAX_FOLDED_ELEMENTS`` elements each, ``MAX_FOLDED_TOTAL`` in all (results stay
alive while the graph is read, so bounding each alone would not bound their sum).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._load import MAX_FOLDED_ELEMENTS, MAX_FOLDED_TOTAL, TENSOR_TYPES, element_count
from ._values import Const, Dim, Fill, Sym

_INT_LIMIT = 1 << 62  # Slice ends beyond this mean "to the end"


class Unfoldable(ValueError):
    """A shape-side computation the importer does not evaluate."""


def guard(shape: Any, what: str) -> tuple:
    """``shape`` as a tuple of ints, refused when it holds more than MAX_FOLDED_ELEMENTS."""
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise Unfoldable(f"{what}: negative dimension in {dims}")
    if element_count(dims, MAX_FOLDED_ELEMENTS) is None:
        raise Unfoldable(f"{what}: a tensor of shape {dims} is larger than the {MAX_FOLDED_ELEMENTS} "
                         "elements the importer computes")
    return dims


class Budget:
    """The elements the importer may still compute while reading one graph (MAX_FOLDED_TOTAL to
    begin with). :meth:`take` charges each array before it is made."""

    def __init__(self) -> None:
        self.left = MAX_FOLDED_TOTAL

    def take(self, shape: Any, what: str) -> tuple:
        """``shape`` as a tuple of ints (see :func:`guard`), its elements charged."""
        dims = guard(shape, what)
        count = element_count(dims, MAX_FOLDED_ELEMENTS)
        if count > self.left:
            raise Unfoldable(f"{what}: a tensor of shape {dims} would take the importer past the "
                             f"{MAX_FOLDED_TOTAL} elements it computes for a whole graph")
        self.left -= count
        return dims


def items(value: Any, what: str) -> list:
    """A Const or Sym as a flat list of ints and Dims."""
    if isinstance(value, Sym):
        return list(value.items)
    if isinstance(value, Const):
        return [int(v) for v in np.asarray(value.array).reshape(-1)]
    raise Unfoldable(f"{what} must be a constant or come from shapes")


def ints(value: Any, what: str) -> list[int]:
    out = items(value, what)
    if any(isinstance(v, Dim) for v in out):
        raise Unfoldable(f"{what} must be constant, got {[str(v) for v in out]}")
    return out


def sym_or_const(values: list, scalar: bool) -> Any:
    if any(isinstance(v, Dim) for v in values):
        return Sym(tuple(values), scalar)
    arr = np.array(values, dtype=np.int64)
    return Const(arr.reshape(()) if scalar else arr)


def is_scalar(value: Any) -> bool:
    if isinstance(value, Sym):
        return value.scalar
    return isinstance(value, Const) and np.ndim(value.array) == 0


def norm_axis(axis: int, rank: int, what: str) -> int:
    if not -rank <= axis < rank:
        raise Unfoldable(f"{what}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def slice_indices(start: int, end: int, step: int, size: int) -> range:
    """Python-slice semantics of ONNX Slice on an axis of known size."""
    if step == 0:
        raise Unfoldable("Slice step 0")
    return range(size)[slice(_clamp(start), _clamp(end), step)]


def _clamp(bound: int) -> int:
    return max(min(bound, _INT_LIMIT), -_INT_LIMIT)


# -------------------------------------------------------------------------------- operators
def _arith(op: str, a: Any, b: Any, budget: Budget) -> Any:
    """Elementwise arithmetic where one side may hold Dims (shape arithmetic)."""
    if isinstance(a, Const) and isinstance(b, Const):
        x, y = a.array, b.array
        budget.take(np.broadcast_shapes(np.shape(x), np.shape(y)), op)
        if op == "Div" and np.issubdtype(np.result_type(x, y), np.integer):
            return Const(np.trunc(np.divide(x, y)).astype(np.result_type(x, y)))
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        return Const(np.asarray(fn(x, y)).astype(np.result_type(x, y)))
    scalar = is_scalar(a) and is_scalar(b)
    xs, ys = items(a, op), items(b, op)
    if len(xs) != len(ys):
        if len(xs) == 1:
            xs = xs * len(ys)
        elif len(ys) == 1:
            ys = ys * len(xs)
        else:
            raise Unfoldable(f"{op} of shape values of lengths {len(xs)} and {len(ys)}")
    out = []
    for x, y in zip(xs, ys):
        if not isinstance(x, Dim) and not isinstance(y, Dim):
            out.append(int(_arith(op, Const(np.int64(x)), Const(np.int64(y)), budget).array))
        elif op == "Add" and isinstance(x, Dim) != isinstance(y, Dim):
            out.append(x.plus(y) if isinstance(x, Dim) else y.plus(x))
        elif op == "Sub" and isinstance(x, Dim) and not isinstance(y, Dim):
            out.append(x.plus(-y))
        elif op in ("Mul", "Div") and isinstance(x, Dim) and y == 1:
            out.append(x)
        elif op == "Mul" and isinstance(y, Dim) and x == 1:
            out.append(y)
        else:
            raise Unfoldable(f"{op} of {x} and {y} is not evaluated")
    return sym_or_const(out, scalar)


def _gather(data: Any, indices: Any, axis: int, budget: Budget) -> Any:
    idx = np.asarray(ints(indices, "Gather indices")).reshape(np.shape(indices.array)
                                                              if isinstance(indices, Const) else -1)
    if isinstance(data, Const):
        axis = norm_axis(axis, data.array.ndim, "Gather")
        shape = data.array.shape
        budget.take(shape[:axis] + idx.shape + shape[axis + 1:], "Gather")
        return Const(np.take(data.array, idx, axis=axis))
    if isinstance(data, Sym):
        values = list(data.items)
        picked = [values[int(i)] for i in idx.reshape(-1)]
        return sym_or_const(picked, idx.ndim == 0)
    if isinstance(data, Fill):
        axis = norm_axis(axis, len(data.dims), "Gather")
        dims = data.dims[:axis] + tuple(idx.shape) + data.dims[axis + 1:]
        return Fill(data.value, dims, data.dtype)
    raise Unfoldable("Gather")


def _squeeze(data: Any, axes: list[int] | None) -> Any:
    if isinstance(data, Const):
        return Const(np.squeeze(data.array, axis=None if axes is None else tuple(axes)))
    if isinstance(data, Sym):
        if data.scalar or len(data.items) != 1:
            raise Unfoldable("Squeeze of a shape vector")
        return Sym(data.items, True)
    if isinstance(data, Fill):
        rank = len(data.dims)
        drop = {norm_axis(a, rank, "Squeeze") for a in axes} if axes is not None else {
            i for i, d in enumerate(data.dims) if d == 1}
        return Fill(data.value, tuple(d for i, d in enumerate(data.dims) if i not in drop), data.dtype)
    raise Unfoldable("Squeeze")


def _unsqueeze(data: Any, axes: list[int]) -> Any:
    if isinstance(data, Const):
        guard(np.shape(data.array), "Unsqueeze")
        return Const(np.expand_dims(data.array, tuple(axes)))
    if isinstance(data, Sym):
        if not data.scalar or axes not in ([0], [-1]):
            raise Unfoldable("Unsqueeze of a shape vector")
        return Sym(data.items, False)
    if isinstance(data, Fill):
        rank = len(data.dims) + len(axes)
        dims = list(data.dims)
        for a in sorted(norm_axis(a, rank, "Unsqueeze") for a in axes):
            dims.insert(a, 1)
        return Fill(data.value, tuple(dims), data.dtype)
    raise Unfoldable("Unsqueeze")


def _concat(args: list, axis: int, budget: Budget) -> Any:
    if all(isinstance(a, Const) for a in args):
        budget.take((sum(np.size(a.array) for a in args),), "Concat")
        return Const(np.concatenate([a.array for a in args], axis=axis))
    if all(isinstance(a, (Const, Sym)) for a in args):
        return sym_or_const([v for a in args for v in items(a, "Concat")], False)
    raise Unfoldable("Concat")


def _slice(data: Any, starts: list, ends: list, axes: list | None, steps: list | None) -> Any:
    rank = len(data.dims) if isinstance(data, Fill) else (1 if isinstance(data, Sym) else data.array.ndim)
    axes = list(range(len(starts))) if axes is None else [norm_axis(a, rank, "Slice") for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    if isinstance(data, Const):
        index = [slice(None)] * rank
        for a, s, e, k in zip(axes, starts, ends, steps):
            index[a] = slice(_clamp(s), _clamp(e), k)
        return Const(data.array[tuple(index)])
    if isinstance(data, Sym):
        values = list(data.items)
        picked = [values[i] for i in slice_indices(starts[0], ends[0], steps[0], len(values))]
        return sym_or_const(picked, False)
    if isinstance(data, Fill):
        dims = list(data.dims)
        for a, s, e, k in zip(axes, starts, ends, steps):
            d = dims[a]
            if isinstance(d, Dim):
                if not (s == 0 and k == 1 and e >= _INT_LIMIT // 2):
                    raise Unfoldable(f"Slice of the {d} axis of a filled tensor")
            else:
                dims[a] = len(slice_indices(s, e, k, d))
        return Fill(data.value, tuple(dims), data.dtype)
    raise Unfoldable("Slice")


def _reshape(data: Any, shape: list, allowzero: bool, budget: Budget) -> Any:
    src = list(data.array.shape) if isinstance(data, Const) else list(data.dims)
    out = []
    for i, d in enumerate(shape):
        out.append(src[i] if d == 0 and not allowzero and i < len(src) else d)
    if isinstance(data, Const):
        if any(isinstance(d, Dim) for d in out):
            raise Unfoldable("Reshape of a constant to a symbolic shape")
        if not data.array.flags.c_contiguous:  # then the reshape may copy
            budget.take(data.array.shape, "Reshape")
        return Const(data.array.reshape(out))
    if isinstance(data, Fill):
        if out.count(-1) == 1:
            known = [d for d in out if d != -1]
            if any(isinstance(d, Dim) for d in src + known):
                rest = [d for d in src if not any(d is k for k in known)]
                if len(rest) != 1:
                    raise Unfoldable("Reshape of a filled tensor with -1 and symbolic sizes")
                out[out.index(-1)] = rest[0]
            else:
                total, part = int(np.prod(src)), int(np.prod(known))
                out[out.index(-1)] = total // max(part, 1)
        return Fill(data.value, tuple(out), data.dtype)
    if isinstance(data, Sym):
        if len(out) == 1 and out[0] in (-1, len(data.items)):
            return Sym(data.items, False)
        if out == [] and len(data.items) == 1:
            return Sym(data.items, True)
    raise Unfoldable("Reshape")


def _transpose(data: Any, perm: list | None) -> Any:
    if isinstance(data, Const):
        return Const(np.transpose(data.array, perm))
    if isinstance(data, Fill):
        perm = list(reversed(range(len(data.dims)))) if perm is None else perm
        return Fill(data.value, tuple(data.dims[p] for p in perm), data.dtype)
    raise Unfoldable("Transpose")


def _filled(value: np.ndarray, dims: list, what: str, budget: Budget) -> Any:
    if any(isinstance(d, Dim) for d in dims):
        return Fill(value.reshape(-1)[0].item(), tuple(dims), value.dtype)
    return Const(np.full(budget.take(dims, what), value.reshape(-1)[0], dtype=value.dtype))


def _constant_of_shape(shape: Any, attrs: dict, budget: Budget) -> Any:
    value = attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)[:1]
    return _filled(value, items(shape, "ConstantOfShape shape"), "ConstantOfShape", budget)


def _expand(data: Any, shape: Any, budget: Budget) -> Any:
    if not isinstance(data, Const):
        raise Unfoldable("Expand")
    arr = data.array
    if arr.size and np.all(arr == arr.reshape(-1)[0]):
        target = items(shape, "Expand shape")
        rank = max(len(target), arr.ndim)
        src = [1] * (rank - arr.ndim) + list(arr.shape)
        target = [1] * (rank - len(target)) + target
        dims = [t if s == 1 else s for s, t in zip(src, target)]
        return _filled(arr, dims, "Expand", budget)
    target = budget.take(np.broadcast_shapes(arr.shape, tuple(ints(shape, "Expand shape"))), "Expand")
    return Const(np.broadcast_to(arr, target).copy())


def _range(start: Any, limit: Any, delta: Any, budget: Budget) -> Any:
    s, lim, d = (_scalar_value(v) for v in (start, limit, delta))
    count = max(0, int(np.ceil((lim - s) / d))) if d else 0
    budget.take((count,), "Range")
    dtype = np.asarray(start.array).dtype if isinstance(start, Const) else np.int64  # a Sym is int64
    return Const(np.arange(s, lim, d, dtype=dtype))


def _scalar_value(value: Any) -> Any:
    """A Range operand's value: a constant's as it is (a float stays a float), a shape-side
    int's; Unfoldable for a symbolic size."""
    if isinstance(value, Const):
        return np.asarray(value.array).reshape(-1)[0]
    first = items(value, "Range")[0]
    if isinstance(first, Dim):
        raise Unfoldable("Range over a symbolic size")
    return first


_ELEMENTWISE: dict[str, Callable] = {
    "Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or, "Min": np.minimum,
    "Max": np.maximum, "Pow": np.power,
}
_UNARY: dict[str, Callable] = {"Not": np.logical_not, "Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt,
                               "Reciprocal": np.reciprocal, "Floor": np.floor, "Ceil": np.ceil}


def fold(op: str, args: list, attrs: dict, opset: int, budget: Budget) -> list | None:
    """Evaluate ``op`` on shape-side values, its arrays charged to ``budget``; None when an
    argument is not shape-side."""
    present = [a for a in args if a is not None]
    if not all(isinstance(a, (Const, Sym, Fill)) for a in present):
        return None
    if op in ("Range", "Expand") and isinstance(args[0 if op == "Expand" else 1], Sym):
        return None  # steps over the time axis, full lengths: the importer's own values
    if op == "Shape":
        data = args[0]
        if isinstance(data, Const):
            dims: list = list(np.shape(data.array))
        elif isinstance(data, Fill):
            dims = list(data.dims)
        else:
            dims = [len(data.items)] if not data.scalar else []
        # ONNX clamps start and end to the rank, as a Python slice does
        return [sym_or_const(dims[attrs.get("start", 0):attrs.get("end")], False)]
    if op in ("Add", "Sub", "Mul", "Div"):
        return [_arith(op, args[0], args[1], budget)]
    if op == "Gather":
        return [_gather(args[0], args[1], attrs.get("axis", 0), budget)]
    if op in ("Squeeze", "Unsqueeze"):
        axes = attrs.get("axes")
        if len(args) > 1 and args[1] is not None:
            axes = ints(args[1], f"{op} axes")
        if op == "Squeeze":
            return [_squeeze(args[0], None if axes is None else list(axes))]
        return [_unsqueeze(args[0], list(axes or []))]
    if op == "Concat":
        return [_concat(present, attrs.get("axis", 0), budget)]
    if op == "Slice":
        if opset < 10:
            starts, ends, axes, steps = attrs.get("starts"), attrs.get("ends"), attrs.get("axes"), None
        else:
            starts, ends = ints(args[1], "Slice starts"), ints(args[2], "Slice ends")
            axes = ints(args[3], "Slice axes") if len(args) > 3 and args[3] is not None else None
            steps = ints(args[4], "Slice steps") if len(args) > 4 and args[4] is not None else None
        return [_slice(args[0], list(starts), list(ends), axes, steps)]
    if op == "Reshape":
        return [_reshape(args[0], items(args[1], "Reshape shape"), bool(attrs.get("allowzero", 0)), budget)]
    if op == "Transpose":
        return [_transpose(args[0], attrs.get("perm"))]
    if op == "Cast":
        return [_cast(args[0], attrs["to"], budget)]
    if op == "ConstantOfShape":
        return [_constant_of_shape(args[0], attrs, budget)]
    if op == "Expand":
        return [_expand(args[0], args[1], budget)]
    if op == "Range":
        return [_range(*args[:3], budget)]
    if op in ("Identity", "Dropout"):
        return [args[0]]
    if op in _ELEMENTWISE and all(isinstance(a, Const) for a in present):
        budget.take(np.broadcast_shapes(*(np.shape(a.array) for a in present)), op)
        return [Const(np.asarray(_ELEMENTWISE[op](present[0].array, present[1].array)))]
    if op in _UNARY and isinstance(args[0], Const):
        budget.take(np.shape(args[0].array), op)
        return [Const(np.asarray(_UNARY[op](args[0].array)))]
    if op == "MatMul" and all(isinstance(a, Const) for a in args):
        a, b = args[0].array, args[1].array
        if a.ndim < 1 or b.ndim < 1:
            raise Unfoldable("MatMul of scalars")
        budget.take(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + a.shape[-2:-1] + b.shape[-1:], op)
        return [Const(np.matmul(a, b))]
    if op == "Where" and all(isinstance(a, Const) for a in args):
        budget.take(np.broadcast_shapes(*(np.shape(a.array) for a in args)), op)
        return [Const(np.where(args[0].array, args[1].array, args[2].array))]
    raise Unfoldable(f"{op} is not evaluated on constants or shapes")


def _cast(data: Any, to: int, budget: Budget) -> Any:
    if to not in TENSOR_TYPES:
        raise Unfoldable(f"Cast to data type {to}")
    dtype = np.dtype(TENSOR_TYPES[to][0])
    if isinstance(data, Const):
        budget.take(np.shape(data.array), "Cast")
        return Const(data.array.astype(dtype))
    if isinstance(data, Fill):
        return Fill(data.value, data.dims, dtype)
    if dtype.kind in "iu":
        return data
    raise Unfoldable("Cast of a shape to a non-integer type")
