"""Checks that padded steps (t >= length) of a right-padded batch are ignored: shared by the
backend tests (numpy and cpu in test_padding.py, the emulated cuda backend in
backends/test_cuda.py).

The same batch is run twice, once with zeros in the padded steps and once with NaN, inf and
-inf there (in the input and in the output gradient); every output and gradient must be
bit-for-bit the same, and the input's gradient zero at the padded steps.
"""

from __future__ import annotations

import numpy as np

#: Written cyclically into the padded steps of the poisoned copies.
POISON = (np.nan, np.inf, -np.inf)

#: Lengths for a batch of 6 over 6 steps: full, partial, one step and empty sequences, full
#: ones next to each other and last.
LENGTHS = np.array([6, 3, 6, 1, 0, 6])


def padded_steps(lengths: np.ndarray, time: int) -> np.ndarray:
    """(B, T) bool: True at the padded steps t >= length."""
    return np.arange(time)[None, :] >= np.asarray(lengths)[:, None]


def with_padding(a: np.ndarray, lengths: np.ndarray, poisoned: bool) -> np.ndarray:
    """A copy of ``a`` (B, T, ...) with zeros, or NaN/inf/-inf in turn, in the padded steps."""
    out = np.array(a, copy=True)
    pad = padded_steps(lengths, a.shape[1])
    count = int(pad.sum()) * int(np.prod(a.shape[2:], dtype=np.int64))
    values = np.resize(np.array(POISON, a.dtype), count) if poisoned else np.zeros(count, a.dtype)
    out[pad] = values.reshape((-1, *a.shape[2:]))
    return out


def assert_same_and_finite(got, want, what: str) -> None:
    """Arrays (or None) equal bit for bit, and every value finite."""
    if want is None:
        assert got is None, what
        return
    got, want = np.asarray(got), np.asarray(want)
    assert np.isfinite(want).all(), f"{what}: not finite with zero padding"
    assert np.isfinite(got).all(), f"{what}: not finite with NaN/inf padding"
    np.testing.assert_array_equal(got, want, err_msg=what)


def gru_results(ops, x, dy, weights, lengths, *, reset_after, reverse, recurrent_mask):
    """Forward (inference and training) and backward of one GRU direction, as NumPy arrays."""
    kernel, recurrent, bias, h0 = weights
    dev = [None if a is None else ops.asarray(a) for a in (x, kernel, recurrent, bias, h0, recurrent_mask)]
    x, kernel, recurrent, bias, h0, mask = dev
    kw = dict(h0=h0, lengths=lengths, reverse=reverse, reset_after=reset_after, recurrent_mask=mask)
    y_infer, h_infer, _ = ops.gru_forward(x, kernel, recurrent, bias, **kw)
    y, h_n, cache = ops.gru_forward(x, kernel, recurrent, bias, training=True, **kw)
    grads = ops.gru_backward(ops.asarray(dy), ops.asarray(np.ones(h_n.shape, dy.dtype)), cache)
    results = {"y (inference)": y_infer, "h_n (inference)": h_infer, "y": y, "h_n": h_n}
    results.update(zip(grads._fields, grads))
    return {k: None if v is None else ops.to_numpy(v) for k, v in results.items()}


def check_gru_ignores_padding(ops, rng, dtype, *, reset_after, reverse, recurrent_mask=False):
    """One direction with NaN/inf padding gives exactly the zero-padded results."""
    lengths = LENGTHS
    B, T, I, H = len(lengths), 6, 3, 5
    x = rng.standard_normal((B, T, I)).astype(dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    weights = (
        (rng.standard_normal((I, 3 * H)) * 0.5).astype(dtype),
        (rng.standard_normal((H, 3 * H)) * 0.5).astype(dtype),
        (rng.standard_normal((2, 3 * H) if reset_after else (3 * H,)) * 0.5).astype(dtype),
        rng.standard_normal((B, H)).astype(dtype),
    )
    mask = (rng.uniform(size=(B, H)) > 0.3).astype(dtype) * 1.5 if recurrent_mask else None
    kw = dict(reset_after=reset_after, reverse=reverse, recurrent_mask=mask)
    want = gru_results(ops, with_padding(x, lengths, False), with_padding(dy, lengths, False), weights,
                       lengths, **kw)
    got = gru_results(ops, with_padding(x, lengths, True), with_padding(dy, lengths, True), weights,
                      lengths, **kw)
    for name in want:
        assert_same_and_finite(got[name], want[name], name)
    assert not got["dx"][padded_steps(lengths, T)].any(), "dx is not zero at the padded steps"


def check_fit_ignores_padding(build, x, y, lengths, poisoned_x=None):
    """One training step of two identical models (``build()``), on x with zeros in the padded
    steps and on x with NaN/inf there (or ``poisoned_x``): the same loss, the same predictions
    and the same, finite, weights after the step."""
    clean = with_padding(x, lengths, False)
    poisoned = with_padding(x, lengths, True) if poisoned_x is None else poisoned_x
    want_model, got_model = build(), build()
    got_model.set_weights(want_model.get_weights())
    want = want_model.train_on_batch(clean, y, lengths=lengths)
    got = got_model.train_on_batch(poisoned, y, lengths=lengths)
    assert np.isfinite(want) and got == want, (got, want)
    for k, (g, w) in enumerate(zip(got_model.get_weights(), want_model.get_weights())):
        assert_same_and_finite(g, w, f"weight {k} after one step")
    assert_same_and_finite(got_model.predict(poisoned, lengths=lengths),
                           want_model.predict(clean, lengths=lengths), "predict")


def check_padding_ids_get_no_gradient(build):
    """Embedding(mask_zero=True) models (``build()``, ids (B, 6), one output per step): id 0
    appears only as padding, so its row gets no gradient (the optimizer must be plain SGD, so
    that an unchanged row means a zero gradient), and whatever that row holds (NaN, inf)
    changes nothing else."""
    rng = np.random.default_rng(5)
    ids = rng.integers(1, 10, (len(LENGTHS), 6))
    ids[padded_steps(LENGTHS, 6)] = 0
    clean, poisoned = build(), build()
    y = rng.standard_normal((len(LENGTHS), 6, clean.output_shape[-1])).astype(np.float32)
    weights = clean.get_weights()
    weights[0][0] = 0
    clean.set_weights(weights)
    weights[0][0] = np.resize(np.array(POISON, weights[0].dtype), weights[0].shape[1])
    poisoned.set_weights(weights)
    want, got = clean.train_on_batch(ids, y), poisoned.train_on_batch(ids, y)
    assert np.isfinite(want) and got == want, (got, want)
    after, bad_after = clean.get_weights(), poisoned.get_weights()
    np.testing.assert_array_equal(after[0][0], 0)
    assert_same_and_finite(bad_after[0][1:], after[0][1:], "embeddings")
    for k, (g, w) in enumerate(zip(bad_after[1:], after[1:])):
        assert_same_and_finite(g, w, f"weight {k + 1} after one step")
