"""cgru.to_onnx for the layers around a GRU: every layer and option of the Keras golden cases,
and the models with padded batches (sequence_lens, Masking's lengths from the data, lengths
through Conv1D), run in ONNX Runtime equal predict; old and new reduction opsets; what the
streaming form and padded "same" strided convolutions refuse."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from keras_layer_cases import LAYERS, MODELS, build  # noqa: E402
from onnx_helpers import assert_close, run  # noqa: E402
from paths import DATA  # noqa: E402

import cgru  # noqa: E402
from cgru import GRU, Conv1D, Dense, GlobalMaxPooling1D, Input, LayerNormalization, Masking, Sequential  # noqa: E402

GOLDEN = np.load(DATA / "keras_layers.npz")


def lookup(name):
    return getattr(cgru, name)


def exported(model, x, lengths=None, **kwargs):
    proto = cgru.to_onnx(model, sequence_lens=lengths is not None, **kwargs)
    feed = {"input": x}
    if lengths is not None:
        feed["sequence_lens"] = np.asarray(lengths, np.int32)
    return run(proto, feed)[0]


def golden_weights(case):
    return [GOLDEN[k] for k in sorted((k for k in GOLDEN.files if k.startswith(f"{case}/w")),
                                      key=lambda k: int(k.rsplit("w", 1)[1]))]


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_every_layer_case(case):
    item, shape = LAYERS[case]
    model = Sequential([build(item, lookup)])
    model.build((None, *shape[1:]))
    model.set_weights(golden_weights(case))
    x = GOLDEN[f"{case}/x"]
    assert_close(exported(model, x), model.predict(x))


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("case", ["ln_axes_12", "gap_keepdims", "gmp", "td_layer_norm", "conv_same_k4_s2"])
def test_reductions_across_opsets(case, opset):
    item, shape = LAYERS[case]
    model = Sequential([build(item, lookup)])
    model.build((None, *shape[1:]))
    x = GOLDEN[f"{case}/x"]
    assert_close(exported(model, x, opset=opset), model.predict(x))


@pytest.mark.parametrize("case", sorted(MODELS))
def test_golden_models(case):
    specs, _, lengths = MODELS[case]
    model = Sequential([build(item, lookup) for item in specs])
    model.set_weights(golden_weights(case))
    x = GOLDEN[f"{case}/x"]
    assert_close(exported(model, x), model.predict(x))  # Masking derives the lengths in the graph


CONVS = {
    "valid_s2": dict(kernel_size=3, strides=2),
    "valid_d2": dict(kernel_size=2, dilation_rate=2),
    "causal_s3": dict(kernel_size=3, strides=3, padding="causal"),
    "same": dict(kernel_size=4, padding="same", activation="elu"),
}


@pytest.mark.parametrize("case", list(CONVS))
@pytest.mark.parametrize("pool", [None, "max"])
def test_lengths_through_conv1d(rng, case, pool):
    """sequence_lens mapped to the convolution's output steps, then a GRU and pooling."""
    lengths = [9, 5, 0, 3]
    layers = [Conv1D(3, seed=1, bias_initializer="glorot_uniform", **CONVS[case]),
              GRU(4, return_sequences=True, seed=2)]
    if pool:
        layers.append(GlobalMaxPooling1D())
    model = Sequential([Input(shape=(None, 2)), *layers])
    x = rng.standard_normal((4, 9, 2)).astype(np.float32)
    x[1, 5:] = np.nan  # the padding is never read
    assert_close(exported(model, x, lengths), model.predict(x, lengths=lengths))


def test_masking_with_sequence_lens_takes_the_smaller(rng):
    model = Sequential([Masking(mask_value=-1.0, input_shape=(None, 3)),
                        GRU(3, return_sequences=True, seed=1), cgru.GlobalAveragePooling1D()])
    x = rng.standard_normal((3, 5, 3)).astype(np.float32)
    x[0, 3:] = -1.0
    lengths = [5, 2, 4]
    assert_close(exported(model, x, lengths), model.predict(x, lengths=lengths))


def test_what_cannot_be_exported():
    streaming_refused = [
        Sequential([Conv1D(2, 3, padding="causal", input_shape=(None, 2)), GRU(2)]),
        Sequential([GRU(2, return_sequences=True, input_shape=(None, 2)), GlobalMaxPooling1D()]),
        Sequential([LayerNormalization(axis=[1, 2], input_shape=(4, 2)), GRU(2)]),
    ]
    for model in streaming_refused:
        with pytest.raises(ValueError, match="cannot be exported in the streaming one-step form"):
            cgru.to_onnx(model, streaming=True)
    for model in (Sequential([Conv1D(2, 1, input_shape=(None, 2)), GRU(2, stateful=True)]),
                  Sequential([LayerNormalization(input_shape=(None, 2)), GRU(2), Dense(1)])):
        cgru.to_onnx(model, streaming=True)  # one step at a time is enough for these
    strided_same = Sequential([Conv1D(2, 3, strides=2, padding="same", input_shape=(None, 2), name="c")])
    cgru.to_onnx(strided_same)
    with pytest.raises(ValueError, match=r"strides=2\) cannot take sequence_lens"):
        cgru.to_onnx(strided_same, sequence_lens=True)
