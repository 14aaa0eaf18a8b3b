"""Conv1D: the im2col + GEMM computation against a loop over output positions (float64), what
lengths mean after it (each padded sequence gives its own output, as run alone), training on
padded batches, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from padding import check_fit_ignores_padding, with_padding

import cgru
from cgru import GRU, Conv1D, Dense, Sequential
from cgru.layers.weights import Changes, Pinned

CASES = {
    "valid": dict(kernel_size=3),
    "valid_s2": dict(kernel_size=3, strides=2),
    "valid_d3": dict(kernel_size=2, dilation_rate=3),
    "same_k4": dict(kernel_size=4, padding="same"),
    "same_k5_s3": dict(kernel_size=5, strides=3, padding="same"),
    "same_d2": dict(kernel_size=3, dilation_rate=2, padding="same"),
    "causal": dict(kernel_size=3, padding="causal"),
    "causal_s2": dict(kernel_size=4, strides=2, padding="causal"),
    "causal_d2": dict(kernel_size=3, dilation_rate=2, padding="causal"),
    "k1": dict(kernel_size=1),
    "k1_s2": dict(kernel_size=1, strides=2),
}


def loop_reference(x, kernel, bias, kernel_size, strides=1, padding="valid", dilation_rate=1):
    """The convolution by its definition, one output position and tap at a time, in float64:
    ``y[b, t] = bias + sum_j xp[b, t * strides + j * dilation_rate] @ kernel[j]`` on the input
    padded with zeros as TensorFlow pads ("same": the extra step at the end)."""
    batch, time, _ = x.shape
    span = (kernel_size - 1) * dilation_rate + 1
    if padding == "valid":
        out_time, left, right = (time - span) // strides + 1, 0, 0
    else:
        out_time = -(-time // strides)
        total = max((out_time - 1) * strides + span - time, 0)
        left = span - 1 if padding == "causal" else total // 2
        right = 0 if padding == "causal" else total - total // 2
    zeros = np.zeros((batch, left + right, x.shape[2]))
    xp = np.concatenate([zeros[:, :left], x, zeros[:, left:]], axis=1)
    y = np.zeros((batch, out_time, kernel.shape[2]))
    for t in range(out_time):
        for j in range(kernel_size):
            y[:, t] += xp[:, t * strides + j * dilation_rate] @ kernel[j]
    return y + (0 if bias is None else bias)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("time", [9, 10, 12])
def test_equals_a_loop_over_positions(ops, rng, case, time):
    kwargs = CASES[case]
    layer = Conv1D(4, bias_initializer="glorot_uniform", dtype="float64", seed=1, **kwargs)
    x = rng.standard_normal((3, time, 5))
    layer._bind(ops)
    y = ops.to_numpy(layer(x))
    kernel, bias = layer.get_weights()
    want = loop_reference(x, kernel, bias, **kwargs)
    assert layer.compute_output_shape((None, time, 5)) == (None, want.shape[1], 4)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def alone(model, x, lengths):
    """Each sequence's output when it runs alone, unpadded (its valid steps only)."""
    return [model.predict(x[i : i + 1, :length]) for i, length in enumerate(lengths)]


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("same_k5")])
def test_a_padded_sequence_gives_its_own_output(ops, rng, case):
    """With lengths, a padded batch gives at each valid step what each sequence gives alone,
    whatever the padding holds (NaN here); the output's lengths are the sequence's own."""
    kwargs = CASES[case]
    conv = Conv1D(3, seed=2, bias_initializer="glorot_uniform", **kwargs)
    model = Sequential([conv], device=ops.name)
    model.build((None, None, 2))
    span = conv.receptive_field
    valid = kwargs.get("padding", "valid") == "valid"
    lengths = np.array([11, 7, span, 9]) if valid else np.array([11, 5, 0, 1])  # alone, at least one window
    x = with_padding(rng.standard_normal((4, 11, 2)).astype(np.float32), lengths, poisoned=True)
    got = model.predict(x, lengths=lengths)
    steps = conv.output_steps(lengths)
    for i, want in enumerate(alone(model, x, lengths)):
        assert want.shape[1] == steps[i]
        np.testing.assert_allclose(got[i, : steps[i]], want[0], rtol=1e-6, atol=1e-6)
        assert not got[i, steps[i]:].any()  # the padding of the output, zero at the model's output


def test_lengths_after_the_layer(rng):
    conv = Conv1D(2, kernel_size=3, strides=2)
    conv.build((None, None, 1))
    lengths = np.array([10, 5, 3, 2, 0])
    np.testing.assert_array_equal(conv.output_steps(lengths), [4, 2, 1, 0, 0])
    causal = Conv1D(2, kernel_size=3, strides=2, padding="causal")
    np.testing.assert_array_equal(causal.output_steps(lengths), [5, 3, 2, 1, 0])
    y = np.zeros((5, 4, 2))
    assert conv.output_lengths(None, None, y) is None
    assert conv.output_lengths(np.array([10, 10, 10, 10, 10]), None, y) is None  # all whole: no lengths


def test_conv_then_gru_trains_on_padded_batches_as_on_zeros(ops, rng):
    """One step on a padded batch with NaN/inf in the padding equals the zero-padded one."""
    lengths = np.array([9, 4, 9, 3, 6, 2])

    def build():
        model = Sequential([
            Conv1D(4, kernel_size=3, padding="causal", activation="relu", seed=1),
            Conv1D(4, kernel_size=2, padding="same", seed=2),
            GRU(3, return_sequences=True, seed=3),
            Dense(2, seed=4),
        ], device=ops.name)
        model.build((None, 9, 2))
        model.compile("adam", "mse")
        return model

    x = rng.standard_normal((6, 9, 2)).astype(np.float32)
    y = rng.standard_normal((6, 9, 2)).astype(np.float32)
    check_fit_ignores_padding(build, x, y, lengths)


def test_strided_conv_before_a_gru_masks_the_loss_over_the_new_lengths(rng):
    """The loss of a sequence output after a strided Conv1D averages over the output steps the
    lengths map to (the steps the sequences have alone)."""
    model = Sequential([Conv1D(2, kernel_size=2, strides=2, seed=1), GRU(2, return_sequences=True, seed=2)])
    model.build((None, 8, 1))
    model.compile("sgd", "mse")
    x = rng.standard_normal((2, 8, 1)).astype(np.float32)
    y = rng.standard_normal((2, 4, 2)).astype(np.float32)
    lengths = np.array([8, 5])  # output steps 4 and 2
    pred = model.predict(x, lengths=lengths)
    valid = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    want = np.mean(((pred - y) ** 2)[valid])
    assert model.evaluate(x, y, lengths=lengths) == pytest.approx(want, rel=1e-5)


def test_same_padding_with_strides_refuses_lengths(rng):
    model = Sequential([Conv1D(2, kernel_size=3, strides=2, padding="same", name="c")])
    x = rng.standard_normal((2, 6, 1)).astype(np.float32)
    model.predict(x)  # fine without lengths
    with pytest.raises(ValueError, match=r"Conv1D 'c': padding='same' with strides=2 cannot take lengths"):
        model.predict(x, lengths=[6, 3])


def test_errors():
    with pytest.raises(ValueError, match="needs at least 5 time steps"):
        Sequential([Conv1D(2, kernel_size=3, dilation_rate=2, input_shape=(4, 1))])
    model = Sequential([Conv1D(2, kernel_size=3, name="c", input_shape=(None, 1))])
    with pytest.raises(ValueError, match="Conv1D 'c' with padding='valid' needs at least 3 time steps"):
        model.predict(np.zeros((1, 2, 1), np.float32))
    with pytest.raises(ValueError, match="groups"):
        Conv1D(2, 3, groups=2)
    with pytest.raises(ValueError, match="channels_last"):
        Conv1D(2, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="strides > 1 together with dilation_rate > 1"):
        Conv1D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="padding must be one of"):
        Conv1D(2, 3, padding="full")
    with pytest.raises(ValueError, match="kernel_size"):
        Conv1D(2, (3, 3))
    with pytest.raises(ValueError, match="kernel_size"):
        Conv1D(2, 0)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        Conv1D(2, 3, activation="gelu")
    with pytest.raises(ValueError, match=r"expects input \(batch, time, channels\)"):
        Sequential([Conv1D(2, 3, input_shape=(5,))])
    assert Conv1D(2, (3,), strides=[2], padding="CAUSAL").get_config()["kernel_size"] == 3


def test_protocol_and_weights():
    conv = Conv1D(6, kernel_size=5, input_shape=(None, 4))
    model = Sequential([conv])
    assert [w.shape for w in conv.get_weights()] == [(5, 4, 6), (6,)]
    assert conv.count_params() == 5 * 4 * 6 + 6
    assert conv.uses_lengths and not conv.derives_lengths and not conv.zeroes_padded_steps
    assert not conv.multiple_outputs and conv.stateful_layers() == []
    # the layer binds to the weights read once per call: no lock around its calls
    assert not Pinned.take(model.layers, model._current_ops(), Changes()).guarded
    assert Sequential([Conv1D(2, 3, use_bias=False, input_shape=(None, 4))]).count_params() == 24


def test_one_gemm_over_the_windows(monkeypatch, rng):
    """The forward pass multiplies one matrix of windows by the kernel (no loop over positions):
    exactly one matrix product of (batch * out_time, kernel_size * channels) rows."""
    conv = Conv1D(8, kernel_size=5, padding="same", input_shape=(None, 4))
    Sequential([conv])
    products = []

    class Recording(np.ndarray):
        def __matmul__(self, other):
            products.append((self.shape, np.shape(other)))
            return np.asarray(self) @ np.asarray(other)

    windows = conv._windows
    monkeypatch.setattr(conv, "_windows", lambda x, geo: windows(x, geo).view(Recording))
    conv(rng.standard_normal((3, 50, 4)).astype(np.float32))
    assert products == [((150, 20), (20, 8))]


def test_saved_and_loaded(tmp_path, rng):
    model = Sequential([cgru.Input(shape=(None, 3)),
                        Conv1D(4, 3, strides=2, padding="causal", activation="elu"), GRU(2)])
    x = rng.standard_normal((2, 9, 3)).astype(np.float32)
    model.save(tmp_path / "m.npz")
    loaded = cgru.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.layers[0].get_config() == model.layers[0].get_config()
