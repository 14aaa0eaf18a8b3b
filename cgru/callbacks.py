"""Training callbacks (Keras names and semantics).

- :class:`Callback`: the base class; override any ``on_*`` hook. ``self.model`` is the model
  being trained, ``self.params`` holds ``epochs``, ``steps`` and ``verbose``.
- :class:`History`: recorded automatically by ``fit`` and returned by it: ``history.history``
  maps ``"loss"``, each metric name, ``"val_loss"`` and ``"val_<metric>"`` to per-epoch values;
  :meth:`History.plot` draws them (needs matplotlib).
- :class:`EarlyStopping`: stop when a monitored value stops improving, optionally restoring the
  best weights.
- :class:`ModelCheckpoint`: save the model (or only the weights) after each epoch, or only
  when it improves; ``filepath`` may contain ``{epoch}`` and log keys, e.g.
  ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``.
- :class:`TerminateOnNaN`: stop at the first batch with a NaN or infinite loss and put back the
  last weights that gave a finite loss.

Batch logs hold the running means of the epoch so far (as Keras 3) plus ``"batch_loss"``,
the loss of that batch alone.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np


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


def _monitor_mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        name = monitor.lower()
        return "max" if ("acc" in name or name.startswith("fmeasure") or "auc" in name) else "min"
    return mode


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs (Keras semantics; ``mode`` "auto" maximises accuracies, minimises the
    rest). ``restore_best_weights=True`` puts back the weights of the best epoch when training
    ends. ``baseline``: stop unless the value beats it; ``start_from_epoch``: ignore earlier
    epochs."""

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
        super().__init__()
        self.monitor = monitor
        self.mode = _monitor_mode(mode, monitor)
        self.min_delta = abs(float(min_delta))
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _improved(self, value: float, reference: float | None) -> bool:
        if reference is None:
            return True
        if self.mode == "min":
            return value - self.min_delta < reference  # i.e. value < reference - min_delta
        return value + self.min_delta > reference

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(
                f"EarlyStopping is monitoring {self.monitor!r}, which is not in the logs "
                f"(available: {sorted(logs or {})})",
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._improved(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
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


class ModelCheckpoint(Callback):
    """Save the model after every epoch (or every ``save_freq`` batches when it is an int).

    ``filepath`` is formatted with ``epoch`` (1-based) and the epoch's logs, e.g.
    ``"model-{epoch:02d}-{val_loss:.4f}.npz"``. ``save_best_only``: save only when ``monitor``
    improves (``mode`` as in EarlyStopping); ``initial_value_threshold``: the value to beat
    first. ``save_weights_only``: write only the weights (``model.load_weights`` reads them);
    otherwise the whole model (``cgru.load_model`` reads it).
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
        super().__init__()
        import os

        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _monitor_mode(mode, monitor)
        if save_freq != "epoch" and (
            isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1
        ):
            raise ValueError(f"save_freq must be 'epoch' or a positive int, got {save_freq!r}")
        self.save_freq = save_freq
        self.initial_value_threshold = initial_value_threshold
        self.best = initial_value_threshold
        self._batches = 0
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.best = self.initial_value_threshold
        self._batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def _path(self, epoch: int, logs: dict) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as exc:
            raise ValueError(
                f"ModelCheckpoint filepath {self.filepath!r} uses {exc}, which is not in the "
                f"logs (available: epoch, {', '.join(sorted(logs))})"
            ) from None

    def _save(self, epoch: int, logs: dict) -> None:
        logs = logs or {}
        path = self._path(epoch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(
                    f"ModelCheckpoint can save the best model only with {self.monitor!r} "
                    f"available, skipping (available: {sorted(logs)})",
                    stacklevel=2,
                )
                return
            if not self._better(current):
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best}")
                return
            if self.verbose > 0:
                print(
                    f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to {current}, "
                    f"saving model to {path}"
                )
            self.best = current
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs or {})

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch":
            self._batches += 1
            if self._batches % self.save_freq == 0:
                self._save(self._epoch, {k: v for k, v in (logs or {}).items() if k != "batch_loss"})


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite, and restore the last
    weights that produced a finite loss (the weights from before the step that broke them).

    It keeps one copy of the weights per batch (a copy, no allocation after the first batch).
    """

    def __init__(self) -> None:
        super().__init__()
        self._good: list | None = None
        self._scratch: list | None = None
        self.terminated_batch: int | None = None

    def on_train_begin(self, logs=None):
        params = self.model.weights
        self._good = [p.value.copy() for p in params]
        self._scratch = [p.value.copy() for p in params]
        self.terminated_batch = None

    def on_train_batch_begin(self, batch, logs=None):
        for buf, p in zip(self._scratch, self.model.weights):
            buf[...] = p.value

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("batch_loss", logs.get("loss"))
        if loss is None:
            return
        if np.isfinite(loss):
            self._good, self._scratch = self._scratch, self._good
            return
        print(f"Batch {batch}: Invalid loss, terminating training")
        for buf, p in zip(self._good, self.model.weights):
            p.value[...] = buf
            p.grad = None
        self.terminated_batch = batch
        self.model.stop_training = True


__all__ = ["Callback", "CallbackList", "EarlyStopping", "History", "ModelCheckpoint", "TerminateOnNaN"]
