"""A short forward + backward through each group of cgru's CUDA kernels, checked against the NumPy
reference: the program that bench/gpu_check.sh runs under compute-sanitizer (memcheck, racecheck)
and, before that, on its own as a smoke test.

    python bench/gpu_sanitize.py                                 # every group, on the GPU
    compute-sanitizer --tool memcheck python bench/gpu_sanitize.py --kernels persistent
    python bench/gpu_sanitize.py --emulate                       # the CPU emulator: no GPU

Kernel groups: "step" (the per-step forward kernels: inference and training forward),
"backward" (training forward and the fused per-step backward kernels), "persistent" (the
cooperative forward kernel, inference and training, then backward). Each runs both reset modes,
float32 and float64, with and without lengths + reverse + a recurrent mask, on sizes that are no
multiple of a warp (batch 3, 4 steps, 5 features, 33 units). CuPy's memory pool is switched off so
that every array is its own allocation and memcheck sees its exact bounds.

Prints one line per case; exits with status 1 when any result differs from the reference,
raises, or a group did not load the kernels it is meant to run.
"""

from __future__ import annotations

import argparse
import sys
import traceback

import numpy as np
from _gpu import cuda_ops, relative_difference, runs_persistent

from cgru.backends.cuda_kernels import PERSISTENT_KERNELS, STEP_KERNELS
from cgru.backends.numpy_ops import NumpyOps

BATCH, TIME, FEATURES, UNITS = 3, 4, 5, 33
LENGTHS = [4, 0, 2]
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}  # max |diff| / max(1, max |ref|)

#: group -> (persistent mode, runs backward, kernels it must load)
GROUPS = {
    "step": ("off", False, [k for k in STEP_KERNELS if k.startswith("cgru_fwd")]),
    "backward": ("off", True, [k for k in STEP_KERNELS if k.startswith("cgru_bwd")]),
    "persistent": ("always", True, list(PERSISTENT_KERNELS)),
}


def make_problem(rng, dtype, reset_after, variable):
    """Inputs of one case; ``variable``: lengths, the reverse direction and a recurrent mask."""
    x = rng.standard_normal((BATCH, TIME, FEATURES)).astype(dtype)
    kernel = (rng.standard_normal((FEATURES, 3 * UNITS)) * 0.3).astype(dtype)
    recurrent = (rng.standard_normal((UNITS, 3 * UNITS)) * 0.3).astype(dtype)
    bias = rng.standard_normal((2, 3 * UNITS) if reset_after else (3 * UNITS,)).astype(dtype)
    options = dict(h0=rng.standard_normal((BATCH, UNITS)).astype(dtype), reset_after=reset_after)
    if variable:
        mask = (rng.random((BATCH, UNITS)) < 0.8).astype(dtype) / dtype(0.8)
        options.update(lengths=np.array(LENGTHS), reverse=True, recurrent_mask=mask)
    dy = rng.standard_normal((BATCH, TIME, UNITS)).astype(dtype)
    dh = rng.standard_normal((BATCH, UNITS)).astype(dtype)
    return (x, kernel, recurrent, bias), options, dy, dh


def outputs(ops, args, options, dy, dh, backward):
    """Inference y and h_n, training y and h_n, and with ``backward`` every gradient, as NumPy."""
    y, h, _ = ops.gru_forward(*args, **options)
    result = [y, h]
    y, h, cache = ops.gru_forward(*args, training=True, **options)
    result += [y, h]
    if backward:
        result += list(ops.gru_backward(dy, dh, cache))
    return [ops.to_numpy(a) for a in result]


def run_group(name, emulate, rng):
    """Run one kernel group; returns the number of failed cases."""
    persistent, backward, kernels = GROUPS[name]
    ops = cuda_ops(persistent, emulate)
    ops.xp.cuda.set_allocator(None)  # no memory pool: each array its own allocation
    ops.verify_persistent = True  # read back the persistent kernel's status after each launch
    reference = NumpyOps()
    failures = 0
    for dtype in (np.float32, np.float64):
        for reset_after in (True, False):
            for variable in (False, True):
                label = (f"{name:<10} reset_after={reset_after!s:<5} {np.dtype(dtype).name}"
                         f"{' lengths+reverse+mask' if variable else ''}")
                args, options, dy, dh = make_problem(rng, dtype, reset_after, variable)
                try:
                    if persistent != "off" and not runs_persistent(ops, BATCH, UNITS, dtype):
                        raise RuntimeError(f"the persistent kernel would not run ({ops.persistent_error})")
                    got = outputs(ops, args, options, dy, dh, backward)
                    want = outputs(reference, args, options, dy, dh, backward)
                    diff = max(relative_difference(g, w) for g, w in zip(got, want))
                except Exception:
                    failures += 1
                    print(f"FAIL {label}: raised", flush=True)
                    traceback.print_exc()
                    continue
                ok = diff <= TOLERANCE[np.dtype(dtype)]
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {label}: max rel diff {diff:.1e}", flush=True)
    loaded = ops.kernels.loaded()  # kernels are compiled on first use only
    missing = [f"{k}<{t}>" for k in kernels for t in ("float", "double") if f"{k}<{t}>" not in loaded]
    if missing:
        failures += 1
        print(f"FAIL {name}: kernels never loaded: {missing}", flush=True)
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", nargs="+", choices=list(GROUPS), default=list(GROUPS),
                        help="kernel groups to run (default: all)")
    parser.add_argument("--emulate", action="store_true",
                        help="the CPU emulator of tests/cuda_emu instead of CuPy and a GPU")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(2024)
    failures = sum(run_group(name, args.emulate, rng) for name in args.kernels)
    print(f"{'all cases passed' if not failures else f'{failures} failures'} ({', '.join(args.kernels)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
