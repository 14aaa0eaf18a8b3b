"""The compiled CPU backend: the Cython/C engine in ``cgru._engine`` over OpenBLAS."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import parallel
from .base import (
    GRUArgs,
    GRUGrads,
    Ops,
    PreparedGRU,
    check_activations,
    check_grad,
    check_gru_weights,
    check_lengths,
    forward_flops,
    pack_bias_grad,
)
from .buffers import ArrayPool
from .parallel import counted, forward_plan, pieces, run_all, split_may_pay, split_pays, unit_split
from .quantize import QuantizedGRU

# unit_split and run_all are called through this module's names, which tests replace to record
# the paths calls take.

#: The saved activations of released training caches, for the next training forward.
SAVED_ACTIVATIONS = ArrayPool()


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
    """What the compiled backward needs: the validated arguments and, for each piece of the
    batch that ran on its own (start, stop), its arguments and saved activations. Opaque: the
    saved arrays go back to SAVED_ACTIVATIONS for reuse once the cache is released."""

    args: GRUArgs
    pieces: list[tuple[int, int, GRUArgs, np.ndarray, np.ndarray]]  # saved_h (T,b,H), gates (T,b,4H)


class CPUPreparedGRU(PreparedGRU):
    """PreparedGRU over the engine's GRUInference: per call, one dtype/shape check and the kernel."""

    def __init__(self, engine, kernel, recurrent_kernel, bias=None, *, reverse=False, reset_after=True,
                 activation="tanh", recurrent_activation="sigmoid"):
        check_activations(activation, recurrent_activation)
        kernel, recurrent_kernel, input_bias, recurrent_bias, _ = check_gru_weights(
            kernel, recurrent_kernel, bias, reset_after=reset_after)
        inference = engine.GRUInference(kernel, recurrent_kernel, input_bias, recurrent_bias,
                                        reverse, reset_after, activation, recurrent_activation)
        self._bind(engine, inference)
        self.split_args = (kernel, recurrent_kernel, input_bias, recurrent_bias) if reset_after else None
        self.split_options = (reverse, activation, recurrent_activation)

    def _unit_split(self, x, h, lengths):
        """y of one sequence, its units shared with the helper thread (h updated), or None."""
        if self.split_args is None:
            return None
        done = unit_split(self.engine, x, *self.split_args, h, lengths, *self.split_options)
        if done is None:
            return None
        h[...] = done[1]
        return done[0]

    def _bind(self, engine, inference):
        """Take the engine's prepared direction: its entries and its dtype."""
        self.engine = engine
        self.inference = inference
        self.dtype = inference.dtype
        self.run = inference.forward
        self.step = inference.step
        self.step_state = inference.step_state
        self.units = inference.units

    def forward(self, x, h, lengths=None):
        if lengths is None:
            y = self.step(x, h)  # the streaming step, checked in the engine: no splitting, no BLAS
            if y is not None:
                return y
        callers = parallel.CALLERS  # counted(), written out: this call costs a few microseconds
        callers.append(None)
        try:
            return self._sequence_forward(x, h, lengths)
        finally:
            callers.pop()

    def _sequence_forward(self, x, h, lengths):
        if type(x) is not np.ndarray or x.dtype != self.dtype or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=self.dtype)
        if lengths is not None and x.ndim == 3:
            lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        if x.ndim != 3 or x.shape[0] * x.shape[1] <= 1:
            return self.run(x, h, lengths)  # one step with lengths, or a bad shape it reports
        one_sequence = (x.shape[0] == 1 and x.shape[2] == self.inference.input_size
                        and type(h) is np.ndarray and h.shape == (1, self.units) and h.dtype == self.dtype
                        and h.flags.writeable and h.flags.c_contiguous)  # else run() reports it
        split = (lambda: self._unit_split(x, h, lengths)) if one_sequence else None
        y, bounds = forward_plan(x.shape[0], forward_flops(*x.shape, self.units), split)
        if y is not None:
            return y
        if len(bounds) == 1 or type(h) is not np.ndarray or h.shape[:1] != x.shape[:1]:
            return self.run(x, h, lengths)
        y = np.empty((x.shape[0], x.shape[1], self.units), self.dtype)  # each piece fills its rows
        run_all([lambda a=a, b=b: self.run(x[a:b], h[a:b], None if lengths is None else lengths[a:b], y[a:b])
                 for a, b in bounds])
        return y


class CPUQuantizedGRU(CPUPreparedGRU):
    """A PreparedGRU over bfloat16 or int8 weights (see cgru.backends.quantize): float32 in and
    out, the engine's QuantizedGRUInference per batch piece. ``weights`` is the QuantizedGRU
    it runs, ``mode`` its mode and ``kernels`` the compiled kernel computing its products."""

    def __init__(self, engine, weights: QuantizedGRU):
        kernel, recurrent = weights.kernel, weights.recurrent_kernel
        units = recurrent.shape[0]
        inference = engine.QuantizedGRUInference(
            weights.mode, kernel.values, recurrent.values, weights.input_bias, weights.recurrent_bias,
            weights.reverse, weights.reset_after, weights.activation, weights.recurrent_activation,
            kernel.scale, recurrent.scale,
            split=split_may_pay(units))  # else never worth its copy
        self._bind(engine, inference)
        self.weights = weights
        self.mode = weights.mode

    @property
    def kernels(self) -> str:
        return self.inference.kernels

    def _unit_split(self, x, h, lengths):
        if not self.inference.split or not split_pays(self.engine, x, self.units):
            return None
        return self.inference.run_pair(x, h, lengths)


class CPUOps(Ops):
    """GRU ops on the compiled engine (GIL released, no shared scratch: thread-safe)."""

    name = "cpu"
    compiled = True
    xp = np

    def __init__(self) -> None:
        self.engine = load_engine()
        self.engine.blas_set_threads(1)  # parallelism comes from cgru.backends.parallel

    def run_pair(self, first, second, flops=0.0):
        """Run the two computations on two cores at once when threads and work allow."""
        if pieces(2, 2 * flops) < 2:
            return first(), second()
        a, b = run_all([first, second])
        return a, b

    def run_gru_forward(self, args, training):
        return counted(self._run_gru_forward, args, training)

    def _run_gru_forward(self, args, training):
        split = None
        if not training and args.reset_after and args.recurrent_mask is None:
            split = lambda: unit_split(  # noqa: E731
                self.engine, args.x, args.kernel, args.recurrent_kernel, args.input_bias,
                args.recurrent_bias, args.h0, args.lengths, args.reverse, args.activation,
                args.recurrent_activation)
        batch, time, units, dtype = args.batch, args.time, args.units, args.x.dtype
        done, bounds = forward_plan(batch, forward_flops(batch, time, args.x.shape[2], units), split)
        if done is not None:
            return done[0], done[1], None
        piece_args = [args if len(bounds) == 1 else args.rows(a, b) for a, b in bounds]
        y = np.empty((batch, time, units), dtype)  # each piece fills its rows
        h_n = np.empty((batch, units), dtype)
        saved = [(SAVED_ACTIVATIONS.take((time, b - a, units), dtype),
                  SAVED_ACTIVATIONS.take((time, b - a, 4 * units), dtype)) if training else None
                 for a, b in bounds]
        run_all([lambda p=p, a=a, b=b, s=s: self._forward(p, training, (y[a:b], h_n[a:b]), s)
                 for (a, b), p, s in zip(bounds, piece_args, saved)])
        cache = None
        if training:
            cache = CPUGRUCache(args, [(a, b, p, *s) for (a, b), p, s in zip(bounds, piece_args, saved)])
            SAVED_ACTIVATIONS.recycle_with(cache, [array for s in saved for array in s])
        return y, h_n, cache

    def _forward(self, args: GRUArgs, training: bool, out=None, saved=None):
        return self.engine.gru_forward(
            args.x, args.kernel, args.recurrent_kernel, args.input_bias, args.recurrent_bias,
            args.h0, args.lengths, args.recurrent_mask, args.reverse, args.reset_after,
            args.activation, args.recurrent_activation, training, out, saved,
        )

    def prepare_gru(self, kernel, recurrent_kernel, bias=None, *, reverse=False, reset_after=True,
                    activation="tanh", recurrent_activation="sigmoid"):
        return CPUPreparedGRU(self.engine, kernel, recurrent_kernel, bias, reverse=reverse,
                              reset_after=reset_after, activation=activation,
                              recurrent_activation=recurrent_activation)

    def prepare_quantized_gru(self, weights):
        return CPUQuantizedGRU(self.engine, weights)

    def prepare_quantized_matmul(self, matrix):
        return self.engine.QuantizedMatmul(matrix.mode, matrix.values, matrix.scale)

    def quantized_kernels(self):
        return self.engine.quantized_kernels()

    def matmul(self, a, b):
        if (type(b) is np.ndarray and b.dtype == np.float32 and type(a) is np.ndarray
                and a.dtype == np.float32 and a.ndim == 2 and a.shape[0] == 1
                and a.flags.c_contiguous and b.flags.c_contiguous):
            return self.engine.matmul_row(a, b)  # what the streaming step computes, bit for bit
        return a @ b

    def gru_backward(self, dy, dh_n, cache, *, input_grad=True):
        return counted(self._gru_backward, dy, dh_n, cache, input_grad)

    def _gru_backward(self, dy, dh_n, cache, input_grad):
        args = cache.args
        shape_h = (args.batch, args.units)
        dtype = args.x.dtype
        dy = None if dy is None else check_grad(dy, "dy", (args.batch, args.time, args.units), dtype)
        dh_n = None if dh_n is None else check_grad(dh_n, "dh_n", shape_h, dtype)
        tasks = [
            lambda a=a, b=b, p=p, sh=sh, sg=sg: self.engine.gru_backward(
                p.x, p.kernel, p.recurrent_kernel, p.recurrent_mask, sh, sg,
                None if dy is None else dy[a:b], None if dh_n is None else dh_n[a:b],
                p.lengths, p.reverse, p.reset_after, p.activation, p.recurrent_activation, input_grad,
            )
            for a, b, p, sh, sg in cache.pieces
        ]
        results = run_all(tasks)
        if len(results) == 1:
            dx, dh0, dW, dU, dbx, dbh = results[0]
        else:
            dx = np.concatenate([r[0] for r in results]) if input_grad else None
            dh0 = np.concatenate([r[1] for r in results])
            dW, dU, dbx, dbh = (sum(r[k] for r in results) for k in range(2, 6))
        return GRUGrads(dx, dh0, dW, dU, pack_bias_grad(args, dbx, dbh))
