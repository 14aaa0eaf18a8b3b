"""cgru's "cuda" backend against PyTorch's cuDNN nn.GRU on the same inputs.

    python bench/gpu_compare.py                       # the shapes below, on the GPU
    python bench/gpu_compare.py --quick               # 3 repeats, at most 64 time steps
    python bench/gpu_compare.py --json out.json       # also write the results as JSON
    python bench/gpu_compare.py --persistent off auto always
    python bench/gpu_compare.py --device cpu          # the CPU backend vs torch on the CPU
    python bench/gpu_compare.py --emulate             # the cuda backend on the CPU emulator of
                                                      # tests/cuda_emu vs torch on the CPU: checks
                                                      # this script without a GPU, times nothing real

Shapes: batch 1, 8, 64, 256 at time 256, hidden 256 and 512 (input features = hidden), float32,
inference (forward) and training (forward + backward, upstream gradient random). Both libraries
get identical weights (PyTorch's r, z, n blocks mapped from cgru's z, r, h Keras layout) and
their results are compared before timing: the output in inference; the output, the input
gradient and both weight gradients in training, as max |cgru - torch| / max(1, max |torch|).
PyTorch's TF32 is off unless --tf32 (cuDNN then computes in full float32, as cgru does).

cgru runs once per --persistent mode (default: off and always): "off" is the per-step path,
"always" runs the persistent kernel wherever its shared memory fits (whatever the batch) and the
per-step path elsewhere; the "path" column says which ran. Each cell is the median of several
timed runs after warm-up, each run between two device synchronisations; the ratio is
torch time / cgru time (above 1: cgru is faster). Prints a Markdown table with the device and
date; exits with status 1 when a result disagrees with PyTorch or a run raised.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
import traceback

import numpy as np
from _gpu import cuda_ops, relative_difference, runs_persistent, synchronize

BATCHES = (1, 8, 64, 256)
HIDDEN = (256, 512)
TIME = 256
MODES = ("inference", "training")


def keras_weights(rng, n_in, units, dtype=np.float32):
    scale = 1.0 / np.sqrt(units)
    kernel = rng.uniform(-scale, scale, (n_in, 3 * units)).astype(dtype)
    recurrent = rng.uniform(-scale, scale, (units, 3 * units)).astype(dtype)
    bias = rng.uniform(-scale, scale, (2, 3 * units)).astype(dtype)
    return kernel, recurrent, bias


def to_torch_layout(w, units):
    """Keras columns z, r, h -> PyTorch rows r, z, n (PyTorch stores W transposed)."""
    z, r, n = w[..., :units], w[..., units:2 * units], w[..., 2 * units:]
    return np.concatenate([r, z, n], axis=-1)


def torch_gru(torch, kernel, recurrent, bias, device):
    """nn.GRU (batch_first) holding the same weights as cgru's Keras-layout arrays."""
    n_in, g = kernel.shape
    h = g // 3
    gru = torch.nn.GRU(n_in, h, batch_first=True).to(device)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(to_torch_layout(kernel, h).T)))
        gru.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(to_torch_layout(recurrent, h).T)))
        gru.bias_ih_l0.copy_(torch.from_numpy(to_torch_layout(bias[0], h)))
        gru.bias_hh_l0.copy_(torch.from_numpy(to_torch_layout(bias[1], h)))
    return gru


def timed(fn, sync, repeats, warmup):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(max(repeats, 1)):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_results(torch, gru, x_np, dy_np, mode, device):
    """What cgru is checked against: y (inference), or y, dx, dkernel, drecurrent in cgru's layout."""
    x = torch.from_numpy(x_np).to(device)
    if mode == "inference":
        with torch.no_grad():
            return [gru(x)[0].cpu().numpy()]
    x.requires_grad_(True)
    gru.zero_grad(set_to_none=True)
    y = gru(x)[0]
    y.backward(torch.from_numpy(dy_np).to(device))
    units = gru.hidden_size

    def to_keras(grad):  # rows r, z, n of a transposed weight -> columns z, r, h
        g = grad.cpu().numpy().T
        r, z, n = g[:, :units], g[:, units:2 * units], g[:, 2 * units:]
        return np.concatenate([z, r, n], axis=1)

    return [y.detach().cpu().numpy(), x.grad.cpu().numpy(), to_keras(gru.weight_ih_l0.grad),
            to_keras(gru.weight_hh_l0.grad)]


def torch_runner(torch, gru, x_np, dy_np, mode, device):
    """A callable running one PyTorch pass (the timed one)."""
    x = torch.from_numpy(x_np).to(device)
    if mode == "inference":
        def infer():
            with torch.no_grad():
                return gru(x)[0]

        return infer
    x.requires_grad_(True)
    dy = torch.from_numpy(dy_np).to(device)

    def train():
        gru.zero_grad(set_to_none=True)
        out = gru(x)[0]
        out.backward(dy)
        return out

    return train


def cgru_runner(ops, arrays, mode):
    """A callable running one cgru pass and returning what torch_results returns."""
    x, kernel, recurrent, bias, dy = arrays
    if mode == "inference":
        return lambda: [ops.gru_forward(x, kernel, recurrent, bias)[0]]

    def train():
        y, _, cache = ops.gru_forward(x, kernel, recurrent, bias, training=True)
        grads = ops.gru_backward(dy, None, cache)
        return [y, grads.dx, grads.dkernel, grads.drecurrent_kernel]

    return train


def measure_cgru(ops, arrays, mode, want, sync, repeats, warmup):
    """One cell: {"max_rel_diff", "ms"} against torch's results ``want``, or {"error"}; a
    failure is printed and recorded, not raised, so that the other cells still run."""
    try:
        run = cgru_runner(ops, [ops.asarray(a) for a in arrays], mode)
        got = [ops.to_numpy(a) for a in run()]
        diff = max(relative_difference(g, w) for g, w in zip(got, want))
        return {"max_rel_diff": diff, "ms": timed(run, sync, repeats, warmup) * 1e3}
    except Exception as exc:
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"}


def table_line(row):
    cells = [row["mode"], str(row["batch"]), str(row["hidden"]), f"{row['torch_ms']:.2f}"]
    for cell in row["cgru"].values():
        if "ms" in cell:
            cells += [f"{cell['ms']:.2f}", cell["path"], f"{cell['torch_over_cgru']:.2f}"]
        else:
            cells += ["error", cell["path"], "-"]
    diffs = [c["max_rel_diff"] for c in row["cgru"].values() if "max_rel_diff" in c]
    cells.append((f"{max(diffs):.1e}" if diffs else "-") + ("" if row["ok"] else " FAIL"))
    return "| " + " | ".join(cells) + " |"


def setup(args, torch):
    """(cgru variants by column name, torch device, device description, synchronise)."""
    if args.emulate or args.device == "cpu":
        if args.emulate:
            variants = {f"cgru {m}": cuda_ops(m, emulate=True) for m in args.persistent}
            name = "CPU emulator of the cuda backend (tests/cuda_emu) vs torch on the CPU: no GPU timing"
        else:
            import cgru

            variants = {"cgru": cgru.get_ops()}
            name = f"CPU ({cgru.get_backend()} backend vs torch CPU)"
        return variants, "cpu", name, lambda: None
    if not torch.cuda.is_available():
        sys.exit("no CUDA device for PyTorch: GPU figures cannot be measured here")
    try:
        variants = {f"cgru {m}": cuda_ops(m) for m in args.persistent}
    except (ImportError, RuntimeError) as exc:
        sys.exit(f"the cgru cuda backend cannot start: {exc}")
    torch.backends.cudnn.enabled = True
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    first = next(iter(variants.values()))

    def sync():
        synchronize(first)
        torch.cuda.synchronize()

    return variants, "cuda", torch.cuda.get_device_name(), sync


def versions(torch, device):
    out = {"torch": torch.__version__, "numpy": np.__version__}
    if device == "cuda":
        import cupy

        out.update(cupy=cupy.__version__, cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
                   cudnn=torch.backends.cudnn.version())
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--emulate", action="store_true",
                        help="cuda backend on the CPU emulator (tests/cuda_emu), torch on the CPU")
    parser.add_argument("--quick", action="store_true", help="3 repeats, at most 64 time steps")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per cell (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before each cell")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--hidden", type=int, nargs="+", default=list(HIDDEN))
    parser.add_argument("--time", type=int, default=TIME)
    parser.add_argument("--persistent", nargs="+", choices=["off", "auto", "always"],
                        default=["off", "always"],
                        help="cgru's persistent-kernel modes, one column each (default: off always)")
    parser.add_argument("--tf32", action="store_true", help="let PyTorch/cuDNN use TF32 (default: off)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="largest max |cgru - torch| / max(1, max |torch|) that agrees (default 1e-3)")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH (after every row)")
    args = parser.parse_args(argv)
    repeats, steps = args.repeats, args.time
    if args.quick:
        repeats, steps = 3, min(steps, 64)
    if min(args.batches + args.hidden + [steps]) < 1:
        parser.error("--batches, --hidden and --time must be positive")

    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is needed for this comparison: pip install torch")
    variants, device, device_name, sync = setup(args, torch)
    on_cuda_backend = device == "cuda" or args.emulate

    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = {"device": device_name, "date": today, "time_steps": steps, "dtype": "float32", "repeats": repeats,
            "warmup": args.warmup, "tf32": args.tf32, "emulated": args.emulate, "tolerance": args.tolerance,
            "variants": list(variants), "versions": versions(torch, device)}
    report = {"meta": meta, "rows": [], "ok": True}
    print(f"# cgru vs PyTorch GRU ({'cuDNN' if device == 'cuda' else 'CPU'})\n")
    print(f"device: {device_name}; date: {today}; time steps: {steps}; float32; "
          f"TF32 {'on' if args.tf32 else 'off'}; median of {repeats} runs after {args.warmup} warm-up\n")
    header = ["mode", "batch", "hidden", "torch ms"]
    for name in variants:
        header += [f"{name} ms", "path", f"torch/{name}"]
    header.append("max rel diff")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)

    rng = np.random.default_rng(0)
    for units in args.hidden:
        for batch in args.batches:
            kernel, recurrent, bias = keras_weights(rng, units, units)
            x_np = rng.standard_normal((batch, steps, units)).astype(np.float32)
            dy_np = rng.standard_normal((batch, steps, units)).astype(np.float32)
            gru = torch_gru(torch, kernel, recurrent, bias, device)
            arrays = (x_np, kernel, recurrent, bias, dy_np)
            for mode in MODES:
                row = {"mode": mode, "batch": batch, "hidden": units}
                want = torch_results(torch, gru, x_np, dy_np, mode, device)
                run_torch = torch_runner(torch, gru, x_np, dy_np, mode, device)
                row["torch_ms"] = timed(run_torch, sync, repeats, args.warmup) * 1e3
                row["cgru"] = {}
                for name, ops in variants.items():
                    cell = measure_cgru(ops, arrays, mode, want, sync, repeats, args.warmup)
                    cell["path"] = "-"  # the CPU backend has one path
                    if on_cuda_backend:
                        persistent = runs_persistent(ops, batch, units, np.float32)
                        cell["path"] = "persistent" if persistent else "steps"
                    if "ms" in cell:
                        cell["torch_over_cgru"] = row["torch_ms"] / cell["ms"]
                    row["cgru"][name] = cell
                cells = row["cgru"].values()
                row["ok"] = all("ms" in c and c["max_rel_diff"] <= args.tolerance for c in cells)
                report["ok"] &= row["ok"]
                report["rows"].append(row)
                print(table_line(row), flush=True)
                if args.json:
                    with open(args.json, "w") as fh:
                        json.dump(report, fh, indent=1)
    bad = [r for r in report["rows"] if not r["ok"]]
    print(f"\n{'all results agree with PyTorch' if not bad else f'{len(bad)} rows FAIL'} "
          f"(tolerance {args.tolerance:g})")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
