"""What the importer knows about each tensor of the graph it reads (an abstract value).

The importer runs the graph symbolically: every tensor gets one of these values instead of
numbers, and the values of the tensors that carry the network's activations (:class:`Data`)
describe them as the output of cgru layers.

Shape-side values:
    :class:`Const` (a NumPy array known now), :class:`Sym` (an int vector or scalar made from the
    graph's shapes: entries are ints or :class:`Dim` such as ``batch`` or ``time - 1``),
    :class:`Fill` (a tensor of one repeated value and a possibly symbolic shape, as
    ConstantOfShape makes: an all-zero initial state), :class:`Lengths` (valid lengths of a
    padded batch), :class:`Aux` (intermediates that derive lengths or a valid-step mask).

Activation-side value:
    :class:`Data`: ``axes`` labels each physical axis ("B" batch, "T" time, "F" features, "D" the
    direction axis of a GRU output, "1" a unit axis, ``("step", k)`` one time step kept as a unit
    axis); ``expr`` says what the tensor holds in cgru's batch-major layout, see
    :mod:`cgru.onnx._exprs`. A tensor with a "D" axis holds one expression per direction
    (``parts``) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Dim:
    """A symbolic size: ``symbol + offset`` with symbol "batch" or "time"; ``known`` is the size
    the graph input declares for it (None when dynamic)."""

    symbol: str
    offset: int = 0
    known: int | None = None

    def plus(self, k: int) -> Dim:
        return Dim(self.symbol, self.offset + k, self.known)

    @property
    def value(self) -> int | None:
        return None if self.known is None else self.known + self.offset

    def __str__(self) -> str:
        return self.symbol if not self.offset else f"{self.symbol}{self.offset:+d}"


def same_size(a: Any, b: Any) -> bool:
    """Whether two sizes (ints or Dims) are known to be equal."""
    if isinstance(a, Dim) and isinstance(b, Dim):
        return (a.symbol, a.offset) == (b.symbol, b.offset)
    if isinstance(a, Dim):
        return a.value is not None and a.value == b
    if isinstance(b, Dim):
        return b.value is not None and b.value == a
    return int(a) == int(b)


@dataclass(frozen=True, eq=False)
class Const:
    array: np.ndarray


@dataclass(frozen=True)
class Sym:
    """An int64 scalar (``scalar``) or vector whose entries are ints or Dims."""

    items: tuple
    scalar: bool = False

    def concrete(self) -> np.ndarray | None:
        if any(isinstance(i, Dim) for i in self.items):
            return None
        return np.array(self.items[0] if self.scalar else list(self.items), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Fill:
    """``value`` repeated over ``dims`` (ints and Dims)."""

    value: float
    dims: tuple
    dtype: np.dtype


@dataclass(frozen=True)
class Lengths:
    """Valid lengths, one per sequence. ``sources``: "input" (a graph input) and/or "ids" (the
    non-zero ids of the Embedding input); the smaller is taken when both apply; none means the
    full time length. ``axes`` places the batch axis among unit axes."""

    sources: frozenset
    axes: tuple = ("B",)


@dataclass(frozen=True)
class Aux:
    """An intermediate of a lengths or mask computation. ``kind``: "ids" (the ids input itself),
    "nonzero" (ids != 0), "steps" (0, 1, ..., time-1), "mask" (step < length). ``axes`` as in Data."""

    kind: str
    axes: tuple
    lengths: Lengths | None = None


@dataclass(frozen=True, eq=False)
class Data:
    axes: tuple
    expr: Any = None
    parts: tuple = ()  # one expression per direction when axes has "D"
    width: int = 0  # the size of the "F" axis

    def with_axes(self, axes: tuple, **changes: Any) -> Data:
        fields = {"axes": tuple(axes), "expr": self.expr, "parts": self.parts, "width": self.width}
        fields.update(changes)
        return Data(**fields)


def is_step(label: Any) -> bool:
    return isinstance(label, tuple) and label[0] == "step"


def is_unit(value: Data, label: Any) -> bool:
    """Axes of size 1: unit axes, a kept time step, a direction axis with one direction."""
    return label == "1" or is_step(label) or (label == "D" and len(value.parts) == 1)
