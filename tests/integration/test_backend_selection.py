"""CGRU_TEST_BACKENDS (conftest.py): the backends that the ``ops`` fixture and the cross-backend
tests run on, and the ``backends`` marker that selects those tests (a GPU machine runs them on
"cuda" this way, see bench/gpu_check.sh). Checked by collecting tests/test_model.py in a child
pytest, so nothing runs on a backend here."""

import os
import subprocess
import sys

from paths import ROOT

from cgru.backends import compiled_available


def collect_backend_tests(backends, cwd):
    """``pytest --collect-only -m backends tests/test_model.py`` with CGRU_TEST_BACKENDS=backends
    (unset for None), from ``cwd`` so that the child imports the cgru this process imports."""
    env = dict(os.environ)
    env.pop("CGRU_TEST_CUDA_EMULATOR", None)
    if backends is None:
        env.pop("CGRU_TEST_BACKENDS", None)
    else:
        env["CGRU_TEST_BACKENDS"] = backends
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", "backends",
         str(ROOT / "tests" / "test_model.py")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_backends_default_to_the_reference_and_the_compiled_engine(tmp_path):
    proc = collect_backend_tests(None, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert "tests/test_model.py::test_call_and_predict_agree[numpy]" in ids
    assert ("tests/test_model.py::test_call_and_predict_agree[cpu]" in ids) == compiled_available()
    assert "tests/test_model.py::test_device_selection_and_to" in ids  # marked: compares backends
    assert not any("test_keras_example_summary" in i for i in ids)  # no backend involved


def test_backends_from_the_environment(tmp_path):
    proc = collect_backend_tests(" numpy, cuda ", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = [line for line in proc.stdout.splitlines() if "test_call_and_predict_agree" in line]
    assert sorted(i.split("[")[1].rstrip("]") for i in ids) == ["cuda", "numpy"]
    bad = collect_backend_tests("numpy,tpu", tmp_path)
    assert bad.returncode == 4 and "CGRU_TEST_BACKENDS names unknown backends ['tpu']" in bad.stderr
