"""Training: one SGD step against PyTorch, a float64 finite-difference check of a whole model with
lengths, losses/metrics/optimizers against Keras's formulas, fit options, callbacks, progress."""

import io
import math
import re
import sys

import numpy as np
import pytest

import cgru
from cgru import GRU, Bidirectional, Dense, Dropout, Embedding, Sequential, callbacks, losses, optimizers
from cgru.layers.base import Parameter


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


# ------------------------------------------------------------------ gradients end to end
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


# --------------------------------------------------------------------------------- losses
def test_losses_match_keras_formulas():
    y = np.array([[0.0, 1.0], [2.0, 3.0]])
    p = np.array([[1.0, 1.0], [2.0, 5.0]])
    assert losses.get("mse")(y, p) == pytest.approx(1.25)
    assert losses.get("mae")(y, p) == pytest.approx(0.75)
    assert losses.get("huber")(y, p) == pytest.approx(0.5)
    assert losses.Huber(delta=2.0)(y, p) == pytest.approx((0.25 + 1.0) / 2)
    assert losses.get("mse")(np.array([1.0, 2.0]), np.array([[1.5], [2.0]])) == pytest.approx(0.125)
    bce = losses.get("binary_crossentropy")
    assert bce(np.array([[1.0, 0.0]]), np.array([[0.9, 0.2]])) == pytest.approx(
        -(math.log(0.9) + math.log(0.8)) / 2
    )
    assert bce(np.array([[0.0]]), np.array([[1.0]])) == pytest.approx(-math.log(1e-7), rel=1e-6)
    z = np.array([[0.3, -2.0]])
    assert losses.BinaryCrossentropy(from_logits=True)(np.array([[1.0, 0.0]]), z) == pytest.approx(
        bce(np.array([[1.0, 0.0]]), 1 / (1 + np.exp(-z))), rel=1e-9
    )
    cce = losses.get("categorical_crossentropy")
    assert cce(np.array([[0, 1, 0]]), np.array([[0.2, 0.6, 0.2]])) == pytest.approx(-math.log(0.6))
    assert cce(np.array([[0, 1, 0]]), np.array([[1.0, 3.0, 1.0]])) == pytest.approx(-math.log(0.6))
    assert losses.get("sparse_categorical_crossentropy")(
        np.array([1]), np.array([[0.2, 0.6, 0.2]])
    ) == pytest.approx(-math.log(0.6))
    logits = np.array([[1.0, 2.0, 0.5]])
    softmax = np.exp(logits) / np.exp(logits).sum()
    assert losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([[2]]), logits) == pytest.approx(
        -math.log(softmax[0, 2])
    )
    assert losses.get("mse").name == "mse"
    assert losses.MeanSquaredError(reduction="sum")(y, p) == pytest.approx(2.5)
    np.testing.assert_allclose(losses.mean_squared_error(y, p), [0.5, 2.0])
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("hinge-ish")
    with pytest.raises(TypeError):
        losses.get(lambda a, b: 0.0)


@pytest.mark.parametrize(
    "name",
    [
        "mse",
        "mae",
        "huber",
        "binary_crossentropy",
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "bce_logits",
        "cce_logits",
    ],
)
def test_loss_gradients_finite_differences(rng, name):
    loss = {
        "bce_logits": losses.BinaryCrossentropy(from_logits=True),
        "cce_logits": losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    }.get(name)
    loss = loss or losses.get(name)
    p = rng.uniform(0.05, 0.95, (4, 3, 5))
    if name == "sparse_categorical_crossentropy":
        y = rng.integers(0, 5, (4, 3))
    elif "categorical" in name or name == "cce_logits":
        y = np.eye(5)[rng.integers(0, 5, (4, 3))]
    elif "binary" in name or "bce" in name:
        y = rng.integers(0, 2, (4, 3, 5)).astype(float)
    else:
        y = rng.standard_normal((4, 3, 5))
    mask = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], float)
    y_al = losses.align_targets(y, p, loss.sparse)
    value, grad = loss.value_and_grad(y_al, p, mask)
    assert value == pytest.approx(loss(y, p, mask=mask))
    numeric = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        up, down = p.copy(), p.copy()
        up[i] += 1e-6
        down[i] -= 1e-6
        numeric[i] = (loss(y, up, mask=mask) - loss(y, down, mask=mask)) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------------- optimizers
def run_optimizer(opt, grads, w0):
    p = Parameter("w", w0.copy())
    for g in grads:
        p.grad = g.copy()
        opt.apply([p])
    return p.value


@pytest.mark.parametrize(
    "name,make,ref",
    [
        ("sgd", lambda: optimizers.SGD(0.1), "sgd"),
        ("momentum", lambda: optimizers.SGD(0.1, momentum=0.9), "momentum"),
        ("nesterov", lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True), "nesterov"),
        ("adam", lambda: optimizers.Adam(0.01), "adam"),
        ("amsgrad", lambda: optimizers.Adam(0.01, amsgrad=True), "amsgrad"),
        ("adamw", lambda: optimizers.AdamW(0.01, weight_decay=0.1), "adamw"),
        ("rmsprop", lambda: optimizers.RMSprop(0.01), "rmsprop"),
        ("rmsprop_centered_momentum", lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True), "rmsc"),
    ],
)
def test_optimizers_follow_keras_formulas(rng, name, make, ref):
    grads = [rng.standard_normal(6) for _ in range(5)]
    w0 = rng.standard_normal(6)
    got = run_optimizer(make(), grads, w0)
    w, m, v, vhat, avg = w0.copy(), np.zeros(6), np.zeros(6), np.zeros(6), np.zeros(6)
    for t, g in enumerate(grads, start=1):
        if ref == "sgd":
            w = w - 0.1 * g
        elif ref in ("momentum", "nesterov"):
            m = 0.9 * m - 0.1 * g
            w = w + (0.9 * m - 0.1 * g if ref == "nesterov" else m)
        elif ref in ("adam", "amsgrad", "adamw"):
            if ref == "adamw":
                w = w - w * 0.1 * 0.01
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            vhat = np.maximum(vhat, v)
            alpha = 0.01 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            w = w - alpha * m / (np.sqrt(vhat if ref == "amsgrad" else v) + 1e-7)
        elif ref == "rmsprop":
            v = 0.9 * v + 0.1 * g * g
            w = w - 0.01 * g / np.sqrt(v + 1e-7)
        else:
            v = 0.9 * v + 0.1 * g * g
            avg = 0.9 * avg + 0.1 * g
            m = 0.5 * m + 0.01 * g / np.sqrt(v - avg * avg + 1e-7)
            w = w - m
    np.testing.assert_allclose(got, w, rtol=1e-12)


@pytest.mark.parametrize("kind", ["sgd_nesterov", "adam", "adamw", "rmsprop_centered"])
def test_optimizers_match_torch(rng, kind):
    torch = pytest.importorskip("torch")
    grads = [rng.standard_normal(5) for _ in range(6)]
    w0 = rng.standard_normal(5)
    tw = torch.tensor(w0.copy(), requires_grad=True)
    if kind == "sgd_nesterov":
        ours, theirs = (
            optimizers.SGD(0.05, momentum=0.8, nesterov=True),
            torch.optim.SGD([tw], lr=0.05, momentum=0.8, nesterov=True),
        )
    elif kind == "adam":  # the epsilon placement differs, so compare without it
        ours, theirs = optimizers.Adam(0.01, epsilon=0.0), torch.optim.Adam([tw], lr=0.01, eps=0.0)
    elif kind == "adamw":
        ours, theirs = (
            optimizers.AdamW(0.01, weight_decay=0.2, epsilon=0.0),
            torch.optim.AdamW([tw], lr=0.01, weight_decay=0.2, eps=0.0),
        )
    else:
        ours, theirs = (
            optimizers.RMSprop(0.01, rho=0.9, momentum=0.3, epsilon=0.0, centered=True),
            torch.optim.RMSprop([tw], lr=0.01, alpha=0.9, momentum=0.3, eps=0.0, centered=True),
        )
    for g in grads:
        theirs.zero_grad()
        tw.grad = torch.tensor(g)
        theirs.step()
    np.testing.assert_allclose(run_optimizer(ours, grads, w0), tw.detach().numpy(), rtol=1e-10)


def test_gradient_clipping(rng):
    g = np.array([3.0, 4.0])
    w = run_optimizer(optimizers.SGD(1.0, clipnorm=1.0), [g], np.zeros(2))
    np.testing.assert_allclose(w, [-0.6, -0.8])
    w = run_optimizer(optimizers.SGD(1.0, clipvalue=2.0), [g], np.zeros(2))
    np.testing.assert_allclose(w, [-2.0, -2.0])
    a, b = Parameter("a", np.zeros(1)), Parameter("b", np.zeros(1))
    a.grad, b.grad = np.array([3.0]), np.array([4.0])
    optimizers.SGD(1.0, global_clipnorm=2.5).apply([a, b])
    np.testing.assert_allclose([a.value[0], b.value[0]], [-1.5, -2.0])
    with pytest.raises(ValueError):
        optimizers.SGD(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get("adamax-ish")
    assert isinstance(optimizers.get("AdamW"), optimizers.AdamW)
    assert optimizers.get("adam").learning_rate == 0.001 and optimizers.get("sgd").learning_rate == 0.01
    assert optimizers.AdamW().weight_decay == 0.004


# --------------------------------------------------------------------------------- metrics
def test_accuracy_kind_follows_the_shapes(ops, rng):
    x = rng.standard_normal((8, 4, 3)).astype(np.float32)
    cases = [
        (Dense(1, activation="sigmoid"), "binary_crossentropy", rng.integers(0, 2, (8, 1))),
        (Dense(3, activation="softmax"), "categorical_crossentropy", np.eye(3)[rng.integers(0, 3, 8)]),
        (Dense(3, activation="softmax"), "sparse_categorical_crossentropy", rng.integers(0, 3, 8)),
    ]
    for head, loss, y in cases:
        model = Sequential([GRU(5, seed=1), head], device=ops.name)
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        loss_value, acc = model.evaluate(x, y)
        pred = model.predict(x)
        if loss == "binary_crossentropy":
            expected = ((pred > 0.5) == y).mean()
        elif loss == "categorical_crossentropy":
            expected = (pred.argmax(-1) == y.argmax(-1)).mean()
        else:
            expected = (pred.argmax(-1) == y).mean()
        assert acc == pytest.approx(expected)
        assert model.metrics_names == ["loss", "accuracy"]
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile(metrics=["f1-ish"])


# ------------------------------------------------------------------------------------ fit
def _regression(ops, seed=0, **compile_kwargs):
    model = Sequential(
        [
            GRU(8, return_sequences=True, input_shape=(6, 3), seed=seed),
            GRU(6, seed=seed + 1),
            Dense(1, seed=seed + 2),
        ],
        device=ops.name,
    )
    model.compile(optimizer=compile_kwargs.pop("optimizer", "adam"), loss="mse", **compile_kwargs)
    return model


def _data(rng, n=64):
    x = rng.standard_normal((n, 6, 3)).astype(np.float32)
    y = x[:, :, :1].mean(axis=1) + 0.1
    return x, y


def test_fit_learns_and_history_has_keras_keys(ops, rng):
    x, y = _data(rng)
    model = _regression(ops, metrics=["mae"])
    before = model.evaluate(x, y)[0]
    history = model.fit(x, y, epochs=8, batch_size=16, validation_split=0.25, verbose=0, seed=1)
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert all(len(v) == 8 for v in history.history.values())
    assert history.epoch == list(range(8))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, y)[0] < before
    assert model.history is history


def test_validation_split_takes_the_last_samples(ops, rng):
    x, y = _data(rng, 8)
    a = _regression(ops, optimizer=optimizers.SGD(0.05))
    b = _regression(ops, optimizer=optimizers.SGD(0.05))
    h = a.fit(x, y, batch_size=6, epochs=1, validation_split=0.25, shuffle=False, verbose=0)
    b.fit(x[:6], y[:6], batch_size=6, epochs=1, shuffle=False, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert h.history["val_loss"][0] == pytest.approx(a.evaluate(x[6:], y[6:]), rel=1e-6)
    val = a.fit(x, y, epochs=1, validation_data=({"x": x[:3], "lengths": [6, 2, 3]}, y[:3]), verbose=0)
    assert val.history["val_loss"][0] == pytest.approx(a.evaluate(x[:3], y[:3], lengths=[6, 2, 3]), rel=1e-6)


def test_shuffle_is_seeded(ops, rng):
    x, y = _data(rng, 40)
    runs = []
    for seed in (3, 3, 4):
        model = _regression(ops)
        model.fit(x, y, batch_size=8, epochs=2, seed=seed, verbose=0)
        runs.append(model.get_weights())
    for u, v in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_float64_training_stays_float64(ops, rng):
    cgru.set_floatx("float64")
    try:
        model = _regression(ops)
    finally:
        cgru.set_floatx("float32")
    x, y = _data(rng, 16)
    model.fit(x, y, epochs=1, verbose=0)
    assert all(w.dtype == np.float64 for w in model.get_weights())
    assert all(p.grad.dtype == np.float64 for p in model.weights)
    assert model.predict(x).dtype == np.float64


def test_dropout_and_embedding_models_train(ops, rng):
    ids = rng.integers(1, 30, (32, 7))
    lengths = rng.integers(1, 8, 32)
    for b, L in enumerate(lengths):
        ids[b, L:] = 0
    y = (ids[:, 0] % 2).astype(np.int64)
    model = Sequential(
        [
            Embedding(30, 6, mask_zero=True, seed=1),
            Bidirectional(GRU(5, return_sequences=True, dropout=0.2, recurrent_dropout=0.2, seed=2)),
            Dropout(0.3, seed=3),
            GRU(4, seed=4),
            Dense(2, activation="softmax", seed=5),
        ],
        device=ops.name,
    )
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h = model.fit(ids, y, epochs=3, batch_size=8, verbose=0)
    assert set(h.history) == {"loss", "accuracy"}
    assert all(np.isfinite(h.history["loss"]))


# ------------------------------------------------------------------------------ callbacks
class WeightRecorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epoch_end, self.batch_begin, self.batch_losses = [], [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.batch_begin.append(self.model.get_weights())

    def on_train_batch_end(self, batch, logs=None):
        self.batch_losses.append(logs["batch_loss"])

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end.append(self.model.get_weights())


def test_early_stopping_restores_best_weights(ops, rng):
    x, y = _data(rng, 32)
    model = _regression(ops)
    rec = WeightRecorder()
    # training loss falls, so with mode="max" the first epoch stays the best
    stop = callbacks.EarlyStopping(monitor="loss", mode="max", patience=2, restore_best_weights=True)
    h = model.fit(x, y, epochs=20, batch_size=8, callbacks=[rec, stop], verbose=0)
    assert len(h.history["loss"]) == 3 and stop.stopped_epoch == 2 and stop.best_epoch == 0
    for u, v in zip(model.get_weights(), rec.epoch_end[0]):
        np.testing.assert_array_equal(u, v)
    # min mode keeps the last (best) epoch and runs to the end
    stop = callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True, min_delta=0.0)
    h = model.fit(x, y, epochs=3, batch_size=8, callbacks=[stop], verbose=0)
    assert len(h.history["loss"]) == 3


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_terminate_on_nan_keeps_last_good_weights(ops, rng):
    x, y = _data(rng, 64)
    model = _regression(ops, optimizer=optimizers.SGD(learning_rate=1e4))
    rec = WeightRecorder()
    term = callbacks.TerminateOnNaN()
    h = model.fit(x, y, epochs=5, batch_size=4, callbacks=[rec, term], verbose=0, seed=0)
    assert term.terminated_batch is not None
    assert len(h.history["loss"]) == 1 and model.stop_training
    finite = [i for i, loss in enumerate(rec.batch_losses) if np.isfinite(loss)]
    assert not np.isfinite(rec.batch_losses[-1]) and finite
    restored = model.get_weights()
    assert all(np.isfinite(w).all() for w in restored)
    for u, v in zip(restored, rec.batch_begin[finite[-1]]):
        np.testing.assert_array_equal(u, v)


def test_terminate_on_nan_from_bad_data(ops, rng):
    x, y = _data(rng, 16)
    x[9, 2, 1] = np.nan  # the third batch of 4
    model = _regression(ops)
    rec = WeightRecorder()
    model.fit(
        x, y, epochs=2, batch_size=4, shuffle=False, callbacks=[rec, callbacks.TerminateOnNaN()], verbose=0
    )
    assert len(rec.batch_losses) == 3
    for u, v in zip(model.get_weights(), rec.batch_begin[1]):
        np.testing.assert_array_equal(u, v)


def test_model_checkpoint(ops, rng, tmp_path):
    x, y = _data(rng, 24)
    model = _regression(ops, metrics=["mae"])
    pattern = str(tmp_path / "m-{epoch:02d}-{val_loss:.3f}.npz")
    ckpt = callbacks.ModelCheckpoint(pattern, monitor="val_loss", save_best_only=True)
    h = model.fit(x, y, epochs=4, validation_split=0.25, callbacks=[ckpt], verbose=0)
    files = sorted(p.name for p in tmp_path.iterdir())
    val = h.history["val_loss"]
    improving = [i for i in range(4) if val[i] == min(val[: i + 1]) and (i == 0 or val[i] < min(val[:i]))]
    assert files == [f"m-{i + 1:02d}-{val[i]:.3f}.npz" for i in improving]
    loaded = cgru.load_model(tmp_path / files[-1])
    assert loaded.count_params() == model.count_params()
    every = callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch}.npz"), save_weights_only=True)
    model.fit(x, y, epochs=2, callbacks=[every], verbose=0)
    model.load_weights(tmp_path / "w-2.npz")
    with pytest.raises(ValueError, match="nope"):
        model.fit(
            x, y, epochs=1, callbacks=[callbacks.ModelCheckpoint(str(tmp_path / "{nope}.npz"))], verbose=0
        )


def test_history_plot(rng, tmp_path, monkeypatch):
    h = callbacks.History()
    h.history = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6]}
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        with pytest.raises(ImportError, match="matplotlib"):
            h.plot()
    else:
        ax = h.plot(path=tmp_path / "loss.png")
        assert [line.get_label() for line in ax.get_lines()] == ["loss", "val_loss"]
        assert (tmp_path / "loss.png").stat().st_size > 0
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        h.plot()


# ------------------------------------------------------------------------------- progress
class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_output(ops, rng, capsys, monkeypatch):
    x, y = _data(rng, 40)
    model = _regression(ops, metrics=["mae"])
    model.fit(x, y, epochs=3, batch_size=8, verbose=2, validation_split=0.2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, start=1):
        assert re.fullmatch(
            rf"Epoch {i}/3 - 4/4 - \d+s - \d+(us|ms|s)/step - loss: [\d.e+-]+ - mae: [\d.e+-]+"
            r" - val_loss: [\d.e+-]+ - val_mae: [\d.e+-]+",
            line,
        ), line
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, batch_size=8, verbose="auto")  # not a terminal here: like 2
    assert len(capsys.readouterr().out.splitlines()) == 2
    model.fit(x, y, epochs=2, batch_size=8, verbose=1)  # not a terminal: the finished bar only
    out = capsys.readouterr().out
    assert "\r" not in out
    assert out.splitlines()[0] == "Epoch 1/2"
    assert re.fullmatch(
        r"5/5 \[=+\] - \d+s \d+(us|ms|s)/step - loss: [\d.e+-]+ - mae: [\d.e+-]+", out.splitlines()[1]
    ), out
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    monkeypatch.setattr(cgru.progress, "REFRESH_INTERVAL", 0.0)
    model.fit(x, y, epochs=1, batch_size=8, verbose="auto")
    out = tty.getvalue()
    assert out.startswith("Epoch 1/1\n")
    frames = out.split("\r")[1:]
    assert len(frames) == 6  # one redraw per step, then the final line
    assert "ETA:" in frames[0] and frames[0].lstrip().startswith("1/5 [")
    assert frames[-1].startswith("5/5 [==============================] - ") and frames[-1].endswith("\n")


def test_sequence_classification_with_padding_stays_finite(ops, rng):
    """Zeroed (padded) softmax outputs and NaN padding targets must not leak into the loss."""
    ids = rng.integers(1, 20, (32, 6))
    lengths = rng.integers(1, 7, 32)
    for b, n in enumerate(lengths):
        ids[b, n:] = 0
    tags = ids % 3
    model = Sequential(
        [
            Embedding(20, 8, mask_zero=True, seed=1),
            Bidirectional(GRU(8, return_sequences=True, seed=2)),
            Dense(3, activation="softmax", seed=3),
        ],
        device=ops.name,
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h = model.fit(ids, tags, epochs=3, batch_size=8, verbose=0)
    assert np.all(np.isfinite(h.history["loss"])) and h.history["loss"][-1] < h.history["loss"][0]
    pred = model.predict(ids)
    valid = np.arange(6)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(pred[~valid], 0)
    acc = (pred.argmax(-1) == tags)[valid].mean()
    assert model.evaluate(ids, tags)[1] == pytest.approx(acc)
    regression = Sequential([GRU(3, return_sequences=True, seed=1), Dense(2, seed=2)], device=ops.name)
    regression.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = rng.standard_normal((4, 5, 2)), rng.standard_normal((4, 5, 2))
    y[1, 3:] = np.nan
    loss, mae = regression.evaluate(x, y, lengths=[5, 3, 5, 5])
    assert np.isfinite(loss) and np.isfinite(mae)
