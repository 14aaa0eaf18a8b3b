"""Running a script with this cgru in a fresh interpreter, under a deadline (a hang or a
runaway fails the test that asked, instead of stopping the run)."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cgru


def run_isolated(script: str, *args: str, timeout_s: float, hang: str) -> str:
    """The standard output of ``python -c script args...`` (``script`` dedented); the test
    fails with ``hang`` when it runs past ``timeout_s``, and with its stderr when it fails."""
    package_root = str(Path(cgru.__file__).resolve().parents[1])  # this cgru, not another
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args],
                               env=dict(os.environ, PYTHONPATH=path), text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its children too
        process.communicate()
        pytest.fail(f"{hang} (ran past {timeout_s} s)")
    assert process.returncode == 0, err
    return out
