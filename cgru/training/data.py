"""Where the batches of ``fit`` and ``evaluate`` come from.

A batch source has ``steps`` (batches per pass, or None when unknown in advance) and
``epoch(index)``, an iterator over the :class:`Batch` es of one pass. A source checks its data
before it yields it (the whole data set at once where it can, else batch by batch), so the loop
trusts every batch it gets.

:class:`ArrayBatches` slices arrays checked whole by :func:`check_arrays` into batches, in order
or reshuffled every pass; :func:`split_validation` holds out their last fraction, as Keras's
``validation_split`` does. Generators, iterables of batches and ``PyDataset`` s become sources in
:mod:`cgru.training.adapters`, which checks each of their batches with :func:`check_arrays` as it
draws it. Sample weights (given, or made from ``class_weight``) travel in :class:`Batch` beside
the targets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from .. import losses as _losses
from ..sample_weights import check_sample_weight
from ..validation import as_batch_array, as_numeric_array
from .surface import Trainee
from .weights import class_weight_to_sample_weight, refuse_both


class Batch(NamedTuple):
    """One batch: host arrays with the batch axis first.

    x: the model's input; y: the targets; lengths: int64 (batch,) valid lengths of right-padded
    sequences, or None; sample_weight: the weight of each sample ``(batch,)``, or of each time
    step ``(batch, time)`` for a sequence output, in the model's float dtype, or None (all 1):
    it weighs the loss and the weighted metrics (:mod:`cgru.sample_weights`).
    """

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None = None
    sample_weight: np.ndarray | None = None


def _take(a: Any, idx: Any) -> Any:
    return None if a is None else a[idx]


def empty_like(batch: Batch) -> Batch:
    """``batch`` with no samples: every array of it cut to length 0 (its other axes kept).
    What a process whose data ran out runs while others train on theirs
    (:mod:`cgru.distributed`): its loss, gradients and metric states add nothing."""
    return Batch(*(None if part is None else part[:0] for part in batch))


class ArrayBatches:
    """Batches of ``batch_size`` samples of checked arrays (the last batch may be smaller).

    ``rng``: reshuffle the samples at the start of every pass with this generator; None keeps
    their order.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        lengths: np.ndarray | None,
        batch_size: int,
        rng: Any = None,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        self.x, self.y, self.lengths, self.sample_weight = x, y, lengths, sample_weight
        self.batch_size = batch_size
        self.rng = rng
        self.samples = x.shape[0]
        self.steps = math.ceil(self.samples / batch_size)

    @property
    def empty(self) -> Batch:
        """A batch of no samples with the arrays' shapes (:func:`empty_like`)."""
        return empty_like(Batch(self.x, self.y, self.lengths, self.sample_weight))

    def epoch(self, index: int = 0) -> Iterator[Batch]:
        """The batches of one pass over the arrays."""
        order = self.rng.permutation(self.samples) if self.rng is not None else None
        size = self.batch_size
        for step in range(self.steps):
            rows = slice(step * size, (step + 1) * size)
            if order is not None:
                rows = order[rows]
            yield Batch(
                self.x[rows], self.y[rows], _take(self.lengths, rows), _take(self.sample_weight, rows)
            )


def split_samples(arrays: tuple, fraction: float) -> tuple[tuple, tuple]:
    """``(arrays to train on, arrays to validate on)``: the last ``fraction`` of the samples of
    each array (None stays None) held out, taken before any shuffling (Keras's
    ``validation_split``)."""
    n = arrays[0].shape[0]
    split_at = int(math.floor(n * (1.0 - fraction)))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"validation_split={fraction} of {n} samples leaves "
            f"{split_at} for training and {n - split_at} for validation; both must be > 0"
        )
    train = tuple(_take(a, slice(None, split_at)) for a in arrays)
    held_out = tuple(_take(a, slice(split_at, None)) for a in arrays)
    return train, held_out


def split_validation(x: np.ndarray, y: np.ndarray, lengths: Any, fraction: float) -> tuple[tuple, tuple]:
    """:func:`split_samples` of ``(x, y, lengths)``."""
    return split_samples((x, y, lengths), fraction)


def check_arrays(model: Trainee, x: Any, y: Any, lengths: Any, what: str) -> tuple:
    """Check a data set for the compiled model (building it if needed) before any weight
    changes: ``(x, y, lengths, output shape)``, host arrays and checked lengths.

    ``what`` names the caller in messages (``"fit"``, ``"fit (validation_data)"``...).
    """
    x = as_batch_array(x, "x")
    if y is None:
        raise ValueError(f"{what}() needs targets y")
    y = as_numeric_array(y, "y")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"x and y must have the same number of samples: x has {x.shape[0]}, "
            f"y has {y.shape[0] if y.ndim else 'none (a scalar)'}"
        )
    lengths = model._accept_input(x, lengths)
    model.layers[0].check_inputs(x, lengths)
    out_shape = model.compute_output_shape((None, *x.shape[1:]))
    if isinstance(out_shape, list):
        raise ValueError(f"{what}() needs a model with a single output; the last layer returns several")
    check_targets(y, out_shape, model.loss.sparse)
    return x, y, lengths, out_shape


def check_data(
    model: Trainee, x: Any, y: Any, lengths: Any, sample_weight: Any, class_weight: Any, what: str
) -> tuple[Batch, tuple]:
    """:func:`check_arrays` and the sample weights: ``(Batch, output shape)``.

    ``sample_weight`` (given) or ``class_weight`` (a checked ``{class: weight}`` dict, turned into
    sample weights from ``y``) fill ``Batch.sample_weight``; Keras refuses both at once.
    """
    refuse_both(sample_weight, class_weight, what)
    x, y, lengths, out_shape = check_arrays(model, x, y, lengths, what)
    dtype = np.dtype(model.dtype)
    if class_weight is not None:
        sample_weight = class_weight_to_sample_weight(y, class_weight, out_shape, dtype)
    else:
        sample_weight = check_sample_weight(sample_weight, out_shape, x.shape[0], dtype=dtype)
    return Batch(x, y, lengths, sample_weight), out_shape


def check_targets(y: np.ndarray, out_shape: tuple, sparse: bool) -> None:
    """Targets ``y`` (host) fit outputs of ``out_shape``; sparse targets are class ids in range."""
    _losses.check_target_shape(y.shape[1:], out_shape[1:], sparse)
    if sparse and y.size:
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            raise ValueError("sparse targets y must be integer class ids")
        lo, hi = y.min(), y.max()
        if lo < 0 or hi >= out_shape[-1]:
            raise ValueError(
                f"sparse targets y must be class ids in 0..{out_shape[-1] - 1}, got values in {lo}..{hi}"
            )


__all__ = [
    "ArrayBatches",
    "Batch",
    "check_arrays",
    "check_data",
    "check_targets",
    "empty_like",
    "split_samples",
    "split_validation",
]
