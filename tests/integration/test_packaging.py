"""Packaging: what ``import cgru`` loads, what backend_info reports, and, when the suite runs
against an installed copy of cgru (a built wheel, from outside the source tree), that the install
holds every package file and exactly one OpenBLAS, and that the engine loads that one.

CGRU_REQUIRE_COMPILED=1 (set by CI and cibuildwheel) turns "compiled engine missing" from a skip
into a failure.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from paths import ROOT

import cgru
from cgru.backends import compiled_available

SOURCE_PACKAGE = ROOT / "cgru"
PACKAGE = Path(cgru.__file__).resolve().parent
FROM_INSTALL = PACKAGE != SOURCE_PACKAGE
OPTIONAL_MODULES = ("torch", "cupy", "cupyx", "scipy", "matplotlib", "onnx", "onnxruntime",
                    "mpi4py", "dask", "distributed", "cloudpickle")
# scipy-openblas32's library as shipped, bundled by setup.py or renamed by a repair tool
# (libscipy_openblas-<hash>.so); not numpy's libscipy_openblas64_.
SCIPY_OPENBLAS = re.compile(r"libscipy_openblas(-[0-9a-f]+)?\.(so|dylib|dll)")
REQUIRE_COMPILED = os.environ.get("CGRU_REQUIRE_COMPILED") == "1"


def require_compiled() -> None:
    if not compiled_available():
        if REQUIRE_COMPILED:
            pytest.fail("CGRU_REQUIRE_COMPILED=1 but cgru._engine does not import")
        pytest.skip("the compiled engine is not built")


def openblas_files() -> list[Path]:
    """scipy-openblas libraries inside the install: the package and the repair tools' folders."""
    roots = [PACKAGE, PACKAGE.parent / "cgru.libs"]
    return sorted(p for root in roots if root.is_dir() for p in root.rglob("*")
                  if SCIPY_OPENBLAS.fullmatch(p.name))


def test_import_does_not_load_optional_dependencies():
    code = (
        "import sys, pickle, cgru; cgru.backend_info(); cgru.get_ops(); cgru.to_onnx, cgru.from_onnx; "
        "d = cgru.distributed; d.MPIStrategy, d.DataParallelStrategy, d.predict, d.use_local_gpu; "
        "m = cgru.Sequential([cgru.Dense(1, input_shape=(2,))]); "
        "pickle.loads(pickle.dumps(m)).predict([[1, 2]]); "
        f"print(' '.join(m for m in {OPTIONAL_MODULES!r} if m in sys.modules))"
    )
    # Run beside the imported package so the child imports this same copy of cgru.
    out = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "", f"import cgru loaded optional dependencies: {out.strip()}"


def test_import_leaves_slow_standard_modules_for_first_use():
    """`import cgru` stays light: entry-point discovery (importlib.metadata), the random
    generator (numpy.random) and the save-file modules load when first needed, not at import
    (whichever of them NumPy itself imports is not counted)."""
    deferred = ("importlib.metadata", "numpy.random", "zipfile", "hashlib")
    code = (
        "import sys, numpy; before = set(sys.modules); import cgru; "
        f"print(' '.join(m for m in {deferred!r} if m in sys.modules and m not in before)); "
        "cgru.load_model, cgru.available_backends(); cgru.GRU(2, input_shape=(3, 4)).build((None, 3, 4)); "
        f"print(' '.join(m for m in {deferred!r} if m in sys.modules))"
    )
    lines = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    assert lines[0].strip() == "", f"import cgru loaded {lines[0].strip()}"
    assert set(lines[1].split()) == set(deferred)  # and each loads when used


def test_backend_info_reports_compiled_engine_and_openblas():
    require_compiled()
    info = cgru.backend_info()
    assert info["compiled"] is True
    assert info["threads"] >= 1
    if info["blas"] == "system CBLAS":
        pytest.skip("built with CGRU_BLAS=system against a CBLAS other than OpenBLAS")
    assert re.match(r"OpenBLAS \d+\.\d+\.\d+", info["blas"]), info["blas"]


def test_at_most_one_openblas_in_the_install():
    files = openblas_files()
    assert len(files) <= 1, f"more than one OpenBLAS in {PACKAGE.parent}: {files}"


def loaded_openblas() -> set[Path]:
    """scipy-openblas libraries mapped into this process (Linux)."""
    paths = set()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and SCIPY_OPENBLAS.fullmatch(Path(fields[5]).name):
            paths.add(Path(fields[5]).resolve())
    return paths


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_engine_loads_the_openblas_of_its_own_install():
    require_compiled()
    loaded = loaded_openblas()
    if not loaded:
        pytest.skip("not linked against scipy-openblas32 (CGRU_BLAS=system)")
    files = {p.resolve() for p in openblas_files()}
    assert loaded <= files, (
        f"the engine runs OpenBLAS from {sorted(map(str, loaded))}, not from its install "
        f"({sorted(map(str, files))}): the library is not vendored"
    )


@pytest.mark.skipif(not FROM_INSTALL or not SOURCE_PACKAGE.is_dir(),
                    reason="runs against an installed copy of cgru beside its source tree")
def test_installed_package_has_every_package_file():
    wanted = sorted(
        p.relative_to(SOURCE_PACKAGE) for p in SOURCE_PACKAGE.rglob("*")
        if (p.suffix in (".py", ".cu", ".cuh", ".pyi", ".json") or p.name == "py.typed")
        and "__pycache__" not in p.parts
    )
    assert wanted, f"no package files found under {SOURCE_PACKAGE}"
    assert Path("py.typed") in wanted
    missing = [str(p) for p in wanted if not (PACKAGE / p).is_file()]
    assert not missing, f"installed cgru at {PACKAGE} lacks {missing}"


def test_package_ships_a_py_typed_marker():
    """PEP 561: the marker is in the package (source tree or install) and, in a source tree,
    declared as package data, so every wheel built from it carries it."""
    assert (PACKAGE / "py.typed").is_file(), f"{PACKAGE} has no py.typed"
    pyproject = PACKAGE.parent / "pyproject.toml"
    if FROM_INSTALL or not pyproject.is_file():
        return
    tomllib = pytest.importorskip("tomllib")
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data.get("cgru", [])


SOURCE_C = ROOT / "src" / "cgru"


@pytest.mark.parametrize("defines", [(), ("CGRU_HAVE_HELPER=0",), ("CGRU_HAVE_BARRIER=0",),
                                     ("CGRU_HAVE_PACKED_GEMM=0", "CGRU_HAVE_BARRIER=0")],
                         ids=["full", "no-helper", "no-barrier", "like-msvc"])
def test_c_sources_compile_without_the_gnu_only_parts(defines):
    """The packed kernel (vector extensions), the unit-split barrier (atomic builtins) and its
    helper thread (POSIX threads) are GCC/clang only; the sources must also build without them,
    as MSVC builds them."""
    import shutil

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not SOURCE_C.is_dir():
        pytest.skip("needs a C compiler and the source tree")
    try:
        import scipy_openblas32
    except ImportError:
        pytest.skip("needs scipy-openblas32's headers (a build requirement)")
    flags = ["-fsyntax-only", "-std=c99", "-DCGRU_BLAS_PREFIX=scipy_",
             f"-I{SOURCE_C}", f"-I{scipy_openblas32.get_include_dir()}", *(f"-D{d}" for d in defines)]
    sources = sorted(p.name for p in SOURCE_C.glob("*.c") if p.name != "_engine.c")  # not Cython's
    assert "helper.c" in sources
    for source in sources:
        result = subprocess.run([compiler, *flags, str(SOURCE_C / source)], capture_output=True, text=True)
        assert result.returncode == 0, f"{source} with {defines}:\n{result.stderr}"
