"""ONNX in and out: :func:`to_onnx` exports a :class:`~cgru.Sequential`, :func:`from_onnx`
imports a graph of GRU nodes (``torch.onnx.export``, tf2onnx, cgru's own exports).

Importing this package does not import onnx; the functions do, when called (``pip install
'cgru[onnx]'``). Plugin layers export themselves through a ``to_onnx(self, ctx)`` method, with
``ctx`` an :class:`ExportContext`. The supported subset is listed in docs/onnx.md.
"""

from .context import ExportContext
from .export import to_onnx
from .importer import from_onnx

__all__ = ["ExportContext", "from_onnx", "to_onnx"]
