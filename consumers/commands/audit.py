"""`ledger audit replay|verify|seal [--store URL]`: the auditor's checks (docs/audit.md).

- `replay`: rebuild every read model from the event log into a scratch schema (PostgreSQL)
  or scratch file (SQLite) and compare it with the live read models, table by table.
- `verify [--expect-head HASH]`: walk the hash chain over the stored events; name every
  edited, deleted, inserted or moved event, and every row of the index of applied event ids
  that differs from the chained events it comes from; print the chain's head.
- `seal`: start the chain on a store written before it existed (links every stored event as
  it stands now).
- `whatif --events FILE --from DATE --to DATE --config FILE [--json]`: re-bill a past period
  under a proposed configuration in scratch stores and print the differences per billing
  model, driver and partner (consumers/rebilling.py); the real store is only read.

Exit status: 0 equal / intact (whatif: always, whatever the differences), 1 differences /
breaks found, 2 usage or any other error.
The verdict is the last line on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import Any

from consumers.chained_store import ChainAlreadyStarted, ChainStore
from consumers.cli import CliError
from consumers.commands.ingest import check_readable
from consumers.processed_index import index_breaks
from consumers.rebilling import Rebilled, rebill
from consumers.store import open_store, redacted_url, store_url_from
from ledger.event_chain import Link, Walk, find_breaks
from projections.comparison import differences
from projections.database import open_read_model
from projections.replay import replay_and_read
from projections.runner import PageApplied
from projections.values import ProjectionError

# Differences or breaks printed one per line; the rest are counted. An auditor needs the
# first ones to start looking, and a broken store must not flood the terminal.
FINDINGS_SHOWN_MAX = 50
# A progress line on stderr every this many links (a few seconds of work each).
VERIFY_PROGRESS_LINKS = 10_000
_HASH = re.compile(r"^[0-9a-f]{64}$")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "audit", help="auditor's checks: replay the read models, verify the event chain",
        description="Auditor's checks on a store. Exit 0: equal / intact; 1: differences or"
        " breaks found; 2: usage or other error.",
    )
    checks = parser.add_subparsers(dest="check", metavar="CHECK", required=True)
    for name, short, description, handler in (
        ("replay", "rebuild every read model from the events and compare with the live",
         "Project the whole event log into a scratch schema or file, up to the live read"
         " models' position, and compare every read-model table row by row.", run_replay),
        ("verify", "check the hash chain over the stored events",
         "Recompute the hash chain over every stored event and name each event that was"
         " edited, deleted, inserted or moved since it was written.", run_verify),
        ("seal", "start the hash chain on a store written before it existed",
         "Link every stored event into the hash chain, trusting them as they are now."
         " Refused on a store that has a chain.", run_seal),
    ):
        check = checks.add_parser(name, help=short, description=description)
        check.add_argument(
            "--store", metavar="URL",
            help="sqlite:///PATH or postgresql://USER@HOST/DB (default: $LEDGER_STORE, else"
            " sqlite:///./evledger.db)",
        )
        if name == "verify":
            check.add_argument(
                "--expect-head", metavar="HASH", type=parse_hash,
                help="a head printed by an earlier verify: the chain must still pass through it",
            )
        check.set_defaults(handler=handler)
    _register_whatif(checks)


def _register_whatif(checks: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    whatif = checks.add_parser(
        "whatif", help="re-bill a past period under a proposed configuration (scratch stores)",
        description="Re-bill the sessions that ended in --from..--to (local days of each"
        " tenant) under the configuration in --config, made effective at the period's start,"
        " in scratch stores, and print the differences per billing model, driver and"
        " partner. The store's inbound messages come from --events, the event file it was"
        " filled from (checked against the store). The store is only read. Exit 0.",
    )
    whatif.add_argument(
        "--store", metavar="URL",
        help="sqlite:///PATH or postgresql://USER@HOST/DB (default: $LEDGER_STORE, else"
        " sqlite:///./evledger.db)",
    )
    whatif.add_argument("--events", metavar="FILE", type=Path, required=True,
                        help="the event file (JSON lines) the store was filled from")
    whatif.add_argument("--from", dest="first_day", metavar="DATE", type=parse_day,
                        required=True, help="the period's first local day, YYYY-MM-DD")
    whatif.add_argument("--to", dest="last_day", metavar="DATE", type=parse_day,
                        required=True, help="the period's last local day, YYYY-MM-DD")
    whatif.add_argument("--config", metavar="FILE", type=Path, required=True,
                        help="the proposed configuration: event lines of configuration"
                        " messages (TariffPublished, PlanPublished, PartnerConfigured, ...)")
    whatif.add_argument("--json", action="store_true", help="print the differences as JSON")
    whatif.set_defaults(handler=run_whatif)


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text) if len(text) == len("2026-03-31") else _not_a_day(text)
    except ValueError:
        return _not_a_day(text)


def _not_a_day(text: str) -> date:
    raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}")


def parse_hash(text: str) -> str:
    if not _HASH.match(text.lower()):
        raise argparse.ArgumentTypeError(f"not a chain hash (64 hex digits): {text!r}")
    return text.lower()


def _progress(page: PageApplied, log_end: int) -> None:
    print(f"ledger audit replay: replayed to notification {page.last_id} of {log_end}",
          file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- replay
def run_replay(args: argparse.Namespace) -> int:
    store_url = store_url_from(args.store)
    with closing(open_store(store_url)) as ledger, closing(open_read_model(ledger)) as db:
        log_end = ledger.recorder.max_notification_id() or 0
        try:
            result = replay_and_read(ledger, db, lambda page: _progress(page, log_end))
        except ProjectionError as exc:
            raise CliError(f"replay stopped: {exc}") from exc
    print(f"store {redacted_url(store_url)}: live read models at notification"
          f" {result.position}, event log at {result.log_end}")
    if result.position < result.log_end:
        print(f"(the live read models are {result.log_end - result.position} events behind the"
              f" log; both sides are compared at notification {result.position})")
    found = _print_bounded(str(d) for d in differences(result.live, result.replayed))
    rows = sum(len(table.rows) for table in result.live.values())
    if found:
        print(f"VERDICT: DIFFERENT: {found} differences between the live read models and"
              f" the replay of {result.events} events")
        return 1
    print(f"VERDICT: EQUAL: {len(result.live)} read-model tables, {rows} rows, equal to the"
          f" replay of {result.events} events")
    return 0


def _print_bounded(lines: Iterator[str]) -> int:
    """Print at most FINDINGS_SHOWN_MAX lines; return how many there were in all."""
    count = 0
    for count, line in enumerate(lines, start=1):
        if count <= FINDINGS_SHOWN_MAX:
            print(line)
    if count > FINDINGS_SHOWN_MAX:
        print(f"... and {count - FINDINGS_SHOWN_MAX} more")
    return count


# ---------------------------------------------------------------------------- verify
def run_verify(args: argparse.Namespace) -> int:
    store_url = store_url_from(args.store)
    with closing(open_store(store_url)) as ledger:
        chain = ChainStore(ledger.recorder)
        # Everything at or below this id had committed, links included, before we read it:
        # writers committing meanwhile only add ids above it.
        stop = chain.max_notification_id()
        walk = Walk()
        seen_expected: list[Link] = []

        def links() -> Iterator[Link]:
            for count, link in enumerate(chain.links(stop), start=1):
                if args.expect_head is not None and link.hash.hex() == args.expect_head:
                    seen_expected.append(link)
                if count % VERIFY_PROGRESS_LINKS == 0:
                    print(f"ledger audit verify: checked to notification {link.notification_id}"
                          f" of {stop}", file=sys.stderr, flush=True)
                yield link

        found = _print_bounded(str(b) for b in find_breaks(chain.records(stop), links(), walk))
        # The index of applied event ids is no event: checked against the chained
        # ProcessedBatch events it comes from (consumers/processed_index.py).
        found += _print_bounded(
            index_breaks(chain.processed_batches(stop), chain.processed_rows, stop))
    print(f"store {redacted_url(store_url)}: {walk.records} events, {walk.links} links")
    if walk.head is None:
        if walk.records:
            print("VERDICT: UNSEALED: the store has no hash chain yet; run `ledger audit seal`"
                  " (it trusts the events as they are now)")
            return 1
        print("VERDICT: INTACT: the store holds no events yet")
        return 0
    print(f"head: notification {walk.head.notification_id} {walk.head.hash.hex()}")
    if args.expect_head is not None and not seen_expected:
        print(f"expected head {args.expect_head} is not in the chain: the history before it"
              " was rewritten, or the head was taken from another store")
        found += 1
    elif seen_expected:
        print(f"expected head found at notification {seen_expected[0].notification_id}")
    if found:
        print(f"VERDICT: BROKEN: {found} breaks in the chain")
        return 1
    print(f"VERDICT: INTACT: {walk.records} events chained, head at notification"
          f" {walk.head.notification_id}")
    return 0


# ---------------------------------------------------------------------------- seal
def run_seal(args: argparse.Namespace) -> int:
    store_url = store_url_from(args.store)
    with closing(open_store(store_url)) as ledger:
        try:
            linked, head = ChainStore(ledger.recorder).seal()
        except ChainAlreadyStarted as exc:
            raise CliError(f"{exc}: `ledger audit verify` checks it") from exc
    if head is None:
        print("sealed: the store holds no events; every event written from now on is linked")
        return 0
    print(f"sealed: {linked} events linked; head: notification {head.notification_id}"
          f" {head.hash.hex()}")
    return 0


# ---------------------------------------------------------------------------- whatif
def run_whatif(args: argparse.Namespace) -> int:
    for path in (args.events, args.config):
        check_readable(path)
    result = rebill(store_url_from(args.store), args.events, args.config, args.first_day,
                    args.last_day)
    if args.json:
        print(json.dumps(_whatif_document(args, result), sort_keys=True, indent=2))
        return 0
    for line in _whatif_lines(args, result):
        print(line)
    return 0


def _whatif_document(args: argparse.Namespace, result: Rebilled) -> dict[str, Any]:
    return {
        "period": {"from": str(args.first_day), "to": str(args.last_day), "tenants": {
            tenant: {"start": _utc(p.start), "until": _utc(p.until)}
            for tenant, p in sorted(result.periods.items())}},
        "proposal": [{"type": m.type_name(), "tenant_id": m.tenant_id,
                      "event_id": m.event_id} for m in result.proposal],
        **result.differences,
    }


def _utc(moment: Any) -> str:
    return str(moment.isoformat()).replace("+00:00", "Z")


def _whatif_lines(args: argparse.Namespace, result: Rebilled) -> Iterator[str]:
    differences = result.differences
    yield (f"period {args.first_day} .. {args.last_day} (sessions that ended in it), under"
           f" {len(result.proposal)} proposed configuration message(s) from {args.config}")
    for tenant, period in sorted(result.periods.items()):
        yield f"  {tenant:<16} {_utc(period.start)} .. {_utc(period.until)}"
    for title, name in (("billing model", "billing_model"), ("driver", "driver_id"),
                        ("partner", "partner_id")):
        rows = differences[f"by_{name.removesuffix('_id')}"]
        changed = [r for r in rows if r["difference"].strip("0.-") or
                   r["sessions_before"] != r["sessions_after"]]
        yield f"per {title}: {len(changed)} of {len(rows)} changed"
        for r in changed:
            yield (f"  {r['tenant_id']:<16} {r[name]:<22} {r['sessions_before']:>5} ->"
                   f" {r['sessions_after']:<5} {r['before']:>12} -> {r['after']:>12}"
                   f"  {r['difference']:>12} {r['currency']}")
    sessions = differences["sessions"]
    verdict = "CHANGED" if sessions["changed"] else "UNCHANGED"
    yield (f"VERDICT: {verdict}: {sessions['changed']} of {sessions['before']} sessions of the"
           " period billed differently; the real store was only read")
