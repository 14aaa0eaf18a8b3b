"""Sequential.quantize: the model-level reduced-precision forms ("bfloat16", "int8").

A quantized model on the NumPy backend must compute the NumPy reference of its mode
(cgru.backends.quantize, driven here layer by layer, independently of the layers' code); on the
compiled backend the same within the kernels' float32 summation order (the engine-level bounds
are tests/backends/test_quantize.py's: here the mean difference must be float32-small, and the
rare element whose activation sits on a rounding boundary of the mode may differ by one
quantum). Against float32 each mode stays within the bound docs/reduced-precision.md states.
"""

import importlib.util

import numpy as np
import pytest

import cgru
from cgru import GRU, Bidirectional, Dense, Dropout, Embedding, Sequential
from cgru.backends import compiled_available
from cgru.backends.quantize import QuantizedMatrix, quantize_gru, reference_forward
from cgru.layers import activations as dense_activations
from cgru.loading import load_model

MODES = ("bfloat16", "int8")
#: docs/reduced-precision.md: the error against float32 of a model at Keras initialisers' scale.
DOCUMENTED_BOUND = {"bfloat16": 1e-2, "int8": 3e-2}
#: The compiled kernels against the reference of the mode: mean and worst element (see above).
KERNEL_MEAN, KERNEL_MAX = 2e-5, 5e-3

BACKENDS = ["numpy"] + (["cpu"] if compiled_available() else [])
requires_compiled = pytest.mark.skipif(not compiled_available(), reason="compiled engine not built")


def stack(kind, **gru):
    """Layer lists covering the quantized layers' options (input (batch, time, 6))."""
    if kind == "gru":
        return [GRU(12, return_sequences=True, input_shape=(None, 6), seed=1, **gru),
                GRU(9, seed=2, **gru), Dense(5, activation="tanh", seed=3)]
    if kind == "bidirectional":
        return [Bidirectional(GRU(8, return_sequences=True, seed=4, **gru), input_shape=(None, 6)),
                Dense(3, use_bias=False, seed=5)]
    raise ValueError(kind)


def twins(layers, devices, rng):
    """The model of ``layers`` on each device, all with the same weights (biases made non-zero)."""
    models = {}
    for device in devices:
        model = Sequential([type(layer).from_config(layer.get_config()) for layer in layers], device=device)
        model.build((None, 7, 6))
        models[device] = model
    first = models[devices[0]]
    weights = [w + (0.1 * rng.standard_normal(w.shape).astype(w.dtype)
                    if w.ndim < 2 or "bias" in p.name else 0)
               for w, p in zip(first.get_weights(), first.weights)]
    for model in models.values():
        model.set_weights(weights)
    return models


def reference_stack(layers, float_weights, mode, x, lengths=None):
    """The model's output computed layer by layer from the float32 weights with the NumPy
    reference of ``mode`` (float32 state and gate math, as the NumPy backend computes)."""
    weights = iter(float_weights)

    def direction(gru, go_backwards):
        kernel, recurrent, *bias = (next(weights) for _ in range(2 + gru.use_bias))
        q = quantize_gru(kernel, recurrent, bias[0] if bias else None, mode=mode, reverse=go_backwards,
                         reset_after=gru.reset_after, activation=gru.activation,
                         recurrent_activation=gru.recurrent_activation)
        y, h = reference_forward(q, x, lengths=lengths, dtype=np.float32)
        return y, h

    for layer in layers:
        if isinstance(layer, Bidirectional):
            yf, hf = direction(layer.forward_layer, False)
            yb, hb = direction(layer.backward_layer, True)
            x = np.concatenate([yf, yb], axis=-1) if layer.return_sequences else np.concatenate([hf, hb], -1)
        elif isinstance(layer, GRU):
            y, h = direction(layer, layer.go_backwards)
            if layer.go_backwards:  # Keras: the output sequence in processing order
                y = np.stack([np.concatenate([row[:n][::-1], row[n:]]) for row, n in
                              zip(y, lengths if lengths is not None else [y.shape[1]] * len(y))])
            x = y if layer.return_sequences else h
        else:  # Dense
            kernel = QuantizedMatrix.from_float(mode, next(weights))
            z = x @ kernel
            if layer.use_bias:
                z = z + next(weights)
            x = dense_activations.apply(layer.activation, np, z)
    return x


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind,options", [
    ("gru", {}), ("gru", {"reset_after": False}),
    ("gru", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("gru", {"go_backwards": True}), ("bidirectional", {}),
])
def test_predict_computes_the_reference_of_the_mode(kind, options, mode, rng):
    layers = stack(kind, **options)
    models = twins(layers, BACKENDS, rng)
    float_weights = models["numpy"].get_weights()
    x = rng.standard_normal((4, 7, 6)).astype(np.float32)
    lengths = np.array([7, 3, 0, 5])
    expected = reference_stack(layers, float_weights, mode, x)
    expected_lengths = reference_stack(layers, float_weights, mode, x, lengths)
    y32 = models["numpy"].predict(x)
    for device, model in models.items():
        model.quantize(mode)
        y = model.predict(x)
        y_lengths = model.predict(x, lengths=lengths)
        if device == "numpy":
            np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6)
            np.testing.assert_allclose(y_lengths, expected_lengths, rtol=0, atol=1e-6)
        else:
            for got, want in ((y, expected), (y_lengths, expected_lengths)):
                diff = np.abs(got - want)
                assert diff.mean() < KERNEL_MEAN and diff.max() < KERNEL_MAX, (diff.mean(), diff.max())
        error = np.abs(y - y32).max()
        assert 0 < error < DOCUMENTED_BOUND[mode], error  # quantized, and within the documented bound


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("device", BACKENDS)
def test_error_against_float32_over_a_long_sequence_stays_within_the_documented_bound(device, mode, rng):
    model = Sequential([GRU(64, return_sequences=True, input_shape=(None, 16), seed=7),
                        GRU(32, seed=8), Dense(4, seed=9)], device=device)
    x = rng.standard_normal((2, 100, 16)).astype(np.float32)
    y32 = model.predict(x)
    model.quantize(mode)
    error = np.abs(model.predict(x) - y32).max()
    assert 0 < error < DOCUMENTED_BOUND[mode]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("device", BACKENDS)
def test_stateful_streaming_equals_the_full_sequence(device, mode, rng):
    layers = [GRU(16, stateful=True, return_sequences=True, input_shape=(None, 5), seed=1),
              GRU(8, stateful=True, seed=2), Dense(3, activation="relu", seed=3)]
    # the same stack without state (Dense takes no stateful argument, as in Keras)
    stateless = [{**layer.get_config(), "stateful": False} if isinstance(layer, GRU) else layer.get_config()
                 for layer in layers]
    full = Sequential([type(layer).from_config(config) for layer, config in zip(layers, stateless)],
                      device=device)
    full.build((None, 10, 5))
    stream = Sequential(layers, device=device)
    stream.build((None, 1, 5))
    stream.set_weights(full.get_weights())
    full.quantize(mode)
    stream.quantize(mode)
    x = rng.standard_normal((1, 10, 5)).astype(np.float32)
    for _ in range(2):  # reset_states starts the stream over
        steps = [np.asarray(stream(np.ascontiguousarray(x[:, t:t + 1]))) for t in range(10)]
        stream.reset_states()
    # a longer call computes the input projection of several steps at once (other bfloat16
    # summation orders): float32-small differences, which a rounding boundary may lift to one
    # quantum of the mode at a rare element
    diff = np.abs(steps[-1] - full.predict(x))
    assert diff.mean() < KERNEL_MEAN and diff.max() < KERNEL_MAX
    if mode == "int8" or device == "numpy":  # integer sums (and the reference's) are exact
        np.testing.assert_array_equal(steps[-1], full.predict(x))


def weight_bytes(path):
    """The bytes of the weight arrays a saved model file holds."""
    with np.load(path) as arrays:
        return sum(arrays[name].nbytes for name in arrays.files if name.startswith("weight_"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("device", BACKENDS)
def test_save_and_load_give_the_same_model_bit_for_bit(device, mode, rng, tmp_path):
    model = Sequential([Embedding(20, 6, input_shape=(7,), seed=1), *stack("bidirectional")[:1],
                        Dense(4, activation="softmax", seed=2)], device=device)
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    float_path, path = tmp_path / "float.npz", tmp_path / "quantized.npz"
    model.save(float_path)
    model.quantize(mode)
    model.save(path)
    loaded = load_model(path, device=device)
    x = rng.integers(0, 20, (3, 7))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_config() == model.get_config()
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert loaded.layers[1].forward_layer.quantization_mode == mode
    assert loaded.layers[0].get_weights()[0].dtype == np.float32  # Embedding stays float32
    # the file holds the quantized matrices: a half (bfloat16) or a quarter (int8, plus its
    # scales) of the float bytes (the weight data, not the zip headers of so small a model)
    assert weight_bytes(path) < 0.7 * weight_bytes(float_path)
    other = "cpu" if device == "numpy" else "numpy"
    if other in BACKENDS:  # the same file on the other backend: the reference or the kernels
        moved = load_model(path, device=other).predict(x)
        assert np.abs(moved - model.predict(x)).max() < KERNEL_MAX


@pytest.mark.parametrize("device", BACKENDS)
def test_training_refuses_with_an_error_naming_quantize(device, rng):
    model = Sequential([GRU(4, input_shape=(3, 2), seed=1), Dense(1, seed=2)], device=device)
    model.compile(optimizer="sgd", loss="mse")
    model.quantize("int8")
    x = rng.standard_normal((4, 3, 2)).astype(np.float32)
    y = rng.standard_normal((4, 1)).astype(np.float32)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"fit\(\) cannot train .* quantized to 'int8' \(model.quantize\)"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"train_on_batch\(\) cannot train .*model.quantize"):
        model.train_on_batch(x, y)
    with pytest.raises(ValueError, match="inference-only"):
        model(x, training=True)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(model.evaluate(x, y))  # inference: evaluation works


@pytest.mark.parametrize("mode", MODES)
def test_set_weights_takes_quantized_arrays_and_refuses_float_ones(mode, rng):
    model = Sequential([GRU(4, input_shape=(3, 2), seed=1), Dense(2, seed=2)])
    model.quantize(mode)
    weights = model.get_weights()
    dtype = np.uint16 if mode == "bfloat16" else np.int8
    assert [w.dtype for w in weights[:2]] == [dtype, dtype]
    names = [p.name.split("/")[-1] for p in model.weights]
    scales = ["kernel_scale", "recurrent_kernel_scale"] if mode == "int8" else []
    assert names == ["kernel", "recurrent_kernel", "bias", *scales, "kernel", "bias", *scales[:1]]
    x = rng.standard_normal((2, 3, 2)).astype(np.float32)
    y = model.predict(x)
    # Keras casts a float array into a quantized variable silently (0.3 -> 0); cgru refuses
    floats = [w.astype(np.float32) for w in weights]
    with pytest.raises(TypeError, match=r"quantized weight .* set them on the float model and quantize"):
        model.set_weights(floats)
    with pytest.raises(TypeError, match="quantized weight"):
        model.layers[1].kernel.assign(np.zeros((4, 2), np.float32))
    np.testing.assert_array_equal(model.predict(x), y)  # nothing changed
    if mode == "int8":
        bad = [w.copy() for w in weights]
        bad[0][0, 0] = -128
        with pytest.raises(ValueError, match=r"-127\.\.127"):
            model.set_weights(bad)
    # the quantized arrays themselves round-trip, and new ones take effect
    changed = [w.copy() for w in weights]
    changed[0] = np.zeros_like(changed[0])
    model.set_weights(changed)
    assert not np.array_equal(model.predict(x), y)
    model.set_weights(weights)
    np.testing.assert_array_equal(model.predict(x), y)


def test_quantize_refuses_what_it_cannot_do(rng):
    model = Sequential([GRU(4, input_shape=(3, 2), seed=1)])
    with pytest.raises(ValueError, match=r"Invalid quantization mode. Expected one of "
                                         r"\('bfloat16', 'int8'\). Received: mode='float8'"):
        model.quantize("float8")
    with pytest.raises(ValueError, match="isn't yet built"):
        Sequential([GRU(4)]).quantize("int8")
    with pytest.raises(ValueError, match="no layer that quantize"):
        Sequential([Embedding(5, 3, input_shape=(4,))]).quantize("int8")
    with pytest.raises(ValueError, match="needs float32 layers"):
        Sequential([GRU(4, input_shape=(3, 2), dtype="float64")]).quantize("bfloat16")
    wide = Sequential([Dense(2, input_shape=(65536,))])
    with pytest.raises(ValueError, match="at most 65535"):
        wide.quantize("int8")
    wide.quantize("bfloat16")  # bfloat16 sums in float32: no such limit
    model.quantize("int8")
    with pytest.raises(ValueError, match="already quantized to 'int8'"):
        model.quantize("bfloat16")


def test_a_failed_quantize_leaves_the_model_as_it_was(rng):
    model = Sequential([GRU(4, return_sequences=True, input_shape=(3, 2), seed=1), Dense(2, seed=2)])
    weights = model.get_weights()
    weights[-2][0, 0] = np.inf  # the Dense kernel: int8 needs finite weights
    model.set_weights(weights)
    with pytest.raises(ValueError, match="layer 'dense.*finite"):
        model.quantize("int8")
    assert all(layer.quantization_mode is None for layer in model.layers)
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_other_layers_keep_their_float32_weights(rng):
    model = Sequential([Embedding(10, 4, input_shape=(5,), seed=1), cgru.Conv1D(6, 2, seed=2),
                        cgru.LayerNormalization(), GRU(3, seed=3), Dropout(0.2), Dense(2, seed=4)])
    before = model.get_weights()
    model.quantize("bfloat16")
    after = model.get_weights()
    kept = len(model.layers[0].weights) + len(model.layers[1].weights) + len(model.layers[2].weights)
    for a, b in zip(after[:kept], before[:kept]):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    modes = [layer.quantization_mode for layer in model.layers]
    assert modes == [None, None, None, "bfloat16", None, "bfloat16"]
    assert model.count_params() == sum(w.size for w in after)


def test_a_backend_without_reduced_precision_kernels_refuses_the_model(rng):
    class PlainOps(cgru.backends.numpy_ops.NumpyOps):
        """A plugin backend without reduced-precision kernels (as the CUDA one)."""

        name = "plain"

        def quantized_kernels(self):
            return None

        def prepare_quantized_gru(self, weights):
            raise NotImplementedError

    from cgru.backends.base import Ops
    from cgru.backends.cupy_ops import CupyOps

    assert CupyOps.quantized_kernels is Ops.quantized_kernels  # the CUDA backend refuses too
    cgru.register_backend("plain-test", PlainOps)
    model = Sequential([Embedding(5, 4, input_shape=(3,), seed=1), GRU(2, seed=2)], device="numpy")
    model.quantize("int8")
    x = rng.integers(0, 5, (2, 3))
    y = model.predict(x)
    with pytest.raises(ValueError, match=r"quantized to 'int8', and the 'plain' backend has no "
                                         r"reduced-precision"):
        model.to("plain-test")
    assert model.device == "numpy" and model.layers[0]._ops is cgru.get_ops("numpy")  # nothing moved
    np.testing.assert_array_equal(model.predict(x), y)
    with pytest.raises(ValueError, match="no reduced-precision"):
        Sequential([GRU(2, input_shape=(3, 4))], device="plain-test").quantize("bfloat16")


def test_backend_info_names_the_kernels_of_each_mode():
    info = cgru.backend_info()
    kernels = cgru.get_ops().quantized_kernels()
    assert info["quantized_kernels"] == kernels
    reference = {"bfloat16": "NumPy reference", "int8": "NumPy reference"}
    assert cgru.get_ops("numpy").quantized_kernels() == reference
    if compiled_available():
        from cgru import _engine

        assert cgru.get_ops("cpu").quantized_kernels() == _engine.quantized_kernels()
        assert info["isa"] == _engine.get_isa()


def test_exports_refuse_a_quantized_model(rng):
    model = Sequential([GRU(4, input_shape=(3, 2), seed=1)])
    model.quantize("bfloat16")
    before = model.get_weights()
    x = rng.standard_normal((2, 3, 2)).astype(np.float32)
    y = model.predict(x)
    with pytest.raises(ValueError, match="quantized to 'bfloat16'"):
        cgru.to_torch_state_dict(model)
    if importlib.util.find_spec("onnx") is not None:
        with pytest.raises(ValueError, match="to_onnx needs float weights"):
            cgru.to_onnx(model)
    for a, b in zip(model.get_weights(), before):  # the model is as it was
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x), y)


@requires_compiled
def test_the_dense_product_of_a_quantized_model_runs_the_kernels(rng):
    """A quantized Dense layer multiplies through the engine's packed kernel: equal to the
    reference product (int8 exactly; bfloat16 within float32 summation)."""
    from cgru import _engine

    w = rng.standard_normal((40, 7)).astype(np.float32)
    a = rng.standard_normal((5, 40)).astype(np.float32)
    for mode in MODES:
        matrix = QuantizedMatrix.from_float(mode, w)
        bound = cgru.get_ops("cpu").prepare_quantized_matmul(matrix)
        assert isinstance(bound, _engine.QuantizedMatmul)
        exact = a.astype(np.float64) @ matrix  # float64 keeps the exactly summed products
        got = a @ bound
        assert got.dtype == np.float32
        if mode == "int8":
            np.testing.assert_array_equal(got, a @ matrix)
        else:
            bound_sum = 40 * 2.0 ** -24 * (np.abs(a) @ np.abs(matrix.dequantized()))
            assert np.all(np.abs(got - exact) <= bound_sum + 1e-30)
    with pytest.raises(TypeError, match="values must be int8"):
        _engine.QuantizedMatmul("int8", w, np.ones(7, np.float32))


def quantized_stack(device, mode, rng):
    """A GRU-GRU-Dense model on ``device`` with non-zero biases, quantized to ``mode``, and
    inputs for it (8 sequences of 9 steps, 6 features)."""
    model = twins(stack("gru"), [device], rng)[device]
    model.quantize(mode)
    return model, rng.standard_normal((8, 9, 6)).astype(np.float32)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["pickle", "deepcopy", "cloudpickle"])
def test_a_quantized_model_pickles_through_its_save_format(how, mode, rng):
    import copy
    import pickle

    model, x = quantized_stack("cpu" if compiled_available() else "numpy", mode, rng)
    if how == "pickle":
        copied = pickle.loads(pickle.dumps(model))
    elif how == "cloudpickle":
        cloudpickle = pytest.importorskip("cloudpickle")
        copied = cloudpickle.loads(cloudpickle.dumps(model))
    else:
        copied = copy.deepcopy(model)
    assert [layer.quantization_mode for layer in copied.layers] == [mode] * 3
    for a, b in zip(copied.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype and a is not b
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(copied.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="already quantized"):
        copied.quantize(mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("device", BACKENDS)
def test_concurrent_predict_on_a_quantized_model_equals_serial(device, mode, rng):
    from threads import run_concurrently

    model, _ = quantized_stack(device, mode, rng)
    inputs = [rng.standard_normal((n, 9, 6)).astype(np.float32) for n in (1, 3, 8, 1, 5, 2)]
    serial = [model.predict(x) for x in inputs]
    results = {}

    def worker(i):
        for _ in range(5):
            results[i] = model.predict(inputs[i])
            np.testing.assert_array_equal(results[i], serial[i])

    run_concurrently(worker, len(inputs))
    assert sorted(results) == list(range(len(inputs)))


@requires_compiled
@pytest.mark.parametrize("mode", MODES)
def test_a_forked_child_predicts_what_its_parent_does(mode, rng):
    """A forked child of a process that ran the quantized kernels (the helper thread started)
    computes the same outputs (in a fresh interpreter: a hang fails the test)."""
    from isolated import run_isolated

    out = run_isolated(
        """
        import multiprocessing, sys
        import numpy as np
        import cgru
        from cgru import GRU, Dense, Sequential

        cgru.set_num_threads(2)
        model = Sequential([GRU(96, return_sequences=True, input_shape=(None, 6), seed=1),
                            GRU(32, seed=2), Dense(3, seed=3)])
        model.quantize(sys.argv[1])
        x = np.random.default_rng(0).standard_normal((4, 40, 6)).astype(np.float32)
        one = x[:1]
        parent = model.predict(x), model.predict(one)

        def child(_):
            return model.predict(x), model.predict(one)

        with multiprocessing.get_context("fork").Pool(2) as pool:
            for got in pool.map(child, range(2)):
                for a, b in zip(got, parent):
                    np.testing.assert_array_equal(a, b)
        print("same")
        """,
        mode, timeout_s=120, hang="a forked child of a quantized model hung")
    assert out.strip() == "same"


def stream_model(device, mode, *, relu=True):
    """A stateful GRU-GRU-Dense model streaming one step of 5 features per call."""
    model = Sequential([GRU(16, stateful=True, return_sequences=True, input_shape=(None, 5), seed=1),
                        Dropout(0.1), GRU(8, stateful=True, seed=2),
                        Dense(3, activation="relu" if relu else "linear", seed=3)], device=device)
    model.build((None, 1, 5))
    weights = model.get_weights()
    model.set_weights([w + 0.1 * (w.ndim == 1) for w in weights])  # non-zero biases
    if mode != "float32":
        model.quantize(mode)
    return model


def lean_only(monkeypatch):
    """Models bound from here on run every call through the Python lean path (no compiled
    streaming step)."""
    import cgru.streaming

    monkeypatch.setattr(cgru.streaming, "compiled_step", lambda *args: None)


@requires_compiled
@pytest.mark.parametrize("mode", ("float32",) + MODES)
def test_the_compiled_streaming_step_equals_the_lean_path_bit_for_bit(mode, rng, monkeypatch):
    model = stream_model("cpu", mode)
    xs = [rng.standard_normal((1, 1, 5)).astype(np.float32) for _ in range(12)]
    model(xs[0])  # the first (checked) call binds the step
    model.reset_states()
    assert model._fast.step is not None
    stepped = [model(x) for x in xs]
    assert all(type(y) is np.ndarray and y.shape == (1, 3) for y in stepped)
    states = [layer._state.copy() for layer in model.layers if isinstance(layer, GRU)]
    lean_only(monkeypatch)
    twin = stream_model("cpu", mode)
    twin(xs[0])
    twin.reset_states()
    assert twin._fast.step is None
    for y, x in zip(stepped, xs):
        np.testing.assert_array_equal(y, twin(x))
    for state, layer in zip(states, [layer for layer in twin.layers if isinstance(layer, GRU)]):
        np.testing.assert_array_equal(state, layer._state)


@requires_compiled
@pytest.mark.parametrize("mode", ("float32", "int8"))
def test_the_compiled_streaming_step_follows_what_changes(mode, rng, monkeypatch):
    """New weights, reset_states, a state set by the caller and a changed layer setting take
    effect at the next call, as on the lean path."""
    model = stream_model("cpu", mode)
    x = rng.standard_normal((1, 1, 5)).astype(np.float32)
    gru = model.layers[2]
    calls = []

    def run(m):
        out = [m(x), m(x)]
        m.reset_states()
        out.append(m(x))
        m.layers[2].reset_states(np.full((1, 8), 0.5, np.float32))
        out.append(m(x))
        m.set_weights([w if w.ndim != 1 else w + np.float32(0.25) for w in m.get_weights()])
        out += [m(x), m(x)]
        m.layers[3].activation = "linear"  # Dense: relu -> linear
        out.append(m(x))
        return out

    calls = run(model)
    assert model._fast.step is not None and gru._state is not None
    lean_only(monkeypatch)
    expected = run(stream_model("cpu", mode))
    for got, want in zip(calls, expected):
        np.testing.assert_array_equal(got, want)
    assert np.any(calls[-1] < 0)  # linear now: the relu would have clipped it


@requires_compiled
def test_the_compiled_streaming_step_declines_other_inputs(rng):
    model = stream_model("cpu", "bfloat16")
    x = rng.standard_normal((1, 1, 5)).astype(np.float32)
    model(x)
    step = model._fast.step
    assert step(x) is not None
    for other in (x.astype(np.float64), np.ascontiguousarray(np.repeat(x, 2, axis=1)), x[:, :, :4],
                  np.asfortranarray(np.repeat(x, 2, axis=0))[:1], x.tolist()):
        assert step(other) is None
    model.reset_states()
    assert step(x) is None  # no kept state: the lean path starts it
    with pytest.raises(ValueError):
        model(rng.standard_normal((1, 1, 4)).astype(np.float32))  # the checked path says why


@requires_compiled
@pytest.mark.parametrize("mode", MODES)
def test_streams_on_threads_each_equal_their_serial_run(mode, rng):
    from threads import run_concurrently

    models = [stream_model("cpu", mode) for _ in range(4)]
    inputs = [[rng.standard_normal((1, 1, 5)).astype(np.float32) for _ in range(50)] for _ in models]
    serial = []
    for model, xs in zip(models, inputs):
        serial.append([model(x) for x in xs])
        model.reset_states()
    got = {}

    def worker(i):
        got[i] = [models[i](x) for x in inputs[i]]

    run_concurrently(worker, len(models))
    for i in range(len(models)):
        for a, b in zip(got[i], serial[i]):
            np.testing.assert_array_equal(a, b)
