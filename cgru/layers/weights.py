"""How weights change while other threads compute with them.

cgru never writes into a :class:`~cgru.layers.Parameter`'s array. ``set_weights``,
``load_weights``, ``Parameter.value = ...``, ``Parameter.assign`` and every optimizer step make
new arrays and :func:`publish` them: one publication replaces any number of arrays at once.

Readers
    A call reads the arrays of all its layers once, at its start (:meth:`Pinned.take`), and
    computes with those: a publication made meanwhile is seen by the next call, never by part of
    this one. ``EPOCH[0]`` is a sequence counter, odd while a publication is in progress;
    :func:`read_values` retries until it has read every array within one even epoch (a
    seqlock), so readers take no lock and never make a publication wait. A model keeps what it
    read until one of its own weights changes: each publication counts itself in the
    :class:`Changes` of the models that :func:`watch` the parameters it changes.
Layers that read their Parameters as they run
    A plugin layer's ``forward`` reads ``param.value`` itself, so its arrays cannot be taken in
    advance. Calls of a stack with such a layer hold :data:`READERS` (shared between calls), and
    a publication waits until no call holds it; a waiting publication holds new calls back.
Writers
    Publications run one at a time. In the main thread a KeyboardInterrupt that arrives during
    one (waits included) is raised once it has completed, so an interrupted ``fit`` stops
    between two steps.
Forks
    A forked child has only the thread that forked. A fork waits while another thread assigns a
    publication's arrays (:func:`before_fork`), so the child has each publication entirely or
    not at all; the child forgets the publications and calls of the parent's other threads
    (:func:`after_fork_in_child`).
"""

from __future__ import annotations

import operator
import signal
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from ..backends.parallel import at_fork

#: Sequence counter of the publications: odd while one is in progress, +2 for each.
EPOCH = [0]

_publishing = threading.Lock()
#: Held while the epoch is odd (a publication's arrays being assigned), and across a fork (see
#: :func:`before_fork`); re-entrant, so that a fork from inside a publication cannot deadlock.
_applying = threading.RLock()


class _Readers:
    """The calls that read Parameters while they run: any number at once, none during a
    publication (which waits for those running and holds new ones back). Re-entrant per thread.

    The counts change under a plain lock, and waits poll, so that a KeyboardInterrupt landing
    anywhere in here can at worst leave one call unguarded, never a publication waiting forever.
    """

    _POLL = 0.05  # seconds between looks at the counts while waiting

    def __init__(self) -> None:
        self._local = threading.local()
        self.reset()

    def reset(self) -> None:
        """Forget every other thread (in a forked child, which has only the thread that forked)."""
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._count = 1 if self.held() else 0
        self._writer = False

    def held(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def __enter__(self) -> _Readers:
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth:
            local.depth = depth + 1
            return self
        try:
            with self._mutex:
                while self._writer:
                    self._cond.wait(self._POLL)
                self._count += 1
                local.depth = 1
        except BaseException:
            if getattr(local, "depth", 0) == 1:  # counted before the exception: uncount
                self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        local = self._local
        if local.depth > 1:
            local.depth -= 1
            return
        with self._mutex:
            self._count -= 1
            local.depth = 0
            if not self._count:
                self._cond.notify_all()

    def exclude(self) -> None:
        """Wait until no call holds the readers' side, and keep new ones out until :meth:`admit`."""
        with self._mutex:
            self._writer = True
            while self._count:
                self._cond.wait(self._POLL)

    def admit(self) -> None:
        with self._mutex:
            self._writer = False
            self._cond.notify_all()


#: Held (shared) by calls of layer stacks whose layers read their Parameters as they run.
READERS = _Readers()


def before_fork() -> None:
    """Before a fork: wait for a publication's assignments in progress to end, and keep new ones
    from starting, so that the child sees each publication entirely or not at all."""
    _applying.acquire()


def after_fork_in_parent() -> None:
    _applying.release()


def after_fork_in_child() -> None:
    """A forked child has only the thread that forked: a publication or a call that another
    thread of the parent was in does not go on in the child, and must not hold it up."""
    global _publishing, _applying
    _publishing = threading.Lock()
    _applying = threading.RLock()
    READERS.reset()
    EPOCH[0] += EPOCH[0] & 1


at_fork(before_fork, after_fork_in_parent, after_fork_in_child)


class Changes:
    """How many publications have changed a weight of one model (see :func:`watch`)."""

    __slots__ = ("count", "__weakref__")

    def __init__(self) -> None:
        self.count = 0


def watch(params: Iterable[Any], changes: Changes) -> None:
    """Count in ``changes`` every later publication that changes one of ``params``."""
    for param in params:
        watchers = tuple(ref for ref in param._watchers if ref() is not None)
        if not any(ref() is changes for ref in watchers):
            watchers += (weakref.ref(changes),)
        param._watchers = watchers


class _InterruptsDeferred:
    """In the main thread, a SIGINT arriving inside the block runs its handler (raising
    KeyboardInterrupt) at the block's end instead of in the middle. Elsewhere, or when SIGINT's
    handler is not a Python function, the block runs as it is (no KeyboardInterrupt can land
    in it from a Python handler then)."""

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):
            return
        self.caught: list = []
        self.previous = previous
        try:
            signal.signal(signal.SIGINT, self._catch)
        except ValueError:  # not the main interpreter
            self.previous = None

    def _catch(self, signum: int, frame: Any) -> None:
        self.caught.append(frame)

    def __exit__(self, *exc: Any) -> None:
        if self.previous is None:
            return
        signal.signal(signal.SIGINT, self.previous)
        if self.caught:
            self.previous(signal.SIGINT, self.caught[0])


def publish(
    updates: Iterable[tuple[Any, Any]],
    commit: Callable[[], None] | None = None,
    expected: Iterable[tuple[Any, Any]] | None = None,
) -> bool:
    """Give Parameters new arrays, all at once: a call sees all of them or none.

    ``updates``: (parameter, new array) pairs; each array must already be checked (the
    parameter's shape, dtype and device, C-contiguous) and must never be written in place
    afterwards. ``commit`` runs inside the same publication: state that changes with the arrays
    (an optimizer's moments and step count). ``expected``: (parameter, array) pairs that must
    still hold; when one does not (another publication replaced it after the new arrays were
    computed from it), nothing changes and False is returned. True once published.
    """
    updates = list(updates)
    if READERS.held():
        raise RuntimeError(
            "weights cannot change from inside a call that reads them (a layer's forward or "
            "backward): change them between calls"
        )
    # Interrupts wait for the whole publication, waits for the lock and for readers included:
    # an exception between taking a lock and the block that releases it would keep it forever.
    with _InterruptsDeferred(), _publishing:
        READERS.exclude()
        try:
            if expected is not None and any(p._value is not v for p, v in expected):
                return False
            with _applying:
                EPOCH[0] += 1
                try:
                    for param, value in updates:
                        param._value = value
                    for param, _ in updates:
                        for ref in param._watchers:
                            changes = ref()
                            if changes is not None:
                                changes.count += 1
                    if commit is not None:
                        commit()
                finally:
                    EPOCH[0] += 1
        finally:
            READERS.admit()
    return True


def read_values(params: Iterable[Any]) -> tuple[int, tuple]:
    """``(epoch, arrays)``: the current arrays of ``params``, all from one moment between
    publications (retried when a publication ran while they were being read)."""
    params = tuple(params)
    while True:
        epoch = EPOCH[0]
        if epoch & 1:
            with _publishing:  # wait for the publication in progress
                pass
            continue
        values = tuple([p._value for p in params])
        if EPOCH[0] == epoch:
            return epoch, values


class Pinned:
    """The weight arrays of a stack of layers, read at one moment, and the layers' computations
    bound to them.

    ``forwards[i](x, training, lengths) -> (y, cache)`` runs layer i on the arrays read here;
    :meth:`infers` gives the lean inference functions ``f(x) -> y`` the same way. A layer that
    cannot be bound (it reads its Parameters as it runs) gets its own ``_forward``/``_infer``,
    and ``guarded`` is True: calls must then hold :data:`READERS` (see :func:`run_pinned`).
    Valid while ``current(ops)``: no publication has changed the weights ``changes`` watches.
    """

    __slots__ = (
        "changes",
        "count",
        "ops",
        "layers",
        "params",
        "values",
        "forwards",
        "guarded",
        "_slices",
        "_infers",
    )

    @classmethod
    def take(cls, layers: list, ops: Any, changes: Changes, previous: Pinned | None = None) -> Pinned:
        """Read the arrays of ``layers`` (on ``ops``) now; ``changes`` must watch their
        parameters. Reuses what ``previous`` bound when they are the same arrays."""
        per_layer = [layer.weights for layer in layers]
        params = tuple(p for ps in per_layer for p in ps)
        count = changes.count  # before the arrays: a publication in between makes this stale
        _, values = read_values(params)
        self = cls.__new__(cls)
        self.changes, self.count, self.ops, self.layers = changes, count, ops, tuple(layers)
        self.params, self.values = params, values
        if (
            previous is not None
            and previous.ops is ops
            and previous.layers == self.layers
            and previous.params == params
            and all(map(operator.is_, previous.values, values))
        ):
            self.forwards, self.guarded = previous.forwards, previous.guarded
            self._slices, self._infers = previous._slices, previous._infers
            return self
        slices, start = [], 0
        for ps in per_layer:
            slices.append(values[start : start + len(ps)])
            start += len(ps)
        forwards, guarded = [], False
        for layer, vals in zip(layers, slices):
            forward = layer._pinned_forward(vals)
            if forward is None:
                forward, guarded = layer._forward, True
            forwards.append(forward)
        self.forwards, self.guarded = tuple(forwards), guarded
        self._slices, self._infers = slices, None
        return self

    def current(self, ops: Any) -> bool:
        """Whether no publication has changed these weights since they were read, on ``ops``."""
        return self.count == self.changes.count and self.ops is ops

    def per_layer(self) -> list[tuple]:
        """``(layer, its weight arrays)`` for each layer, as read here."""
        return list(zip(self.layers, self._slices))

    def infers(self) -> tuple:
        """The layers' lean inference functions ``f(x) -> y``, bound to the arrays read here."""
        infers = self._infers
        if infers is None:
            infers = []
            for layer, vals in zip(self.layers, self._slices):
                infer = layer._pinned_infer(vals)
                infers.append(layer._infer if infer is None else infer)
            infers = self._infers = tuple(infers)
        return infers


def run_pinned(take: Callable[[], Pinned], fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(pinned, *args)`` with ``pinned = take()``, the weights one call runs on from start to
    end. For a guarded stack it is taken again while the call holds :data:`READERS`, so that no
    publication runs until the call ends."""
    pinned = take()
    if not pinned.guarded:
        return fn(pinned, *args)
    with READERS:
        return fn(take(), *args)
