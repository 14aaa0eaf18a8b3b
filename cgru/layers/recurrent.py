"""Recurrent layers: :class:`GRU` and the :class:`Bidirectional` wrapper.

Both run on the current backend's ``gru_forward``/``gru_backward`` ops; they never do the
recurrence math themselves. Weights use the Keras layout: kernel ``(input_dim, 3*units)``,
recurrent kernel ``(units, 3*units)``, gate blocks ordered z, r, h, and a bias of shape
``(2, 3*units)`` (input row, recurrent row) when ``reset_after`` else ``(3*units,)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers as _initializers
from ..backends.base import ACTIVATIONS, RECURRENT_ACTIVATIONS, forward_flops
from ..padding import reverse_padded
from ..validation import as_numeric_array, check_positive_int, check_rate
from . import quantized as _quantized
from .base import Layer, _register_builtin, deserialize_layer, serialize_layer
from .weights import read_values


def _init_spec(value: Any) -> Any:
    """Keep names as given; serialise initializer objects."""
    if isinstance(value, (str, dict)):
        _initializers.get(value)  # validate now
        return value
    return _initializers.serialize(_initializers.get(value))


@_register_builtin
class GRU(Layer):
    """Gated recurrent unit layer (Keras's ``keras.layers.GRU``).

    Input ``(batch, time, features)``; output ``(batch, time, units)`` with
    ``return_sequences=True``, else ``(batch, units)`` (the state after each sequence's last
    valid step). ``return_state=True`` returns ``[output, state]``.

    Args:
        units: size of the state.
        activation: "tanh" (default), "relu" or "linear" (None means linear).
        recurrent_activation: "sigmoid" (default) or "hard_sigmoid" (Keras 3's relu6(x+3)/6).
        use_bias: whether the layer has a bias.
        kernel_initializer, recurrent_initializer, bias_initializer: names or initializer objects
            (defaults "glorot_uniform", "orthogonal", "zeros").
        dropout: fraction of input features dropped (one mask per sequence, training only).
        recurrent_dropout: fraction of state units dropped before the recurrent product (one
            mask per sequence, training only). Kept units are scaled by 1/(1 - rate).
        return_sequences, return_state: see above.
        go_backwards: process each sequence from its last valid step; the output sequence is
            returned in that processing order (as Keras), zeros after each sequence's length.
        stateful: keep the final state of each batch row and start the next call from it;
            ``reset_states()`` forgets it (also needed to change the batch size).
        reset_after: True (default; PyTorch/cuDNN/Keras) or False (Cho et al.) candidate gate.
        seed: seeds the weight initialization and the dropout masks.
        quantization_mode: None (float weights), or "bfloat16"/"int8": the layer's weights in
            that reduced-precision form, inference only (``Sequential.quantize`` sets it; see
            :mod:`cgru.layers.quantized`).
        unroll, implementation, use_cudnn: Keras performance hints, accepted and ignored.
        name, dtype, input_shape, trainable: see :class:`~cgru.layers.Layer` (Keras's
            regularizer and constraint arguments are accepted only as None).
    """

    uses_lengths = True
    zeroes_padded_steps = True
    defer_weight_init = True

    def __init__(
        self,
        units: int,
        activation: str | None = "tanh",
        recurrent_activation: str = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        reset_after: bool = True,
        seed: int | None = None,
        unroll: bool = False,
        implementation: int = 2,
        use_cudnn: Any = "auto",
        quantization_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        # unroll, implementation and use_cudnn are Keras performance hints: accepted, no effect.
        super().__init__(seed=seed, **kwargs)
        self.units = check_positive_int(units, "units")
        activation = "linear" if activation is None else activation
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown GRU activation {activation!r}; known: {ACTIVATIONS}")
        if recurrent_activation not in RECURRENT_ACTIVATIONS:
            raise ValueError(
                f"unknown GRU recurrent_activation {recurrent_activation!r}; known: {RECURRENT_ACTIVATIONS}"
            )
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _init_spec(kernel_initializer)
        self.recurrent_initializer = _init_spec(recurrent_initializer)
        self.bias_initializer = _init_spec(bias_initializer)
        self.dropout = check_rate(dropout, "dropout")
        self.recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout")
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.reset_after = bool(reset_after)
        self.quantization_mode = _quantized.check_layer_mode(quantization_mode)
        self.input_dim: int | None = None
        self.kernel = self.recurrent_kernel = self.bias = None
        self._state = None
        self._prepared: tuple | None = None

    # ------------------------------------------------------------------------------ build
    def _build(self, input_shape: tuple) -> None:
        if len(input_shape) != 3:
            raise ValueError(
                f"GRU {self.name!r} expects 3-D input (batch, time, features), "
                f"got input shape {tuple(input_shape)}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"GRU {self.name!r} needs a known number of input features, "
                f"got input shape {tuple(input_shape)}"
            )
        if input_shape[-1] == 0:
            raise ValueError(
                f"GRU {self.name!r} needs at least one input feature, got input shape {tuple(input_shape)}"
            )
        self.input_dim = int(input_shape[-1])
        h3 = 3 * self.units
        self.kernel = self.add_weight("kernel", (self.input_dim, h3), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (self.units, h3), self.recurrent_initializer
        )
        if self.use_bias:
            shape = (2, h3) if self.reset_after else (h3,)
            self.bias = self.add_weight("bias", shape, self.bias_initializer)
        if self.quantization_mode is not None:
            mode = self.quantization_mode
            self._install_quantized(mode, self._quantized_weights(mode, [p.value for p in self._params]))

    # ------------------------------------------------------------------------ quantization
    def _quantizable_layers(self) -> list[Layer]:
        return [] if self._own_forward(GRU) else [self]

    def _check_quantizable(self, mode: str) -> None:
        _quantized.check_quantizable(self, mode, {"input features": self.input_dim, "units": self.units})

    def _quantized_weights(self, mode: str, values: list) -> list:
        """``values`` (float weights in ``weights`` order) in ``mode`` (see cgru.layers.quantized)."""
        return _quantized.quantized_arrays(mode, values, (0, 1), f"layer {self.name!r}")

    def _install_quantized(self, mode: str, arrays: list) -> None:
        """Make ``arrays`` (from :meth:`_quantized_weights`) the layer's weights."""
        names = ["kernel", "recurrent_kernel"] + (["bias"] if self.use_bias else [])
        trainable = {"bias"} if self.bias is None or self.bias.trainable else set()
        params = _quantized.quantized_params(self, mode, names, arrays, trainable)
        self.kernel, self.recurrent_kernel = params[0], params[1]
        self.bias = params[2] if self.use_bias else None
        self._params = params
        self.quantization_mode = mode
        self._prepared = None

    def _quantized_direction(self, mode: str, weights: tuple) -> Any:
        """The QuantizedGRU of :meth:`_arrays`'s quantized ``weights``."""
        from ..backends.base import split_gru_bias
        from ..backends.quantize import QuantizedGRU, QuantizedMatrix

        kernel, recurrent_kernel, bias, kernel_scale, recurrent_scale = weights
        input_bias, recurrent_bias = split_gru_bias(bias, self.units, self.reset_after)
        return QuantizedGRU(mode, QuantizedMatrix(mode, kernel, kernel_scale),
                            QuantizedMatrix(mode, recurrent_kernel, recurrent_scale), input_bias,
                            recurrent_bias, self.go_backwards, self.reset_after, self.activation,
                            self.recurrent_activation)

    def compute_output_shape(self, input_shape: tuple) -> Any:
        batch, time = input_shape[0], input_shape[1] if len(input_shape) > 1 else None
        out = (batch, time, self.units) if self.return_sequences else (batch, self.units)
        return [out, (batch, self.units)] if self.return_state else out

    # ----------------------------------------------------------------------------- states
    @property
    def states(self) -> list:
        """``[state]`` of a stateful layer (None before the first call or after a reset)."""
        return [None if self._state is None else self.ops.to_numpy(self._state).copy()]

    def reset_states(self, states: Any = None) -> None:
        """Forget the kept state (the next call starts from zeros), or set it to ``states``."""
        if not self.stateful:
            raise AttributeError(f"GRU {self.name!r} is not stateful (construct it with stateful=True)")
        if states is None:
            self._state = None
            return
        if isinstance(states, (list, tuple)):
            if len(states) != 1:
                raise ValueError(f"a GRU has one state, got {len(states)}")
            states = states[0]
        arr = as_numeric_array(states, "states", self.xp)
        if arr.ndim != 2 or arr.shape[1] != self.units:
            raise ValueError(f"state must have shape (batch, {self.units}), got {tuple(arr.shape)}")
        self._state = self.ops.asarray(arr, dtype=self._np_dtype).copy()  # never the caller's array

    reset_state = reset_states

    @property
    def state_batch_size(self) -> int | None:
        state = self._state
        return None if state is None else int(state.shape[0])

    def _stateful_h0(self, batch: int) -> Any:
        state = self._state
        if state is not None and state.shape[0] != batch:
            raise ValueError(
                f"stateful GRU {self.name!r} holds states for a batch of {state.shape[0]} "
                f"sequences but got a batch of {batch}; call reset_states() to start over "
                "with another batch size"
            )
        return state

    # ---------------------------------------------------------------------------- compute
    def _check_input(self, x: Any) -> Any:
        if x.ndim != 3 or x.shape[2] != self.input_dim:
            raise ValueError(
                f"GRU {self.name!r} expects input of shape (batch, time, {self.input_dim}), "
                f"got {tuple(x.shape)}"
            )
        if x.dtype != self._np_dtype:
            x = x.astype(self._np_dtype)
        return x

    def _mask(self, shape: tuple, rate: float) -> Any:
        keep = self.rng.random(shape) >= rate
        return self.ops.asarray(keep.astype(self._np_dtype) / self._np_dtype.type(1.0 - rate))

    def _arrays(self, values: tuple | None = None) -> tuple:
        """``(kernel, recurrent_kernel, bias or None)`` from ``values`` (the weight arrays in
        ``weights`` order), by default read from the Parameters now; quantized weights add
        ``(kernel_scale, recurrent_scale)`` (None for bfloat16)."""
        if values is None:
            values = read_values(self._params)[1]
        bias = values[2] if self.use_bias else None
        mode = _quantized.mode_of(values[0])
        if mode is None:
            return values[0], values[1], bias
        scales = values[-2:] if mode == "int8" else (None, None)
        return (values[0], values[1], bias, *scales)

    def _sequence(
        self, x: Any, training: bool, lengths: Any, initial_state: Any = None, weights: tuple | None = None
    ) -> tuple:
        """Run the recurrence with ``weights`` (:meth:`_arrays`, by default read now); returns
        (time-aligned outputs (B,T,H), final state (B,H), cache)."""
        if weights is None:
            weights = self._arrays()
        batch = x.shape[0]
        h0 = initial_state
        if self.stateful and h0 is None:
            h0 = self._stateful_h0(batch)
            if h0 is not None and training:
                h0 = h0.copy()  # the lean path updates the kept state in place; a cache must not see that
        mode = _quantized.mode_of(weights[0])
        if mode is not None:
            return self._quantized_sequence(mode, x, training, lengths, h0, weights)
        in_mask = rec_mask = None
        if training and self.dropout > 0:
            in_mask = self._mask((batch, self.input_dim), self.dropout)
            x = x * in_mask[:, None, :]
        if training and self.recurrent_dropout > 0:
            rec_mask = self._mask((batch, self.units), self.recurrent_dropout)
        kernel, recurrent_kernel, bias = weights
        y, h_n, cache = self.ops.gru_forward(
            x,
            kernel,
            recurrent_kernel,
            bias,
            h0=h0,
            lengths=lengths,
            reverse=self.go_backwards,
            reset_after=self.reset_after,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            recurrent_mask=rec_mask,
            training=training,
        )
        if self.stateful:
            self._state = h_n
            h_n = h_n.copy()  # the caller may modify what it gets; the kept state stays intact
        return y, h_n, (cache, in_mask)

    def _quantized_sequence(self, mode: str, x: Any, training: bool, lengths: Any, h0: Any,
                            weights: tuple) -> tuple:
        """:meth:`_sequence` over quantized weights, through the backend's prepared direction."""
        if training:
            raise _quantized.inference_only(self, mode)
        batch = x.shape[0]
        if h0 is None:
            h = np.zeros((batch, self.units), np.float32)
        else:
            h = np.array(h0, dtype=np.float32, copy=True)
            if h.shape != (batch, self.units):
                raise ValueError(
                    f"h0 must have shape (batch, units) = ({batch}, {self.units}), got {tuple(h.shape)}"
                )
        y = self._prepared_for(weights).forward(x, h, lengths)
        h_n = h
        if self.stateful:
            self._state = h
            h_n = h.copy()  # the caller may modify what it gets; the kept state stays intact
        return y, h_n, (None, None)

    def _sequence_backward(self, dseq: Any, dh_n: Any, core: tuple, input_grad: bool) -> Any:
        """Gradients from the time-aligned output gradient and the final-state gradient (the
        input's only when ``input_grad``)."""
        cache, in_mask = core
        grads = self.ops.gru_backward(dseq, dh_n, cache, input_grad=input_grad)
        self.kernel.grad = grads.dkernel
        self.recurrent_kernel.grad = grads.drecurrent_kernel
        if self.bias is not None:
            self.bias.grad = grads.dbias
        dx = grads.dx
        if in_mask is not None and dx is not None:
            dx = dx * in_mask[:, None, :]
        return dx

    def forward(
        self, x: Any, training: bool = False, lengths: Any = None, initial_state: Any = None
    ) -> tuple[Any, Any]:
        """``(output, cache)``; see the class documentation for the output."""
        return self._run(x, training, lengths, initial_state, self._arrays())

    def _run(self, x: Any, training: bool, lengths: Any, initial_state: Any, weights: tuple) -> tuple:
        """:meth:`forward` with ``weights`` (:meth:`_arrays`)."""
        x = self._check_input(x)
        if initial_state is not None:
            initial_state = self.ops.asarray(
                as_numeric_array(initial_state, "initial_state", self.xp), dtype=self._np_dtype
            )
        y, h_n, core = self._sequence(x, training, lengths, initial_state, weights)
        if self.return_sequences:
            out = reverse_padded(self.xp, y, lengths) if self.go_backwards else y
        else:
            out = h_n
        if self.return_state:
            out = [out, h_n]
        return out, ((core, lengths) if training else None)

    def _pinned_forward(self, values: tuple) -> Any:
        if self._own_forward(GRU):
            return super()._pinned_forward(values)
        weights = self._arrays(values)
        run = self._run

        def forward(x: Any, training: bool, lengths: Any) -> tuple[Any, Any]:
            return run(x, training, lengths, None, weights)

        return forward

    def _prepared_for(self, weights: tuple) -> Any:
        """The backend's prepared inference object (``ops.prepare_gru``) for ``weights``, kept
        while the layer runs on the same ops with the same arrays."""
        ops = self.ops
        kept = self._prepared
        if kept is not None and kept[0] is ops and all(a is b for a, b in zip(kept[1], weights)):
            return kept[2]
        mode = _quantized.mode_of(weights[0])
        if mode is not None:
            prepared = ops.prepare_quantized_gru(self._quantized_direction(mode, weights))
            self._prepared = (ops, weights, prepared)
            return prepared
        prepared = ops.prepare_gru(
            *weights,
            reverse=self.go_backwards,
            reset_after=self.reset_after,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
        )
        self._prepared = (ops, weights, prepared)
        return prepared

    def _bind(self, ops) -> None:
        _quantized.check_backend(self, ops)
        super()._bind(ops)
        self._prepared = None

    def build(self, input_shape: tuple) -> None:
        self._prepared = None
        self._build(input_shape)

    def _pinned_infer(self, values: tuple) -> Any:
        """The lean inference path (the streaming ``model(x)`` call lands here), on ``values``."""
        if self._own_forward(GRU):
            return super()._pinned_infer(values)
        weights = self._arrays(values)
        prepared = self._prepared_for(weights)
        forward = prepared.forward
        # the stateful one-step streaming call (a plugin backend's prepared object may lack it)
        step_state = getattr(prepared, "step_state", None)
        run = self._run

        def infer(x: Any, lengths: Any = None) -> Any:
            if lengths is not None or self.return_state or (self.go_backwards and self.return_sequences):
                return run(x, False, lengths, None, weights)[0]
            # x is not re-checked here: the prepared forward converts its dtype and checks its shape.
            state = self._state
            if state is not None and self.stateful and not self.return_sequences and step_state is not None:
                y = step_state(x, state)  # the output is the new state: one step of one sequence, else None
                if y is not None:
                    return y
            batch = x.shape[0]
            if self.stateful:
                h = state
                if h is None:
                    h = self._state = self.xp.zeros((batch, self.units), dtype=self._np_dtype)
                elif h.shape[0] != batch:
                    self._stateful_h0(batch)  # raises
                y = forward(x, h)  # updates the kept state in place
                if self.return_sequences:
                    return y
                if x.shape[1] == 0:
                    return h.copy()
                # The output at the last processed step equals the final state: return that view of
                # y rather than the kept state itself (no copy, and the caller cannot alter the state).
                return y[:, 0] if self.go_backwards else y[:, -1]
            h = self.xp.zeros((batch, self.units), dtype=self._np_dtype)  # per call: thread-safe
            y = forward(x, h)
            return y if self.return_sequences else h

        return infer

    def backward(self, dy: Any, cache: Any) -> Any:
        return self._backward(dy, cache, True)

    def _backward(self, dy: Any, cache: Any, input_grad: bool) -> Any:
        if self._own_backward(GRU):
            return self.backward(dy, cache)
        core, lengths = cache
        d_state = None
        if self.return_state:
            dy, d_state = dy
        if self.return_sequences:
            dseq = dy
            if dseq is not None and self.go_backwards:
                dseq = reverse_padded(self.xp, dseq, lengths)
            dh = d_state
        else:
            dseq = None
            dh = _add(dy, d_state)
        return self._sequence_backward(dseq, dh, core, input_grad)

    # ----------------------------------------------------------------------------- config
    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            recurrent_initializer=self.recurrent_initializer,
            bias_initializer=self.bias_initializer,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            stateful=self.stateful,
            reset_after=self.reset_after,
        )
        if self.quantization_mode is not None:
            config["quantization_mode"] = self.quantization_mode
        return config


def _removeprefix(name: str, prefix: str) -> str:
    return name[len(prefix) :] if name.startswith(prefix) else name


@_register_builtin
class Bidirectional(Layer):
    """Runs a GRU forwards and a copy backwards over the same input and merges the two.

    Args:
        layer: the GRU to wrap (used as a template: the forward layer is a copy named
            ``forward_<name>``).
        merge_mode: "concat" (default), "sum", "mul", "ave", or None (return both as a list).
        backward_layer: an optional GRU for the backward direction (must have the opposite
            ``go_backwards`` and the same ``return_sequences``, ``return_state`` and
            ``stateful``); by default a copy of ``layer`` with ``go_backwards`` flipped (and
            ``seed + 1``, so both directions start from different weights).

    The backward direction starts at each sequence's own last valid step (``lengths=``) and its
    output is re-reversed, so both halves are time-aligned. Weights: the forward layer's, then
    the backward layer's. ``return_state=True`` returns ``[output, forward_state, backward_state]``.
    """

    uses_lengths = True
    zeroes_padded_steps = True
    MERGE_MODES = ("concat", "sum", "mul", "ave", None)

    def __init__(
        self, layer: GRU, merge_mode: str | None = "concat", backward_layer: GRU | None = None, **kwargs: Any
    ) -> None:
        if isinstance(layer, dict):
            layer = deserialize_layer(layer)
        if isinstance(backward_layer, dict):
            backward_layer = deserialize_layer(backward_layer)
        if not isinstance(layer, GRU):
            raise TypeError(f"Bidirectional wraps a GRU layer, got {type(layer).__name__}")
        if merge_mode not in self.MERGE_MODES:
            raise ValueError(f"unknown merge_mode {merge_mode!r}; known: {self.MERGE_MODES}")
        kwargs.setdefault("dtype", layer.dtype)
        if kwargs.get("input_shape") is None and kwargs.get("batch_input_shape") is None:
            kwargs.pop("input_shape", None)
            kwargs["batch_input_shape"] = layer._batch_input_shape
        super().__init__(**kwargs)
        self.merge_mode = merge_mode
        self.forward_layer = self._recreate(layer, backward=False)
        if backward_layer is None:
            self.backward_layer = self._recreate(layer, backward=True)
        else:
            if not isinstance(backward_layer, GRU):
                raise TypeError(f"backward_layer must be a GRU, got {type(backward_layer).__name__}")
            if backward_layer.go_backwards == layer.go_backwards:
                raise ValueError("the forward and backward layers must have different go_backwards values")
            for attr in ("stateful", "return_sequences", "return_state"):
                if getattr(backward_layer, attr) != getattr(layer, attr):
                    raise ValueError(
                        f"the forward and backward layers must have the same {attr}: "
                        f"{getattr(layer, attr)} vs {getattr(backward_layer, attr)}"
                    )
            if backward_layer.dtype != self.dtype:
                raise ValueError(f"backward_layer dtype {backward_layer.dtype} differs from {self.dtype}")
            if merge_mode in ("sum", "mul", "ave") and backward_layer.units != layer.units:
                raise ValueError(
                    f"merge_mode={merge_mode!r} needs equal units in both directions, "
                    f"got {layer.units} and {backward_layer.units}"
                )
            self.backward_layer = backward_layer
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.stateful = layer.stateful

    def _recreate(self, layer: GRU, backward: bool) -> GRU:
        config = layer.get_config()
        config.pop("batch_input_shape", None)
        config["dtype"] = self.dtype
        prefix = "backward_" if backward else "forward_"
        config["name"] = prefix + _removeprefix(_removeprefix(layer.name, "forward_"), "backward_")
        if backward:
            config["go_backwards"] = not layer.go_backwards
            if layer.seed is not None:
                config["seed"] = layer.seed + 1
        return GRU.from_config(config)

    def _sublayers(self) -> list[Layer]:
        return [self.forward_layer, self.backward_layer]

    @property
    def quantization_mode(self) -> str | None:
        """The reduced-precision mode of the wrapped GRUs' weights (None: float)."""
        return self.forward_layer.quantization_mode

    def _quantizable_layers(self) -> list[Layer]:
        if self._own_forward(Bidirectional):
            return []
        return [*self.forward_layer._quantizable_layers(), *self.backward_layer._quantizable_layers()]

    @property
    def multiple_outputs(self) -> bool:
        return self.return_state or self.merge_mode is None

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 3:
            raise ValueError(
                f"Bidirectional {self.name!r} expects 3-D input (batch, time, features), "
                f"got input shape {tuple(input_shape)}"
            )
        self.forward_layer._bind(self.ops)
        self.backward_layer._bind(self.ops)
        self.forward_layer._maybe_build(input_shape)
        self.backward_layer._maybe_build(input_shape)

    def compute_output_shape(self, input_shape: tuple) -> Any:
        f = self.forward_layer.compute_output_shape(input_shape)
        b = self.backward_layer.compute_output_shape(input_shape)
        if self.return_state:
            (f, f_state), (b, b_state) = f, b
        if self.merge_mode == "concat":
            out = (*f[:-1], f[-1] + b[-1])
        elif self.merge_mode is None:
            out = [f, b]
        else:
            out = f
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + [f_state, b_state]
        return out

    def _merge(self, of: Any, ob: Any) -> Any:
        xp = self.xp
        mode = self.merge_mode
        if mode == "concat":
            return xp.concatenate([of, ob], axis=-1)
        if mode == "sum":
            return of + ob
        if mode == "mul":
            return of * ob
        if mode == "ave":
            return (of + ob) / 2
        return [of, ob]

    def forward(self, x: Any, training: bool = False, lengths: Any = None) -> tuple[Any, Any]:
        return self._run(x, training, lengths, read_values(self.weights)[1])

    def _run(self, x: Any, training: bool, lengths: Any, values: tuple) -> tuple[Any, Any]:
        """:meth:`forward` with ``values`` (the weight arrays in ``weights`` order)."""
        fwd, bwd = self.forward_layer, self.backward_layer
        split = len(fwd.weights)
        wf, wb = fwd._arrays(values[:split]), bwd._arrays(values[split:])
        x = fwd._check_input(x)
        flops = self._direction_flops(x)
        (yf, hf, cf), (yb, hb, cb) = self.ops.run_pair(
            lambda: fwd._sequence(x, training, lengths, None, wf),
            lambda: bwd._sequence(x, training, lengths, None, wb),
            flops,
        )
        if self.return_sequences:
            # Keras: the forward half as its layer returns it, the backward half re-reversed.
            of = reverse_padded(self.xp, yf, lengths) if fwd.go_backwards else yf
            ob = yb if bwd.go_backwards else reverse_padded(self.xp, yb, lengths)
        else:
            of, ob = hf, hb
        out = self._merge(of, ob)
        if self.return_state:
            out = (out if isinstance(out, list) else [out]) + [hf, hb]
        cache = (cf, cb, of, ob, lengths, flops) if training else None
        return out, cache

    def _direction_flops(self, x: Any) -> float:
        """Matrix-product work of one direction's forward pass over x (B, T, I)."""
        return forward_flops(*x.shape, self.forward_layer.units)

    def _pinned_forward(self, values: tuple) -> Any:
        if self._own_forward(Bidirectional):
            return super()._pinned_forward(values)
        run = self._run

        def forward(x: Any, training: bool, lengths: Any) -> tuple[Any, Any]:
            return run(x, training, lengths, values)

        return forward

    def _pinned_infer(self, values: tuple) -> Any:
        forward = self._pinned_forward(values)
        if forward is None:
            return None
        return lambda x, lengths=None: forward(x, False, lengths)[0]

    def backward(self, dy: Any, cache: Any) -> Any:
        return self._backward(dy, cache, True)

    def _backward(self, dy: Any, cache: Any, input_grad: bool) -> Any:
        if self._own_backward(Bidirectional):
            return self.backward(dy, cache)
        cf, cb, of, ob, lengths, flops = cache
        fwd, bwd = self.forward_layer, self.backward_layer
        dhf_state = dhb_state = None
        if self.return_state:
            dy = list(dy)
            dhf_state, dhb_state = dy[-2], dy[-1]
            dy = dy[:-2] if self.merge_mode is None else dy[0]
        mode = self.merge_mode
        if mode is None:
            dof, dob = dy
        elif dy is None:
            dof = dob = None
        elif mode == "concat":
            split = of.shape[-1]
            dof, dob = dy[..., :split], dy[..., split:]
        elif mode == "sum":
            dof = dob = dy
        elif mode == "ave":
            dof = dob = dy / 2
        else:  # mul
            dof, dob = dy * ob, dy * of
        xp = self.xp
        if self.return_sequences:
            dseq_f = dof
            if dof is not None and fwd.go_backwards:
                dseq_f = reverse_padded(xp, dof, lengths)
            dseq_b = dob
            if dob is not None and not bwd.go_backwards:
                dseq_b = reverse_padded(xp, dob, lengths)
            if dseq_f is not None:
                dseq_f = xp.ascontiguousarray(dseq_f)
            if dseq_b is not None:
                dseq_b = xp.ascontiguousarray(dseq_b)
            dh_f, dh_b = dhf_state, dhb_state
        else:
            dseq_f = dseq_b = None
            dh_f = _add(dof, dhf_state)
            dh_b = _add(dob, dhb_state)
            if dh_f is not None:
                dh_f = xp.ascontiguousarray(dh_f)
            if dh_b is not None:
                dh_b = xp.ascontiguousarray(dh_b)
        dxf, dxb = self.ops.run_pair(
            lambda: fwd._sequence_backward(dseq_f, dh_f, cf, input_grad),
            lambda: bwd._sequence_backward(dseq_b, dh_b, cb, input_grad),
            2 * flops,
        )
        return None if dxf is None else dxf + dxb

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            layer=serialize_layer(self.forward_layer),
            merge_mode=self.merge_mode,
            backward_layer=serialize_layer(self.backward_layer),
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> Bidirectional:
        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize_layer(config["backward_layer"])
        return cls(**config)


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a + b
