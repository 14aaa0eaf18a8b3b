"""Core layers: :class:`Dense`, :class:`Dropout`, :class:`Embedding`, :class:`Activation` and
:class:`Flatten`.

They are written against the backend's array module (``self.xp``: numpy or cupy), so every
backend runs them unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validation import as_numeric_array, check_positive_int, check_rate, to_host
from . import activations as _act
from . import quantized as _quantized
from .base import Layer, _register_builtin
from .recurrent import _init_spec
from .weights import read_values


@_register_builtin
class Dense(Layer):
    """Fully connected layer ``activation(x @ kernel + bias)`` over the last axis.

    Input ``(batch, features)`` or ``(batch, time, features)`` (any rank >= 2); output the same
    with the last axis replaced by ``units``.

    Args:
        units: output size.
        activation: None/"linear" or a Keras activation name ("relu", "sigmoid", "tanh",
            "softmax" over the last axis, "elu", "selu", "silu"...: see
            :mod:`cgru.layers.activations`).
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: names or objects ("glorot_uniform", "zeros").
        input_dim: shorthand for ``input_shape=(input_dim,)``.
        quantization_mode: None (float weights), or "bfloat16"/"int8": the kernel in that
            reduced-precision form, inference only (``Sequential.quantize`` sets it; see
            :mod:`cgru.layers.quantized`).
    Weights: ``[kernel (features, units), bias (units,)]``.
    """

    defer_weight_init = True

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        input_dim: int | None = None,
        quantization_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        if input_dim is not None:
            kwargs.setdefault("input_shape", (check_positive_int(input_dim, "input_dim"),))
        super().__init__(**kwargs)
        self.units = check_positive_int(units, "units")
        self.activation = _act.check_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _init_spec(kernel_initializer)
        self.bias_initializer = _init_spec(bias_initializer)
        self.quantization_mode = _quantized.check_layer_mode(quantization_mode)
        self.input_dim: int | None = None
        self.kernel = self.bias = None
        self._prepared: tuple | None = None  # (ops, kernel values, scale, the bound product)

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"Dense {self.name!r} needs input of rank >= 2 with a known last axis, "
                f"got input shape {tuple(input_shape)}"
            )
        if input_shape[-1] == 0:
            raise ValueError(
                f"Dense {self.name!r} needs at least one input feature, got input shape {tuple(input_shape)}"
            )
        self.input_dim = int(input_shape[-1])
        self.kernel = self.add_weight("kernel", (self.input_dim, self.units), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer)
        self._prepared = None
        if self.quantization_mode is not None:
            mode = self.quantization_mode
            self._install_quantized(mode, self._quantized_weights(mode, [p.value for p in self._params]))

    # ------------------------------------------------------------------------ quantization
    def _quantizable_layers(self) -> list[Layer]:
        return [] if self._own_forward(Dense) else [self]

    def _check_quantizable(self, mode: str) -> None:
        _quantized.check_quantizable(self, mode, {"input features": self.input_dim})

    def _quantized_weights(self, mode: str, values: list) -> list:
        """``values`` (float weights in ``weights`` order) in ``mode`` (see cgru.layers.quantized)."""
        return _quantized.quantized_arrays(mode, values, (0,), f"layer {self.name!r}")

    def _install_quantized(self, mode: str, arrays: list) -> None:
        """Make ``arrays`` (from :meth:`_quantized_weights`) the layer's weights."""
        names = ["kernel"] + (["bias"] if self.use_bias else [])
        trainable = {"bias"} if self.bias is None or self.bias.trainable else set()
        params = _quantized.quantized_params(self, mode, names, arrays, trainable)
        self.kernel = params[0]
        self.bias = params[1] if self.use_bias else None
        self._params = params
        self.quantization_mode = mode
        self._prepared = None

    def _operands(self, values: tuple) -> tuple:
        """``(kernel, bias or None)`` to compute with, from ``values`` (the weight arrays in
        ``weights`` order): a quantized kernel bound on the backend (``a @ kernel`` works)."""
        kernel, bias = values[0], values[1] if self.use_bias else None
        mode = _quantized.mode_of(kernel)
        if mode is None:
            return kernel, bias
        scale = values[-1] if mode == "int8" else None
        ops, kept = self.ops, self._prepared
        if kept is None or kept[0] is not ops or kept[1] is not kernel or kept[2] is not scale:
            from ..backends.quantize import QuantizedMatrix

            kept = self._prepared = (ops, kernel, scale,
                                     ops.prepare_quantized_matmul(QuantizedMatrix(mode, kernel, scale)))
        return kept[3], bias

    def _bind(self, ops) -> None:
        _quantized.check_backend(self, ops)
        super()._bind(ops)
        self._prepared = None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*tuple(input_shape)[:-1], self.units)

    def _check_input(self, x: Any) -> Any:
        if x.ndim < 2 or x.shape[-1] != self.input_dim:
            raise ValueError(
                f"Dense {self.name!r} expects input with last axis {self.input_dim}, "
                f"got shape {tuple(x.shape)}"
            )
        if x.dtype != self._np_dtype:
            x = x.astype(self._np_dtype)
        return x

    def _pre_activation(self, x: Any, kernel: Any, bias: Any) -> Any:
        """``x @ kernel + bias`` (bias may be None) over the last axis of a checked ``x``."""
        matmul = self.ops.matmul
        if x.ndim == 2:
            z = matmul(x, kernel)
        else:
            z = matmul(x.reshape(-1, self.input_dim), kernel).reshape(*x.shape[:-1], self.units)
        if bias is not None:
            z += bias
        return z

    def _affine(self, x: Any, kernel: Any, bias: Any) -> Any:
        """``activation(x @ kernel + bias)`` (bias may be None)."""
        return _act.apply(self.activation, self.xp, self._pre_activation(self._check_input(x), kernel, bias))

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        return self._run(x, training, read_values(self._params)[1])

    def _run(self, x: Any, training: bool, values: tuple) -> tuple[Any, Any]:
        """:meth:`forward` with ``values`` (the weight arrays in ``weights`` order)."""
        mode = _quantized.mode_of(values[0])
        if training and mode is not None:
            raise _quantized.inference_only(self, mode)
        kernel, bias = self._operands(values)
        x = self._check_input(x)
        z = self._pre_activation(x, kernel, bias)
        y = _act.apply(self.activation, self.xp, z)
        if not training:
            return y, None
        return y, (x, z if _act.needs_input(self.activation) else None, y, kernel)

    def _pinned_forward(self, values: tuple) -> Any:
        if self._own_forward(Dense):
            return super()._pinned_forward(values)
        run = self._run
        return lambda x, training, lengths=None: run(x, training, values)

    def _pinned_infer(self, values: tuple) -> Any:
        if self._own_forward(Dense):
            return super()._pinned_infer(values)
        affine, (kernel, bias) = self._affine, self._operands(values)
        return lambda x, lengths=None: affine(x, kernel, bias)

    def backward(self, dy: Any, cache: Any) -> Any:
        x, z, y, kernel = cache
        dz = _act.gradient(self.activation, self.xp, z, y, dy).reshape(-1, self.units)
        x2 = x.reshape(-1, self.input_dim)
        self.kernel.grad = x2.T @ dz
        if self.bias is not None:
            self.bias.grad = dz.sum(axis=0)
        return (dz @ kernel.T).reshape(x.shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
        )
        if self.quantization_mode is not None:
            config["quantization_mode"] = self.quantization_mode
        return config


@_register_builtin
class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs during training and scales the rest by 1/(1-rate).

    ``noise_shape`` (e.g. ``(None, 1, None)``) shares the mask along axes of size 1; ``seed``
    makes the masks reproducible. Inference passes the input through.
    """

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.rate = check_rate(rate, "rate")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def _infer(self, x: Any, lengths: Any = None) -> Any:
        return x

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        if not training or self.rate == 0:
            return x, None
        shape = x.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != x.ndim:
                raise ValueError(f"noise_shape {self.noise_shape} does not match input rank {x.ndim}")
            shape = tuple(s if n is None else n for n, s in zip(self.noise_shape, x.shape))
        keep = self.rng.random(shape) >= self.rate
        mask = self.ops.asarray(keep.astype(x.dtype) / x.dtype.type(1.0 - self.rate))
        return x * mask, mask

    def backward(self, dy: Any, cache: Any) -> Any:
        return dy if cache is None else dy * cache

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            rate=self.rate, noise_shape=None if self.noise_shape is None else list(self.noise_shape)
        )
        return config


@_register_builtin
class Embedding(Layer):
    """Maps integer ids in ``0..input_dim-1`` to vectors of size ``output_dim``.

    Input ``(batch, time)`` of integers; output ``(batch, time, output_dim)``.
    ``mask_zero=True`` treats id 0 as padding: the batch must be right-padded (zeros only after
    the last real id) and the layer passes each sequence's length to the layers after it
    (combined with an explicit ``lengths=`` by taking the smaller). Weights: ``[embeddings]``.
    """

    takes_ids = True
    defer_weight_init = True

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        mask_zero: bool = False,
        input_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        if input_length is not None:
            kwargs.setdefault("input_shape", (check_positive_int(input_length, "input_length"),))
        super().__init__(**kwargs)
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.output_dim = check_positive_int(output_dim, "output_dim")
        self.embeddings_initializer = _init_spec(embeddings_initializer)
        self.mask_zero = bool(mask_zero)
        self.embeddings = None

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) < 1:
            raise ValueError(f"Embedding {self.name!r} needs input of rank >= 1, got {input_shape}")
        self.embeddings = self.add_weight(
            "embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer
        )

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*tuple(input_shape), self.output_dim)

    def _as_layer_input(self, x: Any) -> Any:
        return self._indices(as_numeric_array(x, "x", self.xp))

    def _indices(self, x: Any) -> Any:
        xp = self.xp
        if x.dtype.kind == "f":
            if not bool(xp.all(x == xp.round(x))):
                raise ValueError(f"Embedding {self.name!r} expects integer ids, got non-integral values")
        elif x.dtype.kind not in "iub":
            raise TypeError(f"Embedding {self.name!r} expects integer ids, got dtype {x.dtype}")
        if x.dtype != np.int64:
            x = x.astype(np.int64)
        if x.size:
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi >= self.input_dim:
                raise ValueError(
                    f"Embedding {self.name!r} ids must be in 0..{self.input_dim - 1}, "
                    f"got values in {lo}..{hi}"
                )
        return x

    @property
    def derives_lengths(self) -> bool:
        return self.mask_zero

    def check_inputs(self, x: Any, lengths: Any) -> None:
        """Every id in range, and with ``mask_zero`` every sequence right-padded."""
        self._indices(x)
        self.compute_lengths(x, lengths)

    def compute_lengths(self, x: Any, lengths: Any) -> Any:
        if not self.mask_zero:
            return lengths
        if x.ndim != 2:
            raise ValueError(f"Embedding(mask_zero=True) expects input (batch, time), got {tuple(x.shape)}")
        nonzero = to_host(x != 0)
        batch, time = nonzero.shape
        last = time - np.argmax(nonzero[:, ::-1], axis=1)
        derived = np.where(nonzero.any(axis=1), last, 0).astype(np.int64)
        bad = nonzero.sum(axis=1) != derived
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"Embedding {self.name!r} with mask_zero=True expects right-padded sequences "
                f"(id 0 only after the last real id), but sequence {row} has a 0 before "
                "a non-zero id"
            )
        if lengths is not None:
            derived = np.minimum(derived, lengths)
        if batch and derived.min() == time:
            return None
        return derived

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        return self._run(x, training, self.embeddings.value)

    def _run(self, x: Any, training: bool, table: Any) -> tuple[Any, Any]:
        """:meth:`forward` with the embedding table ``table``."""
        idx = self._indices(x)
        return table[idx], (idx if training else None)

    def _pinned_forward(self, values: tuple) -> Any:
        if self._own_forward(Embedding):
            return super()._pinned_forward(values)
        run, table = self._run, values[0]
        return lambda x, training, lengths=None: run(x, training, table)

    def _pinned_infer(self, values: tuple) -> Any:
        if self._own_forward(Embedding):
            return super()._pinned_infer(values)
        indices, table = self._indices, values[0]
        return lambda x, lengths=None: table[indices(x)]

    def backward(self, dy: Any, cache: Any) -> Any:
        xp = self.xp
        grad = xp.zeros(self.embeddings.shape, dtype=self.embeddings.value.dtype)
        flat = cache.reshape(-1)
        rows = dy.reshape(-1, self.output_dim)
        if hasattr(xp.add, "at"):
            xp.add.at(grad, flat, rows)
        else:  # older CuPy
            import cupyx

            cupyx.scatter_add(grad, flat, rows)
        self.embeddings.grad = grad
        return None

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            embeddings_initializer=self.embeddings_initializer,
            mask_zero=self.mask_zero,
        )
        return config


@_register_builtin
class Activation(Layer):
    """Applies an activation function element-wise (Keras's ``Activation``); the output has the
    input's shape.

    ``activation``: a Keras activation name: "linear" (None), "relu", "sigmoid", "tanh",
    "softmax" and "log_softmax" (over the last axis), "elu", "selu", "celu", "softplus",
    "softsign", "silu"/"swish", "relu6", "leaky_relu" (slope 0.2), "hard_sigmoid",
    "hard_silu"/"hard_swish", "hard_tanh", "exponential", "log_sigmoid", "mish",
    "tanh_shrink", "soft_shrink", "hard_shrink", "squareplus", "sparse_plus",
    "sparse_sigmoid" (Keras 3's default arguments; see :mod:`cgru.layers.activations`).
    """

    def __init__(self, activation: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = _act.check_activation(activation)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def _infer(self, x: Any, lengths: Any = None) -> Any:
        if x.dtype != self._np_dtype:
            x = x.astype(self._np_dtype)
        return _act.apply(self.activation, self.xp, x)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        if x.dtype != self._np_dtype:
            x = x.astype(self._np_dtype)
        y = _act.apply(self.activation, self.xp, x)
        if not training:
            return y, None
        return y, (x if _act.needs_input(self.activation) else None, y)

    def backward(self, dy: Any, cache: Any) -> Any:
        x, y = cache
        return _act.gradient(self.activation, self.xp, x, y, dy)

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": self.activation}


@_register_builtin
class Flatten(Layer):
    """Flattens each sample: ``(batch, d1, d2, ...)`` -> ``(batch, d1 * d2 * ...)``;
    ``(batch,)`` -> ``(batch, 1)`` (Keras's ``Flatten``). A sequence's padded steps are
    flattened as they are (the time axis, and with it the lengths, is gone after this layer).

    ``data_format``: "channels_last" or None (cgru arrays are channels-last).
    """

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Flatten: data_format must be 'channels_last', got {data_format!r}")

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        rest = tuple(input_shape)[1:]
        if not rest:
            return (input_shape[0], 1)
        return (input_shape[0], None if None in rest else int(np.prod(rest)))

    def _infer(self, x: Any, lengths: Any = None) -> Any:
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))  # (batch,) -> (batch, 1) too

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        return self._infer(x), (x.shape if training else None)

    def backward(self, dy: Any, cache: Any) -> Any:
        return dy.reshape(cache)

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": "channels_last"}
