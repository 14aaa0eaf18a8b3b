"""Reading an ONNX model for import, defensively: every size is checked before memory is spent
on it, so a hostile file gives a ValueError, not a hang or an exhausted machine.

- the model: a path, bytes, or an ``onnx.ModelProto``; external tensor data is refused;
- :func:`tensor_array`: an initializer or Constant tensor as a NumPy array, after checking that
  its declared shape matches the data actually present;
- :class:`GraphView`: the nodes that compute the graph outputs, in an order where each node
  follows its inputs (found iteratively: deep graphs cost no recursion).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: Upper bounds on what an imported graph may ask for.
MAX_NODES = 100_000
MAX_TENSOR_ELEMENTS = 1 << 31  # one initializer (8 GiB of float32 would already be present in the file)
MAX_FOLDED_ELEMENTS = 1 << 24  # a tensor the importer computes itself (shapes, constant folding)
MAX_FOLDED_TOTAL = 1 << 26  # all the tensors the importer computes for one reading of a graph

TENSOR_TYPES = {  # TensorProto data type -> (numpy dtype, the repeated field holding it when not raw)
    1: (np.float32, "float_data"), 2: (np.uint8, "int32_data"), 3: (np.int8, "int32_data"),
    4: (np.uint16, "int32_data"), 5: (np.int16, "int32_data"), 6: (np.int32, "int32_data"),
    7: (np.int64, "int64_data"), 9: (np.bool_, "int32_data"), 10: (np.float16, "int32_data"),
    11: (np.float64, "double_data"), 12: (np.uint32, "uint64_data"), 13: (np.uint64, "uint64_data"),
}


def load_model(onnx: Any, source: Any) -> Any:
    """An ``onnx.ModelProto`` from a path, bytes or a ModelProto (checked with onnx.checker)."""
    if isinstance(source, onnx.ModelProto):
        model = source
    elif isinstance(source, (bytes, bytearray, memoryview)):
        model = onnx.ModelProto()
        try:
            model.ParseFromString(bytes(source))
        except Exception as exc:  # protobuf's DecodeError and friends
            raise ValueError(f"the bytes are not an ONNX model: {exc}") from None
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such file: {path!r}")
        if not os.path.isfile(path):
            raise ValueError(f"{path!r} is not an ONNX model file: it is not a regular file")
        try:
            model = onnx.load_model(path, load_external_data=False)
        except Exception as exc:
            raise ValueError(f"{path!r} is not an ONNX model: {exc}") from None
    else:
        raise TypeError(f"from_onnx expects a path, bytes or an onnx.ModelProto, got {type(source).__name__}")
    if not model.HasField("graph"):
        raise ValueError("the ONNX model has no graph")
    if len(model.graph.node) > MAX_NODES:
        raise ValueError(f"the graph has {len(model.graph.node)} nodes; at most {MAX_NODES} are imported")
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            raise ValueError(f"initializer {tensor.name!r} keeps its data in an external file, which "
                             "from_onnx does not read; save the model with its data inside")
        check_tensor(tensor, f"initializer {tensor.name!r}")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ValueError(f"the ONNX model is malformed (onnx.checker): {exc}") from None
    return model


def tensor_array(onnx: Any, tensor: Any, what: str) -> np.ndarray:
    """The values of a TensorProto, once its declared size is known to match its data."""
    check_tensor(tensor, what)
    return np.array(onnx.numpy_helper.to_array(tensor), copy=True)


def check_tensor(tensor: Any, what: str) -> None:
    """ValueError unless the TensorProto's declared shape and type match the data it holds."""
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims):
        raise ValueError(f"{what} has negative dimensions {dims}")
    count = element_count(dims, MAX_TENSOR_ELEMENTS)
    if count is None:
        raise ValueError(f"{what} declares {dims} elements, more than the {MAX_TENSOR_ELEMENTS} allowed")
    if tensor.data_type not in TENSOR_TYPES:
        raise ValueError(f"{what} has data type {tensor.data_type}, which from_onnx does not read")
    if tensor.HasField("segment"):
        raise ValueError(f"{what} is a segmented tensor, which from_onnx does not read")
    dtype, field = TENSOR_TYPES[tensor.data_type]
    if tensor.raw_data:
        present = len(tensor.raw_data)
        expected = count * np.dtype(dtype).itemsize
    else:
        present = len(getattr(tensor, field))
        expected = count
    if present != expected:
        unit = "bytes" if tensor.raw_data else "values"
        raise ValueError(f"{what} declares shape {dims} ({expected} {unit}) but holds {present}")


def element_count(dims: Any, limit: int) -> int | None:
    """The number of elements of a tensor of shape ``dims`` (ints >= 0), or None when it is
    more than ``limit`` (found without multiplying beyond it, however many dimensions)."""
    count = 1
    for d in dims:
        count *= d
        if count > limit:
            return None
    return count


class GraphView:
    """The nodes of a graph that its outputs depend on, ordered so that inputs come first."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        producers: dict[str, int] = {}
        for index, node in enumerate(graph.node):
            for name in node.output:
                if not name:
                    continue
                if name in producers:
                    raise ValueError(f"tensor {name!r} is produced by two nodes")
                producers[name] = index
        self.producers = producers
        self.order = self._ordered_needed([o.name for o in graph.output])

    def label(self, index: int) -> str:
        node = self.graph.node[index]
        return f"node #{index}" + (f" {node.name!r}" if node.name else "") + f" ({node.op_type})"

    def _ordered_needed(self, targets: list[str]) -> list[int]:
        """Indices of the nodes that the targets depend on, each after the nodes feeding it."""
        nodes = self.graph.node
        state: dict[int, int] = {}  # 1: being visited, 2: done
        order: list[int] = []
        for target in targets:
            if target not in self.producers:
                continue
            stack = [(self.producers[target], False)]
            while stack:
                index, expanded = stack.pop()
                if expanded:
                    state[index] = 2
                    order.append(index)
                    continue
                if state.get(index) == 2:
                    continue
                if state.get(index) == 1:
                    raise ValueError(f"the graph has a cycle through {self.label(index)}")
                state[index] = 1
                stack.append((index, True))
                for name in nodes[index].input:
                    source = self.producers.get(name) if name else None
                    if source is None:
                        continue
                    if state.get(source) == 1:
                        raise ValueError(f"the graph has a cycle through {self.label(source)}")
                    if state.get(source) != 2:
                        stack.append((source, False))
        return order
