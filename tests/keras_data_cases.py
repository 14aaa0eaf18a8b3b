"""The data that tests/make_keras_golden_data.py feeds Keras 3's ``fit``/``evaluate``/``predict``
and tests/training/test_adapters.py feeds cgru's: numbered batches, as generators and as a
PyDataset whose hooks log their calls. Imports neither library: :class:`NumberedBatches` goes in
front of either library's ``PyDataset``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: The samples in a batch.
BATCH = 4


def numbered(i: int) -> tuple:
    """Batch ``i``: zeros in, ``i`` as every target (float32); a model that outputs 0 has the
    loss ``i**2`` on it."""
    return np.zeros((BATCH, 1), "float32"), np.full((BATCH, 1), float(i), "float32")


def generator(count: int, start: int = 0) -> Iterator[tuple]:
    for i in range(start, start + count):
        yield numbered(i)


def endless() -> Iterator[tuple]:
    i = 0
    while True:
        yield numbered(i)
        i += 1


class NumberedBatches:
    """``count`` numbered batches from ``start``; the epoch hooks write into ``log``. Put it
    before a ``PyDataset`` class (``class Numbered(NumberedBatches, PyDataset)``), whose
    arguments (``workers``...) it passes on."""

    def __init__(self, count: int, log: list, start: int = 0, name: str = "data", **kwargs) -> None:
        super().__init__(**kwargs)
        self.count, self.log, self.start, self.name = count, log, start, name

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return numbered(self.start + index)

    def on_epoch_begin(self):
        self.log.append(f"{self.name}.on_epoch_begin")

    def on_epoch_end(self):
        self.log.append(f"{self.name}.on_epoch_end")
