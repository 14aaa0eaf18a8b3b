"""fit, evaluate and predict on generators, iterators, PyDatasets and iterables of batches: the
forms they take, Keras 3's epoch rules (tests/data/keras_data.json, written by
tests/make_keras_golden_data.py), the checks of each batch, and the prefetching workers."""

from __future__ import annotations

import json
import math
import pickle
import warnings

import numpy as np
import pytest
from paths import DATA

import cgru
from cgru import GRU, Dense, Sequential, optimizers
from cgru.utils import PyDataset

GOLDEN = json.loads((DATA / "keras_data.json").read_text())
BATCH = 4


# ----------------------------------------------------------------------------- helpers
def numbered(i):
    """Batch ``i``: zeros in, ``i`` as every target (as in the Keras recording)."""
    return np.zeros((BATCH, 1), np.float32), np.full((BATCH, 1), float(i), np.float32)


def generator(count, start=0):
    for i in range(start, start + count):
        yield numbered(i)


def endless():
    i = 0
    while True:
        yield numbered(i)
        i += 1


class Restarting:
    """An iterable of numbered batches that starts again for every pass (like a DataLoader)."""

    def __init__(self, count, start=0):
        self.count, self.start = count, start

    def __iter__(self):
        return generator(self.count, self.start)


def zero_model(ops_name="numpy"):
    """Outputs 0 and stays so (learning rate 0): a batch's loss i**2 names batch i."""
    layer = Dense(1, use_bias=False, kernel_initializer="zeros", input_shape=(1,))
    model = Sequential([layer], device=ops_name)
    model.compile(optimizer=optimizers.SGD(0.0), loss="mse")
    return model


class Recorder(cgru.callbacks.Callback):
    """The number of every trained batch per epoch, and the epoch boundaries, in ``log``."""

    def __init__(self, log=None):
        self.log = [] if log is None else log

    def on_epoch_begin(self, epoch, logs=None):
        self.log.append(f"epoch_begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.log.append(["train", int(round(math.sqrt(logs["batch_loss"])))])

    def on_epoch_end(self, epoch, logs=None):
        self.log.append(f"epoch_end {epoch}")

    def epochs(self):
        out = []
        for entry in self.log:
            if isinstance(entry, str) and entry.startswith("epoch_begin"):
                out.append([])
            elif isinstance(entry, list):
                out[-1].append(entry[1])
        return out


def fit_record(data, **kwargs):
    recorder = Recorder()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = zero_model().fit(data, callbacks=[recorder], verbose=0, **kwargs)
    return recorder.epochs(), history, [str(w.message) for w in caught]


def mean_square(ids):
    return float(np.mean(np.square(ids)))


# --------------------------------------------------------------------- Keras's epoch rules
@pytest.mark.parametrize("name", ["one_pass_per_epoch", "steps_continue_the_pass", "steps_past_the_end",
                                  "more_epochs_than_data", "endless_with_steps"])
def test_generator_epochs_follow_keras_until_the_data_ends(name):
    case = GOLDEN["generator_fit"][name]
    count, keras_epochs = case["batches"], case["train"]
    data = endless() if count is None else generator(count)
    ours, history, messages = fit_record(data, **case["fit"])
    # the epoch in which Keras drew the last batch: the data ends there
    last = len(keras_epochs) - 1 if count is None else next(
        i for i, batches in enumerate(keras_epochs) if count - 1 in batches)
    assert ours == keras_epochs[: last + 1]
    assert len(history.history["loss"]) == last + 1
    # Keras 3 goes on replaying the two batches it peeked at; cgru ends the training, saying why
    for later in keras_epochs[last + 1:]:
        assert later == [0, 1][: len(later)]
    if last + 1 < len(keras_epochs):
        assert any("ran out of data" in m and "training ends" in m for m in messages)
    if case["ran_out_warnings"] and last + 1 == len(keras_epochs):
        assert any("ran out of data" in m for m in messages)


def test_a_restarting_iterable_gives_a_whole_pass_every_epoch():
    ours, _, messages = fit_record(Restarting(3), epochs=3)
    assert ours == [[0, 1, 2]] * 3 and not messages
    # with steps_per_epoch, epochs continue the pass and a new pass starts once it ends (Keras)
    ours, _, messages = fit_record(Restarting(5), epochs=3, steps_per_epoch=3)
    assert ours == [[0, 1, 2], [3, 4], [0, 1, 2]]
    assert sum("ran out of data" in m for m in messages) == 1


@pytest.mark.parametrize("name", ["validation_generator", "validation_generator_steps"])
def test_validation_generators_are_drawn_once_and_kept(name):
    case = GOLDEN["generator_fit"][name]
    keras_val = case["val"]
    val = generator(case["validation_batches"], 100)
    kwargs = {} if case["validation_steps"] is None else {"validation_steps": case["validation_steps"]}
    _, history, _ = fit_record(Restarting(5), epochs=3, validation_data=val, **kwargs)
    first = keras_val[0]
    # every epoch validates on the batches Keras's first validation drew
    np.testing.assert_allclose(history.history["val_loss"], [mean_square(first)] * 3)
    if case["validation_steps"] == 2:  # Keras replays what it peeked: here that is the same
        assert keras_val == [first] * 3


def test_evaluate_on_a_generator_continues_where_the_last_call_stopped():
    case = GOLDEN["generator_evaluate"]
    model, gen = zero_model(), generator(case["batches"])
    first = model.evaluate(gen, steps=case["steps"])
    second = model.evaluate(gen, steps=case["steps"])
    assert first == pytest.approx(mean_square(case["calls"][0]))
    # Keras's prefetching loses batch 2 between the calls; nothing is lost here
    assert case["calls"][1] == [3, 4]
    assert second == pytest.approx(mean_square([2, 3]))


def test_predict_on_a_generator_follows_keras():
    case = GOLDEN["generator_predict"]
    model = Sequential([Dense(1, use_bias=False, kernel_initializer="ones", input_shape=(1,))])

    def inputs(count):
        for i in range(count):
            yield (np.full((BATCH, 1), float(i), np.float32),)

    np.testing.assert_array_equal(model.predict(inputs(case["batches"]))[:, 0], case["all"])
    np.testing.assert_array_equal(model.predict(inputs(case["batches"]), steps=2)[:, 0], case["steps_2"])
    # x alone, or with targets that predict ignores
    np.testing.assert_array_equal(model.predict(x for x, _ in generator(2))[:, 0], np.zeros(8))
    np.testing.assert_array_equal(model.predict(generator(2))[:, 0], np.zeros(8))


# ------------------------------------------------------------------------------ PyDataset
class Numbered(PyDataset):
    """``count`` numbered batches from ``start``; its hooks write into ``log``."""

    def __init__(self, count, log, start=0, name="data", **kwargs):
        super().__init__(**kwargs)
        self.count, self.log, self.start, self.name = count, log, start, name

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return numbered(self.start + index)

    def on_epoch_begin(self):
        self.log.append(f"{self.name}.on_epoch_begin")

    def on_epoch_end(self):
        self.log.append(f"{self.name}.on_epoch_end")


@pytest.mark.parametrize("name", ["fit", "fit_steps_continue_the_pass", "fit_steps_past_the_end",
                                  "fit_shuffled", "fit_threads"])
def test_py_dataset_epochs_and_hooks_follow_keras(name):
    case = GOLDEN["py_dataset"][name]
    log = []
    recorder = Recorder(log)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        zero_model().fit(Numbered(case["batches"], log, workers=case["workers"]), callbacks=[recorder],
                         verbose=0, seed=0, **case["fit"])
    assert [e for e in log if isinstance(e, str)] == case["calls"]
    if name == "fit_shuffled":  # the batch order is shuffled every pass (by another generator)
        assert all(sorted(batches) == list(range(case["batches"])) for batches in recorder.epochs())
        assert len({tuple(b) for b in recorder.epochs()}) > 1
    else:
        assert recorder.epochs() == case["train"]
    assert sum("ran out of data" in str(w.message) for w in caught) == case["ran_out_warnings"]


def test_py_dataset_validation_evaluate_and_predict_hooks_follow_keras():
    case = GOLDEN["py_dataset"]["fit_validation"]
    log = []
    history = zero_model().fit(Numbered(4, log), callbacks=[Recorder(log)], verbose=0,
                               validation_data=Numbered(3, log, start=100, name="validation"), **case["fit"])
    assert [e for e in log if isinstance(e, str)] == case["calls"]
    np.testing.assert_allclose(history.history["val_loss"], [mean_square(v) for v in case["val"]])
    for what in ("evaluate", "predict"):
        log = []
        getattr(zero_model(), what)(Numbered(GOLDEN["py_dataset"][what]["batches"], log))
        assert log == GOLDEN["py_dataset"][what]["calls"], what


class Shuffling(PyDataset):
    """Reorders its samples in on_epoch_end (in the parent process): batches of (x, y=x)."""

    def __init__(self, x, **kwargs):
        super().__init__(**kwargs)
        self.x = x
        self.order = np.arange(len(x))
        self.epochs_ended = 0

    def __len__(self):
        return math.ceil(len(self.x) / BATCH)

    def __getitem__(self, index):
        rows = self.order[index * BATCH:(index + 1) * BATCH]
        return self.x[rows], self.x[rows, -1]

    def on_epoch_end(self):
        self.epochs_ended += 1
        self.order = np.random.default_rng(self.epochs_ended).permutation(len(self.x))


def small_gru(ops_name="numpy"):
    model = Sequential([GRU(3, input_shape=(4, 2), seed=1), Dense(2, seed=2)], device=ops_name)
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    return model


@pytest.mark.parametrize("workers, processes", [(2, False), (3, True), (1, True)])
def test_prefetching_workers_give_the_same_batches_in_order(workers, processes):
    x = np.random.default_rng(0).standard_normal((18, 4, 2)).astype(np.float32)
    plain, pooled = small_gru(), small_gru()
    plain.fit(Shuffling(x), epochs=3, shuffle=False, verbose=0)
    dataset = Shuffling(x, workers=workers, use_multiprocessing=processes, max_queue_size=2)
    pooled.fit(dataset, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(plain.get_weights(), pooled.get_weights()):
        np.testing.assert_array_equal(a, b)  # the pool saw each on_epoch_end's new order
    assert dataset.epochs_ended == 4  # once before training, once per epoch (Keras)


class Failing(PyDataset):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def __len__(self):
        return 5

    def __getitem__(self, index):
        if index == 3:
            raise IndexError("no batch 3 here")
        return numbered(index)


@pytest.mark.parametrize("processes", [False, True])
def test_an_error_in_a_worker_reaches_fit(processes):
    model = zero_model()
    with pytest.raises(IndexError, match="no batch 3"):
        model.fit(Failing(workers=2, use_multiprocessing=processes), shuffle=False, verbose=0)
    assert model.optimizer.iterations == 3


def test_py_dataset_defaults_and_checks():
    class NoInit(PyDataset):  # forgets super().__init__(): Keras's defaults apply
        def __init__(self):
            pass

        def __len__(self):
            return 2

        def __getitem__(self, index):
            return numbered(index)

    data = NoInit()
    assert (data.workers, data.use_multiprocessing, data.max_queue_size) == (1, False, 10)
    assert [b[1][0, 0] for b in data] == [0.0, 1.0]
    assert zero_model().evaluate(data) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="workers"):
        Numbered(2, [], workers=-1)
    with pytest.raises(TypeError, match="use_multiprocessing"):
        Numbered(2, [], use_multiprocessing="yes")
    assert cgru.utils.Sequence is PyDataset
    pickle.loads(pickle.dumps(Numbered(2, [])))  # picklable, for worker processes


def test_an_endless_py_dataset_needs_steps():
    class Endless(PyDataset):
        @property
        def num_batches(self):
            return None

        def __getitem__(self, index):
            return numbered(index)

    with pytest.raises(ValueError, match="no end"):
        zero_model().fit(Endless(), verbose=0)
    ours, _, _ = fit_record(Endless(), epochs=2, steps_per_epoch=3, shuffle=False)
    assert ours == [[0, 1, 2], [3, 4, 5]]


# -------------------------------------------------------------------------- forms, errors
def test_generators_and_iterables_train_as_the_same_arrays_do(ops, rng):
    x = rng.standard_normal((10, 4, 2)).astype(np.float32)
    y = rng.standard_normal((10, 2)).astype(np.float32)
    lengths = np.array([4, 2, 3, 1, 4, 4, 2, 3, 1, 2])
    batches = [(x[i:i + 4], y[i:i + 4]) for i in range(0, 10, 4)]
    padded = [({"x": x[i:i + 4], "lengths": lengths[i:i + 4]}, y[i:i + 4]) for i in range(0, 10, 4)]
    runs = {
        "arrays": lambda m: m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0),
        "iterable": lambda m: m.fit(Restartable(batches), epochs=2, verbose=0),
        "list of batches": lambda m: m.fit(batches, epochs=2, verbose=0),
        "generator": lambda m: m.fit(iter(batches * 2), epochs=2, steps_per_epoch=3, verbose=0),
    }
    reference = None
    for name, run in runs.items():
        model = small_gru(ops.name)
        history = run(model)
        if reference is None:
            reference = model.get_weights(), history.history["loss"]
            continue
        for a, b in zip(model.get_weights(), reference[0]):
            np.testing.assert_array_equal(a, b, err_msg=name)
        np.testing.assert_allclose(history.history["loss"], reference[1], rtol=1e-6, err_msg=name)
    with_lengths, from_batches = small_gru(ops.name), small_gru(ops.name)
    with_lengths.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, lengths=lengths)
    from_batches.fit(Restartable(padded), verbose=0)
    for a, b in zip(with_lengths.get_weights(), from_batches.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert with_lengths.evaluate(x, y, lengths=lengths) == pytest.approx(
        with_lengths.evaluate({"x": x, "lengths": lengths}, y), rel=1e-7)
    assert with_lengths.evaluate(Restartable(padded)) == pytest.approx(
        with_lengths.evaluate(x, y, lengths=lengths, batch_size=4), rel=1e-6)
    np.testing.assert_array_equal(
        with_lengths.predict(Restartable([b[0] for b in padded])), with_lengths.predict(x, lengths=lengths))


class Restartable:
    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


def test_forms_that_are_not_data_say_what_is_accepted(rng):
    model = small_gru()
    x = rng.standard_normal((4, 4, 2)).astype(np.float32)
    y = rng.standard_normal((4, 2)).astype(np.float32)
    for bad in (object(), "data.csv", 3 + 0j):
        for call in (lambda d: model.fit(d, y, verbose=0), lambda d: model.evaluate(d, y), model.predict):
            with pytest.raises(TypeError, match=r"generator.*PyDataset.*DataLoader|numeric"):
                call(bad)
    # two arrays in a list or a tuple: Keras's way of giving two inputs; Sequential has one
    for bad in ((x, y), [x, x]):
        with pytest.raises(TypeError, match="one input"):
            model.fit(bad, verbose=0)
        with pytest.raises(TypeError, match="one input"):
            model.predict(bad)
    with pytest.raises(TypeError, match="dict input"):
        model.predict({"inputs": x})
    with pytest.raises(ValueError, match="twice"):
        model.predict({"x": x, "lengths": [1, 2, 3, 4]}, lengths=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="y= cannot be given"):
        model.fit(generator(2), y, verbose=0)
    with pytest.raises(ValueError, match="lengths= cannot be given"):
        model.evaluate(generator(2), lengths=[1])
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(generator(2), validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, validation_data=(x,), verbose=0)
    with pytest.raises(ValueError, match="no batches"):
        model.fit(iter([]), verbose=0)
    assert model.optimizer.iterations == 0


def bad_batches(rng):
    good = [(rng.standard_normal((4, 4, 2)).astype(np.float32),
             rng.standard_normal((4, 2)).astype(np.float32)) for _ in range(3)]
    x, y = good[0]
    return good, {
        "features": (ValueError, r"expects input of shape", (x[..., :1], y)),
        "samples": (ValueError, "same number of samples", (x, y[:3])),
        "targets": (ValueError, "do not match", (x, y[:, :1])),
        "non numeric": (TypeError, "numeric", (x.astype(str), y)),
        "lengths": (ValueError, r"0\.\.4", ({"x": x, "lengths": [5, 1, 1, 1]}, y)),
        "no targets": (ValueError, "needs targets", (x,)),
        "four elements": (ValueError, "4-element", (x, y, None, None)),
        "weights": (ValueError, "sample_weight", (x, y, np.ones(3))),
    }


def test_a_bad_batch_mid_epoch_names_its_index_and_leaves_the_last_whole_step(ops, rng):
    good, bad = bad_batches(rng)
    reference = small_gru(ops.name)
    for bx, by in good:
        reference.train_on_batch(bx, by)
    for name, (error, match, batch) in bad.items():
        model = small_gru(ops.name)
        with pytest.raises(error, match=match) as info:
            model.fit(iter([*good, batch, *good]), verbose=0)
        assert "batch 3 of epoch 1 from the" in str(info.value), name
        assert model.optimizer.iterations == 3, name
        for a, b in zip(model.get_weights(), reference.get_weights()):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_an_error_raised_by_the_data_itself_is_not_hidden():
    def broken():
        yield numbered(0)
        raise OSError("disk gone")

    model = zero_model()
    with pytest.raises(OSError, match="disk gone") as info:
        model.fit(broken(), verbose=0)
    notes = getattr(info.value, "__notes__", ["batch 1 of epoch 1"])  # notes: Python 3.11+
    assert any("batch 1 of epoch 1" in note for note in notes)


def test_stateful_models_check_every_batch_size(rng):
    model = Sequential([GRU(3, stateful=True, input_shape=(4, 2), seed=1), Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.standard_normal((4, 4, 2)).astype(np.float32)
    y = rng.standard_normal((4, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="batch 1 of epoch 1.*stateful"):
        model.fit(iter([(x, y), (x[:3], y[:3])]), verbose=0)
    assert model.optimizer.iterations == 1


def test_progress_of_a_source_of_unknown_length(capsys):
    zero_model().fit(generator(3), verbose=1)
    out = capsys.readouterr().out
    assert "3/3" in out and "Epoch 1/1" in out


# ------------------------------------------------------------------------ torch DataLoader
def test_a_torch_data_loader_trains_and_predicts_as_arrays_do(rng):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, Dataset, TensorDataset

    x = rng.standard_normal((10, 4, 2)).astype(np.float32)
    y = rng.standard_normal((10, 2)).astype(np.float32)
    lengths = rng.integers(1, 5, 10)
    arrays, loader = small_gru(), small_gru()
    arrays.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    data = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=4)
    history = loader.fit(data, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    for a, b in zip(arrays.get_weights(), loader.get_weights()):
        np.testing.assert_array_equal(a, b)
    inputs = DataLoader(TensorDataset(torch.from_numpy(x).requires_grad_()), batch_size=3)
    np.testing.assert_array_equal(loader.predict(inputs), loader.predict(x))

    class Padded(Dataset):  # lengths travel with each sample through torch's collation
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return {"x": torch.from_numpy(x[i]), "lengths": int(lengths[i])}, torch.from_numpy(y[i])

    assert loader.evaluate(DataLoader(Padded(), batch_size=4)) == pytest.approx(
        loader.evaluate(x, y, lengths=lengths, batch_size=4), rel=1e-6)


def test_a_keras_py_dataset_is_recognised_without_importing_keras():
    base = type("PyDataset", (), {"__module__": "keras.src.trainers.data_adapters.py_dataset_adapter",
                                  "workers": 1, "use_multiprocessing": False, "max_queue_size": 10,
                                  "num_batches": property(lambda self: len(self)),
                                  "on_epoch_begin": lambda self: None, "on_epoch_end": lambda self: None})

    class KerasStyle(base):
        def __len__(self):
            return 3

        def __getitem__(self, index):
            return numbered(index)

    ours, _, _ = fit_record(KerasStyle(), epochs=2, shuffle=False)
    assert ours == [[0, 1, 2]] * 2


def test_arrays_with_steps_per_epoch_follow_keras():
    x = np.zeros((10, 1), np.float32)
    y = np.arange(10, dtype=np.float32)[:, None]
    # without batch_size: batches of ceil(10 / steps) samples, one pass per epoch
    recorder = Recorder()
    zero_model().fit(x, y, steps_per_epoch=2, epochs=2, shuffle=False, verbose=0, callbacks=[recorder])
    assert [len(e) for e in recorder.epochs()] == [2, 2]
    # with batch_size: epochs of steps_per_epoch batches continue the pass
    model = zero_model()
    with pytest.warns(UserWarning, match="ran out of data"):  # epoch 2 ends with the pass
        history = model.fit(x, y, batch_size=2, steps_per_epoch=3, epochs=3, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 3 + 2 + 3
    assert history.history["loss"][1] == pytest.approx(np.mean(np.arange(6, 10) ** 2))


def test_validation_freq_validates_the_epochs_asked(rng):
    x = np.zeros((4, 1), np.float32)
    every = zero_model().fit(x, x, epochs=4, validation_data=(x, x), validation_freq=2, verbose=0)
    listed = zero_model().fit(x, x, epochs=4, validation_data=(x, x), validation_freq=[1, 4], verbose=0)
    assert len(every.history["val_loss"]) == 2 and len(listed.history["val_loss"]) == 2
    with pytest.raises(ValueError, match="validation_freq"):
        zero_model().fit(x, x, validation_freq=0, verbose=0)


def test_evaluate_and_predict_progress_on_a_source_of_unknown_length(capsys):
    model = zero_model()
    model.evaluate(generator(3), verbose=1)
    model.predict(x for x, _ in generator(2))
    model.predict((x for x, _ in generator(2)), verbose=1)
    out = capsys.readouterr().out
    assert "3/3" in out and "2/2" in out and "0/0" not in out
