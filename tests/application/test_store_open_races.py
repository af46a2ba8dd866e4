"""Processes opening a new store at once: the one that loses a creation race opens again."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import ProgrammingError

from consumers import store
from ledger.application import Ledger


def test_sqlite_locked_while_another_process_sets_wal_mode_is_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # eventsourcing's first SQLite connection asks for WAL mode outside its error handling;
    # three `ledger ingest` processes creating one file met "database is locked" there.
    monkeypatch.setattr(store, "STORE_OPEN_RETRY_DELAY_S", 0.0)
    opened: list[str] = []

    def locked_once(*args: Any, **kwargs: Any) -> Ledger:
        opened.append("attempt")
        if len(opened) == 1:
            raise sqlite3.OperationalError("database is locked")
        return Ledger(*args, **kwargs)

    monkeypatch.setattr(store, "Ledger", locked_once)
    ledger = store.open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.close()
    assert opened == ["attempt", "attempt"]


def test_another_sqlite_error_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Ledger:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "Ledger", broken)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        store.open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


def test_a_postgresql_table_another_process_just_created_is_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three `ledger ingest` processes on a new PostgreSQL database: CREATE TABLE IF NOT EXISTS
    # raced (test_concurrent_writers_leave_one_valid_chain failed 1 run in 15 under load).
    monkeypatch.setattr(store, "STORE_OPEN_RETRY_DELAY_S", 0.0)
    opened: list[str] = []

    def created_meanwhile(*args: Any, **kwargs: Any) -> Ledger:
        opened.append("attempt")
        if len(opened) == 1:
            raise ProgrammingError('relation "ledger_events" already exists')
        return Ledger(*args, **kwargs)

    monkeypatch.setattr(store, "Ledger", created_meanwhile)
    ledger = store.open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.close()
    assert opened == ["attempt", "attempt"]
