"""Build the compiled GRU engine (Cython + C) against OpenBLAS.

By default the engine links the OpenBLAS shipped in the pinned ``scipy-openblas32`` build
requirement and the library is copied into the package, so ``pip install .`` gives a
self-contained install:

  Linux    cgru/_blas/libscipy_openblas.so, found through the rpath $ORIGIN/_blas
  macOS    cgru/_blas/libscipy_openblas.dylib (install name @rpath/...), rpath @loader_path/_blas
  Windows  cgru/libscipy_openblas.dll next to the extension: Python loads an extension's DLLs
           from the extension's own folder, so no rpath or os.add_dll_directory is needed

Environment variables (read at build time only):
  CGRU_BLAS=system         link a system CBLAS found by pkg-config instead (it must be on the
                           dynamic loader's search path at run time)
  CGRU_BLAS_PKG=NAME       pkg-config name for CGRU_BLAS=system (default: openblas)
  CGRU_BUNDLE_BLAS=0       do not copy scipy-openblas into the package: for wheel builders whose
                           repair step (auditwheel, delocate, delvewheel) vendors it instead
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent.resolve()
SRC = "src/cgru"
BLAS_DIR_IN_PACKAGE = "_blas"
# Written by cythonize from _engine.pyx; every other .c file in SRC is a translation unit.
GENERATED_C = {"_engine.c"}


def pkg_config(name: str, flag: str) -> list[str]:
    try:
        out = subprocess.run(["pkg-config", flag, name], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise SystemExit("CGRU_BLAS=system needs pkg-config on PATH") from None
    except subprocess.CalledProcessError as exc:
        raise SystemExit(
            f"CGRU_BLAS=system: pkg-config found no {name!r} ({exc.stderr.strip()}); install its "
            "development package or name another CBLAS with CGRU_BLAS_PKG"
        ) from None
    return shlex.split(out.stdout)


def blas_settings() -> dict:
    """Compiler/linker settings for the chosen BLAS, plus the library files to bundle."""
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
            "runtime_library_dirs": [],
            "bundle": [],
            "license": None,
        }
    if choice not in ("scipy-openblas", "openblas", "default"):
        raise SystemExit(f"CGRU_BLAS must be 'scipy-openblas' or 'system', got {choice!r}")
    import scipy_openblas32 as sob

    lib_dir = Path(sob.get_lib_dir())
    bundle = os.environ.get("CGRU_BUNDLE_BLAS", "1") != "0"
    if sys.platform == "win32":
        rpath = []  # MSVC has no rpath; the DLL goes next to the extension instead
    elif bundle:
        rpath = [("@loader_path/" if sys.platform == "darwin" else "$ORIGIN/") + BLAS_DIR_IN_PACKAGE]
    else:  # the build environment's copy, until a repair step vendors the library
        rpath = [str(lib_dir)]
    if sys.platform == "win32":  # get_library() names the import library; ship the DLL
        runtime_files = sorted(lib_dir.glob("*.dll"))
    else:
        runtime_files = [lib_dir / sob.get_library(fullname=True)]
    return {
        "include_dirs": [sob.get_include_dir()],
        "library_dirs": [str(lib_dir)],
        "libraries": [sob.get_library()],
        "define_macros": [("CGRU_BLAS_PREFIX", "scipy_"), ("CGRU_OPENBLAS", "1")],
        "runtime_library_dirs": rpath,
        "bundle": runtime_files if bundle else [],
        "license": scipy_openblas_license(),
    }


def scipy_openblas_license() -> Path | None:
    """OpenBLAS's license text (with its runtime libraries'), shipped in every build that links
    scipy-openblas, whichever step (this one or a wheel repair tool) vendors the library."""
    from importlib import metadata

    dist = metadata.distribution("scipy-openblas32")
    for file in dist.files or ():
        if file.name.upper().startswith("LICENSE"):
            return Path(dist.locate_file(file))
    return None


class BuildExtBundlingBlas(build_ext):
    """build_ext that also places the bundled BLAS library where the extension finds it."""

    def run(self):
        super().run()
        built = Path(self.build_lib) / "cgru"
        if BLAS["license"] is not None:  # for redistribution (wheels), not in-place builds
            shutil.copy2(BLAS["license"], built / "OPENBLAS_LICENSE.txt")
        for package in [built, HERE / "cgru"] if self.inplace else [built]:
            target = package if sys.platform == "win32" else package / BLAS_DIR_IN_PACKAGE
            for stale in target.glob("libscipy_openblas*"):  # from an earlier build in this tree
                stale.unlink()
            for library in BLAS["bundle"]:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(library, target / library.name)


BLAS = blas_settings()
if sys.platform == "win32":  # MSVC: C11 mode for the C99 keywords the kernels use (restrict)
    extra_compile_args = ["/std:c11"]
else:
    # -fno-trapping-math: the gate passes' selects (clamps, tanh's small-|x| branch) may be
    # computed on both sides, which lets GCC vectorise them for AVX2 and SSE2 too.
    extra_compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast", "-std=c99"]
c_sources = sorted(f"{SRC}/{p.name}" for p in (HERE / SRC).glob("*.c") if p.name not in GENERATED_C)

extension = Extension(
    "cgru._engine",
    sources=[f"{SRC}/_engine.pyx", *c_sources],
    # rebuild when a header or an included Cython file changes
    depends=sorted(str(p) for pattern in ("*.h", "*.pxi") for p in Path(SRC).glob(pattern)),
    include_dirs=[SRC, numpy.get_include(), *BLAS["include_dirs"]],
    library_dirs=BLAS["library_dirs"],
    libraries=BLAS["libraries"],
    runtime_library_dirs=BLAS["runtime_library_dirs"],
    # the oldest NumPy the package supports (pyproject's numpy>=1.23), whatever NumPy builds it
    define_macros=[*BLAS["define_macros"], ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION"),
                   ("NPY_NO_DEPRECATED_API", "NPY_1_23_API_VERSION")],
    extra_compile_args=extra_compile_args,
)

setup(
    ext_modules=cythonize([extension], compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExtBundlingBlas},
)
