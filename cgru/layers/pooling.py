"""Global pooling over the time axis: :class:`GlobalAveragePooling1D`, :class:`GlobalMaxPooling1D`.

Both take the lengths of a right-padded batch into account: they pool each sequence's valid
steps only, so a padded sequence gives what it gives alone. Keras 3's average pooling does the
same with a mask; its max pooling ignores masks (after a Keras GRU the padded steps repeat the
last output, so the result is the same there). A sequence of length 0 pools to zeros (Keras's
masked average gives 0/0 = NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..padding import valid_steps
from .base import Layer, _register_builtin, check_channels_last, check_sequence_shape


def _lengths_column(xp: Any, lengths: np.ndarray, dtype: Any) -> Any:
    """(B, 1) float column of ``lengths``, at least 1 (a sequence of length 0 divides its zero
    sum by 1)."""
    return xp.asarray(np.maximum(lengths, 1).astype(dtype)[:, None])


class _GlobalPooling1D(Layer):
    """What both pooling layers share: arguments, shapes, and the valid-step mask."""

    uses_lengths = True

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_channels_last(type(self).__name__, data_format)
        self.keepdims = bool(keepdims)

    def build(self, input_shape: tuple) -> None:
        check_sequence_shape(self, input_shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        check_sequence_shape(self, input_shape)
        batch, _, features = input_shape
        return (batch, 1, features) if self.keepdims else (batch, features)

    def output_lengths(self, lengths: Any, x: Any, y: Any) -> Any:
        return None  # the time axis is pooled away (keepdims leaves one step, which is no sequence)

    def _valid(self, x: Any, lengths: np.ndarray) -> Any:
        """(B, T, 1) bool: the valid steps of ``x``."""
        return self.xp.asarray(valid_steps(lengths, x.shape[1])[:, :, None])

    def _shaped(self, y: Any) -> Any:
        return y[:, None, :] if self.keepdims else y

    def _unshaped(self, dy: Any) -> Any:
        return dy[:, 0, :] if self.keepdims else dy

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": "channels_last", "keepdims": self.keepdims}


@_register_builtin
class GlobalAveragePooling1D(_GlobalPooling1D):
    """The mean over the time axis: ``(batch, time, features)`` -> ``(batch, features)`` (or
    ``(batch, 1, features)`` with ``keepdims=True``). With lengths, the mean of each sequence's
    valid steps (a sequence of length 0 gives zeros)."""

    def forward(self, x: Any, training: bool = False, lengths: Any = None) -> tuple[Any, Any]:
        check_sequence_shape(self, x.shape)
        xp = self.xp
        if lengths is None:
            count = xp.asarray(np.full((x.shape[0], 1), max(x.shape[1], 1), dtype=x.dtype))
            total = x.sum(axis=1)
        else:
            count = _lengths_column(xp, lengths, x.dtype)
            total = xp.where(self._valid(x, lengths), x, x.dtype.type(0)).sum(axis=1)
        y = total / count
        return self._shaped(y), ((x.shape, count, lengths) if training else None)

    def backward(self, dy: Any, cache: Any) -> Any:
        shape, count, lengths = cache
        xp = self.xp
        share = self._unshaped(dy) / count  # (B, F): each valid step's share of the gradient
        dx = xp.broadcast_to(share[:, None, :], shape)
        if lengths is None:
            return xp.ascontiguousarray(dx)
        return xp.where(self._valid(dx, lengths), dx, dx.dtype.type(0))


@_register_builtin
class GlobalMaxPooling1D(_GlobalPooling1D):
    """The maximum over the time axis: ``(batch, time, features)`` -> ``(batch, features)`` (or
    ``(batch, 1, features)`` with ``keepdims=True``). With lengths, the maximum over each
    sequence's valid steps (a sequence of length 0 gives zeros). The gradient goes to the
    maximal steps, shared equally between ties (as TensorFlow's ``reduce_max``)."""

    def forward(self, x: Any, training: bool = False, lengths: Any = None) -> tuple[Any, Any]:
        check_sequence_shape(self, x.shape)
        xp = self.xp
        batch, time, features = x.shape
        if lengths is None:
            lengths = np.full(batch, time, dtype=np.int64) if time == 0 else None
        valid = None
        if lengths is None:
            candidates = x
            y = x.max(axis=1)
        else:
            valid = self._valid(x, lengths)
            candidates = xp.where(valid, x, x.dtype.type(-np.inf))
            y = candidates.max(axis=1) if time else xp.zeros((batch, features), dtype=x.dtype)
            y = xp.where(xp.asarray(lengths[:, None] > 0), y, x.dtype.type(0))
        return self._shaped(y), ((candidates, y, valid) if training else None)

    def backward(self, dy: Any, cache: Any) -> Any:
        candidates, y, valid = cache
        xp = self.xp
        maximal = candidates == y[:, None, :]  # (B, T, F)
        if valid is not None:
            maximal &= valid  # never a padded step (a sequence of length 0 has none)
        ties = xp.maximum(maximal.sum(axis=1), 1).astype(dy.dtype)
        return xp.where(maximal, (self._unshaped(dy) / ties)[:, None, :], dy.dtype.type(0))


__all__ = ["GlobalAveragePooling1D", "GlobalMaxPooling1D"]
