"""The "cuda" (CuPy) backend, checked against the NumPy reference on the same inputs.

Four layers of checks, so that most of them run on machines without a GPU:
- pure Python: the error messages when CuPy or a device is missing, the kernel-choice heuristic,
  that importing cgru never imports CuPy;
- compilers: gru.cu compiles with nvcc for sm_80 and sm_90 (when nvcc is on PATH) and with
  NVRTC exactly as CuPy compiles it at run time (when CuPy and NVRTC are installed);
- emulation: the real CupyOps driving the real kernels of gru.cu, compiled as host C++ and run
  through a NumPy stand-in for CuPy (tests/cuda_emu), forward, final state and every gradient
  compared with the reference, persistent kernel included (needs g++);
- GPU: the same comparisons on a real device (skipped without CuPy or a CUDA device).
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from padding import (
    LENGTHS,
    check_fit_ignores_padding,
    check_gru_ignores_padding,
    check_padding_ids_get_no_gradient,
)

import cgru
from cgru.backends import cuda_device, cuda_kernels, cuda_plan
from cgru.backends.base import ACTIVATIONS, RECURRENT_ACTIVATIONS
from cgru.backends.cuda_kernels import PERSISTENT_KERNELS, STEP_KERNELS, name_expressions
from cgru.backends.cuda_plan import persistent_smem_elems, plan_persistent
from cgru.backends.cupy_ops import CupyOps
from cgru.backends.numpy_ops import NumpyOps

GRU_CU = cuda_kernels.KERNEL_SOURCE

DTYPES = [np.float32, np.float64]


def tolerances(dtype):
    return (1e-4, 2e-5) if np.dtype(dtype) == np.float32 else (1e-9, 1e-11)


def make_inputs(rng, dtype, *, B=3, T=5, I=4, H=7, reset_after=True, bias=True, h0=True, mask=False):
    x = rng.standard_normal((B, T, I)).astype(dtype)
    kernel = (rng.standard_normal((I, 3 * H)) * 0.5).astype(dtype)
    recurrent = (rng.standard_normal((H, 3 * H)) * 0.5).astype(dtype)
    b = None
    if bias:
        b = (rng.standard_normal((2, 3 * H) if reset_after else (3 * H,)) * 0.5).astype(dtype)
    state = rng.standard_normal((B, H)).astype(dtype) if h0 else None
    m = (rng.uniform(0.0, 2.0, (B, H)) * (rng.uniform(size=(B, H)) > 0.2)).astype(dtype) if mask else None
    return x, kernel, recurrent, b, state, m


def check_against_reference(ops, rng, dtype, *, B=3, T=5, I=4, H=7, reset_after=True, lengths=None,
                            reverse=False, mask=False, h0=True, bias=True, activation="tanh",
                            recurrent_activation="sigmoid", dy=True, dh=True, inputs_on_device=False,
                            scaled_atol=0.0):
    """Forward (inference and training), final state and all gradients of ``ops`` vs NumPy.

    ``scaled_atol``: also allow an absolute error of that fraction of each array's largest
    magnitude (long float32 sums on large shapes)."""
    x, kernel, recurrent, b, state, m = make_inputs(
        rng, dtype, B=B, T=T, I=I, H=H, reset_after=reset_after, bias=bias, h0=h0, mask=mask
    )
    kw = dict(h0=state, lengths=lengths, reverse=reverse, reset_after=reset_after,
              activation=activation, recurrent_activation=recurrent_activation, recurrent_mask=m)
    ref = NumpyOps()
    y_ref, h_ref, cache_ref = ref.gru_forward(x, kernel, recurrent, b, training=True, **kw)
    g_y = rng.standard_normal(y_ref.shape).astype(dtype) if dy else None
    g_h = rng.standard_normal(h_ref.shape).astype(dtype) if dh else None
    grads_ref = ref.gru_backward(g_y, g_h, cache_ref)

    def dev(a):
        return ops.asarray(a) if (inputs_on_device and a is not None) else a

    dkw = dict(kw, h0=dev(state), recurrent_mask=dev(m))
    rtol, atol = tolerances(dtype)
    y, h_n, cache = ops.gru_forward(dev(x), dev(kernel), dev(recurrent), dev(b), training=False, **dkw)
    assert cache is None
    np.testing.assert_allclose(ops.to_numpy(y), y_ref, rtol=rtol, atol=atol, err_msg="y (inference)")
    np.testing.assert_allclose(ops.to_numpy(h_n), h_ref, rtol=rtol, atol=atol, err_msg="h_n (inference)")
    y, h_n, cache = ops.gru_forward(dev(x), dev(kernel), dev(recurrent), dev(b), training=True, **dkw)
    assert ops.to_numpy(y).dtype == np.dtype(dtype) and ops.to_numpy(h_n).dtype == np.dtype(dtype)
    np.testing.assert_allclose(ops.to_numpy(y), y_ref, rtol=rtol, atol=atol, err_msg="y (training)")
    np.testing.assert_allclose(ops.to_numpy(h_n), h_ref, rtol=rtol, atol=atol, err_msg="h_n (training)")
    grads = ops.gru_backward(dev(g_y), dev(g_h), cache)
    for field, got, want in zip(grads._fields, grads, grads_ref):
        if want is None:
            assert got is None, field
            continue
        got = ops.to_numpy(got)
        assert got.shape == want.shape and got.dtype == want.dtype, field
        tol = max(atol, scaled_atol * float(np.max(np.abs(want), initial=0.0)))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=tol, err_msg=field)


# Cases every implementation must match the reference on (B=3, T=5 unless given).
CASES = {
    "after": dict(reset_after=True),
    "before": dict(reset_after=False),
    "after-lengths": dict(reset_after=True, lengths=[5, 0, 3]),
    "before-lengths": dict(reset_after=False, lengths=[2, 5, 0]),
    "after-reverse-lengths": dict(reset_after=True, reverse=True, lengths=[4, 1, 0]),
    "before-reverse-lengths": dict(reset_after=False, reverse=True, lengths=[5, 3, 1]),
    "after-reverse": dict(reset_after=True, reverse=True),
    "after-mask": dict(reset_after=True, mask=True, lengths=[5, 2, 4]),
    "before-mask-reverse": dict(reset_after=False, mask=True, reverse=True, lengths=[3, 5, 0]),
    "relu-hard-sigmoid": dict(activation="relu", recurrent_activation="hard_sigmoid"),
    "linear-before": dict(reset_after=False, activation="linear", recurrent_activation="hard_sigmoid"),
    "no-bias-no-h0": dict(bias=False, h0=False),
    "no-dy": dict(dy=False),
    "no-dh": dict(reset_after=False, dh=False, lengths=[1, 5, 2]),
    "batch1-time1": dict(B=1, T=1, H=5),
    "no-features": dict(I=0),
}


# ---------------------------------------------------------------------------------------------
# Pure Python: optional dependency, error messages, heuristics


def test_import_cgru_never_imports_cupy():
    code = (
        "import sys, cgru; cgru.available_backends(); cgru.get_backend(); "
        "import cgru.backends.cupy_ops; "
        "assert 'cupy' not in sys.modules, 'cupy was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_cupy_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    registry = importlib.import_module("cgru.backends")  # the real "cuda", also under the emulator
    monkeypatch.setitem(registry._factories, "cuda", registry._lazy(".cupy_ops", "CupyOps"))
    monkeypatch.delitem(registry._instances, "cuda", raising=False)
    # cgru is not on PyPI: the hint names CuPy's own wheel, or the extra from a checkout
    hint = r"pip install cupy-cuda12x.*from a cgru checkout, `pip install \"\.\[gpu\]\"`"
    with pytest.raises(ImportError, match=hint) as info:
        cuda_device.import_cupy()
    assert "cgru[gpu]" not in str(info.value)
    with pytest.raises(ImportError, match=r"CuPy.*" + hint):
        cgru.get_ops("cuda")
    with pytest.raises(ImportError, match=hint):
        cgru.set_backend("cuda")
    assert cgru.get_backend() != "cuda"


class _NoDeviceCupy:
    def __init__(self, count):
        def get_device_count():
            if count < 0:
                raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
            return count

        self.cuda = type("cuda", (), {})()
        self.cuda.runtime = type("runtime", (), {"getDeviceCount": staticmethod(get_device_count)})()


@pytest.mark.parametrize("count", [-1, 0])
def test_no_device_says_so(count):
    with pytest.raises(RuntimeError, match="no CUDA device"):
        CupyOps(_NoDeviceCupy(count))


def test_installed_cupy_without_device_raises_runtime_error():
    try:
        import cupy
    except ImportError:
        pytest.skip("CuPy is not installed")
    try:
        has_device = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        has_device = False
    if has_device:
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        cgru.get_ops("cuda")


def test_persistent_mode_is_validated(monkeypatch):
    with pytest.raises(ValueError, match="persistent"):
        plan_persistent("sometimes", 1, 8, 4, 4, 1 << 16)
    monkeypatch.setenv(cuda_plan.PERSISTENT_ENV, "bogus")
    with pytest.raises(ValueError, match=cuda_plan.PERSISTENT_ENV):
        CupyOps(_NoDeviceCupy(1))
    monkeypatch.setenv(cuda_plan.PERSISTENT_ENV, "AUTO")
    assert CupyOps(_NoDeviceCupy(1)).persistent == "auto"
    monkeypatch.delenv(cuda_plan.PERSISTENT_ENV)
    assert CupyOps(_NoDeviceCupy(1)).persistent == "off"  # off until verified on a GPU


def test_plan_persistent_heuristic():
    h100 = dict(num_sms=132, max_smem_bytes=227 * 1024)
    assert plan_persistent("off", 1, 256, 4, **h100) is None
    plan = plan_persistent("auto", 8, 512, 4, **h100)
    assert plan is not None
    assert plan.jcap == 4 and plan.grid == 128 and plan.grid * plan.jcap >= 512
    assert plan.smem_elems == persistent_smem_elems(8, 512, 4, plan.block)
    assert plan.smem_bytes == 4 * plan.smem_elems <= h100["max_smem_bytes"]
    assert plan_persistent("auto", 9, 512, 4, **h100) is None  # batch above the limit
    assert plan_persistent("always", 64, 256, 4, **h100) is not None
    assert plan_persistent("auto", 8, 512, 4, cooperative=False, **h100) is None
    # U does not fit: 4096 units over 132 blocks need 32 columns * 3 * 4096 doubles
    assert plan_persistent("auto", 1, 4096, 8, **h100) is None
    # fewer units than multiprocessors: one unit per block, no idle blocks
    plan = plan_persistent("auto", 2, 10, 4, **h100)
    assert (plan.grid, plan.jcap) == (10, 1)
    # blocks never outnumber what the units need
    for units in range(1, 300, 7):
        plan = plan_persistent("auto", 4, units, 4, num_sms=16, max_smem_bytes=1 << 30)
        assert (plan.grid - 1) * plan.jcap < units <= plan.grid * plan.jcap


def test_kernel_source_ships_with_the_package():
    text = GRU_CU.read_text()
    # NVRTC (what CuPy compiles with at run time) has no standard headers.
    assert "#include" not in text
    for kernel in STEP_KERNELS + PERSISTENT_KERNELS:
        assert f"__global__ void {kernel}(" in text, kernel
    assert len(name_expressions(STEP_KERNELS)) == 2 * len(STEP_KERNELS)


def _kernel_enum(text, name):
    """{"tanh": 0, ...} from gru.cu's ``enum name { CGRU_TANH = 0, ... }``."""
    body = re.search(r"enum\s+" + name + r"\s*\{([^}]*)\}", text)
    assert body, name
    pairs = re.findall(r"CGRU_(\w+)\s*=\s*(\d+)", body.group(1))
    return {key.lower(): int(value) for key, value in pairs}


def test_activation_codes_are_the_kernels():
    """The codes the backend passes are gru.cu's enum values, and every activation the ops
    accept has one."""
    text = GRU_CU.read_text()
    assert _kernel_enum(text, "cgru_activation_code") == cuda_kernels.ACTIVATION_CODES
    assert _kernel_enum(text, "cgru_recurrent_activation_code") == cuda_kernels.RECURRENT_ACTIVATION_CODES
    assert set(cuda_kernels.ACTIVATION_CODES) == set(ACTIVATIONS)
    assert set(cuda_kernels.RECURRENT_ACTIVATION_CODES) == set(RECURRENT_ACTIVATIONS)


# ---------------------------------------------------------------------------------------------
# Compilers (no GPU needed)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernels_compile_with_nvcc(arch, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH")
    out = tmp_path / f"gru_{arch}.cubin"
    proc = subprocess.run(
        [nvcc, f"-arch={arch}", "-cubin", "-DCGRU_EXPLICIT_INSTANTIATION", "-x", "cu", str(GRU_CU),
         "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


def _nvrtc():
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # CuPy or the NVRTC library missing
        pytest.skip(f"NVRTC through CuPy is not available: {exc}")
    return nvrtc


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernels_compile_with_nvrtc_as_cupy_does(arch):
    nvrtc = _nvrtc()
    names = name_expressions(STEP_KERNELS + PERSISTENT_KERNELS)
    prog = nvrtc.createProgram(GRU_CU.read_text(), "gru.cu", [], [])
    try:
        for name in names:
            nvrtc.addNameExpression(prog, name)
        options = [f"-arch={arch}", "-ftz=true", "--device-as-default-execution-space", "-std=c++17"]
        try:
            nvrtc.compileProgram(prog, options)
        except Exception as exc:
            pytest.fail(f"NVRTC failed: {exc}\n{nvrtc.getProgramLog(prog)}")
        for name in names:
            assert nvrtc.getLoweredName(prog, name), name
        assert len(nvrtc.getCUBIN(prog)) > 0
    finally:
        nvrtc.destroyProgram(prog)


# ---------------------------------------------------------------------------------------------
# Emulation: the real backend and kernels on the CPU


def emulated_ops(emulator, persistent="off", **device):
    fake, lib = emulator
    cp = fake.FakeCupy(lib, **device)
    return fake.emulated_ops(cp, persistent), cp


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_emulated_step_kernels_match_reference(emulator, rng, dtype, case):
    ops, cp = emulated_ops(emulator)
    check_against_reference(ops, rng, dtype, **CASES[case])
    assert not any(name.startswith("cgru_fwd_persistent") for name in cp.launches)


PERSISTENT_CASES = ["after", "before", "after-reverse-lengths", "before-reverse-lengths", "after-mask",
                    "before-mask-reverse", "relu-hard-sigmoid", "no-bias-no-h0", "batch1-time1"]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", PERSISTENT_CASES)
def test_emulated_persistent_kernel_matches_reference(emulator, rng, dtype, case):
    ops, cp = emulated_ops(emulator, persistent="always")
    check_against_reference(ops, rng, dtype, **CASES[case])
    forward = [n for n in cp.launches if n.startswith("cgru_fwd")]
    assert forward and all(n.startswith("cgru_fwd_persistent") for n in forward)


@pytest.mark.parametrize(
    "shape, device",
    [
        (dict(B=8, H=20, T=4), dict(num_sms=3)),  # more outputs than threads per block
        (dict(B=1, H=5, T=6), dict(num_sms=2)),  # last block owns fewer units; split dots
        (dict(B=2, H=40, T=3), dict(num_sms=16)),  # many blocks, several barriers
        (dict(B=3, H=6, T=4), dict(num_sms=1)),  # a single block
        (dict(B=2, H=3, T=3), dict(num_sms=8)),  # fewer units than multiprocessors
    ],
)
@pytest.mark.parametrize("reset_after", [True, False])
def test_emulated_persistent_kernel_shapes(emulator, rng, shape, device, reset_after):
    ops, cp = emulated_ops(emulator, persistent="always", **device)
    check_against_reference(ops, rng, np.float64, reset_after=reset_after, lengths=None, **shape)
    B, T = shape["B"], shape["T"]
    lengths = [max(T - b, 0) for b in range(B)]  # T, T-1, ..., 0, 0
    check_against_reference(ops, rng, np.float32, reset_after=reset_after, reverse=True, lengths=lengths,
                            **shape)
    assert any(n.startswith("cgru_fwd_persistent") for n in cp.launches)


def test_emulated_auto_mode_chooses_by_size(emulator, rng):
    ops, cp = emulated_ops(emulator, persistent="auto")
    check_against_reference(ops, rng, np.float32, B=ops.persistent_max_batch + 1, H=6)
    assert not any(n.startswith("cgru_fwd_persistent") for n in cp.launches)
    check_against_reference(ops, rng, np.float32, B=2, H=6)
    assert any(n.startswith("cgru_fwd_persistent") for n in cp.launches)


def test_emulated_persistent_kernel_above_48k_of_shared_memory(emulator, rng):
    """A launch needing more than the default 48 KiB of dynamic shared memory raises the
    kernel's limit first (the emulator refuses it otherwise, as CUDA does)."""
    ops, cp = emulated_ops(emulator, persistent="always", num_sms=1)
    B, H = 2, 64
    plan = ops._persistent_plan(B, H, np.float32)
    assert plan is not None and 48 * 1024 < plan.smem_bytes <= cp.smem_optin
    check_against_reference(ops, rng, np.float32, B=B, T=2, H=H)
    assert any(n.startswith("cgru_fwd_persistent") for n in cp.launches)


def test_emulated_falls_back_when_blocks_cannot_be_co_resident(emulator, rng):
    ops, cp = emulated_ops(emulator, persistent="always", blocks_per_sm=0)
    check_against_reference(ops, rng, np.float64, B=2, H=6)
    assert not any(n.startswith("cgru_fwd_persistent") for n in cp.launches)
    ops, cp = emulated_ops(emulator, persistent="always", smem_optin=64)  # nothing fits
    check_against_reference(ops, rng, np.float64, B=2, H=6)
    assert not any(n.startswith("cgru_fwd_persistent") for n in cp.launches)


def test_emulated_falls_back_when_the_persistent_kernel_cannot_load(emulator, rng):
    ops, cp = emulated_ops(emulator, persistent="always")
    ops.verify_persistent = False
    make_module = cp.RawModule

    def raw_module(**kwargs):
        if kwargs.get("enable_cooperative_groups"):
            raise RuntimeError("Relocatable PTX code is requested, but cudadevrt was not found")
        return make_module(**kwargs)

    cp.RawModule = raw_module
    check_against_reference(ops, rng, np.float32, B=2, H=6)
    assert "cudadevrt" in ops.persistent_error
    assert not any(n.startswith("cgru_fwd_persistent") for n in cp.launches)


def test_emulated_persistent_kernel_refuses_a_grid_too_small(emulator):
    """Launched with fewer blocks than its shared memory was sized for, the kernel returns at
    once in every block (no barrier reached, so no deadlock) and reports status 1."""
    ops, cp = emulated_ops(emulator, persistent="always")
    B, T, H = 2, 3, 6
    f = np.float64
    kern = ops._kernel("cgru_fwd_persistent", f)
    z = np.zeros
    y = cp.empty((B, T, H), f)
    sync = z(2, np.uint32)
    jcap = 2  # sized for 3 blocks, launched with 2
    elems = persistent_smem_elems(B, H, jcap, 32)
    i32 = np.int32
    kern((2,), (32,), (z((B * T, 3 * H), f), z((H, 3 * H), f), z(3 * H, f), z(3 * H, f), z((2, B, H), f),
                       None, None, y, None, None, None, sync, i32(B), i32(T), i32(H), i32(0), i32(1),
                       i32(0), i32(0), i32(jcap), np.int64(elems)), shared_mem=8 * elems)
    assert sync[1] == 1
    assert np.isnan(y).all()  # untouched


@pytest.mark.parametrize("persistent", ["off", "always"])
def test_emulated_prepared_gru_streams_like_the_reference(emulator, rng, persistent):
    ops, _ = emulated_ops(emulator, persistent=persistent)
    x, kernel, recurrent, b, state, _ = make_inputs(rng, np.float32, B=2, T=6, H=5)
    prepared = ops.prepare_gru(kernel, recurrent, b)
    h = ops.asarray(state).copy()
    ys = [ops.to_numpy(prepared.forward(x[:, t:t + 1], h)) for t in range(6)]  # one step per call
    y_ref, h_ref, _ = NumpyOps().gru_forward(x, kernel, recurrent, b, h0=state)
    np.testing.assert_allclose(np.concatenate(ys, axis=1), y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.to_numpy(h), h_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("persistent", ["off", "always"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("recurrent_mask", [False, True], ids=["", "recurrent-mask"])
def test_emulated_kernels_ignore_padding(emulator, rng, persistent, reset_after, reverse, recurrent_mask):
    ops, _ = emulated_ops(emulator, persistent=persistent)
    check_gru_ignores_padding(ops, rng, np.float32, reset_after=reset_after, reverse=reverse,
                              recurrent_mask=recurrent_mask)


def test_emulated_fit_ignores_padding(emulator, rng, monkeypatch):
    """One training step on NaN/inf padding equals the zero-padded one: float input with
    ``lengths=`` and, through Embedding(mask_zero=True), a padding row holding NaN and inf."""
    ops, _ = emulated_ops(emulator)
    registry = importlib.import_module("cgru.backends")  # registered for this test only
    monkeypatch.setitem(registry._factories, "cuda-emulated", lambda: ops)
    monkeypatch.setitem(registry._instances, "cuda-emulated", ops)

    def build(first, optimizer):
        model = cgru.Sequential([
            first,
            cgru.Bidirectional(cgru.GRU(5, return_sequences=True, reset_after=False, seed=1)),
            cgru.GRU(4, return_sequences=True, go_backwards=True, recurrent_dropout=0.2, seed=2),
            cgru.Dense(2),
        ], device="cuda-emulated")
        model.build((None, 6) if isinstance(first, cgru.Embedding) else (None, 6, 3))
        model.compile(optimizer=optimizer, loss="mse")
        return model

    x = rng.standard_normal((len(LENGTHS), 6, 3)).astype(np.float32)
    y = rng.standard_normal((len(LENGTHS), 6, 2)).astype(np.float32)
    check_fit_ignores_padding(lambda: build(cgru.Dropout(0.2, seed=3), "adam"), x, y, LENGTHS)
    check_padding_ids_get_no_gradient(lambda: build(cgru.Embedding(10, 3, mask_zero=True, seed=3), "sgd"))


def test_emulated_errors_match_reference(emulator):
    ops, _ = emulated_ops(emulator)
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="recurrent_kernel"):
        ops.gru_forward(x, np.zeros((4, 9)), np.zeros((3, 8)))
    with pytest.raises(ValueError, match="lengths"):
        ops.gru_forward(x, np.zeros((4, 9)), np.zeros((3, 9)), lengths=[1, 4])
    _, _, cache = ops.gru_forward(x, np.zeros((4, 9)), np.zeros((3, 9)), training=True)
    with pytest.raises(ValueError, match="dy"):
        ops.gru_backward(np.zeros((2, 3, 4)), None, cache)


def test_emulated_empty_batch_and_time(emulator):
    ops, _ = emulated_ops(emulator)
    ref = NumpyOps()
    for B, T in [(0, 4), (2, 0)]:
        x = np.ones((B, T, 3))
        W, U = np.ones((3, 6)) * 0.1, np.ones((2, 6)) * 0.1
        h0 = np.full((B, 2), 0.5)
        y, h, cache = ops.gru_forward(x, W, U, h0=h0, training=True)
        y_ref, h_ref, cache_ref = ref.gru_forward(x, W, U, h0=h0, training=True)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(h, h_ref)
        grads = ops.gru_backward(None, np.ones((B, 2)), cache)
        grads_ref = ref.gru_backward(None, np.ones((B, 2)), cache_ref)
        for got, want in zip(grads, grads_ref):
            if want is None:
                assert got is None
            else:
                np.testing.assert_array_equal(got, want)


def test_emulated_backend_loads_a_saved_model_onto_the_device(emulator, rng, tmp_path):
    """load_model builds on the device without initialising, then the file's arrays become
    device arrays: predictions equal the saved model's on the reference backend."""
    ops, cp = emulated_ops(emulator)
    cgru.register_backend("cuda-emulated-load", lambda: ops)
    model = cgru.Sequential([cgru.Bidirectional(cgru.GRU(5, return_sequences=True), input_shape=(None, 3)),
                             cgru.GRU(4), cgru.Dense(2)], device="numpy")
    model.save(tmp_path / "m.npz")
    loaded = cgru.load_model(tmp_path / "m.npz", device="cuda-emulated-load")
    assert all(isinstance(p.value, cp.ndarray) for p in loaded.weights)
    x = rng.standard_normal((3, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# A real GPU


@pytest.fixture(scope="module")
def gpu_ops():
    pytest.importorskip("cupy")
    try:
        ops = CupyOps(persistent="off")
    except RuntimeError as exc:
        pytest.skip(f"no CUDA device: {exc}")
    return ops


@pytest.fixture(scope="module")
def gpu_persistent_ops(gpu_ops):
    ops = CupyOps(persistent="always")
    ops.verify_persistent = True
    return ops


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_gpu_matches_reference(gpu_ops, rng, dtype, case):
    check_against_reference(gpu_ops, rng, dtype, **CASES[case])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_gpu_persistent_matches_reference(gpu_persistent_ops, rng, dtype, case):
    check_against_reference(gpu_persistent_ops, rng, dtype, **CASES[case])


@pytest.mark.parametrize(
    "shape",
    [
        dict(B=64, T=40, I=32, H=128),
        dict(B=8, T=30, I=16, H=512, lengths=[30, 1, 0, 17, 29, 30, 5, 12]),
        dict(B=4, T=12, I=8, H=1024),  # persistent: more than 48 KiB of shared memory in float32
        dict(B=1, T=64, I=8, H=256, reverse=True),
    ],
)
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("persistent", [False, True])
def test_gpu_larger_shapes(gpu_ops, gpu_persistent_ops, rng, shape, reset_after, persistent):
    ops = gpu_persistent_ops if persistent else gpu_ops
    check_against_reference(ops, rng, np.float32, reset_after=reset_after, scaled_atol=2e-5, **shape)
    check_against_reference(ops, rng, np.float64, reset_after=reset_after, **shape)


def test_gpu_takes_device_arrays_and_returns_them(gpu_ops, rng):
    import cupy

    check_against_reference(gpu_ops, rng, np.float32, lengths=[5, 2, 0], mask=True, inputs_on_device=True)
    x = gpu_ops.asarray(np.ones((2, 3, 4)), dtype=np.float32)
    assert isinstance(x, cupy.ndarray) and x.dtype == np.float32
    y, h, _ = gpu_ops.gru_forward(x, np.ones((4, 6)) * 0.1, np.ones((2, 6)) * 0.1,
                                  lengths=cupy.asarray([3, 1]))
    assert isinstance(y, cupy.ndarray) and isinstance(h, cupy.ndarray)
    assert isinstance(gpu_ops.to_numpy(y), np.ndarray)
    np.testing.assert_array_equal(gpu_ops.to_numpy(y)[1, 1:], 0)


def test_gpu_backend_is_selectable(gpu_ops):
    previous = cgru.get_backend()
    try:
        cgru.set_backend("cuda")
        assert cgru.get_backend() == "cuda"
        assert cgru.get_ops().name == "cuda"
    finally:
        cgru.set_backend(previous)


def test_emulated_backend_runs_a_model_like_numpy(emulator, rng, monkeypatch):
    """Sequential (Bidirectional + reset_before GRU + Dense, with lengths) predicts and trains the
    same on the emulated cuda backend as on the NumPy reference."""
    models = pytest.importorskip("cgru.models")
    layers = pytest.importorskip("cgru.layers")
    ops, cp = emulated_ops(emulator, persistent="auto")
    registry = importlib.import_module("cgru.backends")  # registered for this test only
    monkeypatch.setitem(registry._factories, "cuda-emulated", lambda: ops)
    monkeypatch.setitem(registry._instances, "cuda-emulated", ops)

    def build(device):
        model = models.Sequential([
            layers.Bidirectional(layers.GRU(5, return_sequences=True, seed=1), input_shape=(7, 3)),
            layers.GRU(4, seed=2, reset_after=False),
            layers.Dense(2),
        ], device=device)
        model.compile(optimizer="adam", loss="mse")
        return model

    x = rng.standard_normal((16, 7, 3)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    lengths = rng.integers(0, 8, 16)
    ref, emu = build("numpy"), build("cuda-emulated")
    emu.set_weights(ref.get_weights())
    out = emu.predict(x, lengths=lengths)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, ref.predict(x, lengths=lengths), rtol=1e-5, atol=1e-6)
    h_ref = ref.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, lengths=lengths)
    h_emu = emu.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, lengths=lengths)
    np.testing.assert_allclose(h_emu.history["loss"], h_ref.history["loss"], rtol=1e-5)
    for got, want in zip(emu.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert any(n.startswith("cgru_bwd") for n in cp.launches)
