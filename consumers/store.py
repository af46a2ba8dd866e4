"""Composition root for storage: a store URL becomes a configured Ledger application.

`sqlite:///path.db` (the embedded default) or `postgresql://user[:password]@host[:port]/db`.
Every persistence option that matters is set here explicitly, never left to a default.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit
from uuid import UUID

from eventsourcing.persistence import PersistenceError
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from consumers.chained_store import ChainedPostgresProcessRecorder, ChainedSQLiteProcessRecorder
from consumers.cli import CliError
from consumers.processed_index import marker_digest, processed_table_name
from consumers.reconnect import DATABASE_UNAVAILABLE, wait_for_database
from consumers.signals import interruptible
from ledger.application import Ledger
from ledger.limits import LONG_RUNNING_STORE_CONNECT_TIMEOUT_S
from projections.database import postgres_conninfo

T = TypeVar("T")

DEFAULT_STORE_URL = "sqlite:///./evledger.db"
STORE_ENV_VAR = "LEDGER_STORE"


def store_url_from(arg: str | None) -> str:
    return arg or os.environ.get(STORE_ENV_VAR) or DEFAULT_STORE_URL


# How long a PostgreSQL connection request may take (connect, or wait for the pool).
STORE_CONNECT_TIMEOUT_S = 10


def ledger_env(
    store_url: str, *, create: bool = True, connect_timeout_s: int = STORE_CONNECT_TIMEOUT_S
) -> dict[str, str]:
    """eventsourcing settings for `store_url` (raises CliError for a URL we cannot use).

    `create=False` (read-only commands): an SQLite store that does not exist is an error,
    never a new directory and an empty store that would read as an empty ledger.
    """
    parts = urlsplit(store_url)
    if parts.scheme == "sqlite":
        path = store_url[len("sqlite:///"):] if store_url.startswith("sqlite:///") else ""
        if not path:
            raise CliError(f"bad store URL {store_url!r}: expected sqlite:///PATH")
        if path != ":memory:" and not create and not Path(path).expanduser().is_file():
            raise CliError(f"no store at {store_url}: this command reads an existing store"
                           " and creates none (check --store or $LEDGER_STORE)")
        if path != ":memory:":
            Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path if path == ":memory:" else str(Path(path).expanduser()),
            "SQLITE_LOCK_TIMEOUT": "10",
            "CREATE_TABLE": "y",
            # Every batch links its events into the hash chain (`ledger audit verify`).
            "PROCESS_RECORDER_TOPIC": "consumers.chained_store:ChainedSQLiteProcessRecorder",
        }
    if parts.scheme in ("postgresql", "postgres"):
        dbname = parts.path.lstrip("/")
        if not parts.hostname or not dbname:
            raise CliError(f"bad store URL {store_url!r}: expected postgresql://USER@HOST/DB")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": dbname,
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": str(connect_timeout_s),
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_MAX_OVERFLOW": "4",
            # Lock waits are bounded so a stuck writer shows up as an error, not a hang.
            "POSTGRES_LOCK_TIMEOUT": "30",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "60",
            # No ping per checkout: it doubled the round trips of every aggregate read
            # (measured: 35 % of ingest time); a dead connection fails the batch, which is
            # retried from the stored position.
            "POSTGRES_PRE_PING": "n",
            # Never POSTGRES_ENABLE_DB_FUNCTIONS: it silently drops tracking rows.
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
            "CREATE_TABLE": "y",
            # Every batch links its events into the hash chain (`ledger audit verify`).
            "PROCESS_RECORDER_TOPIC": "consumers.chained_store:ChainedPostgresProcessRecorder",
        }
    raise CliError(f"unsupported store URL {store_url!r} (sqlite:///... or postgresql://...)")


# Two processes starting together on a new database race to create the tables and the
# library's functions ("tuple concurrently updated", or a duplicate type); the loser waits
# and tries again.
STORE_OPEN_ATTEMPTS_MAX = 5
STORE_OPEN_RETRY_DELAY_S = 0.5
# SQLite's default limit of host parameters in one statement (SQLITE_MAX_VARIABLE_NUMBER).
SQLITE_PARAMETERS_MAX = 999


def open_ledger(
    store_url: str, *, create: bool = True, connect_timeout_s: int = STORE_CONNECT_TIMEOUT_S
) -> Ledger:
    for attempt in range(1, STORE_OPEN_ATTEMPTS_MAX + 1):
        try:
            ledger = Ledger(env=ledger_env(store_url, create=create,
                                           connect_timeout_s=connect_timeout_s))
            ledger.use_stored_versions(stored_versions_probe(ledger))
            index = processed_lookup(ledger)
            if index is not None:
                ledger.use_processed_index(index)
            return ledger
        except (PersistenceError, sqlite3.OperationalError) as exc:
            if attempt == STORE_OPEN_ATTEMPTS_MAX or not _lost_creation_race(exc):
                raise
            time.sleep(STORE_OPEN_RETRY_DELAY_S * attempt)
    raise AssertionError("unreachable")


def _lost_creation_race(exc: Exception) -> bool:
    # "tuple concurrently updated" (functions), a type or table another process created
    # between our IF NOT EXISTS check and our CREATE (seen with three writers starting at once:
    # a duplicate pg_type row, or `relation "ledger_events" already exists`),
    # or the library's tracking-table migration row, which two processes that both found no
    # tracking table both insert (the winner committed it, so the retry finds it). On SQLite,
    # the library's first connection asks for WAL mode outside its error handling, and meets
    # "database is locked" while another process opening the new file holds its lock.
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        return "database is locked" in text
    return ("concurrently" in text or "pg_type_typname_nsp_index" in text
            or ("relation" in text and "already exists" in text)
            or "Failed to record tracking for __migration__" in text)


def stored_versions_probe(ledger: Ledger) -> Callable[[Sequence[UUID]], dict[UUID, int]]:
    """The stored version of each of some aggregate ids, in one query (every batch asks: is
    each message's event id processed already, and is what this process holds current?)."""
    recorder = ledger.recorder
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL(
            "SELECT originator_id, MAX(originator_version) AS version FROM {}.{}"
            " WHERE originator_id = ANY(%s) GROUP BY originator_id"
        )
        statement = query.format(
            Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
        )

        def postgres(ids: Sequence[UUID]) -> dict[UUID, int]:
            if not ids:
                return {}
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(statement, (list(ids),))
                return {row["originator_id"]: row["version"] for row in cursor.fetchall()}

        return postgres
    if isinstance(recorder, SQLiteApplicationRecorder):
        table = recorder.events_table_name

        def sqlite(ids: Sequence[UUID]) -> dict[UUID, int]:
            found: dict[UUID, int] = {}
            with recorder.datastore.transaction(commit=False) as cursor:
                for start in range(0, len(ids), SQLITE_PARAMETERS_MAX):
                    # eventsourcing stores UUIDs as 32 hex digits in SQLite.
                    chunk = [i.hex for i in ids[start:start + SQLITE_PARAMETERS_MAX]]
                    marks = ",".join("?" * len(chunk))
                    cursor.execute(
                        f"SELECT originator_id, MAX(originator_version) AS version FROM {table}"
                        f" WHERE originator_id IN ({marks}) GROUP BY originator_id", chunk,
                    )
                    found.update(
                        (UUID(row["originator_id"]), row["version"]) for row in cursor.fetchall()
                    )
            return found

        return sqlite
    return ledger.stored_versions_one_by_one


def processed_lookup(ledger: Ledger) -> Callable[[Sequence[UUID]], dict[UUID, str]] | None:
    """Which of some processed keys were applied, with their payload digests, in one query:
    the index (consumers/processed_index.py) and, for a store written before it, the
    `ProcessedMessage` markers, whose aggregate id is the same key. None: the recorder keeps
    no index (the ledger then keeps one in memory)."""
    recorder = ledger.recorder
    if isinstance(recorder, ChainedPostgresProcessRecorder):
        schema = Identifier(recorder.datastore.schema)
        statement = SQL(
            "SELECT processed_id AS id, payload_digest AS digest, NULL::bytea AS state"
            " FROM {}.{} WHERE processed_id = ANY(%s)"
            " UNION ALL SELECT originator_id, NULL, state FROM {}.{}"
            " WHERE originator_id = ANY(%s) AND originator_version = 1"
        ).format(schema, Identifier(recorder.processed_table_name),
                 schema, Identifier(recorder.events_table_name))

        def postgres(keys: Sequence[UUID]) -> dict[UUID, str]:
            if not keys:
                return {}
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(statement, (list(keys), list(keys)), prepare=True)
                return _digests(
                    (row["id"], row["digest"], row["state"]) for row in cursor.fetchall())

        return postgres
    if isinstance(recorder, ChainedSQLiteProcessRecorder):
        index = processed_table_name(recorder.events_table_name)
        events = recorder.events_table_name

        def sqlite(keys: Sequence[UUID]) -> dict[UUID, str]:
            rows: list[tuple[UUID, str | None, bytes | None]] = []
            chunk_max = SQLITE_PARAMETERS_MAX // 2  # each key is asked of both tables
            with recorder.datastore.transaction(commit=False) as cursor:
                for start in range(0, len(keys), chunk_max):
                    chunk = [k.hex for k in keys[start:start + chunk_max]]
                    marks = ",".join("?" * len(chunk))
                    cursor.execute(
                        f"SELECT processed_id, payload_digest, NULL FROM {index}"
                        f" WHERE processed_id IN ({marks}) UNION ALL"
                        f" SELECT originator_id, NULL, state FROM {events}"
                        f" WHERE originator_id IN ({marks}) AND originator_version = 1",
                        chunk + chunk,
                    )
                    rows.extend((UUID(row[0]), row[1], row[2]) for row in cursor.fetchall())
            return _digests(rows)

        return sqlite
    return None


def _digests(rows: Iterable[tuple[UUID, str | None, bytes | None]]) -> dict[UUID, str]:
    """Index rows carry the digest; a `ProcessedMessage` marker row its event's state."""
    found: dict[UUID, str] = {}
    for key, digest, state in rows:
        if digest is not None:
            found[key] = digest
        elif state is not None:
            found.setdefault(key, marker_digest(state))
    return found


def open_store(
    store_url: str, *, create: bool = True, connect_timeout_s: int = STORE_CONNECT_TIMEOUT_S
) -> Ledger:
    """The ledger on `store_url`; a store that cannot be opened is a CliError.

    `create=False` for commands that only read (or redrive) what a store holds: a missing
    SQLite store is a CliError (see `ledger_env`).
    """
    try:
        return open_ledger(store_url, create=create, connect_timeout_s=connect_timeout_s)
    except PersistenceError as exc:
        raise CliError(f"cannot open store {redacted_url(store_url)}: {exc}") from exc


def open_when_database_available(
    open_: Callable[[], T], store_url: str, stop: threading.Event, log: logging.Logger
) -> T:
    """`open_()` for a long-running process: while the database is unavailable (a server
    not started yet, restarting, out of connections) wait as it would mid-run, logging each
    attempt (consumers/reconnect.py), then open again; a stop request ends the wait at once
    (StopRequested). Any other store error is a CliError. `open_` closes what it opened
    when it fails."""
    env = ledger_env(store_url, connect_timeout_s=LONG_RUNNING_STORE_CONNECT_TIMEOUT_S)
    conninfo = (postgres_conninfo(dict(env))
                if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres" else None)
    while True:
        try:
            with interruptible(stop):
                return open_()
        except DATABASE_UNAVAILABLE as exc:
            with interruptible(stop):
                wait_for_database(conninfo, exc, stop, log)
        except PersistenceError as exc:
            raise CliError(f"cannot open store {redacted_url(store_url)}: {exc}") from exc


def redacted_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
