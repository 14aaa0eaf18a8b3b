"""Right-padded batches: which steps are valid, zeroing the padding, reversing within lengths.

A batch of sequences of different lengths is stored right-padded, ``(B, T, ...)`` with
``lengths`` (B,) (int64, checked by :func:`cgru.validation.check_lengths`): the steps
``t >= lengths[b]`` of sequence ``b`` are padding. Functions take the array module ``xp``
(numpy or cupy) of the arrays they return; ``lengths`` is always a NumPy array.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def valid_steps(lengths: np.ndarray, time: int) -> np.ndarray:
    """(B, T) bool: True at the steps t < length of each sequence, False at its padding."""
    return np.arange(time)[None, :] < np.asarray(lengths)[:, None]


def step_mask(xp: Any, lengths: np.ndarray, y: Any) -> Any:
    """(B, T) mask of ``y``'s dtype: 1 at the valid steps of the sequence output ``y``, 0 elsewhere."""
    return xp.asarray(valid_steps(lengths, y.shape[1]), dtype=y.dtype)


def zero_padding(xp: Any, a: Any, lengths: np.ndarray) -> Any:
    """``a`` (B, T, ...) with exact zeros at the padded steps t >= length, whatever they held
    (a select, not a product with the mask: 0 * inf would be NaN)."""
    valid = valid_steps(lengths, a.shape[1]).reshape(a.shape[:2] + (1,) * (a.ndim - 2))
    return xp.where(xp.asarray(valid), a, a.dtype.type(0))


def reverse_padded(xp: Any, y: Any, lengths: np.ndarray | None) -> Any:
    """Reverse each sequence of ``y`` (B, T, ...) within its own length; zeros after it.

    Its own inverse on the valid part, so it also maps gradients back.
    """
    if lengths is None:
        return xp.ascontiguousarray(y[:, ::-1])
    batch, time = y.shape[0], y.shape[1]
    idx = lengths[:, None] - 1 - np.arange(time)[None, :]
    valid = idx >= 0
    rows = np.arange(batch)[:, None]
    if xp is not np:
        rows, idx_x = xp.asarray(rows), xp.asarray(np.where(valid, idx, 0))
    else:
        idx_x = np.where(valid, idx, 0)
    shape = (batch, time) + (1,) * (y.ndim - 2)
    return xp.where(xp.asarray(valid.reshape(shape)), y[rows, idx_x], y.dtype.type(0))


__all__ = ["reverse_padded", "step_mask", "valid_steps", "zero_padding"]
