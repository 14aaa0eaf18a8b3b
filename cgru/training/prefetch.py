"""A :class:`~cgru.utils.PyDataset`'s batches prepared ahead, in order, by a pool of threads or
processes (Keras's ``OrderedEnqueuer``): while the model computes on batch ``i``, the pool
makes the next ``max_queue_size`` batches.

A process pool starts with the multiprocessing start method of the platform; the data set goes
to each worker once, when the pool starts (by fork, or pickled under spawn/forkserver), so a
pool lives for one pass and sees what ``on_epoch_end`` changed before it.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

_WORKER_DATASET: Any = None


def _install(dataset: Any) -> None:
    """A worker process's initializer: the data set its tasks index."""
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _item(index: int) -> Any:
    return _WORKER_DATASET[index]


def wants_pool(dataset: Any) -> bool:
    """Whether ``dataset``'s settings ask for prefetching (Keras's rule: more than one worker,
    or worker processes)."""
    workers = dataset.workers
    return workers > 1 or (workers > 0 and bool(dataset.use_multiprocessing))


def _executor(dataset: Any) -> tuple[Any, Any]:
    """A pool for ``dataset``'s settings and the function its tasks call with an index
    (multiprocessing loads only when a data set asks for processes)."""
    workers = max(1, dataset.workers)
    if dataset.use_multiprocessing:
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(workers, initializer=_install, initargs=(dataset,)), _item
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(workers, thread_name_prefix="cgru-data"), dataset.__getitem__


def prefetched(dataset: Any, indices: Iterable[int]) -> Iterator[Any]:
    """``dataset[i]`` for each of ``indices`` in order, at most ``dataset.max_queue_size`` of
    them being made ahead by ``dataset.workers`` threads or processes. Closing the iterator (or
    an error in a batch) cancels what is queued and stops the pool."""
    executor, get = _executor(dataset)
    pending: deque = deque()
    indices = iter(indices)
    try:
        for index in itertools.islice(indices, max(1, dataset.max_queue_size)):
            pending.append(executor.submit(get, index))
        while pending:
            batch = pending.popleft().result()
            for index in itertools.islice(indices, 1):
                pending.append(executor.submit(get, index))
            yield batch
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


__all__ = ["prefetched", "wants_pool"]
