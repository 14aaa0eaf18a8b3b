"""A CPU stand-in for the part of CuPy that cgru's "cuda" backend uses.

Arrays are NumPy arrays; ``RawModule``/``RawKernel`` run the kernels of gru.cu compiled as host
C++ (launcher.cpp + emu.h) through ctypes. Every launch is checked the way the GPU would need it:
the argument count, each scalar's byte size (a Python int is passed as 8 bytes, as CuPy does),
each pointer's element size and C-contiguity, the block size, and for cooperative launches the
grid against the reported occupancy and the dynamic shared memory against the kernel's
attribute. ``empty`` fills float arrays with NaN so that reads of unwritten memory show.

Test-only: this verifies the kernels and the Python driver logic without a GPU, not CUDA's own
behaviour (memory model, warp scheduling, NVRTC specifics).
"""

from __future__ import annotations

import ctypes
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from cgru.backends.cuda_kernels import KERNEL_SOURCE
from cgru.backends.cupy_ops import CupyOps

HERE = Path(__file__).resolve().parent
GRU_CU = KERNEL_SOURCE  # the file the backend compiles (the installed copy when installed)


def build_emulator(out_dir: Path, compiler: str = "g++") -> Path:
    """Compile gru.cu + the emulator into a shared library; returns its path.

    ``CGRU_EMU_CXXFLAGS`` adds flags, e.g. ``-fsanitize=address`` (then run Python with
    ``LD_PRELOAD=$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0``) to catch
    out-of-bounds accesses of the kernels.
    """
    lib = Path(out_dir) / "libcgru_emu.so"
    cmd = [
        compiler, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-Wall",
        *shlex.split(os.environ.get("CGRU_EMU_CXXFLAGS", "")),
        f"-I{GRU_CU.parent}", f"-I{HERE}", str(HERE / "launcher.cpp"), "-o", str(lib),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    return lib


_libraries: dict[str, ctypes.CDLL] = {}
_scratch: list[tempfile.TemporaryDirectory] = []  # where emulated_cupy builds, removed at exit

#: Threads per block of the emulated persistent kernel: each is a host thread, so fewer than the
#: GPU's 256 keep cooperative launches quick.
EMULATED_PERSISTENT_BLOCK = 32


def emulated_cupy(compiler: str | None = None, **device) -> FakeCupy:
    """A FakeCupy over the emulator library named by $CGRU_EMU_LIB (one that build_emulator made),
    else over one built once per process (``compiler``: default $CXX or g++); ``device`` as for
    :class:`FakeCupy`."""
    lib = os.environ.get("CGRU_EMU_LIB")
    if not lib:
        if not _scratch:
            _scratch.append(tempfile.TemporaryDirectory(prefix="cgru_emu_"))
        lib = Path(_scratch[0].name) / "libcgru_emu.so"
        if not lib.exists():
            build_emulator(lib.parent, compiler or os.environ.get("CXX", "g++"))
    return FakeCupy(lib, **device)


def emulated_ops(cupy: FakeCupy, persistent: str | None = None) -> CupyOps:
    """The real CupyOps over ``cupy`` (``persistent``: None reads $CGRU_CUDA_PERSISTENT, as on a
    GPU), with few threads per emulated block and the persistent kernel's status checked."""
    ops = CupyOps(cupy, persistent=persistent)
    ops.persistent_block = EMULATED_PERSISTENT_BLOCK
    ops.verify_persistent = True
    return ops


def _load(path: str) -> ctypes.CDLL:
    """dlopen the emulator once per path and process."""
    if path not in _libraries:
        _libraries[path] = ctypes.CDLL(path)
    return _libraries[path]


class FakeRuntimeError(RuntimeError):
    """Stands in for cupy_backends.cuda.api.runtime.CUDARuntimeError."""


class _Function:
    def __init__(self, index: int) -> None:
        self.ptr = index


class FakeRawKernel:
    def __init__(self, owner: FakeCupy, name: str, cooperative: bool) -> None:
        lib = owner.emu
        self.owner = owner
        self.name = name
        self.cooperative = cooperative
        self.index = lib.emu_find(name.encode())
        if self.index < 0:
            raise AssertionError(f"kernel {name!r} is not in the emulator's table (launcher.cpp)")
        n = lib.emu_nparams(self.index)
        self.sizes = [lib.emu_param_size(self.index, i) for i in range(n)]
        self.elems = [lib.emu_param_elem(self.index, i) for i in range(n)]
        self.kernel = _Function(self.index)
        self.max_dynamic_shared_size_bytes = 48 * 1024

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None):
        owner = self.owner
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        assert grid[1:] == (1, 1) and block[1:] == (1, 1), "cgru launches are 1-D"
        g, b = int(grid[0]), int(block[0])
        assert g >= 1, f"{self.name}: empty grid {grid} (CUDA rejects it)"
        assert 1 <= b <= 1024, f"{self.name}: bad block {block}"
        assert len(args) == len(self.sizes), (
            f"{self.name}: {len(args)} arguments for {len(self.sizes)} parameters"
        )
        if shared_mem > 48 * 1024:
            assert shared_mem <= self.max_dynamic_shared_size_bytes, (
                f"{self.name}: {shared_mem} bytes of shared memory without raising the attribute"
            )
        if self.cooperative:
            per_sm = owner.occupancy(self.index, b, shared_mem)
            assert g <= per_sm * owner.num_sms, f"{self.name}: cooperative grid {g} cannot be co-resident"
        keep = []
        guards = []
        ptrs = (ctypes.c_void_p * len(args))()
        for i, (arg, size, elem) in enumerate(zip(args, self.sizes, self.elems)):
            if elem:  # pointer parameter
                if arg is None:
                    cell = ctypes.c_void_p(None)
                else:
                    assert isinstance(arg, np.ndarray), f"{self.name} arg {i}: {type(arg).__name__}"
                    assert arg.flags.c_contiguous, f"{self.name} arg {i}: array is not C-contiguous"
                    assert arg.itemsize == elem, (
                        f"{self.name} arg {i}: element size {arg.itemsize}, kernel expects {elem}"
                    )
                    if arg.size == 0:
                        cell = ctypes.c_void_p(arg.ctypes.data)
                    else:
                        guarded = _Guarded(arg)
                        guards.append(guarded)
                        cell = ctypes.c_void_p(guarded.inner.ctypes.data)
            else:
                if isinstance(arg, bool):
                    arg = np.bool_(arg)
                elif isinstance(arg, int):
                    arg = np.int64(arg)  # what CuPy passes for a Python int
                elif isinstance(arg, float):
                    arg = np.float64(arg)
                assert isinstance(arg, np.generic), f"{self.name} arg {i}: {type(arg).__name__}"
                assert arg.itemsize == size, (
                    f"{self.name} arg {i}: {arg.itemsize}-byte scalar for a {size}-byte parameter"
                )
                cell = ctypes.create_string_buffer(arg.tobytes(), size)
            keep.append(cell)
            ptrs[i] = ctypes.cast(ctypes.pointer(cell), ctypes.c_void_p)
        self._check_no_aliasing(self.name, [gd.arr for gd in guards])
        owner.launches.append(self.name)
        rc = owner.emu.emu_launch(self.index, g, b, int(shared_mem), int(self.cooperative), ptrs)
        assert rc == 0
        for guarded in guards:
            guarded.finish(self.name)

    @staticmethod
    def _check_no_aliasing(name, arrays):
        for i, a in enumerate(arrays):
            for b in arrays[i + 1:]:
                assert not np.may_share_memory(a, b), f"{name}: two array arguments overlap"


class _Guarded:
    """A copy of an array argument between two canary zones: the kernel works on the copy, and
    afterwards the canaries must be intact (no write out of bounds) before the copy goes back."""

    MARGIN = 256  # bytes on each side

    def __init__(self, arr: np.ndarray) -> None:
        self.arr = arr
        n = arr.nbytes
        self.buf = np.empty(n + 2 * self.MARGIN, np.uint8)
        self.canary = np.frombuffer(np.full(self.MARGIN // 8, np.nan).tobytes(), np.uint8)
        self.buf[: self.MARGIN] = self.canary
        self.buf[self.MARGIN + n:] = self.canary
        self.inner = self.buf[self.MARGIN: self.MARGIN + n].view(arr.dtype).reshape(arr.shape)
        self.inner[...] = arr

    def finish(self, name: str) -> None:
        n = self.arr.nbytes
        assert np.array_equal(self.buf[: self.MARGIN], self.canary), f"{name}: write before an array"
        assert np.array_equal(self.buf[self.MARGIN + n:], self.canary), f"{name}: write past an array"
        if self.arr.flags.writeable:
            self.arr[...] = self.inner
        else:
            assert np.array_equal(self.arr.view(np.uint8), self.inner.view(np.uint8)), (
                f"{name}: wrote to a read-only array"
            )


class FakeRawModule:
    def __init__(self, owner, *, code, options=(), name_expressions=None, enable_cooperative_groups=False):
        assert code == GRU_CU.read_text(), "the backend must compile gru.cu itself"
        self.owner = owner
        self.names = tuple(name_expressions or ())
        self.cooperative = bool(enable_cooperative_groups)
        self.options = options

    def get_function(self, name):
        assert name in self.names, f"{name!r} was not among the module's name_expressions"
        return FakeRawKernel(self.owner, name, self.cooperative)


class FakeCupy:
    """Looks like the ``cupy`` module to cgru.backends.cupy_ops; NumPy underneath."""

    def __init__(self, lib_path, *, num_sms=3, smem_optin=99 * 1024, cooperative=True,
                 blocks_per_sm=1, device_count=1):
        lib = _load(str(lib_path))
        lib.emu_find.argtypes = [ctypes.c_char_p]
        lib.emu_find.restype = ctypes.c_int
        lib.emu_nparams.argtypes = [ctypes.c_int]
        lib.emu_param_size.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.emu_param_size.restype = ctypes.c_size_t
        lib.emu_param_elem.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.emu_param_elem.restype = ctypes.c_size_t
        lib.emu_launch.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_size_t,
                                   ctypes.c_int, ctypes.c_void_p]
        lib.emu_launch.restype = ctypes.c_int
        self.emu = lib  # not "lib", which is CuPy's module (cupy.lib.stride_tricks): NumPy's here
        self.num_sms = num_sms
        self.smem_optin = smem_optin
        self.blocks_per_sm = blocks_per_sm
        self.launches: list[str] = []
        attributes = {
            "MultiProcessorCount": num_sms,
            "MaxSharedMemoryPerBlockOptin": smem_optin,
            "MaxSharedMemoryPerBlock": 48 * 1024,
            "CooperativeLaunch": int(cooperative),
        }

        def get_device_count():
            if device_count < 0:
                raise FakeRuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
            return device_count

        self.cuda = SimpleNamespace(
            runtime=SimpleNamespace(getDeviceCount=get_device_count),
            Device=lambda *a: SimpleNamespace(id=0, attributes=dict(attributes), compute_capability="90",
                                              synchronize=lambda: None),
            driver=SimpleNamespace(occupancyMaxActiveBlocksPerMultiprocessor=self.occupancy),
            set_allocator=lambda allocator=None: None,  # no memory pool to switch off
        )

    def occupancy(self, func_ptr, block, smem):
        return self.blocks_per_sm if smem <= self.smem_optin else 0

    def RawModule(self, **kwargs):  # noqa: N802 (CuPy's name)
        return FakeRawModule(self, **kwargs)

    def asnumpy(self, x):
        return np.asarray(x)

    def empty(self, shape, dtype=float, order="C"):
        out = np.empty(shape, dtype=dtype, order=order)
        if out.dtype.kind == "f":
            out.fill(np.nan)
        return out

    def __getattr__(self, name):
        return getattr(np, name)
