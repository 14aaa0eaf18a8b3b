"""Converters: PyTorch nn.GRU (module and state dict) and Keras models to cgru, and back.

The PyTorch tests need torch (skipped without it); the golden-vector tests read the committed
torch outputs in tests/data/ and run without torch; the Keras tests use small stand-ins that
mimic the Keras layer API (class names, get_config(), get_weights()) and, when Keras is
installed, real Keras models.
"""

from __future__ import annotations

import copy
import re
import sys

import numpy as np
import pytest
from golden import GOLDEN_CASES, load_case

import cgru
from cgru import (
    GRU,
    Bidirectional,
    Dense,
    Sequential,
    from_keras,
    from_torch,
    from_torch_state_dict,
    load_model,
    to_torch_state_dict,
)

TORCH_PARAM = re.compile(r"(weight|bias)_(ih|hh)_l\d+(_reverse)?")


def torch_params(case: dict) -> dict:
    """The nn.GRU state dict stored in a golden file (its other entries are inputs/outputs)."""
    return {k: v for k, v in case.items() if TORCH_PARAM.fullmatch(k)}


def random_state_dict(rng, input_size=3, hidden=4, num_layers=2, bidirectional=True, bias=True):
    d = 2 if bidirectional else 1
    out = {}
    for k in range(num_layers):
        for sfx in ["", "_reverse"][:d]:
            cols = input_size if k == 0 else d * hidden
            out[f"weight_ih_l{k}{sfx}"] = rng.uniform(-0.5, 0.5, (3 * hidden, cols))
            out[f"weight_hh_l{k}{sfx}"] = rng.uniform(-0.5, 0.5, (3 * hidden, hidden))
            if bias:
                out[f"bias_ih_l{k}{sfx}"] = rng.uniform(-0.5, 0.5, 3 * hidden)
                out[f"bias_hh_l{k}{sfx}"] = rng.uniform(-0.5, 0.5, 3 * hidden)
    return out


# ------------------------------------------------------------------- golden vectors (no torch)
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_state_dict_matches_torch_outputs(name, tmp_path):
    case = load_case(name)
    num_layers, bidirectional, hidden, ragged = (int(v) for v in case["meta"])
    state = torch_params(case)
    model = from_torch_state_dict(state)
    assert len(model.layers) == num_layers
    assert all(isinstance(layer, Bidirectional if bidirectional else GRU) for layer in model.layers)
    assert model.dtype == "float64"
    lengths = case["lengths"] if ragged else None
    y = model.predict(case["x"], lengths=lengths)
    np.testing.assert_allclose(y, case["y"], rtol=1e-10, atol=1e-12)
    if not ragged:
        np.testing.assert_allclose(model.predict(case["x"], lengths=case["lengths"]), case["y"],
                                   rtol=1e-10, atol=1e-12)

    # float32 on request, within float32 rounding
    y32 = from_torch_state_dict(state, dtype="float32").predict(case["x"].astype(np.float32), lengths=lengths)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, case["y"], rtol=1e-4, atol=1e-5)

    # the inverse gives back the very arrays, names and order
    back = to_torch_state_dict(model)
    assert list(back) == [k for k in case if k in state]
    for k, v in state.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k

    # save/load reproduces the predictions bit for bit
    path = tmp_path / "converted.npz"
    model.save(path)
    loaded = load_model(path)
    assert np.array_equal(loaded.predict(case["x"], lengths=lengths), y)


def test_golden_structure_arguments_and_prefix():
    case = load_case("stacked_bi_ragged")
    state = torch_params(case)
    hidden = int(case["meta"][2])
    features = case["x"].shape[-1]
    model = from_torch_state_dict(state, input_size=features, hidden_size=hidden, num_layers=2,
                                  bidirectional=True, bias=True)
    y = model.predict(case["x"], lengths=case["lengths"])
    np.testing.assert_allclose(y, case["y"], rtol=1e-10, atol=1e-12)
    # entries of a larger model, picked out by prefix; other entries are ignored
    big = {f"encoder.gru.{k}": v for k, v in state.items()}
    big["decoder.weight"] = np.zeros((2, 2))
    y2 = from_torch_state_dict(big, prefix="encoder.gru.").predict(case["x"], lengths=case["lengths"])
    assert np.array_equal(y2, y)


def test_state_dict_accepts_lists_and_mixed_dtypes():
    rng = np.random.default_rng(0)
    state = random_state_dict(rng, num_layers=1, bidirectional=False)
    as_lists = {k: v.tolist() for k, v in state.items()}
    state["weight_ih_l0"] = state["weight_ih_l0"].astype(np.float32)
    x = rng.normal(size=(2, 3, 3))
    a = from_torch_state_dict(as_lists)
    b = from_torch_state_dict(state)  # mixed dtypes: floatx()
    assert a.dtype == "float64" and b.dtype == cgru.floatx()
    np.testing.assert_allclose(b.predict(x), a.predict(x), rtol=1e-4, atol=1e-5)


def test_state_dict_from_an_npz_file(tmp_path):
    case = load_case("bi_ragged")
    np.savez(tmp_path / "gru.npz", **torch_params(case))
    with np.load(tmp_path / "gru.npz") as f:
        model = from_torch_state_dict(f)
    np.testing.assert_allclose(model.predict(case["x"], lengths=case["lengths"]), case["y"],
                               rtol=1e-10, atol=1e-12)


def test_state_dict_without_bias_builds_bias_free_layers():
    rng = np.random.default_rng(1)
    state = random_state_dict(rng, bias=False)
    model = from_torch_state_dict(state)
    grus = [sub for layer in model.layers for sub in layer._sublayers()]
    assert grus and all(not g.use_bias and g.return_sequences for g in grus)
    assert to_torch_state_dict(model).keys() == state.keys()


# ------------------------------------------------------------------------- bad state dicts
@pytest.fixture
def state():
    return random_state_dict(np.random.default_rng(2), input_size=3, hidden=4, num_layers=2)


def test_missing_key_is_named(state):
    del state["bias_hh_l1_reverse"]
    with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l1_reverse'\]"):
        from_torch_state_dict(state)


def test_wrong_shape_names_key_and_expected_shape(state):
    state["weight_hh_l0"] = state["weight_hh_l0"][:, :3]
    with pytest.raises(ValueError, match=r"'weight_hh_l0'.*\(12, 4\).*got \(12, 3\)"):
        from_torch_state_dict(state)
    with pytest.raises(ValueError, match=r"'weight_ih_l1'.*\(12, 8\)"):
        from_torch_state_dict(random_state_dict(np.random.default_rng(3)) | {
            "weight_ih_l1": np.zeros((12, 4))})


def test_inconsistent_hidden_sizes(state):
    state["weight_hh_l1"] = np.zeros((15, 5))
    state["weight_ih_l1"] = np.zeros((15, 8))
    with pytest.raises(ValueError, match=r"'weight_ih_l1'\] must have shape \(12, 8\)"):
        from_torch_state_dict(state)
    with pytest.raises(ValueError, match=r"'weight_ih_l0'\] must have shape \(15, 3\)"):
        from_torch_state_dict(random_state_dict(np.random.default_rng(4)), hidden_size=5)


def test_projection_weights_are_rejected(state):
    state["weight_hr_l0"] = np.zeros((2, 4))
    with pytest.raises(ValueError, match="weight_hr_l0.*proj"):
        from_torch_state_dict(state)


def test_lstm_weights_get_a_hint():
    rng = np.random.default_rng(5)
    lstm = {"weight_ih_l0": rng.normal(size=(16, 3)), "weight_hh_l0": rng.normal(size=(16, 4)),
            "bias_ih_l0": np.zeros(16), "bias_hh_l0": np.zeros(16)}
    with pytest.raises(ValueError, match="LSTM"):
        from_torch_state_dict(lstm, hidden_size=4)


def test_unknown_and_unexpected_keys(state):
    with pytest.raises(ValueError, match=r"unknown keys.*'running_mean'"):
        from_torch_state_dict(state | {"running_mean": np.zeros(3)})
    with pytest.raises(ValueError, match="prefix="):
        from_torch_state_dict({f"gru.{k}": v for k, v in state.items()})
    with pytest.raises(ValueError, match=r"unexpected keys \[.*'weight_hh_l0_reverse'"):
        from_torch_state_dict(state, bidirectional=False)
    with pytest.raises(ValueError, match=r"missing keys \['weight_ih_l2'"):
        from_torch_state_dict(state, num_layers=3)
    with pytest.raises(ValueError, match="no entries"):
        from_torch_state_dict({})
    with pytest.raises(ValueError, match="no entries with the prefix"):
        from_torch_state_dict(state, prefix="rnn.")


def bounded_refusal(call, match):
    """Run ``call`` under tracemalloc; assert a ValueError matching ``match``; (message, peak)."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match) as info:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(info.value), peak


def test_layer_indices_and_num_layers_are_bounded_by_the_keys(state):
    one = {"weight_ih_l10000000": np.zeros((12, 3))}
    message, peak = bounded_refusal(lambda: from_torch_state_dict(one),
                                    r"'weight_ih_l10000000'\] names layer 10000000, but 1 key\(s\) describe "
                                    "at most 1 layer")
    assert len(message) < 300 and peak < 2**20
    message, peak = bounded_refusal(lambda: from_torch_state_dict(state, num_layers=10**7),
                                    "num_layers=10000000 needs at least 20000000 keys.*has 16")
    assert len(message) < 300 and peak < 2**20
    gap = {k: v for k, v in state.items() if "_l1" not in k} | {"weight_ih_l5": np.zeros((12, 8))}
    bounded_refusal(lambda: from_torch_state_dict(gap), "names layer 5, but 9 key")
    # an index too long to be one is an unknown key, not a huge integer
    bounded_refusal(lambda: from_torch_state_dict({"weight_ih_l" + "9" * 5000: np.zeros(3)}), "unknown keys")


def test_error_messages_list_a_few_keys(state):
    junk = {f"junk{i:04d}": np.zeros(1) for i in range(1000)}
    message, _ = bounded_refusal(lambda: from_torch_state_dict(state | junk),
                                 r"unknown keys in the state dict: \['junk0000', .*'junk0004'\] and 995 "
                                 "more;")
    assert len(message) < 600
    deep = random_state_dict(np.random.default_rng(6), num_layers=4)
    del deep["weight_ih_l1"], deep["weight_hh_l1"], deep["bias_ih_l1"], deep["bias_hh_l1"]
    del deep["weight_ih_l1_reverse"], deep["weight_hh_l1_reverse"]
    with pytest.raises(ValueError, match=r"missing keys \['weight_ih_l1', .*\] and 1 more$"):
        from_torch_state_dict(deep)


def test_state_dict_conversion_runs_no_initializer(state, monkeypatch):
    expected = from_torch_state_dict(state)

    def refuse(*args, **kwargs):
        raise AssertionError("an initializer ran for weights that are given")

    monkeypatch.setattr(cgru.initializers.Initializer, "__call__", refuse)
    model = from_torch_state_dict(state)
    for u, v in zip(model.get_weights(), expected.get_weights()):
        np.testing.assert_array_equal(u, v)
    x = np.random.default_rng(7).normal(size=(2, 5, 3))
    np.testing.assert_array_equal(model.predict(x), expected.predict(x))


def test_bad_arguments(state):
    with pytest.raises(TypeError, match="mapping"):
        from_torch_state_dict([np.zeros(3)])
    with pytest.raises(TypeError, match="numeric"):
        from_torch_state_dict(state | {"bias_ih_l0": np.array(["a"] * 12)})
    with pytest.raises(ValueError, match="hidden_size"):
        from_torch_state_dict(state, hidden_size=0)
    with pytest.raises(TypeError, match="bidirectional"):
        from_torch_state_dict(state, bidirectional="yes")
    with pytest.raises(ValueError, match="float32"):
        from_torch_state_dict(state, dtype="int32")


# ----------------------------------------------------------------------- to_torch_state_dict
def test_to_torch_state_dict_rejects_what_torch_cannot_compute():
    def built(*layers):
        model = Sequential(list(layers))
        model.build((None, None, 3))
        return model

    with pytest.raises(ValueError, match="Dense"):
        to_torch_state_dict(built(GRU(4, return_sequences=True), Dense(2)))
    with pytest.raises(ValueError, match="reset_after=False"):
        to_torch_state_dict(built(GRU(4, reset_after=False)))
    with pytest.raises(ValueError, match="merge_mode='sum'"):
        to_torch_state_dict(built(Bidirectional(GRU(4), merge_mode="sum")))
    with pytest.raises(ValueError, match="units=5"):
        to_torch_state_dict(built(GRU(4, return_sequences=True), GRU(5)))
    with pytest.raises(ValueError, match="bidirectional in every layer"):
        to_torch_state_dict(built(GRU(4, return_sequences=True), Bidirectional(GRU(4))))
    with pytest.raises(ValueError, match="go_backwards"):
        to_torch_state_dict(built(GRU(4, go_backwards=True)))
    with pytest.raises(ValueError, match="relu"):
        to_torch_state_dict(built(GRU(4, activation="relu")))
    with pytest.raises(ValueError, match="not built"):
        to_torch_state_dict(Sequential([GRU(4)]))


# ------------------------------------------------------------------------------ real PyTorch
def _torch():
    return pytest.importorskip("torch")


def _torch_outputs(torch, module, x, lengths, batch_first):
    """The module's full and packed output sequences, batch-major NumPy."""
    xt = torch.from_numpy(x)
    inp = xt if batch_first else xt.transpose(0, 1)
    with torch.no_grad():
        full, _ = module(inp)
        packed = torch.nn.utils.rnn.pack_padded_sequence(inp, lengths, batch_first=batch_first,
                                                         enforce_sorted=False)
        out, _ = module(packed)
        padded, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    full = full if batch_first else full.transpose(0, 1)
    return full.numpy(), padded.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_from_torch_matches_module(num_layers, bidirectional, batch_first, bias, dtype):
    torch = _torch()
    torch.manual_seed(num_layers * 16 + bidirectional * 8 + batch_first * 4 + bias * 2)
    tdtype = getattr(torch, dtype)
    module = torch.nn.GRU(3, 5, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
                          bias=bias, dropout=0.25 if num_layers > 1 else 0.0).to(tdtype).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.7, 0.7)
    rng = np.random.default_rng(num_layers)
    x = rng.normal(size=(4, 7, 3)).astype(dtype)
    lengths = [7, 3, 1, 5]
    full, packed = _torch_outputs(torch, module, x, lengths, batch_first)

    model = from_torch(module)
    assert model.dtype == dtype
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
    y = model.predict(x)
    assert y.dtype == np.dtype(dtype) and y.shape == full.shape
    np.testing.assert_allclose(y, full, **tol)
    np.testing.assert_allclose(model.predict(x, lengths=lengths), packed, **tol)

    # the state dict route gives the same model, and the inverse gives back the state dict
    state = module.state_dict()
    via_state = from_torch_state_dict(state)
    assert np.array_equal(via_state.predict(x), y)
    back = to_torch_state_dict(model)
    assert list(back) == list(state)
    for k, v in state.items():
        assert np.array_equal(back[k], v.numpy()), k
    clone = torch.nn.GRU(3, 5, num_layers=num_layers, bidirectional=bidirectional, batch_first=True,
                         bias=bias).to(tdtype)
    clone.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()})
    np.testing.assert_array_equal(_torch_outputs(torch, clone, x, lengths, True)[0], full)


def test_to_torch_state_dict_of_a_trained_cgru_model():
    torch = _torch()
    rng = np.random.default_rng(7)
    model = Sequential([Bidirectional(GRU(6, return_sequences=True), input_shape=(None, 2)),
                        Bidirectional(GRU(6, return_sequences=True))])
    model.compile("adam", "mse")
    x = rng.normal(size=(8, 5, 2)).astype(np.float32)
    model.fit(x, rng.normal(size=(8, 5, 12)), epochs=2, verbose=0)
    module = torch.nn.GRU(2, 6, num_layers=2, bidirectional=True, batch_first=True)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(model).items()})
    lengths = [5, 2, 4, 1, 3, 5, 5, 2]
    full, packed = _torch_outputs(torch, module, x, lengths, True)
    np.testing.assert_allclose(model.predict(x), full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, lengths=lengths), packed, rtol=1e-5, atol=1e-6)


def test_from_torch_rejects_other_modules():
    torch = _torch()
    with pytest.raises(TypeError, match=r"torch\.nn\.GRU.*LSTM has another cell"):
        from_torch(torch.nn.LSTM(3, 4))
    with pytest.raises(TypeError, match=r"torch\.nn\.GRU.*RNN"):
        from_torch(torch.nn.RNN(3, 4))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(3, 4)

    with pytest.raises(TypeError, match=r"from_torch\(model\.gru\).*prefix="):
        from_torch(Net())
    with pytest.raises(TypeError, match="torch.nn.GRU"):
        from_torch(np.zeros(3))
    projected = torch.nn.GRU(3, 4)
    projected.proj_size = 2  # nn.GRU has none; a module that claims one is refused
    with pytest.raises(ValueError, match="proj_size=2"):
        from_torch(projected)
    # the state dict of the wrapper converts with its prefix
    net = Net()
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    with torch.no_grad():
        want = net.gru(torch.from_numpy(x).transpose(0, 1))[0].transpose(0, 1).numpy()
    got = from_torch_state_dict(net.state_dict(), prefix="gru.").predict(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_from_torch_save_load_bit_for_bit(tmp_path):
    torch = _torch()
    torch.manual_seed(3)
    module = torch.nn.GRU(4, 6, num_layers=2, bidirectional=True, batch_first=True)
    model = from_torch(module)
    x = np.random.default_rng(3).normal(size=(5, 9, 4)).astype(np.float32)
    lengths = [9, 1, 4, 0, 7]
    path = tmp_path / "from_torch.npz"
    model.save(path)
    loaded = load_model(path)
    for kw in ({}, {"lengths": lengths}):
        assert np.array_equal(loaded.predict(x, **kw), model.predict(x, **kw))


# ------------------------------------------------------------------ Keras (duck-typed stand-ins)
def policy(name="float32"):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def initializer(class_name, **config):
    return {"module": "keras.initializers", "class_name": class_name, "config": config,
            "registered_name": None}


def gru_config(name, units, **overrides):
    """A GRU config as Keras 3 writes it."""
    config = {
        "name": name, "trainable": True, "dtype": policy(), "return_sequences": False, "return_state": False,
        "go_backwards": False, "stateful": False, "unroll": False, "zero_output_for_mask": False,
        "units": units, "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
        "kernel_initializer": initializer("GlorotUniform", seed=None),
        "recurrent_initializer": initializer("Orthogonal", seed=None, gain=1.0),
        "bias_initializer": initializer("Zeros"), "kernel_regularizer": None, "recurrent_regularizer": None,
        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
        "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0, "recurrent_dropout": 0.0,
        "reset_after": True, "seed": None,
    }
    config.update(overrides)
    return config


def dense_config(name, units, activation="linear", **overrides):
    return {"name": name, "trainable": True, "dtype": policy(), "units": units, "activation": activation,
            "use_bias": True, "kernel_initializer": initializer("GlorotUniform", seed=None),
            "bias_initializer": initializer("Zeros"), "kernel_regularizer": None, "bias_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None, "quantization_config": None, **overrides}


def embedding_config(name, input_dim, output_dim, mask_zero=False):
    return {"name": name, "trainable": True, "dtype": policy(), "input_dim": input_dim,
            "output_dim": output_dim,
            "embeddings_initializer": initializer("RandomUniform", seed=None, minval=-0.05, maxval=0.05),
            "embeddings_regularizer": None, "activity_regularizer": None, "embeddings_constraint": None,
            "mask_zero": mask_zero, "quantization_config": None}


def dropout_config(name, rate):
    return {"name": name, "trainable": True, "dtype": policy(), "rate": rate, "seed": None,
            "noise_shape": None}


class FakeLayer:
    """Mimics a Keras layer: get_config() and get_weights() (copies, as Keras returns)."""

    def __init__(self, config, weights=()):
        self._config = config
        self._weights = [np.asarray(w) for w in weights]

    def get_config(self):
        return copy.deepcopy(self._config)

    def get_weights(self):
        return [w.copy() for w in self._weights]


def fake_class(name, module="fake_keras.layers"):
    return type(name, (FakeLayer,), {"__module__": module})


FakeGRU, FakeDense, FakeEmbedding, FakeDropout, FakeInputLayer, FakeLSTM = (
    fake_class(n) for n in ("GRU", "Dense", "Embedding", "Dropout", "InputLayer", "LSTM"))


class FakeBidirectional(FakeLayer):
    def __init__(self, name, forward, backward, merge_mode="concat", attributes=True):
        config = {"name": name, "trainable": True, "dtype": policy(), "merge_mode": merge_mode,
                  "layer": {"module": "keras.layers", "class_name": type(forward).__name__,
                            "config": forward.get_config(), "registered_name": None},
                  "backward_layer": {"module": "keras.layers", "class_name": type(backward).__name__,
                                     "config": backward.get_config(), "registered_name": None}}
        super().__init__(config, forward.get_weights() + backward.get_weights())
        if attributes:
            self.forward_layer, self.backward_layer = forward, backward


FakeBidirectional.__name__ = "Bidirectional"


class FakeModel:
    def __init__(self, layers, name="sequential", input_shape=None):
        self.layers = layers
        self.name = name
        if input_shape is not None:
            self.input_shape = input_shape


FakeModel.__name__ = "Sequential"


def fake_gru(rng, name, input_dim, units, **overrides):
    config = gru_config(name, units, **overrides)
    h3 = 3 * units
    weights = [rng.uniform(-0.6, 0.6, (input_dim, h3)), rng.uniform(-0.6, 0.6, (units, h3))]
    if config["use_bias"]:
        weights.append(rng.uniform(-0.3, 0.3, (2, h3) if config["reset_after"] else (h3,)))
    return FakeGRU(config, [w.astype(np.float32) for w in weights])


def fake_dense(rng, name, input_dim, units, activation="linear"):
    return FakeDense(dense_config(name, units, activation),
                     [rng.uniform(-0.5, 0.5, (input_dim, units)).astype(np.float32),
                      rng.uniform(-0.2, 0.2, units).astype(np.float32)])


# An independent NumPy statement of Keras 3's layers, to check the converted models against.
def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


ACTIVATIONS = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "linear": lambda v: v, None: lambda v: v,
               "sigmoid": _sigmoid, "hard_sigmoid": lambda v: np.clip(v + 3, 0, 6) / 6,
               "softmax": lambda v: np.exp(v) / np.exp(v).sum(-1, keepdims=True)}


def ref_gru(x, layer_config, weights):
    units = layer_config["units"]
    reset_after = layer_config["reset_after"]
    kernel, rec = weights[0].astype(np.float64), weights[1].astype(np.float64)
    if layer_config["use_bias"]:
        bias = weights[2].astype(np.float64)
        b_in, b_rec = (bias[0], bias[1]) if reset_after else (bias, np.zeros(3 * units))
    else:
        b_in = b_rec = np.zeros(3 * units)
    act, ract = ACTIVATIONS[layer_config["activation"]], ACTIVATIONS[layer_config["recurrent_activation"]]
    h = np.zeros((x.shape[0], units))
    outputs = []
    steps = range(x.shape[1])
    for t in (reversed(steps) if layer_config["go_backwards"] else steps):
        xz, xr, xh = np.split(x[:, t] @ kernel + b_in, 3, axis=-1)
        if reset_after:
            hz, hr, hh = np.split(h @ rec + b_rec, 3, axis=-1)
            z, r = ract(xz + hz), ract(xr + hr)
            n = act(xh + r * hh)
        else:
            hz, hr = np.split(h @ rec[:, :2 * units], 2, axis=-1)
            z, r = ract(xz + hz), ract(xr + hr)
            n = act(xh + (r * h) @ rec[:, 2 * units:])
        h = z * h + (1 - z) * n
        outputs.append(h)
    if not layer_config["return_sequences"]:
        return h
    return np.stack(outputs, axis=1) if outputs else np.zeros((x.shape[0], 0, units))


def ref_predict(layers, x):
    for layer in layers:
        kind, config, weights = type(layer).__name__, layer.get_config(), layer.get_weights()
        if kind == "GRU":
            x = ref_gru(x, config, weights)
        elif kind == "Bidirectional":
            fwd, bwd = layer.forward_layer, layer.backward_layer
            of = ref_gru(x, fwd.get_config(), fwd.get_weights())
            ob = ref_gru(x, bwd.get_config(), bwd.get_weights())
            if bwd.get_config()["return_sequences"]:
                ob = ob[:, ::-1]
            mode = config["merge_mode"]
            if mode == "concat":
                x = np.concatenate([of, ob], axis=-1)
            else:
                x = {"sum": of + ob, "mul": of * ob, "ave": (of + ob) / 2}[mode]
        elif kind == "Dense":
            x = ACTIVATIONS[config["activation"]](x @ weights[0] + weights[1])
        elif kind == "Embedding":
            x = weights[0][x]
    return x


def test_fake_keras_recurrent_stack():
    rng = np.random.default_rng(10)
    layers = [
        FakeInputLayer({"name": "input_layer", "batch_shape": [None, None, 3], "dtype": "float32",
                        "sparse": False, "ragged": False}),
        FakeBidirectional("bidirectional", fake_gru(rng, "forward_gru", 3, 4, return_sequences=True),
                          fake_gru(rng, "backward_gru", 3, 4, return_sequences=True, go_backwards=True)),
        fake_gru(rng, "gru_1", 8, 5, return_sequences=True, reset_after=False,
                 recurrent_activation="hard_sigmoid"),
        fake_gru(rng, "gru_2", 5, 3, go_backwards=True, activation="relu", use_bias=False,
                 dropout=0.1, recurrent_dropout=0.2, seed=5),
        FakeDropout(dropout_config("dropout", 0.3)),
        fake_dense(rng, "dense", 3, 2, activation="softmax"),
    ]
    keras_model = FakeModel(layers, name="my_model")
    model = from_keras(keras_model)
    assert model.name == "my_model"
    assert [layer.name for layer in model.layers] == ["bidirectional", "gru_1", "gru_2", "dropout", "dense"]
    assert model.input_shape == (None, None, 3)
    bi, g1, g2, drop, dense = model.layers
    assert bi.merge_mode == "concat" and bi.backward_layer.go_backwards and bi.return_sequences
    assert (g1.units, g1.reset_after, g1.recurrent_activation, g1.return_sequences) == (
        5, False, "hard_sigmoid", True)
    assert (g2.activation, g2.use_bias, g2.go_backwards, g2.dropout, g2.recurrent_dropout, g2.seed) == (
        "relu", False, True, 0.1, 0.2, 5)
    assert drop.rate == 0.3 and dense.activation == "softmax" and dense.units == 2
    assert model.count_params() == sum(w.size for layer in layers for w in layer.get_weights())
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), ref_predict(layers, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_fake_keras_bidirectional_merge_modes_from_config_alone(merge_mode):
    rng = np.random.default_rng(11)
    forward = fake_gru(rng, "forward_gru", 2, 3)
    backward = fake_gru(rng, "backward_gru", 2, 3, go_backwards=True)
    with_attrs = FakeBidirectional("bi", forward, backward, merge_mode)
    config_only = FakeBidirectional("bi", forward, backward, merge_mode, attributes=False)
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    want = ref_predict([with_attrs], x)
    for layer in (with_attrs, config_only):
        model = from_keras(FakeModel([layer], input_shape=(None, 5, 2)))
        assert model.layers[0].merge_mode == merge_mode
        np.testing.assert_allclose(model.predict(x), want, rtol=1e-5, atol=1e-6)


def test_fake_keras_embedding_mask_zero_gives_lengths():
    rng = np.random.default_rng(12)
    emb = FakeEmbedding(embedding_config("embedding", 10, 4, mask_zero=True),
                        [rng.uniform(-1, 1, (10, 4)).astype(np.float32)])
    bi = FakeBidirectional("bidirectional", fake_gru(rng, "forward_gru", 4, 3, return_sequences=True),
                           fake_gru(rng, "backward_gru", 4, 3, return_sequences=True, go_backwards=True))
    last = fake_gru(rng, "gru", 6, 2)
    layers = [emb, bi, last]
    model = from_keras(FakeModel(layers))  # no input shape: taken from the layers
    assert model.layers[0].mask_zero and model.input_shape == (None, None)
    x = rng.integers(1, 10, size=(4, 7))
    lengths = [7, 3, 1, 5]
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    got = model.predict(x)
    for i, n in enumerate(lengths):  # Keras masking: each sequence as if it ended at its length
        np.testing.assert_allclose(got[i], ref_predict(layers, x[i:i + 1, :n])[0], rtol=1e-5, atol=1e-6)


def test_fake_keras_float64_and_dtype_override():
    rng = np.random.default_rng(13)
    gru = fake_gru(rng, "gru", 3, 4, dtype=policy("float64"))
    model = from_keras(FakeModel([gru], input_shape=(None, 5, 3)))
    assert model.dtype == "float64"
    x = rng.normal(size=(2, 5, 3))
    np.testing.assert_allclose(model.predict(x), ref_predict([gru], x), rtol=1e-12, atol=1e-13)
    assert from_keras(FakeModel([gru]), dtype="float32").dtype == "float32"
    mixed = fake_gru(rng, "gru", 3, 4, dtype=policy("mixed_float16"))
    assert from_keras(FakeModel([mixed])).dtype == "float32"


def test_fake_keras_save_load_bit_for_bit(tmp_path):
    rng = np.random.default_rng(14)
    bi = FakeBidirectional("bidirectional", fake_gru(rng, "forward_gru", 3, 4, return_sequences=True),
                           fake_gru(rng, "backward_gru", 3, 4, return_sequences=True, go_backwards=True))
    layers = [bi, fake_gru(rng, "gru_1", 8, 4), fake_dense(rng, "dense", 4, 1)]
    model = from_keras(FakeModel(layers, input_shape=(None, 6, 3)))
    x = rng.normal(size=(3, 6, 3)).astype(np.float32)
    model.save(tmp_path / "k.npz")
    assert np.array_equal(load_model(tmp_path / "k.npz").predict(x), model.predict(x))


def test_fake_keras_errors():
    rng = np.random.default_rng(15)
    with pytest.raises(TypeError, match="layers"):
        from_keras(object())
    with pytest.raises(ValueError, match=r"'lstm', LSTM\) has no cgru counterpart.*GRU, Bidirectional"):
        from_keras(FakeModel([FakeLSTM({"name": "lstm", "units": 3}, [])]))
    lstm = FakeLSTM(gru_config("forward_lstm", 3))
    with pytest.raises(ValueError, match="wraps a LSTM"):
        from_keras(FakeModel([FakeBidirectional("bi", lstm, lstm)]))
    bad = fake_gru(rng, "gru", 3, 4)
    bad._weights[1] = bad._weights[1][:, :6]
    with pytest.raises(ValueError, match=r"Keras layer 0 \('gru', GRU\): its weights do not fit.*\(4, 12\)"):
        from_keras(FakeModel([bad]))
    with pytest.raises(ValueError, match="return_state|several outputs"):
        from_keras(FakeModel([fake_gru(rng, "gru", 3, 4, return_state=True), fake_dense(rng, "dense", 4, 1)]))
    with pytest.raises(ValueError, match="time_major"):
        from_keras(FakeModel([fake_gru(rng, "gru", 3, 4, time_major=True)]))
    with pytest.raises(ValueError, match="activation"):
        from_keras(FakeModel([fake_gru(rng, "gru", 3, 4, activation="selu")]))
    with pytest.raises(ValueError, match="no weights yet"):
        from_keras(FakeModel([FakeGRU(gru_config("gru", 4))], input_shape=(None, None, 3)))
    with pytest.raises(ValueError, match="lacks 'units'"):
        from_keras(FakeModel([FakeDense({"name": "dense"})]))
    with pytest.raises(ValueError, match="dtype 'int8'"):
        from_keras(FakeModel([fake_gru(rng, "gru", 3, 4, dtype="int8")]))
    with pytest.warns(UserWarning, match="kernel_regularizer"):
        from_keras(FakeModel([fake_gru(rng, "gru", 3, 4, kernel_regularizer={"class_name": "L2"})]))
    # Keras 2 (tf_keras) hard_sigmoid is another function
    keras2_gru = fake_class("GRU", module="tf_keras.src.layers.rnn.gru")
    old = keras2_gru(gru_config("gru", 4, recurrent_activation="hard_sigmoid"),
                     fake_gru(rng, "g", 3, 4).get_weights())
    with pytest.raises(ValueError, match="Keras 2's hard_sigmoid"):
        from_keras(FakeModel([old]))


def test_fake_keras_stateful_and_return_state_last():
    rng = np.random.default_rng(16)
    gru = fake_gru(rng, "gru", 2, 3, stateful=True, return_state=True, return_sequences=True)
    model = from_keras(FakeModel([gru], input_shape=(1, None, 2)))
    layer = model.layers[0]
    assert layer.stateful and layer.return_state
    x = rng.normal(size=(1, 4, 2)).astype(np.float32)
    seq, state = model.predict(x)
    np.testing.assert_allclose(seq[:, -1], state, rtol=1e-6)
    np.testing.assert_allclose(state, ref_predict([FakeGRU(gru_config("gru", 3), gru.get_weights())], x),
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------- real Keras
@pytest.fixture
def keras(monkeypatch):
    if "keras" not in sys.modules:
        try:  # Keras 3 runs on PyTorch too: prefer it when TensorFlow is absent
            import torch  # noqa: F401

            monkeypatch.setenv("KERAS_BACKEND", "torch")
        except ImportError:
            pass
    return pytest.importorskip("keras")


def _randomize(keras_model, rng):
    for layer in keras_model.layers:
        layer.set_weights([rng.uniform(-0.7, 0.7, w.shape).astype(w.dtype) for w in layer.get_weights()])


def test_real_keras_models(keras, tmp_path):
    L = keras.layers
    rng = np.random.default_rng(20)
    x_ids = rng.integers(1, 10, size=(4, 6))
    x_ids[1, 3:] = 0
    x_ids[2, 1:] = 0
    cases = [
        (keras.Sequential([keras.Input((None, 3)), L.Bidirectional(L.GRU(4, return_sequences=True)),
                           L.GRU(5, reset_after=False, recurrent_activation="hard_sigmoid"), L.Dropout(0.2),
                           L.Dense(2, activation="softmax")]),
         rng.normal(size=(4, 7, 3)).astype(np.float32)),
        (keras.Sequential([keras.Input((6, 2)),
                           L.GRU(4, return_sequences=True, go_backwards=True, activation="relu"),
                           L.Bidirectional(L.GRU(3, use_bias=False), merge_mode="ave"),
                           L.Dense(3, activation="tanh")]),
         rng.normal(size=(4, 6, 2)).astype(np.float32)),
        (keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(10, 4, mask_zero=True),
                           L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum"), L.GRU(2)]),
         x_ids),
        (keras.Sequential([keras.Input((5, 10)), L.GRU(20, return_sequences=True), L.GRU(20), L.Dense(1)]),
         rng.normal(size=(3, 5, 10)).astype(np.float32)),
    ]
    for i, (keras_model, x) in enumerate(cases):
        _randomize(keras_model, rng)
        want = np.asarray(keras_model.predict(x, verbose=0))
        model = from_keras(keras_model)
        assert model.count_params() == keras_model.count_params()
        assert [layer.name for layer in model.layers] == [layer.name for layer in keras_model.layers]
        np.testing.assert_allclose(model.predict(x), want, rtol=1e-4, atol=1e-5, err_msg=f"case {i}")
        model.save(tmp_path / f"k{i}.npz")
        assert np.array_equal(load_model(tmp_path / f"k{i}.npz").predict(x), model.predict(x))

    # sequence outputs under a mask: equal at the valid steps, zeros at the padded ones
    keras_model = keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(10, 4, mask_zero=True),
                                    L.GRU(3, return_sequences=True), L.Dense(2)])
    _randomize(keras_model, rng)
    want = np.asarray(keras_model.predict(x_ids, verbose=0))
    got = from_keras(keras_model).predict(x_ids)
    valid = x_ids != 0
    np.testing.assert_allclose(got[valid], want[valid], rtol=1e-4, atol=1e-5)
    assert not got[~valid].any()
