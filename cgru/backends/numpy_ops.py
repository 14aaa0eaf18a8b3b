"""The pure NumPy backend: the readable specification of every op, and the fallback.

Every other backend is tested against this one. It favours plain code over speed.

GRU step (gate blocks z, r, h of the kernels; ``act`` is the activation, ``sig`` the
recurrent activation; ``b_x``/``b_h`` the input/recurrent bias rows)::

    a = x_t W + b_x                                  (all three gates at once)
    z = sig(a_z + h U_z + b_hz)
    r = sig(a_r + h U_r + b_hr)
    n = act(a_h + r * (h U_h + b_hh))                reset_after=True
    n = act(a_h + (r * h) U_h)                       reset_after=False (b_hh is zero)
    h_new = z * h + (1 - z) * n
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..padding import valid_steps
from .activations import activate, activation_grad
from .base import GRUArgs, GRUGrads, Ops, check_grad, pack_bias_grad


def time_indices(step: int, time: int, lengths: np.ndarray, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """For processing step ``step``: each sequence's time index (B,) and whether it is valid (B,)."""
    valid = step < lengths
    t = lengths - 1 - step if reverse else np.full_like(lengths, step)
    return np.clip(t, 0, max(time - 1, 0)), valid


@dataclass
class NumpyGRUCache:
    """What ``gru_backward`` needs, per processing step s (leading axis T)."""

    args: GRUArgs
    lengths: np.ndarray
    h_prev: np.ndarray  # (T, B, H) state before step s
    z: np.ndarray  # (T, B, H)
    r: np.ndarray  # (T, B, H)
    n: np.ndarray  # (T, B, H)
    u_h: np.ndarray  # (T, B, H): h U_h + b_hh (reset_after) or (r*h) U_h


class NumpyOps(Ops):
    """Reference implementation in plain NumPy."""

    name = "numpy"
    compiled = False
    xp = np

    def run_gru_forward(self, args, training):
        batch, time, units = args.batch, args.time, args.units
        lengths = args.lengths if args.lengths is not None else np.full(batch, time, np.int64)
        if args.lengths is not None:  # padded steps read as zeros, whatever they hold (NaN, inf)
            zero = args.x.dtype.type(0)
            args = replace(args, x=np.where(valid_steps(lengths, time)[:, :, None], args.x, zero))
        W, U = args.kernel, args.recurrent_kernel
        H = units
        projected = args.x @ W + args.input_bias  # (B, T, 3H)
        h = args.h0.copy()
        y = np.zeros((batch, time, units), dtype=args.x.dtype)
        saved = {k: np.zeros((time, batch, units), args.x.dtype) for k in ("h_prev", "z", "r", "n", "u_h")}
        rows = np.arange(batch)
        for s in range(time):
            t, valid = time_indices(s, time, lengths, args.reverse)
            a = projected[rows, t]
            h_in = h if args.recurrent_mask is None else h * args.recurrent_mask
            if args.reset_after:
                u = h_in @ U + args.recurrent_bias
                z = activate(args.recurrent_activation, a[:, :H] + u[:, :H])
                r = activate(args.recurrent_activation, a[:, H:2 * H] + u[:, H:2 * H])
                u_h = u[:, 2 * H:]
                n = activate(args.activation, a[:, 2 * H:] + r * u_h)
            else:
                u = h_in @ U[:, :2 * H]
                z = activate(args.recurrent_activation, a[:, :H] + u[:, :H])
                r = activate(args.recurrent_activation, a[:, H:2 * H] + u[:, H:])
                u_h = (r * h_in) @ U[:, 2 * H:]
                n = activate(args.activation, a[:, 2 * H:] + u_h)
            h_new = z * h + (1 - z) * n
            for name, value in (("h_prev", h), ("z", z), ("r", r), ("n", n), ("u_h", u_h)):
                saved[name][s] = value
            h = np.where(valid[:, None], h_new, h)
            y[rows[valid], t[valid]] = h_new[valid]
        cache = NumpyGRUCache(args=args, lengths=lengths, **saved) if training else None
        return y, h, cache

    def prepare_quantized_gru(self, weights):
        from .quantize import ReferenceQuantizedGRU

        return ReferenceQuantizedGRU(weights)

    def prepare_quantized_matmul(self, matrix):
        return matrix  # a @ matrix is the product as its mode defines it

    def quantized_kernels(self):
        return {"bfloat16": "NumPy reference", "int8": "NumPy reference"}

    def gru_backward(self, dy, dh_n, cache, *, input_grad=True):
        args = cache.args
        batch, time, units = args.batch, args.time, args.units
        H = units
        dtype = args.x.dtype
        dy = check_grad(dy, "dy", (batch, time, units), dtype)
        dh = check_grad(dh_n, "dh_n", (batch, units), dtype).copy()
        W, U = args.kernel, args.recurrent_kernel
        mask = args.recurrent_mask if args.recurrent_mask is not None else np.ones((batch, units), dtype)
        d_projected = np.zeros((batch, time, 3 * H), dtype)
        dU = np.zeros_like(U)
        d_recurrent_bias = np.zeros(3 * H, dtype)
        rows = np.arange(batch)
        for s in reversed(range(time)):
            t, valid = time_indices(s, time, cache.lengths, args.reverse)
            h_prev, z, r, n, u_h = (cache.h_prev[s], cache.z[s], cache.r[s], cache.n[s], cache.u_h[s])
            h_in = h_prev * mask
            g = np.where(valid[:, None], dh + dy[rows, t], 0)  # gradient reaching h_new
            dz = g * (h_prev - n) * activation_grad(args.recurrent_activation, z)
            dn = g * (1 - z) * activation_grad(args.activation, n)
            if args.reset_after:
                dr = dn * u_h * activation_grad(args.recurrent_activation, r)
                du = np.concatenate([dz, dr, dn * r], axis=1)
                dh_in = du @ U.T
                dU += h_in.T @ du
                d_recurrent_bias += du.sum(axis=0)
            else:
                d_rh = dn @ U[:, 2 * H:].T
                dr = d_rh * h_in * activation_grad(args.recurrent_activation, r)
                dzr = np.concatenate([dz, dr], axis=1)
                dh_in = dzr @ U[:, :2 * H].T + d_rh * r
                dU[:, :2 * H] += h_in.T @ dzr
                dU[:, 2 * H:] += (r * h_in).T @ dn
            d_projected[rows[valid], t[valid]] = np.concatenate([dz, dr, dn], axis=1)[valid]
            dh_through = g * z + dh_in * mask
            dh = np.where(valid[:, None], dh_through, dh)
        flat_x = args.x.reshape(batch * time, args.x.shape[2])
        flat_dp = d_projected.reshape(batch * time, 3 * H)
        dx = (flat_dp @ W.T).reshape(args.x.shape) if input_grad else None
        dW = flat_x.T @ flat_dp
        d_input_bias = flat_dp.sum(axis=0)
        if not args.reset_after:
            d_recurrent_bias = np.zeros(3 * H, dtype)
        return GRUGrads(dx, dh, dW, dU, pack_bias_grad(args, d_input_bias, d_recurrent_bias))

