"""The :class:`Layer` base class (used by every built-in layer) and the layer registry.

Writing a layer
---------------
Subclass :class:`Layer` and implement:

``build(self, input_shape)``
    Create the weights with :meth:`Layer.add_weight`. ``input_shape`` is the full input shape,
    batch first, with None for unknown sizes (e.g. ``(None, None, 16)``).
``forward(self, x, training=False) -> (y, cache)``
    Compute the output from a backend array ``x``; ``cache`` is anything :meth:`backward` needs
    (return None when not training). Use ``self.ops.xp`` (numpy or cupy) for array math so the
    layer runs on every backend. Keep per-call data in ``cache``, never on ``self``: one model
    serves several threads at once. Read weights through ``param.value`` and never write into
    them (assign a new value instead): calls of a model with such a layer hold a shared lock
    that weight changes wait for, so that each call sees one whole set of weights.
``backward(self, dy, cache) -> dx``
    Given the gradient of the output, set ``param.grad`` of each weight (same shape as the
    weight) and return the gradient of the input (None if the input is not differentiable).
    Only needed for training.
``get_config(self) -> dict``
    The constructor arguments, JSON-serialisable: ``{**super().get_config(), "units": ...}``.
    ``from_config(config)`` calls ``cls(**config)`` by default.

Optionally override ``compute_output_shape(input_shape)`` (the default runs ``forward`` on a
small zero input), set ``uses_lengths = True`` and accept ``forward(x, training, lengths=None)``
to see the per-sequence lengths of a right-padded batch, or override
``compute_lengths(x, lengths)`` to produce lengths (as ``Embedding(mask_zero=True)`` does).
Set ``defer_weight_init = True`` when ``build`` only creates weights with ``add_weight`` and never
reads or writes their values, and ``compute_output_shape`` is overridden: ``load_model`` then
builds the layer without running its initializers and gives it the saved arrays (see
:func:`deferred_weights`).

What a model asks of a layer
----------------------------
:class:`~cgru.Sequential` never asks what class a layer is; it reads these members, which
:class:`Layer` gives defaults for, the built-in layers set, and plugin layers may set too:

``uses_lengths`` (class attribute, default False)
    ``forward`` takes ``lengths=``: the valid length of each sequence of a right-padded batch
    (int64 NumPy array (B,), checked by the model: trust it), or None.
``derives_lengths`` (property; default: whether the class overrides ``compute_lengths``)
    ``compute_lengths`` may produce lengths from the data itself (``Embedding(mask_zero=True)``).
    A model with such a layer checks every call (no lean ``model(x)`` path).
``output_lengths(lengths, x, y)``
    The lengths that apply to the output ``y`` computed from ``x`` with ``lengths`` (NumPy
    int64 or None). Default: the same lengths while ``y`` is a sequence ``(batch, time,
    features)`` on ``x``'s time axis, else None (the time axis is gone). A layer that changes
    the time axis (a strided or padded ``Conv1D``) maps them to its output steps.
``takes_ids`` (class attribute, default False)
    The input is integer ids ``(batch, time)`` with no feature axis (``Embedding``); asked of
    the first layer, which then also gets int64 arrays on the lean ``model(x)`` path.
``_as_layer_input(x)``
    The model's input as the first layer takes it (default: a float array of the layer's dtype
    on its backend). A first layer that converts its input its own way and does not take ids
    runs every call through the checked path.
``zeroes_padded_steps`` (class attribute, default False)
    The output's padded steps (t >= length) are already exact zeros (``GRU``,
    ``Bidirectional``): a model ending with this layer does not zero them again.
``multiple_outputs`` (property; default: the layer's ``return_state`` attribute, if any)
    ``forward`` returns a list of outputs; such a layer must be a model's last.
``stateful_layers()``
    The layers that keep one state per batch row between calls (default: the stateful layers
    of the sublayers, or this layer when its ``stateful`` attribute is True). A model checks
    their ``state_batch_size`` (the rows of the kept state, None when none is kept) against
    its batches.
``reset_states()``
    Forget the kept state (default: the stateful sublayers'); ``Sequential.reset_states`` calls
    it on every layer whose ``stateful`` attribute is not False.
``check_inputs(x, lengths)``
    Asked of the first layer before ``fit``/``evaluate`` touch any weight: raise for a data set
    (a host array, ``lengths`` checked) that a later batch would fail on (default: nothing).
``_backward(dy, cache, input_grad)``
    What a model calls to backpropagate: ``input_grad`` is False for its first layer, whose
    input is data, so a layer may skip computing ``dx`` and return None. The default calls
    ``backward(dy, cache)``.
``_pinned_forward(values)`` / ``_pinned_infer(values)``
    The layer's computation bound to weight arrays read once per call (see
    :mod:`cgru.layers.weights`); the default binds layers without weights and returns None
    (the layer reads its Parameters as it runs) for the others.

Decorate the class with :func:`register_layer` so that ``save``/``load_model`` can rebuild it::

    @cgru.register_layer
    class Scale(cgru.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def build(self, input_shape):
            self.bias = self.add_weight("bias", (input_shape[-1],), initializer="zeros")

        def forward(self, x, training=False):
            return x * self.factor + self.bias.value, None

        def backward(self, dy, cache):
            self.bias.grad = dy.reshape(-1, dy.shape[-1]).sum(axis=0)
            return dy * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np

from .. import config as _config
from .. import initializers as _initializers
from ..backends import get_ops
from ..registry import Registry
from ..validation import as_numeric_array, check_lengths_for, check_shape
from .parameters import (
    Parameter,
    WeightPlaceholder,
    assign_weights,
    deferred_weights,
    deferring,
    install_weights,
    validate_weights,
)
from .weights import Changes, Pinned, publish, run_pinned

_name_lock = threading.Lock()
_name_counters: dict[str, int] = {}


def to_snake_case(name: str) -> str:
    """Keras's layer-name rule: ``"GlobalAveragePooling1D"`` -> ``"global_average_pooling1d"``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """``base``, then ``base_1``, ``base_2``... (one counter per base name, as Keras names layers)."""
    with _name_lock:
        count = _name_counters.get(base, 0)
        _name_counters[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


#: Keras layer arguments that cgru does not implement; accepted only with the value None.
_KERAS_UNSUPPORTED = frozenset(
    f"{what}_{kind}"
    for what in ("kernel", "recurrent", "bias", "activity", "embeddings")
    for kind in ("regularizer", "constraint")
)


def _shape_needs_no_forward(layer: Any) -> bool:
    """Whether the layer's output shape is known without running it on its weights."""
    return type(layer).compute_output_shape is not Layer.compute_output_shape


class Layer:
    """Base class of every layer (see the module documentation for writing one).

    Keyword arguments shared by all layers: ``name`` (unique default from the class name),
    ``dtype`` ("float32"/"float64", default :func:`cgru.floatx`), ``input_shape`` (the shape of
    one sample, Keras style, e.g. ``(time, features)``; lets a model build at once),
    ``batch_input_shape`` (the same with the batch size first), ``trainable`` and ``seed``
    (initializers and dropout draw from a generator seeded with it).
    """

    #: True when ``forward`` takes ``lengths=`` (right-padded batches, one length per row).
    uses_lengths = False

    #: True when ``build`` only creates weights with ``add_weight`` and never touches their
    #: values, so that :func:`deferred_weights` may leave them uninitialised (a layer that keeps
    #: the default ``compute_output_shape``, which runs ``forward``, is initialised anyway).
    defer_weight_init = False

    #: True when the input is integer ids (batch, time) with no feature axis (``Embedding``).
    takes_ids = False

    #: True when the output is already exactly zero at the padded steps (t >= length).
    zeroes_padded_steps = False

    #: The reduced-precision mode of the layer's weights ("bfloat16", "int8"), None for float
    #: weights (see :mod:`cgru.layers.quantized`).
    quantization_mode: str | None = None

    def __init__(
        self,
        *,
        name: str | None = None,
        dtype: Any = None,
        input_shape: Any = None,
        batch_input_shape: Any = None,
        trainable: bool = True,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        for key in [k for k in kwargs if k in _KERAS_UNSUPPORTED]:
            # Keras scripts often pass these as None: accept that, refuse anything else.
            if kwargs.pop(key) is not None:
                raise ValueError(f"{type(self).__name__}: {key} is not supported by cgru (only None)")
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword argument(s): {sorted(kwargs)}")
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self.dtype = _config.standardize_dtype(dtype)
        self._np_dtype = np.dtype(self.dtype)
        if input_shape is not None and batch_input_shape is not None:
            raise ValueError("give input_shape or batch_input_shape, not both")
        if input_shape is not None:
            batch_input_shape = (None, *check_shape(input_shape, "input_shape"))
        elif batch_input_shape is not None:
            batch_input_shape = check_shape(batch_input_shape, "batch_input_shape")
        self._batch_input_shape = batch_input_shape
        self.trainable = bool(trainable)
        self.seed = _config.check_seed(seed)
        self.built = False
        self.build_input_shape: tuple | None = None
        self._params: list[Parameter] = []
        self._ops = None
        self._rng: np.random.Generator | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- backend and randomness
    @property
    def ops(self):
        """The backend ops this layer runs on (the current backend until a model binds it)."""
        return self._ops if self._ops is not None else get_ops()

    @property
    def xp(self):
        """The array module of the layer's backend (numpy or cupy)."""
        return self.ops.xp

    @property
    def rng(self) -> np.random.Generator:
        """The layer's NumPy generator (seeded by ``seed``, else from :func:`cgru.set_random_seed`)."""
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed if self.seed is not None else _config.next_seed())
        return self._rng

    def _sublayers(self) -> list[Layer]:
        """Layers owned by this one (their weights follow this layer's own)."""
        return []

    def _quantizable_layers(self) -> list[Layer]:
        """The layers (this one or its sublayers) whose weights ``Sequential.quantize`` turns
        into a reduced-precision form (they implement ``_check_quantizable``,
        ``_quantized_weights`` and ``_install_quantized``); the others stay as they are."""
        return []

    def _bind(self, ops) -> None:
        """Run on ``ops`` from now on, moving the weights to its device when needed."""
        old = self._ops
        if old is not ops and self._params:
            old_ops = old if old is not None else get_ops()
            if old_ops.xp is not ops.xp:
                publish([(p, ops.asarray(old_ops.to_numpy(p.value))) for p in self._params])
                for p in self._params:
                    p.grad = None
        self._ops = ops
        for sub in self._sublayers():
            sub._bind(ops)

    # ----------------------------------------------------------------------------- weights
    def add_weight(
        self, name: str, shape: Any, initializer: Any = "zeros", trainable: bool = True, dtype: Any = None
    ) -> Parameter:
        """Create a weight, initialised from ``initializer`` (name or object) with the layer's rng."""
        shape = check_shape(shape, f"shape of weight {name!r}", allow_none=False)
        init = _initializers.get(initializer)
        dtype = _config.standardize_dtype(dtype if dtype is not None else self.dtype)
        if deferring() and self.defer_weight_init and _shape_needs_no_forward(self):
            value = WeightPlaceholder(shape, dtype)  # the caller installs the real array
        else:
            value = self.ops.asarray(init(shape, dtype=dtype, rng=self.rng))
        param = Parameter(f"{self.name}/{name}", value, trainable=bool(trainable))
        self._params.append(param)
        return param

    @property
    def weights(self) -> list[Parameter]:
        """Every weight (this layer's, then its sublayers'), in ``get_weights`` order."""
        out = list(self._params)
        for sub in self._sublayers():
            out.extend(sub.weights)
        return out

    @property
    def trainable_weights(self) -> list[Parameter]:
        if not self.trainable:
            return []
        out = [p for p in self._params if p.trainable]
        for sub in self._sublayers():
            out.extend(sub.trainable_weights)
        return out

    @property
    def non_trainable_weights(self) -> list[Parameter]:
        trainable = {id(p) for p in self.trainable_weights}
        return [p for p in self.weights if id(p) not in trainable]

    def get_weights(self) -> list[np.ndarray]:
        """NumPy copies of the weights (Keras order and layout)."""
        return [p.numpy() for p in self.weights]

    def set_weights(self, weights: Any) -> None:
        """Replace the weights; validates the count and every shape before changing anything."""
        params = self.weights
        arrays = validate_weights(params, weights, f"layer {self.name!r}")
        assign_weights(params, arrays)

    def count_params(self) -> int:
        """Number of scalars in the weights (the layer must be built)."""
        if not self.built:
            raise ValueError(
                f"layer {self.name!r} is not built yet, so its weights do not exist; "
                "build the model or call the layer on data first"
            )
        return int(sum(int(np.prod(p.shape)) for p in self.weights))

    # ------------------------------------------------------------------------ build / shapes
    def build(self, input_shape: tuple) -> None:
        """Create the weights for inputs of ``input_shape`` (batch first). Default: no weights."""

    def _maybe_build(self, input_shape: tuple) -> None:
        if self.built:
            return
        with self._lock:
            if self.built:
                return
            input_shape = tuple(input_shape)
            self.build(input_shape)
            self.build_input_shape = input_shape
            self.built = True

    def compute_output_shape(self, input_shape: tuple) -> Any:
        """Output shape for ``input_shape`` (batch first, None for unknown sizes).

        The default runs ``forward`` on zeros (unknown sizes taken as 1) and keeps None where the
        input had None, when the rank is unchanged. Override it when that guess is wrong.
        """
        concrete = tuple(1 if d is None else d for d in input_shape)
        y, _ = self._forward(self.xp.zeros(concrete, dtype=self._np_dtype), False, None)
        out = [None, *y.shape[1:]]
        if len(out) == len(input_shape):
            for i in range(1, len(out)):
                if input_shape[i] is None:
                    out[i] = None
        return tuple(out)

    def compute_lengths(self, x: Any, lengths: Any) -> Any:
        """The lengths that apply to this layer's input ``x`` (default: the ones given)."""
        return lengths

    def output_lengths(self, lengths: Any, x: Any, y: Any) -> Any:
        """The lengths that apply to this layer's output ``y`` (computed from ``x`` with
        ``lengths``): by default the same ones while ``y`` keeps ``x``'s time axis as a
        ``(batch, time, features)`` sequence, else None."""
        if lengths is None or not (getattr(y, "ndim", 0) == 3 and y.shape[1] == x.shape[1]):
            return None
        return lengths

    # ------------------------------------------------------- what a model asks (module docs)
    @property
    def derives_lengths(self) -> bool:
        """Whether :meth:`compute_lengths` may derive lengths from the input itself."""
        return type(self).compute_lengths is not Layer.compute_lengths

    @property
    def multiple_outputs(self) -> bool:
        """Whether ``forward`` returns a list of outputs (by default: ``return_state``)."""
        return bool(getattr(self, "return_state", False))

    def stateful_layers(self) -> list[Layer]:
        """The layers (this one or its sublayers) that keep a state per batch row between calls."""
        subs = self._sublayers()
        if subs:
            return [layer for sub in subs for layer in sub.stateful_layers()]
        return [self] if getattr(self, "stateful", False) is True else []

    @property
    def state_batch_size(self) -> int | None:
        """Rows of the state a stateful layer keeps (None when it keeps none)."""
        return None

    def check_inputs(self, x: Any, lengths: Any) -> None:
        """Raise for a whole data set (host array ``x``, checked ``lengths``) that this layer, as
        a model's first, would refuse in some batch; called before training changes a weight."""

    # ---------------------------------------------------------------------------- compute
    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        """Compute ``(y, cache)`` from ``x`` (override this)."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, training)")

    def backward(self, dy: Any, cache: Any) -> Any:
        """Fill each weight's ``grad`` and return ``dx`` (override this to train the layer)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement backward(dy, cache), so it cannot be trained"
        )

    def _backward(self, dy: Any, cache: Any, input_grad: bool) -> Any:
        """:meth:`backward`, told whether the input's gradient is wanted: False when the input
        is data (a model's first layer), and a layer may then skip ``dx`` and return None."""
        return self.backward(dy, cache)

    def _forward(self, x: Any, training: bool, lengths: Any) -> tuple[Any, Any]:
        if self.uses_lengths:
            return self.forward(x, training, lengths=lengths)
        return self.forward(x, training)

    def _infer(self, x: Any, lengths: Any = None) -> Any:
        """Inference output only, reading the Parameters as it runs."""
        return self._forward(x, False, lengths)[0]

    def _pinned_forward(self, values: tuple) -> Any:
        """A function ``(x, training, lengths) -> (y, cache)`` that computes what ``_forward``
        does with ``values`` (this layer's weight arrays, in ``weights`` order) instead of
        reading the Parameters as it runs; None when the layer cannot. Built-in layers can; the
        default, for a layer with weights, cannot (its forward reads them itself)."""
        return None if self.weights else self._forward

    def _pinned_infer(self, values: tuple) -> Any:
        """A function ``(x) -> y``, the inference output computed with ``values`` (see
        :meth:`_pinned_forward`); None when the layer cannot."""
        return None if self.weights else self._infer

    def _own_forward(self, cls: type) -> bool:
        """Whether this layer's class replaces ``cls``'s forward (a subclass of a built-in
        layer): that forward reads its Parameters itself, so it cannot be bound to arrays."""
        return type(self).forward is not cls.forward

    def _own_backward(self, cls: type) -> bool:
        """Whether this layer's class replaces ``cls``'s public backward (then :meth:`_backward`
        must call it)."""
        return type(self).backward is not cls.backward

    def __call__(self, x: Any, training: bool = False, lengths: Any = None) -> Any:
        """Run the layer on its own: builds it on first use, returns its output."""
        ops = self.ops
        if not self.built:
            x_host = as_numeric_array(x, "x") if not hasattr(x, "__cuda_array_interface__") else x
            self._bind(ops)
            self._maybe_build((None, *x_host.shape[1:]))
        x = self._as_layer_input(x)
        lengths = self.compute_lengths(x, check_lengths_for(lengths, tuple(x.shape)))
        return run_pinned(
            lambda: Pinned.take([self], ops, Changes()),
            lambda pinned: pinned.forwards[0](x, bool(training), lengths)[0],
        )

    def _as_layer_input(self, x: Any) -> Any:
        """``x`` as a float array of the layer's dtype on its backend."""
        x = as_numeric_array(x, "x", self.xp)
        return self.ops.asarray(x, dtype=self._np_dtype)

    def reset_states(self) -> None:
        """Forget the state of a stateful layer (default: its stateful sublayers'; no-op for
        the others)."""
        for sub in self._sublayers():
            if getattr(sub, "stateful", True):
                sub.reset_states()

    # ---------------------------------------------------------------------------- config
    def get_config(self) -> dict:
        """Constructor arguments (JSON-serialisable); subclasses extend it."""
        config: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "trainable": self.trainable}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        if self.seed is not None:
            config["seed"] = self.seed
        return config

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        """A new layer from :meth:`get_config`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


# ------------------------------------------------------------------------------- registry
LAYERS = Registry("layer", Layer, "cgru.register_layer", "cgru.Layer")
_REGISTRY = LAYERS.classes  # name -> class


def check_channels_last(owner: str, data_format: Any) -> None:
    """Raise ValueError unless ``data_format`` is None or "channels_last" (the one layout of
    cgru's sequences); ``owner`` names the layer class in the message."""
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"{owner}: data_format must be 'channels_last' (cgru sequences are (batch, time, "
            f"features)), got {data_format!r}"
        )


def check_sequence_shape(layer: Layer, shape: tuple) -> None:
    """Raise ValueError unless ``shape`` is (batch, time, features)."""
    if len(shape) != 3:
        raise ValueError(
            f"{type(layer).__name__} {layer.name!r} expects sequences (batch, time, features), "
            f"got input shape {tuple(shape)}"
        )


def register_layer(cls: type | None = None, *, name: str | None = None, override: bool = False):
    """Register a :class:`Layer` subclass so ``save``/``load_model`` can rebuild it by name.

    Use as ``@register_layer`` or ``@register_layer(name="mypkg.MyLayer")``. The default name is
    the class name. Registering the same class again (or a redefinition of it from the same
    module, e.g. a re-run notebook cell) replaces the entry; a *different* class under a taken
    name raises ValueError unless ``override=True`` (choose a distinct ``name`` instead, e.g.
    prefixed with your package name). Built-in names (``"GRU"``, ``"Dense"``...) are never
    replaced without ``override=True``.
    """
    return LAYERS.register(cls, name=name, override=override)


def _register_builtin(cls: type) -> type:
    return LAYERS.register_builtin(cls)


def registered_name(cls: type) -> str | None:
    """The name ``cls`` is registered under, or None."""
    return LAYERS.name_of(cls)


def get_layer_class(name: str) -> type:
    """The registered layer class called ``name``; ValueError naming the known ones otherwise."""
    return LAYERS.get(name)


def registered_layers() -> dict[str, type]:
    """A copy of the registry (name -> class)."""
    return dict(LAYERS.classes)


def serialize_layer(layer: Layer) -> dict:
    """``{"class_name", "config"}`` for a registered layer; ValueError/TypeError otherwise."""
    return LAYERS.serialize(layer, f"layer {layer.name!r}")


def deserialize_layer(spec: Any) -> Layer:
    """A layer from :func:`serialize_layer`'s output."""
    return LAYERS.deserialize(spec)


__all__ = [
    "check_channels_last",
    "check_sequence_shape",
    "Layer",
    "Parameter",
    "WeightPlaceholder",
    "assign_weights",
    "deferred_weights",
    "deserialize_layer",
    "get_layer_class",
    "install_weights",
    "register_layer",
    "registered_layers",
    "registered_name",
    "serialize_layer",
    "to_snake_case",
    "unique_name",
    "validate_weights",
]
