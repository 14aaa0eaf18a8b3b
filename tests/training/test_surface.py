"""Training and the file format reach the model only through its documented surface: they never
import the model's module (nor the package root, which imports it), so nothing forms a cycle."""

import ast
from pathlib import Path

import cgru

PACKAGE = Path(cgru.__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """The package modules a file imports (anywhere in it), as dotted names relative to cgru."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            for alias in node.names:
                found.add(".".join([*base, *filter(None, [node.module, alias.name])]))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_training_and_saving_never_import_the_model():
    files = [*sorted((PACKAGE / "training").glob("*.py")), PACKAGE / "saving.py", PACKAGE / "summary.py"]
    for path in files:
        imports = imported_modules(path)
        bad = {m for m in imports if m.startswith("cgru.models") or m in ("cgru", "cgru.__version__")}
        assert not bad, f"{path.name} imports {bad}"
        assert not any(m.startswith("cgru.loading") for m in imports), path.name
