""":class:`TimeDistributed`: one layer applied to every time step (Keras's ``TimeDistributed``)."""

from __future__ import annotations

from typing import Any

from .base import Layer, _register_builtin, deserialize_layer, serialize_layer
from .weights import read_values


@_register_builtin
class TimeDistributed(Layer):
    """Applies ``layer`` to each time step: input ``(batch, time, ...)``, where ``layer`` takes
    ``(batch, ...)``; output ``(batch, time, ...)`` with ``layer``'s output per step.

    The steps run as one batch of ``batch * time`` samples (the same result as a loop over the
    steps; a ``Dropout`` inside draws one mask per step, as Keras's does). The wrapped layer may
    be any single-output layer that neither keeps state between calls, derives lengths from its
    data nor takes ids: ``Dense``, ``Dropout``, ``Activation``, ``LayerNormalization``,
    ``Flatten``, ``Conv1D`` or ``GRU`` on a further axis, plugin layers. It sees no lengths; the
    lengths of the batch go on to the layers after this one.

    Weights: those of the wrapped layer (Keras's names and order), e.g. ``[kernel, bias]`` for a
    ``Dense``; ``count_params`` and ``summary`` count them for this layer.
    """

    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        if isinstance(layer, dict):
            layer = deserialize_layer(layer)
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed wraps a cgru Layer, got {type(layer).__name__}")
        refused = None
        if layer.multiple_outputs:
            refused = "returns several outputs"
        elif layer.stateful_layers():
            refused = "keeps a state between calls (stateful)"
        elif layer.derives_lengths:
            refused = "derives lengths from its input"
        elif layer.takes_ids:
            refused = "takes integer ids"
        if refused is not None:
            raise ValueError(
                f"TimeDistributed cannot wrap layer {layer.name!r} ({type(layer).__name__}): it {refused}"
            )
        kwargs.setdefault("dtype", layer.dtype)
        super().__init__(**kwargs)
        self.layer = layer

    def _sublayers(self) -> list[Layer]:
        return [self.layer]

    def _step_shape(self, input_shape: tuple) -> tuple:
        """The wrapped layer's input shape: the batch and time axes merged into one."""
        if len(input_shape) < 3:
            raise ValueError(
                f"TimeDistributed {self.name!r} expects input (batch, time, ...) of rank >= 3, "
                f"got input shape {tuple(input_shape)}"
            )
        return (input_shape[0], *input_shape[2:])

    def build(self, input_shape: tuple) -> None:
        self.layer._bind(self.ops)
        self.layer._maybe_build(self._step_shape(input_shape))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        inner = self.layer.compute_output_shape(self._step_shape(input_shape))
        return (inner[0], input_shape[1], *inner[1:])

    def _merged(self, x: Any) -> Any:
        if x.ndim < 3:
            raise ValueError(
                f"TimeDistributed {self.name!r} expects (batch, time, ...), got {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])

    @staticmethod
    def _split(y: Any, batch: int, time: int) -> Any:
        return y.reshape(batch, time, *y.shape[1:])

    def _wrap_forward(self, inner: Any) -> Any:
        """The forward of this layer around ``inner(x, training, lengths) -> (y, cache)``."""
        merged, split = self._merged, self._split

        def forward(x: Any, training: bool, lengths: Any = None) -> tuple[Any, Any]:
            y, cache = inner(merged(x), training, None)
            return split(y, x.shape[0], x.shape[1]), cache

        return forward

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        values = read_values(self.weights)[1]
        inner = self.layer._pinned_forward(values) or self.layer._forward
        return self._wrap_forward(inner)(x, training)

    def _pinned_forward(self, values: tuple) -> Any:
        if self._own_forward(TimeDistributed):
            return super()._pinned_forward(values)
        inner = self.layer._pinned_forward(values)
        return None if inner is None else self._wrap_forward(inner)

    def _pinned_infer(self, values: tuple) -> Any:
        if self._own_forward(TimeDistributed):
            return super()._pinned_infer(values)
        inner = self.layer._pinned_infer(values)
        if inner is None:
            return None
        merged, split = self._merged, self._split
        return lambda x, lengths=None: split(inner(merged(x)), x.shape[0], x.shape[1])

    def backward(self, dy: Any, cache: Any) -> Any:
        return self._backward(dy, cache, True)

    def _backward(self, dy: Any, cache: Any, input_grad: bool) -> Any:
        if self._own_backward(TimeDistributed):
            return self.backward(dy, cache)
        batch, time = dy.shape[0], dy.shape[1]
        dx = self.layer._backward(self._merged(dy), cache, input_grad)
        return None if dx is None else self._split(dx, batch, time)

    def get_config(self) -> dict:
        return {**super().get_config(), "layer": serialize_layer(self.layer)}

    @classmethod
    def from_config(cls, config: dict) -> TimeDistributed:
        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"])
        return cls(**config)


__all__ = ["TimeDistributed"]
