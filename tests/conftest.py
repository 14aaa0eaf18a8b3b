"""Shared fixtures: backends under test and seeded random generators.

Environment variables (unset in CI, which tests the reference and the compiled engine):
  CGRU_TEST_BACKENDS=numpy,cuda   the backends the ``ops`` fixture and the cross-backend tests
                                  run on, comma-separated, the reference first (a GPU machine
                                  runs every backend-parametrised test on "cuda" this way)
  CGRU_TEST_CUDA_EMULATOR=1       "cuda" is the CPU emulation of the CuPy backend
                                  (tests/cuda_emu), so the above runs without a GPU
Tests that use either (the ``ops`` fixture or :func:`backends_under_test`) carry the
``backends`` marker: ``pytest -m backends`` selects them.
"""

import os
import shutil
import subprocess

import numpy as np
import pytest

import cgru
from cgru.backends import available_backends, compiled_available, register_backend

BACKENDS_ENV = "CGRU_TEST_BACKENDS"
EMULATOR_ENV = "CGRU_TEST_CUDA_EMULATOR"


def backends_under_test() -> list[str]:
    """$CGRU_TEST_BACKENDS, else the reference backend and the compiled one (when built)."""
    requested = [name.strip() for name in os.environ.get(BACKENDS_ENV, "").split(",") if name.strip()]
    if requested:
        return requested
    names = ["numpy"]
    if compiled_available():
        names.append("cpu")
    return names


def _emulated_cuda():
    from cuda_emu import fake_cupy

    return fake_cupy.emulated_ops(fake_cupy.emulated_cupy())


if os.environ.get(EMULATOR_ENV) == "1":
    register_backend("cuda", _emulated_cuda)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "backends: runs on each backend under test ($CGRU_TEST_BACKENDS, see conftest.py)"
    )
    unknown = sorted(set(backends_under_test()) - set(available_backends()))
    if unknown:
        raise pytest.UsageError(
            f"{BACKENDS_ENV} names unknown backends {unknown}; available: {available_backends()}"
        )


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if "ops" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.backends)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """(the tests/cuda_emu/fake_cupy module, the emulator library it built): gru.cu's kernels as
    host C++; skips where no C++20 compiler is at hand."""
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        pytest.skip(f"no C++ compiler ({compiler}) for the kernel emulator")
    from cuda_emu import fake_cupy

    try:
        lib = fake_cupy.build_emulator(tmp_path_factory.mktemp("cuda_emu"), compiler)
    except subprocess.CalledProcessError as exc:
        if "barrier" in exc.stderr and "No such file" in exc.stderr:
            pytest.skip("the C++ compiler lacks C++20 <barrier>")
        raise AssertionError(f"emulator build failed:\n{exc.stderr}") from None
    return fake_cupy, lib


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(params=backends_under_test())
def ops(request):
    return cgru.get_ops(request.param)
