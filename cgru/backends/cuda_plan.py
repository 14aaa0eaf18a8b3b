"""Launch shapes of the "cuda" backend's kernels: the per-step grid and the persistent plan.

Arithmetic on sizes and device properties only (no CuPy), so all of it is tested without a GPU.
The persistent forward kernel (one cooperative launch for every time step, see gru.cu) is OFF
by default until it has been verified on a GPU: ``CGRU_CUDA_PERSISTENT=auto`` in the
environment (read when the backend starts) or ``get_ops("cuda").persistent = "auto"`` enables
it for small batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Threads per block of the per-step (elementwise) kernels.
STEP_BLOCK = 256

#: Persistent-kernel switch values: "off" (default), "auto" (small batches, when U fits on
#: chip), "always" (whenever it fits, whatever the batch: for tests).
PERSISTENT_MODES = ("off", "auto", "always")
PERSISTENT_ENV = "CGRU_CUDA_PERSISTENT"
PERSISTENT_MAX_BATCH = 8
PERSISTENT_BLOCK = 256


def step_launch(batch: int, units: int) -> tuple[tuple[int], tuple[int]]:
    """(grid, block) of the per-step kernels: one thread per (batch row, unit)."""
    return ((batch * units + STEP_BLOCK - 1) // STEP_BLOCK,), (STEP_BLOCK,)


def check_persistent_mode(mode: str, what: str = "persistent mode") -> str:
    """``mode`` if it is one of :data:`PERSISTENT_MODES`, else a ValueError naming ``what``."""
    if mode not in PERSISTENT_MODES:
        raise ValueError(f"{what} must be one of {PERSISTENT_MODES}, got {mode!r}")
    return mode


def persistent_mode(value: str | None) -> str:
    """The backend's persistent mode: ``value``, else $CGRU_CUDA_PERSISTENT (any case), else
    "off"."""
    if value is None:
        value = os.environ.get(PERSISTENT_ENV, "off").strip().lower() or "off"
    return check_persistent_mode(value, f"{PERSISTENT_ENV}/persistent")


@dataclass(frozen=True)
class PersistentPlan:
    """Launch shape of the persistent forward kernel (see gru.cu)."""

    grid: int  # blocks: one per group of jcap units
    block: int  # threads per block
    jcap: int  # units per block (columns of U kept in shared memory: 3 * jcap)
    smem_elems: int  # dynamic shared memory, in elements
    smem_bytes: int


def persistent_smem_elems(batch: int, units: int, jcap: int, block: int) -> int:
    """Shared memory of the persistent kernel in elements: U tile, state, products, partials.

    Must match the layout computed at the top of ``cgru_fwd_persistent`` in gru.cu.
    """
    ncol = 3 * jcap
    return ncol * units + batch * units + batch * ncol + max(block, batch * ncol)


def plan_persistent(
    mode: str,
    batch: int,
    units: int,
    itemsize: int,
    num_sms: int,
    max_smem_bytes: int,
    cooperative: bool = True,
    block: int = PERSISTENT_BLOCK,
    max_batch: int = PERSISTENT_MAX_BATCH,
) -> PersistentPlan | None:
    """Whether (and how) to run the forward pass as one persistent kernel; None = per-step path.

    "auto" takes it for ``batch <= max_batch`` when the device supports cooperative launches and
    a block's share of U (``3 * ceil(units / blocks)`` columns) plus the batch's state fit in
    shared memory with one block per multiprocessor; "always" drops the batch limit; "off"
    never. The caller still checks the occupancy of the compiled kernel before launching.
    """
    check_persistent_mode(mode)
    if mode == "off" or not cooperative:
        return None
    if batch < 1 or units < 1 or num_sms < 1 or block < 1:
        return None
    if mode == "auto" and batch > max_batch:
        return None
    grid = min(units, num_sms)
    jcap = -(-units // grid)
    grid = -(-units // jcap)  # no idle blocks
    elems = persistent_smem_elems(batch, units, jcap, block)
    nbytes = elems * itemsize
    if nbytes > max_smem_bytes:
        return None
    return PersistentPlan(grid=grid, block=block, jcap=jcap, smem_elems=elems, smem_bytes=nbytes)
