"""Smoke test of examples/: each script runs in a subprocess (quick mode) and reports what it should."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from isolated import this_cgru_env
from paths import ROOT

import cgru

EXAMPLES = ROOT / "examples"

# script: (arguments, fragments its output must contain)
CASES = {
    "quickstart.py": (["--quick"], ["'compiled': True", "test MSE", "predicted"]),
    "keras_stacked_gru.py": ([], ["Total params: 4,461", "Epoch 5/5"]),
    "tabular_regression.py": (["--quick", "--out", "curves.png"], ["test R^2: GRU"]),
    "forecast_timeseries.py": (["--quick"], ["mean absolute error GRU", "quantized for inference"]),
    "bidirectional_classifier.py": (["--quick"], ["test accuracy"]),
    "plugin_layer.py": (["--quick"], ["gradient check", "predictions identical: True"]),
    "torch_to_cgru.py": (["--quick"], ["torch imported: False", "served without torch"]),
    "distributed_training.py": (["--quick"], ["ranks: 1", "replicas identical on every rank"]),
    "dask_batch_inference.py": (["--quick"], ["model rebuilt per worker: [1, 1]", "equals predict: True"]),
}
# examples that need an optional package: (its module, what they print without it)
NEEDS = {"distributed_training.py": ("mpi4py", 'pip install ".[mpi]"'),
         "dask_batch_inference.py": ("distributed", 'pip install ".[dask]"')}


TORCH_MISSING = "PyTorch is not installed (pip install torch"


def run_example(script: str, args: list[str], cwd: Path, hide: tuple[str, ...] = ()) -> str:
    """Run an example; modules named in ``hide`` fail to import in it, as if not installed."""
    env = this_cgru_env(MPLBACKEND="Agg")
    if cgru.backend_info().get("compiled"):
        env.setdefault("CGRU_REQUIRE_COMPILED", "1")
    command = [sys.executable, str(EXAMPLES / script), *args]
    if hide:
        runner = (f"import runpy, sys; sys.modules.update(dict.fromkeys({list(hide)!r})); "
                  "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
        command = [sys.executable, "-c", runner, *command[1:]]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (f"{script} exited with {result.returncode}\n--- stdout\n"
                                    f"{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}")
    return result.stdout


def number_after(pattern: str, text: str) -> float:
    match = re.search(pattern + r"\s*([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)", text)
    assert match, f"no {pattern!r} in the output:\n{text}"
    return float(match.group(1))


def test_every_example_is_covered():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(script, tmp_path):
    if script == "torch_to_cgru.py" and importlib.util.find_spec("torch") is None:
        assert TORCH_MISSING in run_example(script, ["--quick"], tmp_path)
        return
    if script in NEEDS and importlib.util.find_spec(NEEDS[script][0]) is None:
        assert NEEDS[script][1] in run_example(script, ["--quick"], tmp_path)
        return
    args, expected = CASES[script]
    out = run_example(script, args, tmp_path)
    for fragment in expected:
        assert fragment in out, f"{fragment!r} not in the output of {script}:\n{out}"

    if script == "quickstart.py":
        assert number_after("test MSE", out) < number_after(r"repeating the last value:", out)
    elif script == "forecast_timeseries.py":
        assert number_after("error GRU", out) < number_after("naive last value", out)
        float_mse = number_after("float32   MSE", out)
        for mode in ("bfloat16", "int8"):  # the quantized forms keep the trained model's accuracy
            assert abs(number_after(f"{mode:<9} MSE", out) - float_mse) < 0.05 * float_mse
            assert 0 < number_after(f"{mode}.*?float32's\\|", out) < 5
    elif script == "bidirectional_classifier.py":
        assert number_after("test accuracy:", out) > 0.8
    elif script == "tabular_regression.py":
        assert number_after("test R\\^2: GRU", out) > 0.3
        png = tmp_path / "curves.png"
        if importlib.util.find_spec("matplotlib") is None:
            assert "matplotlib is not installed" in out and not png.exists()
        else:
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    elif script == "torch_to_cgru.py":
        assert number_after("max difference from PyTorch", out) < 1e-4
    elif script == "distributed_training.py":
        assert number_after("validation MSE", out) < number_after("predicting the mean frequency:", out) / 5
    elif script == "dask_batch_inference.py":
        assert number_after("frequencies", out) < number_after("predicting the mean:", out) / 5


def test_torch_example_says_what_to_install_without_torch(tmp_path):
    out = run_example("torch_to_cgru.py", ["--quick"], tmp_path, hide=("torch",))
    assert TORCH_MISSING in out and 'pip install ".[torch]"' in out


def readme_snippet(section: str, containing: str) -> str:
    """The ```python block of the README's ``<!-- section: NAME -->`` that contains ``containing``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(f"<!-- section: {section} -->", 1)[1].split(f"<!-- /section: {section} -->", 1)[0]
    blocks = [b for b in re.findall(r"```python\n(.*?)```", body, re.S) if containing in b]
    assert len(blocks) == 1, f"expected one python block with {containing!r} in section {section!r}"
    return blocks[0]


def test_readme_from_torch_snippet_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    code = readme_snippet("interop", "cgru.from_torch(")
    monkeypatch.chdir(tmp_path)  # it writes model.npz
    namespace: dict = {"__name__": "readme"}
    exec(compile(code, "README.md (interop)", "exec"), namespace)
    x, lengths, y = namespace["x"], namespace["lengths"], namespace["y"]
    assert y.shape == (*x.shape[:2], 1)
    for row, length in enumerate(lengths):
        assert not y[row, length:].any()
