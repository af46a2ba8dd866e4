"""The report as of an instant, for auditors: rebuilt from the event log, never stored.

The rule, exactly: replay the ledger's notification log in notification-id order into a
throwaway in-memory SQLite read model, and stop before the first notification whose event
was recorded after the cut-off (its `timestamp`: the instant, in UTC, at which the ledger
recorded it). Everything before that notification is in the view; nothing from it on is.

Why a prefix of the log and not a filter: the log's order is commit order, so a prefix is a
state the ledger really was in, with every balance still equal to its postings. Events are
timestamped while their batch is applied, just before it commits, so the view at T is the
ledger as it stood once the batches recorded by T had committed; a batch being applied at
the very instant T is cut where its events cross T (pick a cut-off between ingests, e.g. a
period end, for a view that no batch straddles). The replay reads the log as it is when the
command starts; events recorded later are never in it.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from eventsourcing.application import Application

from ledger.limits import PROJECTION_PAGE_EVENTS_MAX
from projections.database import ReadModelDatabase, SqliteReadModel
from projections.report import Report, build_report
from projections.runner import NotifiedEvent, apply_page, ensure_schema, read_page
from projections.values import ProjectionError


def recorded_at(event: Any) -> datetime:
    moment = getattr(event, "timestamp", None)
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ProjectionError(f"{type(event).__qualname__} has no recording time")
    return moment


def replay_until(ledger: Application[Any], db: ReadModelDatabase, cutoff: datetime) -> int:
    """Apply the log's prefix recorded at or before `cutoff`; returns its length."""
    if cutoff.tzinfo is None:
        raise ValueError("the cut-off needs a UTC offset, e.g. 2026-01-31T23:59:59Z")
    max_id = ledger.recorder.max_notification_id() or 0
    start: int | None = None
    applied = 0
    # Each page moves `start` by at least a page of ids until the log's end (or the cut).
    for _page in range(max_id // PROJECTION_PAGE_EVENTS_MAX + 2):
        events = read_page(ledger, start)

        def recorded_by_cutoff(item: NotifiedEvent) -> bool:
            return recorded_at(item[1]) <= cutoff

        kept = list(itertools.takewhile(recorded_by_cutoff, events))
        if kept:
            apply_page(db, start, kept)
            start = kept[-1][0]
            applied += len(kept)
        if len(kept) < len(events) or not events or start is None or start >= max_id:
            break
    return applied


def as_of_report(ledger: Application[Any], cutoff: datetime,
                 tenant: str | None = None) -> Report:
    db = SqliteReadModel(":memory:")
    try:
        ensure_schema(db)
        replay_until(ledger, db, cutoff)
        return build_report(db, tenant)
    finally:
        db.close()
