"""The audit replay: every read model rebuilt from the event log beside the live ones.

1. read every live read-model table in one snapshot, with the position it stands at (its
   `rm_tracking` row, in the same snapshot);
2. project the log from notification 0 to exactly that position into a fresh scratch read
   model: a new schema in the same PostgreSQL database, or a new SQLite file in the
   temporary directory, with the same runner and row changes as `ledger project`;
3. read the scratch tables the same way, compare them with the live ones (comparison.py),
   and drop the scratch schema or file.
The live read models and the event log are only read: nothing in the store changes.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventsourcing.application import Application

from projections.catalog import Table, read_tables
from projections.database import (
    PostgresReadModel,
    ReadModelDatabase,
    SqliteReadModel,
)
from projections.runner import PROJECTION_NAME, PageCallback, catch_up, ensure_schema
from projections.values import ProjectionError


@dataclass(frozen=True, slots=True)
class Replayed:
    position: int  # the notification id both sides stand at (0: nothing projected yet)
    log_end: int  # the log's last notification id when the replay started
    events: int  # events replayed
    live: dict[str, Table]
    replayed: dict[str, Table]


def live_position(tables: dict[str, Table]) -> int:
    tracking = tables.get("rm_tracking")
    if tracking is None:
        raise ProjectionError("the store has no read models: run `ledger project` first")
    for row in tracking.rows:
        if row[tracking.columns.index("projection_name")] == PROJECTION_NAME:
            return int(row[tracking.columns.index("notification_id")])
    return 0


def replay_and_read(
    ledger: Application[Any], live_db: ReadModelDatabase, on_page: PageCallback | None = None
) -> Replayed:
    live = read_tables(live_db)  # step 1
    position = live_position(live)
    log_end = ledger.recorder.max_notification_id() or 0
    with scratch_read_model(live_db) as scratch:  # step 2
        ensure_schema(scratch)
        events = catch_up(ledger, scratch, on_page=on_page, until=position) if position else 0
        replayed = read_tables(scratch)  # step 3
    return Replayed(position, log_end, events, live, replayed)


@contextmanager
def scratch_read_model(live_db: ReadModelDatabase) -> Iterator[ReadModelDatabase]:
    """A new, empty read-model database of the live one's kind; dropped on the way out."""
    if isinstance(live_db, PostgresReadModel):
        schema = f"audit_replay_{uuid.uuid4().hex[:16]}"
        # The name is ours (hex), never from outside: safe to put in the statement.
        with live_db.transaction() as tx:
            tx.execute(f"CREATE SCHEMA {schema}")
        scratch = PostgresReadModel({**live_db.conninfo, "options": f"-c search_path={schema}"})
        try:
            yield scratch
        finally:
            scratch.close()
            with live_db.transaction() as tx:
                tx.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        return
    assert isinstance(live_db, SqliteReadModel)
    # A file, not memory: a long history must not have to fit in RAM twice.
    descriptor, name = tempfile.mkstemp(prefix="evledger-audit-replay-", suffix=".db")
    os.close(descriptor)
    scratch_sqlite = SqliteReadModel(name)
    try:
        yield scratch_sqlite
    finally:
        scratch_sqlite.close()
        Path(name).unlink(missing_ok=True)
