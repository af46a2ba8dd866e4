"""Where the shared test data lives: ../shared beside the repository, or
$EVLEDGER_SHARED_DIR. A missing folder fails the run with a clear message; it never skips,
because a pricer that is not checked against the spec's examples is not checked at all."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# tests/unit/pricing/conftest.py -> parents[3] is the repository root.
_REPO_ROOT = Path(__file__).resolve().parents[3]


def shared_dir() -> Path:
    configured = os.environ.get("EVLEDGER_SHARED_DIR")
    folder = Path(configured) if configured else _REPO_ROOT / ".." / "shared"
    data = folder / "data"
    if not (data / "ocpi-spec-vectors.json").is_file():
        pytest.fail(
            f"shared test data not found at {data.resolve()}: check out the shared folder"
            " beside the repository or set EVLEDGER_SHARED_DIR to it",
            pytrace=False,
        )
    return folder.resolve()


def data_dir() -> Path:
    return shared_dir() / "data"


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
