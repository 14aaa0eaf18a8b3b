"""cgru.progress: what fit prints for each verbose setting, on a terminal and off one."""

import io
import re
import sys

from small_regression import _data, _regression

import cgru


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_output(ops, rng, capsys, monkeypatch):
    x, y = _data(rng, 40)
    model = _regression(ops, metrics=["mae"])
    model.fit(x, y, epochs=3, batch_size=8, verbose=2, validation_split=0.2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, start=1):
        assert re.fullmatch(
            rf"Epoch {i}/3 - 4/4 - \d+s - \d+(us|ms|s)/step - loss: [\d.e+-]+ - mae: [\d.e+-]+"
            r" - val_loss: [\d.e+-]+ - val_mae: [\d.e+-]+",
            line,
        ), line
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, batch_size=8, verbose="auto")  # not a terminal here: like 2
    assert len(capsys.readouterr().out.splitlines()) == 2
    model.fit(x, y, epochs=2, batch_size=8, verbose=1)  # not a terminal: the finished bar only
    out = capsys.readouterr().out
    assert "\r" not in out
    assert out.splitlines()[0] == "Epoch 1/2"
    assert re.fullmatch(
        r"5/5 \[=+\] - \d+s \d+(us|ms|s)/step - loss: [\d.e+-]+ - mae: [\d.e+-]+", out.splitlines()[1]
    ), out
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    monkeypatch.setattr(cgru.progress, "REFRESH_INTERVAL", 0.0)
    model.fit(x, y, epochs=1, batch_size=8, verbose="auto")
    out = tty.getvalue()
    assert out.startswith("Epoch 1/1\n")
    frames = out.split("\r")[1:]
    assert len(frames) == 6  # one redraw per step, then the final line
    assert "ETA:" in frames[0] and frames[0].lstrip().startswith("1/5 [")
    assert frames[-1].startswith("5/5 [==============================] - ") and frames[-1].endswith("\n")
