"""A tiny adapter so the same read-model SQL runs on SQLite (stdlib) and PostgreSQL (psycopg).

It does three things and no more: rewrites `:name` parameters for psycopg, runs a block of
statements as one transaction (commit on success, rollback on any error), and tells apart
the errors a caller must react to (`integrity_errors`: a key already taken).

The read models live in the event store's own database (the same SQLite file, or the same
PostgreSQL database), so a store URL names both; `open_read_model(ledger)` takes the
connection settings from the ledger application's environment, never from a second config.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import psycopg

from projections.sql import Statement
from projections.values import SqlValue

if TYPE_CHECKING:
    from eventsourcing.application import Application

Params = Mapping[str, SqlValue]
Row = tuple[Any, ...]

# SQLite waits this long for another writer (the event store's) before failing: an ingest
# batch commits well within it, and a stuck writer shows up as an error, not a hang.
SQLITE_BUSY_TIMEOUT_S = 30.0
# A PostgreSQL server that does not answer within this is down, not slow.
POSTGRES_CONNECT_TIMEOUT_S = 10
_NAMED_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


class Transaction(Protocol):
    def execute(self, text: str, params: Params | Sequence[SqlValue] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    def executemany(self, text: str, params: Sequence[Params]) -> None: ...

    def query(self, text: str, params: Params | Sequence[SqlValue] = ()) -> list[Row]: ...

    def pipeline(self) -> AbstractContextManager[None]:
        """Statements inside are sent without waiting for each result (where supported);
        errors surface at the latest when the block ends."""


class ReadModelDatabase(Protocol):
    dialect: str
    integrity_errors: tuple[type[Exception], ...]
    # Errors that mean the connection is gone (a server restart), not a bad statement.
    connection_errors: tuple[type[Exception], ...]

    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def query(self, text: str, params: Params | Sequence[SqlValue] = ()) -> list[Row]: ...

    def close(self) -> None: ...

    def reconnect(self) -> None:
        """Drop the connection (it may be dead) and open a new one."""


def text_of(statement: Statement | str) -> str:
    return statement.text if isinstance(statement, Statement) else statement


# ---------------------------------------------------------------------------- SQLite
class _SqliteTransaction:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, text: str, params: Params | Sequence[SqlValue] = ()) -> int:
        self._cursor.execute(text, params)
        return self._cursor.rowcount

    def executemany(self, text: str, params: Sequence[Params]) -> None:
        self._cursor.executemany(text, params)

    def query(self, text: str, params: Params | Sequence[SqlValue] = ()) -> list[Row]:
        return [tuple(row) for row in self._cursor.execute(text, params).fetchall()]

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        yield  # in-process: no round trips to save


class SqliteReadModel:
    """Read models in an SQLite file (the event store's), or in memory for a throwaway view."""

    dialect = "sqlite"
    integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
    connection_errors: tuple[type[Exception], ...] = ()

    def __init__(self, database: str) -> None:
        # Autocommit mode (isolation_level=None) so that BEGIN/COMMIT below are the only
        # transaction boundaries, exactly where the runner puts them.
        self._connection = sqlite3.connect(
            database, uri=database.startswith("file:"), isolation_level=None,
            timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False,
        )

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        cursor = self._connection.cursor()
        # IMMEDIATE takes the write lock up front: a read-then-write transaction never has to
        # upgrade its lock behind the event store's writer (which would fail, not wait).
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteTransaction(cursor)
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        else:
            cursor.execute("COMMIT")
        finally:
            cursor.close()

    def query(self, text: str, params: Params | Sequence[SqlValue] = ()) -> list[Row]:
        cursor = self._connection.execute(text, params)
        try:
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def close(self) -> None:
        self._connection.close()

    def reconnect(self) -> None:
        pass  # a file: no connection to lose


# ---------------------------------------------------------------------------- PostgreSQL
@functools.lru_cache(maxsize=1024)
def for_psycopg(text: str) -> str:
    """`:name` -> `%(name)s` (psycopg's named style); the SQL has no literal `%` to escape.
    Cached: the read models have a few dozen statements, each run thousands of times a page
    (the regex was 9 % of a rebuild)."""
    assert "%" not in text, "read-model SQL must not contain '%'"
    return _NAMED_PARAMETER.sub(r"%(\1)s", text)


class _PostgresTransaction:
    """One cursor for the whole transaction: a page runs thousands of statements, and a
    cursor made and closed for each was 8 % of a rebuild."""

    def __init__(self, cursor: psycopg.Cursor[Row]) -> None:
        self._cursor = cursor

    def execute(self, text: str, params: Params | Sequence[SqlValue] = ()) -> int:
        self._cursor.execute(for_psycopg(text), params or None, prepare=True)
        return self._cursor.rowcount

    def executemany(self, text: str, params: Sequence[Params]) -> None:
        # psycopg 3 pipelines executemany: one round trip per page, not per row.
        self._cursor.executemany(for_psycopg(text), params)

    def query(self, text: str, params: Params | Sequence[SqlValue] = ()) -> list[Row]:
        self._cursor.execute(for_psycopg(text), params or None)
        return list(self._cursor.fetchall())

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        # A page is thousands of small statements: pipelined, they cost one round trip
        # instead of one each (measured ~3x faster), and keep their order.
        with self._cursor.connection.pipeline():
            yield


class PostgresReadModel:
    """Read models in the event store's PostgreSQL database."""

    dialect = "postgresql"
    integrity_errors: tuple[type[Exception], ...] = (psycopg.errors.IntegrityError,)
    # OperationalError covers AdminShutdown (a restart, pg_terminate_backend) and a refused
    # connection; InterfaceError a connection psycopg already knows is closed.
    connection_errors: tuple[type[Exception], ...] = (
        psycopg.OperationalError, psycopg.InterfaceError)

    def __init__(self, conninfo: Mapping[str, str | int]) -> None:
        self.conninfo = dict(conninfo)
        # Autocommit: `transaction()` below is the only place a transaction starts.
        self._connection: psycopg.Connection[Row] = psycopg.connect(
            **self.conninfo, autocommit=True  # type: ignore[arg-type]
        )

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._connection.transaction(), self._connection.cursor() as cursor:
            yield _PostgresTransaction(cursor)

    def query(self, text: str, params: Params | Sequence[SqlValue] = ()) -> list[Row]:
        with self._connection.cursor() as cursor:
            cursor.execute(for_psycopg(text), params or None)
            return list(cursor.fetchall())

    def close(self) -> None:
        self._connection.close()

    def reconnect(self) -> None:
        self._connection.close()  # never raises, even on a dead connection
        self._connection = psycopg.connect(
            **self.conninfo, autocommit=True  # type: ignore[arg-type]
        )


# ---------------------------------------------------------------------------- choosing one
def postgres_conninfo(env: Mapping[str, str | None]) -> dict[str, str | int]:
    """psycopg connection settings from eventsourcing's POSTGRES_* settings."""
    conninfo: dict[str, str | int] = {
        "dbname": env.get("POSTGRES_DBNAME") or "",
        "host": env.get("POSTGRES_HOST") or "localhost",
        "port": int(env.get("POSTGRES_PORT") or 5432),
        "user": env.get("POSTGRES_USER") or "",
        "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
    }
    password = env.get("POSTGRES_PASSWORD")
    if password:
        conninfo["password"] = password
    schema = env.get("POSTGRES_SCHEMA")
    if schema:
        # The read models sit next to the events, in the schema the store uses.
        conninfo["options"] = f"-c search_path={schema}"
    return conninfo


def _store_settings(ledger: Application[Any]) -> dict[str, str | None]:
    env = ledger.env
    keys = (
        "PERSISTENCE_MODULE", "SQLITE_DBNAME", "POSTGRES_DBNAME", "POSTGRES_HOST",
        "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_SCHEMA",
    )
    return {key: env.get(key) for key in keys}


def ledger_conninfo(ledger: Application[Any]) -> dict[str, str | int] | None:
    """psycopg settings of `ledger`'s PostgreSQL store; None for any other store."""
    settings = _store_settings(ledger)
    if settings["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        return None
    return postgres_conninfo(settings)


def open_read_model(ledger: Application[Any]) -> ReadModelDatabase:
    """The read-model database beside `ledger`'s event store."""
    settings = _store_settings(ledger)
    module = settings["PERSISTENCE_MODULE"] or "eventsourcing.popo"
    conninfo = ledger_conninfo(ledger)
    if conninfo is not None:
        return PostgresReadModel(conninfo)
    if module == "eventsourcing.sqlite":
        return SqliteReadModel(settings["SQLITE_DBNAME"] or ":memory:")
    # The in-memory event store (tests): the read models live in memory beside it.
    return SqliteReadModel(":memory:")
