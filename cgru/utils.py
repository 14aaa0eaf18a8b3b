"""Helpers for users' data: :class:`PyDataset`, Keras 3's protocol for a data set of batches.

``fit``, ``evaluate`` and ``predict`` draw the batches of a :class:`PyDataset` by index, as
Keras 3 does: ``len(dataset)`` batches per pass, ``dataset[i]`` for each, and the
``on_epoch_begin``/``on_epoch_end`` hooks around every pass (see :mod:`cgru.training.epochs`
for the exact order of the calls). ``workers``, ``use_multiprocessing`` and ``max_queue_size``
let ``fit`` prepare the next batches in a thread or process pool while the model trains.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .validation import check_int


class PyDataset:
    """Base class of a data set that gives whole batches by index (``keras.utils.PyDataset``).

    A subclass implements ``__len__`` (the number of batches; or the ``num_batches`` property,
    None for an endless data set) and ``__getitem__(index)``, which returns one batch: ``x``,
    ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, arrays with the batch axis first (``x``
    may be ``{"x": x, "lengths": lengths}`` for right-padded sequences). ``on_epoch_begin`` and
    ``on_epoch_end`` may change the data between passes (reshuffle, augment...).

    Args:
        workers: how many batches are prepared at once while the model computes (1: each batch
            is made when it is needed, in the calling thread).
        use_multiprocessing: prepare them in worker processes instead of threads (for Python
            code that holds the GIL); the data set must then be picklable.
        max_queue_size: at most this many batches are prepared ahead.
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10) -> None:
        self._workers = check_int(workers, "workers", 0)
        if not isinstance(use_multiprocessing, bool):
            raise TypeError(f"use_multiprocessing must be True or False, got {use_multiprocessing!r}")
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = check_int(max_queue_size, "max_queue_size", 1)

    # A subclass that forgets super().__init__() still works, with the defaults (as in Keras).
    @property
    def workers(self) -> int:
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = check_int(value, "workers", 0)

    @property
    def use_multiprocessing(self) -> bool:
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        self._use_multiprocessing = bool(value)

    @property
    def max_queue_size(self) -> int:
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = check_int(value, "max_queue_size", 1)

    def __getitem__(self, index: int) -> Any:
        """The batch at position ``index``."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    @property
    def num_batches(self) -> int | None:
        """Batches per pass: ``len(self)``, or None for an endless data set."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ or the num_batches property")

    def __iter__(self) -> Iterator[Any]:
        """The batches in order (no prefetching: that is what ``fit`` adds)."""
        count = self.num_batches
        index = 0
        while count is None or index < count:
            yield self[index]
            index += 1

    def on_epoch_begin(self) -> None:
        """Called before each pass."""

    def on_epoch_end(self) -> None:
        """Called after each pass (and once before ``fit`` and ``evaluate`` start, as Keras does)."""


#: Keras's older name for the same protocol.
Sequence = PyDataset

__all__ = ["PyDataset", "Sequence"]
