"""The layer and model cases that tests/make_keras_golden_layers.py records from Keras 3 and
tests/layers/test_layers_keras_golden.py replays with cgru. Imports neither library: a case names
classes and keyword arguments that mean the same in both, and :func:`build` makes them with
either library's classes.

A spec is ``{"class": name, "kwargs": {...}}``, with ``"layer": spec`` for a wrapper
(``TimeDistributed``); ``Input`` is ``keras.Input``/``cgru.Input``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Activation names cgru shares with Keras 3 (Keras's defaults for their arguments).
ACTIVATIONS = [
    "linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "exponential", "relu6", "hard_tanh",
    "leaky_relu", "elu", "celu", "selu", "softplus", "softsign", "silu", "swish", "log_sigmoid",
    "hard_sigmoid", "hard_silu", "hard_swish", "mish", "tanh_shrink", "soft_shrink", "hard_shrink",
    "squareplus", "sparse_plus", "sparse_sigmoid",
]


def spec(cls: str, layer: dict | None = None, **kwargs: Any) -> dict:
    out: dict = {"class": cls, "kwargs": kwargs}
    if layer is not None:
        out["layer"] = layer
    return out


def build(item: dict, lookup: Callable[[str], Any]) -> Any:
    """The layer (or Input) ``item`` describes, made with the classes ``lookup(name)`` gives."""
    kwargs = dict(item["kwargs"])
    if "layer" in item:
        return lookup(item["class"])(build(item["layer"], lookup), **kwargs)
    return lookup(item["class"])(**kwargs)


SEQ = (3, 7, 4)  # (batch, time, features) of the single-layer cases unless they say otherwise

#: name -> (layer spec, input shape with the batch size): one layer, its output and gradients.
LAYERS: dict[str, tuple[dict, tuple]] = {
    "conv_valid": (spec("Conv1D", filters=5, kernel_size=3), SEQ),
    "conv_same_k5_tanh": (spec("Conv1D", filters=5, kernel_size=5, padding="same", activation="tanh"), SEQ),
    "conv_same_k4_s2": (spec("Conv1D", filters=5, kernel_size=4, strides=2, padding="same"), SEQ),
    "conv_same_k2_s3": (spec("Conv1D", filters=3, kernel_size=2, strides=3, padding="same"), (3, 8, 4)),
    "conv_causal_d2_relu": (
        spec("Conv1D", filters=5, kernel_size=3, padding="causal", dilation_rate=2, activation="relu"), SEQ),
    "conv_valid_s3_nobias": (spec("Conv1D", filters=5, kernel_size=2, strides=3, use_bias=False), SEQ),
    "conv_same_d3_elu": (
        spec("Conv1D", filters=3, kernel_size=3, padding="same", dilation_rate=3, activation="elu"), SEQ),
    "conv_k1_sigmoid": (spec("Conv1D", filters=6, kernel_size=1, activation="sigmoid"), SEQ),
    "conv_causal_s2": (spec("Conv1D", filters=4, kernel_size=3, strides=2, padding="causal"), SEQ),
    "conv_valid_d2": (spec("Conv1D", filters=4, kernel_size=3, dilation_rate=2), SEQ),
    "ln_default": (spec("LayerNormalization"), SEQ),
    "ln_axes_12": (spec("LayerNormalization", axis=[1, 2], epsilon=0.01), SEQ),
    "ln_no_center": (spec("LayerNormalization", center=False), SEQ),
    "ln_no_scale": (spec("LayerNormalization", scale=False, epsilon=0.1), SEQ),
    "ln_2d": (spec("LayerNormalization"), (3, 5)),
    "flatten": (spec("Flatten"), SEQ),
    "flatten_2d": (spec("Flatten"), (3, 5)),
    "td_dense_tanh": (spec("TimeDistributed", spec("Dense", units=4, activation="tanh")), SEQ),
    "td_activation": (spec("TimeDistributed", spec("Activation", activation="relu")), SEQ),
    "td_layer_norm": (spec("TimeDistributed", spec("LayerNormalization")), SEQ),
    "td_dropout": (spec("TimeDistributed", spec("Dropout", rate=0.5)), SEQ),
    "td_conv": (spec("TimeDistributed", spec("Conv1D", filters=2, kernel_size=2)), (3, 4, 5, 3)),
    "td_flatten": (spec("TimeDistributed", spec("Flatten")), (3, 4, 2, 3)),
    "gap": (spec("GlobalAveragePooling1D"), SEQ),
    "gap_keepdims": (spec("GlobalAveragePooling1D", keepdims=True), SEQ),
    "gmp": (spec("GlobalMaxPooling1D"), SEQ),
    "gmp_keepdims": (spec("GlobalMaxPooling1D", keepdims=True), SEQ),
    **{f"act_{name}": (spec("Activation", activation=name), SEQ) for name in ACTIVATIONS},
    **{f"dense_{name}": (spec("Dense", units=3, activation=name), SEQ)
       for name in ("elu", "selu", "silu", "mish", "log_softmax", "softplus", "hard_silu")},
}

#: name -> (mask_value, lengths): Masking on a batch padded with mask_value after each length.
MASKING: dict[str, tuple[float, list[int]]] = {
    "masking_zero": (0.0, [7, 3, 0, 5]),
    "masking_minus_one": (-1.0, [2, 7, 7, 1]),
}

#: name -> (specs, input shape, lengths or None): whole models. With lengths, the batch is
#: padded with the Masking layer's mask_value after each length.
MODELS: dict[str, tuple[list[dict], tuple, list[int] | None]] = {
    "mask_gru": (
        [spec("Input", shape=[7, 4]), spec("Masking", name="masking"), spec("GRU", units=5, name="gru")],
        (4, 7, 4), [7, 4, 0, 2]),
    "mask_gru_average": (
        [spec("Input", shape=[7, 4]), spec("Masking", name="masking"),
         spec("GRU", units=5, return_sequences=True, name="gru"),
         spec("GlobalAveragePooling1D", name="pool")],
        (4, 7, 4), [7, 4, 1, 2]),
    "mask_gru_max": (
        [spec("Input", shape=[7, 4]), spec("Masking", name="masking"),
         spec("GRU", units=5, return_sequences=True, name="gru"), spec("GlobalMaxPooling1D", name="pool")],
        (4, 7, 4), [7, 4, 0, 2]),
    "mask_td_norm_gru": (
        [spec("Input", shape=[7, 4]), spec("Masking", mask_value=-1.0, name="masking"),
         spec("TimeDistributed", spec("Dense", units=6, activation="relu", name="dense"), name="td"),
         spec("LayerNormalization", name="norm"), spec("GRU", units=5, return_sequences=True, name="gru"),
         spec("Dense", units=2, name="head")],
        (4, 7, 4), [7, 5, 3, 1]),
    "conv_stack": (
        [spec("Input", shape=[20, 4]),
         spec("Conv1D", filters=8, kernel_size=5, padding="causal", activation="relu", name="conv_a"),
         spec("Conv1D", filters=8, kernel_size=3, strides=2, name="conv_b"),
         spec("GRU", units=6, return_sequences=True, name="gru"),
         spec("TimeDistributed", spec("Dense", units=4, name="proj"), name="td"),
         spec("LayerNormalization", name="norm"), spec("Activation", activation="swish", name="act"),
         spec("GlobalMaxPooling1D", name="pool"), spec("Dense", units=3, activation="softmax", name="head")],
        (3, 20, 4), None),
    "flatten_stack": (
        [spec("Input", shape=[10, 3], batch_size=4),
         spec("Conv1D", filters=4, kernel_size=3, strides=2, padding="same", name="conv"),
         spec("Flatten", name="flatten"), spec("Dense", units=2, name="head")],
        (4, 10, 3), None),
    "bigru_pool": (
        [spec("Input", shape=[None, 4]),
         spec("Bidirectional", spec("GRU", units=3, return_sequences=True, name="gru"), name="bi"),
         spec("GlobalAveragePooling1D", name="pool")],
        (3, 6, 4), None),
}
