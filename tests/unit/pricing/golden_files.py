"""Golden files for texts pinned by tests: compare, or rewrite with EVLEDGER_UPDATE_GOLDEN=1.

Rewriting is for a deliberate change of wording; review the diff before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def data_tariffs() -> list[tuple[str, str]]:
    """(name, JSON text) of every tariff in the shared OCPI test data, peer data first."""
    from tests.unit.pricing.ocpi_data import peer_tariff_files, spec_vectors

    found = [(p.parent.name, p.read_text(encoding="utf-8")) for p in peer_tariff_files()]
    found += [(f"spec-{v['name']}", json.dumps(v["tariff"])) for v in spec_vectors()]
    return found


def assert_golden(relative: str, actual: str) -> None:
    path = GOLDEN_DIR / relative
    if os.environ.get("EVLEDGER_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"no golden file {path}: run with EVLEDGER_UPDATE_GOLDEN=1 once"
    assert actual == path.read_text(encoding="utf-8"), f"differs from {path}"
