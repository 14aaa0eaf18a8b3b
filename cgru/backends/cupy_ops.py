"""The CuPy GPU backend ("cuda"): cuBLAS GEMMs through CuPy plus the fused kernels of gru.cu.

Same semantics and signatures as :mod:`cgru.backends.numpy_ops` (the reference) and the same
algorithm as the compiled CPU engine: one GEMM for the input projection of every time step,
then per step one recurrent GEMM and one fused elementwise kernel (two of each for
``reset_after=False``); backward runs one fused kernel and one GEMM per step and computes the
weight gradients as single large GEMMs over all steps. The kernels compute each row's time
index and validity from a device copy of ``lengths``, so variable lengths and the reverse
direction need no per-sequence copies.

For small batches a persistent kernel (one cooperative launch for all time steps, each block
keeping its columns of the recurrent kernel in shared memory, a grid-wide barrier between
steps) replaces the per-step launches of the forward pass. It is OFF by default until it has
been verified on a GPU: enable it with ``CGRU_CUDA_PERSISTENT=auto`` in the environment (read
when the backend starts) or ``get_ops("cuda").persistent = "auto"``; see :func:`plan_persistent`.

CuPy is optional: importing cgru never imports it; this module imports it only when the backend
is built, and says which of CuPy or a CUDA device is missing.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import GRUArgs, GRUGrads, Ops, check_grad, pack_bias_grad, valid_steps

#: How to get CuPy. cgru is installed from a checkout or a built wheel, not from PyPI, so the hint
#: names CuPy's own wheels first.
GPU_EXTRA_HINT = (
    "install the CuPy wheel for your CUDA version, e.g. `pip install cupy-cuda12x` for CUDA 12 "
    "(`cupy-cuda13x` for CUDA 13), or, from a cgru checkout, `pip install \".[gpu]\"`"
)

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
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

ACTIVATION_CODES = {"tanh": 0, "relu": 1, "linear": 2}
RECURRENT_ACTIVATION_CODES = {"sigmoid": 0, "hard_sigmoid": 1}

#: Threads per block of the elementwise kernels.
STEP_BLOCK = 256
#: Persistent-kernel switch values: "off" (default), "auto" (small batches, when U fits on
#: chip), "always" (whenever it fits, whatever the batch: for tests).
PERSISTENT_MODES = ("off", "auto", "always")
PERSISTENT_ENV = "CGRU_CUDA_PERSISTENT"
PERSISTENT_MAX_BATCH = 8
PERSISTENT_BLOCK = 256


def name_expressions(kernels: tuple[str, ...]) -> list[str]:
    """The C++ name expressions (``kernel<float>``, ``kernel<double>``) given to RawModule."""
    return [f"{k}<{t}>" for k in kernels for t in ("float", "double")]


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
    if mode not in PERSISTENT_MODES:
        raise ValueError(f"persistent mode must be one of {PERSISTENT_MODES}, got {mode!r}")
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


@dataclass
class CupyGRUCache:
    """What ``gru_backward`` needs: validated arguments and per-step saved activations."""

    args: GRUArgs
    saved_h: Any  # (T, B, H) state before each processing step
    saved_gates: Any  # (T, B, 4H): z, r, n, u_h
    lengths_dev: Any  # int32 (B,) on the device, or None (all T)


class CupyOps(Ops):
    """GRU ops on an NVIDIA GPU through CuPy.

    ``cupy_module`` replaces the ``cupy`` import (the tests pass a CPU emulation of the small
    part of CuPy used here); ``persistent`` is one of :data:`PERSISTENT_MODES` (default: the
    ``CGRU_CUDA_PERSISTENT`` environment variable, else "off").
    """

    name = "cuda"
    compiled = True

    def __init__(self, cupy_module: Any = None, *, persistent: str | None = None) -> None:
        cp = import_cupy() if cupy_module is None else cupy_module
        check_device(cp)
        self.xp = cp
        if persistent is None:
            persistent = os.environ.get(PERSISTENT_ENV, "off").strip().lower() or "off"
        if persistent not in PERSISTENT_MODES:
            raise ValueError(
                f"{PERSISTENT_ENV}/persistent must be one of {PERSISTENT_MODES}, got {persistent!r}"
            )
        self.persistent = persistent
        self.persistent_block = PERSISTENT_BLOCK
        self.persistent_max_batch = PERSISTENT_MAX_BATCH
        #: Read back the persistent kernel's status word after each launch (a device sync):
        #: for tests and debugging.
        self.verify_persistent = False
        #: Why the persistent kernel could not be loaded on this machine (None: no failure).
        self.persistent_error: str | None = None
        self._lock = threading.Lock()
        self._modules: dict[bool, Any] = {}
        self._kernels: dict[str, Any] = {}
        self._device_info: dict[int, tuple[int, int, bool]] = {}
        self._smem_attr: dict[tuple[int, str], int] = {}

    # -- arrays ----------------------------------------------------------------------------

    def to_numpy(self, x: Any) -> np.ndarray:
        """A NumPy copy of a CuPy array (NumPy arrays pass through)."""
        return np.asarray(self.xp.asnumpy(x))

    # -- kernels ---------------------------------------------------------------------------

    def _module(self, cooperative: bool) -> Any:
        mod = self._modules.get(cooperative)
        if mod is None:
            with self._lock:
                mod = self._modules.get(cooperative)
                if mod is None:
                    kernels = PERSISTENT_KERNELS if cooperative else STEP_KERNELS
                    mod = self.xp.RawModule(
                        code=KERNEL_SOURCE.read_text(),
                        options=(),
                        name_expressions=name_expressions(kernels),
                        enable_cooperative_groups=cooperative,
                    )
                    self._modules[cooperative] = mod
        return mod

    def _kernel(self, name: str, dtype: np.dtype) -> Any:
        """The compiled kernel ``name<float|double>`` (compiled on first use, cached per device
        by CuPy)."""
        expr = f"{name}<{_CTYPES[np.dtype(dtype)]}>"
        kern = self._kernels.get(expr)
        if kern is None:
            kern = self._module(name in PERSISTENT_KERNELS).get_function(expr)
            with self._lock:
                kern = self._kernels.setdefault(expr, kern)
        return kern

    def _device(self) -> tuple[int, int, int, bool]:
        """(device id, multiprocessors, opt-in shared memory per block, cooperative launch)."""
        dev = self.xp.cuda.Device()
        dev_id = int(dev.id)
        info = self._device_info.get(dev_id)
        if info is None:
            attrs = dev.attributes
            smem = attrs.get("MaxSharedMemoryPerBlockOptin") or attrs.get("MaxSharedMemoryPerBlock", 0)
            info = (
                int(attrs.get("MultiProcessorCount", 0)),
                int(smem),
                bool(attrs.get("CooperativeLaunch", 0)),
            )
            self._device_info[dev_id] = info
        return (dev_id, *info)

    def _persistent_plan(self, batch: int, units: int, dtype: np.dtype) -> PersistentPlan | None:
        if self.persistent == "off":
            return None
        dev_id, num_sms, max_smem, cooperative = self._device()
        plan = plan_persistent(
            self.persistent, batch, units, np.dtype(dtype).itemsize, num_sms, max_smem,
            cooperative, self.persistent_block, self.persistent_max_batch,
        )
        if plan is None or self.persistent_error is not None:
            return None
        key = (dev_id, _CTYPES[np.dtype(dtype)])
        try:
            kern = self._kernel("cgru_fwd_persistent", dtype)
            with self._lock:
                if plan.smem_bytes > self._smem_attr.get(key, 48 * 1024):
                    kern.max_dynamic_shared_size_bytes = plan.smem_bytes
                    self._smem_attr[key] = plan.smem_bytes
            per_sm = self.xp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(
                kern.kernel.ptr, plan.block, plan.smem_bytes
            )
        except Exception as exc:
            # e.g. an older CuPy that compiles cooperative kernels with -rdc and cannot find
            # libcudadevrt: keep the per-step path, remember why.
            if self.verify_persistent:
                raise
            self.persistent_error = f"{type(exc).__name__}: {exc}"
            return None
        if plan.grid > int(per_sm) * num_sms:
            return None  # cannot be co-resident: a cooperative launch would fail
        return plan

    # -- GRU -------------------------------------------------------------------------------

    def run_gru_forward(self, args, training):
        cp = self.xp
        B, T, H = args.batch, args.time, args.units
        n_in = args.x.shape[2]
        G = 3 * H
        dtype = args.x.dtype
        if B == 0 or T == 0:
            y = cp.zeros((B, T, H), dtype=dtype)
            cache = None
            if training:
                cache = CupyGRUCache(
                    args, cp.zeros((T, B, H), dtype=dtype), cp.zeros((T, B, 4 * H), dtype=dtype), None
                )
            return y, args.h0.copy(), cache

        lengths_dev = None if args.lengths is None else cp.asarray(args.lengths.astype(np.int32))
        if n_in == 0:
            proj = cp.zeros((B * T, G), dtype=dtype)
        else:
            proj = cp.matmul(args.x.reshape(B * T, n_in), args.kernel)  # (B*T, 3H), no bias
        # Every (b, t) is written when all rows run all T steps; zeros are needed otherwise.
        y = cp.zeros((B, T, H), dtype=dtype) if args.lengths is not None else cp.empty((B, T, H), dtype=dtype)
        saved_h = cp.empty((T, B, H), dtype=dtype) if training else None
        saved_gates = cp.empty((T, B, 4 * H), dtype=dtype) if training else None
        codes = (
            np.int32(args.reverse),
            ACTIVATION_CODES[args.activation],
            RECURRENT_ACTIVATION_CODES[args.recurrent_activation],
        )

        plan = self._persistent_plan(B, H, dtype)
        if plan is not None:
            h_n = self._forward_persistent(args, plan, proj, y, saved_h, saved_gates, lengths_dev)
        else:
            h_n = self._forward_steps(args, proj, y, saved_h, saved_gates, lengths_dev, codes)
        cache = CupyGRUCache(args, saved_h, saved_gates, lengths_dev) if training else None
        return y, h_n, cache

    def _forward_steps(self, args, proj, y, saved_h, saved_gates, lengths_dev, codes):
        cp = self.xp
        B, T, H = args.batch, args.time, args.units
        dtype = args.x.dtype
        U, bx, bh, mask = args.recurrent_kernel, args.input_bias, args.recurrent_bias, args.recurrent_mask
        rev, act, ract = codes
        i32 = np.int32
        grid = ((B * H + STEP_BLOCK - 1) // STEP_BLOCK,)
        block = (STEP_BLOCK,)
        h = args.h0.copy()
        h_in = None if mask is None else cp.ascontiguousarray(h * mask)
        src = h if mask is None else h_in  # left operand of the recurrent GEMM
        dims = (lengths_dev, i32(B), i32(T), i32(H))
        if args.reset_after:
            step = self._kernel("cgru_fwd_step_after", dtype)
            u = cp.empty((B, 3 * H), dtype=dtype)
            for s in range(T):
                cp.matmul(src, U, out=u)
                step(grid, block, (proj, u, bx, bh, h, h_in, mask, y, saved_h, saved_gates, *dims,
                                   i32(s), rev, i32(act), i32(ract)))
        else:
            step_zr = self._kernel("cgru_fwd_step_before_zr", dtype)
            step_n = self._kernel("cgru_fwd_step_before_n", dtype)
            U_zr = cp.ascontiguousarray(U[:, : 2 * H])
            U_h = cp.ascontiguousarray(U[:, 2 * H:])
            uzr = cp.empty((B, 2 * H), dtype=dtype)
            rh = cp.empty((B, H), dtype=dtype)
            uh = cp.empty((B, H), dtype=dtype)
            for s in range(T):
                cp.matmul(src, U_zr, out=uzr)
                step_zr(grid, block, (proj, uzr, bx, src, rh, *dims, i32(s), rev, i32(ract)))
                cp.matmul(rh, U_h, out=uh)
                step_n(grid, block, (proj, uzr, uh, bx, h, h_in, mask, y, saved_h, saved_gates, *dims,
                                     i32(s), rev, i32(act)))
        return h

    def _forward_persistent(self, args, plan, proj, y, saved_h, saved_gates, lengths_dev):
        cp = self.xp
        B, T, H = args.batch, args.time, args.units
        dtype = args.x.dtype
        i32 = np.int32
        hbuf = cp.empty((2, B, H), dtype=dtype)
        hbuf[0] = args.h0
        rh = None if args.reset_after else cp.empty((B, H), dtype=dtype)
        sync = cp.zeros(2, dtype=np.uint32)  # barrier counter, status
        kern = self._kernel("cgru_fwd_persistent", dtype)
        kern(
            (plan.grid,),
            (plan.block,),
            (
                proj, args.recurrent_kernel, args.input_bias, args.recurrent_bias, hbuf, rh,
                args.recurrent_mask, y, saved_h, saved_gates, lengths_dev, sync,
                i32(B), i32(T), i32(H), i32(args.reverse), i32(args.reset_after),
                i32(ACTIVATION_CODES[args.activation]),
                i32(RECURRENT_ACTIVATION_CODES[args.recurrent_activation]),
                i32(plan.jcap), np.int64(plan.smem_elems),
            ),
            shared_mem=plan.smem_bytes,
        )
        if self.verify_persistent:
            status = int(np.asarray(cp.asnumpy(sync))[1])
            if status:
                raise RuntimeError(f"persistent GRU kernel refused its launch shape (status {status})")
        return cp.ascontiguousarray(hbuf[T % 2])

    def gru_backward(self, dy, dh_n, cache, *, input_grad=True):
        cp = self.xp
        args = cache.args
        B, T, H = args.batch, args.time, args.units
        n_in = args.x.shape[2]
        G = 3 * H
        dtype = args.x.dtype
        dy = None if dy is None else check_grad(dy, "dy", (B, T, H), dtype, xp=cp)
        dh = check_grad(dh_n, "dh_n", (B, H), dtype, xp=cp).copy()
        W, U, mask = args.kernel, args.recurrent_kernel, args.recurrent_mask
        if B == 0 or T == 0:
            zeros = cp.zeros(G, dtype=dtype)
            dx = cp.zeros(args.x.shape, dtype=dtype) if input_grad else None
            return GRUGrads(
                dx, dh, cp.zeros(W.shape, dtype=dtype),
                cp.zeros(U.shape, dtype=dtype), pack_bias_grad(args, zeros, zeros.copy(), xp=cp),
            )
        saved_h, saved_gates, lengths_dev = cache.saved_h, cache.saved_gates, cache.lengths_dev
        i32 = np.int32
        rev = i32(args.reverse)
        act = i32(ACTIVATION_CODES[args.activation])
        ract = i32(RECURRENT_ACTIVATION_CODES[args.recurrent_activation])
        grid = ((B * H + STEP_BLOCK - 1) // STEP_BLOCK,)
        block = (STEP_BLOCK,)
        dims = (lengths_dev, i32(B), i32(T), i32(H))
        d_proj = cp.zeros((B, T, G), dtype=dtype)
        dh_rec = cp.empty((B, H), dtype=dtype)  # (d_rec of step s+1) U^T
        if args.reset_after:
            step = self._kernel("cgru_bwd_step_after", dtype)
            d_rec = cp.zeros((T, B, G), dtype=dtype)
            UT = cp.ascontiguousarray(U.T)  # (3H, H)
            for s in range(T - 1, -1, -1):
                step(grid, block, (saved_h, saved_gates, mask, dy, dh, dh_rec if s < T - 1 else None,
                                   d_proj, d_rec, *dims, i32(s), rev, act, ract))
                cp.matmul(d_rec[s], UT, out=dh_rec)
        else:
            step1 = self._kernel("cgru_bwd_step_before_1", dtype)
            step2 = self._kernel("cgru_bwd_step_before_2", dtype)
            d_zr = cp.zeros((T, B, 2 * H), dtype=dtype)
            d_n = cp.zeros((T, B, H), dtype=dtype)
            UzrT = cp.ascontiguousarray(U[:, : 2 * H].T)  # (2H, H)
            UhT = cp.ascontiguousarray(U[:, 2 * H:].T)  # (H, H)
            d_rh = cp.empty((B, H), dtype=dtype)
            for s in range(T - 1, -1, -1):
                step1(grid, block, (saved_h, saved_gates, mask, dy, dh, dh_rec if s < T - 1 else None,
                                    d_proj, d_zr, d_n, *dims, i32(s), rev, act, ract))
                cp.matmul(d_n[s], UhT, out=d_rh)
                step2(grid, block, (saved_h, saved_gates, mask, d_rh, dh, d_proj, d_zr, *dims,
                                    i32(s), rev, ract))
                cp.matmul(d_zr[s], UzrT, out=dh_rec)
        dh0 = dh + (dh_rec if mask is None else dh_rec * mask)

        flat_dp = d_proj.reshape(B * T, G)
        dx = None
        if n_in == 0:
            dx = cp.zeros(args.x.shape, dtype=dtype) if input_grad else None
            dW = cp.zeros(W.shape, dtype=dtype)
        else:
            if input_grad:
                dx = cp.ascontiguousarray(cp.matmul(flat_dp, W.T).reshape(args.x.shape))
            x = args.x
            if args.lengths is not None:  # padded steps: their rows of flat_dp are 0, but 0 * inf is NaN
                x = cp.where(cp.asarray(valid_steps(args.lengths, T)[:, :, None]), x, x.dtype.type(0))
            dW = cp.matmul(x.reshape(B * T, n_in).T, flat_dp)
        d_input_bias = flat_dp.sum(axis=0)
        h_in = saved_h if mask is None else saved_h * mask  # (T, B, H)
        h_in = h_in.reshape(T * B, H)
        if args.reset_after:
            flat_rec = d_rec.reshape(T * B, G)
            dU = cp.matmul(h_in.T, flat_rec)
            d_recurrent_bias = flat_rec.sum(axis=0)
        else:
            dU = cp.empty((H, G), dtype=dtype)
            dU[:, : 2 * H] = cp.matmul(h_in.T, d_zr.reshape(T * B, 2 * H))
            left = h_in * saved_gates[:, :, H: 2 * H].reshape(T * B, H)  # r * h_in
            dU[:, 2 * H:] = cp.matmul(left.T, d_n.reshape(T * B, H))
            d_recurrent_bias = cp.zeros(G, dtype=dtype)
        return GRUGrads(
            dx, dh0, cp.ascontiguousarray(dW), dU,
            pack_bias_grad(args, d_input_bias, d_recurrent_bias, xp=cp),
        )
