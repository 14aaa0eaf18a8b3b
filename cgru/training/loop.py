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

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import callbacks as _callbacks
from .. import config as _config
from .. import progress as _progress
from ..quantization import check_trainable
from ..validation import check_int, check_rate, check_seed
from . import adapters
from . import strategy as _strategy
from .compiled import require_compiled, resolve_metrics
from .data import Batch, check_data
from .logs import BatchResult, LogsAccumulator, metric_result
from .step import evaluate_step, train_step
from .surface import Trainee
from .weights import check_class_weight


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
    with contextlib.closing(source.epoch(epoch)) as batches:
        for index, batch in enumerate(batches):
            hooks.batch_begin(index)
            result = strategy.reduce_batch(step(batch))
            logs.add(result)
            done = index + 1
            hooks.batch_end(index, result, logs)
            if hooks.stop():
                break
    return done


def _count(value: Any, name: str) -> int | None:
    """A checked positive count (a batch size, a number of steps), or None (the data's default:
    batches of 32 for arrays, every batch of a source)."""
    return None if value is None else check_int(value, name, 1)


def _validation_freq(freq: Any) -> Callable[[int], bool]:
    """Whether to validate after epoch ``i`` (from 0): every ``freq``-th epoch, or the epochs
    (from 1) listed, as Keras's ``validation_freq``."""
    if isinstance(freq, (list, tuple, set)):
        listed = {check_int(f, "validation_freq", 1) for f in freq}
        return lambda epoch: epoch + 1 in listed
    every = check_int(freq, "validation_freq", 1)
    return lambda epoch: (epoch + 1) % every == 0


# ------------------------------------------------------------------------------ evaluate
class _EvaluateHooks(LoopHooks):
    """An evaluation's callbacks (``on_test_batch_*``, when there are any) and progress bar
    (the running loss)."""

    def __init__(self, callbacks: Any = None, bar: Any = None) -> None:
        self.callbacks = callbacks
        self.bar = bar

    def batch_begin(self, step: int) -> None:
        if self.callbacks is not None:
            self.callbacks.on_test_batch_begin(step, {})

    def batch_end(self, step: int, result: BatchResult, logs: LogsAccumulator) -> None:
        if self.callbacks is not None:
            self.callbacks.on_test_batch_end(step, logs.result())
        if self.bar is not None:
            self.bar.update(step + 1, {"loss": logs.mean_loss()})


def evaluate_source(
    model: Trainee, source: Any, metrics: list, strategy: Any, bar: Any = None, callbacks: Any = None
) -> dict:
    """Loss and metrics over one pass of ``source``, all on one set of weights; ``callbacks``
    (a CallbackList, or None) hear ``on_test_begin``, each batch and ``on_test_end``, as in
    Keras (also for ``fit``'s validation passes)."""
    model._ensure_bound()
    if callbacks is not None and not callbacks.callbacks:
        callbacks = None
    if callbacks is not None:
        callbacks.on_test_begin({})

    def run(pinned: Any) -> dict:
        logs = LogsAccumulator(metrics)
        run_epoch(
            source, 0, lambda batch: evaluate_step(model, batch, metrics, pinned), logs, strategy,
            _EvaluateHooks(callbacks, bar),
        )
        return logs.result()

    logs = model._run_pinned(run)
    if callbacks is not None:
        callbacks.on_test_end(logs)
    return logs


def evaluate(
    model: Trainee,
    x: Any,
    y: Any,
    batch_size: Any,
    verbose: Any,
    lengths: Any,
    return_dict: bool,
    strategy: Any = None,
    *,
    sample_weight: Any = None,
    steps: Any = None,
    callbacks: Any = None,
) -> Any:
    """``Sequential.evaluate`` (see there)."""
    require_compiled(model, "evaluate")
    verbose = _progress.resolve_verbose(verbose)
    data = adapters.evaluate_data(
        model, x, y, lengths, sample_weight, _count(batch_size, "batch_size"), _count(steps, "steps")
    )
    strategy = _strategy.resolve(strategy)
    cb_list = _callbacks.check_callbacks(callbacks)
    metrics = resolve_metrics(model, data.y_shape, data.out_shape)
    if not strategy.is_chief:
        verbose = 0
    try:
        source = strategy.distribute(data.source)
        bar = _progress.Progbar(source.steps) if verbose == 1 else None
        cbs = _callbacks.CallbackList(
            strategy.callbacks(cb_list), model=model, params={"steps": source.steps, "verbose": verbose}
        )
        logs = evaluate_source(model, source, metrics, strategy, bar, cbs)
    finally:
        data.source.close()
    if bar is not None:
        bar.finish(logs, steps=source.steps)
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
    *,
    sample_weight: Any = None,
    class_weight: Any = None,
    steps_per_epoch: Any = None,
    validation_steps: Any = None,
    validation_batch_size: Any = None,
    validation_freq: Any = 1,
) -> _callbacks.History:
    """``Sequential.fit`` (see there)."""
    require_compiled(model, "fit")
    check_trainable(model, "fit")
    verbose = _progress.resolve_verbose(verbose)
    batch_size = _count(batch_size, "batch_size")
    epochs = check_int(epochs, "epochs", 0)
    initial_epoch = check_int(initial_epoch, "initial_epoch", 0)
    validation_split = check_rate(validation_split, "validation_split")
    validate_after = _validation_freq(validation_freq)
    seed = check_seed(seed)
    cb_list = _callbacks.check_callbacks(callbacks)
    strategy = _strategy.resolve(strategy)
    rng = np.random.default_rng(seed if seed is not None else _config.next_seed())
    data = adapters.fit_data(
        model, x, y, lengths, sample_weight, check_class_weight(class_weight), batch_size,
        _count(steps_per_epoch, "steps_per_epoch"), rng if shuffle else None, validation_split,
        validation_data, _count(validation_steps, "validation_steps"),
        _count(validation_batch_size, "validation_batch_size"),
    )
    try:
        # every process runs the same number of steps per pass (a strategy that spans processes)
        train = strategy.distribute(data.train)
        held_out = None if data.held_out is None else strategy.distribute(data.held_out)
        return _fit_epochs(
            model, train, held_out, data, epochs, initial_epoch, verbose, cb_list, strategy, validate_after
        )
    finally:
        data.train.close()
        if data.held_out is not None:
            data.held_out.close()


def _fit_epochs(
    model: Trainee,
    train: Any,
    held_out: Any,
    data: Any,
    epochs: int,
    initial_epoch: int,
    verbose: int,
    cb_list: list,
    strategy: Any,
    validate_after: Callable[[int], bool],
) -> _callbacks.History:
    """fit's epochs over checked sources."""
    metrics = resolve_metrics(model, data.y_shape, data.out_shape)
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
            logs = LogsAccumulator(metrics)
            done = run_epoch(
                train, epoch, lambda batch: train_step(model, batch, metrics, strategy), logs, strategy, hooks
            )
            epoch_logs = dict(hooks.logs)
            if held_out is not None and validate_after(epoch):
                val_logs = evaluate_source(model, held_out, metrics, strategy, callbacks=cbs)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            elapsed = _progress.time.perf_counter() - start
            cbs.on_epoch_end(epoch, epoch_logs)
            # after the callbacks, as Keras's progress logger: what they add (learning_rate) shows
            if verbose == 1:
                hooks.bar.finish(epoch_logs, steps=done)
            elif verbose == 2:
                _progress.write_line(_progress.epoch_line(epoch + 1, epochs, done, elapsed, epoch_logs))
            if model.stop_training:
                break
            if epoch + 1 < epochs and getattr(train, "used_up", False):
                warnings.warn(train.ran_out(epoch + 1, epochs), stacklevel=3)
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
def _batch_logs(result: BatchResult, metrics: list, return_dict: bool) -> Any:
    """``train_on_batch``/``test_on_batch``'s return: the logs as a dict, or the loss alone,
    or ``[loss, *metrics]`` (as Keras)."""
    logs = {"loss": result.loss}
    logs.update((b.name, metric_result(b.metric, state)) for b, state in zip(metrics, result.stats))
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _single_batch(
    model: Trainee, x: Any, y: Any, lengths: Any, sample_weight: Any, class_weight: Any, what: str
) -> tuple:
    """The checked batch of ``train_on_batch``/``test_on_batch`` (its sample weights given, or
    made from ``class_weight``) and its metrics."""
    require_compiled(model, what)
    class_weight = check_class_weight(class_weight)
    adapters.check_form(x, what)
    x, lengths = adapters.split_inputs(x, lengths, what)
    batch, out_shape = check_data(model, x, y, lengths, sample_weight, class_weight, what)
    return batch, resolve_metrics(model, batch.y.shape, out_shape)


def train_on_batch(
    model: Trainee,
    x: Any,
    y: Any,
    lengths: Any,
    strategy: Any = None,
    *,
    sample_weight: Any = None,
    class_weight: Any = None,
    return_dict: bool = False,
) -> Any:
    """``Sequential.train_on_batch`` (see there)."""
    check_trainable(model, "train_on_batch")
    batch, metrics = _single_batch(model, x, y, lengths, sample_weight, class_weight, "train_on_batch")
    strategy = _strategy.resolve(strategy)
    strategy.prepare(model)
    result = strategy.reduce_batch(train_step(model, batch, metrics, strategy))
    return _batch_logs(result, metrics, return_dict)


def test_on_batch(
    model: Trainee,
    x: Any,
    y: Any,
    lengths: Any,
    strategy: Any = None,
    *,
    sample_weight: Any = None,
    return_dict: bool = False,
) -> Any:
    """``Sequential.test_on_batch`` (see there)."""
    batch, metrics = _single_batch(model, x, y, lengths, sample_weight, None, "test_on_batch")
    strategy = _strategy.resolve(strategy)
    model._ensure_bound()
    result = model._run_pinned(lambda pinned: evaluate_step(model, batch, metrics, pinned))
    return _batch_logs(strategy.reduce_batch(result), metrics, return_dict)


__all__ = [
    "LoopHooks",
    "evaluate",
    "evaluate_source",
    "fit",
    "run_epoch",
    "test_on_batch",
    "train_on_batch",
]
