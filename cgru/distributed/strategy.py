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
    the loss, sizes and metric states (:mod:`cgru.distributed.combine`). Every rank gets the
    global batch's gradient and result and applies the identical optimizer step.
``reduce_batch(result)`` (each evaluation step)
    The batch result's sums alone, in one small float64 host all-reduce; a training step's
    result passes as ``reduce_step`` made it.
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
from ..training.data import Batch
from ..training.logs import BatchResult
from ..validation import to_host, xp_of
from .combine import StepLayout, flatten_numbers, global_result, mean_reduction, result_scalars
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
    its data). ``steps`` must be known on every rank (arrays, or a generator with
    ``steps_per_epoch``); every rank raises ValueError together otherwise."""

    def __init__(self, source: Any, host: Any) -> None:
        self.source = source
        self.local_steps = source.steps
        self._empty = _empty_batch(source)
        gathered = host.allgather((self.local_steps, self._empty is not None))
        unknown = [rank for rank, (steps, _) in enumerate(gathered) if steps is None]
        if unknown:
            raise ValueError(
                "data-parallel training needs the number of batches per epoch on every rank "
                f"(pass arrays, or steps_per_epoch= with a generator); unknown on rank(s) {unknown}"
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
        for batch in self.source.epoch(index):
            if self._empty is None:
                self._empty = _empty_like(batch)
            done += 1
            yield batch
        for _ in range(self.steps - done):
            yield self._empty


def _empty_like(batch: Batch) -> Batch:
    """``batch`` with no samples: every array of it cut to length 0."""
    return type(batch)(*(None if part is None else part[:0] for part in batch))


def _empty_batch(source: Any) -> Batch | None:
    """An empty batch with the shapes of ``source``'s data, where the source shows its arrays."""
    if all(hasattr(source, name) for name in ("x", "y", "lengths")):
        return _empty_like(Batch(source.x, source.y, source.lengths))
    return None


class DataParallelStrategy:
    """Synchronous data-parallel training over ``collectives`` (see the module documentation)."""

    def __init__(self, collectives: Any) -> None:
        self.collectives = collectives
        self._layouts: dict = {}
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
            repr(sorted(optimizer.get_config().items())),
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
        buffer, rebuild = layout.contribution(xp, grads, result)
        self.collectives.allreduce_sum(buffer)
        reduced, global_batch = layout.global_step(buffer, mean_reduction(result), rebuild)
        self._passing = global_batch
        return list(zip(reduced, params)), global_batch

    def _step_layout(self, params: list, result: BatchResult) -> StepLayout:
        stats, _ = flatten_numbers(list(result.stats))
        dtypes = [p.dtype for p in params]
        key = (tuple((tuple(p.shape), str(p.dtype)) for p in params), len(stats))
        layout = self._layouts.get(key)
        if layout is None:
            dtype = np.result_type(*dtypes) if dtypes else np.float64
            layout = self._layouts[key] = StepLayout([tuple(p.shape) for p in params], len(stats), dtype)
        return layout

    def reduce_batch(self, result: BatchResult) -> BatchResult:
        """The global batch's result (a training step's passes as :meth:`reduce_step` made it)."""
        if result is self._passing:
            self._passing = None
            return result
        scalars, rebuild = result_scalars(result)
        buffer = np.asarray(scalars, dtype=np.float64)
        self.collectives.host.allreduce_sum(buffer)
        return global_result(buffer, mean_reduction(result), rebuild)

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
