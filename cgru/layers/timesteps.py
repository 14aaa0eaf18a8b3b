"""Time-axis layers: :class:`SelectTimestep` and :class:`ReverseTimesteps`.

They carry no weights and express the indexing that exported graphs put between recurrent
layers (``y[:, -1]`` on a bidirectional output, a reversed output sequence), so that
:func:`cgru.from_onnx` can represent such graphs as a :class:`~cgru.Sequential`.
"""

from __future__ import annotations

from typing import Any

from ..padding import reverse_padded
from .base import Layer, _register_builtin


def _check_sequence_shape(layer: Layer, shape: tuple) -> None:
    if len(shape) < 3:
        raise ValueError(
            f"{type(layer).__name__} {layer.name!r} expects input (batch, time, features...), "
            f"got input shape {tuple(shape)}"
        )


@_register_builtin
class SelectTimestep(Layer):
    """One time step of a sequence: ``x[:, index]``.

    Input ``(batch, time, features...)``; output ``(batch, features...)``. ``index`` counts from
    the start (0, 1...) or, when negative, from the end of the padded time axis (-1 is the last
    step). With ``lengths=`` the step is taken as it is: zeros at a step past a sequence's length
    (the packed-sequence output there). ValueError when the time axis is too short.
    """

    def __init__(self, index: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, got {index!r}")
        self.index = int(index)

    def build(self, input_shape: tuple) -> None:
        _check_sequence_shape(self, input_shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        _check_sequence_shape(self, input_shape)
        return (input_shape[0], *input_shape[2:])

    def _position(self, time: int) -> int:
        position = self.index + time if self.index < 0 else self.index
        if not 0 <= position < time:
            raise ValueError(
                f"SelectTimestep {self.name!r} takes step {self.index}, but the input has {time} time steps"
            )
        return position

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        if x.ndim < 3:
            raise ValueError(
                f"SelectTimestep {self.name!r} expects (batch, time, ...), got {tuple(x.shape)}"
            )
        position = self._position(x.shape[1])
        return x[:, position], ((x.shape, x.dtype, position) if training else None)

    def backward(self, dy: Any, cache: Any) -> Any:
        shape, dtype, position = cache
        dx = self.xp.zeros(shape, dtype=dtype)
        dx[:, position] = dy
        return dx

    def get_config(self) -> dict:
        return {**super().get_config(), "index": self.index}


@_register_builtin
class ReverseTimesteps(Layer):
    """Reverses each sequence along the time axis, within its own length.

    Input and output ``(batch, time, features...)``. With ``lengths=`` sequence ``b`` becomes
    ``x[b, lengths[b]-1], ..., x[b, 0]`` followed by zeros (what a ``GRU(go_backwards=True)``
    does to its output order); without, the whole time axis is reversed.
    """

    uses_lengths = True

    def build(self, input_shape: tuple) -> None:
        _check_sequence_shape(self, input_shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        _check_sequence_shape(self, input_shape)
        return tuple(input_shape)

    def forward(self, x: Any, training: bool = False, lengths: Any = None) -> tuple[Any, Any]:
        if x.ndim < 3:
            raise ValueError(
                f"ReverseTimesteps {self.name!r} expects (batch, time, ...), got {tuple(x.shape)}"
            )
        return reverse_padded(self.xp, x, lengths), (lengths if training else None)

    def backward(self, dy: Any, cache: Any) -> Any:
        return reverse_padded(self.xp, dy, cache)  # its own inverse on the valid steps
