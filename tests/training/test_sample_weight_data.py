"""Sample weights and class weights as the data brings them: what reaches each step as
``Batch.sample_weight``, against Keras 3's conversion of ``class_weight``
(tests/data/keras_data.json) and the meaning of ``validation_data=(x, y, sample_weight)``
(tests/data/keras_data_validation.npz); and whole weighted trainings in every data form against
Keras 3's (tests/data/keras_data_weighted.json). All written by tests/make_keras_golden_data.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from paths import DATA

import cgru
from cgru import GRU, Dense, Sequential, optimizers
from cgru.training import loop
from cgru.training.weights import check_class_weight, class_weight_to_sample_weight

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


# ------------------------------------------- whole trainings, every data form, against Keras 3
WEIGHTED = json.loads((DATA / "keras_data_weighted.json").read_text())["cases"]
FORMS = ["arrays", "generator", "iterator_with_steps", "py_dataset", "iterable", "data_loader"]


def weighted_model(case, ops_name):
    sequence = case["output"] == "sequence"
    head = {"classes": (3, "softmax"), "binary": (1, "sigmoid"), "sequence": (2, "linear")}[case["output"]]
    model = Sequential(
        [GRU(4, return_sequences=sequence, input_shape=(5, 2)), Dense(head[0], activation=head[1])],
        device=ops_name,
    )
    model.set_weights([np.asarray(w, np.float32) for w in case["weights"]])

    def metric(spec):
        return spec if isinstance(spec, str) else getattr(cgru.metrics, spec[0])(**spec[1])

    model.compile(
        optimizer=optimizers.SGD(0.5),
        loss=case["loss"],
        metrics=[metric(m) for m in case["metrics"]],
        weighted_metrics=[metric(m) for m in case["weighted_metrics"]],
    )
    return model


def weighted_arrays(case):
    """``(x, y, sample_weight or None, class_weight or None, x_val, y_val, sample_weight_val)``."""
    y_dtype = np.int64 if case["output"] == "classes" else np.float32
    cw = case["class_weight"]
    return (
        np.asarray(case["x"], np.float32),
        np.asarray(case["y"], y_dtype),
        None if case["sample_weight"] is None else np.asarray(case["sample_weight"], np.float32),
        None if cw is None else {int(k): v for k, v in cw.items()},
        np.asarray(case["x_val"], np.float32),
        np.asarray(case["y_val"], y_dtype),
        np.asarray(case["sample_weight_val"], np.float32),
    )


class Batches(cgru.utils.PyDataset):
    """Arrays (None left out) in batches of ``size``, in order."""

    def __init__(self, arrays, size):
        super().__init__()
        self.arrays, self.size = [a for a in arrays if a is not None], size

    def __len__(self):
        return -(-len(self.arrays[0]) // self.size)

    def __getitem__(self, index):
        return tuple(a[index * self.size:(index + 1) * self.size] for a in self.arrays)


def fit_in_form(model, form, case, ops_name=None):
    """``fit`` as the Keras recording did (batches of 4, 2 epochs, in order), with the training
    and the validation data, sample weights in their batches, given in ``form``."""
    x, y, sw, cw, xv, yv, swv = weighted_arrays(case)
    size, epochs = case["fit"]["batch_size"], case["fit"]["epochs"]
    common = dict(epochs=epochs, class_weight=cw, verbose=0)
    train, held_out = Batches((x, y, sw), size), Batches((xv, yv, swv), size)
    if form == "arrays":
        return model.fit(x, y, batch_size=size, shuffle=False, sample_weight=sw,
                         validation_data=(xv, yv, swv), **common)
    if form == "generator":  # a generator is one pass: one epoch's batches after the other's
        batches = (train[i] for _ in range(epochs) for i in range(len(train)))
        return model.fit(batches, steps_per_epoch=len(train), validation_data=iter(held_out), **common)
    if form == "iterator_with_steps":  # validation batches drawn once, from a generator
        return model.fit(
            (train[i % len(train)] for i in range(epochs * len(train))), steps_per_epoch=len(train),
            validation_data=(held_out[i] for i in range(len(held_out))), **common,
        )
    if form == "py_dataset":
        return model.fit(train, shuffle=False, validation_data=held_out, **common)
    if form == "iterable":  # a list of batches: a new pass every epoch
        return model.fit(list(train), validation_data=list(held_out), **common)
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    def loader(arrays):
        tensors = [torch.from_numpy(a) for a in arrays if a is not None]
        return DataLoader(TensorDataset(*tensors), batch_size=size, shuffle=False)

    return model.fit(loader((x, y, sw)), validation_data=loader((xv, yv, swv)), **common)


def assert_keras_logs(logs, want, what):
    """Logs (values or per-epoch lists) equal Keras's, key for key."""
    assert set(logs) == set(want), (what, sorted(logs), sorted(want))
    for key, values in want.items():
        np.testing.assert_allclose(logs[key], values, rtol=1e-4, atol=2e-6, err_msg=f"{what}: {key}")


def assert_keras_weights(model, want, what):
    for k, (got, expected) in enumerate(zip(model.get_weights(), want)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-6, err_msg=f"{what}: weight {k}")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", list(WEIGHTED))
def test_weighted_training_in_every_data_form_equals_keras(ops, name, form):
    """Keras 3's fit on arrays with sample_weight= or class_weight= and validation_data=(x, y,
    sample_weight): the same losses, metrics and weighted metrics epoch by epoch, validation
    included, and the same weights after, whatever form the weighted batches come in."""
    case = WEIGHTED[name]
    model = weighted_model(case, ops.name)
    history = fit_in_form(model, form, case)
    assert_keras_logs(history.history, case["history"], f"{name} {form}")
    assert_keras_weights(model, case["weights_after"], f"{name} {form}")
    x, y, sw, *_ = weighted_arrays(case)
    if sw is not None:
        logs = model.evaluate(x, y, sample_weight=sw, batch_size=4, return_dict=True)
        assert_keras_logs(logs, case["evaluate"], f"{name} evaluate")
        # evaluate on a source of (x, y, sample_weight) batches gives the same
        logs = model.evaluate(Batches((x, y, sw), 3), return_dict=True)
        assert_keras_logs(logs, case["evaluate"], f"{name} evaluate(PyDataset)")


def test_keras_weighs_py_dataset_batches_as_arrays(ops):
    """Keras's own fit on a PyDataset of (x, y, sample_weight) batches: cgru's equals it."""
    case = WEIGHTED["classes_sample_weight"]
    want = case["py_dataset"]
    model = weighted_model(case, ops.name)
    history = fit_in_form(model, "py_dataset", case)
    assert_keras_logs(history.history, want["history"], "py_dataset")
    assert_keras_weights(model, want["weights_after"], "py_dataset")


@pytest.mark.parametrize("name", [n for n in WEIGHTED if "train_on_batch" in WEIGHTED[n]])
def test_train_on_batch_class_weight_equals_keras(ops, name):
    case = WEIGHTED[name]
    want = case["train_on_batch"]
    x, y, _, cw, *_ = weighted_arrays(case)
    model = weighted_model(case, ops.name)
    logs = model.train_on_batch(x[:want["rows"]], y[:want["rows"]], class_weight=cw, return_dict=True)
    assert_keras_logs(logs, want["logs"], f"{name} train_on_batch")
    assert_keras_weights(model, want["weights_after"], f"{name} train_on_batch")
    with pytest.raises(ValueError, match="class_weight and sample_weight"):
        model.train_on_batch(x[:4], y[:4], np.ones(4), cw)
    with pytest.raises(TypeError, match="dict"):
        model.train_on_batch(x[:4], y[:4], class_weight=[1.0, 2.0])


@pytest.mark.parametrize("name", list(WEIGHTED))
def test_generator_of_weighted_batches_trains_bitwise_as_arrays(ops, name):
    """A generator of (x, y, sample_weight) batches (or of (x, y) with class_weight=) gives
    exactly the training that the arrays with sample_weight= (class_weight=) give."""
    case = WEIGHTED[name]
    runs = []
    for form in ("arrays", "generator"):
        model = weighted_model(case, ops.name)
        history = fit_in_form(model, form, case)
        runs.append((history.history, model.get_weights()))
    (arrays_history, arrays_weights), (generator_history, generator_weights) = runs
    assert arrays_history == generator_history
    for a, b in zip(arrays_weights, generator_weights):
        np.testing.assert_array_equal(a, b)
