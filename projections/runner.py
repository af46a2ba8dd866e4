"""The projection runner: a page-batched pull loop from the event log into the read models.

Commit protocol, per page (at most PROJECTION_PAGE_EVENTS_MAX notifications):
  1. read the page after the stored position: `select_notifications(position, limit,
     inclusive_of_start=False)`, and map each notification to its domain event;
  2. compute every row change with the read models' pure functions (outside any
     transaction, so SQLite's single write lock is held only for step 3);
  3. in ONE transaction: move the tracking row from exactly the position read in step 1 to
     the page's last notification id (compare-and-set: a runner that lost a race changes
     nothing and starts again from the new position), then write every row change in event
     order; commit. A crash anywhere leaves the page either wholly applied or not at all.
Positions only grow: asserted on the page, and enforced by the compare-and-set.

`catch_up` applies what the log holds when it is called (used by ingest, report, demo);
`run_forever` keeps doing so, woken by PostgreSQL's NOTIFY on the events table and polling
at least every PROJECTION_POLL_INTERVAL_MS anyway, so a lost NOTIFY never stalls it
(eventsourcing issue #305; the mechanism, shared with the relay: projections/new_events.py).
`rebuild` drops the read models and catches up from 0.
Both loops tell an optional `on_page` callback about each page committed (`PageApplied`:
events, first and last notification id, seconds): that is how `ledger project` logs and
counts pages, without this package knowing about logs or metrics.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import InterfaceError as PersistenceInterfaceError
from eventsourcing.persistence import OperationalError as PersistenceOperationalError

from ledger.limits import (
    PROJECTION_PAGE_EVENTS_MAX,
    PROJECTION_POLL_INTERVAL_MS,
    PROJECTION_RECONNECT_ATTEMPTS_MAX,
    PROJECTION_RECONNECT_DELAY_MS_MAX,
    PROJECTION_RECONNECT_DELAY_MS_MIN,
)
from projections import sql
from projections.changes import RowChange
from projections.database import ReadModelDatabase, Transaction, open_read_model
from projections.identities import Identity, identity_of, remember
from projections.inbox import storable_change, unprojectable
from projections.journal import books_money
from projections.mapping import HANDLERS, changes_for
from projections.new_events import new_events_signal
from projections.values import ProjectionError, SqlValue

# The tracking row's name: all read models move together, one page per transaction.
PROJECTION_NAME = "read_models"
# Runners racing for the same page: each lost race costs one re-read. More than this in one
# catch-up means something keeps moving the position under us (a misconfiguration).
POSITION_CONFLICTS_MAX = 10
# Identities of one page are read with one `IN (...)` of at most a page of parameters;
# SQLite's default cap on parameters in one statement is 999 (before 3.32).
SQLITE_PARAMETERS_MAX = 999
assert PROJECTION_PAGE_EVENTS_MAX <= SQLITE_PARAMETERS_MAX, "a page's identities in one query"
assert PROJECTION_POLL_INTERVAL_MS > 0

log = logging.getLogger(__name__)
Event = Any  # an eventsourcing domain event of the ledger (attributes vary by class)
NotifiedEvent = tuple[int, Event]  # (notification id, domain event)


class PositionConflict(Exception):
    """Another runner moved the position since this one read it."""


@dataclass(frozen=True, slots=True)
class PageApplied:
    """One page committed: its events, first and last notification ids, and the seconds
    from reading it to its commit (a page lost to a position conflict is not reported)."""

    events: int
    first_id: int
    last_id: int
    seconds: float


PageCallback = Callable[[PageApplied], None]


def _never() -> bool:
    return False


# ---------------------------------------------------------------------------- schema
def ensure_schema(db: ReadModelDatabase) -> None:
    with db.transaction() as tx:
        for _name, create in sql.TABLES:
            tx.execute(create)
        for index in sql.INDEXES:
            tx.execute(index)


def drop_read_models(db: ReadModelDatabase) -> None:
    with db.transaction() as tx:
        for name in reversed(sql.TABLE_NAMES):
            tx.execute(sql.drop_table(name))


def stored_position(db: ReadModelDatabase) -> int | None:
    rows = db.query(sql.SELECT_POSITION.text, {"projection_name": PROJECTION_NAME})
    return None if not rows else int(rows[0][0])


# ---------------------------------------------------------------------------- one page
def page_changes(db: ReadModelDatabase, events: Sequence[NotifiedEvent]) -> list[RowChange]:
    """Step 2: every row change of the page, in event order (reads identities only)."""
    identities = _known_identities(db, events)
    changes: list[RowChange] = []
    for notification_id, event in events:
        identity = identity_of(event)
        if identity is not None:
            identities[event.originator_id] = identity
            changes.append(storable_change(remember(event.originator_id, identity)))
        changes.extend(_event_changes(notification_id, event, identities))
    return changes


def _event_changes(
    notification_id: int, event: Event, identities: dict[UUID, Identity]
) -> list[RowChange]:
    """The event's row changes, all storable; or, for an event the read models cannot hold
    (a value beyond a column, a bug in a read model), one dead-letter row saying so: the
    read models never stop on what the store accepted, and the event is not lost from view
    (the event log keeps it; `ledger report` lists it under dead letters)."""
    try:
        return [storable_change(change) for change in changes_for(event, identities)]
    except Exception as exc:  # whatever it is, it is this one event's
        log.exception("notification %s (%s) not projected", notification_id,
                      type(event).__qualname__)
        return [unprojectable(notification_id, event, exc)]


def apply_page(
    db: ReadModelDatabase, start: int | None, events: Sequence[NotifiedEvent]
) -> None:
    """Steps 2 and 3 for one page read after `start` (None: nothing applied yet)."""
    assert events, "an empty page moves nothing"
    ids = [notification_id for notification_id, _ in events]
    assert all(a < b for a, b in itertools.pairwise(ids)), "notification ids grow in a page"
    assert ids[0] > (start or 0), f"page starting at {ids[0]} is not after {start}"
    changes = page_changes(db, events)
    with db.transaction() as tx:
        _move_position(db, tx, start, ids[-1])
        try:
            _execute(tx, changes)
        except db.integrity_errors as exc:
            raise ProjectionError(
                f"notifications {ids[0]}..{ids[-1]} conflict with rows already projected "
                f"(a double booking upstream?): {exc}"
            ) from exc


def _move_position(
    db: ReadModelDatabase, tx: Transaction, start: int | None, last_id: int
) -> None:
    values: dict[str, SqlValue] = {"projection_name": PROJECTION_NAME, "notification_id": last_id}
    if start is None:
        try:
            tx.execute(sql.INSERT_POSITION.text, values)
        except db.integrity_errors as exc:
            raise PositionConflict(f"another runner started {PROJECTION_NAME}") from exc
        return
    moved = tx.execute(sql.MOVE_POSITION.text, {**values, "expected_id": start})
    if moved != 1:
        raise PositionConflict(f"{PROJECTION_NAME} moved past {start} meanwhile")


def _execute(tx: Transaction, changes: Sequence[RowChange]) -> None:
    """Runs of the same statement go as one executemany; the order of changes is kept."""
    with tx.pipeline():
        for statement, run in itertools.groupby(changes, key=lambda change: change.statement):
            rows = [change.values for change in run]
            if len(rows) == 1:
                tx.execute(statement.text, rows[0])
            else:
                tx.executemany(statement.text, rows)


def _known_identities(
    db: ReadModelDatabase, events: Sequence[NotifiedEvent]
) -> dict[UUID, Identity]:
    wanted = sorted(
        {
            event.originator_id
            for _, event in events
            if event.originator_version > 1 and (type(event) in HANDLERS or books_money(event))
        }
    )
    if not wanted:
        return {}
    names = [f"a{i}" for i in range(len(wanted))]
    text = f"{sql.SELECT_AGGREGATES_PREFIX} ({', '.join(':' + name for name in names)})"
    rows = db.query(text, {name: aggregate_id.hex for name, aggregate_id in zip(names, wanted,
                                                                                 strict=True)})
    return {UUID(hex=row[0]): Identity(row[1], row[2], row[3]) for row in rows}


# ---------------------------------------------------------------------------- loops
def read_page(ledger: Application[Any], start: int | None) -> list[NotifiedEvent]:
    """Step 1: the next page of the log after `start`, as domain events."""
    notifications = ledger.recorder.select_notifications(
        start or 0, limit=PROJECTION_PAGE_EVENTS_MAX, inclusive_of_start=False
    )
    return [(n.id, ledger.mapper.to_domain_event(n)) for n in notifications]


def catch_up(
    ledger: Application[Any],
    db: ReadModelDatabase,
    *,
    should_stop: Callable[[], bool] = _never,
    on_page: PageCallback | None = None,
    until: int | None = None,
) -> int:
    """Apply every notification the log holds now; returns how many were applied.

    `should_stop` is asked between pages: a stop request lets the current page commit.
    `on_page` is called after each page commits; what it raises stops the catch-up (the
    page stays committed). `until`: stop at this notification id instead (an audit replays
    to exactly the position of the read models it compares with).
    """
    target = ledger.recorder.max_notification_id() or 0
    if until is not None:
        target = min(target, until)
    start = stored_position(db)
    # Every full page moves the position by at least a page of ids, so this many rounds
    # reach the target; conflicts each cost one more round.
    rounds_max = max(target - (start or 0), 0) // PROJECTION_PAGE_EVENTS_MAX + 2
    applied = 0
    conflicts = 0
    for _round in range(rounds_max + POSITION_CONFLICTS_MAX):
        if should_stop() or (start or 0) >= target:
            break
        started_s = time.monotonic()
        events = read_page(ledger, start)
        if until is not None:
            events = [item for item in events if item[0] <= target]
        if not events:
            break
        try:
            apply_page(db, start, events)
        except PositionConflict:
            conflicts += 1
            if conflicts > POSITION_CONFLICTS_MAX:
                raise
            start = stored_position(db)
            continue
        applied += len(events)
        start = events[-1][0]
        if on_page is not None:
            on_page(PageApplied(len(events), events[0][0], start,
                                time.monotonic() - started_s))
    return applied


def rebuild(ledger: Application[Any], db: ReadModelDatabase) -> int:
    """Drop every read-model table and project the whole log again (from notification 0).

    Readers see partial read models until it finishes: stop `ledger project` first.
    """
    drop_read_models(db)
    ensure_schema(db)
    return catch_up(ledger, db)


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """The database connection was lost (`attempt` n of reconnecting, after `delay_s`), or
    restored after `attempt` failed attempts."""

    restored: bool
    attempt: int
    delay_s: float
    error: str


ConnectionCallback = Callable[[ConnectionChange], None]


def reconnect_delay_s(attempt: int) -> float:
    """Exponential backoff from PROJECTION_RECONNECT_DELAY_MS_MIN, capped at _MAX."""
    delay_ms: int = PROJECTION_RECONNECT_DELAY_MS_MIN * 2 ** min(attempt - 1, 16)
    return min(delay_ms, PROJECTION_RECONNECT_DELAY_MS_MAX) / 1000


def run_forever(
    ledger: Application[Any],
    db: ReadModelDatabase,
    stop: threading.Event,
    *,
    poll_interval_ms: int = PROJECTION_POLL_INTERVAL_MS,
    on_page: PageCallback | None = None,
    on_connection: ConnectionCallback | None = None,
    on_start: Callable[[], None] | None = None,
) -> int:
    """Catch up, wait for new events, repeat, until `stop` is set; returns events applied.

    The read-model schema is made sure of first, inside the reconnect loop below, so a
    connection lost while starting is ridden through like one lost later; `on_start` runs
    once, after that, on the database (the caller's first look at its position).

    Each round is bounded: one catch-up (bounded by the log's length when it started) and
    one wait of at most `poll_interval_ms`. Setting `stop` lets the current page commit.
    `on_page`: as for `catch_up`.

    A lost database connection (a restart, a terminated backend) is not the end: wait
    `reconnect_delay_s(attempt)` (returning at once on `stop`), reconnect the read models
    and the LISTEN connection, and go on from the stored position (a page is committed
    whole or not at all, so nothing is applied twice); `on_connection` hears of each
    attempt and of the recovery. After PROJECTION_RECONNECT_ATTEMPTS_MAX failed attempts
    in a row the last error is raised.
    """
    applied = 0
    failures = 0
    lost: tuple[type[Exception], ...] = (
        *db.connection_errors, PersistenceOperationalError, PersistenceInterfaceError)
    started = False
    while not stop.is_set():
        try:
            if failures:
                db.reconnect()
            ensure_schema(db)
            if not started:
                if on_start is not None:
                    on_start()
                started = True
            with new_events_signal(ledger, stop) as wait_for_new_events:
                while not stop.is_set():
                    applied += catch_up(ledger, db, should_stop=stop.is_set, on_page=on_page)
                    if failures:
                        if on_connection is not None:
                            on_connection(ConnectionChange(True, failures, 0.0, ""))
                        failures = 0
                    wait_for_new_events(poll_interval_ms / 1000)
        except lost as exc:
            failures += 1
            if failures > PROJECTION_RECONNECT_ATTEMPTS_MAX:
                raise
            delay_s = reconnect_delay_s(failures)
            if on_connection is not None:
                on_connection(ConnectionChange(
                    False, failures, delay_s, f"{type(exc).__name__}: {exc}".strip()))
            stop.wait(delay_s)
    return applied


@contextmanager
def caught_up_read_model(ledger: Application[Any]) -> Iterator[ReadModelDatabase]:
    """The read models beside `ledger`'s store, brought up to its last event (a command
    that answers one question from them), closed afterwards."""
    db = open_read_model(ledger)
    try:
        ensure_schema(db)
        catch_up(ledger, db)
        yield db
    finally:
        db.close()
