#!/usr/bin/env python
"""compare.py's cgru rows for this cgru and another checkout, side by side in one process: what a
change to the engine did to its speed.

    python bench/ab.py --baseline /path/to/checkout             # every shape, 1 and 2 threads
    python bench/ab.py --baseline ../main --shapes stream-mid,batch-mid --threads 1 --clock cpu

The other checkout (built in place) is imported a second time under another name, as
call_overhead.py does, and the rows run through compare.py's own runners (its shapes, data and
cgru calls). Blocks of calls alternate between the two builds, ``--blocks`` each per row, so that
a machine whose speed drifts (other processes, clock phases) slows both alike; the report gives
each build's fastest and median block and their ratio. ``--clock cpu`` times blocks by the
calling thread's CPU time, which leaves out the waits for a core on a loaded machine: meaningful
for one thread only (a second thread's work is not counted). Both builds' results are checked
against each other before timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

import numpy as np  # noqa: E402
from _common import PROBLEMS, STEP, compare, make_data  # noqa: E402
from _impls import CgruImpl  # noqa: E402
from call_overhead import import_checkout  # noqa: E402

ROW_TOL = 1e-4  # the two builds' results, as compare.py's tolerance against the reference


def block(call, calls: int, clock) -> float:
    start = clock()
    for _ in range(calls):
        call()
    return (clock() - start) / calls


def time_row(impls: dict, runners: dict, threads: int, args, clock) -> dict:
    """Seconds per call of each build's runner, one entry per block, builds alternating."""
    def run(build, calls):
        impls[build].set_threads(threads)
        with runners[build].context():
            return block(runners[build].call, calls, clock)

    per_block = {}
    for build in runners:  # warm-up, and how many calls make a block
        t0, calls = time.perf_counter(), 0
        while calls < 3 or time.perf_counter() - t0 < args.block_s:
            run(build, 1)
            calls += 1
        per_block[build] = max(1, round(calls * args.block_s / (time.perf_counter() - t0)))
    times: dict = {build: [] for build in runners}
    for i in range(args.blocks):
        for build in list(runners) if i % 2 == 0 else list(runners)[::-1]:
            times[build].append(run(build, per_block[build]))
    return times


def check_agreement(runners: dict, label: str) -> None:
    results = {build: r.check() for build, r in runners.items()}
    reference = {k: np.asarray(v, np.float64) for k, v in results["baseline"].items()}
    error = compare(results["this"], reference)
    if error > ROW_TOL:
        sys.exit(f"{label}: the builds disagree by {error:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="another cgru checkout, built in place")
    parser.add_argument("--shapes", default=",".join(PROBLEMS), help=f"from {', '.join(PROBLEMS)}")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--blocks", type=int, default=10, help="blocks per build and row")
    parser.add_argument("--block-s", type=float, default=0.05, help="seconds a block lasts, about")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    import cgru

    impls = {"this": CgruImpl(cgru), "baseline": CgruImpl(import_checkout(args.baseline, "cgru_baseline"))}
    print(f"this: {os.path.dirname(cgru.__file__)}; baseline: {args.baseline}; clock: {args.clock}; "
          f"{args.blocks} alternating blocks per build and row")
    print(f"{'row':<32}{'this: fastest / median':>26}{'baseline: fastest / median':>30}{'baseline/this':>15}")
    for threads in (int(t) for t in args.threads.split(",")):
        for name in args.shapes.split(","):
            problem = PROBLEMS[name]
            for mode in problem.modes:
                label = f"{name} {mode} {threads}t"
                data = make_data(problem)
                runners = {}
                for build, impl in impls.items():
                    impl.set_threads(threads)
                    runners[build] = impl.runner(problem, mode, data)
                check_agreement(runners, label)
                times = time_row(impls, runners, threads, args, clock)
                unit, scale = ("us", 1e6) if mode == STEP or min(times["this"]) < 1e-3 else ("ms", 1e3)
                cells = [f"{min(t) * scale:.3g} / {statistics.median(t) * scale:.3g} {unit}"
                         for t in times.values()]
                ratio = min(times["baseline"]) / min(times["this"])
                print(f"{label:<32}{cells[0]:>26}{cells[1]:>30}{ratio:>14.3f}x", flush=True)


if __name__ == "__main__":
    main()
