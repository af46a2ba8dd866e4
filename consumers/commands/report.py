"""`ledger report [--store URL] [--json] [--as-of DATE | --recorded-as-of INSTANT]
[--tenant T]`: what finance and auditors read.

`--json` prints the report of CONTRACT.md, byte-identical for the same events. Without it, a
short summary for finance. The read models are caught up first, so the report always
reflects the store. `--tenant` keeps one tenant's rows, counts and sums (the same keys; dead
letters no tenant could be read from are left out), in every view. Two views of the past,
each rebuilt from the event log in memory (they write nothing):
- `--as-of DATE`: the books as they stood at a business date or time, each tenant's in its
  own time zone: what had *happened* by then, however late the ledger learnt of it
  (projections/business_as_of.py states the exact rule). The JSON adds `debts` and `as_of`
  (each tenant's exact cut-off).
- `--recorded-as-of INSTANT`: what the ledger had *recorded* by that instant
  (projections/as_of.py). Until issue 9 this view was `--as-of`.
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
from projections.business_as_of import BusinessCutoff, CutoffError, business_as_of_report
from projections.report import Report, current_report, render_json, render_summary
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
    past = parser.add_mutually_exclusive_group()
    past.add_argument(
        "--as-of", metavar="DATE", type=parse_cutoff,
        help="the books as they stood at this business date (the end of that day in each"
        " tenant's time zone), local time (2026-03-31T12:00) or instant (...Z): events"
        " whose business time is at or before it (replayed in memory; the store is not"
        " changed)",
    )
    past.add_argument(
        "--recorded-as-of", metavar="INSTANT", type=parse_instant,
        help="the report from the events the ledger had recorded at or before this instant,"
        " e.g. 2026-01-31T23:59:59Z (replayed in memory; the store is not changed)",
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


def parse_cutoff(text: str) -> BusinessCutoff:
    try:
        return BusinessCutoff.parse(text)
    except CutoffError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    with closing(open_store(store_url_from(args.store), create=False)) as ledger:
        try:
            report: Report
            if args.as_of is not None:
                report = business_as_of_report(ledger, args.as_of, args.tenant).report
            elif args.recorded_as_of is not None:
                report = as_of_report(ledger, args.recorded_as_of, args.tenant)
            else:
                report = current_report(ledger, args.tenant)
        except ProjectionError as exc:
            raise CliError(f"read models could not be brought up to date: {exc}") from exc
    if args.json:
        sys.stdout.write(render_json(report))
    else:
        sys.stdout.write(_business_heading(report) + render_summary(report)
                         + _debt_lines(report))
    return 0


def _business_heading(report: Report) -> str:
    """Which instant each tenant's figures stand at (business views only)."""
    as_of = report.get("as_of")
    if as_of is None:
        return ""
    lines = [f"As of {as_of['asked']} in business time (events that happened by then):"]
    lines += [f"  {tenant:<16} until {cut['until']} ({cut['time_zone']})"
              for tenant, cut in as_of["tenants"].items()]
    return "\n".join(lines) + "\n"


def _debt_lines(report: Report) -> str:
    debts = report.get("debts")
    if debts is None:
        return ""
    lines = [f"Debts: {len(debts)} drivers owe (outstanding; of it overdue)"]
    lines += [f"  {d['tenant_id']:<16} {d['driver_id']:<22} {d['outstanding']:>12}"
              f" {d['currency']}  overdue {d['overdue']}" for d in debts]
    return "\n".join(lines) + "\n"
