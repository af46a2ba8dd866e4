"""The store-side ratios of `ledger bench`, each against a raw baseline in the same run, on
one simulated day in a fresh PostgreSQL database:

- `ingest_ratio`: parsing and decoding the event file (JSON lines -> validated messages)
  over `ledger ingest` of it (the same handlers as Kafka, then the read models);
- `projection_ratio`: the projector catching up after that ingest, events/s, over a raw
  scan of the event table (`SELECT` every row in notification order, psycopg, no decoding;
  the fastest of three runs);
- `rebuild_ratio`: `ledger project --rebuild` (drop, recreate, project everything) over the
  same raw scan;
- `store_write_ratio`: the ledger's write path for the day's stored events (eventsourcing's
  recorder: the table lock, notification ids, NOTIFY, one transaction per ledger-sized batch)
  over psycopg `executemany` of the same rows into a table of the same shape, in the same
  transactions; `COPY` of the rows is reported as the ceiling (`store_copy_ratio`).
The events table is `ledger_events` (eventsourcing's naming for the application `Ledger`).
"""

from __future__ import annotations

import math
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment
from psycopg import sql

from consumers.commands.ingest import inbound_for, ingest_file, source_for
from consumers.event_file import read_event_file, write_event_file
from consumers.store import ledger_env, open_ledger
from ledger.limits import BATCH_MESSAGES_MAX
from projections.database import ledger_conninfo, open_read_model
from projections.runner import catch_up, ensure_schema, rebuild

EVENTS_TABLE = "ledger_events"
# The write-path comparison writes into tables of its own, beside the day's.
WRITE_RECORDER_NAME = "benchwrite"
RAW_TABLE = "bench_raw_events"
COLUMNS = ("originator_id", "originator_version", "topic", "state")


@dataclass(frozen=True, slots=True)
class StoreRun:
    lines: int
    events: int
    parse_seconds: float
    ingest_seconds: float
    ingest_ratio: float
    projection_seconds: float
    rebuild_seconds: float
    scan_seconds: float
    projection_ratio: float
    rebuild_ratio: float
    write_batches: int
    ledger_write_seconds: float
    executemany_seconds: float
    copy_seconds: float
    store_write_ratio: float
    store_copy_ratio: float


def run_store_paths(store_url: str, lines: list[str], work_dir: Path) -> StoreRun:
    """Every ratio above on `store_url` (an empty PostgreSQL database)."""
    path = work_dir / "day.jsonl"
    write_event_file(path, lines)
    source = source_for(path)
    started_s = time.perf_counter()
    for line in read_event_file(path):
        inbound_for(source, line)
    parse_seconds = time.perf_counter() - started_s
    with closing(open_ledger(store_url)) as ledger, closing(open_read_model(ledger)) as db:
        started_s = time.perf_counter()
        ingest_file(ledger, path, source)
        applied_s = time.perf_counter()
        ensure_schema(db)
        catch_up(ledger, db)
        ingest_seconds = time.perf_counter() - started_s
        projection_seconds = time.perf_counter() - applied_s
        started_s = time.perf_counter()
        events = rebuild(ledger, db)
        rebuild_seconds = time.perf_counter() - started_s
        conninfo = ledger_conninfo(ledger)
    assert conninfo is not None, "the store benchmarks run on PostgreSQL"
    scan_seconds, rows = _raw_scan(conninfo)
    assert len(rows) == events, f"scanned {len(rows)} rows, projected {events} events"
    # The ledger's transactions: one per BATCH_MESSAGES_MAX lines of the file.
    batches = max(1, math.ceil(len(lines) / BATCH_MESSAGES_MAX))
    batch_events = math.ceil(len(rows) / batches)
    chunks = [rows[i:i + batch_events] for i in range(0, len(rows), batch_events)]
    ledger_write_seconds = _ledger_write_seconds(store_url, chunks)
    executemany_seconds, copy_seconds = _raw_write_seconds(conninfo, chunks)
    return StoreRun(
        lines=len(lines), events=events,
        parse_seconds=round(parse_seconds, 3), ingest_seconds=round(ingest_seconds, 3),
        ingest_ratio=round(parse_seconds / ingest_seconds, 4),
        projection_seconds=round(projection_seconds, 3),
        rebuild_seconds=round(rebuild_seconds, 3), scan_seconds=round(scan_seconds, 3),
        projection_ratio=round(scan_seconds / projection_seconds, 4),
        rebuild_ratio=round(scan_seconds / rebuild_seconds, 4),
        write_batches=len(chunks), ledger_write_seconds=round(ledger_write_seconds, 3),
        executemany_seconds=round(executemany_seconds, 3), copy_seconds=round(copy_seconds, 3),
        store_write_ratio=round(executemany_seconds / ledger_write_seconds, 4),
        store_copy_ratio=round(copy_seconds / ledger_write_seconds, 4),
    )


# The scan is one query of a fraction of a second, so one run of it is mostly noise: on the
# same day's log it took 0.085 s measured alone and 0.16-0.84 s inside full `ledger bench`
# runs (docs/benchmarks.md). The fastest of a few runs is the baseline.
RAW_SCAN_RUNS = 3


def _raw_scan(conninfo: dict[str, Any]) -> tuple[float, list[tuple[Any, ...]]]:
    query = sql.SQL("SELECT {} FROM {} ORDER BY notification_id").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.Identifier(EVENTS_TABLE))
    fastest_s = math.inf
    rows: list[tuple[Any, ...]] = []
    with psycopg.connect(**conninfo) as connection:
        for _run in range(RAW_SCAN_RUNS):
            started_s = time.perf_counter()
            rows = connection.execute(query).fetchall()
            fastest_s = min(fastest_s, time.perf_counter() - started_s)
    return fastest_s, rows


def _ledger_write_seconds(store_url: str, chunks: list[list[tuple[Any, ...]]]) -> float:
    factory: InfrastructureFactory[Any] = InfrastructureFactory.construct(
        Environment(name=WRITE_RECORDER_NAME, env=ledger_env(store_url))
    )
    try:
        recorder = factory.application_recorder()
        stored = [[StoredEvent(*row) for row in chunk] for chunk in chunks]
        started_s = time.perf_counter()
        for chunk in stored:
            recorder.insert_events(chunk)
        return time.perf_counter() - started_s
    finally:
        factory.close()


def _raw_write_seconds(
    conninfo: dict[str, Any], chunks: list[list[tuple[Any, ...]]]
) -> tuple[float, float]:
    """executemany, then COPY, of the same rows into a copy of the events table's shape."""
    table = sql.Identifier(RAW_TABLE)
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    insert = sql.SQL("INSERT INTO {} ({}) VALUES (%s, %s, %s, %s)").format(table, columns)
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)
    with psycopg.connect(**conninfo, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
            table, sql.Identifier(EVENTS_TABLE)))
        started_s = time.perf_counter()
        for chunk in chunks:
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(insert, chunk)
        executemany_seconds = time.perf_counter() - started_s
        connection.execute(sql.SQL("TRUNCATE {}").format(table))
        started_s = time.perf_counter()
        for chunk in chunks:
            with connection.transaction(), connection.cursor() as cursor, \
                    cursor.copy(copy) as writer:
                for row in chunk:
                    writer.write_row(row)
        copy_seconds = time.perf_counter() - started_s
    return executemany_seconds, copy_seconds
