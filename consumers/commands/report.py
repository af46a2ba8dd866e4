"""`ledger report [--store URL] [--json] [--as-of INSTANT] [--tenant T]`: what finance and
auditors read.

`--json` prints the report of CONTRACT.md, byte-identical for the same events. Without it, a
short summary for finance. The read models are caught up first, so the report always
reflects the store. `--tenant` keeps one tenant's rows, counts and sums (the same keys; dead
letters no tenant could be read from are left out). `--as-of` rebuilds the report from the
events recorded up to that instant instead (projections/as_of.py states the exact rule); it
writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import closing
from datetime import datetime

from consumers.cli import CliError
from consumers.store import open_store, store_url_from
from ledger.limits import TEXT_CHARS_MAX
from projections.as_of import as_of_report
from projections.report import current_report, render_json, render_summary
from projections.values import ProjectionError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="the finance report (sessions, invoices, wallets, journal) from the store",
        description="Print the report computed from the store: --json for the contract's"
        " JSON (deterministic), otherwise a summary for finance.",
    )
    parser.add_argument(
        "--store", metavar="URL",
        help="sqlite:///PATH or postgresql://USER@HOST/DB (default: $LEDGER_STORE, else"
        " sqlite:///./evledger.db)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--as-of", metavar="INSTANT", type=parse_instant,
        help="the report from the events recorded at or before this instant, e.g."
        " 2026-01-31T23:59:59Z (replayed in memory; the store is not changed)",
    )
    parser.add_argument(
        "--tenant", metavar="TENANT", type=parse_tenant,
        help="only this tenant's sessions, documents, balances, journal and dead letters",
    )
    parser.set_defaults(handler=run)


def parse_tenant(text: str) -> str:
    # The same rule as a message's text fields: printable, within TEXT_CHARS_MAX.
    if not text or len(text) > TEXT_CHARS_MAX or not text.isprintable():
        raise argparse.ArgumentTypeError(f"not a tenant id: {text!r}")
    return text


def parse_instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. ...T23:59:59Z")
    return moment


def run(args: argparse.Namespace) -> int:
    with closing(open_store(store_url_from(args.store), create=False)) as ledger:
        try:
            report = (
                as_of_report(ledger, args.as_of, args.tenant) if args.as_of is not None
                else current_report(ledger, args.tenant)
            )
        except ProjectionError as exc:
            raise CliError(f"read models could not be brought up to date: {exc}") from exc
    sys.stdout.write(render_json(report) if args.json else render_summary(report))
    return 0
