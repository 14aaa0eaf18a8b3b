"""Recycling the big arrays a training step saves for its backward pass.

A training forward saves every step's state and gates, tens of MB at batch-large. A fresh array
of that size comes straight from the operating system, which faults in and zeroes every page on
first touch: about a tenth of a batch-large training step (see bench/NOTES.md). The arrays of a
step whose cache has been released are kept here instead and handed to the next step that
needs the same shape.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np


class ArrayPool:
    """Arrays to reuse, by (shape, dtype): at most ``per_shape`` of each, for the ``shapes``
    most recently returned shapes (older shapes are dropped, so varying shapes cannot pile up).
    Thread-safe."""

    def __init__(self, per_shape: int = 4, shapes: int = 8) -> None:
        self.per_shape = per_shape
        self.shapes = shapes
        self._free: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised C-contiguous array: a returned one of this shape and dtype, or new."""
        key = (tuple(shape), np.dtype(dtype))
        with self._lock:
            free = self._free.get(key)
            if free:
                return free.pop()
        return np.empty(key[0], key[1])

    def give_back(self, arrays) -> None:
        """Keep ``arrays`` for later ``take`` calls; nothing may use them afterwards."""
        with self._lock:
            for array in arrays:
                key = (array.shape, array.dtype)
                free = self._free.setdefault(key, [])
                self._free.move_to_end(key)
                if len(free) < self.per_shape:
                    free.append(array)
            while len(self._free) > self.shapes:
                self._free.popitem(last=False)

    def recycle_with(self, owner, arrays) -> None:
        """Give ``arrays`` back once ``owner`` (the only holder of them) is garbage."""
        weakref.finalize(owner, self.give_back, list(arrays)).atexit = False

    def clear(self) -> None:
        with self._lock:
            self._free.clear()
