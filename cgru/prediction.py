"""How ``Sequential.predict`` cuts its input: memory-bounded chunks of arrays, or the batches of a
source (generator, PyDataset, iterable).

``predict(x)`` with ``batch_size=None`` runs ``x`` in chunks of rows whose intermediate
activations take about :data:`CHUNK_BYTES` (estimated from every layer's output shape, see
:func:`bytes_per_sample`), never fewer rows than keep the engine's threads on efficient
per-thread products (:func:`min_rows`). Each chunk's output is written into one preallocated
output array, so the peak memory is the input, the output and one chunk's working set, instead
of the whole input's activations at once; a chunk large enough for efficient kernels costs no
measurable time against one call (``bench/predict_memory.py``, ``bench/NOTES.md``).

A model with stateful layers runs its whole batch in one call: each batch row is one stream
whose state the model keeps, and the rows of a call advance together (an explicit
``batch_size`` keeps Keras's meaning, batch after batch continuing the same rows' states).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .layers.base import _shape_needs_no_forward

#: Bytes of intermediate activations a chunk of ``predict`` may take by default.
CHUNK_BYTES = 32 * 2**20
#: Fewest rows per engine thread in a chunk: below about 16 rows a thread's per-step products
#: lose speed (one thread, GRU(128): 1.03x the time of 512 rows at 16 rows, 1.1x at 8, 2.2x at 1;
#: bench/NOTES.md).
ROWS_PER_THREAD = 16

# A GRU's inference keeps, per time step and sample, its input projection for the three gates
# and its output: about four times the output; other layers hold their input and output.
_WORKING_SET_FACTOR = 4


def _elements(shape: Any, time: int) -> int:
    """Elements per sample of an output shape (batch first; an unknown time axis is ``time``)."""
    if isinstance(shape, list):
        return sum(_elements(s, time) for s in shape)
    dims = [time if d is None else d for d in shape[1:]]
    return int(math.prod(dims))


def bytes_per_sample(layers: list, input_shape: tuple, dtype: Any) -> int:
    """Estimated bytes of intermediate activations per sample of an input of ``input_shape``
    (batch first) through ``layers``. A layer whose output shape is known only by running it
    (a plugin layer without ``compute_output_shape``) is not run: its output is taken to be the
    size of its input."""
    time = input_shape[1] if len(input_shape) > 1 else 1
    shape: Any = (None, *input_shape[1:])
    total = _elements(shape, time)
    for layer in layers:
        if _shape_needs_no_forward(layer):
            shape = layer.compute_output_shape(shape)
        total += _WORKING_SET_FACTOR * _elements(shape, time)
        if isinstance(shape, list):
            shape = shape[0]
    return max(1, total * np.dtype(dtype).itemsize)


def min_rows() -> int:
    """The fewest rows of a chunk: enough for every engine thread to work on efficiently."""
    from .runtime import get_num_threads

    return ROWS_PER_THREAD * max(1, get_num_threads())


def chunk_rows(layers: list, x_shape: tuple, dtype: Any, stateful: bool) -> int:
    """Rows per chunk of ``predict(batch_size=None)`` for an input of ``x_shape``."""
    n = x_shape[0]
    if stateful or n == 0:
        return max(n, 1)
    rows = max(min_rows(), CHUNK_BYTES // bytes_per_sample(layers, x_shape, dtype))
    return min(n, rows)


def to_host_outputs(ops: Any, y: Any) -> Any:
    """``y`` (a backend array, or a list of them) as host arrays."""
    return [ops.to_numpy(a) for a in y] if isinstance(y, list) else ops.to_numpy(y)


def run_chunks(run: Any, ops: Any, x: Any, lengths: Any, size: int, bar: Any = None) -> Any:
    """``run(x_chunk, lengths_chunk)`` on the rows of ``x`` in chunks of ``size``, the outputs
    (host arrays, or lists of them) written into one output allocated after the first chunk."""
    n = x.shape[0]
    if size >= n:
        y = to_host_outputs(ops, run(x, lengths))
        if bar is not None:
            bar.update(1)
        return y
    out: Any = None
    for step, start in enumerate(range(0, n, size)):
        rows = slice(start, start + size)
        y = to_host_outputs(ops, run(x[rows], None if lengths is None else lengths[rows]))
        parts = y if isinstance(y, list) else [y]
        if out is None:
            out = [np.empty((n, *p.shape[1:]), dtype=p.dtype) for p in parts]
        for target, part in zip(out, parts):
            target[rows] = part
        if bar is not None:
            bar.update(step + 1)
    return out if isinstance(y, list) else out[0]


def concatenate_outputs(outputs: list) -> Any:
    """The outputs of a source's batches joined along the batch axis."""
    if not outputs:
        raise ValueError("predict() got no batches from its data")
    if isinstance(outputs[0], list):
        return [concatenate_outputs(list(parts)) for parts in zip(*outputs)]
    first = outputs[0].shape[1:]
    for index, out in enumerate(outputs):
        if out.shape[1:] != first:
            raise ValueError(
                f"predict(): the output of batch {index} has shape {out.shape} but the first "
                f"batch's has {outputs[0].shape}; outputs of batches of different time lengths "
                "cannot be joined: pad them to one length and pass lengths"
            )
    return np.concatenate(outputs)


__all__ = [
    "CHUNK_BYTES",
    "ROWS_PER_THREAD",
    "bytes_per_sample",
    "chunk_rows",
    "concatenate_outputs",
    "min_rows",
    "run_chunks",
]
