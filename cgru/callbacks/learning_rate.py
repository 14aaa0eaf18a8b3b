"""Callbacks that set the learning rate: :class:`ReduceLROnPlateau` and
:class:`LearningRateScheduler`. Both log it at each epoch's end as ``"learning_rate"``."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .. import config as _config
from ..validation import accepts_positional, as_float
from .base import Callback
from .monitoring import MonitorCallback, check_count


def _optimizer_of(model: Any, who: str) -> Any:
    """The compiled optimizer of ``model``; ValueError when there is none."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(f"{who} needs a model compiled with an optimizer (call compile() first)")
    return optimizer


def _log_learning_rate(model: Any, logs: dict, who: str) -> None:
    """Put the optimizer's learning rate of the next step into ``logs`` as Keras 3 does."""
    logs["learning_rate"] = float(_optimizer_of(model, who).learning_rate)


def _set_learning_rate(optimizer: Any, learning_rate: float, who: str) -> None:
    try:
        optimizer.learning_rate = learning_rate
    except TypeError as exc:
        raise TypeError(f"{who} cannot set the learning rate: {exc}") from None


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for
    ``patience`` epochs: Keras 3's ReduceLROnPlateau.

    An epoch improves when its value beats the best so far by more than ``min_delta`` (see
    :class:`MonitorCallback`: "auto" ``mode`` minimises losses and errors, maximises
    accuracies). After a reduction, ``cooldown`` epochs pass before epochs without improvement
    count again; the learning rate never goes below ``min_lr`` (no reduction once it is there).
    At each epoch's end the learning rate the epoch ended with is logged as ``"learning_rate"``
    (before any reduction). ``verbose`` 1 prints each reduction. ``factor`` must be in
    ``[0, 1)``. An optimizer whose learning rate is a schedule cannot be reduced: the first
    reduction raises TypeError (as in Keras 3).

    State: ``best``, ``wait`` (epochs without improvement), ``cooldown_counter``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        factor = as_float(factor, "factor")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        if not factor >= 0.0:
            raise ValueError(f"ReduceLROnPlateau needs a factor in [0, 1), got factor={factor}")
        min_lr = as_float(min_lr, "min_lr")
        if math.isnan(min_lr):
            raise ValueError("min_lr must be a number, got nan")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = check_count(patience, "patience")
        self.verbose = verbose
        self.cooldown = check_count(cooldown, "cooldown")
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self) -> None:
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        self._reset()
        if self.model is not None:
            self._set_direction()  # a monitor whose direction is unknown fails before training

    def on_epoch_end(self, epoch, logs=None):
        if self.direction is None:
            self._set_direction()
        if logs is None:
            logs = {}
        _log_learning_rate(self.model, logs, "ReduceLROnPlateau")
        missing = f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not available"
        current = self._monitored(logs, missing, stacklevel=2, end=".")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def _reduce(self, epoch: int) -> bool:
        optimizer = _optimizer_of(self.model, "ReduceLROnPlateau")
        old_lr = float(optimizer.learning_rate)
        # compared at the learning rate's precision (Keras: its float32 variable's)
        if old_lr <= np.dtype(_config.floatx()).type(self.min_lr):
            return False
        new_lr = max(old_lr * self.factor, self.min_lr)
        _set_learning_rate(optimizer, new_lr, "ReduceLROnPlateau")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
        return True


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch: Keras 3's LearningRateScheduler.

    ``schedule(epoch, lr)`` (epoch from 0, ``lr`` the current learning rate as a float) or
    ``schedule(epoch)`` returns the epoch's learning rate, a number (ValueError otherwise, as
    Keras). At each epoch's end the learning rate is logged as ``"learning_rate"``. ``verbose``
    1 prints each change. An optimizer whose learning rate is a schedule cannot be set: TypeError.
    """

    def __init__(self, schedule: Any, verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be a function of (epoch, lr) or (epoch), got {schedule!r}")
        self._takes_lr = accepts_positional(schedule, 2)
        if not (self._takes_lr or accepts_positional(schedule, 1)):
            raise TypeError(f"schedule must take (epoch, lr) or (epoch), got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = _optimizer_of(self.model, "LearningRateScheduler")
        if self._takes_lr:
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        else:
            learning_rate = self.schedule(epoch)
        if isinstance(learning_rate, (bool, np.bool_)) or not isinstance(learning_rate, numbers.Real):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        _set_learning_rate(optimizer, learning_rate, "LearningRateScheduler")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        _log_learning_rate(self.model, logs if logs is not None else {}, "LearningRateScheduler")


__all__ = ["LearningRateScheduler", "ReduceLROnPlateau"]
