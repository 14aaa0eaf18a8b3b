"""Which exceptions load_model reports as a bad file: everything a file's content can make the
archive and .npy readers raise, and nothing else (a fault of cgru's own is not a corrupted file)."""

import struct
import zipfile

import numpy as np
import pytest
from test_saving import write_archive

import cgru
from cgru import Dense, Sequential


def _npy_with_header(header: str, data: bytes = b"") -> bytes:
    """A .npy version 1.0 member whose header is ``header`` as written (any text)."""
    raw = header.encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw)) + raw + data


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    Sequential([Dense(2, input_shape=(3,))]).save(path)
    return path


def _with_member(path, name, content):
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    members[name] = content
    write_archive(path, members)


@pytest.mark.parametrize(
    "header",
    [
        # a sub-array dtype description without its shape: numpy's reader raises IndexError
        "{'descr': ('<f4',), 'fortran_order': False, 'shape': (3, 2)}",
        # an unclosed header: numpy's Python 2 header filter raises tokenize.TokenError
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2)",
    ],
)
def test_crafted_npy_headers_are_corrupted_files(saved, header):
    _with_member(saved, "weight_0000.npy", _npy_with_header(header, bytes(24)))
    with pytest.raises(ValueError, match=r"is corrupted: weight 0 \(weight_0000\) has no valid .npy header"):
        cgru.load_model(saved)


# (numpy's .npy header reader does raise IndexError on a crafted header: see above)
FAULTS = [("zip member", e) for e in (TypeError, KeyError, IndexError, SyntaxError)] + [
    ("npy header", e) for e in (TypeError, KeyError, SyntaxError)
]


@pytest.mark.parametrize("where, error", FAULTS)
def test_a_fault_outside_the_file_is_not_reported_as_a_corrupted_file(saved, monkeypatch, where, error):
    """An exception that no file content makes the reader raise propagates as it is."""

    def failing(*args, **kwargs):
        raise error("not the file's fault")

    if where == "zip member":
        monkeypatch.setattr(zipfile.ZipFile, "open", failing)
    else:
        monkeypatch.setattr(np.lib.format, "read_array_header_1_0", failing)
    with pytest.raises(error, match="not the file's fault"):
        cgru.load_model(saved)
