"""Many arrays in one flat buffer, so that one collective call moves them all.

A :class:`FusedLayout` says where each array (by shape) and a run of scalars lie in one 1-D
buffer of one dtype. It is written against ``xp`` (NumPy, or CuPy for a buffer on the GPU) and
knows nothing of training: :mod:`cgru.distributed.combine` decides what goes in.

:func:`pack_bytes`/:func:`unpack_bytes` do the same for arrays of any dtypes, as raw bytes, for
collectives that only copy (a broadcast).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..validation import to_host, xp_of


class FusedLayout:
    """``shapes`` (one per array) followed by ``scalars`` values, in one buffer of ``dtype``.

    ``offsets[i]``: where array ``i`` starts; ``array_size``: the elements of all arrays (the
    scalars start there); ``size``: the buffer's length.
    """

    def __init__(self, shapes: list[tuple], scalars: int, dtype: Any) -> None:
        self.shapes = [tuple(int(d) for d in s) for s in shapes]
        self.dtype = np.dtype(dtype)
        self.offsets = []
        end = 0
        for shape in self.shapes:
            self.offsets.append(end)
            end += math.prod(shape)
        self.array_size = end
        self.scalars = int(scalars)
        self.size = end + self.scalars

    def new_buffer(self, xp: Any) -> Any:
        return xp.empty(self.size, dtype=self.dtype)

    def pack(self, buffer: Any, arrays: list, scale: float = 1.0, scalars: Any = ()) -> Any:
        """Write ``arrays`` (None: zeros), each times ``scale``, and ``scalars`` into ``buffer``."""
        if len(arrays) != len(self.shapes):
            raise ValueError(f"expected {len(self.shapes)} arrays, got {len(arrays)}")
        for array, shape, start in zip(arrays, self.shapes, self.offsets):
            part = buffer[start:start + math.prod(shape)]
            if array is None:
                part[...] = 0
                continue
            if tuple(array.shape) != shape:
                raise ValueError(f"array of shape {tuple(array.shape)} packed where {shape} belongs")
            if scale == 1.0:
                part[...] = array.reshape(-1)
            else:
                # the product rounds once, in the buffer's dtype
                part[...] = array.reshape(-1)
                part *= part.dtype.type(scale)
        if self.scalars:
            values = np.asarray(scalars, dtype=self.dtype)
            if values.shape != (self.scalars,):
                raise ValueError(f"expected {self.scalars} scalars, got {values.shape}")
            tail = buffer[self.array_size:]
            tail[...] = xp_of(buffer).asarray(values)
        return buffer

    def views(self, buffer: Any) -> list:
        """The arrays' parts of ``buffer``, reshaped (views: valid until it is written again)."""
        return [
            buffer[start:start + math.prod(shape)].reshape(shape)
            for shape, start in zip(self.shapes, self.offsets)
        ]

    def scalar_values(self, buffer: Any) -> np.ndarray:
        """The scalars, as a float64 NumPy array (copied from the device)."""
        return np.asarray(to_host(buffer[self.array_size:]), dtype=np.float64)


def pack_bytes(arrays: list, xp: Any = np) -> Any:
    """The bytes of ``arrays`` (C order, one after another) as one uint8 array of ``xp``."""
    parts = [xp.ascontiguousarray(a).reshape(-1).view(xp.uint8) for a in arrays]
    if not parts:
        return xp.empty(0, dtype=xp.uint8)
    return xp.concatenate(parts)


def unpack_bytes(buffer: Any, specs: list[tuple[tuple, Any]]) -> list:
    """Copies of the arrays that :func:`pack_bytes` packed, given their ``(shape, dtype)``."""
    out, start = [], 0
    for shape, dtype in specs:
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        out.append(buffer[start:start + nbytes].view(dtype).reshape(shape).copy())
        start += nbytes
    if start != buffer.size:
        raise ValueError(f"{buffer.size} bytes hold arrays of {start} bytes")
    return out


def packed_size(specs: list[tuple[tuple, Any]]) -> int:
    """The bytes :func:`pack_bytes` makes of arrays of these ``(shape, dtype)``."""
    return sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in specs)


__all__ = ["FusedLayout", "pack_bytes", "packed_size", "unpack_bytes"]
