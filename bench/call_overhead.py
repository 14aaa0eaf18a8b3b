#!/usr/bin/env python
"""Per-call time of the model-level calls whose cost is mostly Python: the stateful one-step
``model(x)`` call (the streaming row of compare.py) of the float32 model and of the model
quantized to bfloat16 and to int8, ``model(x)`` of a small stack and ``predict`` of a small
batch; optionally against another cgru checkout in the same process. PyTorch's one step of
the same GRU (``nn.GRU(x, h)`` under ``no_grad``, the state fed back) is timed beside them
when torch is installed (``--no-torch``: not).

    python bench/call_overhead.py                             # the cgru on the path
    python bench/call_overhead.py --baseline /path/to/checkout  # side by side (built in place)

With ``--baseline`` the other checkout's package is imported a second time under another name,
and blocks of ``--calls`` back-to-back calls alternate between the two builds, ``--blocks``
blocks each, so that a machine whose speed drifts (other processes, clock phases) slows both
alike. The report gives, per call, the fastest and the median block in microseconds per call.
``--clock cpu`` times blocks by the calling thread's CPU time instead of the wall clock, which
leaves out the time the thread waits for a core on a loaded machine (the calls themselves run
on the calling thread only: one-step calls and these small shapes never use a second thread).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time

import numpy as np


def import_checkout(path: str, name: str):
    """The ``cgru`` package of the checkout at ``path``, imported as module ``name``."""
    package = os.path.join(os.path.abspath(path), "cgru")
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(package, "__init__.py"), submodule_search_locations=[package]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


STREAM = "stateful one-step model(x), 1x1x32 -> 64"
TORCH_STREAM = "torch nn.GRU one step, 1x1x32 -> 64"


def make_cases(cgru) -> dict:
    """name -> a no-argument call, on models built with ``cgru`` (the quantized streaming
    cases where this cgru has ``Sequential.quantize``)."""
    rng = np.random.default_rng(0)
    GRU, Dense, Sequential = cgru.GRU, cgru.Dense, cgru.Sequential
    x1 = rng.standard_normal((1, 1, 32)).astype(np.float32)
    cases = {}
    for mode in ("float32", "bfloat16", "int8"):
        stream = Sequential([GRU(64, stateful=True, input_shape=(1, 32), seed=1)])
        if mode != "float32":
            if not hasattr(stream, "quantize"):
                continue
            stream.quantize(mode)
        cases[STREAM + ("" if mode == "float32" else f", {mode}")] = lambda s=stream: s(x1)
    stack = Sequential(
        [GRU(32, return_sequences=True, input_shape=(4, 16), seed=1), GRU(32, seed=2), Dense(8, seed=3)]
    )
    x4 = rng.standard_normal((2, 4, 16)).astype(np.float32)
    cases["GRU-GRU-Dense model(x), 2x4x16"] = lambda: stack(x4)
    cases["GRU-GRU-Dense predict, 2x4x16"] = lambda: stack.predict(x4)
    return cases


def torch_step():
    """PyTorch's one step of a GRU(64) on 32 features (batch 1, no_grad, the state fed back
    per call, one thread as cgru's one-step call uses), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)  # this process times inference only
    gru = torch.nn.GRU(32, 64, batch_first=True)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 1, 32)).astype(np.float32))
    state = [torch.zeros(1, 1, 64)]

    def call():
        _, state[0] = gru(x, state[0])

    return call


def block(call, calls: int, clock=time.perf_counter) -> float:
    start = clock()
    for _ in range(calls):
        call()
    return (clock() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", help="another cgru checkout (built in place) to time alongside")
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--no-torch", action="store_true", help="leave out PyTorch's one step")
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    import cgru

    builds = {"this": make_cases(cgru)}
    if args.baseline:
        builds["baseline"] = make_cases(import_checkout(args.baseline, "cgru_baseline"))
    names = list(builds["this"])
    step = None if args.no_torch else torch_step()
    if step is not None:  # one more row, timed with every build's column (the same call)
        for cases in builds.values():
            cases[TORCH_STREAM] = step
        names.insert(names.index(STREAM), TORCH_STREAM)
    print(f"cgru: {os.path.dirname(cgru.__file__)}; baseline: {args.baseline}; clock: {args.clock}")
    print(f"{'us per call: fastest block / median block':<44}" + "".join(f"{b:>22}" for b in builds))
    for name in names:
        here = [b for b in builds if name in builds[b]]  # a baseline without quantize lacks some
        times: dict = {b: [] for b in here}
        for b in here:
            block(builds[b][name], args.calls)  # warm-up
        for i in range(args.blocks):
            order = here if i % 2 == 0 else here[::-1]
            for b in order:
                times[b].append(block(builds[b][name], args.calls, clock))
        cells = "".join(f"{min(t):>13.2f} / {statistics.median(t):6.2f}" for t in times.values())
        print(f"{name:<44}{cells}")


if __name__ == "__main__":
    main()
