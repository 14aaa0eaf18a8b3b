"""The implementations compare.py times: cgru (float32, and its model quantized to bfloat16 or
int8), cgru's model exported to ONNX Runtime (``cgru.to_onnx``), PyTorch, ONNX Runtime running a
hand-built GRU graph, OpenVINO's GRUSequence (float32, and its default precision), and the NumPy
reference.

Each implementation builds a :class:`Runner` for one (problem, mode) at one thread count:
``call()`` is the timed unit of work, ``check()`` recomputes the result from the initial
weights (outputs, weight gradients or the streaming state) for the agreement check, and
``context()`` wraps a timed block (PyTorch's ``no_grad``); ``tolerance`` is the error against
the float64 reference the row may have (None: float32's, ``FLOAT32_TOL``; reduced-precision rows:
``REDUCED_PRECISION_TOL``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from _common import (
    INFERENCE,
    LEARNING_RATE,
    REDUCED_PRECISION_TOL,
    STEP,
    TRAINING,
    Data,
    Problem,
    copy_weights,
    gate_rows,
    grad_key,
    keras_to_onnx,
    ops_backward,
    ops_forward,
    sgd_update,
    torch_grads_to_keras,
)


class Skip(Exception):
    """This implementation does not run this row (the message says why)."""


@dataclass
class Runner:
    call: Callable[[], object]
    check: Callable[[], dict]
    via: str = ""
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    notes: list = field(default_factory=list)
    tolerance: float | None = None


class Impl:
    name = "?"
    reason_missing = ""  # empty when usable

    def set_threads(self, n: int) -> None:
        raise NotImplementedError

    def runner(self, problem: Problem, mode: str, data: Data) -> Runner:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# cgru
# --------------------------------------------------------------------------------------------


def cgru_model(cgru, problem: Problem, data: Data):
    """The problem's network as a cgru Sequential with the row's weights: a stateful GRU taking
    one step per call (streaming), else stacked GRU or Bidirectional(GRU) layers returning
    sequences."""
    h = problem.hidden
    if problem.kind == "step":
        model = cgru.Sequential([cgru.GRU(h, stateful=True, return_sequences=False,
                                          input_shape=(1, problem.input))])
    else:
        layers = []
        for li in range(problem.layers):
            kw = {"input_shape": (problem.time, problem.input)} if li == 0 else {}
            if problem.kind == "bidir":
                layers.append(cgru.Bidirectional(cgru.GRU(h, return_sequences=True), **kw))
            else:
                layers.append(cgru.GRU(h, return_sequences=True, **kw))
        model = cgru.Sequential(layers)
    model.build((None, problem.time, problem.input))
    model.set_weights([a for dirs in data.weights for arrays in dirs for a in arrays])
    return model


def stateful_step_runner(model, data: Data, **runner: object) -> Runner:
    """The streaming row of a stateful one-step cgru ``model``: ``model(x_t)`` per call, the
    check running the row's steps from a zero state (``runner``: the Runner's other fields)."""
    x1 = np.ascontiguousarray(data.steps[0])

    def check():
        model.reset_states()
        out = None
        for xt in data.steps:
            out = model(np.ascontiguousarray(xt))
        model.reset_states()
        return {"h": np.asarray(out)}

    return Runner(lambda: model(x1), check, **runner)


class OpsChain(Impl):
    """Stacked GRU layers through an ops backend (cgru's compiled ops, or the NumPy reference)."""

    def __init__(self, ops) -> None:
        self.ops = ops

    def _chain_runner(self, problem: Problem, mode: str, data: Data) -> Runner:
        ops = self.ops
        if mode == INFERENCE:
            x, weights = data.x, data.weights

            def call():
                return ops_forward(ops, x, weights)

            return Runner(call, lambda: {"y": call()[0]}, via="ops.gru_forward (chained per layer/direction)")
        weights = copy_weights(data.weights)  # updated in place by the timed steps
        x, g = data.x, data.g

        def step():
            _, caches = ops_forward(ops, x, weights, training=True)
            sgd_update(weights, ops_backward(ops, g, weights, caches), LEARNING_RATE)

        def check():
            _, caches = ops_forward(ops, x, data.weights, training=True)
            return ops_backward(ops, g, data.weights, caches)

        return Runner(step, check, via="ops.gru_forward(training=True) + gru_backward + in-place SGD")

    def _step_runner(self, problem: Problem, data: Data) -> Runner:
        ops = self.ops
        (w, u, b), = data.weights[0]
        state = [np.zeros((problem.batch, problem.hidden), np.float32)]
        x1 = np.ascontiguousarray(data.steps[0])

        def call():
            _, state[0], _ = ops.gru_forward(x1, w, u, b, h0=state[0])

        def check():
            h = np.zeros((problem.batch, problem.hidden), np.float32)
            for xt in data.steps:
                _, h, _ = ops.gru_forward(xt, w, u, b, h0=h)
            return {"h": h}

        return Runner(call, check, via="ops gru_forward with h0 per call")


class CgruImpl(OpsChain):
    name = "cgru"

    def __init__(self, cgru=None) -> None:
        """``cgru``: the package to time (the one ``import cgru`` finds by default; ab.py passes
        another checkout's, imported under another name)."""
        if cgru is None:
            import cgru
        if not cgru.backends.compiled_available():
            raise RuntimeError("cgru's compiled engine is not built: run `pip install .` or "
                               "`python setup.py build_ext --inplace` first")
        self.cgru = cgru
        super().__init__(cgru.get_ops("cpu"))

    def set_threads(self, n: int) -> None:
        self.cgru.set_num_threads(n)

    def runner(self, problem: Problem, mode: str, data: Data) -> Runner:
        if problem.kind in ("bidir", "step"):
            return self._api_runner(problem, mode, data)
        return self._chain_runner(problem, mode, data)

    # -- the public Sequential API (what users run) -------------------------------------------
    def _api_runner(self, problem: Problem, mode: str, data: Data) -> Runner:
        cgru = self.cgru
        model = cgru_model(cgru, problem, data)
        if mode == STEP:
            return stateful_step_runner(model, data, via="Sequential([GRU(stateful=True)]) model(x)")
        x = data.x
        if mode == INFERENCE:
            return Runner(lambda: model(x), lambda: {"y": np.asarray(model(x))},
                          via="Sequential([Bidirectional(GRU)] x2) model(x)")
        return self._api_train_runner(model, problem, data)

    def _api_train_runner(self, model, problem: Problem, data: Data) -> Runner:
        """``model.train_on_batch(x, g)`` with SGD and the loss ``sum(y * g)`` (a Loss subclass
        with reduction "sum"), so the upstream gradient is the fixed ``g`` of the other rows."""
        cgru = self.cgru
        losses, optimizers = cgru.losses, cgru.optimizers

        class UpstreamGradient(losses.Loss):
            """sum(y_pred * y_true): its gradient with respect to y_pred is y_true."""

            def _values(self, xp, y_true, y_pred):
                return (y_pred * y_true).sum(axis=-1), y_true

        x, g = data.x, data.g
        model.compile(optimizer=optimizers.SGD(learning_rate=LEARNING_RATE),
                      loss=UpstreamGradient(reduction="sum"))

        def check():
            # One step with learning rate 1 from the initial weights: the weights move by
            # exactly minus their gradient (float32 rounding of the difference aside).
            fresh = cgru.Sequential([type(layer).from_config(layer.get_config()) for layer in model.layers])
            fresh.build((None, problem.time, problem.input))
            fresh.set_weights([a for dirs in data.weights for arrays in dirs for a in arrays])
            fresh.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss=UpstreamGradient(reduction="sum"))
            before = [w.astype(np.float64) for w in fresh.get_weights()]
            fresh.train_on_batch(x, g)
            after = fresh.get_weights()
            out, i = {}, 0
            for li, dirs in enumerate(data.weights):
                for d in range(len(dirs)):
                    for name in ("kernel", "recurrent_kernel", "bias"):
                        out[grad_key(li, d, name)] = before[i] - after[i]
                        i += 1
            return out

        return Runner(lambda: model.train_on_batch(x, g), check,
                      via="Sequential.train_on_batch (SGD, loss sum(y*g))")


class CgruQuantizedImpl(Impl):
    """The row's cgru model quantized with ``model.quantize(mode)`` ("bfloat16" or "int8"),
    through the public API: ``model(x)`` (inference), the stateful one-step ``model(x)``
    (streaming). Inference only."""

    def __init__(self, mode: str) -> None:
        import cgru

        if not cgru.backends.compiled_available():
            raise RuntimeError("cgru's compiled engine is not built")
        self.cgru, self.mode, self.name = cgru, mode, f"cgru-{mode}"

    def set_threads(self, n: int) -> None:
        self.cgru.set_num_threads(n)

    def runner(self, problem: Problem, mode: str, data: Data) -> Runner:
        if mode == TRAINING:
            raise Skip("a quantized model is inference-only")
        model = cgru_model(self.cgru, problem, data)
        model.quantize(self.mode)
        kernel = self.cgru.backend_info()["quantized_kernels"][self.mode]
        if mode == STEP:
            return stateful_step_runner(model, data, tolerance=REDUCED_PRECISION_TOL,
                                        via=f"model.quantize({self.mode!r}), stateful model(x) ({kernel})")
        x = data.x
        return Runner(lambda: model(x), lambda: {"y": np.asarray(model(x))}, tolerance=REDUCED_PRECISION_TOL,
                      via=f"model.quantize({self.mode!r}), model(x) ({kernel})")


# --------------------------------------------------------------------------------------------
# The NumPy reference backend (float32)
# --------------------------------------------------------------------------------------------


class NumpyImpl(OpsChain):
    name = "numpy"

    def __init__(self, blas_threads) -> None:
        import cgru

        super().__init__(cgru.get_ops("numpy"))
        self.blas_threads = blas_threads

    def set_threads(self, n: int) -> None:
        self.blas_threads.set(n)

    def runner(self, problem: Problem, mode: str, data: Data) -> Runner:
        if mode == STEP:
            return self._step_runner(problem, data)
        return self._chain_runner(problem, mode, data)


# --------------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------------


class TorchImpl(Impl):
    name = "torch"

    def __init__(self) -> None:
        import torch

        import cgru

        self.torch = torch
        self.cgru = cgru

    def set_threads(self, n: int) -> None:
        self.torch.set_num_threads(n)

    def _module(self, problem: Problem, data: Data):
        """nn.GRU with the row's weights, converted by cgru.interop.to_torch_state_dict."""
        torch = self.torch
        gru = torch.nn.GRU(problem.input, problem.hidden, num_layers=problem.layers,
                           bidirectional=problem.directions == 2, batch_first=True)
        state = self.cgru.interop.to_torch_state_dict(cgru_model(self.cgru, problem, data))
        gru.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        return gru

    def runner(self, problem: Problem, mode: str, data: Data) -> Runner:
        torch = self.torch
        gru = self._module(problem, data)
        if mode == STEP:
            x1 = torch.from_numpy(np.ascontiguousarray(data.steps[0]))
            hidden = [torch.zeros(1, problem.batch, problem.hidden)]

            def call():
                _, hidden[0] = gru(x1, hidden[0])

            def check():
                with torch.no_grad():
                    h = torch.zeros(1, problem.batch, problem.hidden)
                    for xt in data.steps:
                        _, h = gru(torch.from_numpy(np.ascontiguousarray(xt)), h)
                return {"h": h[0].numpy()}

            return Runner(call, check, via="nn.GRU(x, h) per call, no_grad", context=torch.no_grad)
        x = torch.from_numpy(data.x)
        if mode == INFERENCE:
            def check():
                with torch.no_grad():
                    return {"y": gru(x)[0].numpy()}

            return Runner(lambda: gru(x), check, via="nn.GRU, no_grad", context=torch.no_grad)
        g = torch.from_numpy(data.g)
        opt = torch.optim.SGD(gru.parameters(), lr=LEARNING_RATE)

        def step():
            opt.zero_grad(set_to_none=True)
            y, _ = gru(x)
            (y * g).sum().backward()
            opt.step()

        def check():
            fresh = self._module(problem, data)
            y, _ = fresh(x)
            (y * g).sum().backward()
            grads = iter(torch_grads_to_keras({name: p.grad.numpy() for name, p in fresh.named_parameters()}))
            return {grad_key(li, d, name): next(grads) for li, dirs in enumerate(data.weights)
                    for d in range(len(dirs)) for name in ("kernel", "recurrent_kernel", "bias")}

        return Runner(step, check, via="nn.GRU + (y*g).sum().backward() + SGD.step()",
                      notes=["training: the input x needs no gradient; PyTorch (requires_grad=False) "
                             "and cgru (input_grad=False where its ops take it) skip the first layer's"
                             " input-gradient product"])


# --------------------------------------------------------------------------------------------
# ONNX Runtime
# --------------------------------------------------------------------------------------------


class OrtImpl(Impl):
    """A graph of ONNX GRU nodes (linear_before_reset=1) on the CPU execution provider.

    ONNX Runtime's CPU GRU accepts only sequence-major input (layout=0), so the graph takes the
    batch-major x of the other rows and transposes it (and the output back) inside the graph:
    those Transpose nodes are part of the timed call, as they are for a user's exported model.
    """

    name = "onnxruntime"

    def __init__(self) -> None:
        import onnx
        import onnxruntime

        self.onnx = onnx
        self.ort = onnxruntime
        self.threads = 1

    def set_threads(self, n: int) -> None:
        self.threads = n  # a session option: sessions are built per thread count

    def _session(self, model):
        ort = self.ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def _model(self, nodes, inputs, outputs, initializers):
        from onnx import helper

        graph = helper.make_graph(nodes, "cgru_bench", inputs, outputs, initializer=initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
        model.ir_version = 8
        self.onnx.checker.check_model(model)
        return model

    def runner(self, problem: Problem, mode: str, data: Data) -> Runner:
        if mode == TRAINING:
            raise Skip("inference engine (training needs onnxruntime-training)")
        from onnx import TensorProto, helper, numpy_helper

        f32 = TensorProto.FLOAT
        b, t, i, h, nd = problem.batch, problem.time, problem.input, problem.hidden, problem.directions
        direction = "bidirectional" if nd == 2 else "forward"
        inits = []
        for li, dirs in enumerate(data.weights):
            w, r, bias = keras_to_onnx(dirs)
            inits += [numpy_helper.from_array(w, f"W{li}"), numpy_helper.from_array(r, f"R{li}"),
                      numpy_helper.from_array(bias, f"B{li}")]
        if mode == STEP:
            node = helper.make_node("GRU", ["x", "W0", "R0", "B0", "", "h0"], ["", "h"], hidden_size=h,
                                    linear_before_reset=1)
            model = self._model(
                [node],
                [helper.make_tensor_value_info("x", f32, [1, b, i]),
                 helper.make_tensor_value_info("h0", f32, [1, b, h])],
                [helper.make_tensor_value_info("h", f32, [1, b, h])], inits)
            sess = self._session(model)
            # T=1, B=1: sequence-major and batch-major coincide, no transpose needed.
            x1 = np.ascontiguousarray(data.steps[0].reshape(1, b, i))
            state = [np.zeros((1, b, h), np.float32)]
            out_names = ["h"]

            def call():
                state[0] = sess.run(out_names, {"x": x1, "h0": state[0]})[0]

            def check():
                hh = np.zeros((1, b, h), np.float32)
                for xt in data.steps:
                    hh = sess.run(out_names, {"x": np.ascontiguousarray(xt.reshape(1, b, i)), "h0": hh})[0]
                return {"h": hh[0]}

            return Runner(call, check, via="T=1 session, initial_h fed back per call")
        inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape3"))
        nodes = [helper.make_node("Transpose", ["x"], ["x_tbi"], perm=[1, 0, 2])]
        cur = "x_tbi"
        for li in range(problem.layers):
            y = f"Y{li}"
            nodes.append(helper.make_node("GRU", [cur, f"W{li}", f"R{li}", f"B{li}"], [y], hidden_size=h,
                                          linear_before_reset=1, direction=direction))
            if li < problem.layers - 1:  # (T, D, B, H) -> (T, B, D*H), the next layer's input
                nodes.append(helper.make_node("Transpose", [y], [f"{y}t"], perm=[0, 2, 1, 3]))
                nodes.append(helper.make_node("Reshape", [f"{y}t", "shape3"], [f"{y}r"]))
                cur = f"{y}r"
        last = f"Y{problem.layers - 1}"  # (T, D, B, H) -> (B, T, D*H)
        nodes.append(helper.make_node("Transpose", [last], ["y_btdh"], perm=[2, 0, 1, 3]))
        nodes.append(helper.make_node("Reshape", ["y_btdh", "shape3"], ["y"]))
        model = self._model(nodes, [helper.make_tensor_value_info("x", f32, [b, t, i])],
                            [helper.make_tensor_value_info("y", f32, [b, t, nd * h])], inits)
        sess = self._session(model)
        x = data.x
        feed = {"x": x}
        out_names = ["y"]
        return Runner(lambda: sess.run(out_names, feed), lambda: {"y": sess.run(out_names, feed)[0]},
                      via="GRU node(s) + in-graph Transposes (batch-major in and out)")


class CgruOnnxImpl(OrtImpl):
    """The cgru model of the row exported with ``cgru.to_onnx`` and run in ONNX Runtime (the
    session options of :class:`OrtImpl`): what handing a cgru model to ONNX Runtime costs."""

    name = "cgru-onnx"

    def __init__(self) -> None:
        super().__init__()
        import cgru

        self.cgru = cgru

    def runner(self, problem: Problem, mode: str, data: Data) -> Runner:
        if mode == TRAINING:
            raise Skip("inference engine (training needs onnxruntime-training)")
        model = cgru_model(self.cgru, problem, data)
        if mode == STEP:
            sess = self._session(self.cgru.to_onnx(model, streaming=True))
            state_name = sess.get_inputs()[1].name
            b, h = problem.batch, problem.hidden
            x1 = np.ascontiguousarray(data.steps[0])
            state = [np.zeros((b, h), np.float32)]

            def call():
                state[0] = sess.run(None, {"input": x1, state_name: state[0]})[1]

            def check():
                hh = np.zeros((b, h), np.float32)
                for xt in data.steps:
                    hh = sess.run(None, {"input": np.ascontiguousarray(xt), state_name: hh})[1]
                return {"h": hh}

            return Runner(call, check, via="cgru.to_onnx(streaming=True): one-step session, state fed back")
        sess = self._session(self.cgru.to_onnx(model))
        feed = {"input": data.x}
        return Runner(lambda: sess.run(None, feed), lambda: {"y": sess.run(None, feed)[0]},
                      via="cgru.to_onnx(model) in a session (batch-major in and out)")


# --------------------------------------------------------------------------------------------
# OpenVINO
# --------------------------------------------------------------------------------------------


def openvino_weights(dirs):
    """Keras-layout directions -> GRUSequence W (D, 3H, I), R (D, 3H, H) (ONNX's gate rows,
    from cgru.interop) and B (D, 4H) with linear_before_reset: [W_bz + R_bz, W_br + R_br, W_bh,
    R_bh]."""
    w, r, b_in, b_rec = gate_rows(dirs)
    h = r.shape[2]
    b = np.concatenate([b_in[:, :2 * h] + b_rec[:, :2 * h], b_in[:, 2 * h:], b_rec[:, 2 * h:]], axis=1)
    return [w, r, np.ascontiguousarray(b)]


def openvino_runner(problem: Problem, data: Data, precision: str, threads: int):
    """``(call, check, precision used)`` of OpenVINO's GRUSequence graph of the problem on the
    CPU plugin (latency hint, one stream, ``threads`` threads): ``precision`` "f32" sets
    INFERENCE_PRECISION_HINT=f32, "default" leaves the plugin's own (bfloat16 on CPUs with
    AVX512-BF16 or AMX). Streaming: a one-step graph, the state fed back per call. Raises
    Skip when openvino is not installed."""
    try:
        import openvino as ov
        import openvino.opset13 as op
    except ImportError as exc:
        raise Skip(f"openvino not installed ({exc})") from None
    b, t, i, h, nd = problem.batch, problem.time, problem.input, problem.hidden, problem.directions
    direction = "bidirectional" if nd == 2 else "forward"
    if problem.kind == "step":
        x = op.parameter([b, 1, i], np.float32, name="x")
        h0 = op.parameter([b, 1, h], np.float32, name="h0")
        w, r, bias = openvino_weights(data.weights[0])
        gru = op.gru_sequence(x, h0, op.constant(np.ones(b, np.int32)), op.constant(w), op.constant(r),
                              op.constant(bias), h, "forward", linear_before_reset=True)
        model = ov.Model([gru.output(1)], [x, h0])
    else:
        x = op.parameter([b, t, i], np.float32, name="x")
        cur = x
        lengths = op.constant(np.full(b, t, np.int32))
        for dirs in data.weights:
            w, r, bias = openvino_weights(dirs)
            h0 = op.constant(np.zeros((b, nd, h), np.float32))
            gru = op.gru_sequence(cur, h0, lengths, op.constant(w), op.constant(r), op.constant(bias), h,
                                  direction, linear_before_reset=True)
            # Y (B, D, T, H) -> (B, T, D*H)
            cur = op.reshape(op.transpose(gru.output(0), op.constant(np.array([0, 2, 1, 3], np.int64))),
                             op.constant(np.array([b, t, nd * h], np.int64)), special_zero=False)
        model = ov.Model([cur], [x])
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if precision == "f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = ov.Core().compile_model(model, "CPU", config)
    used = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "f32", "bf16"...
    request = compiled.create_infer_request()
    if problem.kind == "step":
        state = [np.zeros((b, 1, h), np.float32)]
        x1 = np.ascontiguousarray(data.steps[0])

        def call():
            state[0] = request.infer([x1, state[0]])[0]

        def check():
            hh = np.zeros((b, 1, h), np.float32)
            for xt in data.steps:
                hh = request.infer([np.ascontiguousarray(xt), hh])[0].copy()
            return {"h": hh[:, 0]}

        return call, check, used
    feed = [data.x]
    return (lambda: request.infer(feed)), (lambda: {"y": request.infer(feed)[0].copy()}), used


class OpenvinoImpl(Impl):
    """OpenVINO's GRUSequence built with the row's weights (:func:`openvino_runner`):
    "openvino-f32" in float32, "openvino" in the CPU plugin's default precision."""

    def __init__(self, precision: str) -> None:
        import openvino  # noqa: F401  (ImportError: compare.py skips the rows with a note)

        self.precision, self.threads = precision, 1
        self.name = "openvino-f32" if precision == "f32" else "openvino"

    def set_threads(self, n: int) -> None:
        self.threads = n  # a compile option: graphs are compiled per thread count

    def runner(self, problem: Problem, mode: str, data: Data) -> Runner:
        if mode == TRAINING:
            raise Skip("inference engine")
        call, check, used = openvino_runner(problem, data, self.precision, self.threads)
        return Runner(call, check, via=f"GRUSequence graph, CPU plugin in {used}",
                      tolerance=None if used == "f32" else REDUCED_PRECISION_TOL)
