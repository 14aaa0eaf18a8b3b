#!/usr/bin/env python
"""When data-parallel training pays: measured on this machine, modelled for clusters.

    python bench/data_parallel.py                  # measure, then the cost model
    python bench/data_parallel.py --quick          # tiny problem, one repeat: a smoke test
    python bench/data_parallel.py --json out.json
    python bench/data_parallel.py --model-only     # the cost model alone (no MPI needed)

Measured: training throughput (samples/s of ``fit`` with one global batch size) of one model
in three layouts on this machine, in rotating order, ``--repeats`` times each:

- 1 rank x 1 thread (the baseline),
- 1 rank x 2 threads (``cgru.set_num_threads(2)``: the engine splits each op's batch rows),
- 2 ranks x 1 thread (``mpiexec -n 2``, :class:`cgru.distributed.MPIStrategy`, each rank half
  of every global batch; one fused ``MPI_Allreduce`` per step, timed inside the run).

The 2-rank run also times ``MPI_Allreduce`` alone on messages of 8 B to 4 MiB and fits the
latency ``alpha`` and bandwidth ``beta`` of this machine's shared memory, which the model below
uses to predict the measured 2-rank efficiency.

Modelled (``cost_model``): a synchronous step on ``R`` nodes takes ``t_compute + t_allreduce``
(the fused all-reduce starts after the whole backward pass, so nothing overlaps), with

    t_compute   = flops_per_sample * b / F_node           (b: samples per node per step)
    t_allreduce = min(ring, recursive doubling, Rabenseifner)   (what MPI libraries choose from)
      ring         = 2 (R - 1) alpha + 2 (R - 1) / R * n / beta
      doubling     = log2(R) alpha + log2(R) * n / beta   (n: bytes of the fused buffer)
      Rabenseifner = 2 log2(R) alpha + 2 (R - 1) / R * n / beta   (reduce-scatter + allgather)

and scaling efficiency ``E = t_compute / (t_compute + t_allreduce)`` at a fixed per-node batch
(weak scaling: the global batch grows with ``R``, which the optimisation has to tolerate; that
is not modelled). ``F_node`` is this machine's measured training rate per core times
``--cores-per-node``; networks: 10 Gb Ethernet (alpha 50 us, beta 1.25 GB/s) and 100 Gb
InfiniBand (alpha 2 us, beta 12.5 GB/s). The table marks where ``E >= 0.8``. Findings:
bench/NOTES.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

NETWORKS = {"10GbE": (50e-6, 1.25e9), "IB-100G": (2e-6, 12.5e9)}
NODES = (8, 64, 512)
TARGET = 0.8
# (units, layers, time steps, input features) of the modelled GRU stacks
MODELS = [(64, 1, 100, 32), (256, 2, 100, 64), (1024, 2, 100, 256)]
PER_NODE_BATCH = (8, 32, 128, 512)


# --------------------------------------------------------------------------------- problem
def problem(args) -> dict:
    if args.quick:
        return {"units": 16, "time": 10, "features": 8, "samples": 128, "batch": 32, "epochs": 1}
    return {"units": args.units, "time": args.time, "features": args.features, "samples": args.samples,
            "batch": args.batch, "epochs": args.epochs}


def gru_params(units: int, layers: int, features: int) -> int:
    """Weights of a stack of ``layers`` GRU(units) (reset_after: bias (2, 3H)) + Dense(1)."""
    total, inputs = 0, features
    for _ in range(layers):
        total += 3 * units * (inputs + units) + 6 * units
        inputs = units
    return total + units + 1


def training_flops_per_sample(units: int, layers: int, time_steps: int, features: int) -> float:
    """3x the forward's matrix products (bench/NOTES.md's FLOP model): forward, input- and
    recurrent-side gradients, weight gradients."""
    total, inputs = 0.0, features
    for _ in range(layers):
        total += 2.0 * time_steps * 3 * units * (inputs + units)
        inputs = units
    return 3.0 * total


# ------------------------------------------------------------------------------ measuring
def worker(args) -> None:
    """One layout's run (under mpiexec when --mpi): prints one JSON line from rank 0."""
    import cgru

    cgru.set_num_threads(args.threads)
    p = problem(args)
    strategy = rank = None
    ranks = 1
    if args.mpi:
        from cgru.distributed import MPIStrategy

        strategy = MPIStrategy()
        rank, ranks = strategy.rank, strategy.size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((p["samples"], p["time"], p["features"])).astype(np.float32)
    y = rng.standard_normal((p["samples"], 1)).astype(np.float32)
    if ranks > 1:
        x, y = x[rank::ranks], y[rank::ranks]
    batch = p["batch"] // ranks
    model = cgru.Sequential([cgru.GRU(p["units"], input_shape=(p["time"], p["features"]), seed=1),
                             cgru.Dense(1, seed=2)], device="cpu")
    model.compile(optimizer="adam", loss="mse")
    reduce_seconds = [0.0]
    if strategy is not None:
        reduce = strategy.mpi.allreduce_sum

        def timed(buffer):
            start = time.perf_counter()
            out = reduce(buffer)
            reduce_seconds[0] += time.perf_counter() - start
            return out

        strategy.mpi.allreduce_sum = timed
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, strategy=strategy)  # warm-up
    reduce_seconds[0] = 0.0
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=p["epochs"], shuffle=False, verbose=0, strategy=strategy)
    elapsed = time.perf_counter() - start
    result = {"elapsed": elapsed, "allreduce": reduce_seconds[0]}
    if strategy is not None:
        from mpi4py import MPI

        result = {k: strategy.comm.allreduce(v, op=MPI.MAX) for k, v in result.items()}
        result["latency_bandwidth"] = allreduce_fit(strategy.comm, args.quick)
    steps = math.ceil(p["samples"] / p["batch"]) * p["epochs"]
    result.update(samples_per_s=p["samples"] * p["epochs"] / result["elapsed"], steps=steps,
                  ranks=ranks, threads=args.threads, params=model.count_params())
    if not rank:
        print(json.dumps(result))


def allreduce_fit(comm, quick: bool) -> dict:
    """alpha (s) and beta (bytes/s) fitted to MPI_Allreduce times of 8 B..4 MiB float32 messages."""
    from mpi4py import MPI

    sizes = [2, 2**8, 2**14, 2**20] if not quick else [2, 2**10]
    times = []
    for n in sizes:
        buffer = np.ones(n, np.float32)
        for _ in range(3):
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        repeats = 50 if n < 2**16 else 10
        comm.Barrier()
        start = time.perf_counter()
        for _ in range(repeats):
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        times.append(comm.allreduce((time.perf_counter() - start) / repeats, op=MPI.MAX))
    nbytes = np.array(sizes, float) * 4
    slope, intercept = np.polyfit(nbytes, np.array(times), 1)
    return {"bytes": nbytes.tolist(), "seconds": times, "alpha": max(intercept, times[0]),
            "beta": 1.0 / slope if slope > 0 else float("inf")}


def mpiexec() -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def run_layout(args, ranks: int, threads: int) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(threads)]
    command += ["--quick"] if args.quick else [
        "--units", str(args.units), "--time", str(args.time), "--features", str(args.features),
        "--samples", str(args.samples), "--batch", str(args.batch), "--epochs", str(args.epochs)]
    if ranks > 1:
        command = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py", *command[1:], "--mpi"]
    from _common import cgru_child_env

    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900,
                         env=cgru_child_env()).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(args) -> dict:
    layouts = [(1, 1), (1, 2), (2, 1)]
    samples: dict = {layout: [] for layout in layouts}
    for repeat in range(args.repeats):
        for layout in layouts[repeat % 3:] + layouts[:repeat % 3]:  # rotating order
            samples[layout].append(run_layout(args, *layout))
    rows = {}
    for (ranks, threads), runs in samples.items():
        rate = float(np.median([r["samples_per_s"] for r in runs]))
        rows[f"{ranks}x{threads}"] = {"ranks": ranks, "threads": threads, "samples_per_s": rate,
                                      "best_samples_per_s": float(max(r["samples_per_s"] for r in runs)),
                                      "allreduce_s": float(np.median([r["allreduce"] for r in runs])),
                                      "elapsed_s": float(np.median([r["elapsed"] for r in runs])),
                                      "steps": runs[0]["steps"], "params": runs[0]["params"]}
        if ranks > 1:
            rows[f"{ranks}x{threads}"]["latency_bandwidth"] = runs[-1]["latency_bandwidth"]
    base, best = rows["1x1"]["samples_per_s"], rows["1x1"]["best_samples_per_s"]
    for row in rows.values():
        row["speedup_vs_1x1"] = row["samples_per_s"] / base
        row["best_speedup_vs_1x1"] = row["best_samples_per_s"] / best
    return rows


# ----------------------------------------------------------------------------- the model
def allreduce_seconds(nbytes: float, ranks: int, alpha: float, beta: float) -> float:
    """The cheapest of the usual MPI_Allreduce algorithms for ``nbytes`` on ``ranks`` nodes."""
    if ranks <= 1:
        return 0.0
    volume = 2 * (ranks - 1) / ranks * nbytes / beta  # what every node must send and receive
    rounds = math.ceil(math.log2(ranks))
    ring = 2 * (ranks - 1) * alpha + volume
    doubling = rounds * alpha + rounds * nbytes / beta
    rabenseifner = 2 * rounds * alpha + volume
    return min(ring, doubling, rabenseifner)


def efficiency(flops_per_sample: float, batch: int, node_flops: float, nbytes: float, ranks: int,
               alpha: float, beta: float) -> float:
    compute = flops_per_sample * batch / node_flops
    return compute / (compute + allreduce_seconds(nbytes, ranks, alpha, beta))


def cost_model(node_flops: float) -> list[dict]:
    """Efficiency of every modelled (model, per-node batch, network, nodes)."""
    rows = []
    for units, layers, steps, features in MODELS:
        params = gru_params(units, layers, features)
        flops = training_flops_per_sample(units, layers, steps, features)
        nbytes = 4.0 * params  # float32 gradients; the buffer's few scalars are negligible
        for batch in PER_NODE_BATCH:
            for network, (alpha, beta) in NETWORKS.items():
                effs = {r: efficiency(flops, batch, node_flops, nbytes, r, alpha, beta) for r in NODES}
                rows.append({"units": units, "layers": layers, "time": steps, "features": features,
                             "params": params, "batch": batch, "network": network,
                             "step_compute_s": flops * batch / node_flops, "efficiency": effs,
                             "scales_to": max([r for r in NODES if effs[r] >= TARGET], default=1)})
    return rows


def print_model(rows: list[dict], node_flops: float) -> None:
    print(f"\ncost model: F_node = {node_flops / 1e9:.0f} GFLOP/s, efficiency at "
          f"{'/'.join(map(str, NODES))} nodes (* = >= {TARGET:.0%})")
    print(f"{'model':>26} {'params':>9} {'b/node':>6} {'network':>8} {'compute':>9}  efficiency")
    for row in rows:
        model = f"GRU{row['units']}x{row['layers']} T{row['time']} I{row['features']}"
        effs = "  ".join(f"{row['efficiency'][r]:5.2f}{'*' if row['efficiency'][r] >= TARGET else ' '}"
                         for r in NODES)
        print(f"{model:>26} {row['params']:>9,} {row['batch']:>6} {row['network']:>8} "
              f"{row['step_compute_s'] * 1e3:7.2f}ms  {effs}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--model-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--time", type=int, default=50)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64, help="the global batch size")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cores-per-node", type=int, default=32)
    parser.add_argument("--core-gflops", type=float, default=None,
                        help="training GFLOP/s per core (default: measured, or 10 with --model-only)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if HERE not in sys.path:  # bench/_common
        sys.path.insert(0, HERE)
    try:
        import cgru  # noqa: F401  (installed, or on the path already)
    except ImportError:  # running from a source checkout without installing
        sys.path.insert(1, ROOT)
    if args.worker:
        worker(args)
        return 0
    if args.quick:
        args.repeats = 1
    report: dict = {}
    core_gflops = args.core_gflops
    if not args.model_only:
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            print("mpi4py is not installed: pip install \"cgru[mpi]\" mpich (or --model-only)")
            return 1
        if mpiexec() is None:
            print("no mpiexec: pip install mpich (or --model-only)")
            return 1
        from _common import cpu_model, load_average

        p = problem(args)
        print(f"{cpu_model()}, load {load_average()}; GRU({p['units']}) T={p['time']} I={p['features']}, "
              f"{p['samples']} samples, global batch {p['batch']}, {args.repeats} repeats")
        rows = measure(args)
        flops = training_flops_per_sample(p["units"], 1, p["time"], p["features"])
        for name, row in rows.items():
            row["gflops"] = flops * row["samples_per_s"] / 1e9
            print(f"{name:>4} (ranks x threads): median {row['samples_per_s']:8.1f} samples/s "
                  f"x{row['speedup_vs_1x1']:.2f} vs 1x1, best {row['best_samples_per_s']:8.1f} "
                  f"x{row['best_speedup_vs_1x1']:.2f}; {row['gflops']:6.2f} GFLOP/s; "
                  f"allreduce {row['allreduce_s'] / max(row['steps'], 1) * 1e6:7.1f} us/step")
        two = rows["2x1"]
        fit = two["latency_bandwidth"]
        nbytes = 4.0 * two["params"]
        predicted = efficiency(flops, p["batch"] // 2, flops * rows["1x1"]["samples_per_s"],
                               nbytes, 2, fit["alpha"], fit["beta"])
        measured = two["samples_per_s"] / (2 * rows["1x1"]["samples_per_s"])
        print(f"shared memory: alpha {fit['alpha'] * 1e6:.1f} us, beta {fit['beta'] / 1e9:.2f} GB/s; "
              f"2-rank efficiency predicted {predicted:.2f}, measured {measured:.2f}")
        report.update(problem=p, measured=rows, predicted_2rank_efficiency=predicted,
                      measured_2rank_efficiency=measured, load=load_average(), cpu=cpu_model())
        if core_gflops is None:
            core_gflops = rows["1x1"]["gflops"]
    if core_gflops is None:
        core_gflops = 10.0
    node_flops = core_gflops * 1e9 * args.cores_per_node
    model_rows = cost_model(node_flops)
    print_model(model_rows, node_flops)
    report.update(node_gflops=node_flops / 1e9, cost_model=model_rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
