"""Synchronous data-parallel training over any set of collectives.

:class:`DataParallelStrategy` is the training loop's strategy (:mod:`cgru.training.strategy`)
for ``R`` processes ("ranks") that each hold a replica of the model and a shard of the data. It
needs only a few collective operations, given by a ``collectives`` object:

- ``rank``, ``size``;
- ``allreduce_sum(buffer)``: sum a 1-D array on the model's device over the ranks, in place;
- ``broadcast(buffer, root)``: copy a 1-D array on the model's device from ``root``, in place;
- ``host``: the collectives for host (NumPy) buffers and Python objects (itself, for MPI), with
  ``allreduce_sum``, ``allgather(obj) -> list`` and ``broadcast_object(obj, root) -> obj``.

:class:`cgru.distributed.mpi.MPICollectives` provides them over MPI (host buffers),
:class:`cgru.distributed.nccl.NCCLCollectives` over NCCL (GPU buffers). What the strategy does
at each point of the loop:

``prepare(model)`` (``fit``, ``train_on_batch``: the first time the strategy meets a model)
    The ranks check that their models have the same weights (count, shapes, dtypes) and the
    same optimizer, then take rank 0's weights and optimizer state (iterations and slots) in one
    broadcast. From there on every rank applies the same update to the same weights: the
    replicas stay bitwise identical, which :meth:`~DataParallelStrategy.check_replicas` checks.
``distribute(source)``
    Every rank runs the same number of batches per pass, the most that any rank has: a rank
    whose own batches run out runs empty batches (no samples), which add nothing (see
    :class:`EqualSteps`). So global batch ``i`` is the rank-order concatenation of each rank's
    batch ``i``, whatever the shards' sizes.
``reduce_step(grads_and_params, result)`` (each training step)
    One ``allreduce_sum`` of one fused buffer: the gradients weighted by the loss's denominator,
    the loss with its denominator, the sizes and every metric's state, each array with its
    aggregation (sums, maxima, minima: :mod:`cgru.distributed.combine`). Every rank gets the
    global batch's gradient and result and applies the identical optimizer step (at the same
    step count, so a learning-rate schedule gives every rank the same rate).
``reduce_batch(result)`` (each evaluation step)
    The batch result's loss, sizes and metric states alone, in one small float64 host
    all-reduce; a training step's result passes as ``reduce_step`` made it.
``callbacks(callbacks)``, ``is_chief``
    Every rank runs the callbacks that decide (``EarlyStopping``, ``TerminateOnNaN``,
    ``ReduceLROnPlateau``...) on the same global logs, so they decide alike; ranks other than 0
    run them with their printing silenced and leave out those that write files
    (``ModelCheckpoint``, ``CSVLogger``, and any callback with ``chief_only = True``). Only rank
    0 shows progress.

Every rank must call ``fit`` (or ``train_on_batch``, ``evaluate``...) with the same arguments
apart from its data: the same epochs, callbacks and compiled model. A rank that raises leaves
the others waiting in a collective; run scripts with ``python -m mpi4py script.py``, which
aborts the whole job when one rank fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import sys
import threading
import weakref
from typing import Any

import numpy as np

from .. import callbacks as _callbacks
from ..training.data import Batch, empty_like
from ..training.logs import BatchResult
from ..validation import to_host, xp_of
from .combine import (
    StateLayout,
    StepLayout,
    mean_reduction,
    result_from_sums,
    result_scalars,
    state_spec,
)
from .fused import pack_bytes, packed_size, unpack_bytes

#: Callback classes (by name in cgru.callbacks, where they exist) that write files.
CHIEF_ONLY = ("ModelCheckpoint", "CSVLogger", "BackupAndRestore")


def writes_files(callback: Any) -> bool:
    """Whether only the chief runs ``callback``: its ``chief_only`` attribute when it has one,
    else whether it is one of the file-writing callbacks (:data:`CHIEF_ONLY`)."""
    flag = getattr(callback, "chief_only", None)
    if flag is not None:
        return bool(flag)
    kinds = tuple(getattr(_callbacks, name) for name in CHIEF_ONLY if hasattr(_callbacks, name))
    return isinstance(callback, kinds)


class _QuietThreads(io.TextIOBase):
    """Stands for ``sys.stdout`` while :class:`Silenced` hooks run: drops what the threads
    running them write and passes everything else on to ``stream``, so that silencing one
    thread (a rank run as a thread) never swallows another's output."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if getattr(_quiet, "depth", 0):
            return len(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


_quiet = threading.local()
_swap_lock = threading.Lock()
_swapped: list = [None, 0]  # the stdout replaced, hooks running


@contextlib.contextmanager
def _silence_this_thread():
    with _swap_lock:
        if _swapped[1] == 0:
            _swapped[0] = sys.stdout
            sys.stdout = _QuietThreads(sys.stdout)
        _swapped[1] += 1
    _quiet.depth = getattr(_quiet, "depth", 0) + 1
    try:
        yield
    finally:
        _quiet.depth -= 1
        with _swap_lock:
            _swapped[1] -= 1
            if _swapped[1] == 0:
                sys.stdout = _swapped[0]


class Silenced(_callbacks.Callback):
    """Runs ``callback`` with its printing to stdout silenced (for ranks other than the chief)."""

    def __init__(self, callback: Any) -> None:
        super().__init__()
        self.callback = callback

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        self.callback.set_params(params)


def _silenced(hook: str) -> Any:
    def run(self: Silenced, *args: Any) -> Any:
        with _silence_this_thread():
            return getattr(self.callback, hook)(*args)

    run.__name__ = hook
    return run


for _hook in [name for name in dir(_callbacks.Callback) if name.startswith("on_")]:
    setattr(Silenced, _hook, _silenced(_hook))


class EqualSteps:
    """A batch source that yields ``steps`` batches per pass on every rank: the most that any
    rank's ``source`` has, its own batches first, then empty ones (zero samples, the shapes of
    its data: the source's ``empty`` batch, see :mod:`cgru.training.adapters`).

    ``steps`` must be known on every rank: arrays, a PyDataset or an iterable with a length,
    or a generator or iterator with ``steps_per_epoch`` (``validation_steps`` for validation
    data, ``steps`` for ``evaluate``). Otherwise every rank raises the same ValueError (the
    steps are exchanged first), rather than some ranks waiting for others in a collective.

    A generator is used up (``fit`` ends) when every rank's is: until then, a rank whose
    generator ended runs empty batches while the others train on theirs, as one process on the
    rank-order concatenation of the ranks' batches would.
    """

    def __init__(self, source: Any, host: Any) -> None:
        self.source = source
        self.host = host
        self.local_steps = source.steps
        self._empty = _empty_batch(source)
        gathered = host.allgather((self.local_steps, self._empty is not None))
        unknown = [rank for rank, (steps, _) in enumerate(gathered) if steps is None]
        if unknown:
            raise ValueError(
                "data-parallel training needs the number of batches per epoch on every rank: pass "
                "arrays, a PyDataset or an iterable with a length, or give steps_per_epoch= "
                "(validation_steps= for validation data, steps= for evaluate) with a generator or "
                f"iterator; unknown on rank(s) {unknown}"
            )
        self.steps = max(steps for steps, _ in gathered)
        stuck = [rank for rank, (steps, empty) in enumerate(gathered) if steps < self.steps and not empty]
        if stuck:
            raise ValueError(
                f"rank(s) {stuck} have no batch to take the shapes of their data from, so they "
                f"cannot run the {self.steps} steps the other ranks run: give every rank data"
            )

    def epoch(self, index: int = 0):
        done = 0
        with contextlib.closing(self.source.epoch(index)) as batches:
            for batch in batches:
                if self._empty is None:
                    self._empty = empty_like(batch)
                done += 1
                yield batch
        for _ in range(self.steps - done):
            yield self._empty

    @property
    def used_up(self) -> bool:
        """Whether every rank's generator or iterator is used up (collective: ``fit`` asks on
        every rank after the same epochs)."""
        return all(self.host.allgather(bool(getattr(self.source, "used_up", False))))

    def ran_out(self, done: int, epochs: int) -> str:
        """The source's warning when the data ran out after ``done`` of ``epochs`` epochs."""
        return self.source.ran_out(done, epochs)

    def close(self) -> None:
        """Close the source (a pass in progress, its worker pool)."""
        close = getattr(self.source, "close", None)
        if close is not None:
            close()


def _empty_batch(source: Any) -> Batch | None:
    """An empty batch with the shapes of ``source``'s data: its ``empty`` batch, or one cut from
    the arrays it shows; None when it shows neither (then the first batch it gives)."""
    empty = getattr(source, "empty", None)
    if empty is not None:
        return empty
    if all(hasattr(source, name) for name in ("x", "y", "lengths")):
        return empty_like(Batch(source.x, source.y, source.lengths, getattr(source, "sample_weight", None)))
    return None


def _optimizer_settings(optimizer: Any) -> str:
    """The optimizer's settings as ranks compare them (its config; a plain function as the
    learning rate, which has no config, by its name)."""
    try:
        return repr(sorted(optimizer.get_config().items()))
    except TypeError:
        lr = getattr(optimizer, "_learning_rate", None)
        return f"learning rate function {getattr(lr, '__qualname__', type(lr).__name__)}"


class DataParallelStrategy:
    """Synchronous data-parallel training over ``collectives`` (see the module documentation)."""

    def __init__(self, collectives: Any) -> None:
        self.collectives = collectives
        self._layouts: dict = {}  # StepLayout per (weights, metric-state layout)
        self._state_layouts: dict = {}  # StateLayout per metric-state layout
        self._xp: Any = None
        self._passing: BatchResult | None = None  # the result reduce_step returned
        self._met: weakref.WeakSet = weakref.WeakSet()  # the models prepare() synchronised

    @property
    def rank(self) -> int:
        return self.collectives.rank

    @property
    def size(self) -> int:
        return self.collectives.size

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    # --------------------------------------------------------------------------- prepare
    def prepare(self, model: Any) -> None:
        """The first time this strategy meets ``model``: :meth:`broadcast` it."""
        self._xp = model._ensure_bound().xp
        if model not in self._met:
            self.broadcast(model)

    def broadcast(self, model: Any) -> None:
        """Check that every rank's model has the same weights and optimizer, then give every
        rank rank 0's weights and optimizer state (collective: every rank calls it).

        ``fit`` and ``train_on_batch`` do it the first time the strategy meets a model; call it
        again after changing the weights on some ranks only (loading a checkpoint on rank 0)."""
        self._xp = model._ensure_bound().xp
        self._check_same_model(model)
        self._broadcast_state(model)
        self._met.add(model)

    def _check_same_model(self, model: Any) -> None:
        optimizer = model.optimizer
        signature = (
            [(tuple(p.shape), str(p.dtype), bool(p.trainable)) for p in model.weights],
            type(optimizer).__name__,
            _optimizer_settings(optimizer),
        )
        gathered = self.collectives.host.allgather(signature)
        differing = [rank for rank, other in enumerate(gathered) if other != gathered[0]]
        if differing:
            raise ValueError(
                f"every rank must train the same model with the same optimizer, but rank(s) "
                f"{differing} differ from rank 0 (weights as (shape, dtype, trainable), optimizer, "
                f"config): rank 0 has {gathered[0]!r}, rank {differing[0]} has {gathered[differing[0]]!r}"
            )

    def _broadcast_state(self, model: Any) -> None:
        host = self.collectives.host
        params, trainable = model.weights, model.trainable_weights
        state = model.optimizer.get_state(trainable)
        slot_names = [sorted(named) for named in state["slots"]]
        # the slots' structure (which weights have which slots, the step count) as rank 0 has it
        iterations, slot_names = host.broadcast_object((state["iterations"], slot_names), 0)
        specs = [(tuple(p.shape), p.dtype) for p in params]
        for p, names in zip(trainable, slot_names):
            specs += [(tuple(p.shape), p.dtype)] * len(names)
        xp = self._xp
        if self.rank == 0:
            arrays = [p.value for p in params]
            arrays += [named[name] for named, names in zip(state["slots"], slot_names) for name in names]
            buffer = pack_bytes(arrays, xp)
        else:
            buffer = xp.empty(packed_size(specs), dtype=xp.uint8)
        self.collectives.broadcast(buffer, 0)
        if self.rank == 0:
            return  # rank 0 keeps its own arrays: nothing to publish
        arrays = unpack_bytes(buffer, specs)
        weights, rest = arrays[: len(params)], iter(arrays[len(params):])
        slots = [{name: next(rest) for name in names} for names in slot_names]
        model.set_weights(weights)
        model.optimizer.set_state(trainable, {"iterations": iterations, "slots": slots})

    # ------------------------------------------------------------------------------ data
    def distribute(self, source: Any) -> EqualSteps:
        """``source`` run for the same number of steps on every rank (:class:`EqualSteps`)."""
        return EqualSteps(source, self.collectives.host)

    # ----------------------------------------------------------------------------- steps
    def reduce_step(self, grads_and_params: list, result: BatchResult) -> tuple[list, BatchResult]:
        """The global batch's gradients and result, in one all-reduce (see
        :mod:`cgru.distributed.combine`)."""
        grads = [g for g, _ in grads_and_params]
        params = [p for _, p in grads_and_params]
        layout = self._step_layout(params, result)
        xp = self._xp if self._xp is not None else xp_of(next((g for g in grads if g is not None), None))
        buffer = layout.contribution(xp, grads, result, self.rank)
        self.collectives.allreduce_sum(buffer)
        reduced, global_batch = layout.global_step(buffer, mean_reduction(result))
        self._passing = global_batch
        return list(zip(reduced, params)), global_batch

    def _step_layout(self, params: list, result: BatchResult) -> StepLayout:
        states = self._state_layout(result)
        key = (tuple((tuple(p.shape), str(p.dtype)) for p in params), states.spec)
        layout = self._layouts.get(key)
        if layout is None:
            dtypes = [p.dtype for p in params]
            dtype = np.result_type(*dtypes) if dtypes else np.float64
            layout = self._layouts[key] = StepLayout([tuple(p.shape) for p in params], states, dtype)
        return layout

    def _state_layout(self, result: BatchResult) -> StateLayout:
        """The layout of the result's metric states, agreed by every rank the first time it is
        met (ValueError on every rank when the ranks' metrics differ: their buffers would)."""
        spec = (mean_reduction(result), state_spec(result.stats))
        layout = self._state_layouts.get(spec)
        if layout is None:
            gathered = self.collectives.host.allgather(spec)
            differing = [rank for rank, other in enumerate(gathered) if other != gathered[0]]
            if differing:
                raise ValueError(
                    f"every rank must compile the same loss reduction and metrics, but the metric states "
                    f"(or the loss reduction) of rank(s) {differing} differ from rank 0's: rank 0 has "
                    f"{gathered[0]!r}, rank {differing[0]} has {gathered[differing[0]]!r}"
                )
            layout = self._state_layouts[spec] = StateLayout(spec[1], self.size)
        return layout

    def reduce_batch(self, result: BatchResult) -> BatchResult:
        """The global batch's result (a training step's passes as :meth:`reduce_step` made it)."""
        if result is self._passing:
            self._passing = None
            return result
        layout = self._state_layout(result)
        buffer = result_scalars(result, layout, self.rank)
        self.collectives.host.allreduce_sum(buffer)
        return result_from_sums(buffer, mean_reduction(result), layout)

    # ------------------------------------------------------------------------- callbacks
    def callbacks(self, callbacks: list) -> list:
        """All of ``callbacks`` on rank 0; elsewhere those that do not write files, silenced."""
        if self.is_chief:
            return list(callbacks)
        return [Silenced(cb) for cb in callbacks if not writes_files(cb)]

    # ------------------------------------------------------------------------------ checks
    def check_replicas(self, model: Any) -> str:
        """The SHA-256 digest of the model's weights and optimizer state, the same on every
        rank; RuntimeError (on every rank) naming the ranks whose replica differs from rank 0's."""
        digest = hashlib.sha256()
        for p in model.weights:
            digest.update(np.ascontiguousarray(to_host(p.value)).tobytes())
        state = model.optimizer.get_state(model.trainable_weights) if model.compiled else None
        if state is not None:
            digest.update(str(state["iterations"]).encode())
            for named in state["slots"]:
                for name in sorted(named):
                    digest.update(name.encode())
                    digest.update(np.ascontiguousarray(to_host(named[name])).tobytes())
        digests = self.collectives.host.allgather(digest.hexdigest())
        differing = [rank for rank, d in enumerate(digests) if d != digests[0]]
        if differing:
            raise RuntimeError(f"the replicas of rank(s) {differing} differ from rank 0's")
        return digests[0]


__all__ = ["CHIEF_ONLY", "DataParallelStrategy", "EqualSteps", "Silenced", "writes_files"]
