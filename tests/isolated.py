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


def this_cgru_env(**extra: str) -> dict[str, str]:
    """The environment for a child interpreter that must import this cgru (the source tree or
    an installed wheel, whichever the tests imported), not another one on the path."""
    package_root = str(Path(cgru.__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, **extra)


def run_isolated(script: str, *args: str, timeout_s: float, hang: str) -> str:
    """The standard output of ``python -c script args...`` (``script`` dedented); the test
    fails with ``hang`` when it runs past ``timeout_s``, and with its stderr when it fails."""
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args],
                               env=this_cgru_env(), text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its children too
        process.communicate()
        pytest.fail(f"{hang} (ran past {timeout_s} s)")
    assert process.returncode == 0, err
    return out
