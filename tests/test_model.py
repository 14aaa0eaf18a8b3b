"""Sequential: building, summary and parameter counts (Keras's formulas), predict/__call__,
lengths through stacked and bidirectional layers, stateful streaming, devices and threads."""


import numpy as np
import pytest
from threads import run_concurrently

import cgru
from cgru import GRU, Bidirectional, Dense, Dropout, Embedding, Sequential


def gru_params(inputs, units, reset_after=True):
    """Keras's GRU parameter count."""
    return 3 * (inputs * units + units * units + (2 if reset_after else 1) * units)


def test_keras_example_summary_and_count_params(capsys):
    model = Sequential([GRU(20, return_sequences=True, input_shape=(5, 10)), GRU(20), Dense(1)])
    assert model.built and model.output_shape == (None, 1)
    expected = gru_params(10, 20) + gru_params(20, 20) + (20 * 1 + 1)
    assert expected == 4461
    assert model.count_params() == expected
    model.summary()
    out = capsys.readouterr().out
    assert f"Total params: {expected:,}" in out
    assert f"Trainable params: {expected:,}" in out
    assert "Non-trainable params: 0" in out
    assert "(None, 5, 20)" in out and "(None, 20)" in out and "(None, 1)" in out
    for layer in model.layers:
        assert f"{layer.name} ({type(layer).__name__})" in out
        assert f"{layer.count_params():,}" in out


def test_count_params_bidirectional_embedding_reset_before():
    model = Sequential(
        [
            Embedding(100, 8, input_shape=(None,)),
            Bidirectional(GRU(16, return_sequences=True)),
            GRU(12, reset_after=False),
            Dropout(0.2),
            Dense(3, activation="softmax"),
        ]
    )
    expected = 100 * 8 + 2 * gru_params(8, 16) + gru_params(32, 12, reset_after=False) + 12 * 3 + 3
    assert model.count_params() == expected
    lines = []
    model.summary(print_fn=lines.append)
    assert any(f"Total params: {expected:,}" in line for line in lines)
    trainable = []
    model.layers[0].trainable = False
    model.summary(print_fn=trainable.append)
    assert any(f"Non-trainable params: {800:,}" in line for line in trainable)


def test_unbuilt_model_errors_and_deferred_build(rng):
    model = Sequential([GRU(4), Dense(2)])
    assert not model.built
    for call in (model.count_params, model.summary, model.get_weights):
        with pytest.raises(ValueError, match="not yet been built"):
            call()
    y = model.predict(rng.standard_normal((3, 6, 5)))
    assert model.built and y.shape == (3, 2) and model.input_shape == (None, 6, 5)
    with pytest.raises(ValueError, match="no layers"):
        Sequential().predict(np.zeros((1, 2, 3)))
    explicit = Sequential([GRU(4), Dense(2)])
    explicit.build((None, None, 5))
    assert explicit.count_params() == gru_params(5, 4) + 10


def test_call_and_predict_agree(ops, rng):
    model = Sequential([GRU(6, return_sequences=True, input_shape=(None, 3)), Dense(2)], device=ops.name)
    x = rng.standard_normal((10, 7, 3)).astype(np.float32)
    full = model.predict(x)
    np.testing.assert_array_equal(ops.to_numpy(model(x)), full)
    # batch-1 chunks may take the engine's GEMV path: equal to float32 rounding
    np.testing.assert_allclose(model.predict(x, batch_size=3), full, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ops.to_numpy(model(x.astype(np.float64))), full)  # converted
    np.testing.assert_array_equal(ops.to_numpy(model(x.tolist())), full)
    assert model.predict(x[:0]).shape == (0, 7, 2)


def _stack(ops, dtype="float64"):
    return Sequential(
        [
            GRU(5, return_sequences=True, dtype=dtype, seed=1),
            Bidirectional(GRU(4, return_sequences=True, dtype=dtype, seed=2)),
            Bidirectional(GRU(3, dtype=dtype, seed=3), merge_mode="sum"),
            Dense(2, dtype=dtype, seed=4),
        ],
        device=ops.name,
    )


def test_lengths_through_stacked_and_bidirectional_layers(ops, rng):
    x = rng.standard_normal((5, 8, 3))
    lengths = np.array([8, 3, 1, 6, 5])
    model = _stack(ops)
    padded = model.predict(x, lengths=lengths)
    # garbage in the padding must not matter
    noisy = x.copy()
    for b, L in enumerate(lengths):
        noisy[b, L:] = 1e3
    np.testing.assert_array_equal(model.predict(noisy, lengths=lengths), padded)
    for b, L in enumerate(lengths):
        alone = model.predict(x[b : b + 1, :L])
        np.testing.assert_allclose(padded[b], alone[0], atol=1e-12)
    np.testing.assert_array_equal(ops.to_numpy(model(x, lengths=lengths)), padded)


def test_sequence_outputs_are_zero_after_each_length(ops, rng):
    model = Sequential(
        [GRU(4, return_sequences=True, seed=1), Dense(3, activation="sigmoid", seed=2)], device=ops.name
    )
    x = rng.standard_normal((3, 6, 2))
    lengths = np.array([6, 2, 0])
    y = model.predict(x, lengths=lengths)
    for b, L in enumerate(lengths):
        np.testing.assert_array_equal(y[b, L:], 0)
        assert np.all(y[b, :L] != 0)
        if L:
            np.testing.assert_allclose(y[b, :L], model.predict(x[b : b + 1, :L])[0], atol=1e-6)


def test_embedding_mask_zero_gives_lengths(ops, rng):
    ids = rng.integers(1, 20, (4, 7))
    lengths = np.array([7, 4, 1, 3])
    for b, L in enumerate(lengths):
        ids[b, L:] = 0
    masked = Sequential(
        [Embedding(20, 4, mask_zero=True, seed=1), Bidirectional(GRU(3, seed=2))], device=ops.name
    )
    plain = Sequential([Embedding(20, 4, seed=1), Bidirectional(GRU(3, seed=2))], device=ops.name)
    a = masked.predict(ids)
    plain.build((None, 7))
    plain.set_weights(masked.get_weights())
    np.testing.assert_array_equal(a, plain.predict(ids, lengths=lengths))
    assert not np.allclose(a, plain.predict(ids))


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_stateful_streaming_equals_full_sequence(ops, rng, return_sequences, batch):
    T = 9
    x = rng.standard_normal((batch, T, 4)).astype(np.float32)
    model = Sequential(
        [
            GRU(8, stateful=True, return_sequences=True, input_shape=(None, 4), seed=1),
            GRU(6, stateful=True, return_sequences=return_sequences, seed=2),
            Dense(3, seed=3),
        ],
        device=ops.name,
    )
    full = model.predict(x)
    model.reset_states()
    steps = [ops.to_numpy(model(np.ascontiguousarray(x[:, t : t + 1]))) for t in range(T)]
    if return_sequences:
        np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(steps[-1], full, rtol=1e-5, atol=1e-6)
    # the output the caller holds is not the kept state
    model.reset_states()
    again = ops.to_numpy(model(np.ascontiguousarray(x[:, :1])))
    np.testing.assert_allclose(again, steps[0], rtol=1e-6, atol=1e-7)
    # without reset the state carries on, so a new call differs from the first step
    assert not np.allclose(ops.to_numpy(model(np.ascontiguousarray(x[:, :1]))), steps[0])


def test_stateful_output_does_not_alias_state(ops, rng):
    model = Sequential([GRU(4, stateful=True, input_shape=(1, 2), seed=1)], device=ops.name)
    x = rng.standard_normal((1, 1, 2)).astype(np.float32)
    for _ in range(2):  # the first call creates the state, the next ones update it
        out = model(x)
        kept = model.layers[0].states[0].copy()
        out[...] = 123.0
        np.testing.assert_array_equal(model.layers[0].states[0], kept)


def test_stateful_streaming_follows_layer_settings_changed_after_a_call(ops, rng):
    """The lean streaming path reads the layer's settings on every call: switching
    return_sequences on after a first call gives sequences from then on."""
    model = Sequential([GRU(4, stateful=True, input_shape=(1, 2), seed=1)], device=ops.name)
    x = rng.standard_normal((1, 1, 2)).astype(np.float32)
    model(x)
    assert ops.to_numpy(model(x)).shape == (1, 4)
    model.layers[0].return_sequences = True
    assert ops.to_numpy(model(x)).shape == (1, 1, 4)


def test_streaming_on_a_backend_whose_prepared_gru_has_no_step_state(rng):
    """A plugin backend's prepare_gru may return an object with only forward(): the stateful
    streaming path then runs forward and gives what the built-in backends give."""
    import cgru

    class OnlyForward:
        def __init__(self, prepared):
            self.forward = prepared.forward

    class PluginOps(cgru.backends.numpy_ops.NumpyOps):
        name = "only-forward"

        def prepare_gru(self, *args, **kwargs):
            return OnlyForward(super().prepare_gru(*args, **kwargs))

    cgru.register_backend("only-forward", PluginOps)
    steps = rng.standard_normal((5, 1, 1, 3)).astype(np.float32)
    outputs = {}
    for device in ("only-forward", "numpy"):
        model = Sequential([GRU(4, stateful=True, input_shape=(1, 3), seed=7)], device=device)
        outputs[device] = [np.asarray(model(x)) for x in steps]
    for a, b in zip(outputs["only-forward"], outputs["numpy"]):
        np.testing.assert_array_equal(a, b)


def test_return_state_last_layer(ops, rng):
    model = Sequential(
        [GRU(3, return_sequences=True, return_state=True, input_shape=(4, 2))], device=ops.name
    )
    y, h = model.predict(rng.standard_normal((5, 4, 2)), batch_size=2)
    assert y.shape == (5, 4, 3) and h.shape == (5, 3)
    np.testing.assert_array_equal(y[:, -1], h)
    with pytest.raises(ValueError, match="last layer"):
        model.add(Dense(1))


def test_concurrent_predict_equals_serial(ops, rng):
    model = _stack(ops, dtype="float32")
    inputs = [rng.standard_normal((6, 10, 3)).astype(np.float32) for _ in range(8)]
    lengths = [rng.integers(0, 11, 6) for _ in range(8)]
    serial = [model.predict(x, lengths=n) for x, n in zip(inputs, lengths)]
    serial_calls = [ops.to_numpy(model(x)) for x in inputs]
    results = {}

    def worker(i):
        for _ in range(5):
            a = model.predict(inputs[i], lengths=lengths[i])
            b = ops.to_numpy(model(inputs[i]))
            np.testing.assert_array_equal(a, serial[i])
            np.testing.assert_array_equal(b, serial_calls[i])
        results[i] = True

    run_concurrently(worker, 8)
    assert len(results) == 8


@pytest.mark.backends
def test_device_selection_and_to(rng):
    from conftest import backends_under_test

    names = backends_under_test()
    model = Sequential([GRU(5, input_shape=(4, 3), seed=1), Dense(2, seed=2)], device=names[0])
    assert model.device == names[0]
    x = rng.standard_normal((3, 4, 3)).astype(np.float32)
    ref = model.predict(x)
    for name in names:
        assert model.to(name) is model and model.device == name
        assert all(layer.ops.name == name for layer in model.layers)
        np.testing.assert_allclose(model.predict(x), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown backend"):
        Sequential(device="tpu")
    with pytest.raises(ValueError, match="unknown backend"):
        model.to("tpu")
    assert model.device == names[-1]


@pytest.mark.backends
def test_model_follows_current_backend_without_device(rng):
    from conftest import backends_under_test

    names = backends_under_test()
    previous = cgru.get_backend()
    model = Sequential([GRU(3, input_shape=(2, 2), seed=1)])
    x = rng.standard_normal((2, 2, 2)).astype(np.float32)
    try:
        outs = []
        for name in names:
            cgru.set_backend(name)
            outs.append(model.predict(x))
            assert model.device == name and model.layers[0].ops.name == name
        np.testing.assert_allclose(outs[0], outs[-1], rtol=1e-5, atol=1e-6)
    finally:
        cgru.set_backend(previous)


def test_get_set_weights_round_trip(ops, rng):
    a = _stack(ops)
    b = _stack(ops)
    x = rng.standard_normal((2, 5, 3))
    a.build((None, 5, 3))
    b.build((None, 5, 3))
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    weights = a.get_weights()
    weights[0][...] = 0  # copies: the model is unaffected
    assert not np.all(a.get_weights()[0] == 0)


def test_layers_get_unique_keras_style_names():
    a, b = Dense(1), Dense(1)
    assert a.name != b.name and a.name.startswith("dense")
    with pytest.raises(ValueError, match="named"):
        Sequential([Dense(1, name="x"), Dense(1, name="x")])
    layer = Dense(1)
    with pytest.raises(ValueError, match="already"):
        Sequential([layer, layer])
    with pytest.raises(TypeError):
        Sequential().add("dense")
