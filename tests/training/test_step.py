"""cgru.training.step: the loss and gradients of a batch. One SGD step against PyTorch, a float64
finite-difference check of a whole model with lengths, and padded targets that never count."""

import numpy as np
import pytest

from cgru import GRU, Bidirectional, Dense, Sequential, optimizers


def torch_to_keras(gru, suffix="_l0"):
    def reorder(w):
        r, z, n = np.split(w, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    get = lambda name: getattr(gru, f"{name}{suffix}").detach().double().numpy()  # noqa: E731
    return [
        reorder(get("weight_ih")).T,
        reorder(get("weight_hh")).T,
        np.stack([reorder(get("bias_ih")), reorder(get("bias_hh"))]),
    ]


@pytest.mark.parametrize("use_lengths", [False, True])
def test_one_sgd_step_matches_torch(ops, rng, use_lengths):
    torch = pytest.importorskip("torch")
    B, T, I, H = 5, 6, 3, 4
    torch.manual_seed(2)
    tgru = torch.nn.GRU(I, H, batch_first=True, bidirectional=True).double()
    linear = torch.nn.Linear(2 * H, 2).double()
    x = rng.standard_normal((B, T, I))
    y = rng.standard_normal((B, 2))
    lengths = np.array([6, 2, 4, 1, 5]) if use_lengths else np.full(B, T)

    model = Sequential(
        [Bidirectional(GRU(H, dtype="float64"), input_shape=(T, I)), Dense(2, dtype="float64")],
        device=ops.name,
    )
    model.set_weights(
        torch_to_keras(tgru)
        + torch_to_keras(tgru, "_l0_reverse")
        + [linear.weight.detach().numpy().T, linear.bias.detach().numpy()]
    )
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    loss = model.train_on_batch(x, y, lengths=lengths if use_lengths else None)

    opt = torch.optim.SGD(list(tgru.parameters()) + list(linear.parameters()), lr=0.1)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
    )
    _, h_n = tgru(packed)
    out = linear(torch.cat([h_n[0], h_n[1]], dim=1))
    tloss = torch.nn.functional.mse_loss(out, torch.from_numpy(y))
    opt.zero_grad()
    tloss.backward()
    opt.step()

    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    expected = (
        torch_to_keras(tgru)
        + torch_to_keras(tgru, "_l0_reverse")
        + [linear.weight.detach().numpy().T, linear.bias.detach().numpy()]
    )
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_whole_model_gradient_finite_differences(ops, rng):
    """float64: GRU(return_sequences) + Bidirectional + Dense, padded batch with lengths."""
    model = Sequential(
        [
            GRU(4, return_sequences=True, dtype="float64", seed=1, input_shape=(5, 3)),
            Bidirectional(GRU(3, return_sequences=True, dtype="float64", seed=2), merge_mode="concat"),
            Dense(2, activation="tanh", dtype="float64", seed=3),
        ],
        device=ops.name,
    )
    # non-zero biases so that every gradient path is exercised
    model.set_weights([w + 0.1 * rng.standard_normal(w.shape) for w in model.get_weights()])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.standard_normal((3, 5, 3))
    y = rng.standard_normal((3, 5, 2))
    lengths = np.array([5, 2, 4])
    loss, _ = model._loss_and_grads(x, y, lengths)
    assert loss == pytest.approx(model.evaluate(x, y, lengths=lengths, batch_size=3), rel=1e-12)
    eps = 1e-6
    for p in model.weights:
        analytic = ops.to_numpy(p.grad)
        host = p.numpy()
        numeric = np.zeros_like(host)
        for i in np.ndindex(host.shape):
            for sign in (1, -1):
                trial = host.copy()
                trial[i] += sign * eps
                p.value[...] = ops.asarray(trial)
                numeric[i] += sign * model.evaluate(x, y, lengths=lengths, batch_size=3) / (2 * eps)
        p.value[...] = ops.asarray(host)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-9, err_msg=p.name)


def test_padded_targets_do_not_matter(ops, rng):
    model = Sequential(
        [GRU(3, return_sequences=True, seed=1, dtype="float64"), Dense(2, seed=2, dtype="float64")],
        device=ops.name,
    )
    model.compile(optimizer="sgd", loss="mae", metrics=["mae"])
    x = rng.standard_normal((2, 4, 3))
    y = rng.standard_normal((2, 4, 2))
    lengths = np.array([4, 1])
    y2 = y.copy()
    y2[1, 1:] = 100.0
    a = model.evaluate(x, y, lengths=lengths)
    assert a == model.evaluate(x, y2, lengths=lengths)
    model._loss_and_grads(x, y, lengths)
    g1 = [p.grad.copy() for p in model.weights]
    model._loss_and_grads(x, y2, lengths)
    for g, p in zip(g1, model.weights):
        np.testing.assert_array_equal(g, p.grad)
    # the masked mean runs over the 5 valid steps
    pred = model.predict(x, lengths=lengths)
    valid = np.abs(pred - y).mean(-1)[[0, 0, 0, 0, 1], [0, 1, 2, 3, 0]]
    assert a[0] == pytest.approx(valid.mean(), rel=1e-12)
