"""How the compiled backend uses threads: the one home of cgru's thread policy in Python.

The thread count
    ``set_num_threads`` / ``get_num_threads`` / ``num_threads`` (re-exported by ``cgru`` and
    ``cgru.runtime``): how many pieces one op may be spread over; by default the cores this
    process may run on (``available_cores``).
Pieces
    The engine calls its BLAS single-threaded: on the small per-step products of a recurrence, a
    multi-threaded BLAS spends more on waking and synchronising its threads than it saves, and
    its idle threads spin on the cores the next step needs. cgru parallelises at a coarser grain
    instead: the rows of a batch are independent sequences, and the two directions of a
    Bidirectional layer are independent recurrences, so each piece runs whole on its own core
    with no synchronisation until it ends (``pieces``, ``row_bounds``, ``run_all``). Work started
    from inside a piece never splits again, so pieces never wait on each other.
The unit split
    A single long sequence has no rows to share out: its units are shared instead by the calling
    thread and the engine's own helper thread (``src/cgru/helper.c``, which waits spinning
    between calls), which meet every step (``split_pays``, ``unit_split``). It starts only while
    no other caller is on the cores, since a third thread there would stall both halves.
Callers and running calls: two counts, for two kinds of caller
    ``CALLERS`` has one entry per thread inside a forward or backward op of the compiled
    backend (``counted``), from its first check to its last piece, between engine calls too. The
    engine counts, in C, the calls running in it (``engine.calls_running()``): among them the
    one-step streaming calls, which never pass through an op here (their whole call costs about
    a microsecond, which a Python-level count would lengthen measurably), and the calls of
    anyone using the engine's classes directly. The unit split needs both to be idle
    (``others_running``); the engine's own check, made as the pair starts, reads its count.
The fork hook
    A process forked from one that has used these threads (a prefork server's workers,
    ``multiprocessing`` with the fork start method) has only the thread that forked. The single
    ``os.register_at_fork`` hook of the package, here, runs every reset registered with
    ``at_fork_in_child`` (this module's pool and callers, the engine's helper thread and running
    calls, the weight publication locks of ``cgru.layers.weights``), so that the child starts
    afresh and creates what it needs again on first use. A module whose state must not be
    caught half-changed by a fork also registers, with ``at_fork``, what to hold around it
    (a publication of new weights is either wholly in the child or not at all).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .base import forward_flops

# Below this much matrix-product work, handing a piece to another thread costs more than it
# saves (see bench/NOTES.md).
MIN_PARALLEL_FLOPS = 2e6

# Per-step recurrent work (2 * H * 3H) below which the two threads' per-step exchange of
# their new states costs more than sharing the units saves (see bench/NOTES.md): measured on
# 2-core x86 machines, 48 units were slower split and 64 faster.
MIN_UNIT_SPLIT_STEP_FLOPS = 2e4

_threads: int | None = None
_local = threading.local()
_pool = None  # the worker ThreadPoolExecutor, made on first use
_pool_lock = threading.Lock()

#: One entry per thread inside a forward or backward op of the compiled backend now (list
#: appends and pops are atomic); see the module's docstring.
CALLERS: list[None] = []

_fork_resets: list[Callable[[], None]] = []
_fork_holds: list[tuple[Callable[[], None], Callable[[], None]]] = []


# -- the fork hook ----------------------------------------------------------------------------

def at_fork_in_child(reset: Callable[[], None]) -> None:
    """Run ``reset()`` in every child process forked from now on, before any other Python code
    runs there: forget what the parent's other threads held (locks, counts, threads)."""
    _fork_resets.append(reset)


def at_fork(before: Callable[[], None], after_in_parent: Callable[[], None],
            after_in_child: Callable[[], None]) -> None:
    """Run ``before()`` just before every fork (e.g. take a lock, so that no other thread is
    half-way through changing what it guards), ``after_in_parent()`` after it in the parent
    (release it) and ``after_in_child()`` in the child (as :func:`at_fork_in_child`)."""
    _fork_holds.append((before, after_in_parent))
    at_fork_in_child(after_in_child)


def _before_fork() -> None:
    for before, _ in _fork_holds:
        before()


def _after_fork_in_parent() -> None:
    for _, after_in_parent in reversed(_fork_holds):
        after_in_parent()


def _after_fork_in_child() -> None:
    for reset in _fork_resets:
        reset()


def _forget_other_threads() -> None:
    """The parent's pool threads and the calls they were running do not exist in the child (and
    the pool's lock may have been held by one of them)."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()
    CALLERS.clear()


at_fork_in_child(_forget_other_threads)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


# -- the thread count -------------------------------------------------------------------------

def available_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def get_num_threads() -> int:
    """Threads the compiled backend spreads one op over (default: the cores available)."""
    return _threads if _threads is not None else available_cores()


def set_num_threads(n: int) -> None:
    """Let the compiled backend spread one op over ``n`` threads (n >= 1).

    The engine's BLAS itself stays single-threaded: cgru splits a batch's independent sequences,
    and the two directions of a Bidirectional layer, across the threads instead (see
    ``cgru.backends.parallel``).
    """
    global _threads
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _threads = n


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Context manager: use ``n`` threads inside the block, then restore the previous count."""
    global _threads
    previous = _threads
    set_num_threads(n)
    try:
        yield
    finally:
        _threads = previous


# -- pieces -----------------------------------------------------------------------------------

def _workers():
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor  # here: `import cgru` stays light

            _pool = ThreadPoolExecutor(max_workers=max(os.cpu_count() or 2, 2),
                                       thread_name_prefix="cgru-worker")
        return _pool


def pieces(count: int, flops: float) -> int:
    """How many pieces to cut ``count`` independent items (e.g. batch rows) into, given the
    work ``flops`` of all of them: 1 when inside a piece already, single-threaded, or too small."""
    if flops < MIN_PARALLEL_FLOPS or count < 2 or getattr(_local, "inside", False):
        return 1
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


def counted(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` with this thread counted in CALLERS while it runs (raising or not)."""
    CALLERS.append(None)
    try:
        return call(*args)
    finally:
        CALLERS.pop()


# -- the unit split ---------------------------------------------------------------------------

def others_running(engine) -> bool:
    """Whether another caller is inside an op (this one counted in CALLERS) or another call is
    running in the engine."""
    return len(CALLERS) > 1 or engine.calls_running() > 0


def split_pays(engine, x, units: int) -> bool:
    """Whether a single float32 sequence x (1, T, I) of a GRU of ``units`` should share its
    units with the helper thread now (see unit_split)."""
    if not engine.UNIT_PAIR or x.shape[0] != 1 or x.dtype != np.float32:
        return False
    if others_running(engine):
        return False
    if not split_may_pay(units) or available_cores() < 2:
        return False  # too small, or the two halves would spin against each other on one core
    # not when one thread is asked for, or already inside a piece of a parallel op
    return pieces(units // engine.UNIT_SPLIT_GRAIN, forward_flops(*x.shape, units)) >= 2


def split_may_pay(units: int) -> bool:
    """Whether the unit split of a GRU of ``units`` can ever pay (prepared reduced-precision
    weights pack each half for it only then)."""
    return 6.0 * units * units >= MIN_UNIT_SPLIT_STEP_FLOPS


def unit_split(engine, x, kernel, recurrent_kernel, input_bias, recurrent_bias, h0, lengths, reverse,
               activation, recurrent_activation):
    """Run a float32 single-sequence inference pass with its units shared by the calling thread
    and the engine's helper thread (reset_after=True, no recurrent mask); returns (y, h_n), or
    None when one thread is as fast, the helper is busy with another call, or other calls are
    on the cores: the halves wait for each other every step, so a third thread stalls both
    (two threads streaming single sequences concurrently get more done one core each)."""
    if not split_pays(engine, x, recurrent_kernel.shape[0]):
        return None
    split = engine.UnitSplitForward(x, kernel, recurrent_kernel, input_bias, recurrent_bias, h0, lengths,
                                    reverse, activation, recurrent_activation, 2)
    if not split.run_pair():
        return None
    return split.y, split.h_n


def forward_plan(batch: int, flops: float, split: Callable[[], Any] | None) -> tuple[Any, list]:
    """How one forward pass runs, decided once for every compiled forward: first ``split()``, a
    single sequence's units shared with the helper thread (it returns None when it declines;
    pass None where the call is not of that kind), else its batch rows cut into ``pieces``.
    Returns (split's result, []) or (None, [(start, stop), ...]): one range for the calling
    thread alone, or several to run at once (``run_all``), each on its own rows."""
    if split is not None:
        done = split()
        if done is not None:
            return done, []
    return None, row_bounds(batch, pieces(batch, flops))
