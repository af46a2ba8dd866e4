"""Avro is a wire concern: the domain core (`ledger/`) never imports fastavro."""

from __future__ import annotations

import ast
from pathlib import Path

import ledger

LEDGER_DIR = Path(ledger.__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_no_module_of_the_domain_core_imports_fastavro() -> None:
    offenders = [
        str(path.relative_to(LEDGER_DIR.parent))
        for path in sorted(LEDGER_DIR.rglob("*.py"))
        if any(m.split(".")[0] == "fastavro" for m in _imported_modules(path))
    ]

    assert offenders == []
