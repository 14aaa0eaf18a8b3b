"""Reduced-precision weights of layers: how a quantized layer stores and reads them.

``Sequential.quantize(mode)`` replaces the weight matrices of its GRU and Dense layers
(Bidirectional's two GRUs included) by their quantized form, whose numerics
:mod:`cgru.backends.quantize` defines:

``"bfloat16"``
    each matrix as its bfloat16 bits: a uint16 array of the matrix's shape;
``"int8"``
    each matrix as int8 values in -127..127 (the matrix's shape), and one float32 scale per
    output column, appended after the layer's other weights in the order of the matrices.

Biases stay float32. So a quantized GRU's weights are ``[kernel, recurrent_kernel, bias]``
(bfloat16) or ``[kernel, recurrent_kernel, bias, kernel_scale, recurrent_kernel_scale]``
(int8), a Dense layer's ``[kernel, bias]`` or ``[kernel, bias, kernel_scale]`` (no bias
without ``use_bias``). These are what ``get_weights`` returns and a saved model holds; the
quantized matrices and the scales are not trainable, and a quantized layer computes inference
only (``training=True`` raises). The dtype of the weight matrices tells a layer's mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.quantize import INT8_MAX_K, MODES, QuantizedMatrix
from .parameters import Parameter, WeightPlaceholder

#: The dtype each mode stores its weight matrices in.
WEIGHT_DTYPES = {"bfloat16": np.dtype(np.uint16), "int8": np.dtype(np.int8)}
_MODE_OF_DTYPE = {dtype: mode for mode, dtype in WEIGHT_DTYPES.items()}


def check_layer_mode(mode: Any) -> str | None:
    """A layer's ``quantization_mode`` argument: None (float weights) or one of MODES."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"quantization_mode must be None or one of {MODES}, got {mode!r}")
    return mode


def mode_of(matrix: Any) -> str | None:
    """The mode a weight matrix array is stored in (None: a float matrix)."""
    return _MODE_OF_DTYPE.get(matrix.dtype)


def quantized_arrays(mode: str, values: list, matrices: tuple[int, ...], where: str) -> list:
    """A layer's float weights ``values`` in ``mode``: the arrays at the indices ``matrices``
    quantized, the others (biases) as they are, then (int8) one scale array per matrix.
    Placeholders (a layer built for loading) give placeholders of the quantized shapes."""
    out, scales = list(values), []
    for i in matrices:
        w = values[i]
        if isinstance(w, WeightPlaceholder):
            out[i] = WeightPlaceholder(w.shape, WEIGHT_DTYPES[mode])
            scale = WeightPlaceholder((w.shape[1],), np.float32)
        else:
            try:
                matrix = QuantizedMatrix.from_float(mode, w)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            out[i], scale = matrix.values, matrix.scale
        scales.append(scale)
    return out + (scales if mode == "int8" else [])


def quantized_params(layer: Any, mode: str, names: list[str], arrays: list, trainable: set) -> list:
    """New Parameters of ``layer`` for ``arrays`` (``names`` of its float weights, in order;
    int8 scale names follow from the matrices'): only the names in ``trainable`` stay
    trainable, as the layer had them."""
    if mode == "int8":
        names = names + [f"{name}_scale" for name in names if name in ("kernel", "recurrent_kernel")]
    return [Parameter(f"{layer.name}/{name}", array, trainable=name in trainable)
            for name, array in zip(names, arrays)]


def check_quantizable(layer: Any, mode: str, sizes: dict[str, int | None]) -> None:
    """Raise ValueError when ``layer`` cannot take ``mode``: not float32, or (int8) a product
    dimension in ``sizes`` ({name: size}) past what the int8 kernels sum exactly."""
    if layer.dtype != "float32":
        raise ValueError(
            f"quantize() needs float32 layers, but layer {layer.name!r} is {layer.dtype}: the "
            "reduced-precision modes compute in float32"
        )
    if mode == "int8":
        for name, size in sizes.items():
            if size is not None and size > INT8_MAX_K:
                raise ValueError(
                    f"layer {layer.name!r} has {size} {name}; int8 weights take at most {INT8_MAX_K} "
                    "(the kernels' integer sums must stay exact)"
                )


def inference_only(layer: Any, mode: str) -> ValueError:
    """The error of a quantized layer asked to train."""
    return ValueError(
        f"layer {layer.name!r} is quantized to {mode!r} (model.quantize), which makes an "
        "inference-only layer: training needs its float32 weights (train the float32 model, then "
        "quantize it)"
    )


def check_backend(layer: Any, ops: Any, mode: str | None = None) -> None:
    """Raise ValueError when ``layer``, quantized (to its mode, or to ``mode`` it is about to
    take), cannot run on ``ops``."""
    mode = layer.quantization_mode if mode is None else mode
    if mode is not None and ops.quantized_kernels() is None:
        raise ValueError(
            f"layer {layer.name!r} is quantized to {mode!r}, and the {ops.name!r} backend has no "
            "reduced-precision kernels: run quantized models on 'cpu' (the compiled kernels) or "
            "'numpy' (the reference)"
        )


__all__ = [
    "WEIGHT_DTYPES",
    "check_backend",
    "check_layer_mode",
    "check_quantizable",
    "inference_only",
    "mode_of",
    "quantized_arrays",
    "quantized_params",
]
