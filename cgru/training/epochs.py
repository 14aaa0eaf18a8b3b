"""Epochs over a batch source, by Keras 3's rules: how many batches an epoch takes from which
pass over the data, and when the data set's hooks run.

A source of batches is read in passes: :class:`ArrayPasses` (arrays sliced into batches, a new
and maybe reshuffled pass each time), :class:`IterablePasses` (an iterable iterated afresh),
:class:`IteratorPasses` (a generator or iterator: a single pass) and :class:`DatasetPasses` (a
PyDataset by index, prefetched by its workers when it asks). :class:`Epochs` cuts the passes
into epochs; :class:`CachedBatches` replays the first pass of a source that cannot be read twice.

The epochs follow Keras 3's ``EpochIterator`` (checked against Keras in
``tests/training/test_adapters.py``):

- without ``steps_per_epoch`` an epoch is one whole pass; with it, an epoch is that many
  batches and the next epoch continues the same pass; a pass that ends before an epoch's steps
  ends the epoch there (warning "Your input ran out of data") and the next epoch starts a new
  pass;
- a generator or iterator has a single pass: once used up, ``fit`` ends after that epoch, with
  the same warning when epochs remain (Keras 3 goes on with epochs that replay the two
  batches it peeked at when it started, an artifact of how it inspects a generator);
- ``fit`` and ``evaluate`` first call the data set's ``on_epoch_end`` (Keras resets its
  iterator that way), then frame every pass with ``on_epoch_begin``/``on_epoch_end``;
  ``fit(shuffle=True)`` shuffles the order of a PyDataset's batches in every pass;
- validation data from a generator or iterator is drawn once (``validation_steps`` batches,
  or all of them) and the same batches validate every epoch; other validation sources start
  a new pass each time.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ..validation import check_int
from . import prefetch
from .data import ArrayBatches, Batch

#: Keras's warning when data runs out before the steps it was asked for.
RAN_OUT = (
    "Your input ran out of data; interrupting training. Make sure that your dataset or "
    "generator can generate at least `steps_per_epoch * epochs` batches."
)

#: What a pass gives when it has no more batches.
END = object()


class ArrayPasses:
    """Arrays sliced into batches: a new (reshuffled) pass whenever asked."""

    one_shot = False

    def __init__(self, batches: ArrayBatches) -> None:
        self.batches = batches
        self.num_batches = batches.steps

    def open(self) -> Iterator[Any]:
        return self.batches.epoch()

    def release(self, it: Any) -> None:
        it.close()

    def begin(self) -> None: ...

    def end(self) -> None: ...


class IterablePasses:
    """An iterable of batches, iterated afresh for each pass."""

    one_shot = False

    def __init__(self, data: Any) -> None:
        self.data = data
        try:
            self.num_batches = len(data)
        except TypeError:
            self.num_batches = None
        self._pending: Iterator | None = None

    def peek(self) -> Any:
        it = iter(self.data)
        first = next(it, END)
        self._pending = itertools.chain([first], it)  # the peeked pass is the first one
        return first

    def open(self) -> Iterator[Any]:
        it, self._pending = self._pending, None
        return it if it is not None else iter(self.data)

    def release(self, it: Any) -> None: ...

    def begin(self) -> None: ...

    def end(self) -> None: ...


class IteratorPasses:
    """A generator or iterator: one pass, however many epochs read it."""

    one_shot = True
    num_batches = None

    def __init__(self, data: Iterator) -> None:
        self.data = data
        self._ahead: list = []
        self.used_up = False

    def __iter__(self) -> IteratorPasses:
        return self

    def __next__(self) -> Any:
        if self._ahead:
            return self._ahead.pop()
        if self.used_up:
            raise StopIteration
        try:
            return next(self.data)
        except StopIteration:
            self.used_up = True
            raise

    def has_more(self) -> bool:
        """Whether another batch comes (drawn now and kept for the next read)."""
        if not self._ahead:
            batch = next(self, END)
            if batch is END:
                return False
            self._ahead.append(batch)
        return True

    def peek(self) -> Any:
        return self._ahead[-1] if self.has_more() else END

    def open(self) -> Iterator[Any]:
        return self

    def release(self, it: Any) -> None: ...

    def begin(self) -> None: ...

    def end(self) -> None: ...


class DatasetPasses:
    """A PyDataset: ``len`` batches by index per pass (in a shuffled order with ``rng``),
    prepared ahead by its workers when it asks for them."""

    one_shot = False

    def __init__(self, dataset: Any, rng: Any = None) -> None:
        self.dataset = dataset
        self.rng = rng
        count = dataset.num_batches
        self.num_batches = None if count is None else check_int(count, f"len({type(dataset).__name__})", 0)

    def peek(self) -> Any:
        return self.dataset[0] if self.num_batches != 0 else END

    def _indices(self) -> Any:
        if self.num_batches is None:
            return itertools.count()
        if self.rng is not None:
            return self.rng.permutation(self.num_batches).tolist()
        return range(self.num_batches)

    def open(self) -> Iterator[Any]:
        indices = self._indices()
        if prefetch.wants_pool(self.dataset):
            return prefetch.prefetched(self.dataset, indices)
        return (self.dataset[i] for i in indices)

    def release(self, it: Any) -> None:
        it.close()

    def begin(self) -> None:
        self.dataset.on_epoch_begin()

    def end(self) -> None:
        self.dataset.on_epoch_end()


class Epochs:
    """A batch source (``steps``, ``epoch(index)``) over passes, with Keras's epoch rules (see
    the module documentation).

    ``check(raw, step, epoch)`` turns a drawn batch into a checked :class:`Batch` (None: the
    passes give checked batches). ``evaluation``: every epoch starts a new pass after an
    ``on_epoch_end`` (Keras resets an evaluation's iterator each time). ``empty``: a batch of no
    samples with the data's shapes (:func:`~cgru.training.data.empty_like` of a checked batch),
    which a process whose data ran out runs while others train on theirs
    (:mod:`cgru.distributed`).
    """

    def __init__(
        self,
        passes: Any,
        check: Callable[[Any, int, int], Batch] | None,
        steps_per_epoch: int | None = None,
        evaluation: bool = False,
        name: str = "the data",
        empty: Batch | None = None,
    ) -> None:
        self.passes = passes
        self.check = check
        self.steps_per_epoch = steps_per_epoch
        self.evaluation = evaluation
        self.name = name
        self.empty = empty
        self._current: Iterator | None = None
        self._seen = 0
        self._counted: int | None = None  # batches of a pass of unknown length, once known

    @property
    def steps(self) -> int | None:
        """Batches per epoch, None while not known."""
        return self.steps_per_epoch or self.passes.num_batches or self._counted

    @property
    def used_up(self) -> bool:
        """Whether a generator or iterator has nothing more to give."""
        return self.passes.one_shot and not self.passes.has_more()

    def ran_out(self, done: int, epochs: int) -> str:
        """The warning when a generator is used up after ``done`` of ``epochs`` epochs."""
        return (
            f"{self.name} ran out of data after {done} of {epochs} epochs, so the training ends "
            "here: a generator or iterator gives its batches once. To train for several epochs, "
            "pass steps_per_epoch= with a generator that does not end, a PyDataset, or an iterable "
            "that starts again for every pass (such as a torch DataLoader)."
        )

    def reset(self) -> None:
        """Drop the pass in progress and tell the data set an epoch ended (Keras's reset)."""
        self._drop()
        self.passes.end()

    def close(self) -> None:
        """Stop a pass in progress (and its worker pool)."""
        self._drop()

    def _drop(self) -> None:
        if self._current is not None:
            self.passes.release(self._current)
        self._current = None
        self._seen = 0

    def epoch(self, index: int = 0) -> Iterator[Batch]:
        """The batches of epoch ``index``."""
        if self.evaluation:
            self.reset()
        self.passes.begin()
        count = self.passes.num_batches
        steps = self.steps_per_epoch or count
        if self._current is None or self.steps_per_epoch is None:
            self._drop()
            self._current = self.passes.open()
        step = 0
        while steps is None or step < steps:
            if count is not None and self._seen >= count:
                if self.steps_per_epoch:
                    warnings.warn(RAN_OUT, stacklevel=2)
                break
            raw = self._draw(step, index)
            if raw is END:
                self._drop()
                if self.steps_per_epoch:
                    warnings.warn(RAN_OUT, stacklevel=2)
                elif count is None:
                    self._counted = step
                break
            self._seen += 1
            yield raw if self.check is None else self.check(raw, step, index)
            step += 1
        if count is not None and self._seen >= count:
            self._drop()
        self.passes.end()

    def _draw(self, step: int, epoch: int) -> Any:
        try:
            return next(self._current, END)
        except Exception as exc:
            if hasattr(exc, "add_note"):
                exc.add_note(f"(raised by {self.name} for batch {step} of epoch {epoch + 1})")
            raise


class CachedBatches:
    """The batches of a source's first pass, kept and given again on every later pass (the
    validation batches of a generator, which cannot be drawn twice)."""

    def __init__(self, source: Epochs) -> None:
        self.source = source
        self.batches: list[Batch] | None = None

    @property
    def steps(self) -> int | None:
        return self.source.steps if self.batches is None else len(self.batches)

    @property
    def empty(self) -> Batch | None:
        return self.source.empty

    def epoch(self, index: int = 0) -> Iterator[Batch]:
        if self.batches is not None:
            yield from self.batches
            return
        drawn = []
        for batch in self.source.epoch(0):
            drawn.append(batch)
            yield batch
        self.batches = drawn

    def close(self) -> None:
        self.source.close()


__all__ = [
    "END",
    "RAN_OUT",
    "ArrayPasses",
    "CachedBatches",
    "DatasetPasses",
    "Epochs",
    "IterablePasses",
    "IteratorPasses",
]
