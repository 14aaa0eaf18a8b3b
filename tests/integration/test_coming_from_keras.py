"""The README's "Coming from Keras" section: its snippets run as written, in order, in one
namespace (the second continues the first, as a reader would)."""

from __future__ import annotations

import re

import numpy as np
from paths import ROOT

README = ROOT / "README.md"


def section_snippets(name: str) -> list[str]:
    """The ```python blocks between ``<!-- section: NAME -->`` and its closing marker."""
    text = README.read_text(encoding="utf-8")
    body = text.split(f"<!-- section: {name} -->", 1)[1].split(f"<!-- /section: {name} -->", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def test_the_keras_script_runs_after_changing_its_import():
    snippets = section_snippets("keras")
    assert len(snippets) == 2
    assert "import cgru as keras" in snippets[0]
    namespace: dict = {"__name__": "readme"}
    exec(compile(snippets[0], "README.md (Coming from Keras)", "exec"), namespace)
    history, probabilities = namespace["history"], namespace["probabilities"]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert probabilities.shape == (64, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    model = namespace["model"]
    iterations = model.optimizer.iterations
    exec(compile(snippets[1], "README.md (Coming from Keras, lengths)", "exec"), namespace)
    assert model.optimizer.iterations == iterations + 8  # 2 epochs of 4 steps
