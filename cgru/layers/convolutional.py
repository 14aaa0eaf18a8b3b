""":class:`Conv1D`: a temporal convolution (Keras's ``keras.layers.Conv1D``), the usual front end of
a GRU for audio and sensor data.

Computation. The input's windows are gathered into one matrix (im2col: ``(batch * out_time,
kernel_size * channels)``, a strided view of the input copied once, no loop over positions) and
multiplied by the kernel seen as ``(kernel_size * channels, filters)`` in one GEMM (BLAS on the
CPU backends, cuBLAS through CuPy). The backward pass uses the same matrix for the kernel's
gradient (one GEMM); the input's gradient is one GEMM per kernel tap, each added to the steps
that tap read (col2im; faster than one GEMM followed by strided adds, measured in
bench/NOTES.md).

Lengths. Keras drops masks at a Conv1D (the layers after it see none). cgru keeps the
variable-length semantics instead: after the layer, a sequence of length ``L`` has the length
its output would have if the sequence ran alone, and its output at those steps is exactly that
output (the padding is not part of the sequence):

- ``padding="valid"``: ``max(0, floor((L - (kernel_size - 1) * dilation_rate - 1) / strides) + 1)``;
- ``padding="causal"`` and ``"same"``: ``ceil(L / strides)``.

The input's padded steps are read as zeros (where "same" pads the sequence alone), so whatever
they hold (NaN included) reaches no output.

``padding="same"`` with ``strides > 1`` refuses lengths (ValueError): TensorFlow's "same" places
its padding by the padded length, so a padded sequence's outputs would not be its own. Steps
past the new lengths are padding, zero at the model's output as everywhere.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..padding import zero_padding
from ..validation import check_positive_int
from . import activations as _act
from .base import Layer, _register_builtin, check_channels_last
from .recurrent import _init_spec
from .weights import read_values


class Geometry(NamedTuple):
    """Where a convolution's windows lie for an input of some length: ``out_time`` output steps,
    ``left``/``right`` zero steps padded around the input."""

    out_time: int
    left: int
    right: int


def _one_int(value: Any, name: str) -> int:
    """A positive int, or a 1-tuple/list of one (Keras's 1-D ``kernel_size``, ``strides``...)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{name} must be an int or a tuple of one int for Conv1D, got {value!r}")
        value = value[0]
    return check_positive_int(value, name)


@_register_builtin
class Conv1D(Layer):
    """1-D convolution over the time axis (Keras's ``Conv1D``).

    Input ``(batch, time, channels)``; output ``(batch, out_time, filters)`` with ``out_time``
    as in Keras: ``ceil(time / strides)`` for "same" and "causal", ``floor((time - (kernel_size
    - 1) * dilation_rate - 1) / strides) + 1`` for "valid".

    Args:
        filters: output channels.
        kernel_size: window length (int, or a tuple of one int).
        strides: step between windows; dilation_rate: spacing of a window's taps (strides > 1
            and dilation_rate > 1 together are refused, as in Keras).
        padding: "valid" (no padding), "same" (zeros around the input so that ``out_time =
            ceil(time / strides)``, placed as TensorFlow does), "causal" (zeros before the input
            only: output step t sees input steps up to t * strides).
        data_format: "channels_last" (the only layout cgru sequences have) or None.
        groups: 1 (grouped convolutions are not supported).
        activation, use_bias, kernel_initializer, bias_initializer: as for ``Dense``.
    Weights: ``[kernel (kernel_size, channels, filters), bias (filters,)]`` (Keras's layout).
    Lengths: see the module documentation (cgru keeps them where Keras drops the mask).
    """

    uses_lengths = True
    defer_weight_init = True
    PADDINGS = ("valid", "same", "causal")

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple,
        strides: int | tuple = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | tuple = 1,
        groups: int = 1,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = _one_int(kernel_size, "kernel_size")
        self.strides = _one_int(strides, "strides")
        self.dilation_rate = _one_int(dilation_rate, "dilation_rate")
        if not isinstance(padding, str) or padding.lower() not in self.PADDINGS:
            raise ValueError(f"padding must be one of {self.PADDINGS}, got {padding!r}")
        self.padding = padding.lower()
        check_channels_last("Conv1D", data_format)
        if groups != 1:
            raise ValueError(f"Conv1D: groups={groups!r} is not supported (only 1)")
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                f"Conv1D: strides > 1 together with dilation_rate > 1 is not supported (as in Keras), "
                f"got strides={self.strides}, dilation_rate={self.dilation_rate}"
            )
        self.activation = _act.check_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _init_spec(kernel_initializer)
        self.bias_initializer = _init_spec(bias_initializer)
        self.input_dim: int | None = None
        self.kernel = self.bias = None

    # ------------------------------------------------------------------------ geometry
    @property
    def receptive_field(self) -> int:
        """Input steps one output step spans: ``(kernel_size - 1) * dilation_rate + 1``."""
        return (self.kernel_size - 1) * self.dilation_rate + 1

    def geometry(self, time: int) -> Geometry:
        """Output steps and zero padding for an input of ``time`` steps (ValueError when a
        "valid" convolution has no whole window)."""
        span, stride = self.receptive_field, self.strides
        if self.padding == "valid":
            if time < span:
                raise ValueError(
                    f"Conv1D {self.name!r} with padding='valid' needs at least {span} time steps "
                    f"(kernel_size={self.kernel_size}, dilation_rate={self.dilation_rate}), got {time}"
                )
            return Geometry((time - span) // stride + 1, 0, 0)
        out_time = -(-time // stride)
        if self.padding == "causal":
            return Geometry(out_time, span - 1, 0)
        total = max((out_time - 1) * stride + span - time, 0)
        return Geometry(out_time, total // 2, total - total // 2)

    def output_steps(self, lengths: np.ndarray) -> np.ndarray:
        """The output length of sequences of ``lengths`` input steps, each run alone."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if self.padding == "valid":
            return np.maximum(lengths - self.receptive_field + self.strides, 0) // self.strides
        return -(-lengths // self.strides)

    # --------------------------------------------------------------------------- build
    def _check_shape(self, shape: tuple) -> None:
        if len(shape) != 3 or shape[-1] is None or shape[-1] == 0:
            raise ValueError(
                f"Conv1D {self.name!r} expects input (batch, time, channels) with a known, non-zero "
                f"number of channels, got input shape {tuple(shape)}"
            )

    def build(self, input_shape: tuple) -> None:
        self.compute_output_shape(input_shape)
        self.input_dim = int(input_shape[-1])
        shape = (self.kernel_size, self.input_dim, self.filters)
        self.kernel = self.add_weight("kernel", shape, self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        self._check_shape(input_shape)
        time = input_shape[1]
        return (input_shape[0], None if time is None else self.geometry(time).out_time, self.filters)

    def output_lengths(self, lengths: Any, x: Any, y: Any) -> Any:
        if lengths is None:
            return None
        steps = self.output_steps(lengths)
        return None if steps.size and steps.min() == y.shape[1] else steps

    # ------------------------------------------------------------------------- compute
    def _check_input(self, x: Any) -> Any:
        if x.ndim != 3 or x.shape[2] != self.input_dim:
            raise ValueError(
                f"Conv1D {self.name!r} expects input of shape (batch, time, {self.input_dim}), "
                f"got {tuple(x.shape)}"
            )
        if x.dtype != self._np_dtype:
            x = x.astype(self._np_dtype)
        return x

    def _windows(self, x: Any, geo: Geometry) -> Any:
        """im2col: ``(batch * out_time, kernel_size * channels)``, row ``(b, t)`` holding the
        input steps output step t of sequence b sees, tap after tap: a strided view of the
        (zero-padded) input copied once."""
        xp = self.xp
        batch, time, channels = x.shape
        k, stride, dilation = self.kernel_size, self.strides, self.dilation_rate
        if k == 1 and stride == 1 and not (geo.left or geo.right):
            return x.reshape(batch * time, channels)  # each step is its own window: no copy
        if geo.left or geo.right:
            padded = xp.zeros((batch, geo.left + time + geo.right, channels), dtype=x.dtype)
            padded[:, geo.left : geo.left + time] = x
        else:
            padded = x
        sb, st, sc = padded.strides
        view = xp.lib.stride_tricks.as_strided(
            padded, (batch, geo.out_time, k, channels), (sb, stride * st, dilation * st, sc)
        )
        return view.reshape(batch * geo.out_time, k * channels)  # the one copy

    def _input_gradient(self, dz: Any, kernel: Any, shape: tuple, geo: Geometry) -> Any:
        """col2im of the windows' gradient ``dz @ kernel^T``, one tap at a time: each tap's
        product ``dz @ kernel[tap]^T`` (batch * out_time, channels) is added to the input steps
        that tap read; ``(batch, time, channels)``."""
        xp = self.xp
        batch, time, channels = shape
        k, stride, dilation = self.kernel_size, self.strides, self.dilation_rate
        if k == 1 and stride == 1 and not (geo.left or geo.right):
            return (dz @ kernel[0].T).reshape(shape)
        d_padded = xp.zeros((batch, geo.left + time + geo.right, channels), dtype=dz.dtype)
        reach = (geo.out_time - 1) * stride + 1
        for tap in range(k):
            start = tap * dilation
            d_padded[:, start : start + reach : stride] += (dz @ kernel[tap].T).reshape(
                batch, geo.out_time, channels
            )
        return xp.ascontiguousarray(d_padded[:, geo.left : geo.left + time])

    def _run(self, x: Any, training: bool, lengths: Any, values: tuple) -> tuple[Any, Any]:
        """:meth:`forward` with ``values`` (kernel and, with a bias, bias)."""
        x = self._check_input(x)
        batch, time, _ = x.shape
        geo = self.geometry(time)
        zeroed = None
        if lengths is not None:
            if self.padding == "same" and self.strides > 1:
                raise ValueError(
                    f"Conv1D {self.name!r}: padding='same' with strides={self.strides} cannot take "
                    "lengths (where 'same' puts its padding depends on the padded length, so a padded "
                    "sequence would not give its own outputs); use padding='causal' or 'valid', or strides=1"
                )
            x = zero_padding(self.xp, x, lengths)
            zeroed = lengths
        windows = self._windows(x, geo)
        kernel = values[0]
        z = windows @ kernel.reshape(-1, self.filters)
        if len(values) > 1:
            z += values[1]
        y = _act.apply(self.activation, self.xp, z)
        out = y.reshape(batch, geo.out_time, self.filters)
        if not training:
            return out, None
        keep_z = z if _act.needs_input(self.activation) else None
        return out, (windows, keep_z, y, kernel, x.shape, geo, zeroed)

    def forward(self, x: Any, training: bool = False, lengths: Any = None) -> tuple[Any, Any]:
        return self._run(x, training, lengths, read_values(self._params)[1])

    def _pinned_forward(self, values: tuple) -> Any:
        if self._own_forward(Conv1D):
            return super()._pinned_forward(values)
        run = self._run
        return lambda x, training, lengths=None: run(x, training, lengths, values)

    def _pinned_infer(self, values: tuple) -> Any:
        if self._own_forward(Conv1D):
            return super()._pinned_infer(values)
        run = self._run
        return lambda x, lengths=None: run(x, False, lengths, values)[0]

    def backward(self, dy: Any, cache: Any) -> Any:
        return self._backward(dy, cache, True)

    def _backward(self, dy: Any, cache: Any, input_grad: bool) -> Any:
        if self._own_backward(Conv1D):
            return self.backward(dy, cache)
        windows, z, y, kernel, shape, geo, zeroed = cache
        dz = _act.gradient(self.activation, self.xp, z, y, dy.reshape(-1, self.filters))
        self.kernel.grad = (windows.T @ dz).reshape(self.kernel.shape)
        if self.bias is not None:
            self.bias.grad = dz.sum(axis=0)
        if not input_grad:
            return None
        dx = self._input_gradient(dz, kernel, shape, geo)
        return dx if zeroed is None else zero_padding(self.xp, dx, zeroed)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format="channels_last",
            dilation_rate=self.dilation_rate,
            groups=1,
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
        )
        return config


__all__ = ["Conv1D", "Geometry"]
