"""The ops interface: what every backend implements, and the argument rules they share.

A backend is an object with the attributes and methods of :class:`Ops`. Layers only ever talk
to the current backend through this interface, so a model runs unchanged on NumPy, the compiled
CPU engine or a GPU.

Shapes use B = batch, T = time, I = input features, H = units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, TypeVar

import numpy as np

# The backends import these two from here; their one home is in the modules named.
from ..validation import check_lengths
from .activations import ACTIVATIONS, RECURRENT_ACTIVATIONS

A = TypeVar("A")
B = TypeVar("B")


class GRUGrads(NamedTuple):
    """Gradients returned by ``gru_backward``.

    dx: (B, T, I), or None when not asked for; dh0: (B, H); dkernel: (I, 3H); drecurrent_kernel: (H, 3H);
    dbias: same shape as the bias given to the forward call, or None when it was None.
    """

    dx: Any
    dh0: Any
    dkernel: Any
    drecurrent_kernel: Any
    dbias: Any


@dataclass(frozen=True)
class GRUSpec:
    """The static description of one GRU direction (everything except the arrays)."""

    units: int
    reset_after: bool = True
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    reverse: bool = False


class Ops:
    """Base class of the backends. Subclasses set ``name``/``xp`` and implement the GRU ops.

    ``xp`` is the array module (``numpy`` or ``cupy``); the small ops used by Dense layers,
    losses and optimizers are written against it, so they serve every backend.
    """

    name: str = "base"
    compiled: bool = False
    xp: Any = np

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """Array on this backend's device, C-contiguous, of ``dtype`` when given."""
        return self.xp.ascontiguousarray(self.xp.asarray(x, dtype=dtype))

    def to_numpy(self, x: Any) -> np.ndarray:
        """A NumPy copy (or view) of an array of this backend."""
        return np.asarray(x)

    def gru_forward(
        self,
        x: Any,
        kernel: Any,
        recurrent_kernel: Any,
        bias: Any = None,
        *,
        h0: Any = None,
        lengths: Any = None,
        reverse: bool = False,
        reset_after: bool = True,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        recurrent_mask: Any = None,
        training: bool = False,
    ) -> tuple[Any, Any, Any]:
        """Run one GRU direction over a batch.

        x: (B, T, I); kernel: (I, 3H); recurrent_kernel: (H, 3H), gate blocks z, r, h;
        bias: (2, 3H) [input row, recurrent row] when ``reset_after``, (3H,) otherwise, or None;
        h0: (B, H) initial state (zeros when None); lengths: (B,) ints in 0..T (all T when None);
        reverse: process each sequence from its own last valid step back to step 0;
        recurrent_mask: (B, H) multiplier applied to the state before the recurrent product
        (recurrent dropout), or None.

        Returns ``(y, h_n, cache)``: y (B, T, H) with the output at each time index (time-aligned
        also when ``reverse``; zero at t >= length), h_n (B, H) the state after the last valid
        step, and cache (None unless ``training``) for :meth:`gru_backward`.
        All arrays share the dtype of ``x`` (float32 or float64). The padded steps of ``x``
        (t >= length) are never used: whatever they hold (NaN or inf included) changes nothing.
        """
        args = check_gru_args(
            x, kernel, recurrent_kernel, bias, h0=h0, lengths=lengths, reverse=reverse,
            reset_after=reset_after, activation=activation,
            recurrent_activation=recurrent_activation, recurrent_mask=recurrent_mask, xp=self.xp,
        )
        return self.run_gru_forward(args, training)

    def run_gru_forward(self, args: GRUArgs, training: bool) -> tuple[Any, Any, Any]:
        """``gru_forward`` on arguments already checked and normalised by ``check_gru_args``:
        what a backend implements."""
        raise NotImplementedError

    def prepare_gru(
        self,
        kernel: Any,
        recurrent_kernel: Any,
        bias: Any = None,
        *,
        reverse: bool = False,
        reset_after: bool = True,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
    ) -> PreparedGRU:
        """Bind one direction's weights once for repeated inference calls (see PreparedGRU).

        The weights are checked here, once; each call then only checks its input. Backends
        override this with a faster binding where they have one.
        """
        return PreparedGRU(self, kernel, recurrent_kernel, bias, reverse=reverse, reset_after=reset_after,
                           activation=activation, recurrent_activation=recurrent_activation)

    def prepare_gru_quantized(
        self,
        kernel: Any,
        recurrent_kernel: Any,
        bias: Any = None,
        *,
        mode: str,
        reverse: bool = False,
        reset_after: bool = True,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
    ) -> PreparedGRU:
        """Bind one direction's weights in a reduced-precision ``mode`` ("bfloat16" or "int8",
        see cgru.backends.quantize) for inference: a PreparedGRU whose forward is float32 in
        and out (:meth:`prepare_quantized_gru` of the quantized weights). Backends without
        reduced-precision kernels raise NotImplementedError."""
        from .quantize import quantize_gru

        return self.prepare_quantized_gru(quantize_gru(
            kernel, recurrent_kernel, bias, mode=mode, reverse=reverse, reset_after=reset_after,
            activation=activation, recurrent_activation=recurrent_activation))

    def prepare_quantized_gru(self, weights: Any) -> PreparedGRU:
        """Bind one direction's already quantized weights (a ``cgru.backends.quantize.QuantizedGRU``)
        for inference: a PreparedGRU, float32 in and out. Backends without reduced-precision
        kernels raise NotImplementedError."""
        raise NotImplementedError(f"the {self.name!r} backend has no reduced-precision kernels")

    def prepare_quantized_matmul(self, matrix: Any) -> Any:
        """A quantized weight matrix (a ``cgru.backends.quantize.QuantizedMatrix`` (K, N)) bound
        for repeated products: an object ``m`` with ``a @ m`` (a (M, K) float32) computing the
        product as its mode defines it. Backends without reduced-precision kernels raise
        NotImplementedError."""
        raise NotImplementedError(f"the {self.name!r} backend has no reduced-precision kernels")

    def quantized_kernels(self) -> dict | None:
        """What computes each reduced-precision mode's products on this backend ({mode:
        description}), or None where the backend has none (``prepare_quantized_*`` raise)."""
        return None

    def matmul(self, a: Any, b: Any) -> Any:
        """``a @ b`` for a Dense layer: a (M, K) of this backend, b (K, N) or a prepared quantized
        matrix. The compiled backend computes a single float32 row through the engine's kernel
        (the one its streaming step uses)."""
        return a @ b

    def run_pair(self, first: Callable[[], A], second: Callable[[], B], flops: float = 0.0) -> tuple[A, B]:
        """Run two independent computations, e.g. the two directions of a Bidirectional layer.

        ``flops`` estimates the work of each. Backends may overlap them (the compiled CPU backend
        runs them on two cores when that pays); this default runs them one after the other.
        """
        return first(), second()

    def gru_backward(self, dy: Any, dh_n: Any, cache: Any, *, input_grad: bool = True) -> GRUGrads:
        """Backpropagation through time.

        dy: (B, T, H) gradient of the outputs (or None), dh_n: (B, H) gradient of the final
        state (or None), cache: from ``gru_forward(..., training=True)``. With ``input_grad``
        False the input's gradient is not computed (``dx`` is None): a model's first layer,
        whose input is data, skips that product.

        Padded steps (t >= length) are ignored, in ``x`` and in ``dy``: whatever they hold (NaN
        or inf included) changes no gradient, and ``dx`` is zero there.
        """
        raise NotImplementedError


class PreparedGRU:
    """One GRU direction's weights bound to a backend for inference.

    ``forward(x, h, lengths=None)`` runs x (B, T, I) from state h (B, H), overwrites h with the
    final state and returns y (B, T, H). x is converted to the weights' dtype when needed; h must
    be an array of that dtype on the backend's device (it is written in place).
    """

    def __init__(self, ops: Ops, kernel: Any, recurrent_kernel: Any, bias: Any = None, *,
                 reverse: bool = False, reset_after: bool = True, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid") -> None:
        check_activations(activation, recurrent_activation)
        self.ops = ops
        self.kernel, self.recurrent_kernel, _, _, _ = check_gru_weights(
            kernel, recurrent_kernel, bias, reset_after=reset_after, xp=ops.xp)
        self.bias = None if bias is None else ops.asarray(bias, self.kernel.dtype)
        self.dtype = self.kernel.dtype
        self.options = {"reverse": reverse, "reset_after": reset_after, "activation": activation,
                        "recurrent_activation": recurrent_activation}

    def forward(self, x: Any, h: Any, lengths: Any = None) -> Any:
        x = check_prepared_call(x, h, self.dtype, self.kernel.shape[0], self.recurrent_kernel.shape[0],
                                self.ops.xp)
        y, h_n, _ = self.ops.gru_forward(x, self.kernel, self.recurrent_kernel,
                                         self.bias, h0=h, lengths=lengths, **self.options)
        h[...] = h_n
        return y

    def step_state(self, x: Any, h: Any) -> Any:
        """The stateful streaming call where a backend has a leaner one than ``forward``: one
        time step of one sequence, x (1, 1, I) and h (1, H) as ``forward`` takes them; h is
        overwritten with the new state and a new (1, H) array holding it (the step's output)
        is returned. None, with nothing run, for other shapes of x or h, an x the lean path
        would have to convert, or where the backend has no such path: the caller then uses
        ``forward``."""
        return None


def check_prepared_call(x: Any, h: Any, dtype: Any, features: int, units: int, xp: Any = np) -> Any:
    """The checks of ``PreparedGRU.forward``: x (B, T, features) converted to ``dtype``
    (returned), h a writable (B, units) array of ``dtype`` on the backend's device."""
    x = _as_float(x, "x", dtype, xp)
    if x.ndim != 3 or x.shape[2] != features:
        raise ValueError(f"x must have shape (batch, time, {features}), got {tuple(x.shape)}")
    writable = getattr(getattr(h, "flags", None), "writeable", True)  # CuPy's flags lack it
    if not isinstance(h, xp.ndarray) or h.dtype != dtype or not writable:
        raise TypeError(f"h must be a writable {dtype} array on the backend's device "
                        f"(it is updated in place), got {type(h).__name__}")
    if tuple(h.shape) != (x.shape[0], units):
        raise ValueError(f"h must have shape {(x.shape[0], units)}, got {tuple(h.shape)}")
    return x


def check_activations(activation: str, recurrent_activation: str) -> None:
    """Raise ValueError for an unknown activation or recurrent activation name."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if recurrent_activation not in RECURRENT_ACTIVATIONS:
        raise ValueError(
            f"recurrent_activation must be one of {RECURRENT_ACTIVATIONS}, got {recurrent_activation!r}"
        )


def _float_dtype(x: np.ndarray, name: str) -> np.dtype:
    if x.dtype == np.float64:
        return np.dtype(np.float64)
    if x.dtype.kind in "fiub":
        return np.dtype(np.float32)
    raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}")


def _as_float(x: Any, name: str, dtype: np.dtype | None, xp: Any) -> Any:
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    try:
        arr = xp.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if dtype is None:
        dtype = _float_dtype(arr, name)
    return xp.ascontiguousarray(arr, dtype=dtype)


@dataclass
class GRUArgs:
    """Validated, normalised arguments of ``gru_forward``.

    x (B, T, I), kernel (I, 3H), recurrent_kernel (H, 3H), input_bias (3H,), recurrent_bias
    (3H,), h0 (B, H): C-contiguous arrays of one float dtype; lengths (B,) int64 NumPy array or
    None meaning "all T"; ``bias_shape`` is the shape of the caller's bias (None if no bias).
    """

    x: Any
    kernel: Any
    recurrent_kernel: Any
    input_bias: Any
    recurrent_bias: Any
    h0: Any
    lengths: np.ndarray | None
    recurrent_mask: Any
    bias_shape: tuple | None
    reverse: bool
    reset_after: bool
    activation: str
    recurrent_activation: str

    def rows(self, start: int, stop: int) -> GRUArgs:
        """The same problem restricted to batch rows start:stop (views, no copies)."""
        def part(a: Any) -> Any:
            return None if a is None else a[start:stop]

        return replace(self, x=self.x[start:stop], h0=self.h0[start:stop], lengths=part(self.lengths),
                       recurrent_mask=part(self.recurrent_mask))

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    @property
    def time(self) -> int:
        return self.x.shape[1]

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]


def forward_flops(batch: int, time: int, features: int, units: int) -> float:
    """Matrix-product work of one GRU direction's forward pass over x (B, T, I): what decides
    whether spreading it over threads pays (cgru.backends.parallel)."""
    return 2.0 * batch * time * 3 * units * (features + units)


def check_gru_weights(
    kernel: Any,
    recurrent_kernel: Any,
    bias: Any,
    *,
    reset_after: bool,
    dtype: Any = None,
    xp: Any = np,
    features: int | None = None,
) -> tuple[Any, Any, Any, Any, tuple | None]:
    """Check one direction's weights; returns (kernel, recurrent_kernel, input_bias (3H,),
    recurrent_bias (3H,), bias_shape or None), all of ``dtype`` (the kernel's float type when
    None). ``features``, when given, is the input size the kernel must match.
    """
    kernel = _as_float(kernel, "kernel", dtype, xp)
    dtype = kernel.dtype
    recurrent_kernel = _as_float(recurrent_kernel, "recurrent_kernel", dtype, xp)
    if recurrent_kernel.ndim != 2 or recurrent_kernel.shape[1] != 3 * recurrent_kernel.shape[0]:
        raise ValueError(
            f"recurrent_kernel must have shape (units, 3*units), got {tuple(recurrent_kernel.shape)}"
        )
    units = recurrent_kernel.shape[0]
    if units == 0:
        raise ValueError("recurrent_kernel must have at least one unit")
    wrong_features = features is not None and kernel.shape[0] != features
    if kernel.ndim != 2 or kernel.shape[1] != 3 * units or wrong_features:
        expected = f"({features}, {3 * units})" if features is not None else f"(features, {3 * units})"
        raise ValueError(
            f"kernel must have shape (input features, 3*units) = {expected}, got {tuple(kernel.shape)}"
        )
    bias_shape = None
    if bias is not None:
        bias = _as_float(bias, "bias", dtype, xp)
        expected = (2, 3 * units) if reset_after else (3 * units,)
        if bias.shape != expected:
            raise ValueError(
                f"bias must have shape {expected} when reset_after={reset_after}, "
                f"got {tuple(bias.shape)}"
            )
        bias_shape = expected
    input_bias, recurrent_bias = split_gru_bias(bias, units, reset_after, xp, dtype)
    return kernel, recurrent_kernel, input_bias, recurrent_bias, bias_shape


def split_gru_bias(bias: Any, units: int, reset_after: bool, xp: Any = np, dtype: Any = np.float32) -> tuple:
    """(input bias, recurrent bias), each (3 * units,), from a GRU layer's ``bias``: (2, 3 * units)
    with ``reset_after`` (its two rows), else (3 * units,) (all on the input side); zeros where
    there is none."""
    if bias is None:
        return xp.zeros(3 * units, dtype=dtype), xp.zeros(3 * units, dtype=dtype)
    if reset_after:
        return xp.ascontiguousarray(bias[0]), xp.ascontiguousarray(bias[1])
    return bias, xp.zeros(3 * units, dtype=dtype)


def check_gru_args(
    x: Any,
    kernel: Any,
    recurrent_kernel: Any,
    bias: Any,
    *,
    h0: Any,
    lengths: Any,
    reverse: bool,
    reset_after: bool,
    activation: str,
    recurrent_activation: str,
    recurrent_mask: Any = None,
    xp: Any = np,
) -> GRUArgs:
    """Check every argument of ``gru_forward`` and return them normalised (see GRUArgs).

    Raises TypeError for non-numeric data or wrong kinds of option, ValueError for wrong
    ranks, sizes or values, naming the argument and what was expected.
    """
    check_activations(activation, recurrent_activation)
    x = _as_float(x, "x", None, xp)
    dtype = x.dtype
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D (batch, time, features), got shape {tuple(x.shape)}")
    batch, time, features = x.shape
    kernel, recurrent_kernel, input_bias, recurrent_bias, bias_shape = check_gru_weights(
        kernel, recurrent_kernel, bias, reset_after=reset_after, dtype=dtype, xp=xp, features=features
    )
    units = recurrent_kernel.shape[0]
    if h0 is None:
        h0 = xp.zeros((batch, units), dtype=dtype)
    else:
        h0 = _as_float(h0, "h0", dtype, xp)
        if h0.shape != (batch, units):
            raise ValueError(f"h0 must have shape (batch, units) = ({batch}, {units}), got {tuple(h0.shape)}")
    if recurrent_mask is not None:
        recurrent_mask = _as_float(recurrent_mask, "recurrent_mask", dtype, xp)
        if recurrent_mask.shape != (batch, units):
            raise ValueError(
                f"recurrent_mask must have shape (batch, units) = ({batch}, {units}), "
                f"got {tuple(recurrent_mask.shape)}"
            )
    return GRUArgs(
        x=x,
        kernel=kernel,
        recurrent_kernel=recurrent_kernel,
        input_bias=input_bias,
        recurrent_bias=recurrent_bias,
        h0=h0,
        lengths=check_lengths(lengths, batch, time),
        recurrent_mask=recurrent_mask,
        bias_shape=bias_shape,
        reverse=bool(reverse),
        reset_after=bool(reset_after),
        activation=activation,
        recurrent_activation=recurrent_activation,
    )


def check_grad(g: Any, name: str, shape: tuple, dtype: Any, xp: Any = np) -> Any:
    """Validate an upstream gradient: None becomes zeros, otherwise shape and dtype are enforced."""
    if g is None:
        return xp.zeros(shape, dtype=dtype)
    g = _as_float(g, name, dtype, xp)
    if tuple(g.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(g.shape)}")
    return g


def pack_bias_grad(args: GRUArgs, d_input_bias: Any, d_recurrent_bias: Any, xp: Any = np) -> Any:
    """Gradient of the caller's bias, in the caller's layout (None when there was no bias)."""
    if args.bias_shape is None:
        return None
    if args.reset_after:
        return xp.stack([d_input_bias, d_recurrent_bias])
    return d_input_bias
