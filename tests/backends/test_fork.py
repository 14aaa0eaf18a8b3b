"""A process forked from one that has used cgru's threads (the worker pool, the engine's helper
thread) computes as a fresh one does: prefork servers and multiprocessing's fork start method.

Every child runs under a deadline, so that a regression fails instead of hanging the run."""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from isolated import this_cgru_env
from paths import TESTS
from test_parallel import reference_forward, requires_unit_pair, run_pair, single_sequence

import cgru
from cgru.backends import compiled_available, parallel

pytestmark = [
    pytest.mark.skipif(not compiled_available(), reason="compiled engine not built"),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork"),
]

SCENARIOS = TESTS / "fork_scenarios.py"
TIMEOUT_S = 150


def _two_cores() -> bool:
    from cgru.runtime import available_cores

    return available_cores() >= 2


@requires_unit_pair
@pytest.mark.skipif(not _two_cores(), reason="the helper thread and the pool need two cores")
@pytest.mark.parametrize("start", ["os.fork", "fork", "forkserver", "spawn"])
def test_children_compute_as_the_parent_after_its_threads_ran(start):
    """After a single sequence (helper thread), a batch (worker pool) and a Bidirectional layer
    (both directions at once) in the parent, children made by os.fork() and multiprocessing
    Pools of each start method give exactly the parent's outputs by the same paths."""
    if start != "os.fork" and start not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {start!r} start method here")
    process = subprocess.Popen([sys.executable, str(SCENARIOS), start], env=this_cgru_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the children too
        process.communicate()
        pytest.fail(f"{start}: the scenario hung for {TIMEOUT_S} s")
    assert process.returncode == 0, f"{start}: {err}\n{out}"
    assert "agree with the parent" in out


def _state_in_child(queue, problem, expected):
    """Reports the child's running calls and callers, whether a single sequence may share its
    units there, and whether a batched forward (which takes the pool's lock) is right."""
    try:
        from cgru import _engine
        from cgru.backends import cpu_ops

        x, kernel, recurrent, bias, h0 = problem
        counts = (_engine.calls_running(), len(parallel.CALLERS))
        with cgru.num_threads(2):
            split = cpu_ops.unit_split(_engine, x[:1], kernel, recurrent, bias[0], bias[1], h0[:1], None,
                                       False, "tanh", "sigmoid")
            y, _, _ = cgru.get_ops("cpu").gru_forward(x, kernel, recurrent, bias, h0=h0)
        queue.put((*counts, split is not None, bool(np.array_equal(y, expected))))
    except BaseException as exc:  # noqa: BLE001 - the parent reports it
        queue.put(repr(exc))


@requires_unit_pair
def test_a_child_forked_while_another_thread_is_inside_cgru_starts_afresh():
    """When the parent forks, another of its threads is inside an op, counts as a running
    engine call and holds the worker pool's lock. None of that exists in the child: its counts
    start at 0, so it may share a sequence's units, and its batched calls do not wait for a lock
    that no thread of the child will release."""
    from cgru import _engine

    rng = np.random.default_rng(21)
    x, kernel, recurrent, bias, _ = single_sequence(rng, 200, 6, 64)  # big enough to share
    x = np.repeat(x, 16, axis=0) + rng.standard_normal((16, 1, 1)).astype(np.float32)
    h0 = rng.standard_normal((16, 64)).astype(np.float32)
    with cgru.num_threads(2):
        expected, _, _ = cgru.get_ops("cpu").gru_forward(x, kernel, recurrent, bias, h0=h0)
    inside, leave = threading.Event(), threading.Event()

    def busy_thread():
        with _engine.running_call(), parallel._pool_lock:
            parallel.CALLERS.append(None)
            try:
                inside.set()
                leave.wait(TIMEOUT_S)
            finally:
                parallel.CALLERS.pop()

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    thread = threading.Thread(target=busy_thread)
    thread.start()
    try:
        assert inside.wait(60)
        problem = (x, kernel, recurrent, bias, h0)
        child = context.Process(target=_state_in_child, args=(queue, problem, expected))
        child.start()
        child.join(timeout=TIMEOUT_S)
    finally:
        leave.set()
        thread.join()
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung")
    assert queue.get(timeout=10) == (0, 0, _two_cores(), True)
    assert _engine.calls_running() == 0 and parallel.CALLERS == []


def _pair_in_child(queue):
    try:
        rng = np.random.default_rng(8)
        problem = single_sequence(rng, 20, 4, 48)
        y, h = run_pair(*problem)
        queue.put(float(np.abs(y - reference_forward(*problem)[0]).max()))
    except BaseException as exc:  # noqa: BLE001 - the parent reports it
        queue.put(repr(exc))


@requires_unit_pair
def test_unit_pair_works_in_a_forked_child():
    """A forked child has no helper thread: the engine starts a new one there."""
    rng = np.random.default_rng(7)
    run_pair(*single_sequence(rng, 5, 3, 48))  # the parent's helper exists before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_pair_in_child, args=(queue,))
    child.start()
    child.join(timeout=TIMEOUT_S)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung")
    result = queue.get(timeout=10)
    assert isinstance(result, float) and result < 2e-6, result
