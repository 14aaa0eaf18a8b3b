"""The package version (one place: the package, the save format and the ONNX export read it)."""

__version__ = "0.1.0"
