"""The compiled streaming step: the one-step ``model(x)`` call of a GRU/Dense stack in one
engine call.

Streaming feeds a stateful model one time step of one sequence per call, and its cost is the
per-call path more than the arithmetic (a GRU(64) step is well under a microsecond of engine
work). On the compiled backend, :func:`compiled_step` binds the layers of a model's pinned
weights into one ``cgru._engine.StreamStep``: for x of shape (1, 1, features), float32, it runs
every layer's inference in C with the GIL released once, reading each stateful GRU's kept state
as it stands at the call and updating it in place, and returns a new array. It makes the engine
calls the layers' own inference makes (the prepared direction of a GRU, the one-row product of
a Dense layer), so its output and states equal the general path's bit for bit.

Stacks it takes: GRU layers (float32 or quantized; stateful or not; not ``return_state``, not
``go_backwards`` with ``return_sequences``), Dense layers with a linear or relu activation
(float32 or quantized) and Dropout (nothing at inference), the first layer taking (batch, time,
features) input. Anything else keeps the Python lean path. The step declines (returns None, and
the lean path runs) for any other input, once a layer setting its lean inference reads at
every call changed (``return_sequences``, ``stateful``..., a Dense activation), once a weight was
published (the model binds it again
on its next checked call), for a model that follows the current backend when that changed, for a
stateful layer without a kept state of one row (after ``reset_states()``: the lean path starts
it, and the step takes it from the next call), and while another thread is inside the same step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers.core import Dense, Dropout
from .layers.recurrent import GRU

#: The Dense activations the step computes exactly as the layer does.
STEP_ACTIVATIONS = ("linear", "relu")


#: The settings each kind of layer reads at every call of its lean inference: the step is bound
#: for their values when it is made, and declines once one changed.
GUARDED = {GRU: ("return_sequences", "return_state", "go_backwards", "stateful"), Dense: ("activation",)}


def _gru_stage(layer: GRU, values: tuple) -> tuple | None:
    if layer.return_state or (layer.go_backwards and layer.return_sequences):
        return None
    inference = getattr(layer._prepared_for(layer._arrays(values)), "inference", None)
    if inference is None or inference.dtype != np.float32:
        return None
    return ("gru", inference, layer if layer.stateful else None)


def _dense_stage(layer: Dense, values: tuple) -> tuple | None:
    if layer.activation not in STEP_ACTIVATIONS:
        return None
    kernel, bias = layer._operands(values)
    return ("dense", kernel, bias, layer.activation == "relu")


def compiled_step(pinned: Any, follows: bool) -> Any | None:
    """The compiled streaming step of the layers on ``pinned``'s weights, or None when the
    backend is not the compiled one or a layer is not one the step runs (see the module's
    documentation). ``follows``: the model follows the current backend."""
    from .backends.cpu_ops import CPUOps

    ops = pinned.ops
    if not isinstance(ops, CPUOps) or not hasattr(ops.engine, "StreamStep"):
        return None
    stages, guards, rank = [], [], 3  # the step's input: (1, 1, features)
    for layer, values in pinned.per_layer():
        kind = type(layer)
        if kind is Dropout:
            continue
        guards += [(layer, name) for name in GUARDED.get(kind, ())]
        if layer.dtype != "float32":
            return None
        if kind is GRU and rank == 3:
            stage = _gru_stage(layer, values)
            rank = 3 if layer.return_sequences else 2
        elif kind is Dense:
            stage = _dense_stage(layer, values)
        else:
            return None
        if stage is None:
            return None
        stages.append(stage)
    if not stages or len(stages) > ops.engine.STREAM_MAX_STAGES:
        return None
    from . import backends

    outputs = stages[-1][1].units if stages[-1][0] == "gru" else _columns(stages[-1][1])
    shape = (1, 1, outputs) if rank == 3 else (1, outputs)
    follow = (backends, ops) if follows else None
    return ops.engine.StreamStep(stages, shape, pinned.changes, pinned.count, follow, guards).step


def _columns(kernel: Any) -> int:
    return int(kernel.shape[1])


__all__ = ["STEP_ACTIVATIONS", "compiled_step"]
