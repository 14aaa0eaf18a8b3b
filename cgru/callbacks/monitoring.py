"""Callbacks that watch training: :class:`MonitorCallback` (what "improves" means for a logged
value, the base of every callback that monitors one), :class:`EarlyStopping` and
:class:`TerminateOnNaN`."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .. import config as _config
from .. import metrics as _metrics
from ..validation import as_float
from .base import Callback


class MonitorCallback(Callback):
    """Base of the callbacks that watch one logged value: Keras 3's ``MonitorCallback`` rules.

    ``mode``: "min", "max" or "auto". With "auto" the direction is found when training begins
    (or at the first epoch end when the callback is driven by hand): ``"loss"``/``"val_loss"``
    are minimised, a compiled metric (``"val_"`` prefix removed) follows its
    :attr:`~cgru.metrics.Metric.direction` (accuracies up, errors down), and anything else
    raises ValueError asking for an explicit mode.

    ``current`` improves on ``reference`` when ``current + min_delta < reference`` ("min") or
    ``current - min_delta > reference`` ("max"), compared at :func:`cgru.config.floatx`
    precision as Keras compares its (float) logs; anything improves on no reference (None).
    One deliberate difference from Keras: a NaN value is never an improvement, so it never
    becomes the best (Keras takes a NaN first value as the best, and then nothing ever beats it).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        baseline: float | None = None,
        min_delta: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be the name of a logged value, got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.mode = mode
        self.best = check_optional_float(baseline, "baseline")
        min_delta = check_optional_float(min_delta, "min_delta")
        if min_delta is None or math.isnan(min_delta):
            raise ValueError(f"min_delta must be a number, got {min_delta!r}")
        self.min_delta = abs(min_delta)
        #: "min" or "max" once resolved (see the class documentation)
        self.direction: str | None = None

    def _resolve_direction(self) -> str:
        if self.mode != "auto":
            return self.mode
        name = self.monitor.removeprefix("val_")
        direction = "min" if name == "loss" else None
        plain = getattr(self.model, "_metrics", None) or []
        weighted = getattr(self.model, "_weighted_metrics", None) or []
        keys = _metrics.log_names(plain, weighted)
        for key, identifier in zip(keys, [*plain, *weighted]):
            if key == name:
                found = _metrics.direction_of(identifier)
                if found is not None:
                    direction = "max" if found == "up" else "min"
        if direction is None:
            raise ValueError(
                f"{type(self).__name__} received monitor={self.monitor!r}, but cannot tell whether "
                "it should be maximized or minimized (it is neither the loss nor a compiled metric "
                f"with a known direction; compiled metrics: {keys}). "
                "Pass mode='max' to monitor the highest value, or mode='min' for the lowest."
            )
        return direction

    def _set_direction(self) -> None:
        self.direction = self._resolve_direction()

    def _monitored(self, logs: dict | None, missing: str, stacklevel: int, end: str = "") -> Any:
        """``logs[monitor]``; None, after a warning that says ``missing`` and the names ``logs``
        has (then ``end``), when it is absent (``stacklevel`` counts from the caller)."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"{missing}. Available metrics are: {','.join(logs)}{end}", stacklevel=stacklevel + 1
            )
        return value

    def _is_improvement(self, current: Any, reference: Any) -> bool:
        if self.direction is None:
            self._set_direction()
        current = float(current)
        if math.isnan(current):
            return False
        if reference is None:
            return True
        as_floatx = np.dtype(_config.floatx()).type
        with np.errstate(over="ignore"):
            if self.direction == "min":
                return bool(as_floatx(current + self.min_delta) < as_floatx(reference))
            return bool(as_floatx(current - self.min_delta) > as_floatx(reference))


def check_optional_float(value: Any, name: str) -> float | None:
    return None if value is None else as_float(value, name)


def check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


class EarlyStopping(MonitorCallback):
    """Stop training when ``monitor`` has stopped improving: Keras 3's EarlyStopping.

    ``min_delta``: an epoch counts as an improvement only when it beats the best value so far by
    more than this (see :class:`MonitorCallback`; "auto" mode maximises accuracies and minimises
    losses and errors). ``patience``: how many epochs without improvement end training.
    ``baseline``: unless a value beats it too, an improvement does not reset the wait, so training
    stops after ``patience`` epochs that never beat the baseline. ``restore_best_weights``: at the
    end of training (stopped early or not) put back the weights of the best epoch (of the first
    monitored epoch when none improved). ``start_from_epoch``: ignore the epochs before it.
    ``verbose`` 1 prints "Epoch N: early stopping" and the restored epoch.

    After training: ``stopped_epoch`` (0-based, 0 when it did not stop), ``best_epoch``,
    ``best`` (the best value) and ``wait``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = check_count(patience, "patience")
        self.verbose = verbose
        self.baseline = check_optional_float(baseline, "baseline")
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = check_count(start_from_epoch, "start_from_epoch")
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0
        if self.model is not None:
            self._set_direction()  # a monitor whose direction is unknown fails before training

    def on_epoch_end(self, epoch, logs=None):
        if self.direction is None:
            self._set_direction()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0  # only when beating both the best so far and the baseline
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs: dict | None) -> Any:
        missing = f"Early stopping conditioned on metric `{self.monitor}` which is not available"
        return self._monitored(logs, missing, stacklevel=2)


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite, and restore the last
    weights that produced a finite loss (the weights from before the step that broke them).

    Weights are never written in place (each step publishes new arrays), so keeping the arrays
    of the last good step costs no copy.
    """

    def __init__(self) -> None:
        super().__init__()
        self._good: list | None = None
        self._before_batch: list | None = None
        self.terminated_batch: int | None = None

    def on_train_begin(self, logs=None):
        self._good = self._before_batch = [p.value for p in self.model.weights]
        self.terminated_batch = None

    def on_train_batch_begin(self, batch, logs=None):
        self._before_batch = [p.value for p in self.model.weights]

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("batch_loss", logs.get("loss"))
        if loss is None:
            return
        if np.isfinite(loss):
            self._good = self._before_batch
            return
        print(f"Batch {batch}: Invalid loss, terminating training")
        self.model.set_weights(list(self._good))
        self.terminated_batch = batch
        self.model.stop_training = True


__all__ = ["EarlyStopping", "MonitorCallback", "TerminateOnNaN", "check_count", "check_optional_float"]
