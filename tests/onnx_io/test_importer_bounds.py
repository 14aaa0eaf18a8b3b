"""from_onnx's memory is bounded by the graph as a whole, not only tensor by tensor: a small
model whose nodes each compute a large tensor from the last is refused before the tensors add
up; weights that the model's dtype cannot hold are refused, never turned into inf; a missing
file is a FileNotFoundError, as for load_model."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_helpers import assert_close, run  # noqa: E402

import cgru  # noqa: E402
from cgru.onnx import _fold  # noqa: E402

FLOAT = TensorProto.FLOAT
# Smaller than the real limits, so that the graphs below stay small and fast: one computed
# tensor of at most 2**20 elements, 2**22 in all (16 MiB of float32).
TENSOR_LIMIT = 1 << 20
TOTAL_LIMIT = 1 << 22
SIDE = 1024  # a SIDE x SIDE tensor is one whole tensor's worth


@pytest.fixture
def small_limits(monkeypatch):
    monkeypatch.setattr(_fold, "MAX_FOLDED_ELEMENTS", TENSOR_LIMIT)
    monkeypatch.setattr(_fold, "MAX_FOLDED_TOTAL", TOTAL_LIMIT)


def tensor(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def make_model(nodes, initializers, features=3, output="y"):
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", "time", features])
    y = helper.make_tensor_value_info(output, FLOAT, [None] * 3)
    graph = helper.make_graph(nodes, "g", [x], [y], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def chain(op, count, **attrs):
    """ConstantOfShape(SIDE, SIDE), then ``count`` nodes of ``op``, each on the one before."""
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["c0"])]
    for i in range(count):
        inputs = [f"c{i}", f"c{i}"] if op == "Add" else [f"c{i}"]
        nodes.append(helper.make_node(op, inputs, [f"c{i + 1}"], **attrs))
    nodes.append(helper.make_node("Add", ["x", f"c{count}"], ["y"]))
    return make_model(nodes, [tensor("shape", np.array([SIDE, SIDE], np.int64))])


def scaled_kernels(count):
    """A Dense kernel (SIDE x SIDE, computed) then ``count`` Mul nodes scaling it."""
    ones = tensor("", np.ones(1, np.float32))
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["kernel"], value=ones),
             helper.make_node("MatMul", ["x", "kernel"], ["d0"])]
    for i in range(count):
        nodes.append(helper.make_node("Mul", [f"d{i}", "two"], [f"d{i + 1}"]))
    inits = [tensor("shape", np.array([SIDE, SIDE], np.int64)), tensor("two", np.float32(2))]
    return make_model(nodes, inits, features=SIDE, output=f"d{count}")


def peak_while(fn):
    """``fn()``'s peak traced memory (bytes) and the exception it raised (None if none)."""
    tracemalloc.start()
    raised = None
    try:
        fn()
    except Exception as exc:
        raised = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


AMPLIFIERS = {
    "Add chain": lambda: chain("Add", 40),
    "Neg chain": lambda: chain("Neg", 40),
    "Cast chain": lambda: chain("Cast", 40, to=FLOAT),
    "Mul-scaled kernels": lambda: scaled_kernels(40),
}


@pytest.mark.parametrize("name", list(AMPLIFIERS))
def test_computed_tensors_are_bounded_for_the_whole_graph(small_limits, name):
    """Forty nodes each computing a tensor at the per-tensor limit from the one before (a
    1-2 KB model asking for 40 such tensors): refused once the total passes, with memory
    bounded by the total."""
    model = AMPLIFIERS[name]()
    assert model.ByteSize() < 4096
    peak, raised = peak_while(lambda: cgru.from_onnx(model))
    assert isinstance(raised, ValueError) and "for a whole graph" in str(raised), raised
    assert peak < 2 * TOTAL_LIMIT * 4, f"peak {peak / 2**20:.0f} MiB"


def test_gather_is_bounded_by_its_output(small_limits):
    """Gather of a small table by many indices computes a tensor larger than either."""
    nodes = [helper.make_node("ConstantOfShape", ["table_shape"], ["table"]),
             helper.make_node("ConstantOfShape", ["index_shape"], ["index"],
                              value=tensor("", np.zeros(1, np.int64))),
             helper.make_node("Gather", ["table", "index"], ["big"], name="amplify"),
             helper.make_node("Add", ["x", "big"], ["y"])]
    model = make_model(nodes, [tensor("table_shape", np.array([SIDE, 64], np.int64)),
                               tensor("index_shape", np.array([SIDE, 32], np.int64))])
    peak, raised = peak_while(lambda: cgru.from_onnx(model))
    assert isinstance(raised, ValueError) and "'amplify' (Gather)" in str(raised), raised
    assert "larger than" in str(raised)
    assert peak < 2 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def gru_model(w, r, initial_h="", nodes=(), initializers=()):
    """One layout-0 GRU node (hidden size 3) on x (time, batch, 4), after ``nodes``; its Y_h is
    the output."""
    x = helper.make_tensor_value_info("x", FLOAT, ["time", "batch", 4])
    y = helper.make_tensor_value_info("y", FLOAT, [None] * 3)
    inputs = ["x", "W", "R"] + (["", "", initial_h] if initial_h else [])
    gru = helper.make_node("GRU", inputs, ["", "y"], hidden_size=3)
    inits = [tensor("W", w), tensor("R", r), *initializers]
    graph = helper.make_graph([*nodes, gru], "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def gru_weights(rng, dtype=np.float32):
    """W (in ``dtype``) and R (float32) for :func:`gru_model`."""
    w = rng.uniform(-0.7, 0.7, (1, 9, 4)).astype(dtype)
    return w, rng.uniform(-0.7, 0.7, (1, 9, 3)).astype(np.float32)


def test_a_failed_reading_of_the_graph_is_released_before_the_next(small_limits, rng):
    """A layout-0 GRU mismatches the batch-major reading tried first and is read time-major
    next: the first reading's computed tensors (its zero initial state, three tensors here)
    are gone by the time the second computes its own."""
    w, r = gru_weights(rng)
    zeros = [helper.make_node("ConstantOfShape", ["shape"], ["h0"]),
             helper.make_node("Add", ["h0", "h0"], ["h1"]),
             helper.make_node("Add", ["h1", "h1"], ["h2"])]
    model = gru_model(w, r, "h2", zeros, [tensor("shape", np.array([SIDE, SIDE], np.int64))])
    imported = []
    peak, raised = peak_while(lambda: imported.append(cgru.from_onnx(model)))
    assert raised is None, raised
    one_reading = 3 * SIDE * SIDE * 4
    assert peak < 1.5 * one_reading, f"peak {peak / 2**20:.1f} MiB, one reading {one_reading / 2**20:.0f} MiB"
    data = rng.standard_normal((2, 5, 4)).astype(np.float32)
    want = run(gru_model(w, r), {"x": data.transpose(1, 0, 2)})[0][0]  # a zero initial state
    assert_close(imported[0].predict(data), want)


# ------------------------------------------------------------------------ weights out of range
def test_an_initializer_beyond_the_models_dtype_is_refused_by_name(rng):
    w, r = gru_weights(rng, np.float64)
    w[0, 0, 0] = 1e300
    with pytest.raises(ValueError, match=r"initializer 'W' holds values up to 1e\+300, beyond the float32"):
        cgru.from_onnx(gru_model(w, r))


def test_weights_computed_beyond_the_models_dtype_are_refused(rng):
    """A float64 kernel within float32's range, scaled beyond it by Gemm's alpha: the layer's
    weights are converted with set_weights' check, not silently to inf."""
    kernel = np.full((4, 2), 1e38)
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", FLOAT, [None] * 2)
    node = helper.make_node("Gemm", ["x", "K"], ["y"], alpha=10.0)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [tensor("K", kernel)]),
                              opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match="beyond the float32 range"):
        cgru.from_onnx(model)


def test_float64_weights_within_range_still_import(rng):
    w, r = gru_weights(rng, np.float64)
    imported = cgru.from_onnx(gru_model(w, r))
    data = rng.standard_normal((2, 5, 4)).astype(np.float32)
    want = run(gru_model(w.astype(np.float32), r), {"x": data.transpose(1, 0, 2)})[0][0]
    assert_close(imported.predict(data), want)


# ------------------------------------------------------------------------------- missing file
def test_a_missing_path_raises_file_not_found_as_load_model_does(tmp_path):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        cgru.from_onnx(missing)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        cgru.load_model(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="not a regular file"):
        cgru.from_onnx(tmp_path)


def test_shape_side_range_keeps_float_operands():
    """A constant float Range folds to ONNX's values (operands are not truncated to ints)."""
    def const(v):
        return _fold.Const(np.asarray([v], np.float32))

    (out,) = _fold.fold("Range", [const(0.5), const(2.5), const(0.5)], {}, 17, _fold.Budget())
    np.testing.assert_array_equal(out.array, np.arange(0.5, 2.5, 0.5, dtype=np.float32))


@pytest.mark.parametrize("start,end", [(-10, None), (0, -10), (1, 10), (5, None), (-2, -1)])
def test_shape_side_shape_clamps_start_and_end_as_onnx_does(start, end):
    data = _fold.Const(np.zeros((2, 3, 4), np.float32))
    attrs = {"start": start} if end is None else {"start": start, "end": end}
    (out,) = _fold.fold("Shape", [data], attrs, 17, _fold.Budget())
    np.testing.assert_array_equal(np.asarray(out.concrete() if hasattr(out, "concrete") else out.array),
                                  np.asarray([2, 3, 4])[start:end])
