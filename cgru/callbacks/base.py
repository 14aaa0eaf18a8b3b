"""The callback protocol: :class:`Callback` (every hook, doing nothing), :class:`CallbackList`
(what ``fit`` and ``evaluate`` call), :class:`History` (recorded by every ``fit``) and
:class:`LambdaCallback` (a callback made of functions)."""

from __future__ import annotations

from typing import Any


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


__all__ = ["Callback", "CallbackList", "History", "LambdaCallback", "check_callbacks"]
