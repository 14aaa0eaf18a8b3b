#!/usr/bin/env python
"""Conv1D on a typical audio front-end shape: cgru's im2col + one GEMM against the bare GEMM of
the same size (its floor) and PyTorch's ``nn.Conv1d``, in one run, one thread.

    python bench/conv1d.py [--batch 32 --time 1000 --channels 40 --filters 64 --kernel 5]

Times (thread CPU time, which leaves out waits for a core on a shared machine; the median of
``--repeats`` calls after a warm-up) for: cgru's forward (inference), forward + backward of a
first layer (no input gradient) and of a later layer (with it); the GEMM ``(B*T, k*C) x (k*C,
F)`` alone; PyTorch's forward under ``no_grad`` and forward + backward, on its native
channels-first layout. The outputs agree before anything is timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import NumpyBlasThreads, cpu_model, load_average  # noqa: E402

import cgru  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Median thread CPU time of ``fn()`` in ms, after two warm-up calls."""
    fn()
    fn()
    samples = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        samples.append((time.thread_time() - start) * 1e3)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--time", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=40)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--padding", default="same")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    NumpyBlasThreads().set(1)
    b, t, c, f, k = args.batch, args.time, args.channels, args.filters, args.kernel
    rng = np.random.default_rng(0)
    x = rng.standard_normal((b, t, c)).astype(np.float32)
    conv = cgru.Conv1D(f, k, padding=args.padding, activation="relu", bias_initializer="glorot_uniform")
    conv._bind(cgru.get_ops("cpu"))
    conv._maybe_build((None, None, c))
    y = conv(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    kernel, bias = conv.get_weights()
    flops = 2.0 * b * y.shape[1] * k * c * f
    print(f"Conv1D({f}, {k}, padding={args.padding!r}, activation='relu') on ({b}, {t}, {c}); "
          f"{flops / 1e9:.2f} GFLOP per forward; {cpu_model()}; load {load_average()}")

    def train(input_grad: bool):
        def step():
            _, cache = conv._forward(x, True, None)
            conv._backward(dy, cache, input_grad)
        return step

    windows = conv._windows(x, conv.geometry(t))
    flat_kernel = kernel.reshape(-1, f)
    rows = {
        "cgru forward (inference)": timed(lambda: conv._forward(x, False, None), args.repeats),
        "cgru forward + backward, first layer": timed(train(False), args.repeats),
        "cgru forward + backward, with input gradient": timed(train(True), args.repeats),
        "GEMM alone (B*T, k*C) x (k*C, F)": timed(lambda: windows @ flat_kernel, args.repeats),
        "im2col alone": timed(lambda: conv._windows(x, conv.geometry(t)), args.repeats),
    }
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(1)
        causal = args.padding == "causal"
        layer = torch.nn.Conv1d(c, f, k, padding=0 if causal else args.padding)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 1, 0))))
            layer.bias.copy_(torch.from_numpy(bias))

        def run(inp):  # causal: zeros before the sequence, as Keras pads (part of the timed call)
            return torch.relu(layer(torch.nn.functional.pad(inp, (k - 1, 0)) if causal else inp))

        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1)))
        with torch.no_grad():
            want = run(xt).numpy().transpose(0, 2, 1)
        err = float(np.max(np.abs(want - y)) / max(1.0, float(np.max(np.abs(want)))))
        print(f"agreement with PyTorch: max relative error {err:.1e}")
        assert err < 1e-4
        dyt = torch.from_numpy(np.ascontiguousarray(dy.transpose(0, 2, 1)))
        xg = xt.clone().requires_grad_(True)

        def torch_forward():
            with torch.no_grad():
                run(xt)

        def torch_train(inp):
            def step():
                layer.zero_grad()
                if inp.grad is not None:
                    inp.grad = None
                (run(inp) * dyt).sum().backward()
            return step

        rows["PyTorch forward (inference)"] = timed(torch_forward, args.repeats)
        rows["PyTorch forward + backward, first layer"] = timed(torch_train(xt), args.repeats)
        rows["PyTorch forward + backward, with input gradient"] = timed(torch_train(xg), args.repeats)
    width = max(len(name) for name in rows)
    for name, ms in rows.items():
        one_product = name.startswith(("GEMM", "cgru forward (", "PyTorch forward ("))
        rate = f"  {flops / ms / 1e6:6.1f} GFLOP/s" if one_product else ""
        print(f"{name:<{width}}  {ms:8.2f} ms{rate}")

if __name__ == "__main__":
    main()
