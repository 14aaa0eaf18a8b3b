"""The lean ``model(x)`` path: a few checks of ``x``, then the layers' bound inference functions.

A model sets it up on its first checked call (:func:`lean_input` once per structure,
:func:`bind` once per set of weights) and keeps the :class:`LeanCall`; a later call whose ``x``
passes its checks runs ``fns`` on ``x`` and nothing else. Where the compiled engine can run the
whole stack for one step of one sequence (:mod:`cgru.streaming`), ``step`` comes first: the
streaming call then costs one compiled call, which declines (returns None) whatever it does not
run exactly as ``fns`` would. Anything else (``lengths``,
``training=True``, another array type, dtype or shape, weights changed since binding, another
current backend for a model that follows it) takes the checked path, which binds again.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .layers.base import Layer


class LeanCall(NamedTuple):
    """What the lean path checks ``x`` against and what it runs.

    step: the compiled streaming step (``step(x)`` -> y, or None when it declines), or None;
    ops: the backend the functions run on; dtype, ndim: what ``x`` must have; features: its
    last axis (None: any); fns: the functions ``f(x) -> y`` to chain; array_type: the type ``x``
    must be (the backend's array type); changes, count: the weights are those bound while
    ``changes.count == count``.
    """

    step: Any
    ops: Any
    dtype: Any
    ndim: int
    features: int | None
    fns: tuple
    array_type: type
    changes: Any
    count: int


def lean_input(layers: list[Layer], input_shape: tuple) -> tuple | None:
    """``(dtype, ndim, features)`` the lean path accepts ``x`` with for a model of ``layers``
    built for ``input_shape``, or None when every call must be checked (a layer derives lengths
    from the data, or the first layer converts its input its own way)."""
    if any(layer.derives_lengths for layer in layers):
        return None
    first = layers[0]
    if first.takes_ids:
        return np.dtype(np.int64), len(input_shape), None  # ids (batch, time): any time length
    if type(first)._as_layer_input is Layer._as_layer_input:
        return first._np_dtype, len(input_shape), input_shape[-1]
    return None


def bind(pinned: Any, accepts: tuple, guarded_infer: Any, follows: bool = True) -> LeanCall:
    """The lean call on ``pinned``'s weights for inputs ``accepts`` describes (see
    :func:`lean_input`); ``guarded_infer`` runs a stack whose layers read their weights as they
    run (see :mod:`cgru.layers.weights`). ``follows``: the model follows the current backend."""
    from .streaming import compiled_step

    fns = (guarded_infer,) if pinned.guarded else pinned.infers()
    ops = pinned.ops
    step = None if pinned.guarded else compiled_step(pinned, follows)
    return LeanCall(step, ops, *accepts, fns, ops.xp.ndarray, pinned.changes, pinned.count)


__all__ = ["LeanCall", "bind", "lean_input"]
