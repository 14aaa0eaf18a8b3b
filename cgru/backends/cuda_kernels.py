"""The kernels of gru.cu as the "cuda" backend compiles and calls them.

gru.cu ships with the package and is compiled at run time by CuPy (NVRTC) through
``RawModule(code=..., name_expressions=["kernel<float>", "kernel<double>", ...])``, lazily: the
per-step kernels on their first use, the persistent kernel (a cooperative launch, so a module of
its own) only when that path is taken. The activation codes the kernels take come from
``cgru.backends.activations``, the table gru.cu's ``cgru_activation_code`` enums match.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from .activations import ACTIVATION_CODES, RECURRENT_ACTIVATION_CODES

KERNEL_SOURCE = Path(__file__).with_name("gru.cu")

#: Kernels of the per-step path (normal launches) and of the persistent path (cooperative).
STEP_KERNELS = (
    "cgru_fwd_step_after",
    "cgru_fwd_step_before_zr",
    "cgru_fwd_step_before_n",
    "cgru_bwd_step_after",
    "cgru_bwd_step_before_1",
    "cgru_bwd_step_before_2",
)
PERSISTENT_KERNELS = ("cgru_fwd_persistent",)

#: NVRTC options of both modules (CuPy adds the architecture of the current device).
COMPILE_OPTIONS: tuple[str, ...] = ()


_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def name_expressions(kernels: tuple[str, ...]) -> list[str]:
    """The C++ name expressions (``kernel<float>``, ``kernel<double>``) given to RawModule."""
    return [f"{k}<{t}>" for k in kernels for t in ("float", "double")]


def ctype(dtype: Any) -> str:
    """The kernels' template argument for a float32 or float64 array dtype."""
    return _CTYPES[np.dtype(dtype)]


def activation_codes(activation: str, recurrent_activation: str) -> tuple[np.int32, np.int32]:
    """The ``act`` and ``ract`` kernel arguments for activation names already validated."""
    return np.int32(ACTIVATION_CODES[activation]), np.int32(RECURRENT_ACTIVATION_CODES[recurrent_activation])


class CudaKernels:
    """gru.cu's kernels, compiled on first use and cached; safe to share between threads.

    ``cupy`` is the CuPy module (or the tests' CPU stand-in for it). CuPy itself caches each
    compiled module per device and on disk; this keeps the kernel objects and the shared-memory
    limit raised for each (device, kernel).
    """

    def __init__(self, cupy: Any) -> None:
        self._cupy = cupy
        self._lock = threading.Lock()
        self._modules: dict[bool, Any] = {}
        self._kernels: dict[str, Any] = {}
        self._smem_limit: dict[tuple[int, str], int] = {}

    def _module(self, cooperative: bool) -> Any:
        mod = self._modules.get(cooperative)
        if mod is None:
            with self._lock:
                mod = self._modules.get(cooperative)
                if mod is None:
                    kernels = PERSISTENT_KERNELS if cooperative else STEP_KERNELS
                    mod = self._cupy.RawModule(
                        code=KERNEL_SOURCE.read_text(),
                        options=COMPILE_OPTIONS,
                        name_expressions=name_expressions(kernels),
                        enable_cooperative_groups=cooperative,
                    )
                    self._modules[cooperative] = mod
        return mod

    def get(self, name: str, dtype: Any) -> Any:
        """The kernel ``name<float|double>`` for arrays of ``dtype`` (compiled on first use)."""
        expr = f"{name}<{ctype(dtype)}>"
        kern = self._kernels.get(expr)
        if kern is None:
            kern = self._module(name in PERSISTENT_KERNELS).get_function(expr)
            with self._lock:
                kern = self._kernels.setdefault(expr, kern)
        return kern

    def loaded(self) -> set[str]:
        """Name expressions (``kernel<float>``...) of the kernels compiled and fetched so far."""
        with self._lock:
            return set(self._kernels)

    def allow_dynamic_smem(self, name: str, dtype: Any, device_id: int, nbytes: int) -> None:
        """Let the kernel ``name<...>`` for ``dtype`` launch with ``nbytes`` of dynamic shared
        memory on the current device, ``device_id`` (above 48 KiB a launch needs this)."""
        kern = self.get(name, dtype)
        key = (device_id, f"{name}<{ctype(dtype)}>")
        with self._lock:
            if nbytes > self._smem_limit.get(key, 48 * 1024):
                kern.max_dynamic_shared_size_bytes = nbytes
                self._smem_limit[key] = nbytes
