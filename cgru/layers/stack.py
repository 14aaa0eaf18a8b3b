"""Building a stack of layers for one input shape, all or nothing (what ``Sequential`` builds).

Each layer is bound to the model's ops and built for the output shape of the layer before it;
a layer built earlier must have been built for a compatible shape. When a layer fails, the
layers built by that attempt are unbuilt again, so the stack is as it was.
"""

from __future__ import annotations

from typing import Any

from .base import Layer


def compatible(built: tuple, shape: tuple) -> bool:
    """Whether a layer built for ``built`` takes ``shape`` (None matches any size; the batch
    axis is not compared)."""
    if len(built) != len(shape):
        return False
    return all(a is None or b is None or a == b for a, b in zip(built[1:], shape[1:]))


def unbuild(layer: Layer) -> None:
    """Undo a failed build (drop the weights it created)."""
    layer.built = False
    layer.build_input_shape = None
    layer._params = []
    for sub in layer._sublayers():
        unbuild(sub)


def _several_outputs(layer: Layer) -> ValueError:
    return ValueError(
        f"layer {layer.name!r} returns several outputs, so it must be the last layer of a Sequential model"
    )


def build_stack(layers: list[Layer], input_shape: tuple, ops: Any) -> Any:
    """Bind and build ``layers`` in order for ``input_shape``; returns the last output shape."""
    built_now = []
    shape: Any = input_shape
    try:
        for i, layer in enumerate(layers):
            if isinstance(shape, list):
                raise _several_outputs(layers[i - 1])
            layer._bind(ops)
            if not layer.built:
                built_now.append(layer)
                layer._maybe_build(shape)
            elif layer.build_input_shape is not None and not compatible(layer.build_input_shape, shape):
                raise ValueError(
                    f"layer {layer.name!r} was built for input shape "
                    f"{layer.build_input_shape}, but receives {shape} in this model"
                )
            shape = layer.compute_output_shape(shape)
    except Exception:
        for layer in built_now:
            unbuild(layer)
        raise
    return shape


def _already_in(layer: Layer) -> ValueError:
    return ValueError(f"layer {layer.name!r} is already in the model")


def _name_taken(layer: Layer) -> ValueError:
    return ValueError(f"the model already has a layer named {layer.name!r}; layer names must be unique")


def _not_a_layer(layer: Any) -> TypeError:
    return TypeError(f"Sequential.add expects a cgru Layer, got {type(layer).__name__}")


def check_appendable(layers: list[Layer], layer: Any) -> None:
    """Raise unless ``layer`` may follow ``layers`` in a model."""
    if not isinstance(layer, Layer):
        raise _not_a_layer(layer)
    if any(layer is other for other in layers):
        raise _already_in(layer)
    if any(layer.name == other.name for other in layers):
        raise _name_taken(layer)
    if layers and layers[-1].multiple_outputs:
        raise _several_outputs(layers[-1])


def check_stack(layers: list[Layer]) -> None:
    """Raise unless ``layers``, in order, may form a model: what :func:`check_appendable` checks
    for each layer in turn, in time linear in their number."""
    seen: set[int] = set()
    names: set[str] = set()
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise _not_a_layer(layer)
        if id(layer) in seen:
            raise _already_in(layer)
        if layer.name in names:
            raise _name_taken(layer)
        if i and layers[i - 1].multiple_outputs:
            raise _several_outputs(layers[i - 1])
        seen.add(id(layer))
        names.add(layer.name)


__all__ = ["build_stack", "check_appendable", "check_stack", "compatible", "unbuild"]
