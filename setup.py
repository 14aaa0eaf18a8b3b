"""Build the compiled GRU engine (Cython + C) against OpenBLAS.

By default the engine links the OpenBLAS shipped in the pinned ``scipy-openblas32`` build
requirement; the library is copied into the package (``cgru/_blas/``) and found there through a
relative rpath, so ``pip install .`` gives a self-contained install.

Environment variables (read at build time only):
  CGRU_BLAS=system         link a system CBLAS found by pkg-config instead
  CGRU_BLAS_PKG=NAME       pkg-config name for CGRU_BLAS=system (default: openblas)
  CGRU_BUNDLE_BLAS=0       do not copy scipy-openblas into the package (wheel builders whose
                           repair step, e.g. auditwheel or delocate, vendors it instead)
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent.resolve()
SRC = "src/cgru"
BLAS_DIR_IN_PACKAGE = "_blas"


def pkg_config(name: str, flag: str) -> list[str]:
    out = subprocess.run(["pkg-config", flag, name], check=True, capture_output=True, text=True)
    return shlex.split(out.stdout)


def blas_settings() -> dict:
    """Compiler/linker settings for the chosen BLAS, plus the library file to bundle (if any)."""
    choice = os.environ.get("CGRU_BLAS", "scipy-openblas").lower()
    if choice == "system":
        name = os.environ.get("CGRU_BLAS_PKG", "openblas")
        cflags, libs = pkg_config(name, "--cflags"), pkg_config(name, "--libs")
        macros = [("CGRU_OPENBLAS", "1")] if "openblas" in name else []
        return {
            "include_dirs": [f[2:] for f in cflags if f.startswith("-I")],
            "library_dirs": [f[2:] for f in libs if f.startswith("-L")],
            "libraries": [f[2:] for f in libs if f.startswith("-l")],
            "define_macros": macros,
            "bundle": None,
        }
    if choice not in ("scipy-openblas", "openblas", "default"):
        raise SystemExit(f"CGRU_BLAS must be 'scipy-openblas' or 'system', got {choice!r}")
    import scipy_openblas32 as sob

    lib_dir = sob.get_lib_dir()
    bundle = os.environ.get("CGRU_BUNDLE_BLAS", "1") != "0"
    if sys.platform == "darwin":
        rpath = ["@loader_path/" + BLAS_DIR_IN_PACKAGE]
    elif sys.platform == "win32":
        rpath = []
    else:
        rpath = ["$ORIGIN/" + BLAS_DIR_IN_PACKAGE]
    if not bundle and sys.platform != "win32":
        rpath.append(lib_dir)
    return {
        "include_dirs": [sob.get_include_dir()],
        "library_dirs": [lib_dir],
        "libraries": [sob.get_library()],
        "define_macros": [("CGRU_BLAS_PREFIX", "scipy_"), ("CGRU_OPENBLAS", "1")],
        "runtime_library_dirs": rpath,
        "bundle": Path(lib_dir) / sob.get_library(fullname=True) if bundle else None,
    }


class BuildExtBundlingBlas(build_ext):
    """build_ext that also copies the bundled BLAS library next to the extension."""

    def run(self):
        super().run()
        library = BLAS["bundle"]
        if library is None:
            return
        targets = [Path(self.build_lib) / "cgru" / BLAS_DIR_IN_PACKAGE]
        if self.inplace:
            targets.append(HERE / "cgru" / BLAS_DIR_IN_PACKAGE)
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(library, target / library.name)
            if sys.platform == "win32":  # the DLL and its import library
                for dll in Path(library).parent.parent.glob("bin/*.dll"):
                    shutil.copy2(dll, target / dll.name)


BLAS = blas_settings()
extra_compile_args = [] if sys.platform == "win32" else ["-O3", "-fno-math-errno", "-std=c99"]

extension = Extension(
    "cgru._engine",
    sources=[f"{SRC}/_engine.pyx", f"{SRC}/gru_kernels.c"],
    include_dirs=[SRC, *BLAS["include_dirs"]],
    library_dirs=BLAS["library_dirs"],
    libraries=BLAS["libraries"],
    runtime_library_dirs=BLAS.get("runtime_library_dirs", []),
    define_macros=BLAS["define_macros"],
    extra_compile_args=extra_compile_args,
)

setup(
    ext_modules=cythonize([extension], compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExtBundlingBlas},
)
