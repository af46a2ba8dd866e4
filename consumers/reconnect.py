"""Riding through an unavailable PostgreSQL: bounded backoff, one JSON line per attempt, and
a stop request honoured at any moment.

When a call to the store fails with a connection error (the server restarted, our backends
were terminated, the database or role is out of connections), the process does not retry
that call blindly through the library's pool (whose own retries are silent and take tens of
seconds): it probes the server with one fresh connection per attempt, waiting
DATABASE_RECONNECT_BACKOFF_MS_MIN, doubled after each failure up to ..._MAX, between them.
Each failed attempt is logged (`database_unavailable`: attempt, error, retry_in_ms); the
first connection that opens is logged (`database_reconnected`: attempts, seconds) and the
caller resumes its loop from its stored position. Errors no wait can fix (a database or role
that does not exist, a refused password) end the process with that error.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError

from consumers.observability import log_event
from ledger.limits import (
    DATABASE_PROBE_CONNECT_TIMEOUT_S,
    DATABASE_RECONNECT_BACKOFF_MS_MAX,
    DATABASE_RECONNECT_BACKOFF_MS_MIN,
)

# What a lost or refused connection raises: eventsourcing's wrappers (around psycopg's and
# psycopg_pool's errors, and sqlite3's "database is locked") and psycopg's own.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError, InterfaceError, psycopg.OperationalError,
)
# libpq reports a refused connection without an SQLSTATE, so these are told apart by the
# server's message: waiting does not create a database or fix a password.
PERMANENT_CONNECT_ERRORS = ("does not exist", "password authentication failed",
                            "no pg_hba.conf entry")


class DatabaseUnusable(Exception):
    """The database refuses us for a reason no wait can fix."""


def backoff_ms(attempt: int, low_ms: int = DATABASE_RECONNECT_BACKOFF_MS_MIN,
               high_ms: int = DATABASE_RECONNECT_BACKOFF_MS_MAX) -> int:
    """The wait after failed attempt `attempt` (1, 2, ...): doubling from `low_ms`, capped at
    `high_ms` (the database's by default)."""
    assert attempt >= 1
    doublings = min(attempt - 1, 30)  # 2**30 * MIN is far past MAX already
    delay_ms: int = low_ms << doublings
    return min(delay_ms, high_ms)


def probe(conninfo: Mapping[str, str | int]) -> Exception | None:
    """Open and close one connection; the error, or None when the server took it."""
    settings = {**conninfo, "connect_timeout": DATABASE_PROBE_CONNECT_TIMEOUT_S}
    try:
        psycopg.connect(**settings).close()  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        return exc
    return None


def check_not_permanent(error: BaseException) -> None:
    text = str(error)
    if any(marker in text for marker in PERMANENT_CONNECT_ERRORS):
        raise DatabaseUnusable(text.strip()) from error


def wait_for_database(
    conninfo: Mapping[str, str | int] | None, error: Exception, stop: threading.Event,
    log: logging.Logger,
) -> bool:
    """After `error`, wait until the database takes a connection again; False if stopped.

    `conninfo` None (SQLite): nothing to probe, one backoff and the caller tries again."""
    started_s = time.monotonic()
    attempt = 0
    current: Exception | None = error
    while current is not None:
        check_not_permanent(current)
        attempt += 1
        delay_ms = backoff_ms(attempt)
        log_event(log, "database_unavailable", logging.WARNING, attempt=attempt,
                  error=" ".join(str(current).split()), retry_in_ms=delay_ms)
        if stop.wait(delay_ms / 1_000):
            return False
        current = None if conninfo is None else probe(conninfo)
    log_event(log, "database_reconnected", attempts=attempt,
              seconds=round(time.monotonic() - started_s, 3))
    return True


def without_library_retries(method: Any) -> Any:
    """`method` of an eventsourcing recorder without its `@retry` (ten silent attempts, each
    waiting for the pool: 9 s of silence with a 1 s connect timeout, measured). The caller
    retries on its own, logging each attempt (consumers/reconnect.py); a method that is not
    decorated is returned as it is."""
    function = getattr(getattr(method, "__func__", None), "__wrapped__", None)
    return method if function is None else functools.partial(function, method.__self__)


# eventsourcing's recorder methods decorated with its @retry (eventsourcing/postgres.py).
LIBRARY_RETRIED_METHODS = ("insert_events", "select_events", "select_notifications",
                           "max_notification_id", "insert_tracking", "max_tracking_id",
                           "has_tracking_id")


def recorder_without_library_retries(recorder: Any) -> None:
    """Shadow this one recorder's retried methods with `without_library_retries` of them,
    for a process whose loop reconnects and logs each attempt itself."""
    for name in LIBRARY_RETRIED_METHODS:
        if hasattr(recorder, name):
            setattr(recorder, name, without_library_retries(getattr(recorder, name)))
