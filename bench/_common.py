"""Problems, data, weight layouts, the float64 reference and machine facts for compare.py.

Weights are made once per problem in the Keras layout that cgru uses (kernel (I, 3H), recurrent
kernel (H, 3H), bias (2, 3H) = [input row, recurrent row], gate blocks z, r, h) and converted to
each competitor's layout by cgru.interop, so every implementation computes the same function.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from dataclasses import dataclass, field

import numpy as np

# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------

INFERENCE = "inference"
TRAINING = "training"
STEP = "step"  # streaming: one time step per Python call on a stateful model


@dataclass(frozen=True)
class Problem:
    """One benchmark shape. kind: "seq" (one GRU layer), "bidir" (stacked bidirectional GRU
    layers, outputs concatenated), "step" (stateful one-step calls)."""

    name: str
    kind: str
    batch: int
    time: int
    input: int
    hidden: int
    modes: tuple
    layers: int = 1
    note: str = ""

    @property
    def directions(self) -> int:
        return 2 if self.kind == "bidir" else 1

    @property
    def out_features(self) -> int:
        return self.hidden * self.directions

    def dims(self) -> str:
        return f"{self.batch}x{self.time}x{self.input}x{self.hidden}"

    def layer_inputs(self) -> list[int]:
        """Input features of each layer."""
        return [self.input] + [self.out_features] * (self.layers - 1)

    def forward_flops(self) -> float:
        """2*B*T*3H*(I+H) per direction and layer (elementwise gate math ignored)."""
        b, t, h = self.batch, self.time, self.hidden
        return float(sum(2 * b * t * 3 * h * (i + h) * self.directions for i in self.layer_inputs()))

    def flops(self, mode: str) -> float:
        """FLOPs of one timed call: forward, or ~3x forward for a training step."""
        return self.forward_flops() * (3.0 if mode == TRAINING else 1.0)

    def biggest_gemm(self) -> tuple[int, int, int]:
        """(M, K, N) of the problem's largest GEMM: an input projection (B*T, I) x (I, 3H)."""
        i = max(self.layer_inputs())
        return (self.batch * self.time, i, 3 * self.hidden)


# Streaming: the stateful model of the issue (input 32, hidden 64), batch 1.
STREAM_STEP = Problem("streaming", "step", 1, 1, 32, 64, (STEP,), note="us per one-step call")
MEMORY_PROBLEM = "batch-large"

PROBLEMS = {
    p.name: p
    for p in [
        Problem("stream-small", "seq", 1, 256, 32, 64, (INFERENCE,)),
        Problem("stream-mid", "seq", 1, 256, 128, 256, (INFERENCE,)),
        Problem("batch-mid", "seq", 32, 128, 64, 256, (INFERENCE, TRAINING)),
        Problem("batch-large", "seq", 128, 64, 256, 512, (INFERENCE, TRAINING)),
        Problem("bidir-2layer", "bidir", 32, 128, 64, 128, (INFERENCE, TRAINING), layers=2),
        STREAM_STEP,
    ]
}

# --quick: small shapes only (a CI smoke test of every code path, not a measurement).
QUICK_PROBLEMS = {
    p.name: p
    for p in [
        Problem("stream-small", "seq", 1, 256, 32, 64, (INFERENCE,)),
        Problem("batch-tiny", "seq", 8, 32, 16, 32, (INFERENCE, TRAINING)),
        Problem("bidir-tiny", "bidir", 4, 32, 16, 32, (INFERENCE, TRAINING), layers=2),
        STREAM_STEP,
    ]
}
QUICK_MEMORY_PROBLEM = "batch-tiny"

LEARNING_RATE = 1e-5  # SGD step of the training rows; tiny so the weights barely drift while timed
CHECK_STEPS = 16  # streaming agreement: steps run from a zero state, then the states compared


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class Data:
    """Identical inputs and weights for every implementation (float32, Keras layout).

    weights[layer][direction] = (kernel (I, 3H), recurrent_kernel (H, 3H), bias (2, 3H)).
    x (B, T, I); g (B, T, out) the fixed upstream gradient of training rows; steps
    (CHECK_STEPS, 1, 1, I) the inputs of the streaming agreement check.
    """

    x: np.ndarray
    weights: list
    g: np.ndarray
    steps: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def make_data(problem: Problem, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    h = problem.hidden
    k = 1.0 / np.sqrt(h)  # PyTorch's default GRU initialisation range

    def uniform(*shape):
        return rng.uniform(-k, k, shape).astype(np.float32)

    weights = []
    for i in problem.layer_inputs():
        weights.append([(uniform(i, 3 * h), uniform(h, 3 * h), uniform(2, 3 * h))
                        for _ in range(problem.directions)])
    x = rng.standard_normal((problem.batch, problem.time, problem.input), dtype=np.float32)
    g = rng.standard_normal((problem.batch, problem.time, problem.out_features), dtype=np.float32)
    steps = None
    if problem.kind == "step":
        steps = rng.standard_normal((CHECK_STEPS, problem.batch, 1, problem.input), dtype=np.float32)
    return Data(x=x, weights=weights, g=g, steps=steps)


def grad_key(layer: int, direction: int, name: str) -> str:
    return f"l{layer}{'r' if direction else 'f'}.{name}"


# --------------------------------------------------------------------------------------------
# Layouts: cgru.interop converts Keras z, r, h to PyTorch's r, z, n and ONNX's gate rows
# --------------------------------------------------------------------------------------------


def gate_rows(directions):
    """[(kernel, recurrent, bias), ...] (forward first) -> ONNX's W (D, 3H, I), R (D, 3H, H)
    and biases (D, 3H) b_in and b_rec, through cgru.interop.gru_to_gate_rows (reset_after)."""
    from cgru.interop import gru_to_gate_rows

    rows = [gru_to_gate_rows(list(arrays), reset_after=True) for arrays in directions]
    return [np.ascontiguousarray(np.stack([r[k] for r in rows]), dtype=np.float32) for k in range(4)]


def keras_to_onnx(directions):
    """-> ONNX W (D, 3H, I), R (D, 3H, H), B (D, 6H) = [Wb, Rb]."""
    w, r, b_in, b_rec = gate_rows(directions)
    return w, r, np.ascontiguousarray(np.concatenate([b_in, b_rec], axis=1))


def torch_grads_to_keras(named_grads: dict) -> list:
    """PyTorch parameter gradients by parameter name (weight_ih_l0, ...) -> the Keras-layout
    gradients in the order of the model's ``get_weights()``: gradients share their parameters'
    layout, so cgru.interop.from_torch_state_dict converts them as it converts weights."""
    from cgru.interop import from_torch_state_dict

    return from_torch_state_dict(named_grads).get_weights()


# --------------------------------------------------------------------------------------------
# Chains of ops calls (cgru's compiled ops and the NumPy reference share them)
# --------------------------------------------------------------------------------------------


def ops_forward(ops, x, weights, training=False):
    """Stacked (bi)directional GRU through the ops interface: each layer runs its forward
    direction and, when present, its reverse direction, and concatenates their outputs."""
    caches = []
    h = x
    for dirs in weights:
        outs, layer_caches = [], []
        for d, (w, u, b) in enumerate(dirs):
            y, _, cache = ops.gru_forward(h, w, u, b, reverse=bool(d), training=training)
            outs.append(y)
            layer_caches.append(cache)
        h = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1)
        caches.append(layer_caches)
    return h, caches


def ops_backward(ops, dy, weights, caches):
    """Gradients of every weight of ``ops_forward`` for the upstream gradient ``dy``. The first
    layer's input gradient is not needed (the data is not trained), so it is not computed
    (``input_grad=False``), as PyTorch skips it for an input without requires_grad."""
    grads = {}
    for li in reversed(range(len(weights))):
        dirs = weights[li]
        h = dirs[0][1].shape[0]
        dx = None
        for d, cache in enumerate(caches[li]):
            part = dy if len(dirs) == 1 else dy[..., d * h:(d + 1) * h]
            gr = ops.gru_backward(part, None, cache, input_grad=li > 0)
            grads[grad_key(li, d, "kernel")] = gr.dkernel
            grads[grad_key(li, d, "recurrent_kernel")] = gr.drecurrent_kernel
            grads[grad_key(li, d, "bias")] = gr.dbias
            if gr.dx is not None:
                dx = gr.dx if dx is None else dx + gr.dx
        dy = dx
    return grads


def sgd_update(weights, grads, lr):
    """In-place SGD on the Keras-layout arrays (no temporaries: the gradient is scaled in place)."""
    for li, dirs in enumerate(weights):
        for d, arrays in enumerate(dirs):
            for arr, name in zip(arrays, ("kernel", "recurrent_kernel", "bias")):
                grad = grads[grad_key(li, d, name)]
                np.multiply(grad, lr, out=grad)
                np.subtract(arr, grad, out=arr)


def copy_weights(weights):
    return [[tuple(a.copy() for a in arrays) for arrays in dirs] for dirs in weights]


# --------------------------------------------------------------------------------------------
# The float64 reference every implementation is checked against
# --------------------------------------------------------------------------------------------


def reference(problem: Problem, data: Data, mode: str) -> dict:
    """The NumPy reference backend run in float64 on the float32 data (exact to ~1e-15, so a
    difference from it is each implementation's own float32 error)."""
    import cgru

    ops = cgru.get_ops("numpy")
    w64 = [[tuple(a.astype(np.float64) for a in arrays) for arrays in dirs] for dirs in data.weights]
    if mode == STEP:
        (w, u, b), = w64[0]
        h = np.zeros((problem.batch, problem.hidden))
        for xt in data.steps:
            _, h, _ = ops.gru_forward(xt.astype(np.float64), w, u, b, h0=h)
        return {"h": h}
    x64 = data.x.astype(np.float64)
    if mode == INFERENCE:
        y, _ = ops_forward(ops, x64, w64)
        return {"y": y}
    _, caches = ops_forward(ops, x64, w64, training=True)
    return ops_backward(ops, data.g.astype(np.float64), w64, caches)


# Largest accepted error, as max|a - ref| / max(1, max|ref|) per array: float32 GRUs (any
# summation order) land near 1e-6 on these shapes; 1e-4 flags real bugs (wrong gate order,
# bias row, direction), which give errors of order 1e-1.
FLOAT32_TOL = {INFERENCE: 1e-4, TRAINING: 1e-4, STEP: 1e-4}
# The same for a reduced-precision row (bfloat16 or int8 weights, or an engine's bfloat16
# arithmetic), whose error against float32 lands near 1e-3 to 1e-2 on these shapes.
REDUCED_PRECISION_TOL = 5e-2


def compare(result: dict, ref: dict) -> float:
    """Largest scaled error over the arrays of ``ref`` (all must be in ``result``)."""
    worst = 0.0
    for key, r in ref.items():
        if key not in result:
            raise KeyError(f"result lacks {key!r}")
        a = np.asarray(result[key], dtype=np.float64).reshape(r.shape)
        scale = max(1.0, float(np.max(np.abs(r)))) if r.size else 1.0
        err = float(np.max(np.abs(a - r))) / scale if r.size else 0.0
        if not np.isfinite(err):
            return float("inf")
        worst = max(worst, err)
    return worst


# --------------------------------------------------------------------------------------------
# Threads of NumPy's own BLAS (sgemm reference and NumPy reference rows)
# --------------------------------------------------------------------------------------------


class NumpyBlasThreads:
    """Sets the thread count of the BLAS NumPy is linked to: threadpoolctl when installed,
    otherwise OpenBLAS's setter found through the loaded libraries (Linux); else a no-op."""

    def __init__(self) -> None:
        self.method = "none"
        self._tp = None
        self._setters = []
        self._paths: list[str] = []
        self.config = None
        np.dot(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))  # load the BLAS
        try:
            import threadpoolctl

            self._tp = threadpoolctl
            self.method = "threadpoolctl"
            info = [i for i in threadpoolctl.threadpool_info() if i.get("internal_api") == "openblas"
                    or i.get("user_api") == "blas"]
            # NumPy's library only: cgru's bundled OpenBLAS (and torch's) keep their own settings
            np_info = [i for i in info if "numpy" in (i.get("filepath") or "")]
            self._paths = [i["filepath"] for i in np_info]
            if np_info:
                self.config = f"{np_info[0].get('internal_api')} {np_info[0].get('version')}"
            return
        except ImportError:
            pass
        numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
        paths = []
        try:
            with open("/proc/self/maps") as fh:
                for line in fh:
                    path = line.split()[-1] if len(line.split()) >= 6 else ""
                    if "blas" in os.path.basename(path).lower() and path not in paths:
                        paths.append(path)
        except OSError:
            return
        for path in paths:
            if not path.startswith(numpy_dir):
                continue  # another package's BLAS (cgru's, torch's): each has its own control
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", ""):
                    setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    if setter is None:
                        continue
                    self._setters.append(setter)
                    conf = getattr(lib, f"{prefix}_get_config{suffix}", None)
                    if conf is not None and self.config is None:
                        conf.restype = ctypes.c_char_p
                        self.config = conf().decode("utf-8", "replace").strip()
                    break
                else:
                    continue
                break
        if self._setters:
            self.method = "openblas setter"

    def set(self, n: int) -> None:
        if self._tp is not None and self._paths:
            self._tp.ThreadpoolController().select(filepath=self._paths).limit(limits=n)
        for setter in self._setters:
            setter(ctypes.c_int(n))


# --------------------------------------------------------------------------------------------
# Machine facts
# --------------------------------------------------------------------------------------------


def status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` size in KiB (``VmRSS``, ``VmHWM``), or None where there is none."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cgru_child_env() -> dict:
    """The environment for a child process that must import the same cgru as this one: the
    installed copy, or the checkout's where none is installed."""
    try:
        import cgru

        where = os.path.dirname(os.path.dirname(os.path.abspath(cgru.__file__)))
    except ImportError:
        where = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (where, os.environ.get("PYTHONPATH")) if p))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")),
                 platform.machine())
    flags_line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    flags = set(flags_line.split(":", 1)[1].split()) if ":" in flags_line else set()
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return model + (f" ({', '.join(simd)})" if simd else "")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def versions() -> dict:
    """Installed versions (from package metadata: nothing is imported for this)."""
    from importlib import metadata

    out = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("cgru", "torch", "onnxruntime", "onnx", "openvino"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            mod = sys.modules.get(name)
            if mod is not None:
                out[name] = getattr(mod, "__version__", "?") + " (not installed: source tree)"
    return out


def source_revision(package_dir: str) -> str | None:
    """``git describe`` of the checkout holding ``package_dir`` (None outside a git checkout)."""
    import subprocess

    root = os.path.dirname(package_dir)
    if not os.path.isdir(os.path.join(root, ".git")):
        return None
    try:
        out = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
