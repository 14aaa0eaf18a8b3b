"""The compiled CPU backend: the Cython/C engine in ``cgru._engine`` over OpenBLAS."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import (
    GRUArgs,
    GRUGrads,
    Ops,
    PreparedGRU,
    check_activations,
    check_grad,
    check_gru_args,
    check_gru_weights,
    check_lengths,
    pack_bias_grad,
)


def load_engine():
    """Import the compiled extension, with an error that says how to get it."""
    try:
        from .. import _engine
    except ImportError as exc:
        raise ImportError(
            "the compiled cgru engine is not available (cgru._engine failed to import: "
            f"{exc}); reinstall cgru with `pip install .` or use set_backend('numpy')"
        ) from exc
    return _engine


@dataclass
class CPUGRUCache:
    """What the compiled backward needs: the validated arguments and the saved activations."""

    args: GRUArgs
    saved_h: np.ndarray  # (T, B, H)
    saved_gates: np.ndarray  # (T, B, 4H)


class CPUPreparedGRU(PreparedGRU):
    """PreparedGRU over the engine's GRUInference: per call, one dtype/shape check and the kernel."""

    def __init__(self, engine, kernel, recurrent_kernel, bias=None, *, reverse=False, reset_after=True,
                 activation="tanh", recurrent_activation="sigmoid"):
        check_activations(activation, recurrent_activation)
        kernel, recurrent_kernel, input_bias, recurrent_bias, _ = check_gru_weights(
            kernel, recurrent_kernel, bias, reset_after=reset_after)
        self.dtype = kernel.dtype
        self.inference = engine.GRUInference(kernel, recurrent_kernel, input_bias, recurrent_bias,
                                             reverse, reset_after, activation, recurrent_activation)
        self.run = self.inference.forward

    def forward(self, x, h, lengths=None):
        if type(x) is not np.ndarray or x.dtype != self.dtype or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=self.dtype)
        if lengths is not None:
            lengths = check_lengths(lengths, x.shape[0], x.shape[1]) if x.ndim == 3 else lengths
        return self.run(x, h, lengths)


class CPUOps(Ops):
    """GRU ops on the compiled engine (GIL released, no shared scratch: thread-safe)."""

    name = "cpu"
    compiled = True
    xp = np

    def __init__(self) -> None:
        self.engine = load_engine()

    def gru_forward(
        self,
        x,
        kernel,
        recurrent_kernel,
        bias=None,
        *,
        h0=None,
        lengths=None,
        reverse=False,
        reset_after=True,
        activation="tanh",
        recurrent_activation="sigmoid",
        recurrent_mask=None,
        training=False,
    ):
        args = check_gru_args(
            x, kernel, recurrent_kernel, bias, h0=h0, lengths=lengths, reverse=reverse,
            reset_after=reset_after, activation=activation,
            recurrent_activation=recurrent_activation, recurrent_mask=recurrent_mask,
        )
        y, h_n, saved_h, saved_gates = self.engine.gru_forward(
            args.x, args.kernel, args.recurrent_kernel, args.input_bias, args.recurrent_bias,
            args.h0, args.lengths, args.recurrent_mask, args.reverse, args.reset_after,
            args.activation, args.recurrent_activation, training,
        )
        cache = CPUGRUCache(args, saved_h, saved_gates) if training else None
        return y, h_n, cache

    def prepare_gru(self, kernel, recurrent_kernel, bias=None, *, reverse=False, reset_after=True,
                    activation="tanh", recurrent_activation="sigmoid"):
        return CPUPreparedGRU(self.engine, kernel, recurrent_kernel, bias, reverse=reverse,
                              reset_after=reset_after, activation=activation,
                              recurrent_activation=recurrent_activation)

    def gru_backward(self, dy, dh_n, cache):
        args = cache.args
        shape_h = (args.batch, args.units)
        dtype = args.x.dtype
        dy = None if dy is None else check_grad(dy, "dy", (args.batch, args.time, args.units), dtype)
        dh_n = None if dh_n is None else check_grad(dh_n, "dh_n", shape_h, dtype)
        dx, dh0, dW, dU, dbx, dbh = self.engine.gru_backward(
            args.x, args.kernel, args.recurrent_kernel, args.recurrent_mask, cache.saved_h,
            cache.saved_gates, dy, dh_n, args.lengths, args.reverse, args.reset_after,
            args.activation, args.recurrent_activation,
        )
        return GRUGrads(dx, dh0, dW, dU, pack_bias_grad(args, dbx, dbh))
