""":class:`CSVLogger`: each epoch's logs as a row of a CSV file."""

from __future__ import annotations

import collections
import csv
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from .base import Callback


class CSVLogger(Callback):
    """Write each epoch's logs as one row of a CSV file: Keras 3's CSVLogger, byte for byte.

    The header is ``epoch`` (0-based) and the log keys of the first epoch, sorted; when none
    of them starts with ``val_``, a ``val_`` column for each is added too (filled with ``NA``
    when absent, as are keys missing from a later epoch). Rows end in ``\\r\\n`` (Excel's CSV
    dialect) and numbers are written as Python writes them (``repr``). ``separator``: one
    character. ``append``: add to an existing file (the header only when it is empty) instead
    of replacing it. The file is opened when training begins and closed when it ends.
    """

    def __init__(self, filename: Any, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"CSVLogger filename must be a str or os.PathLike, got {filename!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger separator must be one character, got {separator!r}")
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = bool(append)
        self.writer: Any = None
        self.keys: list | None = None
        self.append_header = True
        self.csv_file: Any = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, encoding="utf-8", newline="") as f:
                    self.append_header = not f.readline()
            mode = "a"
        else:
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, encoding="utf-8", newline="")  # noqa: SIM115
        self.writer = None
        self.keys = None

    @staticmethod
    def _cell(value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
            return f'"[{", ".join(map(str, value))}]"'
        return value

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend([f"val_{key}" for key in self.keys])
        if self.writer is None:
            dialect = type("CSVLoggerDialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch", *self.keys], dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = collections.OrderedDict({"epoch": epoch})
        row.update((key, self._cell(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


__all__ = ["CSVLogger"]
