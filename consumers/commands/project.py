"""`ledger project [--store URL] [--once | --rebuild]`: keep the read models up to date.

Long-running by default: catches up, then waits for new events (PostgreSQL NOTIFY, with a
poll every PROJECTION_POLL_INTERVAL_MS so a lost NOTIFY never stalls it; SQLite: the poll
only). SIGTERM or SIGINT lets the page in progress commit, then exits 0. `--once` catches
up and exits; `--rebuild` drops every read-model table, projects the whole log again and
exits (stop the long-running projector first). Both print their throughput to stderr.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from types import FrameType

from consumers.cli import CliError
from consumers.store import open_store, store_url_from
from projections.database import open_read_model
from projections.runner import catch_up, ensure_schema, rebuild, run_forever, stored_position
from projections.values import ProjectionError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "project",
        help="keep the read models up to date from the event log (long-running)",
        description="Project the ledger's events into the read-model tables, a page per"
        " transaction. Stops cleanly on SIGTERM/SIGINT.",
    )
    parser.add_argument(
        "--store", metavar="URL",
        help="sqlite:///PATH or postgresql://USER@HOST/DB (default: $LEDGER_STORE, else"
        " sqlite:///./evledger.db)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="catch up, then exit")
    mode.add_argument(
        "--rebuild", action="store_true",
        help="drop the read models and project the whole log again, then exit",
    )
    parser.set_defaults(handler=run)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (instead of dying mid-page); handlers restored after."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    with closing(open_store(store_url_from(args.store))) as ledger, \
            closing(open_read_model(ledger)) as db:
        started_s = time.monotonic()
        try:
            if args.rebuild:
                applied = rebuild(ledger, db)
                what = "rebuilt from"
            else:
                ensure_schema(db)
                if args.once:
                    applied = catch_up(ledger, db)
                    what = "caught up with"
                else:
                    with stop_on_signals() as stop:
                        applied = run_forever(ledger, db, stop)
                    what = "stopped after"
        except ProjectionError as exc:
            raise CliError(f"projection stopped: {exc}") from exc
        elapsed_s = time.monotonic() - started_s
        rate = f"{applied / elapsed_s:,.0f} events/s" if elapsed_s > 0 and applied else "-"
        print(
            f"ledger project: {what} {applied} events in {elapsed_s:.2f} s ({rate});"
            f" read models at notification {stored_position(db) or 0}",
            file=sys.stderr,
        )
    return 0
