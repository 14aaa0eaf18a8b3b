"""bench/data_parallel.py: its cost model against hand-computed numbers, and a --quick run of the
measurement where MPI is at hand (the harness works; how fast anything is, is not tested)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from paths import ROOT

SCRIPT = str(ROOT / "bench" / "data_parallel.py")

pytestmark = pytest.mark.skipif(not os.path.exists(SCRIPT), reason="bench/ is not beside tests/ here")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_data_parallel", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_allreduce_time_is_the_cheapest_usual_algorithm(bench):
    # 8 ranks, 1 MB, 1 us, 1 GB/s: ring 14 us + 1.75 ms, doubling 3 us + 3 ms, Rabenseifner 6 us + 1.75 ms
    assert bench.allreduce_seconds(1e6, 8, 1e-6, 1e9) == pytest.approx(6e-6 + 1.75e-3)
    # 64 ranks, 8 bytes, 50 us: ring 6.3 ms of latency, Rabenseifner 12 x 50 us, doubling 6 x 50 us
    assert bench.allreduce_seconds(8, 64, 50e-6, 1.25e9) == pytest.approx(6 * 50e-6 + 6 * 8 / 1.25e9)
    # 3 ranks, 1 GB, no latency, 1 GB/s: ring and Rabenseifner move 2 * 2/3 of it
    assert bench.allreduce_seconds(1e9, 3, 0.0, 1e9) == pytest.approx(4 / 3)
    assert bench.allreduce_seconds(1e6, 1, 1e-6, 1e9) == 0.0


def test_flops_and_parameters_of_a_gru_stack(bench):
    # GRU(4) on 3 features + Dense(1): 3*4*(3+4) + 6*4 + 4 + 1
    assert bench.gru_params(4, 1, 3) == 84 + 24 + 5
    # 3 x forward, forward = 2 T 3H (I + H) per layer
    assert bench.training_flops_per_sample(4, 2, 10, 3) == 3 * (2 * 10 * 12 * 7 + 2 * 10 * 12 * 8)


def test_the_model_scales_worse_with_more_nodes_smaller_batches_and_slower_networks(bench):
    rows = bench.cost_model(node_flops=1e12)
    assert len(rows) == len(bench.MODELS) * len(bench.PER_NODE_BATCH) * len(bench.NETWORKS)
    for row in rows:
        effs = [row["efficiency"][r] for r in bench.NODES]
        assert all(0 < e <= 1 for e in effs) and effs == sorted(effs, reverse=True)
        assert row["scales_to"] == max([r for r in bench.NODES if row["efficiency"][r] >= bench.TARGET],
                                       default=1)
    by_key = {(r["units"], r["batch"], r["network"]): r["efficiency"][512] for r in rows}
    for units, *_ in bench.MODELS:
        assert by_key[(units, 8, "10GbE")] < by_key[(units, 512, "10GbE")]
        assert by_key[(units, 32, "10GbE")] < by_key[(units, 32, "IB-100G")]


def test_model_only_run_writes_its_json(tmp_path):
    out = tmp_path / "model.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--model-only", "--core-gflops", "5", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["node_gflops"] == pytest.approx(5 * 32)
    assert "cost model" in proc.stdout


def test_quick_measurement_runs_every_layout(tmp_path):
    pytest.importorskip("mpi4py")
    from cgru.backends import compiled_available

    if not compiled_available():
        pytest.skip("the compiled engine is not built")
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        pytest.skip("no mpiexec beside this Python (pip install mpich)")
    out = tmp_path / "quick.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    measured = json.loads(out.read_text())["measured"]
    assert set(measured) == {"1x1", "1x2", "2x1"}
    assert all(row["samples_per_s"] > 0 for row in measured.values())
    fit = measured["2x1"]["latency_bandwidth"]
    assert fit["alpha"] > 0 and fit["beta"] > 0
