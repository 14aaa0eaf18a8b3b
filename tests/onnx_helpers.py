"""Shared by the ONNX tests: running a model in ONNX Runtime and comparing results."""

from __future__ import annotations

import numpy as np

#: float32 results agree within this much, relative to the largest magnitude of the reference.
FLOAT32_RTOL = 2e-5


def session(proto):
    """An ONNX Runtime CPU session for an ``onnx.ModelProto`` (quiet: warnings only)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(proto, feed: dict) -> list:
    return session(proto).run(None, feed)


def assert_close(got, want, rtol: float = FLOAT32_RTOL) -> None:
    """``max|got - want| <= rtol * max(|want|, 1e-3)``, shapes equal; lists compared item by item."""
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), (len(got), len(want))
        for g, w in zip(got, want):
            assert_close(g, w, rtol)
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-3)
    err = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    assert err <= rtol * scale, f"max abs difference {err:.3g} > {rtol:g} * {scale:.3g}"


def as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]
