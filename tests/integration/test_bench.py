"""Smoke test of the benchmark harness: ``bench/compare.py --quick --json`` runs every row kind
(inference, training, bidirectional, streaming, peak memory) and every agreement check passes.

Competitors whose packages are missing are skipped by the script with a note, so this needs
only cgru with its compiled engine. It checks that the harness works, not how fast anything is.
"""

import json
import os
import subprocess
import sys

import paths
import pytest

from cgru.backends import compiled_available

ROOT = str(paths.ROOT)
SCRIPT = os.path.join(ROOT, "bench", "compare.py")

pytestmark = [
    pytest.mark.skipif(not compiled_available(), reason="the compiled engine is not built"),
    pytest.mark.skipif(not os.path.exists(SCRIPT), reason="bench/compare.py is not beside tests/ here"),
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"compare.py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    with open(out) as fh:
        return json.load(fh), proc.stdout


def test_quick_run_has_every_row_kind(quick_run):
    result, _ = quick_run
    rows = result["rows"]
    cgru_rows = {(r["shape"], r["mode"], r["threads"]) for r in rows if r["impl"] == "cgru"}
    for threads in (1, 2):
        for shape, mode in [("stream-small", "inference"), ("batch-tiny", "inference"),
                            ("batch-tiny", "training"), ("bidir-tiny", "inference"),
                            ("bidir-tiny", "training"), ("streaming", "step")]:
            assert (shape, mode, threads) in cgru_rows
    for r in rows:
        if r["impl"] == "cgru":
            assert r["median_s"] > 0 and r["gflops"] > 0 and r["ratio"] == pytest.approx(1.0)
    assert [s["threads"] for s in result["sgemm"] if s["when"] == "start"] == [1, 2]
    assert all(r["sgemm_gflops"] > 0 for r in rows if r["impl"] == "cgru")
    assert result["meta"]["flop_model"].startswith("forward = 2*B*T*3H*(I+H)")


def test_quick_run_agreement_checks_pass(quick_run):
    result, stdout = quick_run
    assert result["checks_passed"] is True
    assert all(r["check_ok"] and r["max_diff"] <= r["tolerance"] for r in result["rows"])
    assert "all agreement checks passed" in stdout


def test_quick_run_competitors_are_run_or_noted(quick_run):
    result, _ = quick_run
    impls = {r["impl"] for r in result["rows"]}
    assert {"cgru", "numpy"} <= impls
    for name in ("torch", "onnxruntime", "cgru-onnx"):
        assert name in impls or any(n.startswith(f"{name} skipped") for n in result["notes"])
    if "cgru-onnx" in impls:  # the exported model, next to cgru, on every inference and streaming row
        shapes = {(r["shape"], r["mode"], r["threads"]) for r in result["rows"] if r["impl"] == "cgru-onnx"}
        assert ("streaming", "step", 1) in shapes and ("bidir-tiny", "inference", 2) in shapes


def test_quick_run_has_the_reduced_precision_rows(quick_run):
    """cgru's model quantized to bfloat16 and int8 and OpenVINO (float32 and its default
    precision) on every inference and streaming row, never on a training row; each with its
    error against float32 beside its time, within the looser tolerance of reduced precision
    (and float32's for OpenVINO when it runs float32)."""
    result, stdout = quick_run
    rows = result["rows"]
    expected = {(r["shape"], r["mode"], r["threads"]) for r in rows
                if r["impl"] == "cgru" and r["mode"] != "training"}
    reduced_tol = result["meta"]["reduced_precision_tolerance"]
    impls = ["cgru-bfloat16", "cgru-int8"]
    if any(n.startswith("openvino skipped") for n in result["notes"]):
        assert not any(r["impl"].startswith("openvino") for r in rows)
    else:
        impls += ["openvino-f32", "openvino"]
    for impl in impls:
        mine = [r for r in rows if r["impl"] == impl]
        assert {(r["shape"], r["mode"], r["threads"]) for r in mine} == expected, impl
        for r in mine:
            assert r["median_s"] > 0 and r["check_ok"]
            if impl.startswith("cgru-"):  # quantized: an error above float32's, within the bound
                assert r["tolerance"] == reduced_tol and 1e-5 < r["max_diff"] <= reduced_tol
        assert f"{impl} training not run" in " ".join(result["notes"])
    for r in rows:
        if r["impl"] == "openvino-f32":  # OpenVINO told to run float32 is held to float32's tolerance
            assert r["tolerance"] == 1e-4 and r["max_diff"] <= 1e-4
    assert "cgru-bfloat16/cgru" in stdout and "openvino/cgru" in stdout


def test_quick_run_measures_memory(quick_run):
    result, _ = quick_run
    mem = result["memory"]
    assert mem is not None
    assert "cgru" in {r["impl"] for r in mem["rows"]}
    for r in mem["rows"]:
        assert r["peak_mib"] >= r["baseline_mib"] > 0


def test_markdown_and_unknown_shape():
    proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--markdown", "--threads", "1",
                           "--shapes", "streaming", "--impls", "cgru"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| shape | BxTxIxH | mode |" in proc.stdout
    bad = subprocess.run([sys.executable, SCRIPT, "--shapes", "no-such-shape"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "unknown shape" in bad.stderr
