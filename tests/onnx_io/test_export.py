"""cgru.to_onnx: exported graphs pass onnx.checker and, run in ONNX Runtime (an independent GRU
implementation), equal ``predict`` for every layer and option, with ragged lengths, and in the
streaming one-step form; float64 graphs through onnx's reference evaluator; plugin hooks and the
errors for what cannot be exported."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_helpers import assert_close, run, session  # noqa: E402

import cgru  # noqa: E402
from cgru import GRU, Bidirectional, Dense, Dropout, Embedding, Layer, Sequential, register_layer  # noqa: E402
from cgru.layers import ReverseTimesteps, SelectTimestep  # noqa: E402
from cgru.onnx._gru_spec import activation_attributes  # noqa: E402

ACTIVATION_PAIRS = [("tanh", "sigmoid"), ("relu", "hard_sigmoid"), ("linear", "sigmoid"),
                    ("linear", "hard_sigmoid")]
RAGGED = [6, 2, 0, 4]  # a sequence of length 0 included


def gru(units, seed, **kwargs):
    # random biases, so that both bias rows and their placement matter
    return GRU(units, bias_initializer="glorot_uniform", seed=seed, **kwargs)


def export_and_run(model, x, lengths=None, **kwargs):
    proto = cgru.to_onnx(model, sequence_lens=lengths is not None, **kwargs)
    onnx.checker.check_model(proto, full_check=True)
    feed = {"input": x}
    if lengths is not None:
        feed["sequence_lens"] = np.asarray(lengths, np.int32)
    return run(proto, feed)


def check_model(model, x, lengths=None):
    want = model.predict(x, lengths=lengths)
    got = export_and_run(model, x, lengths)
    assert_close(got if isinstance(want, list) else got[0], want)


@pytest.fixture
def x(rng):
    return rng.standard_normal((4, 6, 3)).astype(np.float32)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("activation,recurrent_activation", ACTIVATION_PAIRS)
@pytest.mark.parametrize("ragged", [False, True])
def test_gru_equals_predict(x, reset_after, go_backwards, return_sequences, activation, recurrent_activation,
                            ragged):
    model = Sequential([gru(5, 1, reset_after=reset_after, go_backwards=go_backwards,
                            return_sequences=return_sequences, return_state=True, activation=activation,
                            recurrent_activation=recurrent_activation, input_shape=(None, 3))])
    check_model(model, x, RAGGED if ragged else None)


def test_gru_without_bias(x):
    for reset_after in (True, False):
        model = Sequential([GRU(5, use_bias=False, reset_after=reset_after, return_sequences=True, seed=2,
                                input_shape=(None, 3))])
        check_model(model, x)
        check_model(model, x, RAGGED)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("ragged", [False, True])
def test_bidirectional_every_merge_mode(x, merge_mode, return_sequences, return_state, ragged):
    model = Sequential([Bidirectional(gru(5, 3, return_sequences=return_sequences, return_state=return_state),
                                      merge_mode=merge_mode, input_shape=(None, 3))])
    check_model(model, x, RAGGED if ragged else None)


@pytest.mark.parametrize("case", ["units", "activations", "swapped", "reset_after_false"])
@pytest.mark.parametrize("ragged", [False, True])
def test_bidirectional_with_a_custom_backward_layer(x, case, ragged):
    """Directions that cannot share one ONNX GRU node (different units, activation parameters
    that would read differently by position and in turn) and a forward layer going backwards."""
    if case == "units":
        layer = Bidirectional(gru(5, 4, return_sequences=True),
                              backward_layer=gru(3, 5, return_sequences=True, go_backwards=True))
    elif case == "activations":
        layer = Bidirectional(gru(4, 4, return_sequences=True),
                              backward_layer=gru(4, 5, return_sequences=True, go_backwards=True,
                                                 recurrent_activation="hard_sigmoid", activation="linear"))
    elif case == "swapped":
        layer = Bidirectional(gru(4, 4, return_sequences=True, go_backwards=True),
                              backward_layer=gru(4, 5, return_sequences=True))
    else:
        layer = Bidirectional(gru(4, 4, return_sequences=True, reset_after=False), merge_mode="ave")
    model = Sequential([layer])
    model.build((None, None, 3))
    check_model(model, x, RAGGED if ragged else None)


def test_activation_parameters_read_the_same_by_position_and_in_turn():
    """The alpha/beta lists written for a GRU node mean the same whichever way a runtime hands
    them out (ONNX Runtime: in turn to the functions that take one; others: by position)."""
    takes = {"HardSigmoid", "Affine"}
    choices = [("Sigmoid", None, None), ("HardSigmoid", 1 / 6, 0.5)], [("Tanh", None, None),
                                                                          ("Affine", 1.0, 0.0)]
    for f1, g1, f2, g2 in itertools.product(choices[0], choices[1], choices[0], choices[1]):
        for functions in ([f1, g1], [f1, g1, f2, g2]):
            attrs = activation_attributes(functions)
            if attrs is None:  # then the exporter uses one node per direction
                assert len(functions) == 4
                continue
            for key, col in (("activation_alpha", 1), ("activation_beta", 2)):
                values = attrs.get(key, [])
                in_turn = iter(values)
                for pos, f in enumerate(functions):
                    if f[0] in takes:
                        assert values[pos] == pytest.approx(f[col])  # by position
                        assert next(in_turn) == pytest.approx(f[col])  # in turn


def test_stacked_layers_with_embedding_dropout_and_dense(rng):
    model = Sequential([
        Embedding(12, 5, mask_zero=True, input_shape=(None,), seed=1),
        Bidirectional(gru(6, 2, return_sequences=True)),
        gru(4, 3, return_sequences=True, go_backwards=True),
        Dropout(0.5),
        Dense(3, activation="softmax", seed=4),
    ])
    ids = rng.integers(1, 12, (4, 7))
    ids[1, 3:] = 0
    ids[2, 6:] = 0
    ids[3, :] = 0
    check_model(model, ids)
    check_model(model, ids, [7, 7, 4, 5])  # the smaller of these and the ids' own lengths


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "softmax"])
def test_dense_on_two_and_three_dimensions(x, activation):
    def dense(units, seed, **kwargs):
        return Dense(units, activation=activation, bias_initializer="ones", seed=seed, **kwargs)

    model = Sequential([dense(4, 1, input_shape=(None, 3)), gru(5, 2, return_sequences=True), dense(3, 3)])
    check_model(model, x)
    check_model(model, x, RAGGED)  # outputs past each length are zero, as cgru returns them
    flat = Sequential([gru(5, 2, input_shape=(None, 3)), dense(4, 5), dense(2, 6)])
    check_model(flat, x)
    dense_only = Sequential([dense(4, 7, input_shape=(3,))])
    check_model(dense_only, x[:, 0])


def test_time_step_layers(x):
    model = Sequential([Bidirectional(gru(4, 1, return_sequences=True), input_shape=(None, 3)),
                        ReverseTimesteps(), SelectTimestep(1), Dense(2, seed=2)])
    check_model(model, x)
    check_model(model, x, RAGGED)


def test_batch_and_time_are_dynamic(rng):
    model = Sequential([Bidirectional(gru(4, 1, return_sequences=True), input_shape=(5, 3)), gru(3, 2)])
    proto = cgru.to_onnx(model)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "time", 3]
    sess = session(proto)
    for batch, time in [(1, 1), (3, 5), (7, 11)]:
        x = rng.standard_normal((batch, time, 3)).astype(np.float32)
        assert_close(sess.run(None, {"input": x})[0], model.predict(x))


@pytest.mark.parametrize("opset", [13, 14, 21])
def test_opsets(x, opset):
    model = Sequential([Bidirectional(gru(4, 1, return_sequences=True, go_backwards=True), merge_mode="ave",
                                      input_shape=(None, 3)), Dense(2, activation="softmax", seed=2)])
    proto = cgru.to_onnx(model, opset=opset)
    assert proto.opset_import[0].version == opset
    check = model.predict(x, lengths=RAGGED)
    assert_close(export_and_run(model, x, RAGGED, opset=opset)[0], check)


def test_saves_to_a_path(tmp_path, x):
    model = Sequential([gru(4, 1, input_shape=(None, 3))])
    path = tmp_path / "model.onnx"
    proto = cgru.to_onnx(model, path)
    assert onnx.load(str(path)) == proto
    assert proto.producer_name == "cgru"


# ------------------------------------------------------------------------------- streaming
def stream(proto, steps, model_states=None):
    """Run the one-step graph over ``steps`` (a list of (batch, 1, ...) inputs), feeding the
    new states back; returns the per-step outputs."""
    sess = session(proto)
    state_inputs = [i for i in proto.graph.input if i.name != "input"]
    batch = steps[0].shape[0]
    states = {i.name: np.zeros((batch, i.type.tensor_type.shape.dim[1].dim_value),
                               np.float64 if i.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
                               else np.float32) for i in state_inputs}
    outputs = []
    n_out = len(proto.graph.output) - len(state_inputs)
    for step in steps:
        result = sess.run(None, {"input": step, **states})
        outputs.append(result[:n_out])
        for i, value in zip(state_inputs, result[n_out:]):
            states[i.name] = value
    return outputs


@pytest.mark.parametrize("return_sequences", [True, False])
def test_streaming_loop_equals_stateful_calls(rng, return_sequences):
    model = Sequential([
        Bidirectional(gru(5, 1, return_sequences=True, stateful=True, recurrent_activation="hard_sigmoid")),
        gru(4, 2, return_sequences=return_sequences, stateful=True, go_backwards=True, reset_after=False),
        Dense(2, activation="tanh", seed=3),
    ])
    model.build((None, None, 3))
    proto = cgru.to_onnx(model, streaming=True)
    onnx.checker.check_model(proto, full_check=True)
    bi, second = model.layers[0].name, model.layers[1].name
    assert [i.name for i in proto.graph.input] == [
        "input", f"{bi}_forward_state", f"{bi}_backward_state", f"{second}_state"]
    assert [o.name for o in proto.graph.output] == [
        "output", f"{bi}_new_forward_state", f"{bi}_new_backward_state", f"{second}_new_state"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 3]
    steps = [rng.standard_normal((3, 1, 3)).astype(np.float32) for _ in range(8)]
    got = stream(proto, steps)
    model.reset_states()
    for step, outs in zip(steps, got):
        assert_close(outs[0], np.asarray(model(step)))


def test_streaming_a_forward_model_equals_predict_over_the_sequence(rng):
    """The one-step graph of a (non-stateful) forward model, looped, is the model over the
    whole sequence: the same export serves batch and real-time use."""
    model = Sequential([gru(6, 1, return_sequences=True, input_shape=(None, 3)),
                        gru(4, 2, return_sequences=True)])
    x = rng.standard_normal((2, 9, 3)).astype(np.float32)
    got = stream(cgru.to_onnx(model, streaming=True), [x[:, t:t + 1] for t in range(9)])
    assert_close(np.concatenate([g[0] for g in got], axis=1), model.predict(x))


def test_streaming_keeps_the_state_over_padding_ids(rng):
    """Embedding(mask_zero=True): an id 0 step leaves the state as it was (ONNX Runtime's GRU
    zeroes the state of a length-0 sequence; the graph keeps it, as cgru does)."""
    model = Sequential([Embedding(9, 4, mask_zero=True, seed=1),
                        gru(5, 2, return_sequences=True, stateful=True), Dense(2, seed=3)])
    model.build((None, None))
    proto = cgru.to_onnx(model, streaming=True)
    steps = [rng.integers(1, 9, (2, 1)) for _ in range(6)]
    steps[2] = np.array([[0], [4]])
    steps[3] = np.array([[0], [0]])
    got = stream(proto, steps)
    model.reset_states()
    for step, outs in zip(steps, got):
        assert_close(outs[0], np.asarray(model(step)))


# -------------------------------------------------------------------------------- OpenVINO
def test_openvino_runs_the_portable_subset(rng, tmp_path):
    """A second runtime: OpenVINO runs exports of tanh/relu GRUs with sigmoid gates (both reset
    forms, go_backwards, Bidirectional merges, Dense, streaming) equal to predict. Its GRU
    refuses HardSigmoid/Affine activations and ignores sequence_lens (docs/onnx.md)."""
    ov = pytest.importorskip("openvino")
    core = ov.Core()

    def run_openvino(proto, feed):
        path = tmp_path / "model.onnx"
        onnx.save(proto, str(path))
        # f32: on CPUs with bfloat16 units OpenVINO otherwise computes in bfloat16
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        result = compiled(feed)
        return [result[o] for o in compiled.outputs]

    x = rng.standard_normal((3, 5, 3)).astype(np.float32)
    models = [
        [gru(4, 1, reset_after=False, go_backwards=True, return_sequences=True),
         gru(3, 2, activation="relu")],
        [Bidirectional(gru(4, 3, return_sequences=True), merge_mode="ave"),
         Dense(2, activation="softmax", seed=4)],
        [Bidirectional(gru(4, 5, return_sequences=True, return_state=True), merge_mode=None)],
    ]
    for layers in models:
        model = Sequential(layers)
        model.build((None, None, 3))
        want = model.predict(x)
        got = run_openvino(cgru.to_onnx(model), {"input": x})
        assert_close(got if isinstance(want, list) else got[0], want)
    model = Sequential([gru(4, 6, stateful=True), Dense(2, seed=7)])
    model.build((None, 1, 3))
    proto = cgru.to_onnx(model, streaming=True)
    state = np.zeros((3, 4), np.float32)
    for t in range(4):
        out, state = run_openvino(proto, {"input": x[:, t:t + 1], proto.graph.input[1].name: state})
        assert_close(out, np.asarray(model(x[:, t:t + 1])))


# ----------------------------------------------------------------------------------- float64
def test_float64_export_passes_the_checker_and_equals_the_reference_evaluator(rng):
    """ONNX Runtime's GRU kernel is float32 only ("GRU operator does not support double yet"):
    float64 graphs are checked with onnx.checker and run by onnx's reference evaluator, which
    implements GRU without sequence_lens or activation choices."""
    from onnx.reference import ReferenceEvaluator

    model = Sequential([
        Bidirectional(GRU(5, return_sequences=True, bias_initializer="glorot_uniform", seed=1,
                          dtype="float64"), dtype="float64"),
        GRU(4, reset_after=False, bias_initializer="glorot_uniform", seed=2, dtype="float64"),
        Dense(2, activation="tanh", dtype="float64", seed=3),
    ])
    model.build((None, None, 3))
    proto = cgru.to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x = rng.standard_normal((3, 5, 3))
    got = ReferenceEvaluator(proto).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-10, atol=1e-12)
    # every option still exports and checks in float64
    for layer in (GRU(3, go_backwards=True, return_sequences=True, recurrent_activation="hard_sigmoid",
                      dtype="float64"),
                  Bidirectional(GRU(3, return_state=True, dtype="float64"), merge_mode=None,
                                dtype="float64")):
        m = Sequential([Embedding(7, 3, mask_zero=True, dtype="float64"), layer])
        m.build((None, None))
        for kwargs in ({}, {"sequence_lens": True}, {"streaming": True}):
            onnx.checker.check_model(cgru.to_onnx(m, **kwargs), full_check=True)


def test_float64_dense_runs_in_onnx_runtime(rng):
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,), dtype="float64", seed=1)])
    x = rng.standard_normal((5, 4))
    got = run(cgru.to_onnx(model), {"input": x})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-12)


# ------------------------------------------------------------------------------ plugins
@register_layer(name="tests.onnx.Affine")
class Affine(Layer):
    """y = x * scale + shift, exporting itself through the to_onnx hook."""

    def __init__(self, shift=0.5, **kwargs):
        super().__init__(**kwargs)
        self.shift = float(shift)

    def build(self, input_shape):
        self.scale = self.add_weight("scale", (input_shape[-1],), initializer="glorot_uniform")

    def forward(self, x, training=False):
        return x * self.scale.value + self.shift, None

    def to_onnx(self, ctx):
        scale = ctx.constant(self.scale.numpy())
        shift = ctx.constant(np.asarray(self.shift, dtype=ctx.dtype))
        return ctx.node("Add", [ctx.node("Mul", [ctx.input, scale]), shift])

    def get_config(self):
        return {**super().get_config(), "shift": self.shift}


@register_layer(name="tests.onnx.NoExport")
class NoExport(Layer):
    def forward(self, x, training=False):
        return x, None


def test_plugin_layer_exports_through_its_hook(x):
    model = Sequential([gru(4, 1, return_sequences=True, input_shape=(None, 3)), Affine(seed=2), gru(3, 3)])
    check_model(model, x)
    check_model(model, x, RAGGED)


def test_layer_without_a_hook_is_refused_by_name():
    model = Sequential([gru(4, 1, return_sequences=True, input_shape=(None, 3)), NoExport(name="custom")])
    with pytest.raises(ValueError, match=r"'custom'.*NoExport.*to_onnx\(self, ctx\)"):
        cgru.to_onnx(model)


def test_hook_returning_nonsense_is_refused():
    class Broken(Affine):
        def to_onnx(self, ctx):
            return 42

    for model in (Sequential([Broken(input_shape=(3,))]), Sequential([Broken(input_shape=(3,)), Dense(2)])):
        with pytest.raises(ValueError, match="one tensor name per output"):
            cgru.to_onnx(model)


def test_hook_building_an_invalid_graph_is_refused():
    class Invalid(Affine):
        def to_onnx(self, ctx):
            return ctx.node("NoSuchOperator", [ctx.input])

    with pytest.raises(ValueError, match="does not pass onnx.checker"):
        cgru.to_onnx(Sequential([Invalid(input_shape=(3,))]))


def test_argument_errors():
    model = Sequential([gru(4, 1)])
    with pytest.raises(ValueError, match="not built"):
        cgru.to_onnx(model)
    model.build((None, None, 3))
    with pytest.raises(TypeError, match="Sequential"):
        cgru.to_onnx(model.layers[0])
    with pytest.raises(ValueError, match="sequence_lens"):
        cgru.to_onnx(model, streaming=True, sequence_lens=True)
    with pytest.raises(ValueError, match="opset must be between 13"):
        cgru.to_onnx(model, opset=9)
    with pytest.raises(TypeError, match="opset must be an int"):
        cgru.to_onnx(model, opset="17")
