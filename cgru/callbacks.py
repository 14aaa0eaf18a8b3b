"""Training callbacks (Keras names and semantics).

- :class:`Callback`: the base class; override any ``on_*`` hook. ``self.model`` is the model
  being trained, ``self.params`` holds ``epochs``, ``steps`` and ``verbose``.
- :class:`History`: recorded automatically by ``fit`` and returned by it: ``history.history``
  maps ``"loss"``, each metric name, ``"val_loss"`` and ``"val_<metric>"`` to per-epoch values;
  :meth:`History.plot` draws them (needs matplotlib).
- :class:`EarlyStopping`: stop when a monitored value stops improving, optionally restoring the
  best weights (Keras 3's rules, ``min_delta`` included).
- :class:`ModelCheckpoint`: save the model (or only the weights) after each epoch, or only
  when it improves; ``filepath`` ends in ``.npz`` and may contain ``{epoch}`` and log keys,
  e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"`` (checked when the callback is made).
- :class:`MonitorCallback`: their common base (what "improves" means, ``mode="auto"``).
- :class:`TerminateOnNaN`: stop at the first batch with a NaN or infinite loss and put back the
  last weights that gave a finite loss.
- :class:`ReduceLROnPlateau`: multiply the learning rate by ``factor`` when a monitored value
  stops improving; :class:`LearningRateScheduler`: set it at each epoch's start from
  ``schedule(epoch, lr)``. Both log it at each epoch's end as ``"learning_rate"`` (so it is in
  ``History``), as Keras 3 does.
- :class:`CSVLogger`: write each epoch's logs to a CSV file, in Keras's format.
- :class:`LambdaCallback`: a callback made of functions, one per hook.

Batch logs hold the running means of the epoch so far (as Keras 3) plus ``"batch_loss"``,
the loss of that batch alone.
"""

from __future__ import annotations

import collections
import csv
import math
import numbers
import os
import re
import string
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import config as _config
from . import metrics as _metrics
from .validation import accepts_positional, as_float


class Callback:
    """Base class of callbacks; every hook does nothing by default."""

    def __init__(self) -> None:
        self.model = None
        self.params: dict = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None: ...

    def on_train_end(self, logs: dict | None = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs: dict | None = None) -> None: ...

    def on_test_end(self, logs: dict | None = None) -> None: ...

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    def on_predict_begin(self, logs: dict | None = None) -> None: ...

    def on_predict_end(self, logs: dict | None = None) -> None: ...


class CallbackList:
    """Dispatches every hook to a list of callbacks."""

    def __init__(self, callbacks: Any = None, model: Any = None, params: dict | None = None) -> None:
        self.callbacks = check_callbacks(callbacks)
        for cb in self.callbacks:
            if model is not None:
                cb.set_model(model)
            if params is not None:
                cb.set_params(params)

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def __getattr__(self, hook: str):
        if not hook.startswith("on_"):
            raise AttributeError(hook)
        return lambda *args: self._call(hook, *args)


def check_callbacks(callbacks: Any) -> list[Callback]:
    """A list of Callback objects; TypeError for anything else."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a list of cgru.callbacks.Callback, got {callbacks!r}") from None
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be cgru.callbacks.Callback instances, got {type(cb).__name__}")
    return callbacks


class History(Callback):
    """Records the epoch logs: ``history`` (dict of lists) and ``epoch`` (epoch indices)."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self

    def plot(self, keys: Any = None, ax: Any = None, path: Any = None, title: str | None = None):
        """Draw the loss curves (or ``keys``) against the epoch; needs matplotlib.

        ``ax``: a matplotlib Axes to draw on (a new figure otherwise); ``path``: also save the
        figure there (e.g. ``"loss.png"``). Returns the Axes. Raises ImportError when
        matplotlib is not installed.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError(
                "History.plot() needs matplotlib: install it with `pip install matplotlib` "
                "(or `pip install cgru[plot]`)"
            ) from exc
        if keys is None:
            keys = [k for k in ("loss", "val_loss") if k in self.history]
        elif isinstance(keys, str):
            keys = [keys]
        missing = [k for k in keys if k not in self.history]
        if missing:
            raise ValueError(f"no history for {missing}; recorded: {sorted(self.history)}")
        if not keys:
            raise ValueError("nothing to plot: the history is empty (train with fit first)")
        if ax is None:
            _, ax = plt.subplots()
        for k in keys:
            values = self.history[k]
            ax.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 30 else None, label=k)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if all("loss" in k for k in keys) else "value")
        if title:
            ax.set_title(title)
        ax.legend()
        if path is not None:
            ax.figure.savefig(path)
        return ax


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
        self.best = _check_optional_float(baseline, "baseline")
        min_delta = _check_optional_float(min_delta, "min_delta")
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


def _check_optional_float(value: Any, name: str) -> float | None:
    return None if value is None else as_float(value, name)


def _check_count(value: Any, name: str) -> int:
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
        self.patience = _check_count(patience, "patience")
        self.verbose = verbose
        self.baseline = _check_optional_float(baseline, "baseline")
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = _check_count(start_from_epoch, "start_from_epoch")
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


# --------------------------------------------------------------------- learning rate
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
        self.patience = _check_count(patience, "patience")
        self.verbose = verbose
        self.cooldown = _check_count(cooldown, "cooldown")
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


# ------------------------------------------------------------------------------- logging
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


class LambdaCallback(Callback):
    """A callback made of functions: Keras 3's LambdaCallback.

    Each argument is a hook of :class:`Callback` and the function that runs for it, with the
    hook's positional arguments: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_train_batch_begin(batch, logs)``,
    ``on_train_batch_end(batch, logs)``, and by keyword any other hook (``on_batch_begin=``,
    ``on_batch_end=``, ...). An unknown hook name raises TypeError.
    """

    def __init__(
        self,
        on_epoch_begin: Any = None,
        on_epoch_end: Any = None,
        on_train_begin: Any = None,
        on_train_end: Any = None,
        on_train_batch_begin: Any = None,
        on_train_batch_end: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        hooks = {
            "on_epoch_begin": on_epoch_begin,
            "on_epoch_end": on_epoch_end,
            "on_train_begin": on_train_begin,
            "on_train_end": on_train_end,
            "on_train_batch_begin": on_train_batch_begin,
            "on_train_batch_end": on_train_batch_end,
            **kwargs,
        }
        known = sorted(name for name in dir(Callback) if name.startswith("on_"))
        for name, fn in hooks.items():
            if name not in known:
                raise TypeError(f"LambdaCallback got an unknown hook {name!r}; the hooks are {known}")
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback {name} must be a function, got {fn!r}")
            setattr(self, name, fn)


__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "MonitorCallback",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]
