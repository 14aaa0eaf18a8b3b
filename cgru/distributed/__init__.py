"""Beyond one process: data-parallel training over MPI, batch inference over Dask.

- :class:`MPIStrategy` (:mod:`.mpi`): ``model.fit(x_shard, y_shard, ..., strategy=MPIStrategy())``
  under ``mpiexec -n N``: synchronous data-parallel training, exactly equal to one process
  training on the rank-order concatenation of the ranks' batches. :mod:`.strategy` is the
  strategy over any collectives, :mod:`.combine` its math, :mod:`.fused` the one buffer each
  step sends, :mod:`.nccl` the same on GPUs through NCCL (:func:`use_local_gpu`).
- :func:`predict` (:mod:`.dask`): ``model.predict(x)`` of a ``dask.array.Array`` chunked along
  the batch axis is a lazy dask array; the model travels to the workers once per computation,
  and each worker keeps one copy (:mod:`.model_cache`).
- Models pickle through their save format (:mod:`cgru.pickling`), which Dask, Ray, Spark,
  joblib and ``multiprocessing`` rely on.

``import cgru.distributed`` imports none of mpi4py, dask or cupy: they load when a strategy is
made or a dask array is predicted. Guide: docs/distributed.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MPIStrategy": "mpi",
    "DataParallelStrategy": "strategy",
    "use_local_gpu": "nccl",
    "predict": "dask",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["DataParallelStrategy", "MPIStrategy", "predict", "use_local_gpu"]
