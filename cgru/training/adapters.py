"""The forms of data ``fit``, ``evaluate`` and ``predict`` take, and the batch sources they become.

``x`` may be:

- a numeric array with the batch axis first (NumPy, CuPy, or anything ``numpy.asarray`` reads);
- ``{"x": array, "lengths": ints}``: right-padded sequences with their valid lengths (the same
  as ``lengths=``); this is how lengths travel with a batch or with validation data;
- a generator or other iterator of batches, used once;
- a :class:`cgru.utils.PyDataset` (or a Keras ``PyDataset``), batches by index;
- any other iterable of batches, iterated afresh for each pass (a torch ``DataLoader``, for
  one, or a list of batches).

A batch is ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` (a list is read as a tuple,
as torch's collation gives it); ``x`` may be the dict above. Tensors are converted through
``numpy()`` or ``__array__`` (torch tensors leave their device and autograd first), without
importing their library. Each batch is checked as arrays are (shapes, dtypes, lengths, target
classes, weights) before it reaches the model; a bad one raises an error naming its index, with
the model left after its last whole step.

Epochs follow Keras 3's ``EpochIterator`` (checked against Keras in
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
import math
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from ..utils import PyDataset
from ..validation import check_int, to_host
from . import prefetch
from .data import ArrayBatches, Batch, check_data, empty_like, split_samples
from .surface import Trainee
from .weights import class_weight_to_sample_weight, refuse_both

#: What ``x`` may be, for messages.
FORMS = (
    "a numeric array with the batch axis first, {'x': array, 'lengths': ints} for right-padded "
    "sequences, a generator or iterator of batches, a cgru.utils.PyDataset, or another iterable of "
    "batches such as a torch DataLoader (a batch is x, (x,), (x, y) or (x, y, sample_weight))"
)

#: Keras's warning when data runs out before the steps it was asked for.
RAN_OUT = (
    "Your input ran out of data; interrupting training. Make sure that your dataset or "
    "generator can generate at least `steps_per_epoch * epochs` batches."
)

#: Samples per batch of arrays when ``batch_size`` is None (Keras's default).
DEFAULT_BATCH_SIZE = 32

_END = object()


# ----------------------------------------------------------------------------------- forms
def is_py_dataset(x: Any) -> bool:
    """A :class:`cgru.utils.PyDataset`, or a Keras one (recognised by its class, without
    importing Keras)."""
    if isinstance(x, PyDataset):
        return True
    return any(
        c.__name__ in ("PyDataset", "Sequence") and c.__module__.split(".")[0] == "keras"
        for c in type(x).__mro__
    )


def _is_array_like(x: Any) -> bool:
    return (
        isinstance(x, (np.ndarray, np.generic, list, tuple, dict, str, bytes, int, float, complex))
        or hasattr(x, "__array__")
        or hasattr(x, "__cuda_array_interface__")
        or hasattr(x, "__array_interface__")
    )


def is_batch_source(x: Any) -> bool:
    """Whether ``x`` gives batches (a generator, iterator, PyDataset, iterable of batches, or a
    list of ``(x, y)`` / ``(x, y, sample_weight)`` batches) rather than being the data itself."""
    if _is_batch_list(x):
        return True
    if x is None or _is_array_like(x):
        return False
    return is_py_dataset(x) or isinstance(x, Iterator) or hasattr(x, "__iter__")


def _is_batch_list(x: Any) -> bool:
    """A list whose items are all batches ``(x, ...)`` of array objects (never nested lists of
    numbers, which are data)."""
    return (
        isinstance(x, list)
        and len(x) > 0
        and all(
            isinstance(b, (tuple, list))
            and 1 <= len(b) <= 3
            and (_is_whole_array(b[0]) or isinstance(b[0], dict))
            for b in x
        )
    )


def _describe(x: Any) -> str:
    if isinstance(x, types.GeneratorType):
        return "the generator"
    if is_py_dataset(x):
        return f"the {type(x).__name__}"
    return f"the {type(x).__name__} iterator" if isinstance(x, Iterator) else f"the {type(x).__name__}"


def as_array(a: Any) -> Any:
    """A host array from an array or tensor (torch tensors through ``detach().cpu().numpy()``,
    others through ``__array__``), without importing their library; None stays None."""
    if a is None or isinstance(a, np.ndarray):
        return a
    if type(a).__module__.split(".")[0] == "torch" and hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    if hasattr(a, "__cuda_array_interface__") or hasattr(a, "__array__"):
        return to_host(a)
    return a


def split_inputs(x: Any, lengths: Any, what: str) -> tuple[Any, Any]:
    """``(x, lengths)`` from the model input as given: ``{"x": ..., "lengths": ...}`` carries
    its lengths; a list or tuple of several arrays is refused (Sequential has one input)."""
    if isinstance(x, dict):
        unknown = sorted(map(str, set(x) - {"x", "lengths"}))
        if unknown or "x" not in x:
            raise TypeError(
                f"{what}: a dict input must be {{'x': array, 'lengths': ints}} "
                f"(lengths optional); got keys {sorted(map(str, x))}"
            )
        if lengths is not None and x.get("lengths") is not None:
            raise ValueError(f"{what}: lengths given twice, in the input dict and as lengths=")
        return as_array(x["x"]), as_array(x.get("lengths", lengths))
    if isinstance(x, (list, tuple)) and len(x) > 1 and all(_is_whole_array(a) for a in x):
        raise TypeError(
            f"{what}: x is a {type(x).__name__} of {len(x)} arrays, the way Keras passes several "
            "inputs, but a Sequential model has one input. Pass one array (np.stack(x) if the "
            "list holds samples), or {'x': array, 'lengths': ints} for right-padded sequences; "
            "to pass targets, give y= or batches (x, y)"
        )
    return as_array(x), lengths


def _is_whole_array(a: Any) -> bool:
    """An array object (not a nested list): what Keras reads as one input among several."""
    return (isinstance(a, np.ndarray) and a.ndim >= 1) or (
        not isinstance(a, (list, tuple, np.ndarray)) and getattr(a, "ndim", 0) >= 1
    )


def check_form(x: Any, what: str) -> None:
    """Raise a TypeError listing the accepted forms for an ``x`` that is none of them."""
    if x is None:
        return
    if not (_is_array_like(x) or is_batch_source(x)) or isinstance(x, (str, bytes)):
        raise TypeError(f"{what}() takes as x {FORMS}; got {type(x).__name__}")


def unpack_batch(raw: Any) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` of one batch (Keras's ``unpack_x_y_sample_weight``)."""
    if isinstance(raw, list):
        raw = tuple(raw)
    if not isinstance(raw, tuple):
        return raw, None, None
    if len(raw) in (1, 2, 3):
        return (*raw, None, None)[:3]
    raise ValueError(
        f"a batch must be x, (x,), (x, y) or (x, y, sample_weight); got a {len(raw)}-element tuple"
    )


# ---------------------------------------------------------------------------------- passes
class _ArrayPasses:
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


class _IterablePasses:
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
        first = next(it, _END)
        self._pending = itertools.chain([first], it)  # the peeked pass is the first one
        return first

    def open(self) -> Iterator[Any]:
        it, self._pending = self._pending, None
        return it if it is not None else iter(self.data)

    def release(self, it: Any) -> None: ...

    def begin(self) -> None: ...

    def end(self) -> None: ...


class _IteratorPasses:
    """A generator or iterator: one pass, however many epochs read it."""

    one_shot = True
    num_batches = None

    def __init__(self, data: Iterator) -> None:
        self.data = data
        self._ahead: list = []
        self.used_up = False

    def __iter__(self) -> _IteratorPasses:
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
            batch = next(self, _END)
            if batch is _END:
                return False
            self._ahead.append(batch)
        return True

    def peek(self) -> Any:
        return self._ahead[-1] if self.has_more() else _END

    def open(self) -> Iterator[Any]:
        return self

    def release(self, it: Any) -> None: ...

    def begin(self) -> None: ...

    def end(self) -> None: ...


class _DatasetPasses:
    """A PyDataset: ``len`` batches by index per pass (in a shuffled order with ``rng``),
    prepared ahead by its workers when it asks for them."""

    one_shot = False

    def __init__(self, dataset: Any, rng: Any = None) -> None:
        self.dataset = dataset
        self.rng = rng
        count = dataset.num_batches
        self.num_batches = None if count is None else check_int(count, f"len({type(dataset).__name__})", 0)

    def peek(self) -> Any:
        return self.dataset[0] if self.num_batches != 0 else _END

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


# ----------------------------------------------------------------------------------- epochs
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
            if raw is _END:
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
            return next(self._current, _END)
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


# ---------------------------------------------------------------------------------- checks
def _batch_checker(model: Trainee, what: str, name: str, class_weight: Any, targets: bool) -> Callable:
    """``check(raw, step, epoch) -> Batch`` for batches drawn from ``name`` by ``what``."""

    def check(raw: Any, step: int, epoch: int) -> Batch:
        try:
            if raw is _END:
                raise ValueError("it gave no batches")
            x, y, sample_weight = unpack_batch(raw)
            x, lengths = split_inputs(x, None, what)
            if not targets:
                return _checked_inputs(model, x, lengths, what)
            if y is None:
                raise ValueError(f"{what}() needs targets: batches must be (x, y) or (x, y, sample_weight)")
            batch, _ = check_data(
                model, x, as_array(y), lengths, as_array(sample_weight), class_weight, what
            )
            model._check_stateful_batches(batch.x.shape[0], batch.x.shape[0], what)
            return batch
        except (TypeError, ValueError) as exc:
            kind = TypeError if isinstance(exc, TypeError) else ValueError
            raise kind(f"{what}(): batch {step} of epoch {epoch + 1} from {name}: {exc}") from None

    return check


def _checked_inputs(model: Trainee, x: Any, lengths: Any, what: str) -> Batch:
    """A batch of inputs alone (for predict), checked as the model takes them."""
    from ..validation import as_batch_array

    x = as_batch_array(x, "x")
    lengths = model._accept_input(x, lengths)
    model.layers[0].check_inputs(x, lengths)
    model._check_stateful_batches(x.shape[0], x.shape[0], what)
    return Batch(x, None, lengths)


def _stream_source(
    model: Trainee,
    data: Any,
    what: str,
    *,
    steps: int | None = None,
    class_weight: Any = None,
    rng: Any = None,
    evaluation: bool = False,
    targets: bool = True,
) -> tuple[Epochs, Batch]:
    """A source over a generator, iterator, PyDataset or iterable, and its first batch (checked:
    the model is built from it)."""
    name = _describe(data)
    if is_py_dataset(data):
        passes: Any = _DatasetPasses(data, rng)
        if passes.num_batches is None and steps is None:
            raise ValueError(f"{what}(): {name} has no end (num_batches is None): give the number of steps")
    elif isinstance(data, Iterator):
        passes = _IteratorPasses(data)
    else:
        passes = _IterablePasses(data)
    check = _batch_checker(model, what, name, class_weight, targets)
    first = check(passes.peek(), 0, 0)
    return Epochs(passes, check, steps, evaluation, name, empty_like(first)), first


# --------------------------------------------------------------------------------- plans
class FitData(NamedTuple):
    """What ``fit`` trains and validates on: the sources, and the shapes of the first
    batch's targets and outputs (the metrics take their kind from them)."""

    train: Epochs
    held_out: Any
    y_shape: tuple
    out_shape: tuple


class EvalData(NamedTuple):
    source: Any
    y_shape: tuple
    out_shape: tuple


def _no_extras(what: str, name: str, **given: Any) -> None:
    for arg, value in given.items():
        if value is not None:
            raise ValueError(
                f"{what}(): when x is {name}, {arg}= cannot be given: the batches carry it "
                "(x, y, sample_weight); lengths travel as x={'x': ..., 'lengths': ...}"
            )


def _array_batches(
    model: Trainee,
    batch: Batch,
    batch_size: int | None,
    steps: int | None,
    what: str,
    rng: Any = None,
    evaluation: bool = True,
) -> Epochs:
    """Checked arrays as a source of batches of ``batch_size`` (default 32, or Keras's
    ``ceil(samples / steps)`` when only ``steps`` is given)."""
    n = batch.x.shape[0]
    if batch_size is None:
        batch_size = max(1, math.ceil(n / steps)) if steps else DEFAULT_BATCH_SIZE
    model._check_stateful_batches(n, batch_size, what)
    arrays = ArrayBatches(batch.x, batch.y, batch.lengths, batch_size, rng, batch.sample_weight)
    return Epochs(_ArrayPasses(arrays), None, steps, evaluation, "the arrays", arrays.empty)


def _output_shape(model: Trainee, batch: Batch) -> tuple:
    return model.compute_output_shape((None, *batch.x.shape[1:]))


def fit_data(
    model: Trainee,
    x: Any,
    y: Any,
    lengths: Any,
    sample_weight: Any,
    class_weight: Any,
    batch_size: int | None,
    steps_per_epoch: int | None,
    rng: Any,
    validation_split: float,
    validation_data: Any,
    validation_steps: int | None,
    validation_batch_size: int | None,
) -> FitData:
    """Check ``fit``'s data and make its sources (``rng``: reshuffle every pass; None keeps the
    order). Raises before anything trains."""
    check_form(x, "fit")
    if is_batch_source(x):
        name = _describe(x)
        _no_extras("fit", name, y=y, sample_weight=sample_weight, lengths=lengths)
        if validation_split:
            raise ValueError(
                f"fit(): validation_split needs arrays; when x is {name}, give validation_data"
            )
        train, first = _stream_source(
            model, x, "fit", steps=steps_per_epoch, class_weight=class_weight, rng=rng
        )
        y_shape, out_shape = first.y.shape, _output_shape(model, first)
    else:
        x, lengths = split_inputs(x, lengths, "fit")
        refuse_both(sample_weight, class_weight, "fit")
        # class weights come after the split: they never weigh the validation samples
        batch, out_shape = check_data(model, x, y, lengths, sample_weight, None, "fit")
        arrays = tuple(batch)
        if validation_data is None and validation_split > 0:
            arrays, held = split_samples(arrays, validation_split)
            validation_data = ({"x": held[0], "lengths": held[2]}, held[1], held[3])
        x, y, lengths, sw = arrays
        if x.shape[0] == 0:
            raise ValueError("fit() needs at least one training sample")
        if class_weight is not None:
            sw = class_weight_to_sample_weight(y, class_weight, out_shape, np.dtype(model.dtype))
        train = _array_batches(
            model, Batch(x, y, lengths, sw), batch_size, steps_per_epoch, "fit", rng, evaluation=False
        )
        y_shape = y.shape
    try:
        held_out = None
        if validation_data is not None:
            held_out = _validation_source(
                model, validation_data, validation_batch_size or batch_size, validation_steps
            )
    except BaseException:
        train.close()
        raise
    train.reset()
    return FitData(train, held_out, y_shape, out_shape)


def _validation_source(model: Trainee, data: Any, batch_size: int | None, steps: int | None) -> Any:
    what = "fit (validation_data)"
    if is_batch_source(data):
        source, _ = _stream_source(model, data, what, steps=steps, evaluation=True)
        return CachedBatches(source) if source.passes.one_shot else source
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise ValueError(
            "validation_data must be (x_val, y_val), (x_val, y_val, sample_weight_val) or a source "
            "of batches; x_val may be {'x': x_val, 'lengths': lengths_val} for right-padded sequences"
        )
    vx, vy, vsw = (*data, None)[:3]
    vx, vl = split_inputs(vx, None, what)
    batch, _ = check_data(model, vx, vy, vl, vsw, None, what)
    return _array_batches(model, batch, batch_size, steps, "fit (validation)")


def evaluate_data(
    model: Trainee,
    x: Any,
    y: Any,
    lengths: Any,
    sample_weight: Any,
    batch_size: int | None,
    steps: int | None,
) -> EvalData:
    """Check ``evaluate``'s data and make its source."""
    check_form(x, "evaluate")
    if is_batch_source(x):
        _no_extras("evaluate", _describe(x), y=y, sample_weight=sample_weight, lengths=lengths)
        source, first = _stream_source(model, x, "evaluate", steps=steps, evaluation=True)
        return EvalData(source, first.y.shape, _output_shape(model, first))
    x, lengths = split_inputs(x, lengths, "evaluate")
    batch, out_shape = check_data(model, x, y, lengths, sample_weight, None, "evaluate")
    if batch.x.shape[0] == 0:
        raise ValueError("evaluate() needs at least one sample")
    return EvalData(_array_batches(model, batch, batch_size, steps, "evaluate"), batch.y.shape, out_shape)


def predict_source(model: Trainee, x: Any, steps: int | None) -> Epochs:
    """The source of ``predict``'s batches of inputs when ``x`` is a source of batches (their
    targets, if any, are ignored, as Keras does)."""
    source, _ = _stream_source(model, x, "predict", steps=steps, targets=False)
    return source


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "FORMS",
    "RAN_OUT",
    "CachedBatches",
    "EvalData",
    "Epochs",
    "FitData",
    "as_array",
    "check_form",
    "evaluate_data",
    "fit_data",
    "is_batch_source",
    "is_py_dataset",
    "predict_source",
    "split_inputs",
    "unpack_batch",
]
