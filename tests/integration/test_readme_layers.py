"""The README's "Layers around a GRU" example runs and says what it does: the padded sequence's
row equals the sequence run alone."""

from __future__ import annotations

import re

import numpy as np
from paths import ROOT


def test_readme_layers_snippet_runs(capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("<!-- section: layers -->", 1)[1].split("<!-- /section: layers -->", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    namespace: dict = {"__name__": "readme"}
    exec(compile(code, "README.md (layers)", "exec"), namespace)
    model, x, probs = namespace["model"], namespace["x"], namespace["probs"]
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs[1], model.predict(x[1:2, :60])[0], rtol=1e-5, atol=1e-6)
    assert "Total params:" in capsys.readouterr().out
