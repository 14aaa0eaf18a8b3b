"""Smoke test of ``bench/quantized.py --quick``: every cgru mode (float32, bfloat16, int8) runs
on every quick shape within the harness's error bound against float32, and OpenVINO is either
run or noted as skipped. It checks that the harness works, not how fast anything is."""

import json
import os
import subprocess
import sys

import paths
import pytest

from cgru.backends import compiled_available

ROOT = str(paths.ROOT)
SCRIPT = os.path.join(ROOT, "bench", "quantized.py")

pytestmark = [
    pytest.mark.skipif(not compiled_available(), reason="the compiled engine is not built"),
    pytest.mark.skipif(not os.path.exists(SCRIPT), reason="bench/quantized.py is not beside tests/ here"),
]


def test_quick_run(tmp_path):
    out = tmp_path / "quick.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--threads", "1", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"quantized.py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(out.read_text())
    rows = result["rows"]
    shapes = {r["shape"] for r in rows}
    assert {"stream-small", "streaming"} <= shapes
    for shape in shapes:
        impls = {r["impl"]: r for r in rows if r["shape"] == shape}
        for mode in ("float32", "bfloat16", "int8"):
            row = impls[f"cgru {mode}"]
            assert row["seconds"] > 0 and not row["fail"]
        assert impls["cgru float32"]["error"] < 1e-4  # float32 agrees with the float64 reference
        assert 1e-5 < impls["cgru bfloat16"]["error"] < 2e-2  # bfloat16 weights, not float32
        has_openvino = any(name.startswith("openvino") for name in impls)
        assert has_openvino or "openvino" in result["header"].get("skipped", "")
    assert "| cgru bfloat16 |" in proc.stdout
