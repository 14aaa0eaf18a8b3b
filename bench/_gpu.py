"""cgru's "cuda" backend for the GPU scripts (gpu_compare.py, gpu_sanitize.py): CuPy on a device,
or with ``emulate`` the CPU emulation of CuPy from tests/cuda_emu, which runs the real backend and
kernels on the CPU so that the scripts' own logic can be checked without a GPU (it says nothing
about speed or about CUDA itself)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

EMULATOR = Path(__file__).resolve().parent.parent / "tests" / "cuda_emu" / "fake_cupy.py"


def _fake_cupy() -> Any:
    if not EMULATOR.exists():
        raise SystemExit(f"--emulate needs the test emulator, {EMULATOR}, beside bench/")
    spec = importlib.util.spec_from_file_location("cgru_bench_fake_cupy", EMULATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fake = None


def cuda_ops(persistent: str, emulate: bool = False) -> Any:
    """A CupyOps with the persistent kernel in mode ``persistent`` ("off", "auto", "always").

    Raises ImportError (no CuPy) or RuntimeError (no device) as the backend does."""
    global _fake
    if not emulate:
        from cgru.backends.cupy_ops import CupyOps

        return CupyOps(persistent=persistent)
    if _fake is None:
        _fake = _fake_cupy()
    return _fake.emulated_ops(_fake.emulated_cupy(), persistent)


def synchronize(ops: Any) -> None:
    """Wait for the device work queued by ``ops``."""
    ops.xp.cuda.Device().synchronize()


def runs_persistent(ops: Any, batch: int, units: int, dtype: Any) -> bool:
    """Whether ``ops`` runs a forward pass of this size as the persistent kernel (its mode, the
    shared memory it needs and the device's occupancy all allow it)."""
    return ops._persistent_plan(batch, units, dtype) is not None


def relative_difference(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max(1, max |want|): the agreement measure of the GPU scripts."""
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    return float(np.max(np.abs(got - want), initial=0.0)) / scale
