"""cgru's "cuda" backend against PyTorch's cuDNN nn.GRU on the same inputs.

    python bench/gpu_compare.py                 # the issue's shapes, on the GPU
    python bench/gpu_compare.py --quick         # fewer repeats, shorter sequences
    python bench/gpu_compare.py --device cpu    # the same harness on the CPU (compiled backend vs
                                                # torch on CPU): a smoke test without a GPU

Shapes: batch 1, 8, 64, 256 at time 256, hidden 256 and 512 (input features = hidden), float32,
inference (forward) and training (forward + backward). Both libraries get identical weights
(PyTorch's r, z, n blocks mapped from cgru's z, r, h Keras layout) and their outputs are
compared before timing. Each cell is the median of several timed runs after warm-up, with a
device synchronisation around each run; the table gives milliseconds and the ratio
cuDNN time / cgru time (above 1: cgru is faster). cgru runs with the persistent kernel off
and, as a second column, in "auto" mode (persistent for batch <= 8).

Prints a Markdown table with the device name and date, for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time

import numpy as np

BATCHES = (1, 8, 64, 256)
HIDDEN = (256, 512)
TIME = 256


def keras_weights(rng, n_in, units, dtype=np.float32):
    scale = 1.0 / np.sqrt(units)
    kernel = rng.uniform(-scale, scale, (n_in, 3 * units)).astype(dtype)
    recurrent = rng.uniform(-scale, scale, (units, 3 * units)).astype(dtype)
    bias = rng.uniform(-scale, scale, (2, 3 * units)).astype(dtype)
    return kernel, recurrent, bias


def torch_gru(torch, kernel, recurrent, bias, device):
    """nn.GRU (batch_first) holding the same weights as cgru's Keras-layout arrays."""
    n_in, g = kernel.shape
    h = g // 3

    def reorder(w):  # columns z, r, h -> rows r, z, n (PyTorch stores W transposed)
        z, r, n = w[..., :h], w[..., h:2 * h], w[..., 2 * h:]
        return np.concatenate([r, z, n], axis=-1)

    gru = torch.nn.GRU(n_in, h, batch_first=True).to(device)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(reorder(kernel).T)))
        gru.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(reorder(recurrent).T)))
        gru.bias_ih_l0.copy_(torch.from_numpy(reorder(bias[0])))
        gru.bias_hh_l0.copy_(torch.from_numpy(reorder(bias[1])))
    return gru


def timed(fn, sync, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="3 repeats, time 64")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batches", type=int, nargs="*", default=list(BATCHES))
    parser.add_argument("--hidden", type=int, nargs="*", default=list(HIDDEN))
    parser.add_argument("--time", type=int, default=TIME)
    args = parser.parse_args(argv)
    repeats, steps = args.repeats, args.time
    if args.quick:
        repeats, steps = 3, min(steps, 64)

    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is needed for this comparison: pip install torch")
    import cgru

    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("no CUDA device for PyTorch: GPU figures cannot be measured here")
        try:
            from cgru.backends.cupy_ops import CupyOps

            variants = {"cgru": CupyOps(persistent="off"), "cgru auto": CupyOps(persistent="auto")}
        except (ImportError, RuntimeError) as exc:
            sys.exit(f"the cgru cuda backend cannot start: {exc}")
        import cupy

        torch.backends.cudnn.enabled = True
        device_name = torch.cuda.get_device_name()

        def sync():
            cupy.cuda.Device().synchronize()
            torch.cuda.synchronize()
    else:
        variants = {"cgru": cgru.get_ops()}
        device_name = f"CPU ({cgru.get_backend()} backend vs torch CPU)"

        def sync():
            pass

    rng = np.random.default_rng(0)
    print(f"# cgru vs PyTorch GRU ({'cuDNN' if args.device == 'cuda' else 'CPU'})\n")
    print(f"device: {device_name}; date: {datetime.date.today().isoformat()}; time steps: {steps}; "
          f"float32; median of {repeats} runs\n")
    names = list(variants)
    header = ["mode", "batch", "hidden", "torch ms"]
    for name in names:
        header += [f"{name} ms", f"torch/{name}"]
    header.append("max |diff|")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for units in args.hidden:
        for batch in args.batches:
            kernel, recurrent, bias = keras_weights(rng, units, units)
            x_np = rng.standard_normal((batch, steps, units)).astype(np.float32)
            gru = torch_gru(torch, kernel, recurrent, bias, args.device)
            x_t = torch.from_numpy(x_np).to(args.device)
            dy_np = np.ones((batch, steps, units), np.float32)
            dy_t = torch.from_numpy(dy_np).to(args.device)
            for mode in ("inference", "training"):
                row = [mode, str(batch), str(units)]
                if mode == "inference":
                    def run_torch(gru=gru, x_t=x_t):
                        with torch.no_grad():
                            return gru(x_t)[0]
                else:
                    x_req = x_t.clone().requires_grad_(True)

                    def run_torch(gru=gru, x_req=x_req, dy_t=dy_t):
                        gru.zero_grad(set_to_none=True)
                        out = gru(x_req)[0]
                        out.backward(dy_t)
                        return out
                t_torch = timed(run_torch, sync, repeats)
                row.append(f"{t_torch * 1e3:.2f}")
                with torch.no_grad():
                    y_torch = gru(x_t)[0].cpu().numpy()
                diff = 0.0
                for name in names:
                    ops = variants[name]
                    x, w, u, b, dy = (ops.asarray(a) for a in (x_np, kernel, recurrent, bias, dy_np))
                    if mode == "inference":
                        def run_cgru(ops=ops, x=x, w=w, u=u, b=b):
                            return ops.gru_forward(x, w, u, b)[0]
                    else:
                        def run_cgru(ops=ops, x=x, w=w, u=u, b=b, dy=dy):
                            y, h, cache = ops.gru_forward(x, w, u, b, training=True)
                            ops.gru_backward(dy, None, cache)
                            return y
                    y = ops.to_numpy(ops.gru_forward(x, w, u, b)[0])
                    diff = max(diff, float(np.max(np.abs(y - y_torch))))
                    t = timed(run_cgru, sync, repeats)
                    row += [f"{t * 1e3:.2f}", f"{t_torch / t:.2f}"]
                row.append(f"{diff:.1e}")
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
