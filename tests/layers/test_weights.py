"""Changing weights: every public way of setting them is seen by every inference path, what is
set is checked, a call runs on one whole set of weights while other threads change them, and an
interrupted fit stops between two steps."""

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
from threads import run_concurrently

import cgru
from cgru import GRU, Dense, Sequential, optimizers
from cgru.callbacks import Callback


# --------------------------------------------------------------------------- references
def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def gru_reference(x, kernel, recurrent_kernel, bias, h0=None):
    """float64 GRU (reset_after=True, tanh/sigmoid, Keras layout): (outputs (B,T,H), h_T)."""
    x = np.asarray(x, np.float64)
    kernel, recurrent_kernel, bias = (np.asarray(a, np.float64) for a in (kernel, recurrent_kernel, bias))
    units = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], units)) if h0 is None else np.asarray(h0, np.float64)
    outputs = []
    for t in range(x.shape[1]):
        xp = x[:, t] @ kernel + bias[0]
        hp = h @ recurrent_kernel + bias[1]
        z = sigmoid(xp[:, :units] + hp[:, :units])
        r = sigmoid(xp[:, units : 2 * units] + hp[:, units : 2 * units])
        n = np.tanh(xp[:, 2 * units :] + r * hp[:, 2 * units :])
        h = z * h + (1 - z) * n
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def gru_dense_reference(x, arrays):
    """The float64 output of Sequential([GRU(...), Dense(...)]) with weights ``arrays``."""
    _, h = gru_reference(x, *arrays[:3])
    return h @ np.asarray(arrays[3], np.float64) + np.asarray(arrays[4], np.float64)


def random_like(weights, rng, scale):
    return [scale * rng.standard_normal(w.shape) for w in weights]


def set_through(model, arrays, how):
    """Set the model's weights to ``arrays`` through one public way."""
    if how == "model.set_weights":
        model.set_weights(arrays)
    elif how == "layer.set_weights":
        start = 0
        for layer in model.layers:
            count = len(layer.weights)
            layer.set_weights(arrays[start : start + count])
            start += count
    else:
        for param, array in zip(model.weights, arrays):
            if how == "Parameter.value":
                param.value = array
            else:
                param.assign(array)


WAYS = ["model.set_weights", "layer.set_weights", "Parameter.value", "Parameter.assign"]


# ------------------------------------------------------------- every way, every path
@pytest.mark.parametrize("how", WAYS)
def test_fortran_and_float64_weights_reach_every_inference_path(ops, rng, how):
    model = Sequential([GRU(5, input_shape=(None, 3), seed=1), Dense(2, seed=2)], device=ops.name)
    stream = Sequential([GRU(5, stateful=True, input_shape=(1, 3), seed=3)], device=ops.name)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    steps = rng.standard_normal((4, 1, 1, 3)).astype(np.float32)

    def check(arrays):
        expected = gru_dense_reference(x, arrays)
        for path, y in [
            ("model(x)", model(x)),
            ("model(x, lengths=...)", model(x, lengths=[4, 4])),
            ("predict", model.predict(x)),
        ]:
            np.testing.assert_allclose(ops.to_numpy(y), expected, rtol=1e-5, atol=1e-5, err_msg=path)
        stream.reset_states()
        for step in steps:
            y = stream(step)  # the stateful one-step streaming call
        _, h = gru_reference(steps[:, 0, 0][None], *arrays[:3])
        np.testing.assert_allclose(ops.to_numpy(y), h, rtol=1e-5, atol=1e-5, err_msg="streaming")

    for _ in range(2):  # both paths set up and bound to the initial weights
        model(x), stream(steps[0])
    model.compile(optimizer="sgd", loss="mse")
    # float64 Fortran-ordered arrays the way under test, float32 Fortran-ordered ones given as
    # new values, then the way under test again (into whatever the previous way left)
    for way, dtype in [(how, np.float64), ("Parameter.value", np.float32), (how, np.float64)]:
        arrays = [np.asfortranarray(a, dtype) for a in random_like(model.get_weights(), rng, 0.6)]
        set_through(model, arrays, way)
        set_through(stream, arrays[:3], way)
        check(arrays)
        model.fit(x, np.ones((2, 2)), verbose=0)  # a training step: seen everywhere too
        np.testing.assert_allclose(ops.to_numpy(model(x)), model.predict(x), rtol=1e-6, atol=1e-7)
    for p in model.weights + stream.weights:  # stored as the layers' dtype, C-contiguous
        assert p.value.dtype == np.float32 and p.value.flags.c_contiguous, p.name


def test_set_weights_copies_and_never_writes_into_arrays(ops, rng):
    """An array taken from a weight keeps its values; the caller's arrays are not kept."""
    model = Sequential([GRU(3, input_shape=(2, 2), seed=1)], device=ops.name)
    held = model.layers[0].kernel.value
    before = ops.to_numpy(held).copy()
    new = [w + 1.0 for w in model.get_weights()]
    model.set_weights(new)
    np.testing.assert_array_equal(ops.to_numpy(held), before)
    new[0][...] = 7.0  # the caller changing its array later changes nothing
    np.testing.assert_array_equal(model.get_weights()[0], before + 1.0)


def test_float32_overflow_is_refused_naming_the_array(ops):
    model = Sequential([GRU(3, input_shape=(2, 2), seed=1), Dense(1, seed=2)], device=ops.name)
    before = model.get_weights()
    bad = [w.astype(np.float64) for w in before]
    bad[3][1, 0] = 1e39  # the Dense kernel: finite in float64, inf in float32
    with pytest.raises(ValueError, match=r"weight 3 \(dense.*/kernel\) .*beyond the float32 range"):
        model.set_weights(bad)
    with pytest.raises(ValueError, match=r"kernel\) of layer .*beyond the float32 range"):
        model.layers[1].set_weights(bad[3:])
    param = model.layers[1].kernel
    for assign in (lambda: setattr(param, "value", bad[3]), lambda: param.assign(bad[3])):
        with pytest.raises(ValueError, match=rf"value for {param.name} has values beyond the float32"):
            assign()
    for a, b in zip(model.get_weights(), before):  # nothing changed
        np.testing.assert_array_equal(a, b)
    # what float32 can hold, and an inf given as inf, are taken as they are
    ok = [w.astype(np.float64) for w in before]
    ok[3][0, 0], ok[3][1, 0] = np.inf, 3.0e38
    model.set_weights(ok)
    np.testing.assert_array_equal(model.get_weights()[3], ok[3].astype(np.float32))
    wide = Sequential([Dense(1, input_shape=(2,), dtype="float64")], device=ops.name)
    wide.set_weights([np.array([[1e39], [2.0]]), np.zeros(1)])
    assert wide.get_weights()[0][0, 0] == 1e39


@pytest.mark.parametrize(
    "make",
    [
        lambda d: Sequential([GRU(4, input_shape=(3, 0))], device=d),
        lambda d: Sequential([Dense(2, input_shape=(0,))], device=d),
        lambda d: Sequential([cgru.Bidirectional(GRU(4), input_shape=(3, 0))], device=d),
        lambda d: Sequential([GRU(4)], device=d).build((None, 3, 0)),
        lambda d: Sequential([GRU(4)], device=d).predict(np.zeros((2, 3, 0), np.float32)),
        lambda d: GRU(4)(np.zeros((1, 3, 0), np.float32)),
        lambda d: Dense(4)(np.zeros((1, 0), np.float32)),
    ],
)
def test_zero_input_features_are_refused_at_build(ops, make):
    with pytest.raises(ValueError, match="at least one input feature"):
        make(ops.name)


# ------------------------------------------------------------------- threads and sets
@pytest.fixture
def often_switching():
    """Threads take turns with the GIL far more often than every 5 ms, so that calls and weight
    changes interleave at many more points."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(previous)


def two_weight_sets(model, rng):
    w1 = model.get_weights()
    w2 = [w + 0.7 * rng.standard_normal(w.shape).astype(w.dtype) for w in w1]
    return w1, w2


def assert_one_of(result, references, what):
    matches = [np.allclose(result, r, rtol=0, atol=1e-5) for r in references]
    assert any(matches), f"{what}: the result matches neither set of weights (a mix of both)"


def swap_while(model, sets, reader, count, change=None):
    """Run ``reader(i)`` on ``count`` threads while another thread sets the model's weights to
    the two sets in turn (``change(i)`` sets the i-th; default set_weights), until every reader
    has returned; returns the number of swaps."""
    stop = threading.Event()
    swaps = [0]
    errors = []
    change = change or (lambda i: model.set_weights(sets[i % 2]))

    def swapper():
        try:
            while not stop.is_set():
                change(swaps[0])
                swaps[0] += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        run_concurrently(reader, count)
    finally:
        stop.set()
        thread.join()
    if errors:
        raise errors[0]
    assert swaps[0] > 2
    return swaps[0]


@pytest.mark.parametrize(
    "path", ["predict", "predict in batches", "model(x)", "model(x, lengths)", "evaluate"]
)
def test_calls_see_one_whole_set_of_weights_while_another_thread_sets_them(ops, rng, often_switching, path):
    model = Sequential(
        [GRU(8, return_sequences=True, input_shape=(5, 4), seed=1), GRU(8, seed=2), Dense(3, seed=3)],
        device=ops.name,
    )
    model.compile(loss="mse")
    x = rng.standard_normal((6, 5, 4)).astype(np.float32)
    y = rng.standard_normal((6, 3)).astype(np.float32)
    run = {
        "predict": lambda: model.predict(x),
        "predict in batches": lambda: model.predict(x, batch_size=2),  # one set for all batches
        "model(x)": lambda: ops.to_numpy(model(x)),
        "model(x, lengths)": lambda: ops.to_numpy(model(x, lengths=[5] * 6)),
        "evaluate": lambda: np.array(model.evaluate(x, y, batch_size=2)),
    }[path]
    sets = two_weight_sets(model, rng)
    references = []
    for weights in sets:
        model.set_weights(weights)
        references.append(run())
    assert not np.allclose(references[0], references[1], atol=1e-2)
    calls = 150 if ops.name == "cpu" else 40

    def reader(i):
        for _ in range(calls):
            assert_one_of(run(), references, path)

    swap_while(model, sets, reader, count=3)


def test_predict_sees_one_whole_set_while_another_thread_loads_weight_files(
    ops, rng, often_switching, tmp_path
):
    model = Sequential([GRU(8, input_shape=(5, 4), seed=1), Dense(3, seed=2)], device=ops.name)
    x = rng.standard_normal((4, 5, 4)).astype(np.float32)
    sets = two_weight_sets(model, rng)
    paths, references = [], []
    for i, weights in enumerate(sets):
        model.set_weights(weights)
        paths.append(tmp_path / f"w{i}.npz")
        model.save_weights(paths[-1])
        references.append(model.predict(x))

    def reader(i):
        for _ in range(100):
            assert_one_of(model.predict(x, batch_size=2), references, "predict while loading weights")

    swap_while(model, sets, reader, count=2, change=lambda i: model.load_weights(paths[i % 2]))


def test_streaming_steps_see_one_whole_set_of_weights_while_another_thread_sets_them(
    ops, rng, often_switching
):
    """The stateful one-step call: every step's output is the step of one set of weights, in
    both layers, from the states the previous step left."""
    model = Sequential(
        [
            GRU(6, stateful=True, return_sequences=True, input_shape=(1, 3), seed=1),
            GRU(6, stateful=True, seed=2),
        ],
        device=ops.name,
    )
    sets = two_weight_sets(model, rng)
    first, second = model.layers
    steps = rng.standard_normal((1500 if ops.name == "cpu" else 500, 1, 1, 3)).astype(np.float32)
    records = []

    def stream(i):
        model(steps[0])
        for step in steps:
            states = (first.states[0], second.states[0])
            records.append((step, states, ops.to_numpy(model(step)).copy()))

    swap_while(model, sets, stream, count=1)
    for step, (s1, s2), y in records:
        expected = []
        for w in sets:
            mid, _ = gru_reference(step, *w[:3], h0=s1)
            expected.append(gru_reference(mid, *w[3:], h0=s2)[1])
        assert_one_of(y, expected, "a streaming step")


@cgru.register_layer(name="tests.TwoWeightScale")
class TwoWeightScale(cgru.Layer):
    """A plugin layer that reads its two weights at two moments of its forward."""

    def build(self, input_shape):
        self.a = self.add_weight("a", (input_shape[-1],), "ones")
        self.b = self.add_weight("b", (input_shape[-1],), "zeros")

    def forward(self, x, training=False):
        scaled = x * self.a.value
        time.sleep(0)  # let other threads run between the two reads
        return scaled + self.b.value, None


def test_plugin_layers_that_read_weights_as_they_run_see_one_set(ops, rng, often_switching):
    model = Sequential(
        [GRU(4, input_shape=(3, 2), seed=1), TwoWeightScale(), Dense(2, seed=2)], device=ops.name
    )
    x = rng.standard_normal((2, 3, 2)).astype(np.float32)
    sets = two_weight_sets(model, rng)
    references = []
    for weights in sets:
        model.set_weights(weights)
        references.append(model.predict(x))

    def reader(i):
        for _ in range(100):
            out = model.predict(x) if i % 2 else ops.to_numpy(model(x))
            assert_one_of(out, references, "a model with a plugin layer")

    swap_while(model, sets, reader, count=3)


def test_changing_weights_from_inside_a_call_that_reads_them_raises(ops, rng):
    class SetsWeights(cgru.Layer):
        def build(self, input_shape):
            self.w = self.add_weight("w", (1,), "ones")

        def forward(self, x, training=False):
            self.w.value = np.zeros(1)
            return x * self.w.value, None

    model = Sequential([Dense(2, input_shape=(3,)), SetsWeights()], device=ops.name)
    with pytest.raises(RuntimeError, match="between calls"):
        model.predict(np.ones((1, 3), np.float32))
    model.set_weights(model.get_weights())  # nothing left locked


def test_predict_during_fit_sees_the_weights_of_a_step_boundary(ops, rng, often_switching):
    model = Sequential([GRU(6, input_shape=(5, 3), seed=1), Dense(2, seed=2)], device=ops.name)
    model.compile(optimizer=optimizers.SGD(0.5, momentum=0.5), loss="mse")
    x = rng.standard_normal((48, 5, 3)).astype(np.float32)
    y = rng.standard_normal((48, 2)).astype(np.float32)
    probe = rng.standard_normal((3, 5, 3)).astype(np.float32)
    boundaries = [model.get_weights()]

    class Record(Callback):
        def on_train_batch_end(self, batch, logs=None):
            boundaries.append(self.model.get_weights())  # right after the step was published

    outputs = []
    done = threading.Event()

    def reader(i):
        while not done.is_set() and len(outputs) < 3000:
            outputs.append(model.predict(probe) if i else ops.to_numpy(model(probe)))

    def trainer(i):
        try:
            model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=[Record()])
        finally:
            done.set()

    run_concurrently(lambda i: trainer(i) if i == 2 else reader(i), 3)
    assert len(boundaries) == 37 and outputs
    reference_model = Sequential([GRU(6, input_shape=(5, 3)), Dense(2)], device=ops.name)
    references = []
    for weights in boundaries:
        reference_model.set_weights(weights)
        references.append(reference_model.predict(probe))
    for out in outputs:
        assert_one_of(out, references, "a prediction during fit")


def test_set_weights_during_a_training_step_wins_and_the_step_is_dropped(ops, rng, monkeypatch):
    model = Sequential([GRU(3, input_shape=(2, 2), seed=1), Dense(1, seed=2)], device=ops.name)
    model.compile(optimizer=optimizers.Adam(0.1), loss="mse")
    x, y = rng.standard_normal((4, 2, 2)), rng.standard_normal((4, 1))
    replacement = [w + 1.0 for w in model.get_weights()]
    original = model._forward

    def forward_meanwhile_replaced(*args):
        result = original(*args)
        model.set_weights(replacement)  # as another thread would, while the step computes
        return result

    monkeypatch.setattr(model, "_forward", forward_meanwhile_replaced)
    model.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), replacement):
        np.testing.assert_array_equal(a, b.astype(np.float32))
    assert model.optimizer.iterations == 0
    monkeypatch.undo()
    model.train_on_batch(x, y)
    assert model.optimizer.iterations == 1
    assert not np.array_equal(model.get_weights()[0], replacement[0].astype(np.float32))


# --------------------------------------------------------------------- interrupted fit
class Recorder(Callback):
    """The weights before training and after every step, and whether on_train_end ran."""

    def __init__(self):
        super().__init__()
        self.after_step = []
        self.ended = False

    def on_train_begin(self, logs=None):
        self.after_step.append(self.model.get_weights())

    def on_train_batch_end(self, batch, logs=None):
        self.after_step.append(self.model.get_weights())

    def on_train_end(self, logs=None):
        self.ended = True


def training_setup(ops, rng, optimizer):
    model = Sequential([GRU(4, input_shape=(3, 2), seed=1), Dense(2, seed=2)], device=ops.name)
    model.compile(optimizer=optimizer, loss="mse")
    x = rng.standard_normal((12, 3, 2)).astype(np.float32)
    y = rng.standard_normal((12, 2)).astype(np.float32)
    return model, x, y


def trajectory(ops, rng_seed, optimizer, epochs=2):
    """Weights after every step of an uninterrupted fit (index = steps done)."""
    model, x, y = training_setup(ops, np.random.default_rng(rng_seed), optimizer)
    recorder = Recorder()
    model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0, callbacks=[recorder])
    return recorder.after_step


def assert_weights_equal(model, expected):
    for a, b in zip(model.get_weights(), expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_keyboard_interrupt_inside_an_update_leaves_the_step_undone(ops):
    class InterruptedSGD(optimizers.SGD):
        interrupt, updated = True, 0

        def _update(self, *args):
            if self.iterations == 2 and self.interrupt:  # the third step
                self.updated += 1
                if self.updated == 2:  # its second weight
                    raise KeyboardInterrupt
            return super()._update(*args)

    reference = trajectory(ops, 7, optimizers.SGD(0.1, momentum=0.9))
    model, x, y = training_setup(ops, np.random.default_rng(7), InterruptedSGD(0.1, momentum=0.9))
    recorder = Recorder()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[recorder])
    assert recorder.ended and model.history is not None
    assert model.optimizer.iterations == 2
    assert_weights_equal(model, reference[2])
    # the optimizer's state is the one after step 2 too: the same third step gives the same weights
    model.optimizer.interrupt = False
    model.train_on_batch(x[8:12], y[8:12])
    assert_weights_equal(model, reference[3])


def test_keyboard_interrupt_during_the_publication_of_a_step_is_raised_after_it(ops, monkeypatch):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        reference = trajectory(ops, 8, optimizers.Adam(0.05))
        from cgru.layers.weights import publish as real_publish

        def publish_interrupted(updates, commit=None, expected=None):
            def interrupted_commit():
                signal.raise_signal(signal.SIGINT)  # Ctrl-C, in the middle of the publication
                commit()

            return real_publish(updates, interrupted_commit, expected)

        monkeypatch.setattr(optimizers, "publish", publish_interrupted)
        model, x, y = training_setup(ops, np.random.default_rng(8), optimizers.Adam(0.05))
        recorder = Recorder()
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[recorder])
        assert recorder.ended
        assert model.optimizer.iterations == 1
        assert_weights_equal(model, reference[1])
        monkeypatch.setattr(optimizers, "publish", real_publish)
        model.train_on_batch(x[4:8], y[4:8])  # the moments are step 1's: step 2 as uninterrupted
        assert_weights_equal(model, reference[2])
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sigint_at_any_moment_of_fit_leaves_a_step_boundary(ops):
    """Ctrl-C at random moments of a fit whose optimizer updates take most of each step (a large
    embedding table): the weights and the optimizer's state are always those after the steps
    the optimizer counted."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")

    def setup():
        model = Sequential(
            [cgru.Embedding(50000, 16, input_shape=(3,), seed=1), GRU(4, seed=2), Dense(2, seed=3)],
            device=ops.name,
        )
        model.compile(optimizer=optimizers.RMSprop(0.05, momentum=0.5), loss="mse")
        data = np.random.default_rng(9)
        return model, data.integers(0, 50000, (12, 3)), data.standard_normal((12, 2)).astype(np.float32)

    def fit(model, x, y, callbacks=()):
        model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=list(callbacks))

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        model, x, y = setup()
        recorder = Recorder()
        start = time.perf_counter()
        fit(model, x, y, [recorder])
        duration = time.perf_counter() - start
        main = threading.main_thread().ident
        for delay in np.random.default_rng(0).uniform(0, duration, 20):
            model, x, y = setup()
            timer = threading.Timer(delay, signal.pthread_kill, (main, signal.SIGINT))
            try:
                timer.start()
                fit(model, x, y)
                timer.join()
                time.sleep(1)  # a signal sent after fit ended interrupts this sleep
            except KeyboardInterrupt:
                timer.join()
            steps = model.optimizer.iterations
            assert_weights_equal(model, recorder.after_step[steps])
            if steps < len(recorder.after_step) - 1:  # the optimizer's state is that step's too
                batch = slice(steps % 3 * 4, steps % 3 * 4 + 4)
                model.train_on_batch(x[batch], y[batch])
                assert_weights_equal(model, recorder.after_step[steps + 1])
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_model_keeps_its_bound_weights_while_other_models_change(ops, rng):
    """Publications count per model: training or setting another model's weights leaves this
    model's lean call as it was set up (nothing re-read), and its own changes are seen."""
    model = Sequential([GRU(3, input_shape=(1, 2), seed=1)], device=ops.name)
    other = Sequential([GRU(3, input_shape=(1, 2), seed=2)], device=ops.name)
    other.compile(optimizer="sgd", loss="mse")
    x = rng.standard_normal((1, 1, 2)).astype(np.float32)
    before = ops.to_numpy(model(x))
    lean = model._fast
    other.set_weights([w + 1 for w in other.get_weights()])
    other.fit(x, np.ones((1, 3)), verbose=0)
    np.testing.assert_array_equal(ops.to_numpy(model(x)), before)
    assert model._fast is lean
    model.set_weights(other.get_weights())
    np.testing.assert_array_equal(ops.to_numpy(model(x)), ops.to_numpy(other(x)))
    assert model._fast is not lean


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_is_not_held_up_by_its_parents_other_threads(rng):
    """Fork while one thread is inside a call that reads weights as it runs and another waits
    to publish new weights: the child (which has neither thread) sets weights and predicts."""
    from cgru.layers import weights as weights_module

    armed, inside, release = threading.Event(), threading.Event(), threading.Event()

    @cgru.register_layer(name="tests.WaitsInside")
    class WaitsInside(TwoWeightScale):
        def forward(self, x, training=False):
            if armed.is_set() and not release.is_set():
                inside.set()
                release.wait(60)
            return super().forward(x, training)

    model = Sequential([GRU(3, input_shape=(2, 2), seed=1), WaitsInside()], device="numpy")
    x = rng.standard_normal((1, 2, 2)).astype(np.float32)
    new = [w + 1 for w in model.get_weights()]
    reader = threading.Thread(target=model.predict, args=(x,))
    writer = threading.Thread(target=model.set_weights, args=(new,))
    armed.set()
    reader.start()
    try:
        assert inside.wait(60)
        writer.start()
        deadline = time.monotonic() + 60
        while not weights_module.READERS._writer and time.monotonic() < deadline:
            time.sleep(0.001)
        assert weights_module.READERS._writer  # the writer waits for the reader, holding the lock
        pid = os.fork()
        if pid == 0:  # the child: no reader, no writer
            code = 1
            try:
                release.set()
                model.set_weights(new)
                model.predict(x)
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + 60
        while (status := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if status[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        assert os.waitstatus_to_exitcode(status[1]) == 0
    finally:
        release.set()
        reader.join()
        if writer.ident is not None:
            writer.join()
    np.testing.assert_array_equal(model.get_weights()[0], new[0].astype(np.float32))
