"""Stage the pinned scipy-openblas32 shared library in one folder, for a wheel repair step.

Wheels are built with CGRU_BUNDLE_BLAS=0, so the extension links scipy-openblas32 from the
(temporary, isolated) build environment and does not carry the library itself; the repair tool
(auditwheel, delocate, delvewheel) then vendors it from the folder staged here:

    python .github/stage_openblas.py DEST

puts libscipy_openblas.{so,dylib,dll} in DEST, installing the version pinned in pyproject.toml's
[build-system] requires for this interpreter's platform. It prints DEST.
"""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def pinned_requirement() -> str:
    match = re.search(r'"(scipy-openblas32==[^";\s]+)"', PYPROJECT.read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit(f"no pinned scipy-openblas32==... requirement in {PYPROJECT}")
    return match.group(1)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} DEST")
    dest = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", tmp,
             pinned_requirement()],
            check=True,
        )
        libraries = [
            p for p in (Path(tmp) / "scipy_openblas32" / "lib").iterdir()
            if p.name.startswith("libscipy_openblas") and p.suffix in (".so", ".dylib", ".dll")
        ]
        if not libraries:
            raise SystemExit("the scipy-openblas32 wheel holds no shared library")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for library in libraries:
            shutil.copy2(library, dest / library.name)
    print(dest)


if __name__ == "__main__":
    main()
