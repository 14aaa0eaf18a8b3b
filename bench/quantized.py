#!/usr/bin/env python
"""Reduced-precision inference: cgru's bfloat16 and int8 weights against its float32 engine and
OpenVINO's GRUSequence, in float32 and in OpenVINO's default precision (bfloat16 on CPUs with
AVX512-BF16 or AMX), on the shapes of bench/compare.py.

    python bench/quantized.py                        # every shape, 1 and 2 threads
    python bench/quantized.py --threads 2 --shapes stream-mid,batch-mid --repeats 9
    python bench/quantized.py --isa avx2             # cgru's kernels of a lower level
    python bench/quantized.py --json out.json
    python bench/quantized.py --quick                # small shapes, few samples: a smoke test

Every implementation gets the float32 data and weights of bench/compare.py (one per shape).
Each row reports its time (median per call, compare.py's protocol: warm-up, samples in rotating
blocks) and its error against float32: max |y - y64| over the outputs, y64 the NumPy reference
run in float64 on the unquantized weights (the state after 16 steps for the streaming row). A
row past REDUCED_PRECISION_TOL (a wrong gate order or direction gives 1e-1 and more) prints FAIL and the
run exits with status 1; tests/backends/test_quantize.py checks the kernels against the NumPy
reference of their mode. All cgru rows, float32 included, run through prepared directions
(``prepare_gru`` / ``prepare_gru_quantized``), a Bidirectional layer's two directions on two
threads as the layer does. OpenVINO is skipped with a note when it is not installed. Method and
findings: bench/NOTES.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import compare as bench  # noqa: E402  (puts the checkout on the path when cgru is not installed)
import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    CHECK_STEPS,
    INFERENCE,
    PROBLEMS,
    QUICK_PROBLEMS,
    REDUCED_PRECISION_TOL,
    STEP,
    Problem,
    compare,
    cpu_model,
    load_average,
    make_data,
    reference,
)
from _impls import Runner, Skip, openvino_runner  # noqa: E402

import cgru  # noqa: E402

MODES = ("float32", "bfloat16", "int8")

# --------------------------------------------------------------------------------------------
# cgru
# --------------------------------------------------------------------------------------------


def prepare_layers(ops, data, mode: str) -> list:
    """[[prepared direction, ...] per layer] of the problem's weights in ``mode``."""
    layers = []
    for dirs in data.weights:
        prepared = []
        for d, (w, u, b) in enumerate(dirs):
            if mode == "float32":
                prepared.append(ops.prepare_gru(w, u, b, reverse=bool(d)))
            else:
                prepared.append(ops.prepare_gru_quantized(w, u, b, mode=mode, reverse=bool(d)))
        layers.append(prepared)
    return layers


def run_layers(ops, layers, x: np.ndarray) -> np.ndarray:
    """The stacked (bi)directional forward of prepared directions, directions side by side."""
    def direction(p, x):
        return p.forward(x, np.zeros((x.shape[0], p.units), np.float32))

    for dirs in layers:
        if len(dirs) == 1:
            x = direction(dirs[0], x)
        else:
            units = dirs[0].units
            flops = 6.0 * x.shape[0] * x.shape[1] * units * (x.shape[2] + units)
            first, second = dirs
            a, b = ops.run_pair(lambda: direction(first, x), lambda: direction(second, x), flops)  # noqa: B023
            x = np.concatenate([a, b], axis=-1)
    return x


def cgru_runner(problem: Problem, data, mode: str):
    ops = cgru.get_ops("cpu")
    layers = prepare_layers(ops, data, mode)
    if problem.kind == "step":
        (p,), = layers
        h = np.zeros((1, problem.hidden), np.float32)
        x1 = np.ascontiguousarray(data.steps[0])

        def call():
            p.step_state(x1, h)

        def check():
            hh = np.zeros((1, problem.hidden), np.float32)
            for xt in data.steps:
                p.step_state(np.ascontiguousarray(xt), hh)
            return {"h": hh}

        return call, check
    x = data.x
    return (lambda: run_layers(ops, layers, x)), (lambda: {"y": run_layers(ops, layers, x)})


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def bench_shape(problem: Problem, threads: int, settings, repeats_log) -> list[dict]:
    mode = STEP if problem.kind == "step" else INFERENCE
    data = make_data(problem)
    ref = reference(problem, data, mode)
    runners, rows = {}, []
    for m in MODES:
        call, check = cgru_runner(problem, data, m)
        name = f"cgru {m}"
        rows.append({"shape": problem.name, "threads": threads, "impl": name, "error": compare(check(), ref)})
        runners[name] = Runner(call, check)
    for precision in ("f32", "default"):
        name = f"openvino {precision}"
        try:
            call, check, used = openvino_runner(problem, data, precision, threads)
        except Skip as exc:
            repeats_log.append(f"{name}: {exc}")
            continue
        rows.append({"shape": problem.name, "threads": threads, "impl": name, "precision": used,
                     "error": compare(check(), ref)})
        runners[name] = Runner(call, check)
    times = bench.time_row(runners, settings, threads)
    for row in rows:
        row["seconds"], row["samples"], row["calls_per_sample"] = times[row["impl"]]
        row["fail"] = not row["error"] <= REDUCED_PRECISION_TOL
    return rows


def ratio(rows, shape, threads, slower, faster):
    cell = {r["impl"]: r["seconds"] for r in rows if r["shape"] == shape and r["threads"] == threads}
    if slower in cell and faster in cell:
        return cell[slower] / cell[faster]
    return None


def report(rows: list[dict], threads_list, shapes, header: dict) -> str:
    out = ["# cgru reduced-precision benchmark", ""]
    out += [f"- {k}: {v}" for k, v in header.items()]
    out += ["", "| shape | thr | impl | median | error vs float32 | notes |", "|---|---|---|---|---|---|"]
    for r in rows:
        notes = []
        if "precision" in r:
            notes.append(f"runs {r['precision']}")
        if r["fail"]:
            notes.append("FAIL")
        per_call = " per call" if r["shape"] == "streaming" else ""
        out.append(f"| {r['shape']} | {r['threads']} | {r['impl']} | "
                   f"{bench.fmt_time(r['seconds'])}{per_call} | {r['error']:.1e} | {'; '.join(notes)} |")
    out += ["", "## Ratios (same run, same threads; > 1: the second is faster)", "",
            "| shape | thr | openvino default / cgru bfloat16 | cgru float32 / cgru bfloat16 "
            "| cgru float32 / cgru int8 | cgru bfloat16 / cgru int8 |", "|---|---|---|---|---|---|"]
    for t in threads_list:
        for s in shapes:
            cells = [ratio(rows, s, t, "openvino default", "cgru bfloat16"),
                     ratio(rows, s, t, "cgru float32", "cgru bfloat16"),
                     ratio(rows, s, t, "cgru float32", "cgru int8"),
                     ratio(rows, s, t, "cgru bfloat16", "cgru int8")]
            text = ["-" if c is None else f"{c:.2f}x" for c in cells]
            out.append(f"| {s} | {t} | " + " | ".join(text) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--shapes", default=None, help=f"default: all of {list(PROBLEMS)}")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true",
                        help=f"the shapes {list(QUICK_PROBLEMS)}, few samples")
    parser.add_argument("--isa", default=None, help="cgru kernel level (cgru._engine.ISAS)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    from cgru import _engine

    if args.isa:
        _engine.set_isa(args.isa)
    threads_list = [int(t) for t in args.threads.split(",")]
    problems = QUICK_PROBLEMS if args.quick else PROBLEMS
    shapes = args.shapes.split(",") if args.shapes else list(problems)
    unknown = [s for s in shapes if s not in problems]
    if unknown:
        parser.error(f"unknown shapes {unknown}; known: {list(problems)}")
    settings = bench.Settings(quick=args.quick, repeats=1 if args.quick else args.repeats)
    header = {"machine": cpu_model(), "load average at start": load_average(),
              "cgru kernels": f"{_engine.get_isa()}: {_engine.quantized_kernels()}",
              "streaming error": f"state after {CHECK_STEPS} steps"}
    rows, notes = [], []
    for t in threads_list:
        cgru.set_num_threads(t)
        for s in shapes:
            bench.log(f"{s} threads={t}")
            rows += bench_shape(problems[s], t, settings, notes)
    header["load average at end"] = load_average()
    if notes:
        header["skipped"] = "; ".join(sorted(set(notes)))
    print(report(rows, threads_list, shapes, header))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=1)
    return 1 if any(r.get("fail") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
