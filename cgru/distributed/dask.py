"""Batch inference over Dask: ``model.predict(x)`` of a ``dask.array.Array`` is a lazy dask array.

::

    import dask.array as da
    from distributed import Client

    client = Client("scheduler:8786")          # or LocalCluster(), a dask-jobqueue cluster...
    x = da.from_zarr("sequences.zarr")         # (samples, time, features), chunked by samples
    y = model.predict(x, batch_size=256)       # lazy: nothing runs yet
    y.to_zarr("forecasts.zarr")                # each chunk predicted on some worker

How it runs:

- ``x`` is split along the batch axis only: each chunk of samples is one task, whose output
  chunk holds the same samples. Chunks along the other axes (time, features) are joined first
  (``x.rechunk``), since a sequence is predicted whole; sizes that are unknown along those
  axes (``nan`` chunks) are refused, unknown batch chunk sizes are fine.
- ``lengths=`` (right-padded sequences) may be a dask array chunked like ``x``'s batch axis
  (other chunkings are rechunked to it) or a NumPy array.
- The model travels once per computation: its save-format bytes (:mod:`cgru.pickling`) are one
  key of the graph, which every task names, not a copy inside each task. The scheduler sends
  that key's data to each worker that needs it once, and each worker process rebuilds the model
  once and keeps it (:mod:`cgru.distributed.model_cache`, keyed by the bytes' SHA-256 digest),
  however many tasks and threads use it.
- ``threads``: each task calls :func:`cgru.set_num_threads` with it on its worker (a worker with
  ``nthreads`` task threads on ``c`` cores: ``threads = c // nthreads``); None leaves each
  worker's own setting.

The model's outputs equal ``model.predict`` of the computed array (each sample is computed the
same way whatever batch it is in). Multi-output models and stateful models (whose results
depend on the order of the calls) are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validation import check_int
from . import model_cache

INSTALL_HINT = (
    'predicting dask arrays needs dask: pip install "dask[array]" distributed (from a cgru checkout: '
    'pip install ".[dask]")'
)


def _import_dask() -> tuple[Any, Any]:
    try:
        import dask
        import dask.array as da
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    return dask, da


def _predict_block(
    x: np.ndarray,
    data: bytes,
    digest: str,
    device: str | None,
    batch_size: int | None,
    threads: int | None,
    lengths: np.ndarray | None = None,
) -> np.ndarray:
    """One chunk's outputs, on the worker's one copy of the model."""
    from ..runtime import set_num_threads

    if threads is not None:
        set_num_threads(threads)
    model = model_cache.model_for(digest, data, device)
    return model.predict(x, batch_size=batch_size, lengths=lengths)


def _check_x(da: Any, x: Any) -> Any:
    if not isinstance(x, da.Array):
        raise TypeError(f"x must be a dask array here, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"x must have a batch axis and at least one more, got shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must be numeric, got dtype {x.dtype}")
    if any(np.isnan(size) for sizes in x.chunks[1:] for size in sizes):
        raise ValueError(
            f"x has chunks of unknown size along its non-batch axes (shape {x.shape}): call "
            "x.compute_chunk_sizes() first, or rechunk it"
        )
    if any(len(sizes) > 1 for sizes in x.chunks[1:]):
        x = x.rechunk({axis: -1 for axis in range(1, x.ndim)})  # a sequence is predicted whole
    return x


def _check_lengths(da: Any, lengths: Any, x: Any) -> Any:
    """``lengths`` as a dask array chunked like ``x``'s batch axis."""
    batch_chunks = x.chunks[0]
    known = not any(np.isnan(size) for size in batch_chunks)
    if not isinstance(lengths, da.Array):
        lengths = np.asarray(lengths)
        if lengths.ndim != 1 or (known and lengths.shape[0] != x.shape[0]):
            raise ValueError(
                f"lengths must have one entry per sequence: shape ({x.shape[0]},), got {lengths.shape}"
            )
        if not known:
            raise ValueError(
                "x has chunks of unknown size along its batch axis, so NumPy lengths cannot be "
                "split like it: pass lengths as a dask array chunked like x's batch axis"
            )
        return da.from_array(lengths, chunks=(batch_chunks,))
    if lengths.ndim != 1:
        raise ValueError(f"lengths must have one entry per sequence, got shape {lengths.shape}")
    if lengths.chunks[0] == batch_chunks:
        return lengths
    if not known or any(np.isnan(size) for size in lengths.chunks[0]):
        raise ValueError(
            f"lengths must be chunked like x's batch axis ({batch_chunks}), got {lengths.chunks[0]}, "
            "and unknown chunk sizes cannot be matched: call compute_chunk_sizes() on both"
        )
    if lengths.shape[0] != x.shape[0]:
        raise ValueError(
            f"lengths must have one entry per sequence: shape ({x.shape[0]},), got {lengths.shape}"
        )
    return lengths.rechunk((batch_chunks,))


def predict(
    model: Any, x: Any, batch_size: int | None = None, lengths: Any = None, threads: int | None = None
) -> Any:
    """The model's outputs for the dask array ``x`` as a lazy dask array, chunked like ``x``'s
    batch axis (see the module documentation). ``batch_size``: samples per ``predict`` batch
    inside a task (default: the whole chunk)."""
    dask, da = _import_dask()
    from ..pickling import model_bytes

    x = _check_x(da, x)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", 1)
    if threads is not None:
        threads = check_int(threads, "threads", 1)
    if any(layer.stateful_layers() for layer in model.layers):
        raise ValueError(
            "a model with stateful layers cannot predict a dask array: its results depend on the "
            "order of the calls, which the chunks do not have"
        )
    # an empty batch builds the model if needed, checks x's shape and gives the output's
    empty = np.zeros((0, *x.shape[1:]), dtype=x.dtype)
    meta = model.predict(empty, lengths=None if lengths is None else np.zeros(0, np.int64))
    if isinstance(meta, list):
        raise ValueError("predicting a dask array needs a model with a single output")
    if lengths is not None:
        lengths = _check_lengths(da, lengths, x)
    data = model_bytes(model)
    digest = model_cache.digest_of(data)
    shipped = dask.delayed(data, name=f"cgru-model-{digest}", pure=True)
    out_index = ("batch", *(f"out{axis}" for axis in range(1, meta.ndim)))
    in_index = ("batch", *(f"in{axis}" for axis in range(1, x.ndim)))
    extra = [] if lengths is None else [lengths, ("batch",)]
    name = "cgru-predict-" + dask.base.tokenize(x.name, digest, batch_size, threads,
                                                None if lengths is None else lengths.name)
    return da.blockwise(
        _predict_block, out_index,
        x, in_index,
        shipped, None,
        digest, None,
        model._device, None,
        batch_size, None,
        threads, None,
        *extra,
        new_axes={f"out{axis}": meta.shape[axis] for axis in range(1, meta.ndim)},
        concatenate=True,
        dtype=meta.dtype,
        meta=meta,
        name=name,
    )


__all__ = ["INSTALL_HINT", "predict"]
