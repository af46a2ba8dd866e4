"""`ledger bench chain --events FILE --store URL`: what the hash chain adds to the write path.

Ingests the event file into the store (as `ledger ingest` does, read models not projected)
and reports the seconds spent linking events inside their transactions (reading the chain's
head, hashing, inserting the links) against the whole ingest. Use a fresh store: on a store
that holds the file already nothing is written.
"""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from pathlib import Path

from consumers.chained_store import LinkTiming
from consumers.cli import CliError
from consumers.commands.ingest import check_readable, ingest_file, source_for
from consumers.store import open_store, store_url_from


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "chain", help="seconds the hash chain adds to an ingest",
        description="Ingest an event file into a fresh store and print the seconds spent"
        " linking events into the hash chain, against the whole ingest.",
    )
    parser.add_argument("--events", metavar="FILE", required=True, type=Path)
    parser.add_argument("--store", metavar="URL", help="a fresh store (default: $LEDGER_STORE)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_readable(args.events)
    with closing(open_store(store_url_from(args.store))) as ledger:
        recorder = ledger.recorder
        if not isinstance(recorder, LinkTiming):
            raise CliError("this store keeps no hash chain")
        if ledger.recorder.max_notification_id():
            raise CliError("the store is not empty: give a fresh one")
        started_s = time.perf_counter()
        ingest_file(ledger, args.events, source_for(args.events))
        total_s = time.perf_counter() - started_s
    share = 100 * recorder.link_seconds / total_s if total_s else 0.0
    print(f"ledger bench chain: ingest {total_s:.2f} s; linking {recorder.linked_events} events"
          f" {recorder.link_seconds:.3f} s ({share:.1f} % of the ingest)")
    return 0
