"""What an imported activation tensor holds, as cgru layers, and turning that into layers.

Expressions (each in cgru's batch-major layout: "seq" ``(batch, time, features)`` or "vec"
``(batch, features)``):

- :class:`Chain`: the output of a stack of layers (the model so far); ``Chain(())`` is the input.
- :class:`DirOut`: one direction of a GRU node: its output sequence ``Y`` (time-aligned, as ONNX
  returns it, or ``reversed``) or its final state ``Y_h``.
- :class:`Merge`: directions combined ("concat", "sum", "mul", "ave"): a Bidirectional layer.
- :class:`PreDense`: a Dense layer being assembled from MatMul/Gemm, Add and an activation.

They stay open while glue rearranges them, and become layers (:meth:`Materializer.chain`) where
a consumer needs them as they are: a GRU's input, a MatMul, a graph output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..interop import gru_from_gate_rows


@dataclass(eq=False)
class LayerSpec:
    """A cgru layer to create: class name, constructor arguments, weights (get_weights order)."""

    kind: str
    config: dict
    weights: list = field(default_factory=list)
    sub: tuple = ()  # a Bidirectional's (forward, backward) GRU specs
    origin: Any = None  # a GRU's (GruRecord, direction index)

    def all_weights(self) -> list:
        return [w for s in self.sub for w in s.weights] if self.sub else list(self.weights)

    def make(self, dtype: str) -> Any:
        from .. import layers

        if self.kind == "Bidirectional":
            forward, backward = (s.make(dtype) for s in self.sub)
            return layers.Bidirectional(forward, backward_layer=backward, dtype=dtype, **self.config)
        return getattr(layers, self.kind)(dtype=dtype, **self.config)


@dataclass(frozen=True)
class Chain:
    layers: tuple
    kind: str  # "seq", "vec" or "ids"

    def then(self, spec: LayerSpec, kind: str) -> Chain:
        return Chain(self.layers + (spec,), kind)


@dataclass(frozen=True)
class DirectionParams:
    """One direction of an ONNX GRU node, in cgru's terms."""

    units: int
    reverse: bool
    reset_after: bool
    activation: str
    recurrent_activation: str
    weights: tuple  # cgru get_weights() order

    def spec(self, return_sequences: bool, origin: Any = None) -> LayerSpec:
        config = dict(units=self.units, activation=self.activation,
                      recurrent_activation=self.recurrent_activation, reset_after=self.reset_after,
                      use_bias=len(self.weights) == 3, go_backwards=self.reverse,
                      return_sequences=return_sequences)
        return LayerSpec("GRU", config, list(self.weights), origin=origin)


def direction_params(units: int, reverse: bool, linear_before_reset: bool, activation: str,
                     recurrent_activation: str, w: np.ndarray, r: np.ndarray,
                     b: np.ndarray | None) -> DirectionParams:
    """From one direction's ONNX W (3H, I), R (3H, H) and B (6H,) (None: no bias)."""
    b_in = b_rec = None
    if b is not None:
        b_in, b_rec = b[: 3 * units], b[3 * units:]
    weights = gru_from_gate_rows(w, r, b_in, b_rec, reset_after=linear_before_reset)
    return DirectionParams(units, reverse, bool(linear_before_reset), activation, recurrent_activation,
                           tuple(weights))


@dataclass(eq=False)
class GruRecord:
    """One ONNX GRU node as read: its input (a Chain), its directions, its sequence_lens."""

    label: str
    source: Chain
    directions: tuple
    lengths: Any  # a Lengths value or None


@dataclass(frozen=True)
class DirOut:
    record: GruRecord
    d: int
    output: str  # "Y" or "Y_h"
    reversed: bool = False

    @property
    def kind(self) -> str:
        return "seq" if self.output == "Y" else "vec"

    @property
    def params(self) -> DirectionParams:
        return self.record.directions[self.d]


@dataclass(frozen=True, eq=False)
class Merge:
    mode: str
    parts: tuple
    kind: str
    label: str  # the node that combined them, for messages


@dataclass(frozen=True, eq=False)
class PreDense:
    source: Chain
    kernel: np.ndarray
    bias: np.ndarray | None
    activation: str
    kind: str


def describe(expr: Any) -> str:
    if isinstance(expr, DirOut):
        return (f"{'reverse' if expr.params.reverse else 'forward'} direction of {expr.record.label} "
                f"({expr.output}{', reversed in time' if expr.reversed else ''})")
    if isinstance(expr, Merge):
        return f"the {expr.mode} made by {expr.label}"
    if isinstance(expr, PreDense):
        return "a dense projection"
    if isinstance(expr, Chain):
        return "the graph input" if not expr.layers else f"the output of a {expr.layers[-1].kind} layer"
    return type(expr).__name__


class Materializer:
    """Turns expressions into Chains of layer specs, once per expression (so that the same GRU
    direction used twice is one layer)."""

    def __init__(self) -> None:
        self._memo: dict = {}

    def chain(self, expr: Any, where: str) -> Chain:
        if isinstance(expr, Chain):
            return expr
        key = expr if isinstance(expr, DirOut) else id(expr)
        if key not in self._memo:
            self._memo[key] = (expr, self._build(expr, where))
        return self._memo[key][1]

    def _build(self, expr: Any, where: str) -> Chain:
        if isinstance(expr, PreDense):
            config = dict(units=int(expr.kernel.shape[1]), activation=expr.activation,
                          use_bias=expr.bias is not None)
            weights = [expr.kernel] + ([expr.bias] if expr.bias is not None else [])
            return expr.source.then(LayerSpec("Dense", config, weights), expr.kind)
        if isinstance(expr, DirOut):
            source = expr.record.source
            origin = (expr.record, expr.d)
            if expr.output == "Y_h":
                return source.then(expr.params.spec(False, origin), "vec")
            chain = source.then(expr.params.spec(True, origin), "seq")
            # cgru returns a direction's sequence in processing order: reversed for a reverse one
            if expr.reversed != expr.params.reverse:
                chain = chain.then(LayerSpec("ReverseTimesteps", {}), "seq")
            return chain
        if isinstance(expr, Merge):
            return self._bidirectional(expr, where)
        raise ValueError(f"{where}: cannot express {describe(expr)} with cgru layers")

    def _bidirectional(self, merge: Merge, where: str) -> Chain:
        parts = merge.parts
        problem = None
        if len(parts) != 2 or not all(isinstance(p, DirOut) for p in parts):
            problem = f"it combines {', '.join(describe(p) for p in parts)}"
        else:
            a, b = parts
            if a.output != b.output:
                problem = "it combines an output sequence with a final state"
            elif a.params.reverse == b.params.reverse:
                problem = "both parts run in the same direction"
            elif a.record.source != b.record.source:
                problem = "the two directions read different inputs"
            elif a.output == "Y" and a.reversed != b.reversed:
                problem = "one direction is reversed in time and the other is not"
        if problem is not None:
            raise ValueError(f"{merge.label}: a {merge.mode} of GRU outputs is a Bidirectional layer in "
                             f"cgru, but {problem}")
        if merge.mode not in ("concat", None) and a.params.reverse:
            a, b = b, a  # commutative: the forward direction first
        sequences = a.output == "Y"
        spec = LayerSpec("Bidirectional", {"merge_mode": merge.mode},
                         sub=tuple(p.params.spec(sequences, (p.record, p.d)) for p in (a, b)))
        chain = a.record.source.then(spec, merge.kind)
        # Bidirectional returns both halves time-aligned when its forward layer runs forwards,
        # both reversed when the forward layer is the one going backwards
        if sequences and a.reversed != a.params.reverse:
            chain = chain.then(LayerSpec("ReverseTimesteps", {}), "seq")
        return chain
