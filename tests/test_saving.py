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


def refuses_a_flipped_byte(path, offset):
    """Invert the byte at ``offset`` of the saved file ``path``: loading it must fail."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted"):
        cgru.load_model(path)


def test_corrupted_weight_bytes(ops, tmp_path):
    path = _saved(tmp_path, ops)
    with zipfile.ZipFile(path) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)
    refuses_a_flipped_byte(path, info.header_offset + 30 + len(info.filename) + 200)


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


# ------------------------------------------------------------------------------ crafted files
# Each case must be refused with a ValueError at a cost bounded by the file's real size: the
# peak of memory traced while loading (NumPy's arrays included) stays under a few MB where the
# file's claims would need hundreds of MB or more.
BOUND = 4 * 2**20


def refused(path, match, **kwargs):
    """Load ``path`` under tracemalloc; assert a ValueError matching ``match``; the peak memory."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            cgru.load_model(path, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak


def saved_meta(path):
    with zipfile.ZipFile(path) as zf:
        raw = zf.read(CONFIG_KEY + ".npy")
    return json.loads(raw[128:].decode())  # np.save's header is 128 bytes for this entry


def npy_bytes(arr=None, header=None, data=b""):
    """The .npy encoding of ``arr``, or of any ``header`` dict followed by raw ``data``."""
    import io

    buf = io.BytesIO()
    if arr is not None:
        np.lib.format.write_array(buf, np.ascontiguousarray(arr))
    else:
        np.lib.format.write_array_header_1_0(buf, header)
        buf.write(data)
    return buf.getvalue()


def write_archive(path, members, compression=zipfile.ZIP_STORED):
    """A zip of ``members`` (name -> bytes, or name -> iterable of byte chunks)."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, content in members.items():
            with zf.open(name, "w", force_zip64=True) as f:
                for chunk in [content] if isinstance(content, bytes) else content:
                    f.write(chunk)


def config_member(meta):
    return npy_bytes(np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))


def test_claimed_sizes_are_checked_before_anything_is_built(ops, tmp_path):
    path = _saved(tmp_path, ops)
    meta = saved_meta(path)
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    for units in (5000, 10**9):
        meta["model"]["layers"][0]["config"]["units"] = units
        members[CONFIG_KEY + ".npy"] = config_member(meta)
        write_archive(path, members)
        match = rf"weight 0 \(gru\S*/kernel\) float32\(3, {3 * units}\), but the file holds float32\(3, 24\)"
        assert refused(path, match, device=ops.name) < BOUND


def test_no_initializer_runs_for_loaded_weights(ops, rng, tmp_path, monkeypatch):
    saved = []
    for name, model, shape in models(ops):
        model.save(tmp_path / f"{name}.npz")
        saved.append((name, model, sample(rng, name, shape)))

    def refuse(*args, **kwargs):
        raise AssertionError("an initializer ran while loading")

    monkeypatch.setattr(cgru.initializers.Initializer, "__call__", refuse)
    for name, model, x in saved:
        model.reset_states()
        loaded = cgru.load_model(tmp_path / f"{name}.npz", device=ops.name)
        for u, v in zip(loaded.get_weights(), model.get_weights()):
            assert u.dtype == v.dtype
            np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_deferred_build_is_per_thread_and_placeholders_never_compute():
    import threading

    from cgru.layers.base import WeightPlaceholder, deferred_weights

    other = {}

    def build_elsewhere():
        layer = GRU(3)
        layer._maybe_build((None, 2, 4))
        other["value"] = layer.kernel.value

    with deferred_weights():
        layer = GRU(3)
        layer._maybe_build((None, 2, 4))
        thread = threading.Thread(target=build_elsewhere)
        thread.start()
        thread.join()
    assert isinstance(layer.kernel.value, WeightPlaceholder) and layer.kernel.shape == (4, 9)
    assert isinstance(other["value"], np.ndarray) and np.any(other["value"] != 0)
    with pytest.raises(TypeError, match="no value yet"):
        layer.get_weights()
    layer2 = GRU(3)
    layer2._maybe_build((None, 2, 4))  # outside the block: initialised again
    assert isinstance(layer2.kernel.value, np.ndarray)


def test_zip_bomb_is_refused(ops, tmp_path):
    path = _saved(tmp_path, ops)
    meta = saved_meta(path)
    kernel = {"descr": "<f4", "fortran_order": False, "shape": (3, 24)}
    # 64 MB of zeros deflated to about 64 KB, its .npy header and sizes all consistent
    big = {"descr": "<f4", "fortran_order": False, "shape": (2**24,)}
    chunks = [npy_bytes(header=big), *(bytes(2**20) for _ in range(64))]
    meta["weights"][0] = {"shape": [2**24], "dtype": "<f4", "sha256": "0" * 64}
    bomb = tmp_path / "bomb.npz"
    write_archive(bomb, {CONFIG_KEY + ".npy": config_member(meta), "weight_0000.npy": chunks},
                  compression=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 2**20
    assert refused(bomb, "compressed") < BOUND
    # a small deflated member whose header declares 10^12 elements
    meta["weights"][0] = {"shape": [10**12], "dtype": "<f4", "sha256": "0" * 64}
    huge = {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    write_archive(bomb, {CONFIG_KEY + ".npy": config_member(meta),
                         "weight_0000.npy": npy_bytes(header=huge, data=bytes(1000))},
                  compression=zipfile.ZIP_DEFLATED)
    assert refused(bomb, "compressed") < BOUND
    del kernel


def test_npy_header_claims_are_checked_against_the_member_size(ops, tmp_path):
    path = _saved(tmp_path, ops)
    meta = saved_meta(path)
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    huge = {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    members["weight_0000.npy"] = npy_bytes(header=huge, data=bytes(1000))
    meta["weights"][0]["shape"] = [10**12]
    members[CONFIG_KEY + ".npy"] = config_member(meta)
    write_archive(path, members)
    assert refused(path, r"weight 0 declares float32\(1000000000000,\) .* holds 1000 bytes") < BOUND
    # the header and the config disagree
    meta["weights"][0]["shape"] = [3, 24]
    members[CONFIG_KEY + ".npy"] = config_member(meta)
    write_archive(path, members)
    assert refused(path, r"weight 0 is float32\(1000000000000,\), the config says") < BOUND
    # object arrays are refused from the header, never unpickled
    members["weight_0000.npy"] = npy_bytes(np.array([{"a": 1}], dtype=object))
    write_archive(path, members)
    assert refused(path, "object values") < BOUND


def _central_entries(data):
    """Offsets of the central directory entries of a zip held in ``data``."""
    import struct

    end = data.rfind(b"PK\x05\x06")
    count, _, start = struct.unpack("<HLL", data[end + 10:end + 20])
    offsets, pos = [], start
    for _ in range(count):
        offsets.append(pos)
        n, m, k = struct.unpack("<3H", data[pos + 28:pos + 34])
        pos += 46 + n + m + k
    return offsets


@pytest.mark.parametrize(
    "where,field,value",
    [("central", "method", 8), ("central", "method", 99), ("central", "flags", 0x1),
     ("local", "method", 8), ("local", "method", 99), ("local", "flags", 0x1), ("local", "flags", 0x40)],
)
def test_flipped_zip_flags(ops, tmp_path, where, field, value):
    import struct

    path = _saved(tmp_path, ops)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        target = max(zf.infolist(), key=lambda i: i.file_size)
    if where == "local":
        offset = target.header_offset + (8 if field == "method" else 6)
    else:
        entry = next(o for o in _central_entries(data) if data[o + 46:o + 46 + len(target.filename)]
                     == target.filename.encode())
        offset = entry + (10 if field == "method" else 8)
    old = struct.unpack("<H", data[offset:offset + 2])[0]
    data[offset:offset + 2] = struct.pack("<H", value if field == "method" else old ^ value)
    path.write_bytes(bytes(data))
    member = f"member {target.filename!r}"
    if where == "local":
        match = f"the local header of {member} .* disagrees with the central directory"
    else:
        why = "encrypted" if field == "flags" else f"compressed \\(zip method {value}\\)"
        match = f"{member} is {why}"
    assert refused(path, match) < BOUND


def test_overlapping_members_are_refused(ops, tmp_path):
    import struct

    path = _saved(tmp_path, ops)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        first = zf.getinfo("weight_0000.npy")
    entries = _central_entries(data)
    second = next(o for o in entries if data[o + 46:o + 46 + 15] == b"weight_0001.npy")
    data[second + 42:second + 46] = struct.pack("<L", first.header_offset)
    path.write_bytes(bytes(data))
    assert refused(path, "members 'weight_0000.npy' and 'weight_0001.npy' overlap") < BOUND


def test_deeply_nested_or_oversized_config(ops, tmp_path, monkeypatch):
    path = tmp_path / "nested.npz"
    deep = b'{"format": "cgru.Sequential", "format_version": 1, "x": ' + b"[" * 10**5 + b"]" * 10**5 + b"}"
    write_archive(path, {CONFIG_KEY + ".npy": npy_bytes(np.frombuffer(deep, dtype=np.uint8))})
    assert refused(path, "nested more than 100 levels") < BOUND
    # brackets inside strings are not nesting
    text = json.dumps({"format": "x", "s": "[" * 1000})
    write_archive(path, {CONFIG_KEY + ".npy": npy_bytes(np.frombuffer(text.encode(), dtype=np.uint8))})
    refused(path, "format 'x'")
    monkeypatch.setattr(cgru.saving, "MAX_CONFIG_BYTES", 1000)
    saved = _saved(tmp_path, ops)
    refused(saved, "more than a cgru model config may be")


def test_bad_compile_or_model_config(ops, tmp_path):
    path = _saved(tmp_path, ops)
    model = cgru.load_model(path)
    model.compile(optimizer="adam", loss="mse")
    model.save(path)
    meta = saved_meta(path)
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    cases = [
        ({**meta, "compile": {"loss": "mse"}}, "compile config lacks 'optimizer'"),
        ({**meta, "compile": {"optimizer": "nope", "loss": "mse"}}, "cannot compile.*unknown optimizer"),
        ({**meta, "compile": "adam"}, "compile config is not an object"),
        ({**meta, "model": {"layers": [{"class_name": "GRU", "config": {"units": "x"}}]}},
         "cannot rebuild the model.*units"),
        ({**meta, "model": {"layers": [{"class_name": "Bidirectional", "config": {}}]}},
         "cannot rebuild the model.*lacks 'layer'"),
        ({**meta, "model": {"layers": [{"class_name": "Dense", "config": {"units": 2}}]}}, "no input shape"),
        ({**meta, "weights": meta["weights"][:2]}, "makes 5 weights, but it holds 2"),
        ({**meta, "weights": [{"shape": [3, 24]}] + meta["weights"][1:]}, "bad description of weight 0"),
    ]
    for bad, match in cases:
        members[CONFIG_KEY + ".npy"] = config_member(bad)
        write_archive(path, members)
        refused(path, match)
    members[CONFIG_KEY + ".npy"] = config_member(cases[0][0])
    write_archive(path, members)
    assert not cgru.load_model(path, compile=False).compiled


def test_non_regular_files_are_refused(tmp_path):
    import os
    import threading

    with pytest.raises(ValueError, match="a directory, not a regular file"):
        cgru.load_model(tmp_path)
    if not hasattr(os, "mkfifo"):
        return
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)

    def writer():  # should the loader open the FIFO, this lets it see end-of-file instead of hanging
        with open(fifo, "wb"):
            pass

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with pytest.raises(ValueError, match="a FIFO .*, not a regular file"):
            cgru.load_model(fifo)
        with pytest.raises(ValueError, match="a FIFO"):
            Sequential([GRU(3, input_shape=(2, 2))]).load_weights(fifo)
    finally:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # releases the writer
        thread.join(10)
        os.close(fd)


def test_plugin_layers_choose_whether_loading_skips_their_initializers(ops, rng, tmp_path):
    calls = []

    class Counting(cgru.initializers.Ones):
        def __init__(self, owner):
            super().__init__()
            self.owner = owner

        def generate(self, shape, rng):
            calls.append(self.owner)
            return super().generate(shape, rng)

    @cgru.register_layer(name="tests.saving.Offset")
    class Offset(cgru.Layer):
        defer_weight_init = True  # build only calls add_weight, and the output shape is known

        def build(self, input_shape):
            self.offset = self.add_weight("offset", (input_shape[-1],), initializer=Counting("Offset"))

        def compute_output_shape(self, input_shape):
            return input_shape

        def forward(self, x, training=False):
            return x + self.offset.value, None

    @cgru.register_layer(name="tests.saving.Shift")
    class Shift(Offset):  # opted in, but its output shape comes from running it: initialised
        compute_output_shape = cgru.Layer.compute_output_shape

        def build(self, input_shape):
            self.offset = self.add_weight("offset", (input_shape[-1],), initializer=Counting("Shift"))

    @cgru.register_layer(name="tests.saving.Gain")
    class Gain(cgru.Layer):  # its build writes into the weight: initialised, then loaded
        def build(self, input_shape):
            self.gain = self.add_weight("gain", (input_shape[-1],), initializer=Counting("Gain"))
            self.gain.value[0] = 3.0

        def forward(self, x, training=False):
            return x * self.gain.value, None

    model = Sequential([GRU(4, input_shape=(3, 2)), Offset(), Shift(), Gain()], device=ops.name)
    model.set_weights([rng.standard_normal(w.shape) for w in model.get_weights()])
    model.save(tmp_path / "plugins.npz")
    calls.clear()
    loaded = cgru.load_model(tmp_path / "plugins.npz", device=ops.name)
    assert calls == ["Shift", "Gain"]
    x = rng.standard_normal((2, 3, 2))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
