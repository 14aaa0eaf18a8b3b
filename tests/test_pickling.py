"""Models travel: pickle, cloudpickle, deepcopy and multiprocessing (spawn) round-trip a built,
compiled, trained model through its save format, optimizer state included, so that its
predictions and its next training step equal the original's bit for bit; and model files keep
the optimizer state (checked like the weights when read)."""

from __future__ import annotations

import copy
import io
import multiprocessing
import pickle
import pickletools
import zipfile

import numpy as np
import pytest

import cgru
from cgru import GRU, Bidirectional, Dense, Sequential, metrics, optimizers
from cgru.saving import write_model
from cgru.training import compile_config

T, F = 6, 3


def trained_model(ops, rng, optimizer=None):
    model = Sequential([
        Bidirectional(GRU(4, return_sequences=True, seed=1), input_shape=(T, F)),
        Dense(2, seed=2),
    ], device=ops.name)
    model.compile(optimizer=optimizer or optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    x, y, lengths = data(rng)
    model.fit(x, y, lengths=lengths, batch_size=4, epochs=2, verbose=0, seed=3)
    return model


def data(rng, n=10):
    x = rng.standard_normal((n, T, F)).astype(np.float32)
    y = rng.standard_normal((n, T, 2)).astype(np.float32)
    return x, y, rng.integers(1, T + 1, n)


def assert_same_model_and_next_step(original, copied, rng):
    """Same predictions, weights and optimizer state, and the same weights after one more step."""
    x, y, lengths = data(rng)
    np.testing.assert_array_equal(copied.predict(x, lengths=lengths), original.predict(x, lengths=lengths))
    assert copied.device == original.device
    assert copied.optimizer.iterations == original.optimizer.iterations
    original.train_on_batch(x, y, lengths=lengths)
    copied.train_on_batch(x, y, lengths=lengths)
    for a, b in zip(copied.get_weights(), original.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert copied.evaluate(x, y, lengths=lengths) == original.evaluate(x, y, lengths=lengths)


@pytest.mark.parametrize("how", ["pickle", "cloudpickle", "deepcopy"])
def test_round_trip_keeps_predictions_and_the_next_training_step(ops, rng, how):
    original = trained_model(ops, rng)
    if how == "pickle":
        copied = pickle.loads(pickle.dumps(original))
    elif how == "cloudpickle":
        cloudpickle = pytest.importorskip("cloudpickle")
        copied = cloudpickle.loads(cloudpickle.dumps(original))
    else:
        copied = copy.deepcopy(original)
    assert copied is not original and copied.weights[0] is not original.weights[0]
    assert_same_model_and_next_step(original, copied, rng)


def test_a_pickle_holds_the_save_format_and_nothing_live(ops, rng):
    model = trained_model(ops, rng)
    data_ = pickle.dumps(model)
    saved = io.BytesIO()
    model.save(saved)
    ops_used = list(pickletools.genops(data_))
    # one global (the function that rebuilds the model), its two arguments: the bytes of the
    # save format and the device; no other object, so nothing live (arrays, locks, handles)
    assert [op.name for op, _, _ in ops_used].count("STACK_GLOBAL") == 1
    strings = [arg for _, arg, _ in ops_used if isinstance(arg, str)]
    assert strings == ["cgru.pickling", "model_from_bytes", ops.name]
    assert [arg for _, arg, _ in ops_used if isinstance(arg, bytes)] == [saved.getvalue()]


def _continue_in_child(model, x, y, lengths):
    """In a spawned process: the received model's predictions and weights after one step."""
    before = model.predict(x, lengths=lengths)
    model.train_on_batch(x, y, lengths=lengths)
    return before, model.get_weights(), model.optimizer.iterations


def test_round_trip_through_a_spawned_process(rng):
    original = trained_model(cgru.get_ops("numpy" if not cgru.backend_info()["compiled"] else "cpu"), rng)
    x, y, lengths = data(rng)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        before, weights, iterations = pool.apply(_continue_in_child, (original, x, y, lengths))
    np.testing.assert_array_equal(before, original.predict(x, lengths=lengths))
    original.train_on_batch(x, y, lengths=lengths)
    assert iterations == original.optimizer.iterations
    for a, b in zip(weights, original.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_models_not_built_or_not_compiled_travel_too(ops):
    unbuilt = Sequential([GRU(3), Dense(1)], device=ops.name)
    unbuilt.compile(optimizer=optimizers.SGD(0.5), loss="mae")
    copied = pickle.loads(pickle.dumps(unbuilt))
    assert not copied.built and copied.compiled
    assert compile_config(copied) == compile_config(unbuilt)
    plain = Sequential([Dense(2, input_shape=(3,))])
    again = pickle.loads(pickle.dumps(plain))
    assert again.built and not again.compiled
    np.testing.assert_array_equal(again.get_weights()[0], plain.get_weights()[0])


# ------------------------------------------------------------------ optimizer state in files
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd-momentum"])
def test_load_model_continues_training_exactly(ops, rng, tmp_path, optimizer):
    chosen = {"adam": optimizers.Adam(0.01), "rmsprop": optimizers.RMSprop(0.01, momentum=0.5, centered=True),
              "sgd-momentum": optimizers.SGD(0.01, momentum=0.9, nesterov=True)}[optimizer]
    original = trained_model(ops, rng, chosen)
    original.save(tmp_path / "m.npz")
    loaded = cgru.load_model(tmp_path / "m.npz", device=ops.name)
    assert_same_model_and_next_step(original, loaded, rng)
    fresh = cgru.load_model(tmp_path / "m.npz", compile=False)
    assert not fresh.compiled


def test_a_model_that_never_stepped_saves_no_optimizer_state(ops, tmp_path):
    model = Sequential([Dense(2, input_shape=(3,))], device=ops.name)
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        assert [name for name in archive.files if name.startswith("optimizer_")] == []
    assert cgru.load_model(tmp_path / "m.npz").optimizer.iterations == 0


def test_saving_to_and_loading_from_file_objects(ops, rng):
    model = trained_model(ops, rng)
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    loaded = cgru.load_model(buffer, device=ops.name)
    assert not buffer.closed  # the caller's file stays open
    assert_same_model_and_next_step(model, loaded, rng)
    with pytest.raises(TypeError, match="binary file"):
        cgru.load_model(io.StringIO("not a model"))
    with pytest.raises(ValueError, match="not a cgru model file"):
        cgru.load_model(io.BytesIO(b"PK\x03\x04 truncated"))


def saved_with(model, tmp_path, state):
    """A model file of ``model`` whose optimizer state is ``state`` (as write_model takes it)."""
    path = tmp_path / "crafted.npz"
    write_model(path, model.get_config(), compile_config(model), model.get_weights(), state)
    return path


def test_crafted_optimizer_states_are_refused(ops, rng, tmp_path):
    model = trained_model(ops, rng)
    kernel = model.get_weights()[0]
    bad_states = [
        ("slot 0 .* is float32\\(1, 1\\), its weight", [(0, "m", np.zeros((1, 1), kernel.dtype))]),
        ("slot 0 names no weight", [(99, "m", kernel)]),
        ("slot 0 has a bad or repeated name", [(0, "_param", kernel)]),
        ("slot 1 has a bad or repeated name", [(0, "m", kernel), (0, "m", kernel)]),
        ("slot 0 .* is float64", [(0, "m", kernel.astype(np.float64))]),
    ]
    for why, slots in bad_states:
        path = saved_with(model, tmp_path, {"iterations": 3, "slots": slots})
        with pytest.raises(ValueError, match="is corrupted: optimizer " + why):
            cgru.load_model(path)
    with pytest.raises(ValueError, match="iteration count"):
        cgru.load_model(saved_with(model, tmp_path, {"iterations": -1, "slots": []}))
    # a slot for a weight the model does not train
    model.layers[1].trainable = False
    dense_kernel = len(model.weights) - 2
    state = {"iterations": 1, "slots": [(dense_kernel, "m", model.get_weights()[-2])]}
    path = saved_with(model, tmp_path, state)
    with pytest.raises(ValueError, match="not trainable"):
        cgru.load_model(path)


def test_a_slot_whose_data_changed_fails_its_digest(ops, rng, tmp_path):
    model = trained_model(ops, rng)
    path = tmp_path / "m.npz"
    model.save(path)
    raw = bytearray(path.read_bytes())
    with np.load(path) as archive:
        slot = archive["optimizer_0000"]
    marker = slot.tobytes()[:16]
    at = bytes(raw).find(marker)
    assert at > 0
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted"):
        cgru.load_model(path)


def test_optimizer_state_round_trips_and_is_checked(ops, rng):
    model = trained_model(ops, rng)
    params = model.trainable_weights
    state = model.optimizer.get_state(params)
    assert state["iterations"] == 6 and all(sorted(s) == ["m", "v"] for s in state["slots"])
    other = optimizers.Adam(0.01)
    other.set_state(params, state)
    again = other.get_state(params)
    for a, b in zip(again["slots"], state["slots"]):
        for name in a:
            np.testing.assert_array_equal(cgru.get_ops(ops.name).to_numpy(a[name]),
                                          cgru.get_ops(ops.name).to_numpy(b[name]))
            assert a[name] is not b[name]
    with pytest.raises(ValueError, match="slots for"):
        other.set_state(params, {"iterations": 1, "slots": []})
    with pytest.raises(ValueError, match="shape"):
        other.set_state(params[:1], {"iterations": 1, "slots": [{"m": np.zeros(2)}]})
    with pytest.raises(ValueError, match="iterations"):
        other.set_state(params, {"iterations": True, "slots": state["slots"]})


def test_one_model_always_makes_the_same_bytes(ops, rng, tmp_path):
    from cgru.pickling import model_bytes

    model = trained_model(ops, rng)
    model.save(tmp_path / "a.npz")
    model.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes() == model_bytes(model)
    # whenever they are written: no member carries the time of writing
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


# ------------------------------------------------------------ schedules and compiled metrics
def test_a_loaded_model_resumes_its_learning_rate_schedule(ops, rng, tmp_path):
    """The step count travels with the optimizer state, so a schedule continues at the saved
    step: the next step of the loaded model is the step of plain SGD at the schedule's rate for
    step 6 (a fresh count would run it at schedule(0) = 0.1)."""
    schedule = optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    original = trained_model(ops, rng, optimizers.SGD(schedule))  # 2 epochs of 3 batches
    original.save(tmp_path / "m.npz")
    loaded = cgru.load_model(tmp_path / "m.npz", device=ops.name)
    assert loaded.optimizer.iterations == original.optimizer.iterations == 6
    rate = 0.1 * 0.5 ** (6 / 2)  # Keras's ExponentialDecay at step 6
    assert loaded.optimizer.learning_rate == original.optimizer.learning_rate == np.float32(rate)

    x, y, lengths = data(rng)
    plain = Sequential.from_config(loaded.get_config(), device=ops.name)
    plain.compile(optimizer=optimizers.SGD(rate), loss="mse")
    plain.set_weights(loaded.get_weights())
    plain.train_on_batch(x, y, lengths=lengths)
    loaded.train_on_batch(x, y, lengths=lengths)
    for a, b in zip(loaded.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer.learning_rate == np.float32(0.1 * 0.5 ** (7 / 2))
    assert_same_model_and_next_step(pickle.loads(pickle.dumps(loaded)), loaded, rng)


@pytest.mark.parametrize("how", ["pickle", "cloudpickle"])
def test_pickling_keeps_compiled_metrics_the_schedule_and_the_optimizer_state(ops, rng, how):
    """Metric objects (with their settings), weighted metrics, a schedule and Adam's moments
    all travel: the copy logs the same metrics and takes the same next step, at the same rate."""
    dumps, loads = (pickle.dumps, pickle.loads) if how == "pickle" else (
        pytest.importorskip("cloudpickle").dumps, pytest.importorskip("cloudpickle").loads)
    model = Sequential([
        Bidirectional(GRU(4, return_sequences=True, seed=1), input_shape=(T, F)),
        Dense(2, activation="sigmoid", seed=2),
    ], device=ops.name)
    schedule = optimizers.schedules.InverseTimeDecay(0.02, decay_steps=3, decay_rate=0.7)
    model.compile(
        optimizer=optimizers.Adam(schedule),
        loss="binary_crossentropy",
        metrics=[metrics.AUC(num_thresholds=37, name="auc37"), metrics.Precision(thresholds=0.3)],
        weighted_metrics=[metrics.MeanAbsoluteError(name="err", dtype="float64")],
    )
    x, _, lengths = data(rng)
    y = (rng.random((len(x), T, 2)) > 0.5).astype(np.float32)
    w = rng.uniform(0.0, 2.0, (len(x), T))
    model.fit(x, y, lengths=lengths, sample_weight=w, batch_size=4, epochs=2, verbose=0, seed=3)

    copied = loads(dumps(model))
    assert copied.metrics_names == model.metrics_names == ["loss", "auc37", "precision", "err"]
    assert compile_config(copied) == compile_config(model)
    assert compile_config(copied)["optimizer"]["config"]["learning_rate"]["class_name"] == "InverseTimeDecay"
    assert copied.optimizer.iterations == model.optimizer.iterations == 6
    assert copied.optimizer.learning_rate == model.optimizer.learning_rate
    for name in ("m", "v"):
        for a, b in zip(copied.optimizer.get_state(copied.trainable_weights)["slots"],
                        model.optimizer.get_state(model.trainable_weights)["slots"]):
            np.testing.assert_array_equal(cgru.get_ops(ops.name).to_numpy(a[name]),
                                          cgru.get_ops(ops.name).to_numpy(b[name]))
    logs = model.train_on_batch(x, y, lengths=lengths, sample_weight=w, return_dict=True)
    copied_logs = copied.train_on_batch(x, y, lengths=lengths, sample_weight=w, return_dict=True)
    assert copied_logs == logs
    for a, b in zip(copied.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert copied.evaluate(x, y, lengths=lengths, sample_weight=w, return_dict=True) == model.evaluate(
        x, y, lengths=lengths, sample_weight=w, return_dict=True)
