"""Reduced-precision weights for inference: the quantization math and its NumPy reference.

Two modes, each a definition of what the compiled kernels (``src/cgru/quant.h``) compute:

``"bfloat16"``
    Weights rounded from float32 to bfloat16 (round to nearest even; NaN stays NaN). Each
    product's activations (x_t for the input projection, h or r*h for the recurrent one) are
    rounded to bfloat16 the same way; the products of two bfloat16 values are exact in
    float32 and are summed in float32, in an order the kernel chooses. The recurrent state and
    the gate math stay float32.

``"int8"``
    Weights quantized per output column (symmetric): ``scale[j] = max_k |w[k, j]| / 127``
    (float32), ``q[k, j] = rint(w[k, j] / scale[j])`` in -127..127 (computed in float64; a zero
    column has scale 0 and q 0). Activations are quantized dynamically, each row of each product
    on its own, in float32: ``m = max_k |a_k|``, ``q_k = rint(a_k * (127 / m))``, ``row_scale =
    m / 127`` (all q 0 when m is 0 or 127 / m overflows; the row's result NaN when it holds a
    NaN or an infinity). The integer products are summed exactly and dequantized as
    ``float32(sum) * (row_scale * scale[j])``, all float32. State and gate math stay float32.

:class:`QuantizedMatrix` is a quantized weight matrix whose ``a @ matrix`` computes a product
as its mode defines (summing bfloat16 products exactly, in float64); :func:`reference_forward`
runs the NumPy backend's GRU recurrence over such matrices, so the reference shares its gate
math, lengths and direction handling with the float32 specification in ``numpy_ops``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import (
    GRUArgs,
    PreparedGRU,
    check_activations,
    check_gru_weights,
    check_lengths,
    check_prepared_call,
)

MODES = ("bfloat16", "int8")
#: int8: the most input features or units of a product (its int32 sums stay exact below it);
#: the engine's INT8_MAX_SIZE.
INT8_MAX_K = 65535


def check_mode(mode: str) -> str:
    """Raise ValueError unless ``mode`` is one of MODES; returns it."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def round_bfloat16(a: Any) -> np.ndarray:
    """The bfloat16 bits (uint16, same shape) of float32 ``a`` rounded to nearest even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) >> 16
    nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    return np.where(nan, (bits >> 16) | np.uint32(0x40), rounded).astype(np.uint16)


def bfloat16_values(bits: Any) -> np.ndarray:
    """float32 values of bfloat16 bits (uint16)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def quantize_int8_columns(w: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-column symmetric int8 quantization of a weight matrix w (K, N): returns
    (q (K, N) int8 in -127..127, scale (N,) float32), w ~ q * scale."""
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError("int8 quantization needs finite weights")
    scale = (np.abs(w).max(axis=0, initial=0.0) / 127).astype(np.float32)
    divisor = np.where(scale > 0, scale.astype(np.float64), 1.0)
    q = np.clip(np.rint(w / divisor), -127, 127).astype(np.int8)
    return q, scale


def quantize_int8_rows(a: Any) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic int8 quantization of activations, each row (last axis) on its own, in float32
    as the kernels do it: (q (..., K) int8, row_scale (...) float32)."""
    a = np.asarray(a, dtype=np.float32)
    m = np.abs(a).max(axis=-1, initial=np.float32(0), keepdims=True)
    finite = np.all(np.isfinite(a), axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = np.where(finite & (m > 0), np.float32(127) / m, np.float32(0))
        inv = np.where(np.isinf(inv), np.float32(0), inv)  # m below 127 / FLT_MAX: zeros
        q = np.where(finite, np.clip(np.rint(a * inv), -127, 127), 0).astype(np.int8)
    row_scale = np.where(finite, m / np.float32(127), np.float32(np.nan)).astype(np.float32)
    return q, row_scale[..., 0]


class QuantizedMatrix:
    """A (K, N) weight matrix in one of MODES: bfloat16 bits (uint16), or int8 values with a
    float32 scale per column. ``a @ matrix`` (a (..., K) float) is the product as the mode
    defines it, in a's float dtype (float64 a keeps the exactly summed bfloat16 products);
    ``matrix[:, columns]`` selects columns."""

    __array_ufunc__ = None  # a NumPy array @ this defers to __rmatmul__

    def __init__(self, mode: str, values: np.ndarray, scale: np.ndarray | None = None) -> None:
        self.mode = check_mode(mode)
        self.values = values
        self.scale = scale
        self.shape = values.shape

    @classmethod
    def from_float(cls, mode: str, w: Any) -> QuantizedMatrix:
        """Quantize a float weight matrix (K, N)."""
        if check_mode(mode) == "bfloat16":
            return cls(mode, round_bfloat16(w))
        return cls(mode, *quantize_int8_columns(w))

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the products (float32): what the matrix stands for."""
        return np.dtype(np.float32)

    def dequantized(self) -> np.ndarray:
        """The float32 weights this matrix stands for (K, N)."""
        if self.mode == "bfloat16":
            return bfloat16_values(self.values)
        return self.values.astype(np.float32) * self.scale

    def __getitem__(self, key: tuple) -> QuantizedMatrix:
        rows, columns = key
        if rows != slice(None):
            raise IndexError("a QuantizedMatrix selects columns only: matrix[:, columns]")
        scale = None if self.scale is None else self.scale[columns]
        return QuantizedMatrix(self.mode, self.values[:, columns], scale)

    def __rmatmul__(self, a: Any) -> np.ndarray:
        a = np.asarray(a)
        dtype = a.dtype if a.dtype == np.float64 else np.dtype(np.float32)
        if self.mode == "bfloat16":
            rounded = bfloat16_values(round_bfloat16(a)).astype(np.float64)
            return (rounded @ self.dequantized().astype(np.float64)).astype(dtype)
        q, row_scale = quantize_int8_rows(a)
        sums = q.astype(np.float64) @ self.values.astype(np.float64)  # exact: below 2**53
        scale = row_scale[..., None] * self.scale  # float32, as the kernels multiply
        return (sums.astype(np.float32) * scale).astype(dtype)


@dataclass(frozen=True)
class QuantizedGRU:
    """One GRU direction's weights in a reduced-precision mode: kernel (I, 3H) and
    recurrent_kernel (H, 3H) as QuantizedMatrix, input_bias and recurrent_bias float32 (3H,)
    (recurrent_bias zero unless reset_after), and the direction's options."""

    mode: str
    kernel: QuantizedMatrix
    recurrent_kernel: QuantizedMatrix
    input_bias: np.ndarray
    recurrent_bias: np.ndarray
    reverse: bool = False
    reset_after: bool = True
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]


def quantize_gru(kernel: Any, recurrent_kernel: Any, bias: Any = None, *, mode: str,
                 reverse: bool = False, reset_after: bool = True, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid") -> QuantizedGRU:
    """Quantize one direction's weights (the shapes ``gru_forward`` takes), as float32, to
    ``mode``; the biases stay float32."""
    check_mode(mode)
    check_activations(activation, recurrent_activation)
    kernel, recurrent_kernel, input_bias, recurrent_bias, _ = check_gru_weights(
        kernel, recurrent_kernel, bias, reset_after=reset_after, dtype=np.float32)
    return QuantizedGRU(
        mode, QuantizedMatrix.from_float(mode, kernel), QuantizedMatrix.from_float(mode, recurrent_kernel),
        np.ascontiguousarray(input_bias, dtype=np.float32),
        np.ascontiguousarray(recurrent_bias, dtype=np.float32),
        bool(reverse), bool(reset_after), activation, recurrent_activation)


def reference_forward(weights: QuantizedGRU, x: Any, h0: Any = None, lengths: Any = None,
                      dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The NumPy reference of a quantized GRU direction over x (B, T, I) from h0 (B, H)
    (zeros when None): (y (B, T, H), h_n (B, H)) in ``dtype``. float64 (the default) keeps the
    state and gate math exact where the kernels round to float32; the products are quantized
    from float32 activations either way."""
    from .numpy_ops import NumpyOps

    x = np.asarray(x, dtype=dtype)
    batch, time = x.shape[0], x.shape[1]
    units = weights.units
    h0 = np.zeros((batch, units), dtype) if h0 is None else np.asarray(h0, dtype=dtype)
    args = GRUArgs(
        x=x, kernel=weights.kernel, recurrent_kernel=weights.recurrent_kernel,
        input_bias=weights.input_bias.astype(dtype), recurrent_bias=weights.recurrent_bias.astype(dtype),
        h0=h0, lengths=check_lengths(lengths, batch, time), recurrent_mask=None, bias_shape=None,
        reverse=weights.reverse, reset_after=weights.reset_after, activation=weights.activation,
        recurrent_activation=weights.recurrent_activation)
    y, h_n, _ = NumpyOps().run_gru_forward(args, training=False)
    return y, h_n


class ReferenceQuantizedGRU(PreparedGRU):
    """A PreparedGRU running :func:`reference_forward` in float32 (the NumPy backend's
    reduced-precision inference): ``forward(x, h, lengths=None)`` as every PreparedGRU."""

    def __init__(self, weights: QuantizedGRU) -> None:
        self.weights = weights
        self.mode = weights.mode
        self.dtype = np.dtype(np.float32)
        self.units = weights.units
        self.kernels = "NumPy reference"

    def forward(self, x: Any, h: Any, lengths: Any = None) -> np.ndarray:
        x = check_prepared_call(x, h, self.dtype, self.weights.kernel.shape[0], self.units)
        y, h_n = reference_forward(self.weights, x, h, lengths, dtype=np.float32)
        h[...] = h_n
        return y
