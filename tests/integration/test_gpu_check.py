"""bench/gpu_check.sh, the one-call check of the "cuda" backend on a GPU machine, run here in its
--emulate mode (CuPy replaced by the CPU emulator of tests/cuda_emu): its paths, arguments,
stage control (time limits, budget, failures that do not stop the run), log and JSON, so that it
cannot rot between the rare runs on a device. Nothing here measures or needs a GPU."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
from paths import ROOT

SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _has_tools() -> bool:
    """bash 4+ and GNU coreutils' timeout, as on the GPU machines the script is written for."""
    if os.name == "nt" or shutil.which("bash") is None or shutil.which("timeout") is None:
        return False
    bash = subprocess.run(["bash", "-c", "echo ${BASH_VERSINFO[0]}"], capture_output=True, text=True)
    timeout = subprocess.run(["timeout", "--version"], capture_output=True, text=True)
    return bash.stdout.strip().isdigit() and int(bash.stdout) >= 4 and "GNU coreutils" in timeout.stdout


pytestmark = [
    pytest.mark.skipif(not SCRIPT.exists(), reason="bench/gpu_check.sh is not beside tests/ here"),
    pytest.mark.skipif(not _has_tools(), reason="needs bash 4+ and GNU coreutils timeout"),
]


def run_check(tmp_path, emulator, *args, python=sys.executable, **env):
    """bash bench/gpu_check.sh --emulate ARGS with OUT=tmp_path/out; (process, report or None)."""
    _, lib = emulator
    out = tmp_path / "out"
    full_env = dict(os.environ, OUT=str(out), PYTHON=str(python), CGRU_EMU_LIB=str(lib), **env)
    proc = subprocess.run(["bash", str(SCRIPT), "--emulate", *args], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=300)
    report = out / "gpu_check.json"
    return proc, json.loads(report.read_text()) if report.exists() else None


def statuses(report):
    return {s["name"]: s["status"] for s in report["stages"]}


def executable(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_emulated_run_passes_each_kind_of_stage(tmp_path, emulator):
    stages = ["env", "smoke", "tests-backends", "memcheck-persistent"]
    has_torch = importlib.util.find_spec("torch") is not None
    if has_torch:
        stages.append("bench")
    # a stand-in compute-sanitizer: shows the options it was given, runs the program after them
    tools = tmp_path / "bin"
    tools.mkdir()
    executable(tools / "compute-sanitizer", (
        "#!/usr/bin/env bash\n"
        'case "$1" in --help) echo "  --report-api-errors arg"; exit 0 ;; --version) exit 0 ;; esac\n'
        'echo "stand-in sanitizer: $*"\n'
        'while [ $# -gt 1 ] && [[ "$1" == --* ]]; do shift 2; done\n'
        '"$@"; rc=$?\n'
        'echo "========= ERROR SUMMARY: 0 errors"; exit $rc\n'
    ))
    proc, report = run_check(tmp_path, emulator, "--stages", ",".join(stages), "--select", "get_set_weights",
                             PATH=f"{tools}{os.pathsep}{os.environ['PATH']}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["mode"] == "emulated (no GPU)" and report["finished"] and report["ok"]
    assert [s["name"] for s in report["stages"]] == stages
    assert set(statuses(report).values()) == {"pass"}
    by_name = {s["name"]: s for s in report["stages"]}
    # the backend-parametrised test ran on the reference and on the (emulated) cuda backend
    assert by_name["tests-backends"]["summary"].startswith("2 passed")
    assert "all cases passed (persistent)" in proc.stdout
    assert by_name["memcheck-persistent"]["summary"] == "ERROR SUMMARY: 0 errors"
    assert "stand-in sanitizer: --tool memcheck --error-exitcode 86 --print-limit 30 --report-api-errors no" \
        in proc.stdout
    assert report["environment"]["python"] and "cupy" in report["environment"]
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    assert "=== summary" in log and "overall: PASS" in log
    if has_torch:
        bench = report["bench"]
        assert bench == json.loads((tmp_path / "out" / "gpu_compare.json").read_text())
        assert bench["ok"] and bench["meta"]["emulated"]
        rows = bench["rows"]
        assert [(r["mode"], r["batch"]) for r in rows] == [
            ("inference", 1), ("training", 1), ("inference", 9), ("training", 9)]
        for row in rows:
            off, always = row["cgru"]["cgru off"], row["cgru"]["cgru always"]
            assert off["path"] == "steps" and always["path"] == "persistent"
            assert max(off["max_rel_diff"], always["max_rel_diff"]) < 1e-5
        assert "| inference | 9 | 8 |" in proc.stdout.split("=== benchmark")[1]


def test_failed_and_timed_out_stages_do_not_stop_the_run(tmp_path, emulator):
    """A stage that fails and one that outlasts its limit are recorded as such, the stages after
    them still run, and the exit status says that something failed."""
    wrapper = executable(tmp_path / "python", (
        "#!/usr/bin/env bash\n"
        'case "$*" in\n'
        '  *gpu_sanitize.py*--kernels*) ;;\n'  # the sanitizer stages: the real driver
        '  *gpu_sanitize.py*) echo "planted failure"; exit 3 ;;\n'  # the smoke stage
        '  *gpu_compare.py*) echo "cell 1 of 16"; exec sleep 60 ;;\n'
        "esac\n"
        f'exec "{sys.executable}" "$@"\n'
    ))
    proc, report = run_check(tmp_path, emulator, "--stages", "smoke,bench,memcheck", python=wrapper,
                             GPU_CHECK_TIMEOUT_BENCH="2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert statuses(report) == {"smoke": "fail", "bench": "timeout", "memcheck": "pass"}
    assert [s["name"] for s in report["stages"]] == ["smoke", "memcheck", "bench"]  # the script's order
    bench = report["stages"][2]
    assert bench["limit_s"] == 2 and bench["rc"] in (124, 137)
    assert bench["summary"] == "cut off at the limit; last output: cell 1 of 16"
    assert report["stages"][0]["summary"] is None and "planted failure" in proc.stdout
    if shutil.which("compute-sanitizer") is None:  # then the emulated run goes on without it
        assert any("no compute-sanitizer" in n for n in report["stages"][1]["notes"])
    assert report["finished"] and not report["ok"]
    assert "overall: FAIL (smoke, bench)" in proc.stdout


def test_stages_past_the_budget_are_skipped(tmp_path, emulator):
    proc, report = run_check(tmp_path, emulator, "--stages", "env,bench", "--budget", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(report) == {"env": "skipped", "bench": "skipped"}
    assert all("budget" in s["notes"][0] for s in report["stages"])


@pytest.mark.parametrize("args, env, message", [
    (["--stages", "env,nope"], {}, "unknown stage 'nope'"),
    (["--frobnicate"], {}, "unknown argument '--frobnicate'"),
    (["--budget", "soon"], {}, "--budget must be whole seconds"),
    ([], {"GPU_CHECK_TIMEOUT_TESTS_CUDA": "0"}, "GPU_CHECK_TIMEOUT_TESTS_CUDA must be a positive number"),
])
def test_bad_arguments_are_refused_before_anything_runs(tmp_path, emulator, args, env, message):
    proc, report = run_check(tmp_path, emulator, *args, **env)
    assert proc.returncode == 2 and message in proc.stderr
    assert report is None


def test_help_describes_every_stage():
    proc = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for stage in ("env", "build", "smoke", "tests-cuda", "tests-backends", "tests-backends-persistent",
                  "memcheck", "racecheck", "memcheck-persistent", "racecheck-persistent", "bench"):
        assert stage in proc.stdout
