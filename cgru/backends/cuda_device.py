"""Finding CuPy and a CUDA device, and what the "cuda" backend needs to know of the device.

CuPy is optional: nothing here imports it at module level; :func:`import_cupy` does, and says
how to install it when it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: How to get CuPy. cgru is installed from a checkout or a built wheel, not from PyPI, so the hint
#: names CuPy's own wheels first.
GPU_EXTRA_HINT = (
    "install the CuPy wheel for your CUDA version, e.g. `pip install cupy-cuda12x` for CUDA 12 "
    "(`cupy-cuda13x` for CUDA 13), or, from a cgru checkout, `pip install \".[gpu]\"`"
)


def import_cupy() -> Any:
    """Import CuPy, or raise an ImportError that says how to get it."""
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(
            f"the 'cuda' backend needs CuPy, which is not installed ({exc}): {GPU_EXTRA_HINT}"
        ) from exc
    return cupy


def check_device(cupy: Any) -> None:
    """Raise a RuntimeError unless CuPy sees at least one usable CUDA device."""
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError (a RuntimeError): no driver, no device, ...
        raise RuntimeError(
            f"CuPy is installed but no CUDA device is usable ({exc}); the 'cuda' backend needs an "
            "NVIDIA GPU and driver: use set_backend('cpu') on this machine"
        ) from exc
    if count < 1:
        raise RuntimeError(
            "CuPy is installed but found no CUDA device; the 'cuda' backend needs an NVIDIA GPU: "
            "use set_backend('cpu') on this machine"
        )


@dataclass(frozen=True)
class DeviceProperties:
    """What the launch plans need of one CUDA device."""

    device_id: int
    multiprocessors: int
    max_smem_per_block: int  # bytes of dynamic shared memory a block may opt in to
    cooperative_launch: bool  # whether cooperative (grid-synchronising) launches are supported


class DeviceQuery:
    """Properties of CuPy's current device, read once per device (``cupy``: the CuPy module)."""

    def __init__(self, cupy: Any) -> None:
        self._cupy = cupy
        self._known: dict[int, DeviceProperties] = {}

    def current(self) -> DeviceProperties:
        dev = self._cupy.cuda.Device()
        dev_id = int(dev.id)
        props = self._known.get(dev_id)
        if props is None:
            attrs = dev.attributes
            smem = attrs.get("MaxSharedMemoryPerBlockOptin") or attrs.get("MaxSharedMemoryPerBlock", 0)
            props = DeviceProperties(
                device_id=dev_id,
                multiprocessors=int(attrs.get("MultiProcessorCount", 0)),
                max_smem_per_block=int(smem),
                cooperative_launch=bool(attrs.get("CooperativeLaunch", 0)),
            )
            self._known[dev_id] = props
        return props

    def max_active_blocks_per_sm(self, kernel: Any, block: int, smem_bytes: int) -> int:
        """How many blocks of ``kernel`` (a CuPy RawKernel) of ``block`` threads and
        ``smem_bytes`` of dynamic shared memory one multiprocessor holds at once."""
        occupancy = self._cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor
        return int(occupancy(kernel.kernel.ptr, block, smem_bytes))
