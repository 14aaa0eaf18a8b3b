#!/usr/bin/env python
"""Side-by-side CPU benchmark: cgru vs PyTorch nn.GRU vs ONNX Runtime vs OpenVINO vs the NumPy
reference.

The "cgru-onnx" rows run the cgru model itself exported with ``cgru.to_onnx`` in ONNX Runtime
(the "onnxruntime" rows run a hand-built GRU graph), so the cost of the hand-off shows. The
"cgru-bfloat16" and "cgru-int8" rows run the row's model quantized (``model.quantize``), the
"openvino-f32" and "openvino" rows OpenVINO's GRUSequence with the same weights in float32 and in
the CPU plugin's default precision (bfloat16 where the CPU has bfloat16 instructions); these
inference-only rows are checked against a looser tolerance (REDUCED_PRECISION_TOL) and report
their error against float32 beside their time.

    python bench/compare.py                      # every shape, 1 and 2 threads (~5-10 min on 2 cores)
    python bench/compare.py --threads 2 --shapes batch-mid,streaming --repeats 9
    python bench/compare.py --quick --json out.json   # CI smoke test (< 60 s)
    python bench/compare.py --markdown > bench/RESULTS.md
    python bench/compare.py --device cuda        # runs bench/gpu_compare.py when it exists

All implementations get identical float32 inputs and weights (made in cgru's Keras layout and
converted); every row is checked against a float64 run of the NumPy reference before it is
timed, and the run fails (exit status 1) when any disagrees beyond float32 tolerance.
Competitors whose package is missing (torch, onnxruntime + onnx, openvino: the ``bench`` extra) are
skipped with a note. Progress goes to stderr, the report to stdout. Method: bench/NOTES.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time

# NumPy's OpenBLAS (the sgemm reference measured around every row) otherwise keeps its worker
# threads spinning for about 0.1 s after each call, on the cores the next timed row needs. Set
# before NumPy loads OpenBLAS; it applies to NumPy's BLAS only.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
try:
    import cgru  # noqa: F401  (installed, or on the path already)
except ImportError:  # running from a source checkout without installing
    sys.path.insert(1, os.path.dirname(HERE))

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    CHECK_STEPS,
    FLOAT32_TOL,
    INFERENCE,
    MEMORY_PROBLEM,
    PROBLEMS,
    QUICK_MEMORY_PROBLEM,
    QUICK_PROBLEMS,
    REDUCED_PRECISION_TOL,
    STEP,
    TRAINING,
    NumpyBlasThreads,
    Problem,
    cgru_child_env,
    compare,
    cores,
    cpu_model,
    load_average,
    make_data,
    reference,
    source_revision,
    status_kib,
    versions,
)
from _impls import (  # noqa: E402
    CgruImpl,
    CgruOnnxImpl,
    CgruQuantizedImpl,
    NumpyImpl,
    OpenvinoImpl,
    OrtImpl,
    Skip,
    TorchImpl,
)

IMPL_ORDER = ("cgru", "cgru-bfloat16", "cgru-int8", "cgru-onnx", "onnxruntime", "openvino-f32", "openvino",
              "torch", "numpy")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


class Settings:
    def __init__(self, quick: bool, repeats: int) -> None:
        self.quick = quick
        self.repeats = repeats
        self.rounds = 1 if quick else 3  # blocks per implementation, in rotating order
        self.warmup_s = 0.02 if quick else 0.3  # per (row, implementation), at least one call
        self.sample_s = 0.005 if quick else 0.02  # one sample = k calls lasting at least this
        self.sgemm_warmup_s = 0.1 if quick else 1.5
        self.numpy_max_call_s = 0.5 if quick else 1.5  # slower NumPy reference rows: not timed
        self.numpy_max_samples = 3
        self.budget_s = 20.0  # samples of one implementation in one row: fewer when calls are slow


def _block(runner, k: int, samples: int) -> list[float]:
    out = []
    call = runner.call
    with runner.context():
        for _ in range(samples):
            t0 = time.perf_counter()
            for _ in range(k):
                call()
            out.append((time.perf_counter() - t0) / k)
    return out


def time_row(runners: dict, settings: Settings, threads: int) -> dict:
    """Median seconds per call of each runner. Each runner is warmed up, then timed in
    ``rounds`` blocks in rotating order (a drift of the machine hits every implementation
    alike); with more than one thread a short pause before each block lets the previous
    library's spinning worker threads go to sleep."""
    names = list(runners)
    k_of, per_call, samples = {}, {}, {n: [] for n in names}
    for name in names:
        r = runners[name]
        with r.context():
            t0 = time.perf_counter()
            calls = 0
            while True:
                r.call()
                calls += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= settings.warmup_s:
                    break
        per_call[name] = elapsed / calls
        k_of[name] = max(1, min(200000, math.ceil(settings.sample_s / max(per_call[name], 1e-9))))
    per_round = {}
    for n in names:
        want = min(settings.repeats, settings.numpy_max_samples) if n == "numpy" else settings.repeats
        # a loaded machine must not make the run endless: at most ~budget_s of samples per cell
        affordable = int(settings.budget_s / max(per_call[n] * k_of[n], 1e-9))
        per_round[n] = max(1, math.ceil(min(want, max(affordable, 3)) / settings.rounds))
    pause = 0.15 if threads > 1 and not settings.quick else 0.0
    for rnd in range(settings.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            if pause:
                time.sleep(pause)
            samples[name] += _block(runners[name], k_of[name], per_round[name])
    return {n: (statistics.median(samples[n]), len(samples[n]), k_of[n]) for n in names}


def sgemm_rate(m: int, k: int, n: int, settings: Settings, warm: bool = False) -> float:
    """GFLOP/s of NumPy float32 matmul (m, k) x (k, n), median of samples (after warm-up: long
    once per thread count, ``warm``, to bring the cores to full clock; short around each row)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    t0 = time.perf_counter()
    calls = 0
    warm_s = settings.sgemm_warmup_s if warm else 0.05
    while time.perf_counter() - t0 < warm_s or calls < 2:
        np.matmul(a, b, out=c)
        calls += 1
    per_call = (time.perf_counter() - t0) / calls
    reps = max(1, math.ceil(0.01 / per_call))
    samples = []
    for _ in range(3 if settings.quick else 5):
        t0 = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=c)
        samples.append((time.perf_counter() - t0) / reps)
    return 2.0 * m * k * n / statistics.median(samples) / 1e9


# --------------------------------------------------------------------------------------------
# Peak memory of a training step (one subprocess per implementation)
# --------------------------------------------------------------------------------------------


def memory_child(impl_name: str, problem_name: str, quick: bool, threads: int) -> dict:
    """Run in a fresh process: warm the implementation up on a tiny problem of the same layer
    sizes (code paged in, thread pools and allocators started), then measure the resident-set
    high-water mark of one training step above the resident set just before it."""
    import resource

    problem = (QUICK_PROBLEMS if quick else PROBLEMS)[problem_name]
    impl = {"cgru": CgruImpl, "torch": TorchImpl}[impl_name]()
    impl.set_threads(threads)
    tiny = Problem("tiny", problem.kind, 2, 2, problem.input, problem.hidden, (TRAINING,), problem.layers)
    impl.runner(tiny, TRAINING, make_data(tiny, seed=3)).call()
    data = make_data(problem)
    runner = impl.runner(problem, TRAINING, data)
    gc.collect()
    gc.disable()
    method = "VmHWM after clear_refs"
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak resident set (VmHWM) to the current one
    except OSError:
        method = "ru_maxrss"
    base = status_kib("VmRSS")
    max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runner.call()
    if method.startswith("VmHWM") and base is not None:
        peak = status_kib("VmHWM")
    else:  # only a rise of the lifetime peak can be seen
        base = base if base is not None else max_before
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, base)
    return {"impl": impl_name, "baseline_mib": base / 1024, "peak_mib": peak / 1024,
            "step_mib": (peak - base) / 1024, "method": method}


def measure_memory(names: list[str], problem: Problem, quick: bool, threads: int) -> dict:
    out = {"shape": problem.name, "dims": problem.dims(), "threads": threads, "rows": [], "notes": []}
    for name in names:
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", name,
               "--shapes", problem.name, "--threads", str(threads)] + (["--quick"] if quick else [])
        log(f"  memory: {name} training step at {problem.name} (subprocess)")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            out["notes"].append(f"memory of {name} not measured: {proc.stderr.strip()[-300:]}")
            continue
        out["rows"].append(json.loads(lines[-1]))
    by = {r["impl"]: r for r in out["rows"]}
    if "cgru" in by and "torch" in by and by["cgru"]["step_mib"] > 0:
        out["torch_over_cgru"] = by["torch"]["step_mib"] / by["cgru"]["step_mib"]
    return out


# --------------------------------------------------------------------------------------------
# Performance targets
# --------------------------------------------------------------------------------------------


def evaluate_targets(rows: list[dict], memory: dict | None, threads: int) -> list[dict]:
    def row(shape, mode, impl):
        for r in rows:
            if (r["shape"], r["mode"], r["impl"], r["threads"]) == (shape, mode, impl, threads):
                return r
        return None

    targets = []

    def ratio_target(shape, mode, impl, need):
        r = row(shape, mode, impl)
        desc = f"{mode} {shape}: {impl}/cgru >= {need}x"
        if r is None or r.get("ratio") is None:
            targets.append({"target": desc, "status": "n/a", "value": None})
        else:
            targets.append({"target": desc, "status": "met" if r["ratio"] >= need else "missed",
                            "value": round(r["ratio"], 2)})

    for shape in ("stream-small", "stream-mid"):
        ratio_target(shape, INFERENCE, "onnxruntime", 2.0)
        ratio_target(shape, INFERENCE, "torch", 10.0)
    ratio_target("batch-mid", INFERENCE, "onnxruntime", 1.5)
    ratio_target("batch-mid", INFERENCE, "torch", 1.5)
    r = row("batch-large", INFERENCE, "cgru")
    desc = "inference batch-large: cgru >= 80% of the 1024^3 sgemm rate"
    if r is None or r.get("pct_sgemm") is None:
        targets.append({"target": desc, "status": "n/a", "value": None})
    else:
        targets.append({"target": desc, "status": "met" if r["pct_sgemm"] >= 80 else "missed",
                        "value": round(r["pct_sgemm"], 1)})
    ratio_target("batch-mid", TRAINING, "torch", 2.0)
    ratio_target("bidir-2layer", TRAINING, "torch", 2.0)
    ratio_target("batch-large", TRAINING, "torch", 1.3)
    desc = f"training {memory['shape'] if memory else MEMORY_PROBLEM}: cgru peak step memory <= torch's"
    if memory and memory.get("torch_over_cgru") is not None:
        targets.append({"target": desc, "status": "met" if memory["torch_over_cgru"] >= 1 else "missed",
                        "value": round(memory["torch_over_cgru"], 2)})
    else:
        targets.append({"target": desc, "status": "n/a", "value": None})
    for impl in ("cgru", "cgru-bfloat16", "cgru-int8"):
        r = row("streaming", STEP, impl)
        desc = f"streaming: {impl} <= 1 us per one-step call"
        if r is None or r["median_s"] is None:
            targets.append({"target": desc, "status": "n/a", "value": None})
        else:
            us = r["median_s"] * 1e6
            targets.append({"target": desc, "status": "met" if us <= 1 else "missed", "value": round(us, 2)})
    # reduced precision: time ratios of two rows of the same run (> need: the second is faster)
    for shape in sorted({r["shape"] for r in rows if r["mode"] == INFERENCE}):
        bf16 = row(shape, INFERENCE, "cgru-bfloat16")
        targets.append(speedup_target(row(shape, INFERENCE, "openvino"), bf16, 1.3,
                                      f"inference {shape}: openvino (default precision)/cgru-bfloat16"))
    targets.append(speedup_target(row("stream-mid", INFERENCE, "cgru"),
                                  row("stream-mid", INFERENCE, "cgru-bfloat16"), 1.6,
                                  "inference stream-mid: cgru (float32)/cgru-bfloat16"))
    return targets


def speedup_target(slower: dict | None, faster: dict | None, need: float, what: str) -> dict:
    """The target ``slower`` time / ``faster`` time >= ``need`` (n/a when a row is missing)."""
    desc = f"{what} >= {need}x"
    if not slower or not faster or not slower["median_s"] or not faster["median_s"]:
        return {"target": desc, "status": "n/a", "value": None}
    value = slower["median_s"] / faster["median_s"]
    return {"target": desc, "status": "met" if value >= need else "missed", "value": round(value, 2)}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def table_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    header = ["shape", "BxTxIxH", "mode", "thr", "impl", "median", "GFLOP/s", "%sgemm", "%gemm@shape",
              "vs cgru", "max|diff|"]
    out = []
    for r in result["rows"]:
        out.append([
            r["shape"], r["dims"], r["mode"], str(r["threads"]), r["impl"],
            "-" if r["median_s"] is None else fmt_time(r["median_s"]) + ("/call" * (r["mode"] == STEP)),
            "-" if r["gflops"] is None else f"{r['gflops']:.1f}",
            "-" if r["pct_sgemm"] is None else f"{r['pct_sgemm']:.0f}%",
            "-" if r["pct_sgemm_shape"] is None else f"{r['pct_sgemm_shape']:.0f}%",
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            "-" if r["max_diff"] is None else f"{r['max_diff']:.1e}" + ("" if r["check_ok"] else " FAIL"),
        ])
    return header, out


def summary_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """One line per (shape, mode, threads): cgru's time and each competitor's ratio to it."""
    header = ["shape", "mode", "thr", "cgru", "cgru GFLOP/s (%sgemm)", *(f"{n}/cgru" for n in IMPL_ORDER[1:])]
    groups: dict = {}
    for r in result["rows"]:
        groups.setdefault((r["shape"], r["dims"], r["mode"], r["threads"]), {})[r["impl"]] = r
    out = []
    for (shape, dims, mode, threads), by in groups.items():
        cg = by.get("cgru")
        if cg is None or cg["median_s"] is None:
            continue
        line = [f"{shape} ({dims})", mode, str(threads),
                fmt_time(cg["median_s"]) + ("/call" * (mode == STEP)),
                f"{cg['gflops']:.1f} ({cg['pct_sgemm']:.0f}%)"]
        for name in IMPL_ORDER[1:]:
            r = by.get(name)
            line.append("-" if r is None or r["ratio"] is None else f"{r['ratio']:.2f}x")
        out.append(line)
    return header, out


def _table(header, rows, markdown: bool, group_cols=None) -> list[str]:
    if markdown:
        return (["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
                + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    prev = None
    for r in rows:
        key = tuple(r[i] for i in group_cols) if group_cols else None
        if prev is not None and key != prev:
            lines.append("")
        prev = key
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return lines


def render(result: dict, markdown: bool) -> str:
    meta = result["meta"]
    lines = []
    if markdown:
        lines += ["# cgru CPU benchmark", ""]
    title = lambda s: lines.extend([f"## {s}", ""] if markdown else [s, "-" * len(s)])  # noqa: E731
    bullet = "- " if markdown else "  "
    title("Run")
    lines += [
        f"{bullet}date: {meta['date']}",
        f"{bullet}machine: {meta['cpu']}, {meta['cores']} cores available; load average at start "
        f"{meta['load_start']}, at end {meta['load_end']}",
        f"{bullet}threads: {', '.join(map(str, meta['threads']))} (cgru.set_num_threads, "
        "torch.set_num_threads, ORT intra_op_num_threads, NumPy's BLAS)",
        f"{bullet}versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + (f"; cgru source at git {meta['cgru_revision']}" if meta.get("cgru_revision") else ""),
        f"{bullet}BLAS: cgru {meta['cgru_blas']}; NumPy (sgemm reference) {meta['numpy_blas']}",
        f"{bullet}timing: median of {meta['repeats']} samples per row after warm-up, in "
        f"{meta['rounds']} rotating blocks; a sample is enough back-to-back calls to last "
        f">= {meta['sample_ms']:g} ms" + (" (--quick: not a measurement)" if meta["quick"] else ""),
        f"{bullet}FLOP model: forward = 2*B*T*3H*(I+H) per direction and layer (elementwise gate math "
        "ignored); training step = 3x forward. GFLOP/s = that / median time.",
        f"{bullet}%sgemm: GFLOP/s over NumPy float32 matmul 1024^3 measured just before and after the "
        "row at the same thread count; %gemm@shape: over the rate of the problem's biggest GEMM, "
        "(B*T, I) x (I, 3H), measured the same way",
        f"{bullet}vs cgru: competitor time / cgru time at the same thread count (> 1: cgru faster); "
        "for cgru-bfloat16 and cgru-int8, their time / cgru float32's (< 1: the quantized model is faster)",
        f"{bullet}max|diff|: max |result - float64 reference| / max(1, max|reference|) over the "
        f"outputs (inference), every weight gradient (training) or the state after "
        f"{meta['check_steps']} steps (streaming), i.e. the error against float32; tolerance "
        f"{meta['tolerance']:g}, {meta['reduced_precision_tolerance']:g} for the reduced-precision rows "
        "(cgru-bfloat16, cgru-int8, openvino when it runs bfloat16)",
    ]
    lines.append("")
    title("sgemm reference (NumPy float32 matmul, measured around every row)")
    groups: dict = {}
    for e in result["sgemm"]:
        if e.get("when") == "row":
            groups.setdefault((e["threads"], e["m"], e["k"], e["n"]), []).append(e["gflops"])
    start = {e["threads"]: e["gflops"] for e in result["sgemm"] if e.get("when") == "start"}
    keyed = [((t, 0, 0), [str(t), "1024 x 1024 x 1024 (after warm-up)", f"{v:.1f}", "-", "1"])
             for t, v in start.items()]
    for (t, m, k, n), vals in groups.items():
        keyed.append(((t, 1, -m * k * n), [str(t), f"{m} x {k} x {n}", f"{statistics.median(vals):.1f}",
                                           f"{min(vals):.1f} - {max(vals):.1f}", str(len(vals))]))
    sg_rows = [r for _, r in sorted(keyed, key=lambda kv: kv[0])]
    lines += _table(["threads", "M x K x N", "GFLOP/s (median)", "range", "measurements"], sg_rows, markdown)
    lines.append("")
    title("Summary (ratio > 1: cgru faster)")
    lines += _table(*summary_rows(result), markdown)
    lines.append("")
    title("Results")
    lines += _table(*table_rows(result), markdown, group_cols=(0, 2, 3))
    lines.append("")
    mem = result.get("memory")
    if mem:
        mt = mem["threads"]
        title(f"Peak memory of one training step ({mem['shape']} {mem['dims']}, {mt} thread{'s' * (mt > 1)})")
        if markdown:
            lines += ["| impl | step peak above baseline | baseline RSS | method |", "|---|---|---|---|"]
            lines += [f"| {r['impl']} | {r['step_mib']:.1f} MiB | {r['baseline_mib']:.1f} MiB "
                      f"| {r['method']} |" for r in mem["rows"]]
        else:
            lines += [f"  {r['impl']:<8} {r['step_mib']:8.1f} MiB above a baseline RSS of "
                      f"{r['baseline_mib']:.1f} MiB ({r['method']})" for r in mem["rows"]]
        if mem.get("torch_over_cgru") is not None:
            lines.append(f"{bullet}torch / cgru: {mem['torch_over_cgru']:.2f}x")
        lines += [f"{bullet}{n}" for n in mem["notes"]]
        lines.append(f"{bullet}method: a fresh process per implementation; a training step on a tiny "
                     "problem of the same layer sizes first (code paged in, thread pools started), then "
                     "the peak resident set of one step minus the resident set just before it")
        lines.append("")
    if result.get("targets"):
        nt = result["targets_threads"]
        title(f"Performance targets ({nt} thread{'s' * (nt > 1)})")
        for t in result["targets"]:
            val = "" if t["value"] is None else f" (measured {t['value']})"
            lines.append(f"{bullet}[{t['status']}] {t['target']}{val}")
        lines.append("")
    if result["notes"]:
        title("Notes")
        lines += [f"{bullet}{n}" for n in result["notes"]]
        lines.append("")
    status = "all agreement checks passed" if result["checks_passed"] else "AGREEMENT CHECK FAILED"
    lines.append(("**" + status + "**") if markdown else status)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default=None,
                   help="thread count(s), comma-separated (default: 1,2 in one invocation)")
    p.add_argument("--shapes", default=None,
                   help="comma-separated shape names (default: all); 'memory' is the peak-memory "
                        f"row; known: {', '.join([*PROBLEMS, 'memory'])}")
    p.add_argument("--impls", default=None,
                   help=f"comma-separated implementations (default: all of {', '.join(IMPL_ORDER)})")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed samples per row (default 9; 3 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="small shapes and few repeats: a smoke test (< 60 s), not a measurement")
    p.add_argument("--json", metavar="PATH", help="also write machine-readable results to PATH")
    p.add_argument("--markdown", action="store_true",
                   help="print the report as Markdown (for bench/RESULTS.md)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cpu (this script) or cuda (dispatches to bench/gpu_compare.py when present)")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def dispatch_cuda(args) -> int:
    """``--device cuda``: the GPU comparison lives in bench/gpu_compare.py (its own shapes and
    options); forward the options it shares with this script."""
    gpu = os.path.join(HERE, "gpu_compare.py")
    if not os.path.exists(gpu):
        log("GPU benchmark unavailable: bench/gpu_compare.py does not exist (--device cuda)")
        return 2
    rest = (["--quick"] if args.quick else []) + (["--repeats", str(args.repeats)] if args.repeats else [])
    ignored = [f"--{k.replace('_', '-')}" for k in ("threads", "shapes", "impls", "json", "markdown")
               if getattr(args, k)]
    if ignored:
        log(f"note: {', '.join(ignored)} apply to the CPU benchmark only; bench/gpu_compare.py has its "
            "own options (see its --help)")
    log(f"running {os.path.relpath(gpu)} {' '.join(rest)}")
    return subprocess.call([sys.executable, gpu, *rest], env=cgru_child_env())  # the same cgru


def build_impls(wanted, blas_threads, notes):
    impls = {}
    makers = {"cgru": CgruImpl, "cgru-onnx": CgruOnnxImpl, "torch": TorchImpl, "onnxruntime": OrtImpl,
              "numpy": lambda: NumpyImpl(blas_threads),
              "cgru-bfloat16": lambda: CgruQuantizedImpl("bfloat16"),
              "cgru-int8": lambda: CgruQuantizedImpl("int8"), "openvino-f32": lambda: OpenvinoImpl("f32"),
              "openvino": lambda: OpenvinoImpl("default")}
    packages = {"torch": "torch", "onnxruntime": "onnxruntime and onnx", "cgru-onnx": "onnxruntime and onnx",
                "openvino": "openvino", "openvino-f32": "openvino"}
    for name in IMPL_ORDER:
        if name not in wanted:
            continue
        try:
            impls[name] = makers[name]()
        except ImportError as exc:
            if name == "cgru":
                raise
            notes.append(f"{name} skipped: {packages.get(name, name)} not installed ({exc}); "
                         "pip install '.[bench]' adds it")
            log(f"note: {notes[-1]}")
    return impls


def bench_row(problem, mode, data, ref, impls, settings, nthreads, notes, rates) -> list[dict]:
    """Check every implementation against ``ref``, time them, and return their table rows."""
    runners, diffs, vias, tolerances, slow = {}, {}, {}, {}, {}
    for name, impl in impls.items():
        try:
            runner = impl.runner(problem, mode, data)
        except Skip as exc:
            note = f"{name} {mode} not run: {exc}"
            if note not in notes:
                notes.append(note)
            continue
        notes.extend(n for n in runner.notes if n not in notes)
        t0 = time.perf_counter()
        with runner.context():
            diffs[name] = compare(runner.check(), ref)
        check_s = time.perf_counter() - t0
        vias[name] = runner.via
        tolerances[name] = FLOAT32_TOL[mode] if runner.tolerance is None else runner.tolerance
        if diffs[name] > tolerances[name]:
            log(f"  AGREEMENT FAILURE: {name} {problem.name} {mode} {nthreads} threads: "
                f"max diff {diffs[name]:.3e} > {tolerances[name]:g}")
        if name == "numpy" and check_s > settings.numpy_max_call_s:
            notes.append(f"numpy {problem.name} {mode} ({nthreads} threads): one call took {check_s:.1f} s;"
                         " checked but not timed (the reference is not a competitor)")
            slow[name] = True
            continue
        runners[name] = runner
    timings = time_row(runners, settings, nthreads)
    cgru_s = timings.get("cgru", (None,))[0]
    sq, shape_rate = rates()
    rows = []
    for name in IMPL_ORDER:
        if name not in diffs:
            continue
        med, nsamp, k = timings.get(name, (None, 0, 0))
        flops = problem.flops(mode)
        gfl = flops / med / 1e9 if med else None
        ratio = med / cgru_s if (med and cgru_s) else None
        row = {
            "shape": problem.name, "dims": problem.dims(), "batch": problem.batch, "time": problem.time,
            "input": problem.input, "hidden": problem.hidden, "layers": problem.layers,
            "directions": problem.directions, "mode": mode, "threads": nthreads,
            "impl": name, "via": vias[name], "median_s": med, "samples": nsamp,
            "calls_per_sample": k, "flops": flops, "gflops": gfl,
            "pct_sgemm": 100 * gfl / sq if gfl else None,
            "pct_sgemm_shape": 100 * gfl / shape_rate if gfl else None,
            "sgemm_gflops": sq, "sgemm_shape_gflops": shape_rate,
            "ratio": ratio, "max_diff": diffs[name], "tolerance": tolerances[name],
            "check_ok": diffs[name] <= tolerances[name],
        }
        rows.append(row)
        shown = fmt_time(med) if med else "not timed"
        shown_ratio = "" if ratio is None else f"{ratio:.2f}x"
        log(f"    {name:<13} {shown:>12}  {shown_ratio:>7}  diff {diffs[name]:.1e}")
    return rows



def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.device == "cuda":
        return dispatch_cuda(args)
    threads = [int(t) for t in args.threads.split(",")] if args.threads else [1, 2]
    if any(t < 1 for t in threads):
        raise SystemExit("--threads must be >= 1")
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.shapes, args.quick, max(threads))))
        return 0
    problems = QUICK_PROBLEMS if args.quick else PROBLEMS
    mem_problem = QUICK_MEMORY_PROBLEM if args.quick else MEMORY_PROBLEM
    if args.shapes:
        names = [s.strip() for s in args.shapes.split(",") if s.strip()]
        unknown = [n for n in names if n not in problems and n != "memory"]
        if unknown:
            raise SystemExit(f"unknown shape(s) {unknown}; known: {', '.join([*problems, 'memory'])}")
    else:
        names = [*problems, "memory"]
    wanted = set(args.impls.split(",")) if args.impls else set(IMPL_ORDER)
    wanted.add("cgru")
    settings = Settings(args.quick, args.repeats or (3 if args.quick else 9))
    notes: list[str] = []
    load_start = load_average()
    try:
        impls = build_impls(wanted, None, notes)
    except (ImportError, RuntimeError) as exc:
        log(f"error: cannot run cgru: {exc}")
        return 2
    blas = NumpyBlasThreads()
    if "numpy" in impls:
        impls["numpy"].blas_threads = blas
    if blas.method == "none":
        notes.append("could not set the thread count of NumPy's BLAS (no threadpoolctl, no OpenBLAS "
                     "setter found): the sgemm reference and NumPy rows use its default")
    import cgru

    log(f"cgru {cgru.__version__} from {os.path.dirname(cgru.__file__)}; backend {cgru.backend_info()}")
    rows, sgemm, checks_passed = [], [], True

    def around(before, gemm):
        after = (sgemm_rate(1024, 1024, 1024, settings), sgemm_rate(*gemm, settings))
        rates = ((before[0] + after[0]) / 2, (before[1] + after[1]) / 2)
        for (m, k, n), rate in zip(((1024, 1024, 1024), gemm), rates):
            sgemm.append({"threads": nthreads, "m": m, "k": k, "n": n, "gflops": rate, "when": "row"})
        return rates
    refs, datas = {}, {}
    for nthreads in threads:
        log(f"== {nthreads} thread(s)")
        for impl in impls.values():
            impl.set_threads(nthreads)
        blas.set(nthreads)
        sq = sgemm_rate(1024, 1024, 1024, settings, warm=True)
        sgemm.append({"threads": nthreads, "m": 1024, "k": 1024, "n": 1024, "gflops": sq, "when": "start"})
        log(f"  sgemm 1024^3 after warm-up: {sq:.1f} GFLOP/s")
        for pname in names:
            if pname == "memory":
                continue
            problem = problems[pname]
            gemm = problem.biggest_gemm()
            if pname not in datas:
                datas[pname] = make_data(problem)
            data = datas[pname]
            for mode in problem.modes:
                log(f"  {pname} {problem.dims()} {mode}")
                if (pname, mode) not in refs:
                    refs[(pname, mode)] = reference(problem, data, mode)
                # The sgemm references are measured around each row (before and after, averaged),
                # so a change of the machine's load during the run affects both sides of the %.
                before = (sgemm_rate(1024, 1024, 1024, settings), sgemm_rate(*gemm, settings))
                new_rows = bench_row(problem, mode, data, refs[(pname, mode)], impls, settings, nthreads,
                                     notes, rates=lambda b=before, g=gemm: around(b, g))
                checks_passed &= all(r["check_ok"] for r in new_rows)
                rows += new_rows
    memory = None
    if "memory" in names:
        mem_names = [n for n in ("cgru", "torch") if n in impls]
        memory = measure_memory(mem_names, problems[mem_problem], args.quick, max(threads))
        notes.extend(memory["notes"])
    targets_threads = 2 if 2 in threads else max(threads)
    result = {
        "meta": {
            "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "cpu": cpu_model(), "cores": cores(), "threads": threads, "quick": args.quick,
            "repeats": settings.repeats, "rounds": settings.rounds, "sample_ms": settings.sample_s * 1e3,
            "versions": versions(), "cgru_blas": cgru.backend_info().get("blas"),
            "cgru_path": os.path.dirname(cgru.__file__),
            "cgru_revision": source_revision(os.path.dirname(cgru.__file__)),
            "numpy_blas": blas.config, "numpy_blas_threads_method": blas.method,
            "load_start": load_start, "load_end": load_average(),
            "tolerance": max(FLOAT32_TOL.values()), "reduced_precision_tolerance": REDUCED_PRECISION_TOL,
            "check_steps": CHECK_STEPS,
            "flop_model": "forward = 2*B*T*3H*(I+H) per direction and layer; training = 3x forward",
        },
        "sgemm": sgemm, "rows": rows, "memory": memory, "notes": notes,
        "targets": [] if args.quick else evaluate_targets(rows, memory, targets_threads),
        "targets_threads": targets_threads,
        "checks_passed": checks_passed,
    }
    vias: dict = {}
    for r in rows:
        labels = vias.setdefault((IMPL_ORDER.index(r["impl"]), r["impl"], r["via"]), [])
        if f"{r['shape']} {r['mode']}" not in labels:
            labels.append(f"{r['shape']} {r['mode']}")
    for (_, impl, via), labels in sorted(vias.items()):
        result["notes"].append(f"{impl} runs {via}: {', '.join(labels)}")
    report = render(result, args.markdown)
    sys.stdout.write(report)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    if not checks_passed:
        log("FAILED: an implementation disagrees with the float64 reference beyond float32 tolerance")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
