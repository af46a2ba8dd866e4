"""A scratch PostgreSQL database beside a store's, created empty and dropped afterwards.

For `ledger bench` (a database per measure) and the tests (a database per test). Dropping is
the delicate part. `DROP DATABASE ... WITH (FORCE)` must be allowed to signal every backend
on the database, and an autovacuum worker has no role at all, so FORCE failed with "must be
a member of the role whose process is being terminated" whenever autovacuum had picked the
database (as after a run that wrote a lot). Instead: end our own role's connections (always
allowed), then a plain DROP, which cancels an autovacuum worker itself; a backend still
exiting makes the database "in use" for a moment, so ask again until a deadline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

# Terminated backends exit within milliseconds; a loaded machine may take seconds.
DROP_DATABASE_DEADLINE_S = 30
DROP_DATABASE_RETRY_S = 0.1
# PostgreSQL truncates identifiers to 63 bytes.
POSTGRES_IDENTIFIER_BYTES_MAX = 63


def database_url(store_url: str, database_name: str) -> str:
    """`store_url` pointing at another database of the same server."""
    return urlsplit(store_url)._replace(path=f"/{database_name}").geturl()


@contextmanager
def scratch_database(store_url: str, prefix: str, *, hex_digits: int = 32) -> Iterator[str]:
    """The URL of a new empty database named `prefix` + random hex, dropped afterwards."""
    name = f"{prefix}{uuid.uuid4().hex[:hex_digits]}"
    assert len(name) <= POSTGRES_IDENTIFIER_BYTES_MAX, name
    with psycopg.connect(store_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(store_url, name)
    finally:
        drop_database(store_url, name)


def drop_database(store_url: str, database_name: str) -> None:
    """Drop a scratch database, even with connections its user leaked (module docstring)."""
    identifier = sql.Identifier(database_name)
    deadline = time.monotonic() + DROP_DATABASE_DEADLINE_S
    with psycopg.connect(store_url, autocommit=True) as admin:
        while True:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
                " AND usename = current_user AND pid <> pg_backend_pid()", (database_name,))
            try:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(identifier))
                return
            except psycopg.errors.ObjectInUse as exc:
                if time.monotonic() > deadline:
                    holders = admin.execute(
                        "SELECT usename, backend_type, application_name, state"
                        " FROM pg_stat_activity WHERE datname = %s", (database_name,)).fetchall()
                    raise RuntimeError(
                        f"{database_name} still in use after {DROP_DATABASE_DEADLINE_S} s by"
                        f" {holders} (roles ours may not terminate)") from exc
            time.sleep(DROP_DATABASE_RETRY_S)  # a terminated backend takes a moment to exit
