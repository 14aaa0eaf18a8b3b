""":class:`ModelCheckpoint`: save the model, or its weights, during training."""

from __future__ import annotations

import os
import re
import string
from typing import Any

from .monitoring import MonitorCallback

#: the suffix a ModelCheckpoint filepath must have: both save formats are .npz archives
CHECKPOINT_SUFFIX = ".npz"


class _ProbeFields(dict):
    """Sample values for checking a filepath template: ints for epoch/batch, floats for logs."""

    def __missing__(self, key: str) -> float:
        return 0.5


def _check_checkpoint_path(filepath: str, batch_allowed: bool) -> None:
    """ValueError when ``filepath`` cannot name checkpoint files (see ModelCheckpoint)."""
    if not filepath.endswith(CHECKPOINT_SUFFIX):
        raise ValueError(
            f"ModelCheckpoint filepath must end in {CHECKPOINT_SUFFIX!r} (model.save and "
            f"save_weights both write .npz archives), got {filepath!r}"
        )
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(filepath) if name is not None]
    except ValueError as exc:
        raise ValueError(
            f"ModelCheckpoint filepath {filepath!r} is not a valid format string: {exc}"
        ) from None
    for name in fields:
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        if not root or root.isdigit():
            raise ValueError(
                f"ModelCheckpoint filepath {filepath!r} has a positional field {{{name}}}: fields "
                "must be named, {epoch} or a log key such as {val_loss}"
            )
        if root == "batch" and not batch_allowed:
            raise ValueError(
                f"ModelCheckpoint filepath {filepath!r} uses {{batch}}, which exists only when "
                "save_freq is a number of batches"
            )
    try:
        filepath.format_map(_ProbeFields(epoch=1, batch=1))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(
            f"ModelCheckpoint filepath {filepath!r} cannot be formatted ({type(exc).__name__}: {exc}); "
            "{epoch} is an int, log values are floats"
        ) from None


def _check_checkpoint_directory(filepath: str) -> None:
    """ValueError when the (format-free) directory of ``filepath`` cannot hold files."""
    directory = os.path.dirname(filepath)
    if "{" in directory:
        return  # filled in per epoch; created when saving
    if os.path.isdir(filepath):
        raise ValueError(f"ModelCheckpoint filepath {filepath!r} is an existing directory, not a file name")
    existing = os.path.abspath(directory or ".")
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(
            f"ModelCheckpoint cannot create the directory {directory!r} for {filepath!r}: "
            f"{existing!r} is not a directory"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"ModelCheckpoint cannot write under {existing!r} (for {filepath!r}): permission denied"
        )


class ModelCheckpoint(MonitorCallback):
    """Save the model after every epoch (or every ``save_freq`` batches when it is an int):
    Keras 3's ModelCheckpoint, writing cgru's ``.npz`` files.

    ``filepath`` must end in ``".npz"`` (the analogue of Keras's ``.keras``/``.weights.h5`` rule:
    ``model.save`` and ``model.save_weights`` both write NumPy ``.npz`` archives) and may contain
    named fields: ``{epoch}`` (1-based), ``{batch}`` (1-based, only with an int ``save_freq``)
    and keys of the logs, e.g. ``"ckpt/model-{epoch:02d}-{val_loss:.4f}.npz"``. Positional
    fields (``{}``, ``{0}``), malformed braces and format specs that do not fit an int epoch or
    float log values raise ValueError here, when the callback is made; a directory that cannot
    be created (a path component is a file, or no write permission) raises ValueError when
    training begins. A missing directory is created when saving, as Keras does.

    ``save_best_only``: save only when ``monitor`` improves (comparison and ``mode`` as in
    :class:`MonitorCallback`: a NaN value is never saved as the best, so a NaN first epoch does
    not block later saves); ``initial_value_threshold``: the value to beat first. As in Keras the
    best value is kept across ``fit`` calls. ``save_weights_only``: write only the weights
    (``model.load_weights`` reads them); otherwise the whole model (``cgru.load_model``).
    """

    def __init__(
        self,
        filepath: Any,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: Any = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, baseline=initial_value_threshold)
        self.filepath = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else None
        if not isinstance(self.filepath, str):
            raise TypeError(f"ModelCheckpoint filepath must be a str or os.PathLike, got {filepath!r}")
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        if save_freq != "epoch" and (
            isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1
        ):
            raise ValueError(f"save_freq must be 'epoch' or a positive int, got {save_freq!r}")
        self.save_freq = save_freq
        _check_checkpoint_path(self.filepath, batch_allowed=save_freq != "epoch")
        self.initial_value_threshold = self.best
        self._batches = 0
        self._epoch = 0

    def on_train_begin(self, logs=None):
        _check_checkpoint_directory(self.filepath)
        self._batches = 0
        if self.save_best_only and self.model is not None:
            self._set_direction()  # a monitor whose direction is unknown fails before training

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _path(self, epoch: int, batch: int | None, logs: dict) -> str:
        fields = {"epoch": epoch + 1, **({} if batch is None else {"batch": batch + 1}), **logs}
        try:
            return self.filepath.format(**fields)
        except KeyError as exc:
            raise ValueError(
                f"ModelCheckpoint filepath {self.filepath!r} uses {exc}, which is not in the "
                f"logs (available: {', '.join(sorted(fields))})"
            ) from None

    def _should_save(self, epoch: int, logs: dict, path: str) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: saving model to {path}")
            return True
        missing = f"ModelCheckpoint can save the best model only with `{self.monitor}` available, skipping"
        current = self._monitored(logs, missing, stacklevel=3)
        if current is None:
            return False
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(
                    f"Epoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                    f"saving model to {path}"
                )
            self.best = current
            return True
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save(self, epoch: int, batch: int | None, logs: dict) -> None:
        path = self._path(epoch, batch, logs)
        if not self._should_save(epoch, logs, path):
            return
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: finished saving model to {path}")

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch":
            self._batches += 1
            if self._batches % self.save_freq == 0:
                logs = {k: v for k, v in (logs or {}).items() if k != "batch_loss"}
                self._save(self._epoch, batch, logs)


__all__ = ["CHECKPOINT_SUFFIX", "ModelCheckpoint"]
