"""Peak memory and time of ``Sequential.predict`` with its default chunking, against one call on
the whole input and ``batch_size=32``.

    python bench/predict_memory.py                 # the 24 MiB case: 2048 x 96 x 32 into GRU(128)
    python bench/predict_memory.py --quick         # a small case, 1 MiB chunks (the tests run it)
    python bench/predict_memory.py --chunk-mib 8   # another chunk budget than cgru's default
    python bench/predict_memory.py --json out.json

Memory: each variant runs in a fresh subprocess that builds the model and makes the input, then
on Linux resets its peak resident size to the current one (``/proc/self/clear_refs``), predicts
once and reads the peak (``VmHWM``); the growth is what ``predict`` needed above what the
process already held (the input included). Elsewhere the peak is ``ru_maxrss``, which also
counts what the setup freed before (an underestimate of the growth). The
prediction beside it is the output plus the chunk's working set that ``cgru.prediction``
estimates (``bytes_per_sample x rows``; for one call, the whole input's).

Time: the variants alternate in one process (median of ``--repeats`` calls each), so their
ratios come from the same run of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from _common import cgru_child_env, status_kib

try:
    import cgru  # noqa: F401  (installed, or on the path already)
except ImportError:  # running from a source checkout without installing
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 2**20
VARIANTS = ("default", "one call", "batch_size=32")


def build(args: argparse.Namespace, batch: int | None = None):
    """The model (cgru's chunk budget and threads as ``args`` ask) and an input of ``batch`` rows
    (default ``args.batch``)."""
    import numpy as np

    import cgru
    from cgru import prediction

    if args.chunk_mib is not None:
        prediction.CHUNK_BYTES = int(args.chunk_mib * MiB)
    if args.threads is not None:
        cgru.set_num_threads(args.threads)
    model = cgru.Sequential(
        [cgru.GRU(args.units, return_sequences=True, input_shape=(args.time, args.features), seed=1)],
        device=args.device,
    )
    shape = (args.batch if batch is None else batch, args.time, args.features)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return model, x


def batch_size_of(variant: str, batch: int):
    return {"default": None, "one call": batch, "batch_size=32": 32}[variant]


def reset_peak() -> int:
    """Start the peak over from the current resident size where the OS allows it; the bytes
    resident now (or the peak so far elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return status_kib("VmRSS") * 1024
    except (OSError, TypeError):
        return peak_rss()


def peak_rss() -> int:
    """The process's peak resident size in bytes (since :func:`reset_peak` on Linux)."""
    hwm = status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def child(args: argparse.Namespace) -> None:
    """One variant in this (fresh) process: print its peak growth as JSON."""
    model, x = build(args)
    model.predict(x[:2])  # load the engine and build the model before measuring
    before = reset_peak()
    y = model.predict(x, batch_size=batch_size_of(args.child, args.batch))
    after = peak_rss()
    print(json.dumps({"growth": after - before, "output": y.nbytes, "input": x.nbytes}))


def measure_memory(args: argparse.Namespace, variant: str) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", variant, "--batch", str(args.batch),
               "--time", str(args.time), "--features", str(args.features), "--units", str(args.units),
               "--device", args.device, *(["--chunk-mib", str(args.chunk_mib)] if args.chunk_mib else []),
               *(["--threads", str(args.threads)] if args.threads else [])]
    proc = subprocess.run(command, capture_output=True, text=True, env=cgru_child_env(), timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"the {variant!r} child failed (exit status {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def predicted_growth(args: argparse.Namespace, variant: str) -> dict:
    from cgru import prediction

    model, x = build(args, min(args.batch, 2))
    shape = (args.batch, args.time, args.features)
    per_sample = prediction.bytes_per_sample(model.layers, shape, model.dtype)
    size = batch_size_of(variant, args.batch)
    rows = size if size is not None else prediction.chunk_rows(model.layers, shape, model.dtype, False)
    output = args.batch * args.time * args.units * 4
    return {"rows": rows, "working_set": per_sample * rows, "growth": output + per_sample * rows}


def measure_time(args: argparse.Namespace) -> dict:
    import numpy as np

    model, x = build(args)
    samples: dict = {v: [] for v in VARIANTS}
    reference = None
    for _ in range(args.repeats):
        for variant in VARIANTS:
            start = time.perf_counter()
            y = model.predict(x, batch_size=batch_size_of(variant, args.batch))
            samples[variant].append(time.perf_counter() - start)
            if reference is None:
                reference = y
            elif not np.array_equal(y, reference):
                raise SystemExit(f"FAIL: {variant} gives other outputs than the default")
    return {v: statistics.median(s) for v, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small case")
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--time", type=int, default=96)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="cgru.set_num_threads (default: cgru's)")
    parser.add_argument("--chunk-mib", type=float, help="predict's chunk budget (default: cgru's)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.batch, args.time, args.units, args.repeats = 512, 32, 32, 2
        args.chunk_mib = args.chunk_mib or 1.0
    import cgru

    if args.threads is not None:
        cgru.set_num_threads(args.threads)
    info = cgru.backend_info()
    size = args.batch * args.time * args.features * 4 / MiB
    budget = f"{args.chunk_mib} MiB" if args.chunk_mib else "default"
    print(f"predict of {args.batch} x {args.time} x {args.features} float32 ({size:.1f} MiB) through "
          f"GRU({args.units}, return_sequences=True) on {args.device}, {info['threads']} threads, "
          f"chunk budget {budget}, load {os.getloadavg()[0]:.2f}")
    # memory first, in subprocesses started before this process grows
    memories = {variant: measure_memory(args, variant) for variant in VARIANTS}
    times = measure_time(args)
    rows = []
    header = ("variant", "rows/chunk", "predicted MiB", "measured MiB", "median s", "vs one call")
    widths = (15, 11, 15, 14, 10, 12)
    print("".join(f"{h:>{w}}" if i else f"{h:<{w}}" for i, (h, w) in enumerate(zip(header, widths))))
    for variant in VARIANTS:
        memory = memories[variant]
        predicted = predicted_growth(args, variant)
        ratio = times[variant] / times["one call"]
        rows.append({"variant": variant, **predicted, "measured_growth": memory["growth"],
                     "output": memory["output"], "input": memory["input"], "median_s": times[variant],
                     "time_vs_one_call": ratio})
        print(f"{variant:<15}{predicted['rows']:>11}{predicted['growth'] / MiB:>15.1f}"
              f"{memory['growth'] / MiB:>14.1f}{times[variant]:>10.3f}{ratio:>12.2f}")
    print(f"output {rows[0]['output'] / MiB:.1f} MiB, input {rows[0]['input'] / MiB:.1f} MiB; "
          "growth = peak RSS during predict minus the peak before (input already held)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "backend": info, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
