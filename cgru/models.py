"""The Keras-style :class:`Sequential` model: structure, weights, calls, config.

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

Training (``compile``, ``fit``, ``evaluate``, ``train_on_batch``, ``test_on_batch``) runs in
:mod:`cgru.training`, ``summary`` in :mod:`cgru.summary`, the file format in :mod:`cgru.saving`;
the methods here hand over to them. What the model asks of its layers is the protocol described
in :mod:`cgru.layers.base`.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any

import numpy as np

from . import callbacks as _callbacks
from . import config as _config
from . import prediction as _prediction
from . import progress as _progress
from . import quantization as _quantization
from . import training as _training
from .backends import get_ops
from .layers.base import (
    Layer,
    assign_weights,
    deserialize_layer,
    serialize_layer,
    unique_name,
    validate_weights,
)
from .layers.input_layer import InputLayer
from .layers.stack import build_stack, check_appendable, check_stack
from .layers.weights import READERS, Changes, Pinned, run_pinned, watch
from .lean_call import LeanCall, bind, lean_input
from .padding import zero_padding
from .summary import print_summary
from .training import adapters as _adapters
from .validation import (
    as_batch_array,
    as_numeric_array,
    check_int,
    check_lengths_for,
    check_shape,
    is_dask_array,
)


def _take(a: Any, idx: Any) -> Any:
    return None if a is None else a[idx]


class Sequential:
    """A linear stack of layers (Keras's ``keras.Sequential``).

    Args:
        layers: layers to add, in order; the first may be an :func:`~cgru.Input`, which fixes
            the input shape (and builds the model) as in Keras, without being one of ``layers``.
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
        self._input: InputLayer | None = None  # the Input given as first element, if any
        self.built = False
        self._build_input_shape: tuple | None = None
        self._output_shape: Any = None
        self.optimizer = None
        self.loss = None
        self._metrics: list = []
        self._weighted_metrics: list = []
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._lock = threading.RLock()
        self._changes = Changes()  # counts the publications that change this model's weights
        self._pinned: Pinned | None = None  # the weights the last call ran on
        self._lean_input: Any = None  # what the lean __call__ accepts x as (False: no lean path)
        self._fast: LeanCall | None = None
        if layers is not None:
            if isinstance(layers, (Layer, InputLayer)):
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

    def add(self, layer: Layer | InputLayer) -> None:
        """Append a layer (built at once when the model's input shape is known), or set the
        model's :func:`~cgru.Input` (only before the first layer)."""
        if isinstance(layer, InputLayer):
            self._set_input(layer)
            return
        check_appendable(self._layers, layer)
        with self._lock:
            if self.built:
                self._output_shape = build_stack([layer], self._output_shape, self._current_ops())
                self._layers.append(layer)
                self._make_fast(layer.weights)
                return
            self._layers.append(layer)
            if len(self._layers) == 1:
                try:
                    shape = self._first_input_shape(layer)
                    if shape is not None:
                        self.build(shape)
                except Exception:
                    self._layers.pop()
                    raise

    def _set_input(self, spec: InputLayer) -> None:
        """Take ``spec`` as the model's input (Keras: an Input comes first, and only once)."""
        if self._input is not None:
            raise ValueError(
                f"model {self.name!r} already has an Input (batch shape {self._input.batch_shape}); "
                "a Sequential takes one Input"
            )
        if self._layers:
            raise ValueError(
                f"an Input must be the first element of a Sequential, but model {self.name!r} "
                f"already has layers ({[layer.name for layer in self._layers]})"
            )
        self._input = spec

    def _first_input_shape(self, first: Layer) -> tuple | None:
        """The batch input shape the model builds for once ``first`` is its first layer: the
        Input's, else the layer's own ``input_shape`` (None when neither says)."""
        own = first._batch_input_shape
        if self._input is None:
            return own
        shape = (None, *self._input.shape)
        if own is not None and tuple(own[1:]) != shape[1:]:
            raise ValueError(
                f"layer {first.name!r} declares input_shape {tuple(own[1:])}, but the model's Input "
                f"has shape {shape[1:]}: give the shape once"
            )
        return shape

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
                    self._make_fast([])
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
            self._bind_all(ops, self._device)
        return ops

    def to(self, device: str) -> Sequential:
        """Run on ``device`` (a backend name) from now on, moving the weights; returns self."""
        self._bind_all(self._resolve_device(device), device)
        return self

    def _bind_all(self, ops: Any, device: str | None) -> None:
        """Bind every layer to ``ops`` (the model then runs on ``device``: a name, or None to
        follow the current backend)."""
        _quantization.check_backend(self, ops)
        with self._lock:
            for layer in self._layers:
                layer._bind(ops)
            self._ops = ops
            self._device = device
            if self.built:
                self._make_fast()

    def build(self, input_shape: Any = None) -> None:
        """Create every layer's weights for inputs of ``input_shape`` (batch first, e.g.
        ``(None, 5, 10)``); by default the first layer's ``input_shape``."""
        if not self._layers:
            raise ValueError("cannot build a model with no layers; add layers first")
        if input_shape is None:
            input_shape = self._first_input_shape(self._layers[0])
            if input_shape is None:
                raise ValueError(
                    "build() needs an input shape: pass it, e.g. build((None, time, features)), "
                    "start the model with an Input(shape=...), or give the first layer input_shape="
                )
        input_shape = check_shape(input_shape, "input_shape")
        if len(input_shape) < 2:
            raise ValueError(
                f"input_shape must include the batch axis, e.g. (None, time, features); got {input_shape}"
            )
        input_shape = (None, *input_shape[1:])
        with self._lock:
            ops = self._current_ops()
            self._output_shape = build_stack(self._layers, input_shape, ops)
            self._ops = ops
            self._build_input_shape = input_shape
            self.built = True
            self._make_fast()

    def _make_fast(self, new_params: list | None = None) -> None:
        """Set up the lean ``__call__`` path again (the layers or their backend changed): the
        first checked call binds it, so nothing reads the weights here (a model being loaded has
        no weight values yet). ``new_params``: the only parameters not watched yet (default:
        watch them all)."""
        self._pinned = self._lean_input = self._fast = None
        watch(self.weights if new_params is None else new_params, self._changes)

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

    def _lean_call(self, pinned: Pinned) -> LeanCall | None:
        """The lean ``__call__`` path on ``pinned``'s weights (None: every call is checked)."""
        accepts = self._lean_input
        if accepts is None:
            accepts = self._lean_input = lean_input(self._layers, self._build_input_shape) or False
        if accepts is False:
            return None
        return bind(pinned, accepts, self._guarded_infer, self._device is None)

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
        """The batch input shape the model is built for (the Input's batch size first, if it gave one)."""
        shape = self._build_input_shape
        if shape is not None and self._input is not None and self._input.batch_size is not None:
            shape = (self._input.batch_size, *shape[1:])
        return shape

    @property
    def input(self) -> InputLayer | None:
        """The :func:`~cgru.Input` the model was given, or None."""
        return self._input

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
            if getattr(layer, "stateful", None) is not False:
                layer.reset_states()  # a no-op unless the layer (or a sublayer) keeps state

    reset_state = reset_states

    def quantize(self, mode: str) -> None:
        """Make this model an inference-only reduced-precision model (Keras 3's name), in place.

        ``mode``: "bfloat16" (weights rounded to bfloat16) or "int8" (per-output-column
        symmetric int8 weights, activations quantized per row as they come); products
        accumulate in float32, and the state, biases and gate math stay float32. GRU,
        Bidirectional and Dense layers change; the others keep their float32 weights. The
        model then predicts, streams, evaluates, saves and loads as before, on the "cpu" and
        "numpy" backends; ``fit`` and ``train_on_batch`` raise, and ``set_weights`` takes the
        quantized arrays ``get_weights`` returns (see :mod:`cgru.quantization`).
        """
        _quantization.quantize_model(self, mode)


    # ------------------------------------------------------------------------ running
    def _check_input_shape(self, shape: tuple) -> None:
        expected = self._build_input_shape
        bad = len(shape) != len(expected)
        if not bad and not self._layers[0].takes_ids and expected[-1] is not None:
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

    def _accept_input(self, x: Any, lengths: Any) -> Any:
        """The entry check of every call: build the model for ``x``'s shape if needed, check
        that shape and ``lengths`` (returned checked: int64 or None). Below it, nothing checks
        the lengths again."""
        shape = tuple(x.shape)
        self._ensure_built_for(shape)
        return check_lengths_for(lengths, shape)

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
            if lengths is not None:
                lengths = layer.output_lengths(lengths, x, y)
            x = y
        if lengths is not None and not self._layers[-1].zeroes_padded_steps:
            x = zero_padding(self._current_ops().xp, x, lengths)
        return x, caches, lengths

    def _backward(self, dy: Any, caches: list) -> None:
        """Backpropagate the output gradient ``dy`` through the caches of a training
        :meth:`_forward`: every weight's ``grad`` is set (None where no gradient reaches it).
        The first layer's input is data, so it is not asked for its input's gradient."""
        for p in self.weights:
            p.grad = None
        for index in reversed(range(len(caches))):
            dy = self._layers[index]._backward(dy, caches[index], index > 0)
            if dy is None:
                break

    def _prepare_input(self, x: Any) -> Any:
        return self._layers[0]._as_layer_input(x)

    def __call__(self, x: Any, lengths: Any = None, training: bool = False) -> Any:
        """The low-overhead inference call: returns the output as a backend array.

        ``training=True`` applies dropout. With stateful GRU layers each call continues from
        the state the previous call left.
        """
        fast = self._fast
        if fast is not None and lengths is None and training is False:
            step = fast[0]  # the compiled streaming step, or None
            if step is not None:
                y = step(x)
                if y is not None:  # None: it declined x (or the weights, state, backend changed)
                    return y
        return self._call_lean(x, lengths, training)

    def _call_lean(self, x: Any, lengths: Any, training: Any) -> Any:
        """``model(x)`` past the compiled streaming step: the lean path of Python functions when
        ``x`` passes its checks, else the checked path."""
        fast = self._fast
        if fast is not None and lengths is None and training is False:
            _, ops, dtype, ndim, features, fns, array_type, changes, count = fast
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
        x = as_numeric_array(x, "x", self._current_ops().xp)
        lengths = self._accept_input(x, lengths)
        self._ensure_bound()
        return self._run_pinned(self._call_pinned, self._prepare_input(x), training, lengths)

    def _call_pinned(self, pinned: Pinned, x: Any, training: bool, lengths: Any) -> Any:
        y, _, _ = self._forward(x, training, lengths, pinned)
        fast = self._fast
        if fast is None or fast.count != pinned.count:
            self._fast = self._lean_call(pinned)
        return y

    def predict(
        self, x: Any, batch_size: int | None = None, verbose: Any = 0, steps: int | None = None, *,
        lengths: Any = None,
    ) -> Any:
        """Outputs for ``x`` as a NumPy array (a list of arrays for a multi-output last layer).

        ``x``: an array, ``{"x": array, "lengths": ints}``, or batches of inputs (a generator,
        iterator, :class:`cgru.utils.PyDataset` or iterable yielding ``x``, ``(x,)`` or ``(x,
        y, ...)``, whose targets are ignored); ``steps`` draws at most that many batches.
        ``batch_size=None`` runs arrays in chunks sized to keep the working memory to a few tens
        of MB (one call for a stateful model, whose rows are streams); a ``batch_size`` runs
        batches of that size (for a stateful model, each continuing the previous one's states).

        A ``dask.array.Array`` ``x`` (chunked along the batch axis; ``lengths`` a dask array
        chunked the same way, or a NumPy array) gives a lazy dask array of the outputs, each
        chunk predicted where Dask runs it: see :mod:`cgru.distributed.dask`.
        """
        if is_dask_array(x) or is_dask_array(lengths):
            from .distributed.dask import predict as predict_dask

            return predict_dask(self, x, batch_size, lengths)
        verbose = _progress.resolve_verbose(verbose)
        steps = None if steps is None else check_int(steps, "steps", 1)
        _adapters.check_form(x, "predict")
        if _adapters.is_batch_source(x):
            if lengths is not None:
                raise ValueError(
                    "predict(): when x is a source of batches, lengths travel in each batch as "
                    "{'x': ..., 'lengths': ...}, not as lengths="
                )
            return self._predict_source(x, steps, verbose)
        x, lengths = _adapters.split_inputs(x, lengths, "predict")
        x = as_batch_array(x, "x")
        lengths = self._accept_input(x, lengths)
        self._ensure_bound()
        n = x.shape[0]
        if batch_size is not None:
            size = check_int(batch_size, "batch_size", 1)
        elif steps is not None:
            size = max(1, math.ceil(n / steps))
        else:
            stateful = any(layer.stateful_layers() for layer in self._layers)
            size = _prediction.chunk_rows(self._layers, x.shape, self.dtype, stateful)
        if steps is not None and steps * size < n:
            x, lengths, n = x[: steps * size], _take(lengths, slice(steps * size)), steps * size
        self._check_stateful_batches(n, size, "predict")
        bar = _progress.Progbar(max(1, math.ceil(n / size))) if verbose == 1 else None
        y = self._run_pinned(self._predict_pinned, x, lengths, size, bar)
        if bar is not None:
            bar.finish()
        return y

    def _predict_pinned(self, pinned: Pinned, x: Any, lengths: Any, size: int, bar: Any) -> Any:
        """predict's output in chunks of ``size`` rows, all on ``pinned``'s weights."""

        def run(rows: Any, rows_lengths: Any) -> Any:
            return self._forward(self._prepare_input(rows), False, rows_lengths, pinned)[0]

        return _prediction.run_chunks(run, pinned.ops, x, lengths, size, bar)

    def _predict_source(self, data: Any, steps: int | None, verbose: int) -> Any:
        """predict's outputs for a source of batches, joined along the batch axis."""
        source = _adapters.predict_source(self, data, steps)
        self._ensure_bound()
        bar = _progress.Progbar(source.steps) if verbose == 1 else None

        def run(pinned: Pinned) -> list:
            outputs = []
            with contextlib.closing(source.epoch(0)) as batches:
                for index, batch in enumerate(batches):
                    y, _, _ = self._forward(self._prepare_input(batch.x), False, batch.lengths, pinned)
                    outputs.append(_prediction.to_host_outputs(pinned.ops, y))
                    if bar is not None:
                        bar.update(index + 1)
            return outputs

        try:
            outputs = self._run_pinned(run)
        finally:
            source.close()
        if bar is not None:
            bar.finish(steps=len(outputs))
        return _prediction.concatenate_outputs(outputs)

    def _check_stateful_batches(self, n: int, batch_size: int, what: str) -> None:
        """Stateful layers keep one state per batch row, so every batch must have the same size."""
        stateful = [sub for layer in self._layers for sub in layer.stateful_layers()]
        if not stateful or n == 0:
            return
        if n % batch_size and n > batch_size:
            raise ValueError(
                f"{what}(): the model has stateful layers, so every batch must have the same size, "
                f"but {n} samples do not divide into batches of {batch_size}"
            )
        rows = min(n, batch_size)
        for layer in stateful:
            kept = layer.state_batch_size
            if kept is not None and kept != rows:
                raise ValueError(
                    f"{what}(): stateful layer {layer.name!r} holds states for {kept} sequences "
                    f"but the batches have {rows}; call reset_states() first"
                )

    # ------------------------------------------------------------------------- training
    def compile(
        self,
        optimizer: Any = "adam",
        loss: Any = "mse",
        metrics: Any = None,
        weighted_metrics: Any = None,
        **kwargs: Any,
    ) -> None:
        """Choose the optimizer, loss and metrics (names, objects or functions, see
        :mod:`cgru.metrics`) for ``fit``/``evaluate``. ``metrics`` ignore sample weights,
        ``weighted_metrics`` use them, as in Keras 3."""
        _training.compile_model(self, optimizer, loss, metrics, weighted_metrics, **kwargs)

    @property
    def metrics_names(self) -> list[str]:
        return _training.metrics_names(self)

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
        class_weight: dict | None = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: Any = 1,
        *,
        lengths: Any = None,
        seed: int | None = None,
        strategy: Any = None,
    ) -> _callbacks.History:
        """Train for ``epochs`` passes over the data (Keras's arguments, in Keras's order).

        ``x``: an array with ``y`` (targets), ``sample_weight`` (per sample, or per time step
        for a sequence output) and ``lengths``; ``{"x": array, "lengths": ints}``; or a source of
        batches ``(x, y)`` / ``(x, y, sample_weight)``: a generator or iterator (one pass; with
        ``steps_per_epoch``, epochs of that many batches continue it), a
        :class:`cgru.utils.PyDataset` or another iterable such as a torch ``DataLoader`` (a new
        pass every epoch). ``batch_size`` (arrays only, default 32). ``class_weight``:
        ``{class id: weight}``, turned into sample weights from the targets.
        ``validation_split``: hold out that last fraction of the samples (taken before
        shuffling, as Keras); ``validation_data``: ``(x_val, y_val)``, ``(x_val, y_val,
        sample_weight_val)`` or a source of batches (``validation_steps`` batches of it), with
        ``x_val`` as ``{"x": x_val, "lengths": lengths_val}`` for right-padded sequences;
        ``validation_freq``: validate after every n-th epoch (or the listed epochs, from 1).
        ``shuffle``: reshuffle the training samples (a PyDataset's batch order) every epoch with
        a generator seeded by ``seed`` (default: drawn from :func:`cgru.set_random_seed`'s
        generator). ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch, "auto". Returns
        the History.

        Everything is validated before the first update: a call that raises leaves the weights
        as they were (batches drawn from a source are checked as they come: a bad one raises
        naming its index, with the weights after the last whole step). Each step's new weights
        and optimizer state are published at once, so an interrupted fit (KeyboardInterrupt,
        re-raised after the callbacks' ``on_train_end``) leaves the model after its last whole
        step.

        ``strategy``: how several processes train together, e.g.
        :class:`cgru.distributed.MPIStrategy` (each passes its own shard of the data; see
        docs/distributed.md); None trains in this process alone.
        """
        return _training.fit(
            self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
            shuffle, lengths, initial_epoch, seed, strategy, sample_weight=sample_weight,
            class_weight=class_weight, steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps, validation_batch_size=validation_batch_size,
            validation_freq=validation_freq,
        )

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: Any = 0,
        sample_weight: Any = None,
        steps: int | None = None,
        callbacks: Any = None,
        *,
        return_dict: bool = False,
        lengths: Any = None,
        strategy: Any = None,
    ) -> Any:
        """Loss (and metrics) on the data: a float, ``[loss, *metrics]`` when there are metrics,
        or a dict with ``return_dict=True``. ``x`` takes the forms ``fit`` takes (``steps``:
        at most that many batches of a source). ``callbacks`` hear ``on_test_begin``, each
        batch (``on_test_batch_begin``/``_end`` with the running logs) and ``on_test_end``, as
        they do during ``fit``'s validation. ``strategy`` as for ``fit`` (then over the data of
        every process)."""
        return _training.evaluate(
            self, x, y, batch_size, verbose, lengths, return_dict, strategy, sample_weight=sample_weight,
            steps=steps, callbacks=callbacks,
        )

    def train_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        class_weight: dict | None = None,
        return_dict: bool = False,
        *,
        lengths: Any = None,
        strategy: Any = None,
    ) -> Any:
        """One optimizer step on one batch; returns the loss (and metrics, as ``evaluate``).

        ``x`` is an array or ``{"x": array, "lengths": ints}``. ``sample_weight``: ``(B,)``,
        or ``(B, T)`` for sequence outputs, weighing the loss and the ``weighted_metrics`` as
        Keras 3 does (see :mod:`cgru.sample_weights`); or ``class_weight`` (``{class id:
        weight}``, turned into sample weights from ``y``, as ``fit`` does). ``strategy`` as for
        ``fit`` (one step on the global batch: every process's batch).
        """
        return _training.train_on_batch(
            self, x, y, lengths, strategy, sample_weight=sample_weight, class_weight=class_weight,
            return_dict=return_dict,
        )

    def test_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        return_dict: bool = False,
        *,
        lengths: Any = None,
        strategy: Any = None,
    ) -> Any:
        """The loss (and metrics, as ``evaluate``) on one batch, without training
        (``x``, ``sample_weight`` and ``strategy`` as :meth:`train_on_batch`)."""
        return _training.test_on_batch(
            self, x, y, lengths, strategy, sample_weight=sample_weight, return_dict=return_dict
        )

    def _loss_and_grads(
        self, x: Any, y: Any, lengths: Any, metric_objs: Any = (), pinned: Any = None
    ) -> tuple:
        """One forward and backward pass on a checked batch (see :func:`cgru.training.loss_and_grads`)."""
        return _training.loss_and_grads(self, _training.Batch(x, y, lengths), metric_objs, pinned)

    def summary(self, line_length: int | None = None, print_fn: Any = None) -> None:
        """Print a Keras-like table of the layers, output shapes and parameter counts.

        Columns widen to fit long names; ``line_length`` sets a minimum width (default 65);
        ``print_fn`` receives each line (default: ``print``).
        """
        self._require_built("summary()")
        print_summary(self, line_length, print_fn)

    # --------------------------------------------------------------------------- config
    def get_config(self) -> dict:
        """JSON-serialisable description (layers and input shape) used by ``save``."""
        config = {
            "name": self.name,
            "layers": [serialize_layer(layer) for layer in self._layers],
            "build_input_shape": list(self._build_input_shape) if self._build_input_shape else None,
        }
        if self._input is not None:
            config["input"] = self._input.get_config()
        return config

    @classmethod
    def from_config(cls, config: dict, device: str | None = None) -> Sequential:
        """A new (built, freshly initialised) model from :meth:`get_config`'s output."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("a Sequential config must be a dict with a 'layers' list")
        layers = [deserialize_layer(spec) for spec in config["layers"]]
        check_stack(layers)
        model = cls(name=config.get("name"), device=device)
        if config.get("input") is not None:
            if not isinstance(config["input"], dict):
                raise ValueError(f"a Sequential config's 'input' must be a dict, got {config['input']!r}")
            model._set_input(InputLayer.from_config(config["input"]))
        model._layers = layers  # checked and built together: linear in the number of layers
        shape = model._first_input_shape(layers[0]) if layers else None
        if shape is None:
            shape = config.get("build_input_shape")
        if shape is not None:
            model.build(tuple(shape))
        return model

    def save(self, path: Any) -> None:
        """Write the model (config, weights, compile settings and the optimizer's state) to one
        ``.npz`` file at ``path`` (or into a writable binary file object)."""
        from .saving import write_model  # zipfile and hashlib load on first use

        if not self.built:
            raise ValueError("cannot save a model that is not built: build it or call it on data first")
        write_model(
            path,
            self.get_config(),
            _training.compile_config(self),
            self.get_weights(),
            _training.optimizer_state(self),
        )

    def save_weights(self, path: Any) -> None:
        """Write only the weights to ``path`` (an ``.npz`` file ``load_weights`` reads)."""
        from .saving import write_weights

        if not self.built:
            raise ValueError("cannot save the weights of a model that is not built")
        write_weights(path, self.get_weights())

    def load_weights(self, path: Any) -> None:
        """Read weights written by ``save_weights`` (or ``save``) into this built model."""
        from .saving import read_weights

        self._require_built("load_weights()")
        self.set_weights(read_weights(path, self.weights, f"model {self.name!r}"))

    def __reduce__(self) -> tuple:
        """Pickling (and ``copy.deepcopy``) goes through the save format: see :mod:`cgru.pickling`."""
        from .pickling import reduce_model

        return reduce_model(self)

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r} layers={len(self._layers)} built={self.built}>"


def _compiled_call() -> Any:
    """``Sequential.__call__``'s lines compiled, where the engine is built (a call costs about
    0.1 us less, which one-step streaming feels), else None."""
    try:
        from ._engine import model_call
    except ImportError:
        return None
    return model_call


_model_call = _compiled_call()
if _model_call is not None:
    Sequential.__call__ = _model_call  # type: ignore[method-assign]

__all__ = ["Sequential"]
