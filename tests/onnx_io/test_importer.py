"""cgru.from_onnx: graphs from torch.onnx.export and hand-built GRU graphs (every direction,
layout, reset form, activation, with sequence_lens and initial_h) load and equal their source
(PyTorch, ONNX Runtime, onnx's reference evaluator); cgru's own exports load back; unsupported
and malformed graphs give ValueErrors, hostile ones without hanging or exhausting memory."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_helpers import as_list, assert_close, run  # noqa: E402

import cgru  # noqa: E402
from cgru import GRU, Bidirectional, Dense, Dropout, Embedding, Sequential  # noqa: E402
from cgru.layers import ReverseTimesteps, SelectTimestep  # noqa: E402

FLOAT = TensorProto.FLOAT


def make_model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def tensor(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


# ----------------------------------------------------------------------------------- PyTorch
class TorchNet:
    """A two-layer bidirectional nn.GRU (batch_first) with a Linear on the last step or on every step."""

    @staticmethod
    def build(every_step: bool, batch_first: bool = True):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.gru = torch.nn.GRU(4, 5, num_layers=2, bidirectional=True, batch_first=batch_first)
                self.linear = torch.nn.Linear(10, 3)

            def forward(self, x):
                y, _ = self.gru(x)
                if not every_step:
                    y = y[:, -1] if batch_first else y[-1]
                return self.linear(y)

        torch.manual_seed(0)
        net = Net().eval()
        with torch.no_grad():  # non-zero biases everywhere
            for p in net.parameters():
                p.uniform_(-0.6, 0.6)
        return net


def torch_export(net, path, x, batch_axis=0):
    """torch.onnx.export with the TorchScript exporter (dynamo=False: it needs no onnxscript)."""
    import torch

    time_axis = 1 - batch_axis
    with warnings.catch_warnings():  # the exporter's deprecation and tracer notes
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.from_numpy(x),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {batch_axis: "batch", time_axis: "time"},
                                                            "y": {0: "batch"}})
    return str(path)


@pytest.mark.parametrize("every_step", [False, True])
def test_torch_export_of_bidirectional_two_layer_gru_equals_pytorch(tmp_path, rng, every_step):
    torch = pytest.importorskip("torch")
    net = TorchNet.build(every_step)
    x = rng.standard_normal((3, 7, 4)).astype(np.float32)
    model = cgru.from_onnx(torch_export(net, tmp_path / "net.onnx", x))
    kinds = [type(layer).__name__ for layer in model.layers]
    head = ["Dense"] if every_step else ["SelectTimestep", "Dense"]
    assert kinds == ["Bidirectional", "Bidirectional"] + head
    for batch, time in [(3, 7), (2, 11), (1, 1)]:  # other sizes than the export's
        x = rng.standard_normal((batch, time, 4)).astype(np.float32)
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        assert_close(model.predict(x), want)


def test_torch_export_of_time_major_gru(tmp_path, rng):
    """batch_first=False: the graph takes (time, batch, features); the imported model takes
    cgru's batch-major input."""
    torch = pytest.importorskip("torch")
    net = TorchNet.build(every_step=True, batch_first=False)
    x = rng.standard_normal((6, 2, 4)).astype(np.float32)
    model = cgru.from_onnx(torch_export(net, tmp_path / "tm.onnx", x, batch_axis=1))
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()  # (time, batch, 3)
    assert_close(model.predict(x.transpose(1, 0, 2)), want.transpose(1, 0, 2))


def test_torch_export_of_final_states(tmp_path, rng):
    """The usual classifier head: the concatenated final states of the last layer."""
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(4, 5, bidirectional=True, batch_first=True)
            self.head = torch.nn.Linear(10, 2)

        def forward(self, x):
            _, h = self.gru(x)
            return torch.softmax(self.head(torch.cat([h[-2], h[-1]], dim=1)), dim=-1)

    torch.manual_seed(1)
    net = Net().eval()
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    model = cgru.from_onnx(torch_export(net, tmp_path / "h.onnx", x))
    with torch.no_grad():
        assert_close(model.predict(x), net(torch.from_numpy(x)).numpy())


# ----------------------------------------------------------------------------- hand-built
def gru_graph(rng, direction, layout, linear_before_reset, *, lengths=False, initial_h=None, bias=True,
              activations=None, output="Y", batch=3, time=5, inputs=4, hidden=3, dtype=np.float32):
    """One GRU node whose output ``output`` ("Y" or "Y_h") is the graph output; returns the model
    and the weights (for building twins)."""
    nd = 2 if direction == "bidirectional" else 1
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    w = rng.uniform(-0.7, 0.7, (nd, 3 * hidden, inputs)).astype(dtype)
    r = rng.uniform(-0.7, 0.7, (nd, 3 * hidden, hidden)).astype(dtype)
    b = rng.uniform(-0.7, 0.7, (nd, 6 * hidden)).astype(dtype)
    inits = [tensor("W", w), tensor("R", r)] + ([tensor("B", b)] if bias else [])
    x_shape = ["time", "batch", inputs] if layout == 0 else ["batch", "time", inputs]
    graph_inputs = [helper.make_tensor_value_info("x", elem, x_shape)]
    node_inputs = ["x", "W", "R", "B" if bias else ""]
    if lengths:
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["batch"]))
    node_inputs.append("sequence_lens" if lengths else "")
    if initial_h is not None:
        h_shape = (nd, batch, hidden) if layout == 0 else (batch, nd, hidden)
        inits.append(tensor("h0", np.zeros(h_shape, dtype)))
        node_inputs.append("h0")
    while node_inputs[-1] == "":
        node_inputs.pop()
    attrs = dict(hidden_size=hidden, direction=direction, linear_before_reset=linear_before_reset)
    if layout:
        attrs["layout"] = layout
    if activations:
        attrs.update(activations)
    outputs = ["Y", "Y_h"] if output == "Y" else ["", "Y_h"]
    node = helper.make_node("GRU", node_inputs, outputs, **attrs)
    out = helper.make_tensor_value_info(output, elem, [None] * (4 if output == "Y" else 3))
    return make_model([node], graph_inputs, [out], inits), attrs


def layout0_twin(model):
    """The same GRU with layout 0, for ONNX Runtime (whose GRU kernel supports only layout 0)."""
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    node = twin.graph.node[0]
    for attr in list(node.attribute):
        if attr.name == "layout":
            node.attribute.remove(attr)
    for init in twin.graph.initializer:
        if init.name == "h0":
            init.CopyFrom(tensor("h0", numpy_helper.to_array(init).transpose(1, 0, 2)))
    dims = twin.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param, dims[1].dim_param = "time", "batch"
    return twin


def to_cgru_layout(y, output, layout):
    """A raw GRU output as from_onnx returns it: batch-major, directions concatenated."""
    if output == "Y":
        y = y.transpose(2, 0, 1, 3) if layout == 0 else y  # -> (B, T, D, H)
    else:
        y = y.transpose(1, 0, 2) if layout == 0 else y  # -> (B, D, H)
    return y.reshape(*y.shape[:-2], -1)


ACTIVATIONS = {
    "default": None,
    "hard_sigmoid+relu": {"activations": ["HardSigmoid", "Relu"], "activation_alpha": [1 / 6],
                          "activation_beta": [0.5]},
    "sigmoid+affine": {"activations": ["Sigmoid", "Affine"], "activation_alpha": [1.0],
                       "activation_beta": [0.0]},
}


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("linear_before_reset", [0, 1])
@pytest.mark.parametrize("output", ["Y", "Y_h"])
@pytest.mark.parametrize("lengths", [False, True])
def test_single_gru_node_equals_onnx_runtime(rng, direction, layout, linear_before_reset, output, lengths):
    model, _ = gru_graph(rng, direction, layout, linear_before_reset, lengths=lengths, output=output,
                         initial_h=True if lengths else None)
    imported = cgru.from_onnx(model)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)  # batch-major
    feed = {"x": x if layout == 1 else x.transpose(1, 0, 2)}
    seq = np.array([5, 2, 0], np.int32)
    if lengths:
        feed["sequence_lens"] = seq
    graph_x = feed["x"] if layout == 0 else feed["x"].transpose(1, 0, 2)
    want = run(layout0_twin(model) if layout else model, {**feed, "x": graph_x})[0]
    if layout == 1:  # the twin ran time-major: bring its output to layout 1
        want = want.transpose(2, 0, 1, 3) if output == "Y" else want.transpose(1, 0, 2)
    assert_close(imported.predict(x, lengths=seq if lengths else None), to_cgru_layout(want, output, layout))


@pytest.mark.parametrize("name", ["hard_sigmoid+relu", "sigmoid+affine"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_gru_activations_equal_onnx_runtime(rng, name, direction):
    acts = ACTIVATIONS[name]
    if direction == "bidirectional":
        acts = {k: v * 2 for k, v in acts.items()}
    model, _ = gru_graph(rng, direction, 0, 1, activations=acts, bias=False)
    imported = cgru.from_onnx(model)
    gru = imported.layers[0] if direction == "forward" else imported.layers[0].forward_layer
    assert (gru.recurrent_activation, gru.activation) == {"hard_sigmoid+relu": ("hard_sigmoid", "relu"),
                                                          "sigmoid+affine": ("sigmoid", "linear")}[name]
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    want = run(model, {"x": x})[0]
    assert_close(imported.predict(x.transpose(1, 0, 2)), to_cgru_layout(want, "Y", 0))


def test_float64_graph_equals_reference_evaluator(rng):
    from onnx.reference import ReferenceEvaluator

    for layout in (0, 1):
        model, _ = gru_graph(rng, "bidirectional", layout, 0, dtype=np.float64)
        imported = cgru.from_onnx(model)
        assert imported.dtype == "float64"
        x = rng.standard_normal((3, 5, 4))
        want = ReferenceEvaluator(model).run(None, {"x": x if layout else x.transpose(1, 0, 2)})[0]
        np.testing.assert_allclose(imported.predict(x), to_cgru_layout(want, "Y", layout), rtol=1e-10,
                                   atol=1e-12)


def keras_style_graph(rng, vocabulary=9, embed=4, hidden=5, classes=3):
    """The glue a Keras-to-ONNX converter (tf2onnx) writes: float ids cast to int64, lengths from
    the non-zero ids, a zero initial state built from the input's shape, the last step sliced
    off the batch-major output, and a Gemm + Softmax head."""
    i64 = lambda name, v: tensor(name, np.array(v, np.int64))  # noqa: E731
    inits = [
        tensor("table", rng.uniform(-1, 1, (vocabulary, embed)).astype(np.float32)),
        tensor("W", rng.uniform(-0.7, 0.7, (1, 3 * hidden, embed)).astype(np.float32)),
        tensor("R", rng.uniform(-0.7, 0.7, (1, 3 * hidden, hidden)).astype(np.float32)),
        tensor("B", rng.uniform(-0.7, 0.7, (1, 6 * hidden)).astype(np.float32)),
        tensor("Wd", rng.uniform(-1, 1, (classes, hidden)).astype(np.float32)),
        tensor("bd", rng.uniform(-1, 1, classes).astype(np.float32)),
        i64("zero", 0), i64("axis0", [0]), i64("axis1", [1]), i64("one", [1]), i64("units", [hidden]),
        i64("last", [-1]), i64("end", [np.iinfo(np.int64).max]),
    ]
    n = helper.make_node
    nodes = [
        n("Cast", ["ids"], ["ids64"], to=TensorProto.INT64),
        n("Gather", ["table", "ids64"], ["emb"]),
        n("Equal", ["ids64", "zero"], ["pad"]), n("Not", ["pad"], ["real"]),
        n("Cast", ["real"], ["real32"], to=TensorProto.INT32),
        n("ReduceSum", ["real32", "axis1"], ["lens"], keepdims=0),
        n("Transpose", ["emb"], ["x_tbf"], perm=[1, 0, 2]),
        n("Shape", ["emb"], ["shape"]), n("Gather", ["shape", "zero"], ["batch"]),
        n("Unsqueeze", ["batch", "axis0"], ["batch1"]),
        n("Concat", ["one", "batch1", "units"], ["h_shape"], axis=0),
        n("ConstantOfShape", ["h_shape"], ["h0"]),
        n("GRU", ["x_tbf", "W", "R", "B", "lens", "h0"], ["Y", "Y_h"], hidden_size=hidden,
          linear_before_reset=1),
        n("Squeeze", ["Y", "axis1"], ["y_tbh"]), n("Transpose", ["y_tbh"], ["y_bth"], perm=[1, 0, 2]),
        n("Slice", ["y_bth", "last", "end", "axis1"], ["y_last1"]),
        n("Squeeze", ["y_last1", "axis1"], ["y_last"]),
        n("Gemm", ["y_last", "Wd", "bd"], ["logits"], transB=1), n("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    return make_model(nodes, [helper.make_tensor_value_info("ids", FLOAT, ["batch", "time"])],
                      [helper.make_tensor_value_info("probs", FLOAT, ["batch", classes])], inits)


def test_keras_style_glue_with_float_ids_and_lengths_from_ids(rng):
    model = keras_style_graph(rng)
    imported = cgru.from_onnx(model)
    kinds = [type(layer).__name__ for layer in imported.layers]
    assert kinds == ["Embedding", "GRU", "SelectTimestep", "Dense"]
    assert imported.layers[0].mask_zero
    ids = rng.integers(1, 9, (4, 6)).astype(np.float32)
    ids[1, 4:] = 0
    ids[2, 1:] = 0
    assert_close(imported.predict(ids), run(model, {"ids": ids})[0])


# --------------------------------------------------------------------------- round trips
ROUND_TRIP_MODELS = {
    "gru-backwards-hard-sigmoid": lambda: [GRU(5, go_backwards=True, return_sequences=True, reset_after=False,
                                               recurrent_activation="hard_sigmoid", activation="linear")],
    "gru-state": lambda: [GRU(5, return_state=True, go_backwards=True)],
    "bi-concat": lambda: [Bidirectional(GRU(5, return_sequences=True)), GRU(3)],
    "bi-ave-state": lambda: [Bidirectional(GRU(4, return_sequences=True, return_state=True),
                                           merge_mode="ave")],
    "bi-dense-last": lambda: [Bidirectional(GRU(4, return_sequences=True)), Dense(2, activation="tanh")],
    "bi-none": lambda: [Bidirectional(GRU(4, return_sequences=True), merge_mode=None)],
    "bi-none-final": lambda: [Bidirectional(GRU(4), merge_mode=None)],
    "bi-mul-swapped": lambda: [Bidirectional(GRU(4, return_sequences=True, go_backwards=True),
                                             backward_layer=GRU(4, return_sequences=True), merge_mode="mul")],
    "bi-units": lambda: [Bidirectional(GRU(4, return_sequences=True), backward_layer=GRU(
        2, return_sequences=True, go_backwards=True, recurrent_activation="hard_sigmoid"))],
    "stack-dense": lambda: [Dense(6, activation="relu"), Bidirectional(GRU(4, return_sequences=True)),
                            Dropout(0.2), ReverseTimesteps(), SelectTimestep(1),
                            Dense(2, activation="softmax")],
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP_MODELS))
@pytest.mark.parametrize("ragged", [False, True])
def test_cgru_exports_load_back(rng, name, ragged):
    cgru.set_random_seed(7)
    model = Sequential(ROUND_TRIP_MODELS[name]())
    model.build((None, None, 3))
    back = cgru.from_onnx(cgru.to_onnx(model, sequence_lens=ragged))
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    lengths = [6, 3, 1, 5] if ragged else None
    want, got = as_list(model.predict(x, lengths=lengths)), as_list(back.predict(x, lengths=lengths))
    assert_close(got, want, rtol=1e-6)


def test_embedding_with_mask_zero_loads_back(rng):
    model = Sequential([Embedding(10, 4, mask_zero=True, seed=1),
                        Bidirectional(GRU(5, return_sequences=True)), Dense(3)])
    model.build((None, None))
    ids = rng.integers(1, 10, (3, 6))
    ids[1, 2:] = 0
    for lengths in (None, [4, 6, 5]):  # with sequence_lens too: the smaller of the two applies
        back = cgru.from_onnx(cgru.to_onnx(model, sequence_lens=lengths is not None))
        assert back.layers[0].mask_zero
        assert_close(back.predict(ids, lengths=lengths), model.predict(ids, lengths=lengths), rtol=1e-6)


def test_from_path_and_bytes(tmp_path, rng):
    model = Sequential([GRU(4, input_shape=(None, 3))])
    path = tmp_path / "m.onnx"
    proto = cgru.to_onnx(model, path)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    for source in (path, str(path), proto.SerializeToString()):
        assert_close(cgru.from_onnx(source).predict(x), model.predict(x), rtol=1e-6)


# --------------------------------------------------------------------------------- errors
def gru_then(rng, op_type, **attrs):
    """A GRU graph whose Y_h goes through one more node of ``op_type``."""
    model, _ = gru_graph(rng, "forward", 0, 1, output="Y_h")
    model.graph.initializer.append(tensor("axis0", np.array([0], np.int64)))
    model.graph.node.append(helper.make_node("Squeeze", ["Y_h", "axis0"], ["h"]))
    model.graph.node.append(helper.make_node(op_type, ["h"], ["z"], name="the_node", **attrs))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("z", FLOAT, [None] * 2))
    return model


def test_unsupported_op_is_named(rng):
    with pytest.raises(ValueError, match=r"node #2 'the_node' \(LeakyRelu\).*not supported"):
        cgru.from_onnx(gru_then(rng, "LeakyRelu", alpha=0.1))


def test_activation_without_a_dense_layer_is_refused(rng):
    with pytest.raises(ValueError, match=r"'the_node' \(Tanh\).*Dense layer's activation"):
        cgru.from_onnx(gru_then(rng, "Tanh"))


def test_lstm_is_refused(rng):
    x = helper.make_tensor_value_info("x", FLOAT, ["time", "batch", 4])
    node = helper.make_node("LSTM", ["x", "W", "R"], ["Y"], hidden_size=2, name="lstm")
    model = make_model([node], [x], [helper.make_tensor_value_info("Y", FLOAT, [None] * 4)],
                       [tensor("W", np.zeros((1, 8, 4), np.float32)),
                        tensor("R", np.zeros((1, 8, 2), np.float32))])
    with pytest.raises(ValueError, match=r"'lstm' \(LSTM\).*not supported"):
        cgru.from_onnx(model)


@pytest.mark.parametrize("case", ["nonzero-initial-h", "clip", "keras2-hard-sigmoid", "elu", "other-domain"])
def test_unsupported_gru_settings(rng, case):
    if case == "nonzero-initial-h":
        model, _ = gru_graph(rng, "forward", 0, 1, initial_h=True)
        h0 = next(i for i in model.graph.initializer if i.name == "h0")
        h0.CopyFrom(tensor("h0", np.ones((1, 3, 3), np.float32)))
        match = "initial_h must be absent or zero"
    elif case == "clip":
        model, _ = gru_graph(rng, "forward", 0, 1, activations={"clip": 3.0})
        match = "clip"
    elif case == "keras2-hard-sigmoid":
        model, _ = gru_graph(rng, "forward", 0, 1, activations={
            "activations": ["HardSigmoid", "Tanh"], "activation_alpha": [0.2], "activation_beta": [0.5]})
        match = r"HardSigmoid\(alpha=0.2, beta=0.5\) is not supported"
    elif case == "elu":
        model, _ = gru_graph(rng, "forward", 0, 1, activations={"activations": ["Sigmoid", "Elu"]})
        match = "candidate activation Elu is not supported"
    else:
        model, _ = gru_graph(rng, "forward", 0, 1)
        model.graph.node[0].domain = "com.example"
        model.opset_import.append(helper.make_opsetid("com.example", 1))
        match = "domain 'com.example'"
    with pytest.raises(ValueError, match=match):
        cgru.from_onnx(model)


def test_initial_state_as_graph_input_is_refused(rng):
    model, _ = gru_graph(rng, "forward", 0, 1)
    model.graph.input.append(helper.make_tensor_value_info("h0", FLOAT, [1, "batch", 3]))
    model.graph.node[0].input.extend(["", "h0"])
    with pytest.raises(ValueError, match="one data input"):
        cgru.from_onnx(model)


def test_branching_graph_is_refused(rng):
    """Two different GRU nodes on the same input, added: not a chain of layers."""
    model = gru_then(rng, "Identity")
    model.graph.node.append(helper.make_node("GRU", ["x", "W", "R", "B"], ["", "Y_h2"], hidden_size=3))
    model.graph.node.append(helper.make_node("Squeeze", ["Y_h2", "axis0"], ["h2"]))
    model.graph.node.append(helper.make_node("Add", ["z", "h2"], ["sum"], name="add"))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("sum", FLOAT, [None] * 2))
    with pytest.raises(ValueError, match=r"'add'.*same direction"):
        cgru.from_onnx(model)


def test_malformed_inputs():
    with pytest.raises(ValueError, match="not an ONNX model"):
        cgru.from_onnx(b"\x08\x07 certainly not protobuf \xff\xff\xff")
    with pytest.raises(FileNotFoundError, match="no such file"):
        cgru.from_onnx("/nonexistent/model.onnx")
    with pytest.raises(TypeError, match="path, bytes or an onnx.ModelProto"):
        cgru.from_onnx(42)
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", "time", 4])
    dangling = make_model([helper.make_node("Relu", ["nowhere"], ["y"])], [x],
                          [helper.make_tensor_value_info("y", FLOAT, [None] * 3)])
    with pytest.raises(ValueError):
        cgru.from_onnx(dangling)


@pytest.mark.parametrize("case", ["hidden-size", "perm", "gather-axis", "two-wildcards", "slice-features"])
def test_malformed_nodes_give_value_errors(rng, case):
    """Nodes whose attributes or inputs do not fit the data: ValueErrors naming the node."""
    model = gru_then(rng, "Identity")
    n = helper.make_node
    extra = []
    if case == "hidden-size":
        attr = next(a for a in model.graph.node[0].attribute if a.name == "hidden_size")
        attr.i = 7
        match = r"node #0 \(GRU\): hidden_size 7"
    elif case == "perm":
        extra = [n("Transpose", ["z"], ["out"], perm=[0, 0], name="bad")]
        match = r"'bad' \(Transpose\): perm"
    elif case == "gather-axis":
        extra = [n("Gather", ["z", "axis0"], ["out"], axis=5, name="bad")]
        match = r"'bad' \(Gather\)"
    elif case == "two-wildcards":
        model.graph.initializer.append(tensor("shape", np.array([-1, -1], np.int64)))
        extra = [n("Reshape", ["z", "shape"], ["out"], name="bad")]
        match = r"'bad' \(Reshape\): more than one -1"
    else:
        model.graph.initializer.extend([tensor(name, np.array([v], np.int64))
                                        for name, v in (("s0", 0), ("s1", 2), ("ax", 1))])
        extra = [n("Slice", ["z", "s0", "s1", "ax"], ["out"], name="bad")]
        match = r"'bad' \(Slice\): slices part of the F axis"
    if extra:
        model.graph.node.extend(extra)
        model.graph.output[0].CopyFrom(helper.make_tensor_value_info("out", FLOAT, [None] * 2))
    with pytest.raises(ValueError, match=match):
        cgru.from_onnx(model)


def test_huge_declared_initializer_fails_fast(rng):
    """An initializer declaring 2**40 elements with a few bytes behind it, or a shape that its
    data does not fill: errors, and no allocation."""
    for dims, match in (([1 << 20, 1 << 20], "more than"), ([1, 9, 5], "holds 144")):
        model, _ = gru_graph(rng, "forward", 0, 1)
        w = next(i for i in model.graph.initializer if i.name == "W")
        del w.dims[:]
        w.dims.extend(dims)
        with pytest.raises(ValueError, match=f"initializer 'W'.*{match}"):
            cgru.from_onnx(model)


def test_huge_computed_tensor_is_refused(rng):
    """ConstantOfShape asked for 10**12 elements: refused before any memory is spent."""
    model, _ = gru_graph(rng, "forward", 0, 1, output="Y_h")
    model.graph.initializer.append(tensor("big", np.array([10 ** 6, 10 ** 6], np.int64)))
    model.graph.node.insert(0, helper.make_node("ConstantOfShape", ["big"], ["zeros"], name="alloc"))
    model.graph.node.append(helper.make_node("Add", ["Y_h", "zeros"], ["z"]))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("z", FLOAT, [None] * 3))
    with pytest.raises(ValueError, match=r"'alloc'.*larger than"):
        cgru.from_onnx(model)


def test_deep_graph_imports_without_recursion(rng):
    """20,000 Identity nodes between the GRU and the output: read iteratively."""
    model, _ = gru_graph(rng, "forward", 0, 1, output="Y_h")
    previous = "Y_h"
    for i in range(20_000):
        model.graph.node.append(helper.make_node("Identity", [previous], [f"i{i}"]))
        previous = f"i{i}"
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(previous, FLOAT, [None] * 3))
    imported = cgru.from_onnx(model)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    want = run(model, {"x": x.transpose(1, 0, 2)})[0]
    assert_close(imported.predict(x), to_cgru_layout(want, "Y_h", 0))


def test_too_many_nodes_is_refused(rng, monkeypatch):
    from cgru.onnx import _load

    monkeypatch.setattr(_load, "MAX_NODES", 10)
    model, _ = gru_graph(rng, "forward", 0, 1, output="Y_h")
    for i in range(10):
        model.graph.node.append(helper.make_node("Identity", ["Y_h" if i == 0 else f"i{i - 1}"], [f"i{i}"]))
    with pytest.raises(ValueError, match="at most 10"):
        cgru.from_onnx(model)
