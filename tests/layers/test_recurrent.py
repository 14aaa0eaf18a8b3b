"""cgru.layers.recurrent on every backend under test: GRU and Bidirectional against torch.nn.GRU
(when torch is installed) and against per-sequence runs, go_backwards/return_state/dropout
semantics, merge modes, and the gradients of GRU, Bidirectional and Dense by finite differences."""

import numpy as np
import pytest
from layer_calls import built, run

import cgru
from cgru import GRU, Bidirectional, Dense
from cgru.layers.recurrent import reverse_padded


def torch_to_keras(gru, suffix="_l0"):
    """Keras-layout [kernel, recurrent_kernel, bias] from a torch.nn.GRU direction."""

    def reorder(w):  # torch gate blocks r, z, n -> Keras z, r, h
        r, z, n = np.split(w, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    w_ih = getattr(gru, f"weight_ih{suffix}").detach().double().numpy()
    w_hh = getattr(gru, f"weight_hh{suffix}").detach().double().numpy()
    b_ih = getattr(gru, f"bias_ih{suffix}").detach().double().numpy()
    b_hh = getattr(gru, f"bias_hh{suffix}").detach().double().numpy()
    return [reorder(w_ih).T, reorder(w_hh).T, np.stack([reorder(b_ih), reorder(b_hh)])]


# --------------------------------------------------------------------------------- GRU vs torch
@pytest.mark.parametrize("use_lengths", [False, True])
def test_gru_matches_torch(ops, rng, use_lengths):
    torch = pytest.importorskip("torch")
    B, T, I, H = 4, 7, 5, 6
    torch.manual_seed(0)
    tgru = torch.nn.GRU(I, H, batch_first=True).double()
    x = rng.standard_normal((B, T, I))
    lengths = np.array([7, 3, 1, 5]) if use_lengths else np.full(B, T)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
    )
    out, h_n = tgru(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    layer = built(GRU(H, return_sequences=True, return_state=True, dtype="float64"), ops, (None, T, I))
    layer.set_weights(torch_to_keras(tgru))
    (y, state), _ = run(layer, x, lengths if use_lengths else None)
    np.testing.assert_allclose(ops.to_numpy(y), out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ops.to_numpy(state), h_n[0].detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("use_lengths", [False, True])
def test_bidirectional_matches_torch(ops, rng, use_lengths):
    torch = pytest.importorskip("torch")
    B, T, I, H = 3, 6, 4, 5
    torch.manual_seed(1)
    tgru = torch.nn.GRU(I, H, batch_first=True, bidirectional=True).double()
    x = rng.standard_normal((B, T, I))
    lengths = np.array([6, 2, 4]) if use_lengths else np.full(B, T)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
    )
    out, h_n = tgru(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    layer = built(
        Bidirectional(GRU(H, return_sequences=True, return_state=True, dtype="float64")), ops, (None, T, I)
    )
    layer.set_weights(torch_to_keras(tgru) + torch_to_keras(tgru, "_l0_reverse"))
    (y, hf, hb), _ = run(layer, x, lengths if use_lengths else None)
    np.testing.assert_allclose(ops.to_numpy(y), out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ops.to_numpy(hf), h_n[0].detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ops.to_numpy(hb), h_n[1].detach().numpy(), atol=1e-12)


# --------------------------------------------------------------------------- GRU semantics
def test_gru_weights_follow_keras_layout(ops):
    for reset_after, bias_shape in ((True, (2, 18)), (False, (18,))):
        layer = built(GRU(6, reset_after=reset_after), ops, (None, 3, 4))
        assert [w.shape for w in layer.get_weights()] == [(4, 18), (6, 18), bias_shape]
        assert layer.count_params() == 4 * 18 + 6 * 18 + int(np.prod(bias_shape))
    layer = built(GRU(6, use_bias=False), ops, (None, 3, 4))
    assert [w.shape for w in layer.get_weights()] == [(4, 18), (6, 18)]


def test_gru_lengths_equal_unpadded_runs(ops, rng):
    B, T, I, H = 4, 6, 3, 5
    x = rng.standard_normal((B, T, I))
    lengths = np.array([6, 0, 2, 4])
    for go_backwards in (False, True):
        layer = built(
            GRU(
                H,
                return_sequences=True,
                return_state=True,
                go_backwards=go_backwards,
                dtype="float64",
                seed=3,
            ),
            ops,
            (None, None, I),
        )
        (y, state), _ = run(layer, x, lengths)
        y, state = ops.to_numpy(y), ops.to_numpy(state)
        for b in range(B):
            L = lengths[b]
            np.testing.assert_array_equal(y[b, L:], 0)
            if L == 0:
                np.testing.assert_array_equal(state[b], 0)
                continue
            (yb, sb), _ = run(layer, x[b : b + 1, :L])
            np.testing.assert_allclose(y[b, :L], ops.to_numpy(yb)[0], atol=1e-12)
            np.testing.assert_allclose(state[b], ops.to_numpy(sb)[0], atol=1e-12)


def test_go_backwards_matches_keras_order(ops, rng):
    """Keras: go_backwards processes the reversed sequence and returns outputs in that order."""
    x = rng.standard_normal((2, 5, 3))
    fwd = built(GRU(4, return_sequences=True, dtype="float64", seed=1), ops, (None, 5, 3))
    bwd = built(GRU(4, return_sequences=True, go_backwards=True, dtype="float64", seed=1), ops, (None, 5, 3))
    bwd.set_weights(fwd.get_weights())
    y_b, _ = run(bwd, x)
    y_f, _ = run(fwd, x[:, ::-1].copy())
    np.testing.assert_allclose(ops.to_numpy(y_b), ops.to_numpy(y_f), atol=1e-12)
    # with lengths: each sequence reversed within its own length, zeros after it
    lengths = np.array([5, 3])
    y_b, _ = run(bwd, x, lengths)
    y_b = ops.to_numpy(y_b)
    y_f, _ = run(fwd, x[1:, 2::-1].copy())
    np.testing.assert_allclose(y_b[1, :3], ops.to_numpy(y_f)[0], atol=1e-12)
    np.testing.assert_array_equal(y_b[1, 3:], 0)
    # and return_sequences=False gives the state after the last processed step
    last = built(GRU(4, go_backwards=True, dtype="float64", seed=1), ops, (None, 5, 3))
    last.set_weights(fwd.get_weights())
    h, _ = run(last, x, lengths)
    np.testing.assert_allclose(ops.to_numpy(h)[1], y_b[1, 2], atol=1e-12)


@pytest.mark.backends
def test_reset_after_false_and_activations_agree_across_backends(rng):
    from conftest import backends_under_test

    if len(backends_under_test()) < 2:
        pytest.skip("needs two backends")
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    outs = []
    for name in backends_under_test():
        layer = built(
            GRU(
                6,
                reset_after=False,
                activation="relu",
                recurrent_activation="hard_sigmoid",
                return_sequences=True,
                seed=4,
            ),
            cgru.get_ops(name),
            (None, 4, 5),
        )
        outs.append(np.asarray(run(layer, x, [4, 2, 3])[0]))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)


def test_gru_stateful_keeps_state_per_row(ops, rng):
    x = rng.standard_normal((2, 6, 3))
    layer = built(GRU(4, stateful=True, return_sequences=True, dtype="float64", seed=2), ops, (None, None, 3))
    full, _ = run(layer, x)
    layer.reset_states()
    parts = [ops.to_numpy(run(layer, x[:, t : t + 2])[0]) for t in range(0, 6, 2)]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), ops.to_numpy(full), atol=1e-12)
    with pytest.raises(ValueError, match="batch"):
        run(layer, x[:1])
    layer.reset_states()
    run(layer, x[:1])  # a reset allows another batch size
    assert layer.states[0].shape == (1, 4)
    with pytest.raises(AttributeError):
        built(GRU(3), ops, (None, 2, 3)).reset_states()


def test_gru_dropout_only_in_training(ops, rng):
    x = rng.standard_normal((4, 5, 3))
    layer = built(GRU(6, dropout=0.5, recurrent_dropout=0.5, dtype="float64", seed=5), ops, (None, 5, 3))
    plain = built(GRU(6, dtype="float64"), ops, (None, 5, 3))
    plain.set_weights(layer.get_weights())
    inference, _ = run(layer, x)
    np.testing.assert_array_equal(ops.to_numpy(inference), ops.to_numpy(run(plain, x)[0]))
    training, _ = run(layer, x, training=True)
    assert not np.allclose(ops.to_numpy(training), ops.to_numpy(inference))
    # same seed, same masks
    again = built(GRU(6, dropout=0.5, recurrent_dropout=0.5, dtype="float64", seed=5), ops, (None, 5, 3))
    again.set_weights(layer.get_weights())
    layer._rng = again._rng = None  # both generators back to the seed
    np.testing.assert_array_equal(
        ops.to_numpy(run(layer, x, training=True)[0]), ops.to_numpy(run(again, x, training=True)[0])
    )


def test_gru_recurrent_dropout_passes_scaled_mask(rng):
    calls = []

    class Spy(cgru.backends.numpy_ops.NumpyOps):
        def gru_forward(self, *args, **kwargs):
            calls.append(kwargs.get("recurrent_mask"))
            return super().gru_forward(*args, **kwargs)

    layer = built(GRU(8, recurrent_dropout=0.25, seed=0), Spy(), (None, 3, 2))
    x = rng.standard_normal((5, 3, 2)).astype(np.float32)
    run(layer, x)
    run(layer, x, training=True)
    assert calls[0] is None
    mask = calls[1]
    assert mask.shape == (5, 8)
    assert set(np.unique(mask).tolist()) <= {0.0, np.float32(1 / 0.75)}


# ---------------------------------------------------------------------------- Bidirectional
@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merge_modes(ops, rng, mode):
    x = rng.standard_normal((3, 4, 2))
    lengths = np.array([4, 1, 3])
    bi = built(
        Bidirectional(GRU(5, return_sequences=True, dtype="float64", seed=7), merge_mode=mode),
        ops,
        (None, 4, 2),
    )
    f, b = bi.forward_layer, bi.backward_layer
    assert (f.name.startswith("forward_"), b.name.startswith("backward_"), b.go_backwards) == (
        True,
        True,
        True,
    )
    yf = ops.to_numpy(run(f, x, lengths)[0])
    yb = reverse_padded(np, ops.to_numpy(run(b, x, lengths)[0]), lengths)  # re-reversed: time-aligned
    out, _ = run(bi, x, lengths)
    expected = {
        "concat": np.concatenate([yf, yb], -1),
        "sum": yf + yb,
        "mul": yf * yb,
        "ave": (yf + yb) / 2,
        None: [yf, yb],
    }[mode]
    if mode is None:
        for o, e in zip(out, expected):
            np.testing.assert_allclose(ops.to_numpy(o), e, atol=1e-12)
    else:
        np.testing.assert_allclose(ops.to_numpy(out), expected, atol=1e-12)
    assert not np.allclose(f.get_weights()[0], b.get_weights()[0])  # distinct initial weights


def test_bidirectional_backward_layer_and_validation(ops):
    fwd = GRU(4, return_sequences=True)
    bwd = GRU(3, return_sequences=True, go_backwards=True, name="my_back")
    bi = built(Bidirectional(fwd, backward_layer=bwd), ops, (None, 5, 2))
    assert bi.backward_layer is bwd
    assert bi.compute_output_shape((None, 5, 2)) == (None, 5, 7)
    assert len(bi.get_weights()) == 6
    with pytest.raises(ValueError, match="go_backwards"):
        Bidirectional(GRU(4), backward_layer=GRU(4))
    with pytest.raises(ValueError, match="return_sequences"):
        Bidirectional(GRU(4), backward_layer=GRU(4, go_backwards=True, return_sequences=True))
    with pytest.raises(ValueError, match="units"):
        Bidirectional(GRU(4), merge_mode="sum", backward_layer=GRU(3, go_backwards=True))
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(GRU(4), merge_mode="max")
    with pytest.raises(TypeError):
        Bidirectional(Dense(3))


# -------------------------------------------------------------------- layer gradients (FD)
def _numeric_grad(f, arr, eps=1e-6):
    g = np.zeros_like(arr)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + eps
        up = f()
        arr[i] = old - eps
        down = f()
        arr[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


LAYER_CASES = {
    "gru_seq_backwards": lambda: GRU(3, return_sequences=True, go_backwards=True, reset_after=False, seed=1),
    "gru_state": lambda: GRU(3, return_state=True, seed=2),
    "bi_concat": lambda: Bidirectional(GRU(3, return_sequences=True, seed=3)),
    "bi_mul_last": lambda: Bidirectional(GRU(3, seed=4), merge_mode="mul"),
    "bi_ave_state": lambda: Bidirectional(
        GRU(3, return_sequences=True, return_state=True, seed=5), merge_mode="ave"
    ),
    "bi_none": lambda: Bidirectional(GRU(2, return_sequences=True, seed=6), merge_mode=None),
    "dense_softmax": lambda: Dense(3, activation="softmax", seed=7),
    "dense_sigmoid": lambda: Dense(3, activation="sigmoid", seed=8),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_gradients_finite_differences(ops, rng, case):
    cgru.set_floatx("float64")
    try:
        layer = LAYER_CASES[case]()
    finally:
        cgru.set_floatx("float32")
    x = rng.standard_normal((3, 4, 2))
    lengths = np.array([4, 2, 3]) if not case.startswith("dense") else None
    built(layer, ops, (None, 4, 2))
    out, _ = run(layer, x, lengths)
    outs = out if isinstance(out, list) else [out]
    weights = [rng.standard_normal(np.shape(o)) for o in outs]

    def loss():
        o, _ = run(layer, x, lengths)
        o = o if isinstance(o, list) else [o]
        return sum(float((ops.to_numpy(a) * w).sum()) for a, w in zip(o, weights))

    _, cache = run(layer, x, lengths, training=True)
    dy = [ops.asarray(w) for w in weights]
    dx = ops.to_numpy(layer.backward(dy if isinstance(out, list) else dy[0], cache))
    np.testing.assert_allclose(dx, _numeric_grad(loss, x), rtol=1e-6, atol=1e-8)
    for p in layer.weights:
        analytic = ops.to_numpy(p.grad)
        host = p.numpy()

        def loss_p(host=host, p=p):
            p.value[...] = ops.asarray(host)
            return loss()

        numeric = _numeric_grad(loss_p, host)
        p.value[...] = ops.asarray(host)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=p.name)
