"""Spreading one op over cgru's worker threads.

The compiled engine calls its BLAS single-threaded: on the small per-step products of a
recurrence, a multi-threaded BLAS spends more on waking and synchronising its threads than it
saves, and its idle threads spin on the cores the next step needs. cgru parallelises at a
coarser grain instead: the rows of a batch are independent sequences, and the two directions of
a Bidirectional layer are independent recurrences, so each piece runs whole on its own core
with no synchronisation until it ends. ``cgru.set_num_threads`` sets how many pieces.

Work started from inside a piece never splits again, so pieces never wait on each other. The one
exception to "no synchronisation" is a single long sequence (``cpu_ops.unit_split``): its two
halves meet every step, so they do not use these threads at all but the calling thread and the
engine's own helper thread (``src/cgru/helper.c``), which waits spinning between calls; and it
starts only while no other thread is inside an op, since a third thread on the cores would
stall both halves.

A process forked from one that has used these threads (a prefork server's workers,
``multiprocessing`` with the fork start method) has only the thread that forked: this module's
fork hook, the only one cgru has, makes the child start afresh, with no worker pool, no helper
thread and no running calls, all of which it creates again on first use.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Below this much matrix-product work, handing a piece to another thread costs more than it
# saves (see bench/NOTES.md).
MIN_PARALLEL_FLOPS = 2e6

_local = threading.local()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()

#: One entry per thread inside a forward or backward op of the compiled backend now (list
#: appends and pops are atomic): a single sequence shares its units with the helper thread only
#: when no other caller is between or inside engine calls (``cpu_ops.unit_split``). One-step
#: streaming calls are not entered here; the engine counts them while they run.
CALLERS: list[None] = []


def _forget_other_threads() -> None:
    """In a forked child: the parent's pool threads, helper thread and the calls they were
    running do not exist here (and the pool's lock may have been held by one of them)."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()
    CALLERS.clear()
    engine = sys.modules.get("cgru._engine")
    if engine is not None:
        engine.forget_threads()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_other_threads)


def _workers() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(os.cpu_count() or 2, 2),
                                       thread_name_prefix="cgru-worker")
        return _pool


def pieces(count: int, flops: float) -> int:
    """How many pieces to cut ``count`` independent items (e.g. batch rows) into, given the
    work ``flops`` of all of them: 1 when inside a piece already, single-threaded, or too small."""
    if getattr(_local, "inside", False) or flops < MIN_PARALLEL_FLOPS or count < 2:
        return 1
    from ..runtime import get_num_threads

    return max(1, min(get_num_threads(), count))


def row_bounds(count: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (start, stop) ranges covering range(count) as evenly as possible."""
    edges = [count * i // parts for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _run_inside(task: Callable[[], Any]) -> Any:
    _local.inside = True
    try:
        return task()
    finally:
        _local.inside = False


def run_all(tasks: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run the tasks at once (the first on the calling thread) and return their results in
    order. An exception in any task is raised after all of them have finished."""
    if len(tasks) == 1:
        return [tasks[0]()]
    futures = [_workers().submit(_run_inside, task) for task in tasks[1:]]
    try:
        first = _run_inside(tasks[0])
    finally:
        rest = [future.result() for future in futures]
    return [first, *rest]
