"""Waking a loop that tails the event log as soon as new events commit: one mechanism for
the projector (`projections/runner.py`) and the outbox relay (`consumers/relay.py`).

eventsourcing's PostgreSQL recorder sends `NOTIFY <events table>` inside every transaction
that inserts events (from Python, `_notify_channel` in `insert_events`; no database
functions are needed, and POSTGRES_ENABLE_DB_FUNCTIONS stays off), so a connection that
LISTENs on that channel hears of each commit when it happens.

A NOTIFY can be lost (eventsourcing issue #305) and the LISTEN connection can drop (a
database restart, `pg_terminate_backend`, too many connections): the wait never lasts longer
than asked, so the caller's poll interval stays the floor, and a dropped connection is
reopened at the next wait (until then the wait is a plain sleep). SQLite has no
notifications: the wait is a sleep. Every wait returns at once when `stop` is set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from eventsourcing.application import Application
from psycopg import sql as psycopg_sql

from projections.database import ledger_conninfo

# wait(timeout_s): returns when new events may have committed, or after timeout_s at most.
NewEventsWait = Callable[[float], None]


@contextmanager
def new_events_signal(
    ledger: Application[Any], stop: threading.Event
) -> Iterator[NewEventsWait]:
    """A wait that returns early when `ledger`'s store commits new events (PostgreSQL)."""
    channel = getattr(ledger.recorder, "channel_name", None)
    conninfo = ledger_conninfo(ledger)
    if conninfo is None or not isinstance(channel, str):
        # SQLite (or in memory): no notifications, polling is the only signal.
        def sleep(timeout_s: float) -> None:
            stop.wait(timeout_s)  # returns at once when asked to stop

        yield sleep
        return
    listener = _Listener(conninfo, channel, stop)
    try:
        yield listener.wait
    finally:
        listener.close()


class _Listener:
    """A LISTEN connection of its own: a notification must not wait behind a page's work."""

    def __init__(
        self, conninfo: Mapping[str, str | int], channel: str, stop: threading.Event
    ) -> None:
        self._conninfo = dict(conninfo)
        self._channel = channel
        self._stop = stop
        self._connection: psycopg.Connection[Any] | None = None
        self._open()

    def wait(self, timeout_s: float) -> None:
        deadline_s = time.monotonic() + timeout_s
        # At most two rounds: a connection found dropped is reopened once, at once.
        for _round in range(2):
            if self._stop.is_set():
                return
            if self._connection is None:
                self._open()
            connection = self._connection
            left_s = max(deadline_s - time.monotonic(), 0.0)
            if connection is None:
                self._stop.wait(left_s)  # cannot listen now: poll, reconnect next time
                return
            try:
                for _notify in connection.notifies(timeout=left_s, stop_after=1):
                    pass
                return
            except psycopg.OperationalError:
                self.close()
        self._stop.wait(max(deadline_s - time.monotonic(), 0.0))

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _open(self) -> None:
        """LISTEN on a new connection; on failure stay without one (the wait polls)."""
        try:
            connection: psycopg.Connection[Any] = psycopg.connect(
                **self._conninfo, autocommit=True  # type: ignore[arg-type]
            )
        except psycopg.OperationalError:
            return
        try:
            connection.execute(
                psycopg_sql.SQL("LISTEN {}").format(psycopg_sql.Identifier(self._channel))
            )
        except psycopg.OperationalError:
            connection.close()
            return
        self._connection = connection
