"""Sample weights and class weights as the data brings them: what reaches each step as
``Batch.sample_weight``, against Keras 3's conversion of ``class_weight``
(tests/data/keras_data.json) and the meaning of ``validation_data=(x, y, sample_weight)``
(tests/data/keras_data_validation.npz), both written by tests/make_keras_golden_data.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cgru import GRU, Dense, Sequential, optimizers
from cgru.training import loop
from cgru.training.weights import check_class_weight, class_weight_to_sample_weight

DATA = Path(__file__).parent / "data"
GOLDEN = json.loads((DATA / "keras_data.json").read_text())


@pytest.fixture
def captured(monkeypatch):
    """The batches every training and evaluation step receives, in order, by kind."""
    seen = {"train": [], "evaluate": []}
    train_step, evaluate_step = loop.train_step, loop.evaluate_step

    def train(model, batch, *args):
        seen["train"].append(batch)
        return train_step(model, batch, *args)

    def evaluate(model, batch, *args):
        seen["evaluate"].append(batch)
        return evaluate_step(model, batch, *args)

    monkeypatch.setattr(loop, "train_step", train)
    monkeypatch.setattr(loop, "evaluate_step", evaluate)
    return seen


def model_for(ops_name="numpy", sequence=False, units=3, loss="mse"):
    layers = [GRU(4, input_shape=(5, 2), return_sequences=sequence, seed=1), Dense(units, seed=2)]
    model = Sequential(layers, device=ops_name)
    model.compile(optimizer=optimizers.SGD(0.05), loss=loss)
    return model


def data(rng, n=10, units=3, sequence=False):
    x = rng.standard_normal((n, 5, 2)).astype(np.float32)
    y = rng.standard_normal((n, 5, units) if sequence else (n, units)).astype(np.float32)
    return x, y


@pytest.mark.parametrize("case", GOLDEN["class_weight"], ids=lambda c: c["name"])
def test_class_weight_gives_keras_sample_weights(case):
    y = np.array(case["y"])
    weights = check_class_weight({int(k): v for k, v in case["class_weight"].items()})
    ours = class_weight_to_sample_weight(y, weights, tuple(case["out_shape"]), np.float32)
    for path in ("numpy_path", "tf_data_path"):  # Keras's NumPy path and its tf.data map
        if path in case:
            np.testing.assert_array_equal(ours, np.array(case[path], np.float32), err_msg=path)
    assert "numpy_path" in case or "tf_data_path" in case


def test_sparse_sequence_targets_weigh_each_step_by_its_class():
    """Integer targets (batch, time) of a sequence output: one class per step (Keras's
    arg-max over the time axis there would be no class at all)."""
    y = np.array([[0, 2, 1], [1, 1, 0]])
    ours = class_weight_to_sample_weight(y, {0: 0.5, 1: 2.0, 2: 3.0}, (None, 3, 4), np.float32)
    np.testing.assert_array_equal(ours, [[0.5, 3.0, 2.0], [2.0, 2.0, 0.5]])


def test_class_weight_and_sample_weight_reach_each_batch(captured, rng):
    x, y = data(rng)
    sw = rng.uniform(0.5, 2.0, 10).astype(np.float32)
    model_for().fit(x, y, sample_weight=sw, batch_size=4, shuffle=False, epochs=1, verbose=0)
    np.testing.assert_array_equal(np.concatenate([b.sample_weight for b in captured["train"]]), sw)
    # a generator of (x, y, sample_weight) batches carries the same batches
    captured["train"].clear()
    model_for().fit(iter([(x[i:i + 4], y[i:i + 4], sw[i:i + 4]) for i in range(0, 10, 4)]), verbose=0)
    np.testing.assert_array_equal(np.concatenate([b.sample_weight for b in captured["train"]]), sw)
    # shuffled arrays keep each weight with its sample
    captured["train"].clear()
    model_for().fit(x, y, sample_weight=np.arange(10.0), batch_size=4, epochs=1, verbose=0, seed=3)
    for batch in captured["train"]:
        rows = [int(np.flatnonzero((x == row).all(axis=(1, 2)))[0]) for row in batch.x]
        np.testing.assert_array_equal(batch.sample_weight, rows)
    assert all(b.sample_weight.dtype == np.float32 for b in captured["train"])


def test_class_weight_reaches_training_batches_only(captured, rng):
    x = rng.standard_normal((10, 5, 2)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    cw = {0: 0.5, 1: 2.0, 2: 4.0}
    expected = np.array([cw[c] for c in y], np.float32)
    model = model_for(loss="sparse_categorical_crossentropy")
    model.fit(x, y, class_weight=cw, batch_size=4, shuffle=False, validation_split=0.2, verbose=0)
    np.testing.assert_array_equal(np.concatenate([b.sample_weight for b in captured["train"]]), expected[:8])
    assert all(b.sample_weight is None for b in captured["evaluate"])  # never the validation data
    # per batch of a generator, or of a PyDataset (as Keras), or train_on_batch
    captured["train"].clear()
    model.fit(iter([(x[:4], y[:4]), (x[4:], y[4:])]), class_weight=cw, verbose=0)
    np.testing.assert_array_equal(np.concatenate([b.sample_weight for b in captured["train"]]), expected)
    with pytest.raises(ValueError, match="class_weight and sample_weight"):
        model.fit(iter([(x, y, np.ones(10))]), class_weight=cw, verbose=0)


def test_weights_per_time_step_for_sequence_outputs(captured, rng):
    x, y = data(rng, sequence=True)
    steps = rng.uniform(0.0, 1.0, (10, 5)).astype(np.float32)
    model = model_for(sequence=True)
    model.fit(x, y, sample_weight=steps, batch_size=5, shuffle=False, verbose=0)
    np.testing.assert_array_equal(np.concatenate([b.sample_weight for b in captured["train"]]), steps)
    model.evaluate(x, y, sample_weight=steps[:, :1])  # (samples, 1): one weight per sample
    with pytest.raises(ValueError, match=r"\(10, 5\)"):
        model.fit(x, y, sample_weight=steps[:, :4], verbose=0)
    ids = rng.integers(0, 3, (10, 5))
    classifier = model_for(sequence=True, loss="sparse_categorical_crossentropy")
    captured["train"].clear()
    classifier.fit(x, ids, class_weight={2: 3.0}, batch_size=10, shuffle=False, verbose=0)
    np.testing.assert_array_equal(captured["train"][0].sample_weight, np.where(ids == 2, 3.0, 1.0))


def test_bad_weights_are_refused_before_training(rng):
    x, y = data(rng)
    model = model_for()
    before = model.get_weights()
    bad = [
        (ValueError, "class_weight and sample_weight", dict(sample_weight=np.ones(10), class_weight={0: 2})),
        (ValueError, r"shape \(samples,\)", dict(sample_weight=np.ones(9))),
        (ValueError, r"shape \(samples,\)", dict(sample_weight=np.ones((10, 5)))),
        (ValueError, "finite", dict(sample_weight=np.full(10, np.nan))),
        (TypeError, "numeric", dict(sample_weight=np.array(["a"] * 10))),
        (TypeError, "dict", dict(class_weight=[1.0, 2.0])),
        (TypeError, "integer class ids", dict(class_weight={"a": 1.0})),
        (TypeError, "finite number", dict(class_weight={0: "heavy"})),
    ]
    for error, match, kwargs in bad:
        with pytest.raises(error, match=match):
            model.fit(x, y, verbose=0, **kwargs)
    with pytest.raises(ValueError, match="sample_weight"):
        model.evaluate(x, y, sample_weight=np.ones(3))
    assert model.optimizer.iterations == 0
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------- validation_data's third element
def keras_validation_case(ops_name):
    golden = np.load(DATA / "keras_data_validation.npz")
    model = Sequential([GRU(3, input_shape=(5, 2)), Dense(1)], device=ops_name)
    model.set_weights([golden[f"weight_{i}"] for i in range(5)])
    model.compile(optimizer=optimizers.SGD(0.0), loss="mse")
    return model, golden


def test_validation_data_third_element_is_sample_weight(ops, captured):
    model, golden = keras_validation_case(ops.name)
    xv, yv, swv = golden["x_val"], golden["y_val"], golden["sample_weight_val"]
    history = model.fit(golden["x"], golden["y"], batch_size=4, shuffle=False, verbose=0,
                        validation_data=(xv, yv, swv))
    validation = captured["evaluate"]
    np.testing.assert_array_equal(np.concatenate([b.sample_weight for b in validation]), swv)
    assert all(b.lengths is None for b in validation)  # no longer read as lengths
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(xv, yv, sample_weight=swv, batch_size=4), rel=1e-6)
    # Keras's own numbers: the validation loss is the weighted evaluation
    assert golden["val_loss"] == pytest.approx(golden["evaluate_weighted"], rel=1e-6)
    assert golden["val_loss"] != pytest.approx(golden["evaluate_unweighted"], rel=1e-3)


def test_validation_loss_with_sample_weights_equals_keras(ops):
    model, golden = keras_validation_case(ops.name)
    history = model.fit(golden["x"], golden["y"], batch_size=4, shuffle=False, verbose=0,
                        validation_data=(golden["x_val"], golden["y_val"], golden["sample_weight_val"]))
    assert history.history["val_loss"][0] == pytest.approx(float(golden["val_loss"]), rel=1e-5)


def test_validation_lengths_travel_with_x(captured, rng):
    x, y = data(rng)
    lengths = np.array([5, 2, 3, 1])
    model_for().fit(x, y, verbose=0, validation_data=({"x": x[:4], "lengths": lengths}, y[:4], np.ones(4)))
    (batch,) = captured["evaluate"]
    np.testing.assert_array_equal(batch.lengths, lengths)
    np.testing.assert_array_equal(batch.sample_weight, np.ones(4))


def test_keras_refuses_what_cgru_refuses_or_accepts():
    refusals = GOLDEN["refusals"]
    assert "class_weight" in refusals["class_weight_and_sample_weight"]
    # Keras refuses class_weight with a generator; cgru weighs each batch by its targets
    assert "not supported for Python generator" in refusals["class_weight_with_generator"]
