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
steps) replaces the per-step launches of the forward pass; it is off by default (see
:mod:`cgru.backends.cuda_plan`).

This module holds the ops; beside it, :mod:`~cgru.backends.cuda_kernels` compiles gru.cu,
:mod:`~cgru.backends.cuda_device` finds CuPy and queries the device, and
:mod:`~cgru.backends.cuda_plan` chooses the launch shapes. CuPy is optional: importing cgru
never imports it; the backend imports it only when it is built, and says which of CuPy or a
CUDA device is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..padding import valid_steps
from .base import GRUArgs, GRUGrads, Ops, check_grad, pack_bias_grad
from .cuda_device import DeviceQuery, check_device, import_cupy
from .cuda_kernels import CudaKernels, activation_codes
from .cuda_plan import (
    PERSISTENT_BLOCK,
    PERSISTENT_MAX_BATCH,
    PersistentPlan,
    persistent_mode,
    plan_persistent,
    step_launch,
)


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
    part of CuPy used here); ``persistent`` is one of ``cuda_plan.PERSISTENT_MODES`` (default:
    the ``CGRU_CUDA_PERSISTENT`` environment variable, else "off").
    """

    name = "cuda"
    compiled = True

    def __init__(self, cupy_module: Any = None, *, persistent: str | None = None) -> None:
        cp = import_cupy() if cupy_module is None else cupy_module
        check_device(cp)
        self.xp = cp
        self.persistent = persistent_mode(persistent)
        self.persistent_block = PERSISTENT_BLOCK
        self.persistent_max_batch = PERSISTENT_MAX_BATCH
        #: Read back the persistent kernel's status word after each launch (a device sync):
        #: for tests and debugging.
        self.verify_persistent = False
        #: Why the persistent kernel could not be loaded on this machine (None: no failure).
        self.persistent_error: str | None = None
        self.kernels = CudaKernels(cp)
        self.devices = DeviceQuery(cp)

    def to_numpy(self, x: Any) -> np.ndarray:
        """A NumPy copy of a CuPy array (NumPy arrays pass through)."""
        return np.asarray(self.xp.asnumpy(x))

    def _kernel(self, name: str, dtype: np.dtype) -> Any:
        """The compiled kernel ``name<float|double>`` (see CudaKernels.get)."""
        return self.kernels.get(name, dtype)

    def _persistent_plan(self, batch: int, units: int, dtype: np.dtype) -> PersistentPlan | None:
        """The persistent kernel's launch shape for this forward pass on the current device, or
        None for the per-step path: mode, size, shared memory, loading and co-residency allow."""
        if self.persistent == "off":
            return None
        dev = self.devices.current()
        plan = plan_persistent(
            self.persistent, batch, units, np.dtype(dtype).itemsize, dev.multiprocessors,
            dev.max_smem_per_block, dev.cooperative_launch, self.persistent_block,
            self.persistent_max_batch,
        )
        if plan is None or self.persistent_error is not None:
            return None
        try:
            self.kernels.allow_dynamic_smem("cgru_fwd_persistent", dtype, dev.device_id, plan.smem_bytes)
            per_sm = self.devices.max_active_blocks_per_sm(
                self._kernel("cgru_fwd_persistent", dtype), plan.block, plan.smem_bytes
            )
        except Exception as exc:
            # e.g. an older CuPy that compiles cooperative kernels with -rdc and cannot find
            # libcudadevrt: keep the per-step path, remember why.
            if self.verify_persistent:
                raise
            self.persistent_error = f"{type(exc).__name__}: {exc}"
            return None
        if plan.grid > per_sm * dev.multiprocessors:
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
        plan = self._persistent_plan(B, H, dtype)
        if plan is not None:
            h_n = self._forward_persistent(args, plan, proj, y, saved_h, saved_gates, lengths_dev)
        else:
            h_n = self._forward_steps(args, proj, y, saved_h, saved_gates, lengths_dev)
        cache = CupyGRUCache(args, saved_h, saved_gates, lengths_dev) if training else None
        return y, h_n, cache

    def _forward_steps(self, args, proj, y, saved_h, saved_gates, lengths_dev):
        cp = self.xp
        B, T, H = args.batch, args.time, args.units
        dtype = args.x.dtype
        U, bx, bh, mask = args.recurrent_kernel, args.input_bias, args.recurrent_bias, args.recurrent_mask
        rev, i32 = np.int32(args.reverse), np.int32
        act, ract = activation_codes(args.activation, args.recurrent_activation)
        grid, block = step_launch(B, H)
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
                                   i32(s), rev, act, ract))
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
                step_zr(grid, block, (proj, uzr, bx, src, rh, *dims, i32(s), rev, ract))
                cp.matmul(rh, U_h, out=uh)
                step_n(grid, block, (proj, uzr, uh, bx, h, h_in, mask, y, saved_h, saved_gates, *dims,
                                     i32(s), rev, act))
        return h

    def _forward_persistent(self, args, plan, proj, y, saved_h, saved_gates, lengths_dev):
        cp = self.xp
        B, T, H = args.batch, args.time, args.units
        dtype = args.x.dtype
        i32 = np.int32
        act, ract = activation_codes(args.activation, args.recurrent_activation)
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
                i32(B), i32(T), i32(H), i32(args.reverse), i32(args.reset_after), act, ract,
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
        act, ract = activation_codes(args.activation, args.recurrent_activation)
        grid, block = step_launch(B, H)
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
