"""``fit``, ``evaluate``, ``train_on_batch`` and ``test_on_batch``: one batch loop for all.

:func:`run_epoch` is the loop: it draws one pass of batches from a source
(:mod:`cgru.training.data`), runs a step on each (:mod:`cgru.training.step`), passes each
result through the strategy (:mod:`cgru.training.strategy`) into one
:class:`~cgru.training.logs.LogsAccumulator`, and tells its :class:`LoopHooks` (callbacks,
progress bar) before and after every batch. ``fit`` runs it with :func:`train_step` once per
epoch, then evaluates the validation data with the same loop; ``evaluate`` runs it once with
:func:`evaluate_step`, every batch on one set of weights.

Everything is validated before the first update, so a call that raises leaves the weights as
they were.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import callbacks as _callbacks
from .. import config as _config
from .. import progress as _progress
from ..validation import check_int, check_rate, check_seed
from . import strategy as _strategy
from .compiled import require_compiled, resolve_metrics
from .data import ArrayBatches, Batch, check_arrays, split_validation
from .logs import BatchResult, LogsAccumulator, metric_means
from .step import evaluate_step, train_step
from .surface import Trainee

#: Samples per batch when ``batch_size`` is None (Keras's default).
DEFAULT_BATCH_SIZE = 32


class LoopHooks:
    """What happens around each batch of :func:`run_epoch` (default: nothing)."""

    def batch_begin(self, step: int) -> None: ...

    def batch_end(self, step: int, result: BatchResult, logs: LogsAccumulator) -> None: ...

    def stop(self) -> bool:
        """Whether to end the pass after this batch."""
        return False


def run_epoch(
    source: Any,
    epoch: int,
    step: Callable[[Batch], BatchResult],
    logs: LogsAccumulator,
    strategy: Any,
    hooks: LoopHooks,
) -> int:
    """Run ``step`` on each batch of ``source``'s pass ``epoch``, accumulating into ``logs``;
    returns the number of batches run."""
    done = 0
    for index, batch in enumerate(source.epoch(epoch)):
        hooks.batch_begin(index)
        result = strategy.reduce_batch(step(batch))
        logs.add(result)
        done = index + 1
        hooks.batch_end(index, result, logs)
        if hooks.stop():
            break
    return done


def _batch_size(batch_size: Any) -> int:
    return DEFAULT_BATCH_SIZE if batch_size is None else check_int(batch_size, "batch_size", 1)


def _metric_names(metrics: list) -> list[str]:
    return [m.name for m in metrics]


# ------------------------------------------------------------------------------ evaluate
class _ProgressHooks(LoopHooks):
    """An evaluation's progress bar, showing the running loss."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def batch_end(self, step: int, result: BatchResult, logs: LogsAccumulator) -> None:
        if self.bar is not None:
            self.bar.update(step + 1, {"loss": logs.mean_loss()})


def evaluate_source(model: Trainee, source: Any, metrics: list, strategy: Any, bar: Any = None) -> dict:
    """Loss and metrics over one pass of ``source``, all on one set of weights."""
    model._ensure_bound()

    def run(pinned: Any) -> dict:
        logs = LogsAccumulator(_metric_names(metrics))
        run_epoch(
            source, 0, lambda batch: evaluate_step(model, batch, metrics, pinned), logs, strategy,
            _ProgressHooks(bar),
        )
        return logs.result()

    return model._run_pinned(run)


def evaluate(
    model: Trainee,
    x: Any,
    y: Any,
    batch_size: Any,
    verbose: Any,
    lengths: Any,
    return_dict: bool,
    strategy: Any = None,
) -> Any:
    """``Sequential.evaluate`` (see there)."""
    require_compiled(model, "evaluate")
    verbose = _progress.resolve_verbose(verbose)
    batch_size = _batch_size(batch_size)
    x, y, lengths, out_shape = check_arrays(model, x, y, lengths, "evaluate")
    if x.shape[0] == 0:
        raise ValueError("evaluate() needs at least one sample")
    model._check_stateful_batches(x.shape[0], batch_size, "evaluate")
    strategy = _strategy.resolve(strategy)
    metrics = resolve_metrics(model, y.shape, out_shape)
    source = strategy.distribute(ArrayBatches(x, y, lengths, batch_size))
    if not strategy.is_chief:
        verbose = 0
    bar = _progress.Progbar(source.steps) if verbose == 1 else None
    logs = evaluate_source(model, source, metrics, strategy, bar)
    if bar is not None:
        bar.finish(logs)
    elif verbose == 2:
        _progress.write_line(_progress.format_logs(logs).lstrip(" -"))
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


# ----------------------------------------------------------------------------------- fit
class _FitHooks(LoopHooks):
    """The callbacks and the progress bar around each training batch; ``logs`` holds the
    running logs after the last batch (what ``on_train_end`` receives)."""

    def __init__(self, model: Trainee, callbacks: Any) -> None:
        self.model = model
        self.callbacks = callbacks
        self.bar: Any = None
        self.logs: dict = {}

    def batch_begin(self, step: int) -> None:
        self.callbacks.on_train_batch_begin(step, {})

    def batch_end(self, step: int, result: BatchResult, logs: LogsAccumulator) -> None:
        self.logs = logs.result()
        self.callbacks.on_train_batch_end(step, {**self.logs, "batch_loss": result.loss})
        if self.bar is not None:
            self.bar.update(step + 1, self.logs)

    def stop(self) -> bool:
        return self.model.stop_training


def _validation_arrays(model: Trainee, validation_data: Any) -> tuple:
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, lengths_val)")
    vx, vy, vl = (*validation_data, None)[:3]
    return check_arrays(model, vx, vy, vl, "fit (validation_data)")[:3]


def fit(
    model: Trainee,
    x: Any,
    y: Any,
    batch_size: Any,
    epochs: Any,
    verbose: Any,
    callbacks: Any,
    validation_split: Any,
    validation_data: Any,
    shuffle: bool,
    lengths: Any,
    initial_epoch: Any,
    seed: Any,
    strategy: Any = None,
) -> _callbacks.History:
    """``Sequential.fit`` (see there)."""
    require_compiled(model, "fit")
    verbose = _progress.resolve_verbose(verbose)
    batch_size = _batch_size(batch_size)
    epochs = check_int(epochs, "epochs", 0)
    initial_epoch = check_int(initial_epoch, "initial_epoch", 0)
    validation_split = check_rate(validation_split, "validation_split")
    seed = check_seed(seed)
    cb_list = _callbacks.check_callbacks(callbacks)
    x, y, lengths, out_shape = check_arrays(model, x, y, lengths, "fit")
    val = None
    if validation_data is not None:
        val = _validation_arrays(model, validation_data)
    elif validation_split > 0:
        (x, y, lengths), val = split_validation(x, y, lengths, validation_split)
    if x.shape[0] == 0:
        raise ValueError("fit() needs at least one training sample")
    model._check_stateful_batches(x.shape[0], batch_size, "fit")
    if val is not None:
        model._check_stateful_batches(val[0].shape[0], batch_size, "fit (validation)")
    strategy = _strategy.resolve(strategy)
    metrics = resolve_metrics(model, y.shape, out_shape)
    rng = np.random.default_rng(seed if seed is not None else _config.next_seed())
    train = strategy.distribute(ArrayBatches(x, y, lengths, batch_size, rng if shuffle else None))
    held_out = None if val is None else strategy.distribute(ArrayBatches(*val, batch_size))
    if not strategy.is_chief:
        verbose = 0
    strategy.prepare(model)
    history = _callbacks.History()
    cbs = _callbacks.CallbackList(
        [*strategy.callbacks(cb_list), history],
        model=model,
        params={"epochs": epochs, "steps": train.steps, "verbose": verbose},
    )
    hooks = _FitHooks(model, cbs)
    model.stop_training = False
    cbs.on_train_begin({})
    try:
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch, {})
            hooks.bar = None
            if verbose == 1:
                _progress.write_line(f"Epoch {epoch + 1}/{epochs}")
                hooks.bar = _progress.Progbar(train.steps)
            start = _progress.time.perf_counter()
            logs = LogsAccumulator(_metric_names(metrics))
            done = run_epoch(
                train, epoch, lambda batch: train_step(model, batch, metrics, strategy), logs, strategy, hooks
            )
            epoch_logs = dict(hooks.logs)
            if held_out is not None:
                val_logs = evaluate_source(model, held_out, metrics, strategy)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            elapsed = _progress.time.perf_counter() - start
            if verbose == 1:
                hooks.bar.finish(epoch_logs, steps=done)
            elif verbose == 2:
                _progress.write_line(_progress.epoch_line(epoch + 1, epochs, done, elapsed, epoch_logs))
            cbs.on_epoch_end(epoch, epoch_logs)
            if model.stop_training:
                break
    except KeyboardInterrupt:
        # the weights are at a step boundary (steps are published whole): end as usual
        cbs.on_train_end(hooks.logs)
        model.history = history
        raise
    cbs.on_train_end(hooks.logs)
    model.history = history
    return history


# ----------------------------------------------------------------------- single batches
def _batch_logs(result: BatchResult) -> Any:
    """``train_on_batch``/``test_on_batch``'s return: the loss, with metrics ``[loss, *means]``."""
    if not result.stats:
        return result.loss
    return [result.loss, *metric_means(result.stats)]


def train_on_batch(model: Trainee, x: Any, y: Any, lengths: Any, strategy: Any = None) -> Any:
    """``Sequential.train_on_batch`` (see there)."""
    require_compiled(model, "train_on_batch")
    x, y, lengths, out_shape = check_arrays(model, x, y, lengths, "train_on_batch")
    metrics = resolve_metrics(model, y.shape, out_shape)
    strategy = _strategy.resolve(strategy)
    strategy.prepare(model)
    return _batch_logs(strategy.reduce_batch(train_step(model, Batch(x, y, lengths), metrics, strategy)))


def test_on_batch(model: Trainee, x: Any, y: Any, lengths: Any, strategy: Any = None) -> Any:
    """``Sequential.test_on_batch`` (see there)."""
    require_compiled(model, "test_on_batch")
    x, y, lengths, out_shape = check_arrays(model, x, y, lengths, "test_on_batch")
    metrics = resolve_metrics(model, y.shape, out_shape)
    strategy = _strategy.resolve(strategy)
    model._ensure_bound()
    result = model._run_pinned(lambda pinned: evaluate_step(model, Batch(x, y, lengths), metrics, pinned))
    return _batch_logs(strategy.reduce_batch(result))


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "LoopHooks",
    "evaluate",
    "evaluate_source",
    "fit",
    "run_epoch",
    "test_on_batch",
    "train_on_batch",
]
