"""Fixtures shared by the integration modules whose every test body runs on both stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_ingest import STORE_KINDS, store_for


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An SQLite file in tmp_path, or a fresh PostgreSQL database."""
    return store_for(store_kind, "store.db", tmp_path, request, "fresh_database")
