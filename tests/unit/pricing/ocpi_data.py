"""The OCPI test data of the pricing tests, kept in the repository (`tests/data/ocpi/`, its
origin and licences in PROVENANCE.md there), so a fresh clone tests itself with nothing beside
it. A missing file fails the run with a clear message; it never skips, because a pricer that
is not checked against the spec's examples is not checked at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# tests/unit/pricing/ocpi_data.py -> parents[2] is tests/.
OCPI_DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "ocpi"


def data_dir() -> Path:
    if not (OCPI_DATA_DIR / "ocpi-spec-vectors.json").is_file():
        pytest.fail(f"OCPI test data missing at {OCPI_DATA_DIR}: the checkout is incomplete")
    return OCPI_DATA_DIR


def peer_dir() -> Path:
    return data_dir() / "ocpi-tariffs-peer"


def spec_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(
        (data_dir() / "ocpi-spec-vectors.json").read_text(encoding="utf-8")
    )
    return vectors


def peer_cdr_files() -> list[Path]:
    return sorted(peer_dir().glob("*/cdr*.json"))


def peer_tariff_files() -> list[Path]:
    return sorted(peer_dir().glob("*/tariff.json"))
