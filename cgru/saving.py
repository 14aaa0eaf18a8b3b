"""The model file format: one NumPy ``.npz`` file, never a pickle.

The file holds the weights as plain arrays (``weight_0000``, ``weight_0001``... in
``get_weights`` order) and one entry ``__cgru_config__``: UTF-8 JSON (stored as a uint8 array)
with the format name and version, the model config (layer classes and their configs, the input
shape), the compile settings (optimizer with its learning rate or schedule, loss, metric
objects), and each weight's name, shape, dtype and SHA-256 digest. The zip
members are stored uncompressed (as ``np.savez`` writes them), each dated 1980-01-01 (zipfile's
default), so one model always makes the same bytes.

A compiled model's file also holds its optimizer's state, so that training goes on from it
exactly as from the saved model: the config's ``"optimizer_state"`` gives the iteration count
(the step a learning-rate schedule goes on from) and describes each slot array (the weight it
belongs to, by index; its name, e.g. Adam's ``"m"`` and ``"v"``; shape, dtype and digest),
stored as ``optimizer_0000``, ``optimizer_0001``... Each slot has its weight's shape and dtype.
Files without it (weights files, files of models not compiled or not trained yet, and older
files) start the optimizer afresh.

Both ends also take an open binary file object instead of a path (``io.BytesIO``: the model
as bytes, which is how models pickle and travel to other processes).

:class:`ModelFile` reads a file at the cost of what it really holds: before any weight data is
read it checks the archive's structure (a regular file; uncompressed, unencrypted members whose
local and central headers agree and that lie inside the file without overlapping), the config
(at most ``MAX_CONFIG_BYTES``, JSON nested at most ``MAX_JSON_DEPTH`` deep), and every weight's
``.npy`` header against the config's description and the member's size. Its reader
(:func:`cgru.loading.load_model`) then builds the model without running initializers and has
:meth:`ModelFile.check_params` compare each weight's shape and dtype with the file's; only then
does :meth:`ModelFile.read_weights` read the data (checking the zip CRCs and the SHA-256
digests) into new arrays, which the model keeps as they are. Predictions equal the saved
model's bit for bit. A truncated, corrupted, crafted or foreign file raises ValueError saying
what is wrong.

This module knows files and arrays only, never models: :class:`~cgru.Sequential` and
:mod:`cgru.loading` hand it configs and weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import struct
import threading
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._version import __version__

FORMAT = "cgru.Sequential"
WEIGHTS_FORMAT = "cgru.weights"
FORMAT_VERSION = 1
CONFIG_KEY = "__cgru_config__"
#: The members holding optimizer slots: optimizer_0000, optimizer_0001...
OPTIMIZER_KEY = "optimizer_"

#: The largest config a file may hold (a thousand-layer model's config is about 1 MB).
MAX_CONFIG_BYTES = 16 * 2**20
#: The deepest nesting of lists and objects a config may have (cgru's own reach about 10).
MAX_JSON_DEPTH = 100

_READ_CHUNK = 2**20
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # the zip local file header, as zipfile reads it
_LOCAL_SIGNATURE = b"PK\x03\x04"
_ENCRYPTED = 0x1
# What zipfile and zlib raise on a malformed archive (and reading a file raises).
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    ValueError,
    OSError,
    EOFError,
    struct.error,
    NotImplementedError,
    RuntimeError,
    OverflowError,
)
# What numpy's .npy header reader raises besides: on a crafted dtype description (a tuple without
# its shape) and on a header that does not parse (through its Python 2 header filter).
_HEADER_ERRORS = (*_READ_ERRORS, IndexError, tokenize.TokenError)
_SLOT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def _flat_bytes(arr: np.ndarray) -> np.ndarray:
    """The bytes of a C-contiguous array as a 1-D uint8 view (no copy)."""
    return arr.reshape(-1).view(np.uint8)


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(_flat_bytes(np.ascontiguousarray(arr))).hexdigest()


def _describe(arr: np.ndarray) -> dict:
    return {"shape": list(arr.shape), "dtype": arr.dtype.str, "sha256": _digest(arr)}


def _write(path: Any, meta: dict, weights: list[np.ndarray], optimizer_state: dict | None = None) -> None:
    meta = dict(meta)
    meta["weights"] = [_describe(w) for w in weights]
    arrays = {f"weight_{i:04d}": np.ascontiguousarray(w) for i, w in enumerate(weights)}
    if optimizer_state is not None:
        slots = []
        for i, (weight, name, array) in enumerate(optimizer_state["slots"]):
            slots.append({"weight": weight, "name": name, **_describe(array)})
            arrays[f"{OPTIMIZER_KEY}{i:04d}"] = np.ascontiguousarray(array)
        meta["optimizer_state"] = {"iterations": int(optimizer_state["iterations"]), "slots": slots}
    arrays[CONFIG_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    if _is_file_object(path):
        np.savez(path, **arrays)
        return
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written model behind
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_model(
    path: Any,
    model_config: dict,
    compile_config: dict | None,
    weights: list,
    optimizer_state: dict | None = None,
) -> None:
    """Write a model file (``path``: a path or a writable binary file object): its config
    (``Sequential.get_config()``), its compile settings (or None), its weights (NumPy arrays in
    ``get_weights`` order) and its optimizer's state (or None): ``{"iterations": int, "slots":
    [(weight index, slot name, NumPy array), ...]}``."""
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "cgru_version": __version__,
        "model": model_config,
        "compile": compile_config,
    }
    _write(path, meta, weights, optimizer_state)


def write_weights(path: Any, weights: list) -> None:
    """Write a weights file (``load_weights`` reads it back)."""
    meta = {"format": WEIGHTS_FORMAT, "format_version": FORMAT_VERSION, "cgru_version": __version__}
    _write(path, meta, weights)


# ----------------------------------------------------------------------------------- reading
def _is_file_object(target: Any) -> bool:
    return hasattr(target, "read") or hasattr(target, "write")


def _open_file_object(file: Any) -> int:
    """The size of a seekable binary file object holding a model file (from its start)."""
    try:
        if not file.seekable():
            raise ValueError("it is not seekable")
        size = file.seek(0, os.SEEK_END)
        file.seek(0)
        head = file.read(0)
    except (OSError, ValueError, AttributeError) as exc:
        raise ValueError(f"cannot read a cgru model from {file!r}: {exc}") from None
    if not isinstance(head, bytes):
        raise TypeError(f"a cgru model is read from a binary file object, got the text file {file!r}")
    return size


def _open_regular(path: str) -> tuple[Any, int]:
    """``(binary file object, size)`` of the regular file at ``path``; never waits on a FIFO."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path!r}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path!r} is not a cgru model file: it is {_file_kind(mode)}, not a regular file")
    # O_NONBLOCK: should a FIFO have replaced the file since the stat, opening it does not wait
    # for a writer, and the fstat below refuses it.
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | nonblocking | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(
                f"{path!r} is not a cgru model file: it is {_file_kind(info.st_mode)}, not a regular file"
            )
        if nonblocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _nested_deeper(value: Any, limit: int) -> bool:
    """Whether parsed JSON ``value`` nests lists and objects more than ``limit`` deep (walked
    without recursion, each value once)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _spec_shape(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list) or len(value) > 32:
        return None
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        return None
    return tuple(value)


def _numeric_dtype(value: Any) -> np.dtype | None:
    """A plain numeric dtype (no objects, records or sub-arrays), or None."""
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError, SyntaxError):
        return None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "fiub":
        return None
    return dtype


@dataclass(frozen=True)
class _WeightEntry:
    """One weight of the file, checked against its description and its member's size."""

    shape: tuple
    dtype: np.dtype
    digest: str
    info: zipfile.ZipInfo
    header_size: int  # bytes of .npy header before the data

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class ModelFile:
    """An open model file whose structure, config and array headers are checked, no weight data
    read; :meth:`read_weights` reads the data. Use as a context manager."""

    def __init__(self, path: Any, formats: tuple[str, ...]) -> None:
        self._owns_file = not _is_file_object(path)
        if self._owns_file:
            self.path = os.fspath(path)
            self.where = repr(self.path)
            self._file, self._size = _open_regular(self.path)
        else:
            self.path = None
            self.where = f"the model data in {type(path).__name__}"
            self._file, self._size = path, _open_file_object(path)
        self._zip: zipfile.ZipFile | None = None
        try:
            self._zip = self._open_zip()
            self._members = self._check_members()
            self.meta = self._read_config(formats)
            self.weights = self._check_weight_headers()
            self.optimizer_slots = self._check_optimizer_headers()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ModelFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._owns_file:
            self._file.close()

    # ------------------------------------------------------------------------ structure
    def _not_cgru(self, why: str) -> ValueError:
        return ValueError(f"{self.where} is not a cgru model file: {why}")

    def _corrupted(self, why: str) -> ValueError:
        return ValueError(f"{self.where} is corrupted: {why}")

    def _open_zip(self) -> zipfile.ZipFile:
        head = self._file.read(6)
        if head == b"\x93NUMPY":
            raise self._not_cgru("it holds a single array, not an .npz archive")
        try:
            self._file.seek(0)
            return zipfile.ZipFile(self._file)
        except _READ_ERRORS as exc:
            why = f"it is not a readable .npz archive (truncated or corrupted?): {exc}"
            raise self._not_cgru(why) from None

    def _check_members(self) -> dict[str, zipfile.ZipInfo]:
        """Every member: stored, unencrypted, headers agreeing, inside the file, no overlaps."""
        members: dict[str, zipfile.ZipInfo] = {}
        spans = []
        for info in self._zip.infolist():
            name = info.filename
            if name in members:
                raise self._corrupted(f"it has two members named {name!r}")
            if info.flag_bits & _ENCRYPTED:
                raise self._not_cgru(f"its member {name!r} is encrypted")
            if info.compress_type != zipfile.ZIP_STORED:
                raise self._not_cgru(
                    f"its member {name!r} is compressed (zip method {info.compress_type}); cgru model "
                    "files store their arrays uncompressed, as Sequential.save writes them"
                )
            if info.file_size != info.compress_size:
                raise self._corrupted(
                    f"member {name!r} is stored uncompressed but declares {info.compress_size} stored "
                    f"and {info.file_size} uncompressed bytes"
                )
            start = self._data_offset(info)
            end = start + info.compress_size
            if end > self._size:
                raise self._corrupted(
                    f"member {name!r} runs past the end of the file ({end} > {self._size} bytes): truncated?"
                )
            spans.append((info.header_offset, end, name))
            members[name] = info
        spans.sort()
        for (_, end, name), (start, _, other) in zip(spans, spans[1:]):
            if start < end:
                raise self._corrupted(f"members {name!r} and {other!r} overlap")
        return members

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        """Where the member's data starts; its local header must agree with the central directory."""
        try:
            self._file.seek(info.header_offset)
            raw = self._file.read(_LOCAL_HEADER.size)
        except (OSError, ValueError, OverflowError) as exc:
            why = f"the local header of member {info.filename!r} cannot be read: {exc}"
            raise self._corrupted(why) from None
        if len(raw) != _LOCAL_HEADER.size:
            raise self._corrupted(f"the local header of member {info.filename!r} is truncated")
        fields = _LOCAL_HEADER.unpack(raw)
        signature, flag_bits, method = fields[0], fields[3], fields[4]
        if signature != _LOCAL_SIGNATURE:
            raise self._corrupted(f"member {info.filename!r} has no local header where the directory says")
        if flag_bits != info.flag_bits or method != info.compress_type:
            raise self._corrupted(
                f"the local header of member {info.filename!r} (flags {flag_bits:#06x}, method {method}) "
                f"disagrees with the central directory (flags {info.flag_bits:#06x}, "
                f"method {info.compress_type})"
            )
        return info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11]

    def _npy_header(self, stream: Any, what: str) -> tuple[tuple, np.dtype, int]:
        """``(shape, dtype, header size)`` of the ``.npy`` data in ``stream``; reads only the header."""
        fmt = np.lib.format
        try:
            version = fmt.read_magic(stream)
            if version == (1, 0):
                shape, fortran_order, dtype = fmt.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran_order, dtype = fmt.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            size = stream.tell()
        except _HEADER_ERRORS as exc:
            raise self._corrupted(f"{what} has no valid .npy header: {exc}") from None
        if _numeric_dtype(dtype) is None:
            raise self._corrupted(f"{what} holds {dtype} values, not plain numbers (never unpickled)")
        if fortran_order:
            raise self._corrupted(f"{what} is stored in Fortran order, which cgru never writes")
        if any(d < 0 for d in shape):
            raise self._corrupted(f"{what} declares the shape {shape}")
        return tuple(shape), dtype, size

    def _member(self, name: str, missing: str) -> zipfile.ZipInfo:
        info = self._members.get(name + ".npy")
        if info is None:
            raise self._corrupted(missing)
        return info

    def _open_member(self, info: zipfile.ZipInfo, what: str) -> Any:
        try:
            return self._zip.open(info)
        except _READ_ERRORS as exc:
            raise self._corrupted(f"{what} cannot be read: {exc}") from None

    # --------------------------------------------------------------------------- config
    def _read_config(self, formats: tuple[str, ...]) -> dict:
        if CONFIG_KEY + ".npy" not in self._members:
            names = [n[:-4] if n.endswith(".npy") else n for n in list(self._members)[:10]]
            raise self._not_cgru(f"it has no {CONFIG_KEY!r} entry (entries: {names})")
        info = self._members[CONFIG_KEY + ".npy"]
        what = "its config entry"
        with self._open_member(info, what) as stream:
            shape, dtype, header_size = self._npy_header(stream, what)
            if dtype != np.uint8 or len(shape) != 1:
                raise self._corrupted("its config entry is not UTF-8 JSON bytes")
            if shape[0] > MAX_CONFIG_BYTES:
                raise self._corrupted(
                    f"its config is {shape[0]} bytes, more than a cgru model config may be "
                    f"({MAX_CONFIG_BYTES})"
                )
            if header_size + shape[0] != info.file_size:
                raise self._corrupted(
                    f"its config entry declares {shape[0]} bytes but holds {info.file_size - header_size}"
                )
            try:
                raw = stream.read(shape[0])
            except _READ_ERRORS as exc:
                raise self._corrupted(f"its config entry cannot be read: {exc}") from None
        if len(raw) != shape[0]:
            raise self._corrupted("its config entry is truncated")
        too_deep = self._corrupted(
            f"its config is not valid JSON: nested more than {MAX_JSON_DEPTH} levels deep"
        )
        try:
            meta = json.loads(raw.decode("utf-8"))
        except RecursionError:
            raise too_deep from None
        except ValueError as exc:  # UnicodeDecodeError included
            raise self._corrupted(f"its config is not valid JSON: {exc}") from None
        if _nested_deeper(meta, MAX_JSON_DEPTH):
            raise too_deep
        if not isinstance(meta, dict) or meta.get("format") not in formats:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"{self.where} is not a {' or '.join(formats)} file (format {found!r})")
        version = meta.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
            raise ValueError(
                f"{self.where} has format version {version!r}; this cgru reads versions "
                f"1..{FORMAT_VERSION} (saved by cgru {meta.get('cgru_version')!r})"
            )
        return meta

    def _check_weight_headers(self) -> list[_WeightEntry]:
        specs = self.meta.get("weights")
        if not isinstance(specs, list):
            raise self._corrupted("its config has no weight list")
        if len(specs) > len(self._members):
            raise self._corrupted(
                f"its config lists {len(specs)} weights, but it has {len(self._members)} members"
            )
        return [self._check_entry(spec, f"weight_{i:04d}", f"weight {i}") for i, spec in enumerate(specs)]

    def _check_entry(self, spec: Any, key: str, what: str) -> _WeightEntry:
        """The member ``key`` that ``spec`` (shape, dtype, sha256) describes, its header checked."""
        info = self._member(key, f"{what} ({key}) is missing: truncated?")
        shape = _spec_shape(spec.get("shape")) if isinstance(spec, dict) else None
        dtype = _numeric_dtype(spec.get("dtype")) if shape is not None else None
        digest = spec.get("sha256") if dtype is not None else None
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise self._corrupted(f"bad description of {what}: {str(spec)[:200]}")
        where = f"{what} ({key})"
        with self._open_member(info, where) as stream:
            found_shape, found_dtype, header_size = self._npy_header(stream, where)
        if found_shape != shape or found_dtype != dtype:
            raise self._corrupted(f"{what} is {found_dtype}{found_shape}, the config says {dtype}{shape}")
        entry = _WeightEntry(shape, dtype, digest, info, header_size)
        if header_size + entry.nbytes != info.file_size:
            raise self._corrupted(
                f"{what} declares {dtype}{shape} ({entry.nbytes} bytes) but its member holds "
                f"{info.file_size - header_size} bytes of data"
            )
        return entry

    def _check_optimizer_headers(self) -> list[tuple[int, str, _WeightEntry]] | None:
        """``(weight index, slot name, entry)`` of each optimizer slot the file holds (None when
        it holds no optimizer state), each shaped and typed as its weight."""
        state = self.meta.get("optimizer_state")
        if state is None:
            return None
        iterations = state.get("iterations") if isinstance(state, dict) else None
        specs = state.get("slots") if isinstance(state, dict) else None
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise self._corrupted(f"its optimizer state has a bad iteration count {iterations!r}")
        if not isinstance(specs, list) or len(specs) > len(self._members):
            raise self._corrupted("its optimizer state has no valid slot list")
        slots, seen = [], set()
        for i, spec in enumerate(specs):
            what = f"optimizer slot {i}"
            weight = spec.get("weight") if isinstance(spec, dict) else None
            name = spec.get("name") if isinstance(spec, dict) else None
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight < len(self.weights):
                raise self._corrupted(f"{what} names no weight of the file: {str(spec)[:200]}")
            if not isinstance(name, str) or not _SLOT_NAME.fullmatch(name) or (weight, name) in seen:
                raise self._corrupted(f"{what} has a bad or repeated name: {str(spec)[:200]}")
            seen.add((weight, name))
            entry = self._check_entry(spec, f"{OPTIMIZER_KEY}{i:04d}", what)
            owner = self.weights[weight]
            if entry.shape != owner.shape or entry.dtype != owner.dtype:
                raise self._corrupted(
                    f"{what} ({name!r} of weight {weight}) is {entry.dtype}{entry.shape}, "
                    f"its weight {owner.dtype}{owner.shape}"
                )
            slots.append((weight, name, entry))
        return slots

    # ----------------------------------------------------------------------------- data
    def read_weights(self) -> list[np.ndarray]:
        """Every weight's array, its zip CRC and SHA-256 digest checked."""
        return [self._read_weight(f"weight {i}", entry) for i, entry in enumerate(self.weights)]

    def read_optimizer_state(self) -> dict | None:
        """The optimizer state (None when the file holds none): ``{"iterations": int,
        "slots": {weight index: {slot name: array}}}``, every array's CRC and digest checked."""
        if self.optimizer_slots is None:
            return None
        slots: dict[int, dict] = {}
        for i, (weight, name, entry) in enumerate(self.optimizer_slots):
            slots.setdefault(weight, {})[name] = self._read_weight(f"optimizer slot {i}", entry)
        return {"iterations": self.meta["optimizer_state"]["iterations"], "slots": slots}

    def _read_weight(self, what: str, entry: _WeightEntry) -> np.ndarray:
        arr = np.empty(entry.shape, dtype=entry.dtype)
        flat = _flat_bytes(arr)
        digest = hashlib.sha256()
        try:
            with self._zip.open(entry.info) as stream:
                stream.read(entry.header_size)
                done = 0
                while done < flat.size:
                    chunk = stream.read(min(_READ_CHUNK, flat.size - done))
                    if not chunk:
                        raise EOFError("the data ends early")
                    flat[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                    digest.update(chunk)
                    done += len(chunk)
                stream.read(1)  # at the member's end: zipfile checks its CRC here
        except _READ_ERRORS as exc:
            raise self._corrupted(f"{what} cannot be read: {exc}") from None
        if digest.hexdigest() != entry.digest:
            raise self._corrupted(f"{what} does not match its SHA-256 digest")
        return arr

    def check_params(self, params: list) -> None:
        """The weights of the model this file's config built (``params``, in order) must be the
        file's: same count, shapes and dtypes."""
        where, entries = self.where, self.weights
        if len(params) != len(entries):
            raise ValueError(
                f"{where} is corrupted: its model config makes {len(params)} weights, "
                f"but it holds {len(entries)}"
            )
        for i, (p, entry) in enumerate(zip(params, entries)):
            if p.shape != entry.shape or p.dtype != entry.dtype.newbyteorder("="):
                raise ValueError(
                    f"{where} is corrupted: its model config makes weight {i} ({p.name}) "
                    f"{p.dtype}{p.shape}, but the file holds {entry.dtype}{entry.shape}"
                )


def read_weights(path: Any, params: list, owner: str) -> list[np.ndarray]:
    """The weights of a weights or model file for ``params`` (a model's weights, in order):
    their count and shapes are checked before any data is read. ``owner`` names the model."""
    with ModelFile(path, (WEIGHTS_FORMAT, FORMAT)) as model_file:
        entries = model_file.weights
        if len(params) != len(entries):
            names = ", ".join(p.name for p in params) or "none"
            raise ValueError(
                f"{owner} expects {len(params)} weight arrays ({names}), "
                f"got {len(entries)} in {model_file.where}"
            )
        for i, (p, entry) in enumerate(zip(params, entries)):
            if p.shape != entry.shape:
                raise ValueError(
                    f"weight {i} ({p.name}) of {owner} must have shape {p.shape}, "
                    f"{model_file.where} holds {entry.shape}"
                )
        return model_file.read_weights()


__all__ = [
    "CONFIG_KEY",
    "FORMAT",
    "OPTIMIZER_KEY",
    "WEIGHTS_FORMAT",
    "ModelFile",
    "read_weights",
    "write_model",
    "write_weights",
]
