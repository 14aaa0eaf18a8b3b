""":class:`Masking`: the steps whose features all equal a value are padding (Keras's ``Masking``).

Keras 3 masks any step whose features all equal ``mask_value``, wherever it is. cgru's
variable-length model is right padding (PyTorch's packed sequences): the masked steps of each
sequence must all come after its last unmasked step, and the layer turns them into ``lengths``
for the layers after it. A masked step before an unmasked one raises a ValueError that names the
sequence and the step: a recurrent layer cannot skip a step in the middle of a sequence the way
Keras's can (its state would carry over the gap), so such data would otherwise give silently
different results.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..padding import valid_steps, zero_padding
from ..validation import to_host
from .base import Layer, _register_builtin, check_sequence_shape


@_register_builtin
class Masking(Layer):
    """Masks the padding of right-padded sequences: steps whose features all equal ``mask_value``.

    Input and output ``(batch, time, features)``. Each sequence's length is the position after
    its last step with a feature different from ``mask_value``; the steps after it are padding:
    the layers after this one get these lengths (as ``lengths=`` would give them; with an
    explicit ``lengths=`` too, the smaller one counts), and the output is 0 there, as Keras
    outputs 0 at masked steps. A masked step before an unmasked one in the same sequence raises
    ValueError (see the module documentation).

    Args:
        mask_value: the value that marks padding (default 0.0).
    """

    uses_lengths = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float, np.integer, np.floating)):
            raise TypeError(f"mask_value must be a number, got {mask_value!r}")
        self.mask_value = float(mask_value)

    def build(self, input_shape: tuple) -> None:
        check_sequence_shape(self, input_shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        check_sequence_shape(self, input_shape)
        return tuple(input_shape)

    def check_inputs(self, x: Any, lengths: Any) -> None:
        """Every sequence of the data set right-padded."""
        self.compute_lengths(x, lengths)

    def compute_lengths(self, x: Any, lengths: Any) -> Any:
        """The lengths the mask gives (the smaller of those and ``lengths``), or None when no
        step is padding; ValueError for a masked step before an unmasked one."""
        check_sequence_shape(self, tuple(x.shape))
        value = x.dtype.type(self.mask_value) if x.dtype.kind == "f" else self.mask_value
        unmasked = to_host((x != value).any(axis=-1))  # (B, T)
        batch, time = unmasked.shape
        if lengths is not None:
            unmasked &= valid_steps(lengths, time)
        last = time - np.argmax(unmasked[:, ::-1], axis=1)
        derived = np.where(unmasked.any(axis=1), last, 0).astype(np.int64)
        gaps = ~unmasked & valid_steps(derived, time)  # masked steps before the last unmasked one
        if gaps.any():
            row, step = (int(i[0]) for i in np.nonzero(gaps))
            raise ValueError(
                f"Masking {self.name!r}: step {step} of sequence {row} has every feature equal to "
                f"mask_value={self.mask_value}, but a later step of that sequence does not. cgru "
                "supports padding at the end of each sequence only (lengths): pad after the last "
                "real step, or choose a mask_value that no real step has"
            )
        if batch and derived.min() == time:
            return None
        return derived

    def forward(self, x: Any, training: bool = False, lengths: Any = None) -> tuple[Any, Any]:
        y = x if lengths is None else zero_padding(self.xp, x, lengths)
        return y, (lengths if training else None)

    def backward(self, dy: Any, cache: Any) -> Any:
        return dy if cache is None else zero_padding(self.xp, dy, cache)

    def get_config(self) -> dict:
        return {**super().get_config(), "mask_value": self.mask_value}


__all__ = ["Masking"]
