"""load_model's work grows linearly with the file: a crafted config is refused, and a config of
many layers is rebuilt, without work that grows with the square of its size."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from isolated import run_isolated
from test_saving import config_member, npy_bytes, write_archive

import cgru
from cgru import Dense, Dropout, Sequential
from cgru.layers.base import serialize_layer
from cgru.saving import CONFIG_KEY, MAX_JSON_DEPTH

# A linear-time load of a 1 MB file takes milliseconds; the limit only catches a load whose
# work grows with the square of the size (hours at this size), without stalling the run.
HANG_LIMIT_S = 120


@pytest.mark.parametrize("text", [b'"' + b'\\"' * 2**19, b'{"format": "' + b'x\\"' * 2**19])
def test_a_crafted_megabyte_config_is_refused_in_linear_work(tmp_path, text):
    """Unterminated JSON strings full of escapes (which a backtracking string pattern scans in
    quadratic time): the config is refused as invalid JSON."""
    path = tmp_path / "crafted.npz"
    write_archive(path, {CONFIG_KEY + ".npy": npy_bytes(np.frombuffer(text, dtype=np.uint8))})
    assert path.stat().st_size > 2**20
    out = run_isolated(f"""
        import cgru
        try:
            cgru.load_model({str(path)!r})
        except ValueError as exc:
            print(exc)
        """, timeout_s=HANG_LIMIT_S, hang="loading took work super-linear in the file's size")
    assert "is corrupted: its config is not valid JSON" in out


def _nested(depth: int) -> dict:
    value: object = 0
    for _ in range(depth - 1):  # the outer object is the first level
        value = [value]
    return {"format": "cgru.Sequential", "format_version": 1, "x": value}


def test_nesting_is_limited_after_parsing(tmp_path):
    """Nesting that JSON parses (below Python's recursion limit) but passes MAX_JSON_DEPTH is
    refused; at the limit, the config goes on to its next check."""
    path = tmp_path / "nested.npz"
    for depth, match in ((MAX_JSON_DEPTH + 1, f"nested more than {MAX_JSON_DEPTH} levels"),
                         (MAX_JSON_DEPTH, "has no weight list")):
        write_archive(path, {CONFIG_KEY + ".npy": config_member(_nested(depth))})
        with pytest.raises(ValueError, match=match):
            cgru.load_model(path)


def _dropout_stack_file(path: Path, count: int) -> None:
    model = Sequential([Dense(2, input_shape=(3,)), *[Dropout(0.1) for _ in range(count)]])
    model.save(path)


def _python_calls(fn) -> int:
    """How many Python functions (generators resumed included) ``fn()`` runs."""
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def test_loading_many_layers_takes_work_linear_in_their_number(tmp_path):
    """Loading a model of 2n layers runs about twice the Python calls of one of n layers (a
    stack checked and watched again at every layer would run four times as many)."""
    n = 1500
    small, large = tmp_path / "small.npz", tmp_path / "large.npz"
    _dropout_stack_file(small, n)
    _dropout_stack_file(large, 2 * n)
    calls_small = _python_calls(lambda: cgru.load_model(small))
    calls_large = _python_calls(lambda: cgru.load_model(large))
    assert calls_large < 2.5 * calls_small, (calls_small, calls_large)
    loaded = cgru.load_model(large)
    assert len(loaded.layers) == 2 * n + 1


def test_from_config_checks_layer_names_and_outputs_as_add_does():
    config = Sequential([Dense(2, input_shape=(3,), name="a"), Dense(2, name="b")]).get_config()
    config["layers"][1]["config"]["name"] = "a"
    with pytest.raises(ValueError, match="already has a layer named 'a'"):
        Sequential.from_config(json.loads(json.dumps(config)))
    gru = cgru.GRU(2, return_state=True, input_shape=(None, 3))
    config = {"name": "m", "layers": [serialize_layer(gru), serialize_layer(Dense(2))]}
    with pytest.raises(ValueError, match="returns several outputs"):
        Sequential.from_config(config)


def test_add_watches_only_the_new_layers_weights(monkeypatch, rng):
    """Adding to a built model watches the new layer's weights alone; the model still sees new
    values of the weights of the layers it had before and of the new one."""
    import cgru.models as models_module

    model = Sequential([Dense(3, input_shape=(2,)), Dense(3), Dense(3)], device="numpy")
    x = rng.standard_normal((4, 2)).astype(np.float32)
    model(x)
    watched = []
    real_watch = models_module.watch

    def recording_watch(params, changes):
        params = list(params)
        watched.append([p.name for p in params])
        real_watch(params, changes)

    monkeypatch.setattr(models_module, "watch", recording_watch)
    new = Dense(1)
    model.add(new)
    assert watched == [[p.name for p in new.weights]]
    model(x)  # binds the lean call
    first, last = model.layers[0], model.layers[-1]
    first.set_weights([np.zeros((2, 3), np.float32), np.ones(3, np.float32)])
    last.set_weights([np.ones((3, 1), np.float32), np.zeros(1, np.float32)])
    hidden = np.ones((4, 3), np.float32)
    for layer in model.layers[1:3]:
        kernel, bias = layer.get_weights()
        hidden = hidden @ kernel + bias
    np.testing.assert_allclose(np.asarray(model(x)), hidden.sum(axis=1, keepdims=True), rtol=1e-6)
