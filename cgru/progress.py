"""Keras-like progress output for ``fit``/``evaluate``/``predict``.

``verbose=1``: a progress bar per epoch (steps, ETA, running loss and metrics). On a terminal it
is redrawn in place with ``\\r`` (at most every 0.05 s, and always at the last step); when the
output is not a terminal (a log file, a pipe) only the finished bar is written, once per epoch.
``verbose=2``: one line per epoch. ``verbose=0``: nothing. ``"auto"``: 1 on a terminal, else 2.
Output goes to ``sys.stdout`` as it is at the time of writing.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

#: Minimum seconds between two in-place redraws of a progress bar on a terminal.
REFRESH_INTERVAL = 0.05


def resolve_verbose(verbose: Any) -> int:
    """0, 1 or 2 from ``verbose`` (``"auto"``: 1 when stdout is a terminal, else 2)."""
    if verbose == "auto":
        return 1 if _isatty(sys.stdout) else 2
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def format_value(value: Any) -> str:
    """Keras's number format: 4 decimals, or scientific notation for tiny values; arrays (a
    metric at several thresholds) as ``[a b ...]``."""
    if np.ndim(value):
        return "[" + " ".join(format_value(v) for v in np.ravel(value)) + "]"
    value = float(value)
    if value != value or abs(value) > 1e-3 or value == 0:
        return f"{value:.4f}"
    return f"{value:.4e}"


def format_logs(logs: dict) -> str:
    return "".join(f" - {k}: {format_value(v)}" for k, v in logs.items())


def format_duration(seconds: float) -> str:
    """ETA style: ``1:02:03``, ``2:05`` or ``7s``."""
    seconds = max(0.0, seconds)
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


def format_per_step(seconds: float, unit: str = "step") -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


class Progbar:
    """A progress bar over ``target`` steps (None: not known in advance, as for a generator's
    first pass; the bar then counts ``current/Unknown``).

    ``update(current, logs)`` after each step; ``finish(logs)`` writes the final line (with
    the total time, time per step and the final ``logs``). ``dynamic`` (default: whether
    stdout is a terminal) selects in-place redraws.
    """

    def __init__(
        self,
        target: int | None,
        width: int = 30,
        interval: float | None = None,
        dynamic: bool | None = None,
        unit: str = "step",
    ) -> None:
        self.target = None if target is None else int(target)
        self.width = width
        self.interval = REFRESH_INTERVAL if interval is None else interval
        self.dynamic = _isatty(sys.stdout) if dynamic is None else bool(dynamic)
        self.unit = unit
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_len = 0

    def _bar(self, current: int) -> str:
        if self.target is None:
            return f"{current}/Unknown"
        digits = len(str(self.target))
        head = f"{current:>{digits}}/{self.target} ["
        if self.target > 0:
            filled = int(self.width * current / self.target)
            bar = "=" * max(filled - 1, 0)
            bar += ("=" if current >= self.target else ">") if filled > 0 else ""
            bar += "." * (self.width - len(bar))
        else:
            bar = "=" * self.width
        return head + bar + "]"

    def _write(self, line: str, final: bool) -> None:
        out = sys.stdout
        if self.dynamic:
            pad = " " * max(self._last_len - len(line), 0)
            out.write("\r" + line + pad + ("\n" if final else ""))
            self._last_len = len(line)
        else:
            out.write(line + "\n")
        out.flush()

    def update(self, current: int, logs: dict | None = None) -> None:
        """Redraw after step ``current`` (1-based) on a terminal; nothing otherwise."""
        if not self.dynamic:
            return
        now = time.perf_counter()
        target = self.target
        if (target is None or current < target) and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        elapsed = now - self.start
        if target is None:
            self._write(f"{self._bar(current)} - {format_duration(elapsed)}{format_logs(logs or {})}", False)
            return
        eta = elapsed / current * (target - current) if current else 0.0
        self._write(f"{self._bar(current)} - ETA: {format_duration(eta)}{format_logs(logs or {})}", False)

    def finish(self, logs: dict | None = None, steps: int | None = None) -> None:
        """Write the final line: full bar, time, time per step and ``logs``."""
        steps = (self.target or 0) if steps is None else steps
        if self.target is None:
            self.target = steps
        elapsed = time.perf_counter() - self.start
        per = elapsed / steps if steps else 0.0
        line = (
            f"{self._bar(steps)} - {format_duration(elapsed)} {format_per_step(per, self.unit)}"
            f"{format_logs(logs or {})}"
        )
        self._write(line, True)


def epoch_line(epoch: int, epochs: int, steps: int, elapsed: float, logs: dict) -> str:
    """The ``verbose=2`` line of one epoch."""
    per = elapsed / steps if steps else 0.0
    return (
        f"Epoch {epoch}/{epochs} - {steps}/{steps} - {format_duration(elapsed)} - "
        f"{format_per_step(per)}{format_logs(logs)}"
    )


def write_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
