"""Converters: PyTorch ``nn.GRU`` and Keras models to cgru :class:`~cgru.Sequential`, and back to
a PyTorch state dict.

- :func:`from_torch`: a ``torch.nn.GRU`` module -> ``Sequential`` of GRU (or
  ``Bidirectional(GRU)``) layers, one per ``num_layers``, all with ``return_sequences=True``.
- :func:`from_torch_state_dict`: the same from the module's ``state_dict()`` as plain arrays;
  never imports torch.
- :func:`to_torch_state_dict`: the inverse, NumPy arrays in PyTorch's names and layout.
- :func:`from_keras`: a Keras model (Keras 3 or tf.keras) of GRU, Bidirectional, Dense,
  Embedding and Dropout layers -> ``Sequential`` with the same configuration and weights. Keras
  is never imported: the layers are read through their class names, ``get_config()`` and
  ``get_weights()``.

Layouts. PyTorch stores ``weight_ih_l{k}`` ``(3H, I)`` and ``weight_hh_l{k}`` ``(3H, H)`` with the
gate blocks ordered r, z, n, and two biases ``bias_ih``/``bias_hh`` ``(3H,)``; the backward
direction of a bidirectional layer has the suffix ``_reverse``. cgru (like Keras) stores
``kernel`` ``(I, 3H)`` and ``recurrent_kernel`` ``(H, 3H)`` with the blocks ordered z, r, h and
``bias`` ``(2, 3H)`` = [input bias; recurrent bias] with ``reset_after=True``, which is exactly
PyTorch's cell. A module with ``bias=False`` becomes ``GRU(use_bias=False)``.
"""

from __future__ import annotations

import re
import sys
import warnings
from typing import Any

import numpy as np

from . import config as _config
from .validation import check_positive_int

__all__ = ["from_keras", "from_torch", "from_torch_state_dict", "to_torch_state_dict"]

# Layer indices as PyTorch writes them: no leading zeros, and short enough to be an index at all.
_TORCH_KEY = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(0|[1-9][0-9]{0,8})(_reverse)?")
_TORCH_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_LISTED_KEYS = 5  # error messages name this many keys, then say how many more there are


def _some_keys(keys: list[str]) -> str:
    """``keys`` for an error message: the first few, then how many more (never a huge message)."""
    shown = repr(list(keys[:_LISTED_KEYS]))
    return shown if len(keys) <= _LISTED_KEYS else f"{shown} and {len(keys) - _LISTED_KEYS} more"


def _swap_rz(a: np.ndarray, hidden: int) -> np.ndarray:
    """Swap the first two gate blocks along axis 0: PyTorch (r, z, n) <-> Keras (z, r, h).

    The permutation is its own inverse, so it serves both directions.
    """
    return np.concatenate([a[hidden:2 * hidden], a[:hidden], a[2 * hidden:]])


# ------------------------------------------------------------------------ gate-row layout
def gru_to_gate_rows(weights: list[np.ndarray], reset_after: bool) -> tuple:
    """A cgru/Keras GRU's ``get_weights()`` -> ``(w_in, w_rec, b_in, b_rec)`` in gate-row layout.

    Gate-row layout is what PyTorch and ONNX store: ``w_in`` ``(3H, I)``, ``w_rec`` ``(3H, H)``,
    ``b_in`` and ``b_rec`` ``(3H,)``, gate blocks in Keras's z, r, h order (ONNX's order; PyTorch
    swaps the first two blocks, see :func:`_swap_rz`). Without a bias both biases are None. With
    ``reset_after=False`` the single bias goes to ``b_in`` and ``b_rec`` is zero: ONNX's
    ``linear_before_reset=0`` cell adds both biases outside the reset product, so their sum is
    the Keras bias.
    """
    kernel, recurrent = weights[0], weights[1]
    w_in, w_rec = np.ascontiguousarray(kernel.T), np.ascontiguousarray(recurrent.T)
    if len(weights) < 3:
        return w_in, w_rec, None, None
    bias = weights[2]
    if reset_after:
        return w_in, w_rec, np.array(bias[0]), np.array(bias[1])
    return w_in, w_rec, np.array(bias), np.zeros_like(bias)


def gru_from_gate_rows(w_in: np.ndarray, w_rec: np.ndarray, b_in: np.ndarray | None,
                       b_rec: np.ndarray | None, reset_after: bool) -> list[np.ndarray]:
    """The inverse of :func:`gru_to_gate_rows`: ``[kernel, recurrent_kernel(, bias)]``.

    With ``reset_after=False`` the Keras bias is ``b_in + b_rec`` (ONNX ``linear_before_reset=0``
    adds both outside the reset product). Both biases None means a layer without bias.
    """
    out = [np.ascontiguousarray(w_in.T), np.ascontiguousarray(w_rec.T)]
    if b_in is None and b_rec is None:
        return out
    b_in = np.zeros(w_in.shape[0], w_in.dtype) if b_in is None else b_in
    b_rec = np.zeros_like(b_in) if b_rec is None else b_rec
    out.append(np.stack([b_in, b_rec]) if reset_after else b_in + b_rec)
    return out


# ---------------------------------------------------------------------------------- PyTorch
def _plain_array(value: Any, key: str) -> np.ndarray:
    """``value`` as a NumPy array; torch tensors go through ``.detach().cpu().numpy()``."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, torch not imported
        value = value.detach()
        if hasattr(value, "cpu"):
            value = value.cpu()
        if str(getattr(value, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            value = value.float()  # NumPy has no bfloat16
        value = value.numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"state_dict[{key!r}] is not a numeric array: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"state_dict[{key!r}] must be a real numeric array, got dtype {arr.dtype}")
    return arr


def _resolve_dtype(dtype: Any, arrays: list[np.ndarray]) -> str:
    """The requested dtype, else the arrays' own when they all share float32 or float64, else floatx()."""
    if dtype is not None:
        return _config.standardize_dtype(dtype)
    kinds = {a.dtype for a in arrays}
    if len(kinds) == 1 and next(iter(kinds)).name in ("float32", "float64"):
        return next(iter(kinds)).name
    return _config.floatx()


def _check_flag(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    raise TypeError(f"{name} must be True, False or None, got {value!r}")


def _check_size(value: Any, name: str) -> int | None:
    return None if value is None else check_positive_int(value, name)


def from_torch_state_dict(state_dict: Any, *, input_size: int | None = None, hidden_size: int | None = None,
                          num_layers: int | None = None, bidirectional: bool | None = None,
                          bias: bool | None = None, dtype: Any = None, prefix: str | None = None):
    """A :class:`~cgru.Sequential` equal to the ``torch.nn.GRU`` whose ``state_dict()`` this is.

    Needs no torch: the values may be NumPy arrays, anything ``np.asarray`` accepts, or torch
    tensors (read through ``.detach().cpu().numpy()``). Keys are PyTorch's
    (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``); the
    structure arguments are inferred from them when not given, and when given they must agree
    with the keys and shapes. ``prefix`` (e.g. ``"encoder.gru."``) selects the entries of one
    submodule from a larger model's state dict and ignores the rest.

    ``dtype``: "float32" or "float64"; by default the arrays' own dtype when they all share one
    of those, else :func:`cgru.floatx`.

    The model has one GRU layer per PyTorch layer (``Bidirectional(GRU, merge_mode="concat")``
    when bidirectional), each with ``return_sequences=True``: ``model.predict(x)`` on a
    batch-major ``x`` ``(batch, time, input_size)`` returns the module's output sequence
    ``(batch, time, D * hidden_size)``, and ``predict(x, lengths=...)`` the padded output of a
    packed sequence. (For a module with ``batch_first=False``, transpose its input to batch-major.)

    Raises ValueError naming the key for unknown or missing keys, a wrong shape (with the
    expected one), or projection weights (``weight_hr``, an LSTM's ``proj_size``).
    """
    if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
        raise TypeError(f"state_dict must be a mapping of names to arrays (e.g. module.state_dict()), "
                        f"got {type(state_dict).__name__}")
    input_size = _check_size(input_size, "input_size")
    hidden_size = _check_size(hidden_size, "hidden_size")
    num_layers = _check_size(num_layers, "num_layers")
    bidirectional = _check_flag(bidirectional, "bidirectional")
    bias = _check_flag(bias, "bias")
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {prefix!r}")

    entries: dict[str, Any] = {}
    for key in state_dict.keys():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r}")
        if prefix:
            if not key.startswith(prefix):
                continue
            entries[key[len(prefix):]] = state_dict[key]
        else:
            entries[key] = state_dict[key]
    if not entries:
        where = f" with the prefix {prefix!r}" if prefix else ""
        raise ValueError(f"the state dict has no entries{where}; expected nn.GRU parameters such as "
                         "'weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0'")

    parsed: dict[str, tuple[str, int, bool]] = {}
    unknown = []
    for key in entries:
        m = _TORCH_KEY.fullmatch(key)
        if m is None:
            unknown.append(key)
            continue
        kind, layer, reverse = m.group(1), int(m.group(2)), m.group(3) is not None
        if kind == "weight_hr":
            raise ValueError(f"state_dict[{key!r}] is a projection weight (proj_size > 0, an nn.LSTM "
                             "feature): nn.GRU has no projections and cgru does not support them")
        parsed[key] = (kind, layer, reverse)
    if unknown:
        hint = (" (pass prefix='<submodule>.' to pick one module's entries out of a larger model)"
                if any("." in k for k in unknown) else "")
        raise ValueError(f"unknown keys in the state dict: {_some_keys(sorted(unknown))}; an nn.GRU state "
                         "dict has only weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k> and bias_hh_l<k> (with "
                         f"a _reverse suffix for the backward direction){hint}")

    # Every layer has at least weight_ih and weight_hh, so n keys describe at most n // 2 layers:
    # checked before anything that costs as much as the number of layers.
    # (One layer is always allowed, so that a lone key is reported as missing its partner.)
    most_layers = max(len(parsed) // 2, 1)
    if num_layers is not None and num_layers > most_layers:
        raise ValueError(f"num_layers={num_layers} needs at least {2 * num_layers} keys (weight_ih_l<k> and "
                         f"weight_hh_l<k> per layer), the state dict has {len(parsed)}")
    highest = max(parsed, key=lambda key: parsed[key][1])
    if parsed[highest][1] >= most_layers:
        raise ValueError(f"state_dict[{highest!r}] names layer {parsed[highest][1]}, but {len(parsed)} "
                         f"key(s) describe at most {most_layers} layer(s), numbered from 0 without gaps")

    if num_layers is None:
        num_layers = parsed[highest][1] + 1
    if bidirectional is None:
        bidirectional = any(rev for _, _, rev in parsed.values())
    if bias is None:
        bias = any(kind.startswith("bias") for kind, _, _ in parsed.values())
    suffixes = ["", "_reverse"] if bidirectional else [""]
    kinds = _TORCH_KINDS if bias else _TORCH_KINDS[:2]
    expected_keys = [f"{kind}_l{k}{sfx}" for k in range(num_layers) for sfx in suffixes for kind in kinds]
    missing = [k for k in expected_keys if k not in entries]
    extra = sorted(set(entries) - set(expected_keys))
    if missing or extra:
        described = f"num_layers={num_layers}, bidirectional={bidirectional}, bias={bias}"
        parts = []
        if missing:
            parts.append(f"missing keys {_some_keys(missing)}")
        if extra:
            parts.append(f"unexpected keys {_some_keys(extra)}")
        raise ValueError(f"the state dict does not match an nn.GRU with {described}: {'; '.join(parts)}")

    arrays = {key: _plain_array(entries[key], key) for key in expected_keys}
    if hidden_size is None:
        # weight_hh is (3H, H); where the axes disagree the rows decide, and the error names the other
        w = arrays["weight_hh_l0"]
        rows = int(w.shape[0]) if w.ndim else 0
        cols = int(w.shape[-1]) if w.ndim == 2 else 0
        hidden_size = rows // 3 if rows >= 3 and rows % 3 == 0 else max(cols, 1)
    if input_size is None:
        w = arrays["weight_ih_l0"]
        input_size = int(w.shape[1]) if w.ndim == 2 and w.shape[1] > 0 else 1
    directions = len(suffixes)
    h3 = 3 * hidden_size
    for key in expected_keys:
        kind, layer, _ = parsed[key]
        if kind == "weight_ih":
            cols = input_size if layer == 0 else directions * hidden_size
            shape = (h3, cols)
            what = ("(3*hidden_size, input_size)" if layer == 0
                    else "(3*hidden_size, num_directions*hidden_size)")
        elif kind == "weight_hh":
            shape, what = (h3, hidden_size), "(3*hidden_size, hidden_size)"
        else:
            shape, what = (h3,), "(3*hidden_size,)"
        got = tuple(arrays[key].shape)
        if got != shape:
            hint = ""
            if len(got) >= 1 and got[0] == 4 * hidden_size:
                hint = " (4*hidden_size rows: an LSTM's weights, not a GRU's)"
            raise ValueError(f"state_dict[{key!r}] must have shape {shape} = {what} for "
                             f"input_size={input_size}, hidden_size={hidden_size}, got {got}{hint}")
    dtype = _resolve_dtype(dtype, list(arrays.values()))

    weights = []
    for k in range(num_layers):
        for sfx in suffixes:
            rows = [_swap_rz(arrays[f"{kind}_l{k}{sfx}"], hidden_size) for kind in kinds]
            weights += gru_from_gate_rows(*rows, *[None] * (4 - len(rows)), reset_after=True)
    return _gru_stack(input_size, hidden_size, num_layers, bidirectional, bias, dtype, weights)


def _gru_stack(input_size: int, hidden_size: int, num_layers: int, bidirectional: bool, bias: bool,
               dtype: str, weights: list[np.ndarray]):
    """The Sequential of (Bidirectional) GRU layers equal to an nn.GRU, weights set."""
    from .layers import GRU, Bidirectional
    from .layers.base import deferred_weights, install_weights
    from .models import Sequential

    model = Sequential()
    with deferred_weights():  # no initializer runs: every weight is given
        for k in range(num_layers):
            gru = GRU(hidden_size, return_sequences=True, use_bias=bias, dtype=dtype, name=f"gru_l{k}")
            model.add(Bidirectional(gru, name=f"bidirectional_l{k}") if bidirectional else gru)
        model.build((None, None, input_size))
    install_weights(model.weights, weights, f"model {model.name!r}", model._current_ops())
    return model


def from_torch(module: Any, *, dtype: Any = None):
    """A :class:`~cgru.Sequential` that computes what the ``torch.nn.GRU`` ``module`` computes.

    Supports any ``num_layers``, ``bidirectional``, ``batch_first`` and ``bias``. The model takes
    batch-major input ``(batch, time, input_size)`` whatever the module's ``batch_first`` (for
    ``batch_first=False`` transpose the time-major input first) and ``predict(x)`` returns the
    module's output sequence; ``predict(x, lengths=...)`` equals running a packed sequence
    (``pack_padded_sequence``) and padding the output back with zeros. ``dropout`` between
    layers only acts while training in PyTorch, so it is not carried over.

    ``dtype``: "float32" or "float64"; by default the module's (half-precision modules convert
    to float32). Raises TypeError for anything but an ``nn.GRU`` (nn.LSTM, nn.RNN, a model
    containing a GRU: pass the GRU submodule itself, or use :func:`from_torch_state_dict` with
    ``prefix=``), ValueError for settings cgru cannot represent (``proj_size``).
    """
    try:
        import torch
    except ImportError:
        raise TypeError(f"from_torch converts a torch.nn.GRU module, got {type(module).__name__} (and "
                        "PyTorch is not installed); from_torch_state_dict converts plain arrays") from None
    if not isinstance(module, torch.nn.GRU):
        name = type(module).__name__
        if isinstance(module, torch.nn.RNNBase):
            why = f"{name} has another cell; only torch.nn.GRU is supported"
        elif isinstance(module, torch.nn.Module):
            why = (f"a {name} is not an nn.GRU: pass the GRU submodule itself (e.g. "
                   "from_torch(model.gru)), or from_torch_state_dict(model.state_dict(), prefix='gru.')")
        else:
            why = f"got {name}"
        raise TypeError(f"from_torch supports torch.nn.GRU modules only: {why}")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"this GRU has proj_size={module.proj_size}; cgru has no projected GRU")
    if getattr(module, "mode", "GRU") != "GRU":
        raise ValueError(f"expected a module in GRU mode, got mode={module.mode!r}")
    directions = 2 if module.bidirectional else 1
    suffixes = ["", "_reverse"][:directions]
    kinds = _TORCH_KINDS if module.bias else _TORCH_KINDS[:2]
    # getattr (not state_dict()) sees the effective weights, also under torch parametrizations.
    state = {f"{kind}_l{k}{sfx}": getattr(module, f"{kind}_l{k}{sfx}")
             for k in range(module.num_layers) for sfx in suffixes for kind in kinds}
    if dtype is None:
        first = next(iter(state.values()))
        dtype = "float64" if first.dtype == torch.float64 else "float32"
    return from_torch_state_dict(state, input_size=module.input_size, hidden_size=module.hidden_size,
                                 num_layers=module.num_layers, bidirectional=bool(module.bidirectional),
                                 bias=bool(module.bias), dtype=dtype)


def to_torch_state_dict(model: Any) -> dict[str, np.ndarray]:
    """The PyTorch ``nn.GRU`` state dict (NumPy arrays) of a model of GRU layers.

    ``model``: a built :class:`~cgru.Sequential` (or a list of layers) made only of ``GRU``
    layers, or only of ``Bidirectional(GRU, merge_mode="concat")`` layers, all with the same
    ``units`` and ``use_bias``, ``reset_after=True``, tanh/sigmoid activations and no
    ``go_backwards`` in the forward direction: exactly what ``nn.GRU`` can compute. Load it with::

        sd = to_torch_state_dict(model)
        gru = torch.nn.GRU(sd["weight_ih_l0"].shape[1], sd["weight_hh_l0"].shape[1],
                           num_layers=..., bidirectional=..., bias=..., batch_first=True)
        gru.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})

    Raises ValueError naming the layer and the setting that has no PyTorch counterpart.
    """
    from .layers import GRU, Bidirectional
    from .quantization import check_exportable

    layers = list(model.layers) if hasattr(model, "layers") else list(model)
    if not layers:
        raise ValueError("the model has no layers")
    check_exportable(model if hasattr(model, "layers") else layers, "to_torch_state_dict")
    out: dict[str, np.ndarray] = {}
    first_bi = first_units = first_bias = None
    for k, layer in enumerate(layers):
        if isinstance(layer, Bidirectional):
            if layer.merge_mode != "concat":
                raise ValueError(f"layer {layer.name!r} has merge_mode={layer.merge_mode!r}; a bidirectional "
                                 "nn.GRU concatenates its directions (merge_mode='concat')")
            pairs = [(layer.forward_layer, "", False), (layer.backward_layer, "_reverse", True)]
        elif isinstance(layer, GRU):
            pairs = [(layer, "", False)]
        else:
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has no nn.GRU counterpart: "
                             "to_torch_state_dict converts models made only of GRU or "
                             "Bidirectional(GRU) layers")
        if not layer.built:
            raise ValueError(f"layer {layer.name!r} is not built yet, so it has no weights")
        is_bi = isinstance(layer, Bidirectional)
        if k == 0:
            first_bi = is_bi
            first_units, first_bias = pairs[0][0].units, pairs[0][0].use_bias
        elif is_bi != first_bi:
            raise ValueError(f"layer {layer.name!r}: an nn.GRU is bidirectional in every layer or in none")
        for gru, sfx, backwards in pairs:
            problems = []
            if gru.units != first_units:
                problems.append(f"units={gru.units} (layer 0 has {first_units}; nn.GRU has one hidden_size)")
            if gru.use_bias != first_bias:
                problems.append(f"use_bias={gru.use_bias} (layer 0 has {first_bias})")
            if not gru.reset_after:
                problems.append("reset_after=False (nn.GRU resets after the recurrent product)")
            if gru.activation != "tanh":
                problems.append(f"activation={gru.activation!r} (nn.GRU uses tanh)")
            if gru.recurrent_activation != "sigmoid":
                problems.append(f"recurrent_activation={gru.recurrent_activation!r} (nn.GRU uses sigmoid)")
            if gru.go_backwards != backwards:
                problems.append(f"go_backwards={gru.go_backwards} in the "
                                f"{'backward' if backwards else 'forward'} direction")
            if problems:
                raise ValueError(f"layer {gru.name!r} cannot be an nn.GRU layer: {'; '.join(problems)}")
            rows = gru_to_gate_rows(gru.get_weights(), reset_after=True)
            for kind, row in zip(_TORCH_KINDS, rows):
                if row is not None:
                    out[f"{kind}_l{k}{sfx}"] = np.ascontiguousarray(_swap_rz(row, gru.units))
    return out


# ------------------------------------------------------------------------------------ Keras
_KERAS_SUPPORTED = ("GRU", "Bidirectional", "Dense", "Embedding", "Dropout", "InputLayer", "Masking",
                    "Conv1D", "TimeDistributed", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
                    "LayerNormalization", "Activation", "Flatten")
_GRU_IGNORED = {  # Keras GRU settings that change nothing cgru computes
    "name", "trainable", "dtype", "units", "activation", "recurrent_activation", "use_bias",
    "kernel_initializer", "recurrent_initializer", "bias_initializer", "dropout", "recurrent_dropout",
    "return_sequences", "return_state", "go_backwards", "stateful", "reset_after", "seed", "unroll",
    "implementation", "time_major", "zero_output_for_mask", "batch_input_shape", "batch_shape",
    "input_shape", "input_dim", "input_length", "kernel_regularizer", "recurrent_regularizer",
    "bias_regularizer", "activity_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint",
}


def _keras_major(obj: Any) -> int | None:
    """3 for Keras 3, 2 for tf.keras / Keras 2, None when unknown (duck-typed objects)."""
    top = (type(obj).__module__ or "").split(".")[0]
    if top == "tf_keras":
        return 2
    if top == "tensorflow":
        return 2
    version = getattr(sys.modules.get(top), "__version__", None)
    if top == "keras" and isinstance(version, str) and version[:1].isdigit():
        return int(version.split(".")[0])
    return None


def _keras_name(value: Any) -> Any:
    """A Keras activation/initializer given by name or serialised as a dict -> its name."""
    if isinstance(value, dict):
        inner = value.get("config")
        if isinstance(inner, str):
            return inner
        return value.get("class_name")
    return value


def _keras_dtype(config: dict, override: Any, where: str) -> str:
    if override is not None:
        return _config.standardize_dtype(override)
    dtype = config.get("dtype")
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy
        dtype = (dtype.get("config") or {}).get("name", dtype.get("class_name"))
    if dtype is None:
        return _config.floatx()
    dtype = str(dtype)
    if dtype == "float64":
        return "float64"
    if dtype in ("float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16"):
        return "float32"  # cgru computes half-precision policies in float32
    raise ValueError(f"{where}: dtype {dtype!r} is not supported (float32 or float64)")


def _warn_ignored(config: dict, where: str) -> None:
    """Warn about regularizers and constraints: training-time settings cgru does not have."""
    ignored = sorted(k for k, v in config.items()
                     if k.endswith(("_regularizer", "_constraint")) and v is not None)
    if ignored:
        warnings.warn(f"{where}: {ignored} are training-time settings that cgru does not have; ignored",
                      stacklevel=4)


def _keras_gru_kwargs(config: dict, layer: Any, dtype: Any, where: str) -> dict:
    activation = _keras_name(config.get("activation", "tanh"))
    recurrent_activation = _keras_name(config.get("recurrent_activation", "sigmoid"))
    if recurrent_activation == "hard_sigmoid" and _keras_major(layer) == 2:
        raise ValueError(f"{where}: Keras 2's hard_sigmoid (clip(0.2*x + 0.5, 0, 1)) differs from Keras 3's "
                         "relu6(x + 3) / 6, which cgru implements")
    if config.get("time_major"):
        raise ValueError(f"{where}: time_major=True is not supported (cgru inputs are batch-major)")
    _warn_ignored(config, where)
    kwargs = dict(
        units=config["units"], activation=activation, recurrent_activation=recurrent_activation,
        use_bias=config.get("use_bias", True), dropout=config.get("dropout", 0.0),
        recurrent_dropout=config.get("recurrent_dropout", 0.0),
        return_sequences=config.get("return_sequences", False),
        return_state=config.get("return_state", False),
        go_backwards=config.get("go_backwards", False), stateful=config.get("stateful", False),
        reset_after=config.get("reset_after", True), dtype=_keras_dtype(config, dtype, where),
    )
    if isinstance(config.get("seed"), int):
        kwargs["seed"] = config["seed"]
    if config.get("name"):
        kwargs["name"] = config["name"]
    return kwargs


def _common(config: dict, dtype: Any, where: str) -> dict:
    """The keyword arguments every converted layer takes: dtype and name."""
    kwargs = {"dtype": _keras_dtype(config, dtype, where)}
    if config.get("name"):
        kwargs["name"] = config["name"]
    return kwargs


def _keras_bidirectional(config: dict, layer: Any, dtype: Any, where: str):
    from .layers import GRU, Bidirectional

    forward, backward = getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)
    if forward is not None:
        inner = [(type(forward).__name__, forward.get_config(), forward),
                 (type(backward).__name__, backward.get_config(), backward)]
    else:  # from the config alone: {"layer": {"class_name", "config"}, "backward_layer": ...}
        spec = config["layer"]
        back = config.get("backward_layer")
        if back is None:
            flipped = not spec["config"].get("go_backwards", False)
            back = {"class_name": spec["class_name"],
                    "config": {**spec["config"], "go_backwards": flipped}}
        inner = [(spec["class_name"], spec["config"], layer),
                 (back["class_name"], back["config"], layer)]
    for name, _, _ in inner:
        if name != "GRU":
            raise ValueError(f"{where} wraps a {name}; cgru's Bidirectional wraps GRU layers only")
    fwd_kwargs, bwd_kwargs = (_keras_gru_kwargs(c, obj, dtype, where) for _, c, obj in inner)
    merge_mode = config.get("merge_mode", "concat")
    kwargs = {"name": config["name"]} if config.get("name") else {}
    return Bidirectional(GRU(**fwd_kwargs), merge_mode=merge_mode, backward_layer=GRU(**bwd_kwargs),
                         dtype=fwd_kwargs["dtype"], **kwargs)


def _keras_time_distributed(config: dict, layer: Any, dtype: Any, where: str):
    from .layers import TimeDistributed

    spec = config["layer"]
    inner = getattr(layer, "layer", None)
    if inner is None or type(inner).__name__ != spec.get("class_name"):
        inner = None
    where_inner = f"{where}'s wrapped layer"
    wrapped = _keras_config_layer(spec["class_name"], spec["config"], inner, dtype, where_inner)
    return TimeDistributed(wrapped, **_common(config, dtype, where))


def _keras_simple(kind: str, config: dict, dtype: Any, where: str):
    """The layers converted from their config alone (None for a class that is not one)."""
    from . import layers as L

    _warn_ignored(config, where)
    common = _common(config, dtype, where)
    if kind == "Dense":
        return L.Dense(config["units"], activation=_keras_name(config.get("activation")),
                       use_bias=config.get("use_bias", True), **common)
    if kind == "Embedding":
        return L.Embedding(config["input_dim"], config["output_dim"],
                           mask_zero=config.get("mask_zero", False), **common)
    if kind == "Dropout":
        seed = config.get("seed")
        return L.Dropout(config["rate"], noise_shape=config.get("noise_shape"),
                         seed=seed if isinstance(seed, int) else None, **common)
    if kind == "Masking":
        return L.Masking(config.get("mask_value", 0.0), **common)
    if kind == "Activation":
        return L.Activation(_keras_name(config["activation"]), **common)
    if kind == "Flatten":
        return L.Flatten(data_format=config.get("data_format"), **common)
    if kind in ("GlobalAveragePooling1D", "GlobalMaxPooling1D"):
        return getattr(L, kind)(data_format=config.get("data_format"), keepdims=config.get("keepdims", False),
                                **common)
    if kind == "LayerNormalization":
        return L.LayerNormalization(axis=config.get("axis", -1), epsilon=config.get("epsilon", 1e-3),
                                    center=config.get("center", True), scale=config.get("scale", True),
                                    rms_scaling=config.get("rms_scaling", False), **common)
    if kind == "Conv1D":
        return L.Conv1D(config["filters"], config["kernel_size"], strides=config.get("strides", 1),
                        padding=config.get("padding", "valid"), data_format=config.get("data_format"),
                        dilation_rate=config.get("dilation_rate", 1), groups=config.get("groups", 1),
                        activation=_keras_name(config.get("activation")),
                        use_bias=config.get("use_bias", True), **common)
    return None


def _keras_config_layer(kind: str, config: dict, layer: Any, dtype: Any, where: str):
    """The cgru layer for a Keras layer of class ``kind`` with ``config`` (``layer``: the Keras
    object when there is one; weights are set later)."""
    if kind == "GRU":
        from .layers import GRU

        return GRU(**_keras_gru_kwargs(config, layer, dtype, where))
    if kind == "Bidirectional":
        return _keras_bidirectional(config, layer, dtype, where)
    if kind == "TimeDistributed":
        return _keras_time_distributed(config, layer, dtype, where)
    converted = _keras_simple(kind, config, dtype, where)
    if converted is None:
        raise ValueError(f"{where} has no cgru counterpart; from_keras supports "
                         f"{', '.join(_KERAS_SUPPORTED)} layers")
    return converted


def _keras_layer(layer: Any, dtype: Any, index: int):
    """The cgru layer for one Keras layer (weights not set yet)."""
    kind = type(layer).__name__
    config = layer.get_config()
    where = f"Keras layer {index} ({config.get('name', '?')!r}, {kind})"
    try:
        return _keras_config_layer(kind, config, layer, dtype, where)
    except KeyError as exc:
        raise ValueError(f"{where}: its config lacks {exc}") from None
    except (TypeError, ValueError) as exc:
        if str(exc).startswith(where):
            raise
        raise type(exc)(f"{where}: {exc}") from None


def _keras_mask_warnings(layers: list) -> None:
    """Warn where a Keras model ignores a mask that cgru's lengths respect: a Conv1D after a mask
    (Keras drops it there), a GlobalMaxPooling1D after a mask except right after a GRU that
    returns sequences (Keras's max then includes padded steps that a cgru sequence lacks)."""
    masked, previous = False, None
    for layer in layers:
        kind = type(layer).__name__
        config = layer.get_config()
        name = config.get("name")
        if masked and kind == "Conv1D":
            warnings.warn(f"Keras drops the mask at Conv1D {name!r}, so the Keras model's layers after it "
                          "see the padded steps; cgru carries the lengths through Conv1D (see cgru.Conv1D): "
                          "outputs for padded sequences differ from Keras's", stacklevel=3)
        if masked and kind == "GlobalMaxPooling1D" and not (
                type(previous).__name__ == "GRU" and previous.get_config().get("return_sequences")):
            warnings.warn(f"Keras's GlobalMaxPooling1D {name!r} ignores the mask and takes the maximum over "
                          "padded steps too; cgru's takes it over the valid steps: outputs for padded "
                          "sequences may differ from Keras's", stacklevel=3)
        if kind == "Masking" or (kind == "Embedding" and config.get("mask_zero")):
            masked = True
        elif kind in ("Conv1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D", "Flatten"):
            masked = False
        elif kind in ("GRU", "Bidirectional"):
            inner = (config.get("layer") or {}).get("config", {}) if kind == "Bidirectional" else config
            masked = masked and bool(inner.get("return_sequences"))
        previous = layer


def _keras_input_shape(model: Any, layers: list) -> tuple | None:
    """The model's batch input shape from Keras, its batch size included when fixed (None when
    it does not say)."""
    try:
        shape = model.input_shape
    except Exception:  # an unbuilt Keras model raises from the property
        shape = None
    if not (isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, int) for d in shape)):
        shape = None
        for layer in layers:  # Keras 2: batch_input_shape on the first layer; Keras 3 InputLayer: batch_shape
            config = layer.get_config()
            found = config.get("batch_input_shape") or config.get("batch_shape")
            if found:
                shape = found
                break
            if type(layer).__name__ != "InputLayer":
                break
    return None if shape is None else tuple(shape)


def from_keras(model: Any, *, dtype: Any = None):
    """A :class:`~cgru.Sequential` with the layers, configuration and weights of a Keras model.

    ``model``: a Keras 3 or tf.keras model (``Sequential``, or a functional model whose layers
    form a chain) made of ``GRU``, ``Bidirectional(GRU)``, ``Dense``, ``Embedding``,
    ``Dropout``, ``Masking``, ``Conv1D``, ``TimeDistributed``, ``GlobalAveragePooling1D``,
    ``GlobalMaxPooling1D``, ``LayerNormalization``, ``Activation`` and ``Flatten`` layers (an
    ``InputLayer`` is skipped; a fixed batch size becomes the model's ``Input``). Keras is not
    imported: layers are recognised by class name and read through ``get_config()`` and
    ``get_weights()``.

    Carried over: GRU ``units``, ``activation``, ``recurrent_activation``, ``use_bias``,
    ``return_sequences``, ``return_state`` (last layer only, as cgru's Sequential allows),
    ``go_backwards``, ``stateful``, ``reset_after``, ``dropout``, ``recurrent_dropout``, ``seed``;
    ``Bidirectional`` ``merge_mode`` and a custom ``backward_layer``; ``Dense`` ``units``,
    ``activation``, ``use_bias``; ``Embedding`` ``mask_zero`` (cgru expects right-padded
    sequences); ``Dropout`` ``rate``, ``noise_shape``, ``seed``; every argument of the other
    layers that cgru has (activations by name); layer names. With ``mask_zero`` or ``Masking``,
    sequence outputs agree with Keras at every valid step; at padded steps cgru outputs zeros
    (PyTorch's packed semantics) where a Keras GRU may repeat its last output. Where Keras
    ignores a mask that cgru's lengths respect (a ``Conv1D`` after a mask, a
    ``GlobalMaxPooling1D`` after a mask other than right after a sequence-returning ``GRU``),
    a warning says that padded sequences give different results. Initializers are
    not (the weights are copied), regularizers and constraints are ignored with a warning, and
    ``unroll`` changes nothing. ``dtype`` ("float32"/"float64") overrides each layer's; by
    default float64 layers stay float64 and the others (float16/mixed policies included)
    compute in float32.

    Raises TypeError when ``model`` has no ``layers``, ValueError for an unsupported layer or
    setting (named) and for weights whose shapes do not fit.
    """
    from .models import Sequential

    layers = getattr(model, "layers", None)
    if layers is None or isinstance(layers, (str, bytes)):
        raise TypeError(f"from_keras expects a Keras model (with a .layers list), got {type(model).__name__}")
    layers = list(layers)
    converted = [(i, layer, _keras_layer(layer, dtype, i))
                 for i, layer in enumerate(layers) if type(layer).__name__ != "InputLayer"]
    if not converted:
        raise ValueError("the Keras model has no layers to convert")
    _keras_mask_warnings([layer for _, layer, _ in converted])
    name = getattr(model, "name", None)
    out = Sequential(name=name if isinstance(name, str) and name else None)
    shape = _keras_input_shape(model, layers)
    if shape is not None and shape[0] is not None:
        from .layers import Input

        out.add(Input(batch_shape=shape))  # a fixed batch size shows in input_shape and summary
    for i, _, ours in converted:
        try:
            out.add(ours)
        except ValueError as exc:
            raise ValueError(f"Keras layer {i} ({ours.name!r}): {exc}") from None

    if shape is None:  # unknown: the feature count from the first layer's weights, time left open
        first = converted[0][1]
        weights = first.get_weights()
        kind = type(first).__name__
        if kind == "Embedding":
            shape = (None, None)
        elif kind in ("GRU", "Bidirectional") and weights:
            shape = (None, None, int(np.shape(weights[0])[0]))
        elif kind == "Dense" and weights:
            shape = (None, int(np.shape(weights[0])[0]))
        else:
            raise ValueError("cannot tell the Keras model's input shape: build it (e.g. model.build(...) or "
                             "an Input layer) before converting")
    out.build((None, *shape[1:]))
    for i, layer, ours in converted:
        weights = list(layer.get_weights())
        if not weights and ours.weights:
            raise ValueError(f"Keras layer {i} ({ours.name!r}) has no weights yet: build the Keras model "
                             "(give it an Input or call it on data) before converting")
        try:
            ours.set_weights(weights)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Keras layer {i} ({ours.name!r}, {type(layer).__name__}): its weights do not "
                             f"fit the cgru layer: {exc}") from None
    return out
