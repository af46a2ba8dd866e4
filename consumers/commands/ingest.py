"""`ledger ingest --events FILE [--store URL]`: apply a JSON-lines event file to the ledger.

The same path as the Kafka consumer: lines become `Inbound` items of the source
`file:<basename>` at position = line number, applied in batches of BATCH_MESSAGES_MAX through
`Ledger.apply_batch`, one transaction each with the position the batch ends at. So:
  1. a re-run skips every line at or before the stored position (a crash resumes there);
  2. a line that cannot be used (not JSON, unknown type, invalid payload) is dead-lettered
     with its reason, in the same transaction as its neighbours: never dropped silently;
  3. a message that comes before what it needs (a session before its driver's
     DriverConfigured) is parked and applied once that comes (`ledger/parking.py`); at the
     end of the file nothing more can come, so what still waits is applied without it
     (dead-lettered or refused with what it waited for);
  4. after the last batch the read models catch up, so `ledger report` shows the file.
A missing or unreadable file, or a store URL that cannot be used, is an error before
anything is written (exit 2). The summary goes to stderr; exit 0 when every line was
applied (or was a duplicate, a refusal or already ingested), exit 3
(DEAD_LETTERED_EXIT_CODE) when some lines were dead-lettered: the rest is applied all the
same, and `ledger dead-letters list` shows them with their reasons.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import closing
from pathlib import Path

from consumers.cli import CliError
from consumers.event_file import EventLine, read_event_file
from consumers.store import open_store, store_url_from
from ledger.application import BatchResult, Inbound, Ledger
from ledger.domain.errors import InvalidMessage
from ledger.limits import BATCH_MESSAGES_MAX
from ledger.messages import parse_message
from projections.database import open_read_model
from projections.runner import catch_up, ensure_schema, stored_position
from projections.values import ProjectionError

# Exit code of an ingest that applied the file but dead-lettered some of its lines: distinct
# from 2 (nothing done: bad arguments or store) so a script can tell "look at the dead
# letters" from "run it again".
DEAD_LETTERED_EXIT_CODE = 3


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="apply a JSON-lines event file to the ledger (idempotent, resumable)",
        description="Apply an event file through the same handlers as the Kafka consumer."
        " Ingesting a file twice, or resuming after a crash, gives the state of one clean"
        " pass. Bad lines are dead-lettered with their reason.",
    )
    parser.add_argument("--events", required=True, type=Path, metavar="FILE")
    parser.add_argument(
        "--store", metavar="URL",
        help="sqlite:///PATH or postgresql://USER@HOST/DB (default: $LEDGER_STORE, else"
        " sqlite:///./evledger.db)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.events
    check_readable(path)
    store_url = store_url_from(args.store)
    started_s = time.monotonic()
    with closing(open_store(store_url)) as ledger:
        source = source_for(path)
        totals = ingest_file(ledger, path, source)
        with closing(open_read_model(ledger)) as db:
            try:
                ensure_schema(db)
                catch_up(ledger, db)
            except ProjectionError as exc:
                raise CliError(f"read models could not be brought up to date: {exc}") from exc
            projected_to = stored_position(db)
    elapsed_s = time.monotonic() - started_s
    print(
        f"ledger ingest: {path.name}: applied {totals.applied}, duplicates {totals.duplicates},"
        f" dead-lettered {totals.dead_lettered}, refused {totals.refused}, parked"
        f" {totals.parked} (applied later {totals.unparked}, waited in vain {totals.expired}),"
        f" commands issued"
        f" {totals.commands_issued}, already ingested {totals.skipped_before_position}"
        f" (read models at notification {projected_to or 0}; {elapsed_s:.1f} s)",
        file=sys.stderr,
    )
    if totals.dead_lettered:
        print(f"ledger ingest: {totals.dead_lettered} line(s) dead-lettered: see `ledger"
              " dead-letters list`", file=sys.stderr)
        return DEAD_LETTERED_EXIT_CODE
    return 0


def check_readable(path: Path) -> None:
    if not path.is_file():
        raise CliError(f"event file {path} does not exist or is not a file")
    if not os.access(path, os.R_OK):
        raise CliError(f"event file {path} is not readable")


def source_for(path: Path) -> str:
    """The file's position is kept under its name: the same file moved keeps its place."""
    return "file:" + path.name


def inbound_for(source: str, line: EventLine) -> Inbound:
    """One line as a batch item: the parsed message, or the reason it cannot be one."""
    type_name = line.type_name or None
    key = line.key or None
    if line.error is not None:
        return Inbound(source, line.line_number, None, key=key, raw=line.raw,
                       error=line.error, type_name=type_name)
    try:
        message = parse_message(line.type_name, line.payload)
    except InvalidMessage as exc:
        return Inbound(source, line.line_number, None, key=key, raw=line.raw,
                       error=str(exc), type_name=type_name)
    return Inbound(source, line.line_number, message, key=key, raw=line.raw,
                   type_name=type_name)


def ingest_file(ledger: Ledger, path: Path, source: str) -> BatchResult:
    """Apply the file's lines after the stored position, BATCH_MESSAGES_MAX per transaction."""
    totals = BatchResult()
    after = ledger.position(source)
    batch: list[Inbound] = []
    try:
        for line in read_event_file(path):
            if after is not None and line.line_number <= after:
                totals.skipped_before_position += 1  # applied by an earlier run
                continue
            batch.append(inbound_for(source, line))
            if len(batch) == BATCH_MESSAGES_MAX:
                totals.add(ledger.apply_batch(batch))
                batch = []
    except OSError as exc:
        raise CliError(f"event file {path} could not be read: {exc}") from exc
    if batch:
        totals.add(ledger.apply_batch(batch))
    # The file is all there is: what its messages still wait for cannot come any more, so
    # they are applied without it (dead-lettered or refused, as without parking).
    totals.add(ledger.release_parked())
    return totals
