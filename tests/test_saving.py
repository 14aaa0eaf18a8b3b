"""save/load_model: one .npz file with a JSON config, bit-identical round trips, compile settings,
and clear ValueErrors for truncated, corrupted and foreign files (never unpickling)."""

import json
import zipfile

import numpy as np
import pytest

import cgru
from cgru import GRU, Bidirectional, Dense, Dropout, Embedding, Sequential, optimizers
from cgru.saving import CONFIG_KEY


def models(ops):
    yield (
        "stacked",
        Sequential([GRU(20, return_sequences=True, input_shape=(5, 10)), GRU(20), Dense(1)], device=ops.name),
        (5, 10),
    )
    yield (
        "bidirectional",
        Sequential(
            [
                Bidirectional(
                    GRU(6, return_sequences=True, reset_after=False, recurrent_activation="hard_sigmoid"),
                    merge_mode="ave",
                    input_shape=(None, 4),
                ),
                Bidirectional(
                    GRU(5, use_bias=False, activation="relu"),
                    merge_mode="concat",
                    backward_layer=GRU(3, use_bias=False, go_backwards=True),
                ),
                Dropout(0.1),
                Dense(3, activation="softmax"),
            ],
            device=ops.name,
        ),
        (7, 4),
    )
    yield (
        "embedding",
        Sequential(
            [
                Embedding(50, 8, mask_zero=True, input_shape=(None,)),
                GRU(6, go_backwards=True, return_sequences=True),
                Dense(2),
            ],
            device=ops.name,
        ),
        (9,),
    )
    yield (
        "float64",
        Sequential(
            [
                GRU(4, dtype="float64", stateful=True, input_shape=(3, 2)),
                Dense(2, dtype="float64", activation="tanh"),
            ],
            device=ops.name,
        ),
        (3, 2),
    )


def sample(rng, name, shape, n=6):
    if name == "embedding":
        x = rng.integers(1, 50, (n, *shape))
        x[1, 4:] = 0
        x[3, 1:] = 0
        return x
    return rng.standard_normal((n, *shape))


def test_round_trip_is_bit_identical(ops, rng, tmp_path):
    for name, model, shape in models(ops):
        x = sample(rng, name, shape)
        model.compile(
            optimizer=optimizers.RMSprop(learning_rate=0.003, momentum=0.5), loss="huber", metrics=["mae"]
        )
        path = tmp_path / f"{name}.npz"
        model.save(path)
        before = model.predict(x)
        model.reset_states()
        loaded = cgru.load_model(path, device=ops.name)
        assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
        assert [a.name for a in loaded.layers] == [b.name for b in model.layers]
        assert loaded.count_params() == model.count_params()
        for u, v in zip(loaded.get_weights(), model.get_weights()):
            assert u.dtype == v.dtype
            np.testing.assert_array_equal(u, v)
        after = loaded.predict(x)
        assert after.dtype == before.dtype
        np.testing.assert_array_equal(after, before)
        assert isinstance(loaded.optimizer, optimizers.RMSprop)
        assert loaded.optimizer.learning_rate == 0.003 and loaded.optimizer.momentum == 0.5
        assert type(loaded.loss).__name__ == "Huber" and loaded.metrics_names == ["loss", "mae"]
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_lengths_and_training_continue_after_load(ops, rng, tmp_path):
    model = Sequential(
        [Bidirectional(GRU(4, return_sequences=True), input_shape=(6, 3)), GRU(3), Dense(1)], device=ops.name
    )
    model.compile(optimizer="adam", loss="mse")
    x, y = rng.standard_normal((16, 6, 3)), rng.standard_normal((16, 1))
    lengths = rng.integers(0, 7, 16)
    model.fit(x, y, epochs=1, verbose=0, lengths=lengths)
    model.save(tmp_path / "m.npz")
    loaded = cgru.load_model(tmp_path / "m.npz", device=ops.name)
    np.testing.assert_array_equal(loaded.predict(x, lengths=lengths), model.predict(x, lengths=lengths))
    loaded.fit(x, y, epochs=1, verbose=0, lengths=lengths)
    uncompiled = cgru.load_model(tmp_path / "m.npz", compile=False)
    assert not uncompiled.compiled


def test_file_format_is_plain_npz_with_json(ops, tmp_path):
    model = Sequential([GRU(3, input_shape=(2, 2)), Dense(1)], device=ops.name)
    path = tmp_path / "model.cgru"  # any name: written exactly there
    model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.cgru"]
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz[CONFIG_KEY].tobytes().decode())
        assert meta["format"] == "cgru.Sequential" and meta["format_version"] == 1
        assert [spec["shape"] for spec in meta["weights"]] == [[2, 9], [3, 9], [2, 9], [3, 1], [1]]
        assert meta["model"]["layers"][0]["class_name"] == "GRU"
        assert len(npz.files) == 6
    assert cgru.load_model(path).count_params() == model.count_params()


def test_save_and_load_weights(ops, rng, tmp_path):
    a = Sequential([GRU(3, input_shape=(2, 2)), Dense(1)], device=ops.name)
    b = Sequential([GRU(3, input_shape=(2, 2)), Dense(1)], device=ops.name)
    a.save_weights(tmp_path / "w.npz")
    b.load_weights(tmp_path / "w.npz")
    x = rng.standard_normal((2, 2, 2))
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    with pytest.raises(ValueError, match="expects 3 weight arrays.*got 5"):
        Sequential([GRU(3, input_shape=(2, 2))]).load_weights(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="cgru.Sequential"):
        cgru.load_model(tmp_path / "w.npz")  # a weights file is not a model


def _saved(tmp_path, ops):
    model = Sequential([GRU(8, input_shape=(4, 3)), Dense(2)], device=ops.name)
    path = tmp_path / "model.npz"
    model.save(path)
    return path


def test_truncated_file(ops, tmp_path):
    path = _saved(tmp_path, ops)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 100, 0):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a cgru model file|corrupted|truncated"):
            cgru.load_model(bad)


def test_corrupted_weight_bytes(ops, tmp_path):
    path = _saved(tmp_path, ops)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)
    offset = info.header_offset + 30 + len(info.filename) + 200
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted"):
        cgru.load_model(path)


def test_tampered_weights_fail_the_digest(ops, tmp_path):
    path = _saved(tmp_path, ops)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["weight_0001"] = arrays["weight_0001"] + 1  # a valid zip, but not what was saved
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="SHA-256"):
        cgru.load_model(path)
    arrays["weight_0001"] = arrays["weight_0001"][:1]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="weight 1"):
        cgru.load_model(path)
    del arrays["weight_0001"]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="missing"):
        cgru.load_model(path)


def _with_config(path, meta):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays[CONFIG_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def test_foreign_and_malformed_files(ops, tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3), b=np.ones(2))
    with pytest.raises(ValueError, match="no '__cgru_config__' entry"):
        cgru.load_model(foreign)
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="single array"):
        cgru.load_model(npy)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a cgru model file"):
        cgru.load_model(text)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{CONFIG_KEY: np.array([{"format": "cgru.Sequential"}], dtype=object)})
    with pytest.raises(ValueError, match="corrupted"):
        cgru.load_model(pickled)  # object arrays are never unpickled
    garbage = tmp_path / "garbage.npz"
    np.savez(garbage, **{CONFIG_KEY: np.frombuffer(b"{not json", dtype=np.uint8)})
    with pytest.raises(ValueError, match="not valid JSON"):
        cgru.load_model(garbage)
    with pytest.raises(FileNotFoundError):
        cgru.load_model(tmp_path / "missing.npz")

    path = _saved(tmp_path, ops)
    with np.load(path) as npz:
        meta = json.loads(npz[CONFIG_KEY].tobytes().decode())
    _with_config(path, {**meta, "format": "something.else"})
    with pytest.raises(ValueError, match="format 'something.else'"):
        cgru.load_model(path)
    _with_config(path, {**meta, "format_version": 99})
    with pytest.raises(ValueError, match="version 99"):
        cgru.load_model(path)
    layers = [dict(meta["model"]["layers"][0], class_name="NoSuchLayer"), meta["model"]["layers"][1]]
    _with_config(path, {**meta, "model": {**meta["model"], "layers": layers}})
    with pytest.raises(ValueError, match="unknown layer class 'NoSuchLayer'"):
        cgru.load_model(path)


def test_cannot_save_unbuilt_model(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        Sequential([GRU(3)]).save(tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []
