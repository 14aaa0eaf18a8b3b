"""Where the tests find the files of the repository, from any folder of tests/."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
#: the golden data the make_*golden*.py scripts write
DATA = TESTS / "data"
#: the source tree: README.md, examples/, bench/, src/ and the package as checked out
ROOT = TESTS.parent
