"""Padded steps (t >= length) of right-padded batches are ignored on every backend under test:
NaN or inf written there change no output, loss, gradient or weight (the emulated cuda backend
runs the same checks in backends/test_cuda.py)."""

import numpy as np
import pytest
from padding import (
    LENGTHS,
    check_fit_ignores_padding,
    check_gru_ignores_padding,
    check_padding_ids_get_no_gradient,
    padded_steps,
    with_padding,
)

from cgru import GRU, Bidirectional, Dense, Dropout, Embedding, Sequential
from cgru.layers.recurrent import reverse_padded


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("recurrent_mask", [False, True], ids=["", "recurrent-mask"])
def test_gru_ops_ignore_padding(ops, rng, dtype, reset_after, reverse, recurrent_mask):
    check_gru_ignores_padding(ops, rng, dtype, reset_after=reset_after, reverse=reverse,
                              recurrent_mask=recurrent_mask)


def sequence_model(device, reset_after, bidirectional, *, dense_first=False):
    """GRU (or Bidirectional) with dropout and recurrent dropout, a second GRU over its
    sequence, Dense per step: a sequence output, so the loss is masked with the lengths."""
    gru = GRU(5, return_sequences=True, reset_after=reset_after, dropout=0.2, recurrent_dropout=0.3,
              seed=3)
    stack = [Bidirectional(gru) if bidirectional else gru,
             GRU(4, return_sequences=True, reset_after=not reset_after, go_backwards=True, seed=4),
             Dense(2)]
    if dense_first:
        stack = [Dense(3, activation="tanh"), Dropout(0.1, seed=5), *stack]
    model = Sequential(stack, device=device)
    model.build((None, 6, 3))
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["gru", "bidirectional"])
def test_fit_ignores_padding(ops, rng, reset_after, bidirectional):
    x = rng.standard_normal((len(LENGTHS), 6, 3)).astype(np.float32)
    y = rng.standard_normal((len(LENGTHS), 6, 2)).astype(np.float32)
    check_fit_ignores_padding(lambda: sequence_model(ops.name, reset_after, bidirectional), x, y, LENGTHS)


def test_fit_ignores_padding_before_the_first_gru(ops, rng):
    """Layers that do not take lengths (Dense, Dropout) see zeros in the padded steps."""
    x = rng.standard_normal((len(LENGTHS), 6, 3)).astype(np.float32)
    y = rng.standard_normal((len(LENGTHS), 6, 2)).astype(np.float32)
    check_fit_ignores_padding(lambda: sequence_model(ops.name, True, True, dense_first=True), x, y, LENGTHS)


def test_fit_ignores_padding_with_a_final_state_output(ops, rng):
    x = rng.standard_normal((len(LENGTHS), 6, 3)).astype(np.float32)
    y = rng.standard_normal((len(LENGTHS), 2)).astype(np.float32)

    def build():
        model = Sequential([Bidirectional(GRU(5, reset_after=False, seed=1)), Dense(2)], device=ops.name)
        model.build((None, 6, 3))
        model.compile(optimizer="adam", loss="mse")
        return model

    check_fit_ignores_padding(build, x, y, LENGTHS)


def embedding_model(device, *, mask_zero):
    model = Sequential([Embedding(10, 4, mask_zero=mask_zero, seed=1),
                        Bidirectional(GRU(5, return_sequences=True, seed=2)), Dense(1)], device=device)
    model.build((None, 6))
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_padding_ids_get_no_embedding_gradient(ops):
    check_padding_ids_get_no_gradient(lambda: embedding_model(ops.name, mask_zero=True))


def test_padding_ids_past_explicit_lengths_get_no_embedding_gradient(ops, rng):
    """Without mask_zero, ids past ``lengths=`` are padding whatever they are: an id used only
    there gets no gradient, and the step equals the one with zeros there."""
    ids = rng.integers(1, 9, (len(LENGTHS), 6))
    pad = padded_steps(LENGTHS, 6)
    y = rng.standard_normal((len(LENGTHS), 6, 1)).astype(np.float32)
    first, second = embedding_model(ops.name, mask_zero=False), embedding_model(ops.name, mask_zero=False)
    second.set_weights(first.get_weights())
    before = first.get_weights()[0]
    zero_padded, nine_padded = np.where(pad, 0, ids), np.where(pad, 9, ids)
    assert first.train_on_batch(zero_padded, y, lengths=LENGTHS) == second.train_on_batch(
        nine_padded, y, lengths=LENGTHS)
    np.testing.assert_array_equal(second.get_weights()[0][9], before[9])
    for got, want in zip(second.get_weights()[1:], first.get_weights()[1:]):
        np.testing.assert_array_equal(got, want)


def test_padded_outputs_are_zero_whatever_the_input(ops, rng):
    """A model ending in Dense returns exact zeros at the padded steps, also for NaN input."""
    model = Sequential([Dense(2)], device=ops.name)
    model.build((None, 6, 3))
    x = with_padding(rng.standard_normal((len(LENGTHS), 6, 3)).astype(np.float32), LENGTHS, True)
    out = model.predict(x, lengths=LENGTHS)
    assert np.isfinite(out).all()
    assert not out[padded_steps(LENGTHS, 6)].any()


def test_reverse_padded_writes_exact_zeros_at_the_padding():
    y = with_padding(np.arange(len(LENGTHS) * 12, dtype=np.float64).reshape(-1, 6, 2) + 1, LENGTHS, True)
    out = reverse_padded(np, y, LENGTHS)
    assert np.isfinite(out).all()
    assert not out[padded_steps(LENGTHS, 6)].any()
    np.testing.assert_array_equal(out[1, :3], y[1, 2::-1])


def test_reverse_padded_is_an_involution(rng):
    y = rng.standard_normal((3, 5, 2))
    lengths = np.array([5, 2, 0])
    r = reverse_padded(np, y, lengths)
    np.testing.assert_array_equal(r[1, :2], y[1, 1::-1])
    np.testing.assert_array_equal(r[1, 2:], 0)
    np.testing.assert_array_equal(r[2], 0)
    masked = y * (np.arange(5)[None, :, None] < lengths[:, None, None])
    np.testing.assert_array_equal(reverse_padded(np, r, lengths), masked)
