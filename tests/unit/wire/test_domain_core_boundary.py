"""The domain core (`ledger/`) knows no transport: no Kafka, SQL, Avro or HTTP, and none of
the adapters around it; and the handler layer has no import cycle held together by imports
inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import ledger

LEDGER_DIR = Path(ledger.__file__).resolve().parent
# Top-level packages the core must never import: transports, stores, wire formats, HTTP,
# and the adapters that depend on the core (dependencies point inward).
FORBIDDEN_PACKAGES = frozenset({
    "kafka", "psycopg", "psycopg_pool", "sqlite3", "fastavro", "httpx", "requests",
    "fastapi", "starlette", "uvicorn", "stripe", "consumers", "projections",
})


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, inside a function) for every absolute import of a module file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def _core_files() -> list[Path]:
    return sorted(LEDGER_DIR.rglob("*.py"))


def test_no_module_of_the_domain_core_imports_a_transport_or_an_adapter() -> None:
    offenders = sorted(
        f"{path.relative_to(LEDGER_DIR.parent)}: {module}"
        for path in _core_files()
        for module, _ in _imports(path)
        if module.split(".")[0] in FORBIDDEN_PACKAGES
    )

    assert offenders == []


def test_no_module_of_the_domain_core_imports_inside_a_function() -> None:
    """An import inside a function is how an import cycle hides; the layers point one way:
    application -> handlers -> batch -> domain."""
    offenders = sorted(
        f"{path.relative_to(LEDGER_DIR.parent)}: {module}"
        for path in _core_files()
        for module, in_function in _imports(path)
        if in_function and module.startswith("ledger")
    )

    assert offenders == []


def test_the_handlers_never_import_the_application() -> None:
    offenders = sorted(
        str(path.relative_to(LEDGER_DIR.parent))
        for path in sorted((LEDGER_DIR / "handlers").rglob("*.py"))
        for module, _ in _imports(path)
        if module == "ledger.application"
    )

    assert offenders == []
