"""The Keras-style :class:`Sequential` model: build, compile, fit, evaluate, predict, save.

A model is a stack of layers (:mod:`cgru.layers`) run on one backend: ``device=`` ("cpu",
"numpy", "cuda", or any registered backend) fixes it, ``.to(device)`` moves the model, and with
``device=None`` the model follows :func:`cgru.set_backend`.

Right-padded batches of variable-length sequences take ``lengths=`` (one int per sequence) on
every entry point. Lengths flow through the stack while the time axis is kept (GRU with
``return_sequences``, Dense, Dropout...); outputs at ``t >= length`` are zero, a GRU returns the
state after each sequence's last valid step, and losses and metrics of sequence outputs average
over the valid steps only.

``model(x)`` is the low-overhead inference call: with ``stateful=True`` GRU layers, feeding one
time step per call continues each batch row from the state the previous call left.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from . import callbacks as _callbacks
from . import config as _config
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import progress as _progress
from .backends import get_ops
from .backends.base import check_lengths, valid_steps
from .layers.base import (
    Layer,
    as_numeric_array,
    assign_weights,
    check_shape,
    deserialize_layer,
    serialize_layer,
    unique_name,
    validate_weights,
)
from .layers.core import Embedding
from .layers.recurrent import GRU, Bidirectional
from .layers.weights import READERS, Changes, Pinned, run_pinned, watch

_COMPILE_IGNORED = ("run_eagerly", "jit_compile", "steps_per_execution", "auto_scale_loss")


def _multi_output(layer: Layer) -> bool:
    return bool(getattr(layer, "return_state", False)) or (
        isinstance(layer, Bidirectional) and layer.merge_mode is None
    )


def _readable_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _take(a: Any, idx: Any) -> Any:
    return None if a is None else a[idx]


class Sequential:
    """A linear stack of layers (Keras's ``keras.Sequential``).

    Args:
        layers: layers to add, in order.
        name: model name (default "sequential", "sequential_1", ...).
        device: backend name ("cpu", "numpy", "cuda"...) or None to follow the current backend.
    """

    def __init__(self, layers: Any = None, name: str | None = None, device: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        self.name = name or unique_name("sequential")
        self._device = None
        self._ops = None  # the ops the layers are bound to
        if device is not None:
            self._ops = self._resolve_device(device)
            self._device = device
        self._layers: list[Layer] = []
        self.built = False
        self._build_input_shape: tuple | None = None
        self._output_shape: Any = None
        self.optimizer = None
        self.loss = None
        self._metrics: list = []
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._lock = threading.RLock()
        self._changes = Changes()  # counts the publications that change this model's weights
        self._pinned: Pinned | None = None  # the weights the last call ran on
        self._lean_setup: Any = None  # what the lean __call__ checks x against (False: no lean path)
        self._fast = None
        if layers is not None:
            if isinstance(layers, Layer):
                layers = [layers]
            for layer in layers:
                self.add(layer)

    # ------------------------------------------------------------------------- structure
    @staticmethod
    def _resolve_device(device: Any):
        if not isinstance(device, str):
            raise TypeError(f"device must be a backend name such as 'cpu', got {device!r}")
        return get_ops(device)

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    @property
    def device(self) -> str:
        """The backend the model runs on."""
        return self._device if self._device is not None else self._current_ops().name

    def add(self, layer: Layer) -> None:
        """Append a layer (built at once when the model's input shape is known)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a cgru Layer, got {type(layer).__name__}")
        if any(layer is other for other in self._layers):
            raise ValueError(f"layer {layer.name!r} is already in the model")
        if any(layer.name == other.name for other in self._layers):
            raise ValueError(
                f"the model already has a layer named {layer.name!r}; layer names must be unique"
            )
        if self._layers and _multi_output(self._layers[-1]):
            raise ValueError(
                f"layer {self._layers[-1].name!r} returns several outputs, so it must be the "
                "last layer of a Sequential model"
            )
        with self._lock:
            if self.built:
                ops = self._current_ops()
                layer._bind(ops)
                was_built = layer.built
                try:
                    layer._maybe_build(self._output_shape)
                    out = layer.compute_output_shape(self._output_shape)
                except Exception:
                    if not was_built:
                        _unbuild(layer)
                    raise
                self._layers.append(layer)
                self._output_shape = out
                self._make_fast()
                return
            self._layers.append(layer)
            if len(self._layers) == 1 and layer._batch_input_shape is not None:
                try:
                    self.build(layer._batch_input_shape)
                except Exception:
                    self._layers.pop()
                    raise

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._layers:
            raise ValueError("the model has no layers to pop")
        with self._lock:
            layer = self._layers.pop()
            if self.built:
                if self._layers:
                    self._output_shape = self.compute_output_shape(self._build_input_shape)
                    self._make_fast()
                else:
                    self.built = False
                    self._pinned = self._lean_setup = self._fast = None
        return layer

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or index."""
        if index is not None:
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; layers: {[layer.name for layer in self._layers]}")

    def _current_ops(self):
        return self._ops if self._device is not None else get_ops()

    def _ensure_bound(self):
        ops = self._current_ops()
        if ops is not self._ops or any(layer._ops is not ops for layer in self._layers):
            with self._lock:
                for layer in self._layers:
                    layer._bind(ops)
                self._ops = ops
                if self.built:
                    self._make_fast()
        return ops

    def to(self, device: str) -> Sequential:
        """Run on ``device`` (a backend name) from now on, moving the weights; returns self."""
        ops = self._resolve_device(device)
        with self._lock:
            for layer in self._layers:
                layer._bind(ops)
            self._ops = ops
            self._device = device
            if self.built:
                self._make_fast()
        return self

    def build(self, input_shape: Any = None) -> None:
        """Create every layer's weights for inputs of ``input_shape`` (batch first, e.g.
        ``(None, 5, 10)``); by default the first layer's ``input_shape``."""
        if not self._layers:
            raise ValueError("cannot build a model with no layers; add layers first")
        if input_shape is None:
            input_shape = self._layers[0]._batch_input_shape
            if input_shape is None:
                raise ValueError(
                    "build() needs an input shape: pass it, e.g. build((None, time, features)), "
                    "or give the first layer input_shape="
                )
        input_shape = check_shape(input_shape, "input_shape")
        if len(input_shape) < 2:
            raise ValueError(
                f"input_shape must include the batch axis, e.g. (None, time, features); got {input_shape}"
            )
        input_shape = (None, *input_shape[1:])
        with self._lock:
            ops = self._current_ops()
            newly_built = []
            shape: Any = input_shape
            try:
                for i, layer in enumerate(self._layers):
                    if isinstance(shape, list):
                        raise ValueError(
                            f"layer {self._layers[i - 1].name!r} returns several outputs, so it "
                            "must be the last layer of a Sequential model"
                        )
                    layer._bind(ops)
                    if not layer.built:
                        newly_built.append(layer)
                        layer._maybe_build(shape)
                    elif layer.build_input_shape is not None and not _compatible(
                        layer.build_input_shape, shape
                    ):
                        raise ValueError(
                            f"layer {layer.name!r} was built for input shape "
                            f"{layer.build_input_shape}, but receives {shape} in this model"
                        )
                    shape = layer.compute_output_shape(shape)
            except Exception:
                for layer in newly_built:
                    _unbuild(layer)
                raise
            self._ops = ops
            self._build_input_shape = input_shape
            self._output_shape = shape
            self.built = True
            self._make_fast()

    def _make_fast(self) -> None:
        """Set up the lean ``__call__`` path again (the layers or their backend changed): the
        first checked call binds it, so nothing reads the weights here (a model being loaded has
        no weight values yet)."""
        self._pinned = self._lean_setup = self._fast = None
        watch(self.weights, self._changes)

    def _pinned_now(self) -> Pinned:
        """The weights of every layer as one consistent set, and the layers bound to them (read
        again only after a publication: see :mod:`cgru.layers.weights`)."""
        pinned = self._pinned
        ops = self._ops
        if pinned is None or not pinned.current(ops):
            pinned = self._pinned = Pinned.take(self._layers, ops, self._changes, pinned)
        return pinned

    def _run_pinned(self, fn: Any, *args: Any) -> Any:
        """``fn(pinned, *args)`` on one set of weights from start to end (see run_pinned)."""
        return run_pinned(self._pinned_now, fn, *args)

    def _lean_call(self, pinned: Pinned) -> tuple | None:
        """What the lean ``__call__`` path needs to run on ``pinned``'s weights (None: the model
        always takes the checked path)."""
        setup = self._lean_setup
        if setup is None:
            setup = self._lean_setup = self._lean_call_setup()
        if setup is False:
            return None
        fns = (self._guarded_infer,) if pinned.guarded else pinned.infers()
        return (pinned.ops, *setup, fns, pinned.ops.xp.ndarray, pinned.changes, pinned.count)

    def _lean_call_setup(self) -> tuple | bool:
        """``(dtype, ndim, features)`` the lean path accepts x with, or False when it cannot run."""
        first = self._layers[0]
        shape = self._build_input_shape
        for layer in self._layers:  # layers that derive lengths need the checked path
            derives = type(layer).compute_lengths is not Layer.compute_lengths
            if derives and not (isinstance(layer, Embedding) and not layer.mask_zero):
                return False
        if isinstance(first, Embedding):
            return np.dtype(np.int64), len(shape), None  # ids (batch, time): any time length
        if type(first)._as_layer_input is Layer._as_layer_input:
            return first._np_dtype, len(shape), shape[-1]
        return False

    def _guarded_infer(self, x: Any) -> Any:
        """The lean call of a model with a layer that reads its Parameters as it runs."""
        with READERS:
            for f in self._pinned_now().infers():
                x = f(x)
        return x

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
        return shape

    @property
    def input_shape(self) -> tuple | None:
        return self._build_input_shape

    @property
    def output_shape(self) -> Any:
        return self._output_shape

    @property
    def dtype(self) -> str:
        return self._layers[-1].dtype if self._layers else _config.floatx()

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"this model has not yet been built, so {what} is not available: build it with "
                "build((None, time, features)), give the first layer input_shape=, or call it on data"
            )

    # --------------------------------------------------------------------------- weights
    @property
    def weights(self) -> list:
        return [p for layer in self._layers for p in layer.weights]

    @property
    def trainable_weights(self) -> list:
        return [p for layer in self._layers for p in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list:
        return [p for layer in self._layers for p in layer.non_trainable_weights]

    def get_weights(self) -> list[np.ndarray]:
        """NumPy copies of all weights, layer by layer (Keras order and layout)."""
        self._require_built("get_weights()")
        return [p.numpy() for p in self.weights]

    def set_weights(self, weights: Any) -> None:
        """Replace all weights; the count and every shape are checked before anything changes."""
        self._require_built("set_weights()")
        params = self.weights
        arrays = validate_weights(params, weights, f"model {self.name!r}")
        assign_weights(params, arrays)

    def count_params(self) -> int:
        """Number of scalars in all weights (Keras's ``count_params``)."""
        self._require_built("count_params()")
        return int(sum(layer.count_params() for layer in self._layers))

    def reset_states(self) -> None:
        """Zero the state of every stateful layer."""
        for layer in self._layers:
            if isinstance(layer, (GRU, Bidirectional)):
                for target in layer._sublayers() or [layer]:
                    if target.stateful:
                        target.reset_states()
            else:
                layer.reset_states()  # a no-op unless a plugin layer keeps state

    reset_state = reset_states

    # ------------------------------------------------------------------------- summaries
    def summary(self, line_length: int | None = None, print_fn: Any = None) -> None:
        """Print a Keras-like table of the layers, output shapes and parameter counts.

        Columns widen to fit long names; ``line_length`` sets a minimum width (default 65);
        ``print_fn`` receives each line (default: ``print``).
        """
        self._require_built("summary()")
        print_fn = print_fn or print
        rows = []
        shape: Any = self._build_input_shape
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
            rows.append(
                [
                    f" {layer.name} ({type(layer).__name__})",
                    str(shape).replace("'", ""),
                    f"{layer.count_params():,}",
                ]
            )
        header = [" Layer (type)", "Output Shape", "Param #"]
        widths = [max(len(r[i]) for r in [header, *rows]) + 2 for i in range(3)]
        width = max(line_length or 65, sum(widths))
        widths[0] = max(widths[0], int(width * 0.45))
        widths[1] = max(widths[1], int(width * 0.85) - widths[0])
        widths[2] = width - widths[0] - widths[1]

        def row(fields: list) -> str:
            return "".join(str(f).ljust(w) for f, w in zip(fields, widths))

        lines = [f'Model: "{self.name}"', "_" * width, row(header), "=" * width]
        for i, fields in enumerate(rows):
            lines.append(row(fields))
            if i < len(rows) - 1:
                lines.append("")
        total = self.count_params()
        trainable = sum(int(np.prod(p.shape)) for p in self.trainable_weights)
        total_bytes = sum(int(np.prod(p.shape)) * p.value.dtype.itemsize for p in self.weights)
        train_bytes = sum(int(np.prod(p.shape)) * p.value.dtype.itemsize for p in self.trainable_weights)
        lines += [
            "=" * width,
            f"Total params: {total:,} ({_readable_bytes(total_bytes)})",
            f"Trainable params: {trainable:,} ({_readable_bytes(train_bytes)})",
            f"Non-trainable params: {total - trainable:,} ({_readable_bytes(total_bytes - train_bytes)})",
            "_" * width,
        ]
        for line in lines:
            print_fn(line.rstrip() if line.strip() else line)

    # ------------------------------------------------------------------------ running
    def _check_input_shape(self, shape: tuple) -> None:
        expected = self._build_input_shape
        first = self._layers[0]
        bad = len(shape) != len(expected)
        if not bad and not isinstance(first, Embedding) and expected[-1] is not None:
            bad = shape[-1] != expected[-1]
        if bad:
            raise ValueError(
                f"model {self.name!r} expects input of shape {expected} (batch first), got {tuple(shape)}"
            )

    def _ensure_built_for(self, shape: tuple) -> None:
        if not self.built:
            if not self._layers:
                raise ValueError("the model has no layers; add layers before using it")
            with self._lock:
                if not self.built:
                    if len(shape) < 2:
                        raise ValueError(
                            f"input must have a batch axis and at least one more, got shape {shape}"
                        )
                    self.build((None, *shape[1:]))
        self._check_input_shape(tuple(shape))

    def _check_lengths(self, lengths: Any, shape: tuple) -> Any:
        if lengths is None:
            return None
        if len(shape) < 2:
            raise ValueError("lengths need an input with a time axis (batch, time, ...)")
        return check_lengths(lengths, shape[0], shape[1])

    def _forward(
        self, x: Any, training: bool, lengths: Any, pinned: Pinned | None = None
    ) -> tuple[Any, list, Any]:
        """Run every layer on ``pinned``'s weights (by default the current ones); returns
        (output, caches, lengths of the output's time axis)."""
        if pinned is None:
            pinned = self._pinned_now()
        caches = []
        for layer, forward in zip(self._layers, pinned.forwards):
            lengths = layer.compute_lengths(x, lengths)
            y, cache = forward(x, training, lengths)
            caches.append(cache)
            if lengths is not None and not (getattr(y, "ndim", 0) == 3 and y.shape[1] == x.shape[1]):
                lengths = None
            x = y
        if lengths is not None and not (isinstance(self._layers[-1], (GRU, Bidirectional))):
            x = self._zero_padding(x, lengths)
        return x, caches, lengths

    def _step_mask(self, lengths: np.ndarray, y: Any) -> Any:
        """(B, T) mask of valid steps of a sequence output."""
        return self._current_ops().xp.asarray(valid_steps(lengths, y.shape[1]), dtype=y.dtype)

    def _zero_padding(self, a: Any, lengths: np.ndarray) -> Any:
        """``a`` (B, T, ...) with exact zeros at the padded steps t >= length, whatever they held
        (a select, not a product with the mask: 0 * inf would be NaN)."""
        valid = valid_steps(lengths, a.shape[1]).reshape(a.shape[:2] + (1,) * (a.ndim - 2))
        xp = self._current_ops().xp
        return xp.where(xp.asarray(valid), a, a.dtype.type(0))

    def _prepare_input(self, x: Any) -> Any:
        return self._layers[0]._as_layer_input(x)

    def __call__(self, x: Any, lengths: Any = None, training: bool = False) -> Any:
        """The low-overhead inference call: returns the output as a backend array.

        ``training=True`` applies dropout. With stateful GRU layers each call continues from
        the state the previous call left.
        """
        fast = self._fast
        if fast is not None and lengths is None and training is False:
            ops, dtype, ndim, features, fns, array_type, changes, count = fast
            if (
                type(x) is array_type
                and x.dtype == dtype
                and x.ndim == ndim
                and (x.shape[-1] == features or features is None)
                and changes.count == count  # no weight changed since fns were bound
                and (self._device is not None or get_ops() is ops)
            ):
                for f in fns:
                    x = f(x)
                return x
        return self._call_checked(x, lengths, bool(training))

    def _call_checked(self, x: Any, lengths: Any, training: bool) -> Any:
        ops = self._current_ops()
        x = as_numeric_array(x, "x", ops.xp)
        self._ensure_built_for(tuple(x.shape))
        self._ensure_bound()
        lengths = self._check_lengths(lengths, tuple(x.shape))
        return self._run_pinned(self._call_pinned, self._prepare_input(x), training, lengths)

    def _call_pinned(self, pinned: Pinned, x: Any, training: bool, lengths: Any) -> Any:
        y, _, _ = self._forward(x, training, lengths, pinned)
        fast = self._fast
        if fast is None or fast[-1] != pinned.count:
            self._fast = self._lean_call(pinned)
        return y

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = 0, lengths: Any = None) -> Any:
        """Outputs for ``x`` as a NumPy array (a list of arrays for a multi-output last layer).

        ``batch_size=None`` runs the whole input at once; give a size to bound memory.
        """
        verbose = _progress.resolve_verbose(verbose)
        x = as_numeric_array(x, "x")
        if x.ndim < 1:
            raise ValueError("x must have a batch axis")
        self._ensure_built_for(tuple(x.shape))
        self._ensure_bound()
        lengths = self._check_lengths(lengths, tuple(x.shape))
        n = x.shape[0]
        size = n if batch_size is None else _check_int(batch_size, "batch_size", 1)
        self._check_stateful_batches(n, size, "predict")
        steps = max(1, math.ceil(n / size)) if n else 1
        bar = _progress.Progbar(steps) if verbose == 1 else None
        outputs = self._run_pinned(self._predict_pinned, x, lengths, size, steps, bar)
        if bar is not None:
            bar.finish()
        if len(outputs) == 1:
            return outputs[0]
        if isinstance(outputs[0], list):
            return [np.concatenate(parts) for parts in zip(*outputs)]
        return np.concatenate(outputs)

    def _predict_pinned(self, pinned: Pinned, x: Any, lengths: Any, size: int, steps: int, bar: Any) -> list:
        """predict's outputs batch by batch, all on ``pinned``'s weights."""
        ops = pinned.ops
        outputs = []
        for step in range(steps):
            sl = slice(step * size, (step + 1) * size)
            y, _, _ = self._forward(self._prepare_input(x[sl]), False, _take(lengths, sl), pinned)
            outputs.append([ops.to_numpy(a) for a in y] if isinstance(y, list) else ops.to_numpy(y))
            if bar is not None:
                bar.update(step + 1)
        return outputs

    # ------------------------------------------------------------------------- training
    def compile(self, optimizer: Any = "adam", loss: Any = "mse", metrics: Any = None, **kwargs: Any) -> None:
        """Choose the optimizer, loss and metrics (names or objects) for ``fit``/``evaluate``."""
        unknown = sorted(k for k in kwargs if k not in _COMPILE_IGNORED)
        if unknown:
            raise TypeError(f"compile() got unsupported argument(s): {unknown}")
        opt = _optimizers.get(optimizer)
        loss_obj = _losses.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, _metrics.Metric)):
            metrics = [metrics]
        else:
            metrics = list(metrics)
        for m in metrics:
            _metrics.check(m)
        self.optimizer, self.loss, self._metrics = opt, loss_obj, metrics
        self.compiled = True

    @property
    def metrics_names(self) -> list[str]:
        return ["loss", *[_metrics.name_of(m) for m in self._metrics]]

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise ValueError(f"you must call compile() before {what}()")

    def _check_data(self, x: Any, y: Any, lengths: Any, what: str) -> tuple:
        """Validate a dataset (builds the model if needed); host arrays out."""
        x = as_numeric_array(x, "x")
        if x.ndim < 1:
            raise ValueError("x must have a batch axis")
        if y is None:
            raise ValueError(f"{what}() needs targets y")
        y = as_numeric_array(y, "y")
        if y.ndim < 1 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"x and y must have the same number of samples: x has {x.shape[0]}, "
                f"y has {y.shape[0] if y.ndim else 'none (a scalar)'}"
            )
        self._ensure_built_for(tuple(x.shape))
        lengths = self._check_lengths(lengths, tuple(x.shape))
        first = self._layers[0]
        if isinstance(first, Embedding):
            first._indices(x)
            first.compute_lengths(x, lengths)
        out_shape = self.compute_output_shape((None, *x.shape[1:]))
        if isinstance(out_shape, list):
            raise ValueError(f"{what}() needs a model with a single output; the last layer returns several")
        _losses.check_target_shape(y.shape[1:], out_shape[1:], self.loss.sparse)
        if self.loss.sparse and y.size:
            if y.dtype.kind == "f" and not np.all(y == np.round(y)):
                raise ValueError("sparse targets y must be integer class ids")
            lo, hi = y.min(), y.max()
            if lo < 0 or hi >= out_shape[-1]:
                raise ValueError(
                    f"sparse targets y must be class ids in 0..{out_shape[-1] - 1}, got values in {lo}..{hi}"
                )
        return x, y, lengths, out_shape

    def _stateful_layers(self) -> list:
        return [
            sub
            for layer in self._layers
            for sub in (layer._sublayers() or [layer])
            if getattr(sub, "stateful", False) is True
        ]

    def _check_stateful_batches(self, n: int, batch_size: int, what: str) -> None:
        """Stateful layers keep one state per batch row, so every batch must have the same size."""
        stateful = self._stateful_layers()
        if not stateful or n == 0:
            return
        if n % batch_size and n > batch_size:
            raise ValueError(
                f"{what}(): the model has stateful layers, so every batch must have the same size, "
                f"but {n} samples do not divide into batches of {batch_size}"
            )
        rows = min(n, batch_size)
        for layer in stateful:
            state = layer._state
            if state is not None and state.shape[0] != rows:
                raise ValueError(
                    f"{what}(): stateful layer {layer.name!r} holds states for {state.shape[0]} sequences "
                    f"but the batches have {rows}; call reset_states() first"
                )

    def _resolve_metrics(self, y_shape: tuple, out_shape: tuple) -> list:
        """The compiled metrics as objects; "accuracy" takes its kind from the targets' and the
        output's shapes (Keras 3's rule, see :mod:`cgru.metrics`), not from the loss."""
        return [_metrics.get(m, y_shape, out_shape) for m in self._metrics]

    def _loss_and_grads(
        self, x: Any, y: Any, lengths: Any, metric_objs: Any = (), pinned: Pinned | None = None
    ) -> tuple:
        """One forward and backward pass on a validated batch, on ``pinned``'s weights (by
        default the current ones): (loss, metric (sum, count) pairs).

        Leaves each weight's gradient in its ``grad``; changes no weight.
        """
        ops = self._current_ops()
        if pinned is None:
            pinned = self._pinned_now()
        xb = self._prepare_input(x)
        if lengths is not None and xb.dtype.kind == "f":
            # Zeros in the padded steps: layers that do not take lengths (Dense, Dropout before
            # the first GRU) would carry NaN or inf there into their weight gradients (0 * inf).
            xb = self._zero_padding(xb, lengths)
        y_pred, caches, out_lengths = self._forward(xb, True, lengths, pinned)
        y_true = _losses.align_targets(
            ops.asarray(y) if not self.loss.sparse else ops.xp.asarray(y), y_pred, self.loss.sparse
        )
        mask = self._step_mask(out_lengths, y_pred) if out_lengths is not None and y_pred.ndim == 3 else None
        loss, dy = self.loss.value_and_grad(y_true, y_pred, mask)
        for p in self.weights:
            p.grad = None
        if out_lengths is not None and y_pred.ndim == 3:
            dy = self._zero_padding(dy, out_lengths)
        for index in reversed(range(len(caches))):
            layer = self._layers[index]
            layer.input_grad = index > 0  # the first layer's input is data: no gradient needed
            dy = layer.backward(dy, caches[index])
            if dy is None:
                break
        stats = [m.sum_count(_metric_targets(ops, y), y_pred, mask) for m in metric_objs]
        return loss, stats

    def _train_step(self, x: Any, y: Any, lengths: Any, metric_objs: Any) -> tuple:
        """One optimizer step on a validated batch: (loss, metric (sum, count) pairs).

        The step's new weights and optimizer state are published at once (or not at all, when
        interrupted before). When another thread replaced weights of the model during the step,
        the step is dropped (the replacement stands, and the optimizer's state is unchanged).
        """
        pinned = self._pinned_now()
        loss, stats = self._loss_and_grads(x, y, lengths, metric_objs, pinned)
        self.optimizer._step(
            [(p.grad, p) for p in self.trainable_weights], expected=zip(pinned.params, pinned.values)
        )
        return loss, stats

    def train_on_batch(self, x: Any, y: Any, lengths: Any = None) -> Any:
        """One optimizer step on one batch; returns the loss (and metrics, as ``evaluate``)."""
        self._require_compiled("train_on_batch")
        x, y, lengths, out_shape = self._check_data(x, y, lengths, "train_on_batch")
        metric_objs = self._resolve_metrics(y.shape, out_shape)
        loss, stats = self._train_step(x, y, lengths, metric_objs)
        if not metric_objs:
            return loss
        return [loss, *[s / c if c else 0.0 for s, c in stats]]

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: Any = "auto",
        callbacks: Any = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        lengths: Any = None,
        initial_epoch: int = 0,
        seed: int | None = None,
    ) -> _callbacks.History:
        """Train for ``epochs`` passes over ``(x, y)`` in batches of ``batch_size`` (default 32).

        ``validation_split``: hold out that last fraction of the samples (taken before
        shuffling, as Keras); ``validation_data``: ``(x_val, y_val)`` or ``(x_val, y_val,
        lengths_val)``. ``shuffle``: reshuffle the training samples every epoch with a generator
        seeded by ``seed`` (default: drawn from :func:`cgru.set_random_seed`'s generator).
        ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch, "auto". Returns the History.

        Everything is validated before the first update: a call that raises leaves the weights
        as they were. Each step's new weights and optimizer state are published at once, so an
        interrupted fit (KeyboardInterrupt, re-raised after the callbacks' ``on_train_end``)
        leaves the model after its last whole step.
        """
        self._require_compiled("fit")
        verbose = _progress.resolve_verbose(verbose)
        batch_size = 32 if batch_size is None else _check_int(batch_size, "batch_size", 1)
        epochs = _check_int(epochs, "epochs", 0)
        initial_epoch = _check_int(initial_epoch, "initial_epoch", 0)
        try:
            validation_split = float(validation_split)
        except (TypeError, ValueError):
            raise TypeError(f"validation_split must be a float, got {validation_split!r}") from None
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        seed = _config.check_seed(seed)
        cb_list = _callbacks.check_callbacks(callbacks)
        x, y, lengths, out_shape = self._check_data(x, y, lengths, "fit")
        n = x.shape[0]
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, lengths_val)")
            vx, vy, vl = (*validation_data, None)[:3]
            val = self._check_data(vx, vy, vl, "fit (validation_data)")[:3]
        elif validation_split > 0:
            split_at = int(math.floor(n * (1.0 - validation_split)))
            if split_at == 0 or split_at == n:
                raise ValueError(
                    f"validation_split={validation_split} of {n} samples leaves "
                    f"{split_at} for training and {n - split_at} for validation; both must be > 0"
                )
            val = (x[split_at:], y[split_at:], _take(lengths, slice(split_at, None)))
            x, y, lengths = x[:split_at], y[:split_at], _take(lengths, slice(None, split_at))
            n = split_at
        if n == 0:
            raise ValueError("fit() needs at least one training sample")
        self._check_stateful_batches(n, batch_size, "fit")
        if val is not None:
            self._check_stateful_batches(val[0].shape[0], batch_size, "fit (validation)")
        metric_objs = self._resolve_metrics(y.shape, out_shape)
        names = [m.name for m in metric_objs]
        rng = np.random.default_rng(seed if seed is not None else _config.next_seed())
        steps = math.ceil(n / batch_size)
        history = _callbacks.History()
        cbs = _callbacks.CallbackList(
            [*cb_list, history], model=self, params={"epochs": epochs, "steps": steps, "verbose": verbose}
        )
        self.stop_training = False
        cbs.on_train_begin({})
        logs: dict = {}
        try:
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch, {})
                if verbose == 1:
                    _progress.write_line(f"Epoch {epoch + 1}/{epochs}")
                    bar = _progress.Progbar(steps)
                start = _progress.time.perf_counter()
                order = rng.permutation(n) if shuffle else None
                loss_sum, seen = 0.0, 0
                sums = [[0.0, 0.0] for _ in metric_objs]
                done = 0
                for step in range(steps):
                    sl = slice(step * batch_size, (step + 1) * batch_size)
                    idx = order[sl] if order is not None else sl
                    xb, yb, lb = x[idx], y[idx], _take(lengths, idx)
                    cbs.on_train_batch_begin(step, {})
                    batch_loss, stats = self._train_step(xb, yb, lb, metric_objs)
                    size = xb.shape[0]
                    loss_sum += batch_loss * size
                    seen += size
                    for acc, (s, c) in zip(sums, stats):
                        acc[0] += s
                        acc[1] += c
                    logs = {"loss": loss_sum / seen}
                    logs.update({name: (s / c if c else 0.0) for name, (s, c) in zip(names, sums)})
                    done = step + 1
                    cbs.on_train_batch_end(step, {**logs, "batch_loss": batch_loss})
                    if verbose == 1:
                        bar.update(done, logs)
                    if self.stop_training:
                        break
                epoch_logs = dict(logs)
                if val is not None:
                    val_logs = self._evaluate_arrays(*val, batch_size, metric_objs)
                    epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
                elapsed = _progress.time.perf_counter() - start
                if verbose == 1:
                    bar.finish(epoch_logs, steps=done)
                elif verbose == 2:
                    _progress.write_line(_progress.epoch_line(epoch + 1, epochs, done, elapsed, epoch_logs))
                cbs.on_epoch_end(epoch, epoch_logs)
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            # the weights are at a step boundary (steps are published whole): end as usual
            cbs.on_train_end(logs)
            self.history = history
            raise
        cbs.on_train_end(logs)
        self.history = history
        return history

    def _evaluate_arrays(self, *args: Any, **kwargs: Any) -> dict:
        """Loss and metrics over batches, all on one set of weights (see _evaluate_pinned)."""
        self._ensure_bound()
        return self._run_pinned(lambda pinned: self._evaluate_pinned(pinned, *args, **kwargs))

    def _evaluate_pinned(
        self,
        pinned: Pinned,
        x: Any,
        y: Any,
        lengths: Any,
        batch_size: int,
        metric_objs: list,
        bar: Any = None,
    ) -> dict:
        ops = self._ensure_bound()
        n = x.shape[0]
        loss_sum, seen = 0.0, 0
        sums = [[0.0, 0.0] for _ in metric_objs]
        steps = math.ceil(n / batch_size)
        for step in range(steps):
            sl = slice(step * batch_size, (step + 1) * batch_size)
            y_pred, _, out_lengths = self._forward(
                self._prepare_input(x[sl]), False, _take(lengths, sl), pinned
            )
            yb = _metric_targets(ops, y[sl])
            y_true = _losses.align_targets(yb, y_pred, self.loss.sparse)
            mask = (
                self._step_mask(out_lengths, y_pred) if out_lengths is not None and y_pred.ndim == 3 else None
            )
            value = self.loss.value_and_grad(y_true, y_pred, mask)[0]
            loss_sum += value * y_pred.shape[0]
            seen += y_pred.shape[0]
            for acc, m in zip(sums, metric_objs):
                s, c = m.sum_count(yb, y_pred, mask)
                acc[0] += s
                acc[1] += c
            if bar is not None:
                bar.update(step + 1, {"loss": loss_sum / seen})
        logs = {"loss": loss_sum / seen if seen else 0.0}
        logs.update({m.name: (s / c if c else 0.0) for m, (s, c) in zip(metric_objs, sums)})
        return logs

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: Any = 0,
        lengths: Any = None,
        return_dict: bool = False,
    ) -> Any:
        """Loss (and metrics) on ``(x, y)``: a float, ``[loss, *metrics]`` when there are metrics,
        or a dict with ``return_dict=True``."""
        self._require_compiled("evaluate")
        verbose = _progress.resolve_verbose(verbose)
        batch_size = 32 if batch_size is None else _check_int(batch_size, "batch_size", 1)
        x, y, lengths, out_shape = self._check_data(x, y, lengths, "evaluate")
        if x.shape[0] == 0:
            raise ValueError("evaluate() needs at least one sample")
        self._check_stateful_batches(x.shape[0], batch_size, "evaluate")
        metric_objs = self._resolve_metrics(y.shape, out_shape)
        bar = _progress.Progbar(math.ceil(x.shape[0] / batch_size)) if verbose == 1 else None
        logs = self._evaluate_arrays(x, y, lengths, batch_size, metric_objs, bar)
        if bar is not None:
            bar.finish(logs)
        elif verbose == 2:
            _progress.write_line(_progress.format_logs(logs).lstrip(" -"))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # --------------------------------------------------------------------------- config
    def get_config(self) -> dict:
        """JSON-serialisable description (layers and input shape) used by ``save``."""
        return {
            "name": self.name,
            "layers": [serialize_layer(layer) for layer in self._layers],
            "build_input_shape": list(self._build_input_shape) if self._build_input_shape else None,
        }

    @classmethod
    def from_config(cls, config: dict, device: str | None = None) -> Sequential:
        """A new (built, freshly initialised) model from :meth:`get_config`'s output."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("a Sequential config must be a dict with a 'layers' list")
        layers = [deserialize_layer(spec) for spec in config["layers"]]
        model = cls(name=config.get("name"), device=device)
        for layer in layers:
            model.add(layer)
        shape = config.get("build_input_shape")
        if shape is not None and not model.built:
            model.build(tuple(shape))
        return model

    def _compile_config(self) -> dict | None:
        if not self.compiled:
            return None
        return {
            "optimizer": _optimizers.serialize(self.optimizer),
            "loss": _losses.serialize(self.loss),
            "metrics": [m for m in self._metrics if isinstance(m, str)],
        }

    def save(self, path: Any) -> None:
        """Write the model (config, weights, compile settings) to one ``.npz`` file at ``path``."""
        from .saving import save_model

        save_model(self, path)

    def save_weights(self, path: Any) -> None:
        """Write only the weights to ``path`` (an ``.npz`` file ``load_weights`` reads)."""
        from .saving import save_weights

        save_weights(self, path)

    def load_weights(self, path: Any) -> None:
        """Read weights written by ``save_weights`` (or ``save``) into this built model."""
        from .saving import load_weights

        load_weights(self, path)

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r} layers={len(self._layers)} built={self.built}>"


def _metric_targets(ops: Any, y: Any) -> Any:
    return ops.xp.asarray(y)


def _compatible(built: tuple, shape: tuple) -> bool:
    if len(built) != len(shape):
        return False
    return all(a is None or b is None or a == b for a, b in zip(built[1:], shape[1:]))


def _unbuild(layer: Layer) -> None:
    """Undo a failed build (drop the weights it created)."""
    layer.built = False
    layer.build_input_shape = None
    layer._params = []
    for sub in layer._sublayers():
        _unbuild(sub)


__all__ = ["Sequential"]
