"""The layers around a GRU (Conv1D, LayerNormalization, Activation, Flatten, TimeDistributed,
global pooling, Masking, Input) against Keras 3, on every backend under test and on the "cuda"
backend through the CPU emulator of its kernels (tests/cuda_emu).

The expected values come from tests/data/keras_layers.{json,npz}, recorded from Keras 3 itself
by tests/make_keras_golden_layers.py for the cases of tests/keras_layer_cases.py: each layer's
and model's output, the gradients of ``sum(y * r)`` for a fixed random ``r`` with respect to the
input and every weight, ``count_params`` and ``summary`` rows, and every layer's Keras config,
which ``cgru.from_keras`` converts here without Keras (and, where Keras is installed, from the
real Keras models too).
"""

from __future__ import annotations

import copy
import importlib
import json
import warnings
from typing import Any, NamedTuple

import numpy as np
import pytest
from keras_layer_cases import LAYERS, MASKING, MODELS, build
from padding import LENGTHS, check_fit_ignores_padding
from paths import DATA

import cgru
from cgru import Sequential, from_keras
from cgru.padding import valid_steps
from cgru.summary import summary_lines

META = json.loads((DATA / "keras_layers.json").read_text())["cases"]
ARRAYS = np.load(DATA / "keras_layers.npz")


class Golden(NamedTuple):
    x: np.ndarray
    r: np.ndarray
    y: np.ndarray
    dx: np.ndarray
    weights: list
    grads: list


def golden(case: str) -> Golden:
    count = sum(layer["weights"] for layer in META[case]["layers"])
    return Golden(*(ARRAYS[f"{case}/{k}"] for k in ("x", "r", "y", "dx")),
                  [ARRAYS[f"{case}/w{i}"] for i in range(count)],
                  [ARRAYS[f"{case}/g{i}"] for i in range(count)])


def cgru_lookup(name: str) -> Any:
    return getattr(cgru, name)


def assert_close(got: Any, want: np.ndarray, what: str = "") -> None:
    """float32 agreement: within 1e-4 relative, or 1e-5 of the largest magnitude (at least 1)."""
    got = np.asarray(got)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1.0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=what)


def to_host(ops, a):
    return None if a is None else ops.to_numpy(a)


# ------------------------------------------------------------------------------ one layer
@pytest.mark.parametrize("case", sorted(LAYERS))
def test_layer_matches_keras(ops, case):
    item, shape = LAYERS[case]
    data = golden(case)
    layer = build(item, cgru_lookup)
    layer._bind(ops)
    layer._maybe_build((None, *shape[1:]))
    layer.set_weights(data.weights)
    training = case != "td_dropout"  # Keras's values are inference's: dropout off
    y, cache = layer._forward(ops.asarray(data.x), training, None)
    assert_close(to_host(ops, y), data.y, "output")
    assert_close(to_host(ops, layer(data.x)), data.y, "inference call")
    dx = layer._backward(ops.asarray(data.r), cache, True)
    assert_close(to_host(ops, dx), data.dx, "input gradient")
    for i, (param, grad) in enumerate(zip(layer.trainable_weights, data.grads)):
        assert_close(to_host(ops, param.grad), grad, f"gradient of weight {i} ({param.name})")
    assert layer.count_params() == sum(w.size for w in data.weights)


@pytest.mark.parametrize("case", sorted(MASKING))
def test_masking_matches_keras(ops, case):
    mask_value, lengths = MASKING[case]
    data = golden(case)
    keras_mask = ARRAYS[f"{case}/mask"]
    np.testing.assert_array_equal(keras_mask, valid_steps(np.asarray(lengths), keras_mask.shape[1]))
    layer = cgru.Masking(mask_value=mask_value)
    layer._bind(ops)
    x = ops.asarray(data.x)
    derived = layer.compute_lengths(x, None)
    np.testing.assert_array_equal(derived, lengths)
    y, cache = layer._forward(x, True, derived)
    assert_close(to_host(ops, y), data.y, "output")
    assert_close(to_host(ops, layer(data.x)), data.y, "layer call")
    assert_close(to_host(ops, layer._backward(ops.asarray(data.r), cache, True)), data.dx, "input gradient")


# ---------------------------------------------------------------------------------- models
def cgru_model(case: str, device: str | None = None) -> Sequential:
    specs, _, _ = MODELS[case]
    model = Sequential([build(item, cgru_lookup) for item in specs], name=case, device=device)
    model.set_weights(golden(case).weights)
    return model


def valid_part(case: str, a: np.ndarray) -> np.ndarray:
    """``a`` with the padded steps of a sequence output zeroed (Keras's GRU repeats its last
    output there, cgru's outputs zeros: only the valid steps are compared)."""
    lengths = MODELS[case][2]
    if lengths is None or a.ndim != 3:
        return a
    return a * valid_steps(np.asarray(lengths), a.shape[1])[:, :, None]


def model_gradients(model: Sequential, x: np.ndarray, r: np.ndarray) -> tuple[Any, list]:
    """(input gradient, weight gradients) of sum(model(x) * r), by the layers' backward passes."""
    ops = model._current_ops()
    _, caches, _ = model._forward(model._prepare_input(x), True, None)
    for param in model.weights:
        param.grad = None
    dy = ops.asarray(r)
    for layer, cache in reversed(list(zip(model.layers, caches))):
        dy = layer._backward(dy, cache, True)
    return to_host(ops, dy), [to_host(ops, p.grad) for p in model.weights]


def check_model(model: Sequential, case: str) -> None:
    data = golden(case)
    assert_close(valid_part(case, model.predict(data.x)), valid_part(case, data.y), "predict")
    dx, grads = model_gradients(model, data.x, data.r)
    assert_close(dx, data.dx, "input gradient")
    for i, (got, want) in enumerate(zip(grads, data.grads)):
        assert_close(got, want, f"gradient of weight {i} ({model.weights[i].name})")


@pytest.mark.parametrize("case", sorted(MODELS))
def test_model_matches_keras(ops, case):
    check_model(cgru_model(case, ops.name), case)


@pytest.fixture
def emulated_cuda(emulator, monkeypatch):
    """The "cuda" backend (CupyOps and gru.cu's kernels) on the CPU emulator, registered as
    "cuda-emulated" for one test."""
    fake, lib = emulator
    ops = fake.emulated_ops(fake.FakeCupy(lib), "off")
    registry = importlib.import_module("cgru.backends")
    monkeypatch.setitem(registry._factories, "cuda-emulated", lambda: ops)
    monkeypatch.setitem(registry._instances, "cuda-emulated", ops)
    return ops


def test_layers_and_models_match_keras_on_emulated_cuda(emulated_cuda):
    """The layers' array code through the CuPy backend's module (the emulator's), and the models
    through its GRU kernels."""
    for case in ("conv_same_k4_s2", "conv_causal_d2_relu", "ln_axes_12", "td_dense_tanh", "gmp", "flatten"):
        test_layer_matches_keras(emulated_cuda, case)
    for case in sorted(MODELS):
        check_model(cgru_model(case, "cuda-emulated"), case)


def test_padded_training_on_emulated_cuda(emulated_cuda, rng):
    """One step of a Conv1D -> GRU -> pooling model on NaN/inf padding equals the zero-padded
    one on the emulated CUDA backend (lengths mapped through the convolution)."""
    def build_model():
        model = Sequential([
            cgru.Conv1D(4, kernel_size=3, padding="causal", activation="relu", seed=1),
            cgru.GRU(3, return_sequences=True, seed=2),
            cgru.TimeDistributed(cgru.Dense(3, seed=3)),
            cgru.LayerNormalization(),
            cgru.GlobalAveragePooling1D(),
        ], device="cuda-emulated")
        model.build((None, 6, 2))
        model.compile("adam", "mse")
        return model

    x = rng.standard_normal((len(LENGTHS), 6, 2)).astype(np.float32)
    y = rng.standard_normal((len(LENGTHS), 3)).astype(np.float32)
    check_fit_ignores_padding(build_model, x, y, LENGTHS)


@pytest.mark.parametrize("case", sorted(MODELS))
def test_summary_and_count_params_match_keras(case):
    meta = META[case]
    model = cgru_model(case)
    assert model.count_params() == meta["count_params"]
    assert model.input_shape == tuple(meta["input_shape"])
    lines = summary_lines(model)
    assert [line.strip() for line in lines if "params:" in line] == meta["summary_params"]
    rules = [i for i, line in enumerate(lines) if set(line) == {"="}]
    rows = [line for line in lines[rules[0] + 1 : rules[1]] if line.strip()]
    assert len(rows) == len(meta["summary"])
    for line, (name, cls, shape, params) in zip(rows, meta["summary"]):
        assert line.startswith(f" {name} ({cls})"), (line, name, cls)
        assert str(tuple(shape)) in line, (line, shape)
        assert line.rstrip().endswith(f"{params:,}"), (line, params)
    for layer, (_, _, _, params) in zip(model.layers, meta["summary"]):
        assert layer.count_params() == params


def test_saved_models_predict_the_same(tmp_path):
    for case in sorted(MODELS):
        model = cgru_model(case)
        model.save(tmp_path / f"{case}.npz")
        loaded = cgru.load_model(tmp_path / f"{case}.npz")
        x = golden(case).x
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
        assert loaded.input_shape == model.input_shape
        assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
        assert loaded.get_config() == model.get_config()


# ------------------------------------------------------------------------- from_keras
class FakeKerasLayer:
    """What from_keras reads of a Keras layer: its class name, get_config and get_weights."""

    def __init__(self, config: dict, weights: list) -> None:
        self._config, self._weights = config, weights

    def get_config(self) -> dict:
        return copy.deepcopy(self._config)

    def get_weights(self) -> list:
        return [w.copy() for w in self._weights]


class FakeKerasModel:
    def __init__(self, layers: list, input_shape: tuple, name: str) -> None:
        self.layers, self.input_shape, self.name = layers, input_shape, name


def fake_keras_model(case: str, input_shape: tuple | None = None) -> FakeKerasModel:
    """The recorded Keras model of ``case`` as duck-typed layers with the recorded weights."""
    weights = golden(case).weights
    layers, start = [], 0
    for record in META[case]["layers"]:
        cls = type(record["class_name"], (FakeKerasLayer,), {"__module__": "keras.src.layers"})
        layers.append(cls(record["config"], weights[start : start + record["weights"]]))
        start += record["weights"]
    shape = tuple(META[case]["input_shape"]) if input_shape is None else input_shape
    return FakeKerasModel(layers, shape, case)


@pytest.mark.parametrize("case", sorted(LAYERS) + sorted(MASKING) + sorted(MODELS))
def test_from_keras_configs(case):
    data = golden(case)
    shape = tuple(META[case]["input_shape"])
    keras_model = fake_keras_model(case, shape if case in MODELS else (None, *shape[1:]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these cases differs from Keras
        model = from_keras(keras_model)
    if case in MODELS:
        assert [layer.name for layer in model.layers] == [row[0] for row in META[case]["summary"]]
        assert model.input_shape == shape
    assert_close(valid_part(case, model.predict(data.x)) if case in MODELS else model.predict(data.x),
                 valid_part(case, data.y) if case in MODELS else data.y, "predict")


def test_from_keras_time_distributed_keeps_the_wrapped_layer():
    model = from_keras(fake_keras_model("mask_td_norm_gru"))
    td = model.get_layer("td")
    assert isinstance(td, cgru.TimeDistributed) and isinstance(td.layer, cgru.Dense)
    assert td.layer.name == "dense" and td.layer.activation == "relu" and td.layer.units == 6


def fake(class_name: str, weights: list | None = None, **config) -> FakeKerasLayer:
    cls = type(class_name, (FakeKerasLayer,), {"__module__": "keras.src.layers"})
    return cls(config, weights or [])


def test_from_keras_warns_where_keras_ignores_the_mask(rng):
    kernel = [rng.standard_normal((3, 4, 2)).astype(np.float32), np.zeros(2, np.float32)]
    gru = [rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((2, 6)).astype(np.float32),
           np.zeros((2, 6), np.float32)]
    conv = fake("Conv1D", kernel, name="conv", filters=2, kernel_size=[3], padding="causal")
    with pytest.warns(UserWarning, match="drops the mask at Conv1D 'conv'"):
        from_keras(FakeKerasModel([fake("Masking", name="m"), conv], (None, 5, 4), "m1"))
    dense = fake("Dense", [kernel[0][0], kernel[1]], name="dense", units=2)
    with pytest.warns(UserWarning, match="GlobalMaxPooling1D 'pool' ignores the mask"):
        from_keras(FakeKerasModel([fake("Masking", name="m"), dense, fake("GlobalMaxPooling1D", name="pool")],
                                  (None, 5, 4), "m2"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # no mask before the Conv1D; or the max right after a GRU returning sequences (Keras's
        # padded steps repeat the last output, so its max is the valid steps' max)
        from_keras(FakeKerasModel([conv], (None, 5, 4), "m3"))
        from_keras(FakeKerasModel([fake("Masking", name="m"),
                                   fake("GRU", gru, name="g", units=2, return_sequences=True),
                                   fake("GlobalMaxPooling1D", name="pool")], (None, 5, 4), "m4"))


def test_from_keras_refuses_what_cgru_lacks():
    with pytest.raises(ValueError, match=r"Keras layer 0 \('c', Conv1D\).*groups=2"):
        from_keras(FakeKerasModel([fake("Conv1D", name="c", filters=4, kernel_size=[3], groups=2)],
                                  (None, 5, 4), "m"))
    with pytest.raises(ValueError, match=r"'a', Activation\).*unknown activation 'gelu'"):
        from_keras(FakeKerasModel([fake("Activation", name="a", activation="gelu")], (None, 5, 4), "m"))
    with pytest.raises(ValueError, match="rms_scaling"):
        from_keras(FakeKerasModel([fake("LayerNormalization", name="n", rms_scaling=True)],
                                  (None, 5, 4), "m"))
    with pytest.raises(ValueError, match="channels_last"):
        from_keras(FakeKerasModel([fake("GlobalAveragePooling1D", name="p", data_format="channels_first")],
                                  (None, 5, 4), "m"))


def test_from_real_keras_models():
    """The same models built with Keras itself, converted and run (skipped without Keras)."""
    keras = pytest.importorskip("keras")

    def lookup(name):
        return keras.Input if name == "Input" else getattr(keras.layers, name)

    for case, (specs, _, _) in sorted(MODELS.items()):
        keras_model = keras.Sequential([build(item, lookup) for item in specs], name=case)
        data = golden(case)
        keras_model.set_weights(data.weights)
        model = from_keras(keras_model)
        want = np.asarray(keras_model(data.x, training=False))
        assert_close(valid_part(case, model.predict(data.x)), valid_part(case, want), case)
        assert model.count_params() == keras_model.count_params()
