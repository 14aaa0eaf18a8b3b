"""Children of a process that has used cgru's threads, run by backends/test_fork.py in a fresh
interpreter (so that a hang fails the test, which kills this process group, instead of stopping
the run).

    python fork_scenarios.py START

runs a single sequence (its units shared by the calling thread and the engine's helper thread),
a batch (its rows split over the worker pool) and a Bidirectional layer (both directions at
once) through models with fixed weights, so that this process has its worker pool and helper
thread; then runs the same calls in children started by START: "os.fork", or a multiprocessing
start method ("fork", "forkserver", "spawn", through a two-process Pool). Exits 0 when every
child gave exactly this process's outputs by the same paths (unit split or not, how many pieces
per parallel run), else 1 with the reason on stderr.
"""

import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import time
import traceback

import numpy as np

import cgru
from cgru.backends import cpu_ops

CHILD_TIMEOUT_S = 60

# Which paths the calls took: (name, detail) per unit_split or run_all call.
PATHS: list[tuple[str, object]] = []
_unit_split, _run_all = cpu_ops.unit_split, cpu_ops.run_all


def _recording_unit_split(*args):
    done = _unit_split(*args)
    PATHS.append(("unit_split", done is not None))
    return done


def _recording_run_all(tasks):
    PATHS.append(("run_all", len(tasks)))
    return _run_all(tasks)


cpu_ops.unit_split, cpu_ops.run_all = _recording_unit_split, _recording_run_all

FEATURES = 8
UNI = cgru.Sequential([cgru.layers.GRU(64, return_sequences=True, seed=1, input_shape=(None, FEATURES))])
BI = cgru.Sequential([cgru.layers.Bidirectional(cgru.layers.GRU(32, return_sequences=True, seed=2),
                                                input_shape=(None, FEATURES))])
_rng = np.random.default_rng(3)
SINGLE = _rng.standard_normal((1, 300, FEATURES)).astype(np.float32)
BATCH = _rng.standard_normal((64, 50, FEATURES)).astype(np.float32)
PAIR = _rng.standard_normal((16, 40, FEATURES)).astype(np.float32)


def run_calls(_=None):
    """The outputs of the three calls and the paths they took."""
    PATHS.clear()
    outputs = [UNI.predict(SINGLE, verbose=0), UNI.predict(BATCH, batch_size=64, verbose=0),
               BI.predict(PAIR, verbose=0)]
    return outputs, list(PATHS)


def in_forked_child():
    """run_calls() in a child made by os.fork(), with a deadline."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "results.pickle")
        pid = os.fork()
        if pid == 0:
            try:
                with open(path, "wb") as out:
                    pickle.dump(run_calls(), out)
                os._exit(0)
            except BaseException:  # noqa: BLE001 - reported, then this child ends
                traceback.print_exc()
            finally:
                os._exit(1)
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                sys.exit("the os.fork() child hung")
            time.sleep(0.05)
        if os.waitstatus_to_exitcode(done[1]) != 0:
            sys.exit(f"the os.fork() child failed: exit status {os.waitstatus_to_exitcode(done[1])}")
        with open(path, "rb") as results:
            return [pickle.load(results)]


def in_pool(method):
    """run_calls() in each worker of a two-process multiprocessing Pool, with a deadline."""
    pool = multiprocessing.get_context(method).Pool(2)
    try:
        return pool.map_async(run_calls, range(2)).get(timeout=CHILD_TIMEOUT_S)
    except multiprocessing.TimeoutError:
        sys.exit(f"a {method!r} Pool worker hung")
    finally:
        pool.terminate()
        pool.join()


def main(start):
    expected, paths = run_calls()
    if ("unit_split", True) not in paths or not any(name == "run_all" and n > 1 for name, n in paths):
        sys.exit(f"the parent used neither the helper thread nor the worker pool: {paths}")
    children = in_forked_child() if start == "os.fork" else in_pool(start)
    for outputs, child_paths in children:
        if child_paths != paths:
            sys.exit(f"a child took other paths: {child_paths}, the parent {paths}")
        for name, got, want in zip(("single", "batch", "bidirectional"), outputs, expected):
            if not np.array_equal(got, want):
                sys.exit(f"a child's {name} output differs from the parent's by "
                         f"{np.abs(got - want).max()}")
    print(f"{start}: {len(children)} children agree with the parent; paths {paths}")


if __name__ == "__main__":
    main(sys.argv[1])
