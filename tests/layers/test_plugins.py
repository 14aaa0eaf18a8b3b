"""Plugin layers: a user's Layer subclass registered with @register_layer works in Sequential,
fit, summary and save/load_model like a built-in; registry name collisions."""

import numpy as np
import pytest

import cgru
from cgru import GRU, Dense, Layer, Sequential, register_layer
from cgru.layers import base as layers_base


@register_layer(name="tests.GlobalAveragePooling1D")
class GlobalAveragePooling1D(Layer):
    """Mean over the time axis; with lengths, over each sequence's valid steps only."""

    uses_lengths = True

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def forward(self, x, training=False, lengths=None):
        xp = self.xp
        if lengths is None:
            weights = xp.full(x.shape[:2], 1.0 / x.shape[1], dtype=x.dtype)
        else:
            valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
            weights = xp.asarray(valid / np.maximum(lengths, 1)[:, None], dtype=x.dtype)
        y = (x * weights[:, :, None]).sum(axis=1)
        return y, (weights if training else None)

    def backward(self, dy, cache):
        return cache[:, :, None] * dy[:, None, :]


@register_layer
class Scale(Layer):
    """Multiplies by a learned per-feature scale plus a fixed factor (a layer with weights)."""

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def build(self, input_shape):
        self.scale = self.add_weight("scale", (input_shape[-1],), initializer="ones")

    def forward(self, x, training=False):
        return x * self.scale.value * self.factor, (x if training else None)

    def backward(self, dy, cache):
        self.scale.grad = (dy * cache * self.factor).reshape(-1, cache.shape[-1]).sum(axis=0)
        return dy * self.scale.value * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def make_model(ops):
    return Sequential(
        [
            GRU(6, return_sequences=True, input_shape=(None, 3), seed=1),
            Scale(factor=2.0),
            GlobalAveragePooling1D(),
            Dense(1, seed=2),
        ],
        device=ops.name,
    )


def test_plugin_layers_fit_summary_save_load(ops, rng, tmp_path):
    model = make_model(ops)
    assert model.output_shape == (None, 1)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(Scale)" in text and "(GlobalAveragePooling1D)" in text
    expected = 3 * (3 * 6 + 36 + 12) + 6 + 7
    assert model.count_params() == expected and f"Total params: {expected:,}" in text
    x = rng.standard_normal((32, 5, 3)).astype(np.float32)
    y = x.sum(axis=(1, 2))[:, None] * 0.1
    lengths = rng.integers(1, 6, 32)
    model.compile(optimizer="adam", loss="mse")
    scale_before = model.layers[1].get_weights()[0].copy()
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0, lengths=lengths)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.array_equal(model.layers[1].get_weights()[0], scale_before)  # its weight trained
    path = tmp_path / "plugin.npz"
    model.save(path)
    loaded = cgru.load_model(path, device=ops.name)
    assert isinstance(loaded.layers[1], Scale) and loaded.layers[1].factor == 2.0
    assert isinstance(loaded.layers[2], GlobalAveragePooling1D)
    np.testing.assert_array_equal(loaded.predict(x, lengths=lengths), model.predict(x, lengths=lengths))


def test_plugin_pooling_respects_lengths(ops, rng):
    model = Sequential(
        [GRU(4, return_sequences=True, input_shape=(None, 2), seed=3), GlobalAveragePooling1D()],
        device=ops.name,
    )
    x = rng.standard_normal((3, 6, 2))
    lengths = np.array([6, 2, 4])
    out = model.predict(x, lengths=lengths)
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(out[b], model.predict(x[b : b + 1, :L])[0], rtol=1e-5, atol=1e-6)


def test_plugin_gradient_finite_differences(ops, rng):
    layer = Scale(factor=1.5, dtype="float64")
    layer._bind(ops)
    layer._maybe_build((None, 4, 3))
    layer.set_weights([rng.standard_normal(3)])
    x = rng.standard_normal((2, 4, 3))
    w = rng.standard_normal((2, 4, 3))
    _, cache = layer.forward(ops.asarray(x), training=True)
    dx = ops.to_numpy(layer.backward(ops.asarray(w), cache))
    np.testing.assert_allclose(dx, w * layer.get_weights()[0] * 1.5)
    np.testing.assert_allclose(ops.to_numpy(layer.scale.grad), (w * x * 1.5).sum(axis=(0, 1)))


def test_unregistered_layer_cannot_be_saved(ops, tmp_path):
    class Unregistered(Layer):
        def forward(self, x, training=False):
            return x, None

        def backward(self, dy, cache):
            return dy

    model = Sequential([GRU(2, input_shape=(3, 2)), Unregistered()], device=ops.name)
    assert model.predict(np.zeros((1, 3, 2))).shape == (1, 2)  # default compute_output_shape
    with pytest.raises(ValueError, match="register_layer"):
        model.save(tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


def test_non_json_config_is_refused(ops, tmp_path):
    @register_layer(name="tests.BadConfig")
    class BadConfig(Layer):
        def forward(self, x, training=False):
            return x, None

        def get_config(self):
            return {**super().get_config(), "thing": object()}

    model = Sequential([GRU(2, input_shape=(3, 2)), BadConfig()], device=ops.name)
    with pytest.raises(TypeError, match="JSON"):
        model.save(tmp_path / "x.npz")


def test_loading_needs_the_class_registered(ops, tmp_path):
    model = make_model(ops)
    model.save(tmp_path / "m.npz")
    registry = layers_base._REGISTRY
    saved = registry.pop("tests.GlobalAveragePooling1D")
    try:
        with pytest.raises(ValueError, match="tests.GlobalAveragePooling1D"):
            cgru.load_model(tmp_path / "m.npz")
    finally:
        registry["tests.GlobalAveragePooling1D"] = saved
    cgru.load_model(tmp_path / "m.npz")


def test_registry_name_collisions():
    with pytest.raises(ValueError, match="built-in"):

        @register_layer(name="GRU")
        class MyGRU(Layer):
            pass

    with pytest.raises(ValueError, match="another layer class"):

        @register_layer(name="Scale")
        class Scale(Layer):  # same class name, different class (module-level Scale exists)
            pass

    assert (
        register_layer(GlobalAveragePooling1D, name="tests.GlobalAveragePooling1D") is GlobalAveragePooling1D
    )

    def define():
        @register_layer(name="tests.Redefined")
        class Redefined(Layer):
            pass

        return Redefined

    first, second = define(), define()  # a re-run cell: same module and qualified name
    assert first is not second
    assert layers_base.get_layer_class("tests.Redefined") is second

    @register_layer(name="tests.Redefined", override=True)
    class Replacement(Layer):
        pass

    assert layers_base.get_layer_class("tests.Redefined") is Replacement
    with pytest.raises(TypeError):
        register_layer(int)
    with pytest.raises(TypeError):
        register_layer(Dense, name="")


def test_layer_base_rejects_unknown_arguments():
    with pytest.raises(TypeError, match="unexpected keyword"):
        Scale(factor=2.0, colour="red")
    with pytest.raises(TypeError, match="unexpected keyword"):
        GRU(3, unroll_everything=True)


# ------------------------------------------------------------ what a model asks of a layer
class Probe(Layer):
    """Passes its input through; records the input_grad each backward pass is given."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.asked = []

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        return x, None

    def backward(self, dy, cache):
        return dy

    def _backward(self, dy, cache, input_grad):
        self.asked.append(input_grad)
        return dy if input_grad else None


def test_a_layer_is_told_whether_its_input_gradient_is_needed(ops, rng):
    first, last = Probe(input_shape=(4, 3)), Probe()
    model = Sequential([first, GRU(2, return_sequences=True, seed=1), last], device=ops.name)
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 2)))
    assert first.asked == [False] and last.asked == [True]
    assert all("input_grad" not in vars(layer) for layer in model.layers)  # nothing written on layers


class Padded(Layer):
    """Passes its input through; says whether its padded steps are zero already."""

    uses_lengths = True

    def __init__(self, zeroes=False, **kwargs):
        super().__init__(**kwargs)
        self.zeroes_padded_steps = zeroes

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False, lengths=None):
        return x, None


@pytest.mark.parametrize("zeroes", [False, True])
def test_the_model_zeroes_padded_steps_unless_the_last_layer_did(ops, zeroes):
    model = Sequential([Padded(zeroes, input_shape=(3, 2))], device=ops.name)
    x = np.ones((2, 3, 2), dtype=np.float32)
    out = model.predict(x, lengths=[3, 1])
    np.testing.assert_array_equal(out[1, 1:], x[1, 1:] if zeroes else 0.0)
    np.testing.assert_array_equal(out[0], x[0])


class Pair(Probe):
    multiple_outputs = True

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape), tuple(input_shape)]

    def forward(self, x, training=False):
        return [x, x], None


def test_a_layer_with_several_outputs_must_be_last():
    model = Sequential([Pair(input_shape=(2,))])
    with pytest.raises(ValueError, match="several outputs"):
        model.add(Dense(1))
    np.testing.assert_array_equal(model.predict(np.ones((1, 2)))[1], np.ones((1, 2)))


class Strict(Probe):
    """A first layer that refuses a data set holding negative values."""

    def check_inputs(self, x, lengths):
        if (x < 0).any():
            raise ValueError("Strict takes non-negative input")


def test_the_first_layer_checks_the_whole_data_set_before_training(ops, rng):
    model = Sequential([Strict(input_shape=(3,)), Dense(1, seed=1)], device=ops.name)
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    x = np.abs(rng.standard_normal((9, 3)))
    x[8, 0] = -1.0  # in the last batch
    with pytest.raises(ValueError, match="non-negative"):
        model.fit(x, np.ones((9, 1)), batch_size=4, verbose=0)
    assert model.optimizer.iterations == 0
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


class Counter(Probe):
    """Keeps a state for 4 batch rows (a stateful plugin layer)."""

    stateful = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.resets = 0

    @property
    def state_batch_size(self):
        return 4

    def reset_states(self):
        self.resets += 1


def test_stateful_plugin_layers_are_reset_and_checked(ops):
    counter = Counter(input_shape=(2,))
    model = Sequential([counter, Dense(1)], device=ops.name)
    model.reset_states()
    assert counter.resets == 1 and model.layers[0].stateful_layers() == [counter]
    with pytest.raises(ValueError, match="holds states for 4"):
        model.predict(np.ones((3, 2)))
    assert model.predict(np.ones((4, 2))).shape == (4, 1)
