"""The optional ``onnx`` package, imported on first use only (``import cgru`` never loads it)."""

from __future__ import annotations

from typing import Any

#: The oldest opset the exporter writes: Squeeze, Unsqueeze, ReduceSum and Slice take their
#: axes as inputs, and Softmax normalises over one axis, from opset 13 on.
MIN_OPSET = 13
#: The opset written when none is asked for: widely supported by ONNX Runtime, OpenVINO and TensorRT.
DEFAULT_OPSET = 17


def require_onnx() -> Any:
    """The ``onnx`` module; ImportError saying how to install it when it is missing."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            "cgru's ONNX export and import need the onnx package: pip install 'cgru[onnx]' "
            f"(or pip install onnx); importing it failed with: {exc}"
        ) from exc
    return onnx


def resolve_opset(onnx: Any, opset: Any) -> int:
    """``opset`` (None for :data:`DEFAULT_OPSET`) checked against what the installed onnx knows."""
    newest = int(onnx.defs.onnx_opset_version())
    if opset is None:
        return min(DEFAULT_OPSET, newest)
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise TypeError(f"opset must be an int, got {opset!r}")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset must be between {MIN_OPSET} and {newest} (the newest the installed onnx "
            f"{onnx.__version__} knows), got {opset}"
        )
    return int(opset)
