"""Recycling the big arrays a training step saves for its backward pass.

A training forward saves every step's state and gates, tens of MB at batch-large. A fresh array
of that size comes straight from the operating system, which faults in and zeroes every page on
first touch: about a tenth of a batch-large training step (see bench/NOTES.md). The arrays of a
step whose cache has been released are kept here instead and handed to the next step that
needs the same shape.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import OrderedDict, deque

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
        # The arrays of released owners wait here, each list with its control array last: the
        # finalizer runs while the owner's attributes still hold them (and may run inside any
        # allocation, even one of this pool's under the lock), so it only appends (atomic,
        # lock-free) and the next take() checks and files them.
        self._returned: deque[list[np.ndarray]] = deque()

    def take(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised C-contiguous array: a returned one of this shape and dtype, or new."""
        key = (tuple(shape), np.dtype(dtype))
        with self._lock:
            self._file_returned()
            free = self._free.get(key)
            if free:
                return free.pop()
        return np.empty(key[0], key[1])

    def give_back(self, arrays) -> None:
        """Keep ``arrays`` for later ``take`` calls; nothing may use them afterwards."""
        with self._lock:
            for array in arrays:
                self._file(array)

    def recycle_with(self, owner, arrays) -> None:
        """Give ``arrays`` back once ``owner``, meant to be their only holder, is garbage; an
        array something else still refers to then (a copy of the owner, a view) is left alone."""
        held = [*arrays, np.empty(0)]  # the last is a control: referred to only from here
        weakref.finalize(owner, self._returned.append, held).atexit = False

    def clear(self) -> None:
        with self._lock:
            self._returned.clear()
            self._free.clear()

    def _file_returned(self) -> None:  # under the lock
        while True:
            try:
                held = self._returned.popleft()
            except IndexError:
                return
            *arrays, control = held
            for array in arrays:
                # array: held, arrays, this loop; control: held, its name. Any more is a user.
                if sys.getrefcount(array) <= sys.getrefcount(control) + 1:
                    self._file(array)

    def _file(self, array: np.ndarray) -> None:  # under the lock
        key = (array.shape, array.dtype)
        free = self._free.setdefault(key, [])
        self._free.move_to_end(key)
        if len(free) < self.per_shape:
            free.append(array)
        while len(self._free) > self.shapes:
            self._free.popitem(last=False)
