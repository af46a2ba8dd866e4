"""Re-billing a past period under a proposed configuration, in scratch stores: what
`ledger audit whatif` runs (docs/audit.md).

The store keeps what the ledger made of each inbound message, not the message itself (a
processed-message marker holds only its digest), so the messages come from the event file
the store was filled from (`--events`: the Kafka topics' content, or what `ingest` read).
1. Read the proposal (`--config`): configuration messages, one event line each. Each is
   made effective at the start of the period in its tenant's zone (its `effective_at` and
   `occurred_at` set to that instant; or just after the history's version of the same
   thing, when that takes effect later), so it governs every session started in the period
   and, as configuration always does, none started before. A configuration change of the
   history read after the insertion point that takes effect later in the period still
   does, from then on.
2. Ingest the event file as it is into scratch store A, and the event file with the
   proposal inserted before its first message of the period into scratch store B (scratch
   SQLite files in a temporary directory, removed afterwards).
3. Check that A's books are the real store's (replayed in memory from the real store's
   events, which are only read): otherwise the event file is not that store's history and
   the comparison would say nothing about it.
4. Compare A and B over the period (projections/bill_differences.py).
Nothing is written to the real store: it is opened, read and closed.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from consumers.cli import CliError
from consumers.commands.ingest import ingest_file, source_for
from consumers.event_file import event_line_for, read_event_file, write_event_file
from consumers.store import open_store
from ledger.domain.billing_calendar import local_day_end
from ledger.domain.errors import InvalidMessage
from ledger.handlers.config import CONFIG_KINDS
from ledger.messages import Configuration, Envelope, TenantConfigured, parse_message
from projections.as_of import as_of_report
from projections.bill_differences import Period, bill_differences
from projections.business_as_of import BusinessCutoff, tenant_cutoff
from projections.report import Report, current_report

# The report's sections that are the books; dead letters and refusals name their source's
# positions, which differ between the real store's transport and a file.
BOOKS_SECTIONS = ("sessions", "invoices", "wallets", "corporate_accounts", "journal")
# A proposal is a handful of configuration changes, not a history.
PROPOSAL_LINES_MAX = 1_000
# The real store replayed to its end (recording time far after any event).
END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Rebilled:
    periods: dict[str, Period]
    proposal: list[Configuration]
    differences: dict[str, Any]


def read_proposal(path: Path) -> list[Configuration]:
    """Step 1's input: every line a configuration message; anything else is refused."""
    found: list[Configuration] = []
    try:
        for line in read_event_file(path):
            if line.line_number > PROPOSAL_LINES_MAX:
                raise CliError(f"--config {path}: more than {PROPOSAL_LINES_MAX} lines")
            if line.error is not None:
                raise CliError(f"--config {path} line {line.line_number}: {line.error}")
            try:
                message = parse_message(line.type_name, line.payload)
            except InvalidMessage as exc:
                raise CliError(f"--config {path} line {line.line_number}: {exc}") from exc
            if not isinstance(message, Configuration):
                raise CliError(f"--config {path} line {line.line_number}: a"
                               f" {line.type_name} is not configuration")
            found.append(message)
    except OSError as exc:
        raise CliError(f"--config {path} could not be read: {exc}") from exc
    if not found:
        raise CliError(f"--config {path} holds no configuration")
    return found


def _messages(events: Path) -> Iterator[tuple[str, Envelope | None]]:
    """Each line of the event file as read, with its message (None: not a message)."""
    for line in read_event_file(events):
        try:
            message = None if line.error else parse_message(line.type_name, line.payload)
        except InvalidMessage:
            message = None
        yield line.raw, message


def periods_of(events: Path, first_day: date, last_day: date) -> dict[str, Period]:
    """Each tenant's period: its local days first_day..last_day, in the zone of its
    TenantConfigured in force then (as the as-of views read zones)."""
    settings: dict[str, list[tuple[datetime, str, str, str]]] = defaultdict(list)
    for _raw, message in _messages(events):
        if isinstance(message, TenantConfigured):
            settings[message.tenant_id].append((
                message.effective_at, message.event_id, message.time_zone, message.currency))
    periods = {}
    for tenant_id, versions in settings.items():
        last = tenant_cutoff(BusinessCutoff(str(last_day), day=last_day), versions)
        start = local_day_end(first_day - timedelta(days=1), last.time_zone)
        periods[tenant_id] = Period(start=start, until=last.until)
    return periods


def _effective(message: Configuration, at: datetime) -> str:
    return event_line_for(message.model_copy(update={"effective_at": at, "occurred_at": at}))


ConfigKey = tuple[str, str, str]  # (tenant, kind, natural key), as the ledger stores it


def _config_key(message: Configuration) -> ConfigKey:
    kind, field_name = CONFIG_KINDS[type(message)]
    return message.tenant_id, kind, str(getattr(message, field_name))


def proposed_lines(events: Path, proposal: list[Configuration],
                   periods: dict[str, Period]) -> Iterator[str]:
    """Step 2: the event file with the proposal inserted before its first message of the
    period that is not configuration. Each proposed message takes effect at the period's
    start; or, if the history read before it has a version of the same thing (the same
    tariff, partner, ...) taking effect later, just after that one (effective-dated
    versions are ordered by time: the proposal must be the one in force when billing
    starts); and never before its tenant's own configuration (the ledger needs the tenant
    in force to take it)."""
    unknown = sorted({m.tenant_id for m in proposal} - periods.keys())
    if unknown:
        raise CliError(f"--config: tenant {unknown[0]!r} is not in the event file")
    period_start = min(p.start for p in periods.values())
    latest: dict[ConfigKey, datetime] = {}
    pending = True
    for raw, message in _messages(events):
        if isinstance(message, Configuration):
            key = _config_key(message)
            latest[key] = max(message.effective_at, latest.get(key, message.effective_at))
        elif pending and message is not None and message.business_time() >= period_start:
            yield from _proposal_lines(proposal, periods, latest)
            pending = False
        yield raw
    if pending:
        yield from _proposal_lines(proposal, periods, latest)


def _proposal_lines(proposal: list[Configuration], periods: dict[str, Period],
                    latest: dict[ConfigKey, datetime]) -> Iterator[str]:
    for message in proposal:
        effective_at = periods[message.tenant_id].start
        same = latest.get(_config_key(message))
        if same is not None and same >= effective_at:
            effective_at = same + timedelta(microseconds=1)
        tenant = latest.get((message.tenant_id, "tenant", message.tenant_id))
        if tenant is not None and tenant > effective_at:
            effective_at = tenant
        yield _effective(message, effective_at)


def _refused_proposal(report: Report, proposal: list[Configuration]) -> str | None:
    """Why the scratch ledger did not take a proposed message, or None if it took all."""
    ids = {m.event_id for m in proposal}
    for item in report["dead_letters"]["items"] + report["refusals"]["items"]:
        if item["event_id"] in ids:
            return f"{item['event_id']}: {item['reason']}"
    return None


def _scratch_books(events: Path, directory: Path, label: str) -> Report:
    store_url = f"sqlite:///{directory / (label + '.db')}"
    print(f"ledger audit whatif: re-billing {label} in a scratch store", file=sys.stderr,
          flush=True)
    with closing(open_store(store_url)) as ledger:
        # The source keeps the original file's name, so both runs name positions alike.
        ingest_file(ledger, events, source_for(events))
        return current_report(ledger)


def _books(report: Report) -> str:
    return json.dumps({name: report[name] for name in BOOKS_SECTIONS}, sort_keys=True)


def rebill(store_url: str, events: Path, proposal_path: Path, first_day: date,
           last_day: date) -> Rebilled:
    if first_day > last_day:
        raise CliError(f"--from {first_day} is after --to {last_day}")
    proposal = read_proposal(proposal_path)
    periods = periods_of(events, first_day, last_day)
    if not periods:
        raise CliError(f"--events {events}: no TenantConfigured, so no tenant and no period")
    with tempfile.TemporaryDirectory(prefix="evledger-whatif-") as scratch:
        directory = Path(scratch)
        proposed = directory / "proposed" / events.name
        proposed.parent.mkdir()
        write_event_file(proposed, proposed_lines(events, proposal, periods))
        before = _scratch_books(events, directory, "as-recorded")
        print("ledger audit whatif: reading the real store", file=sys.stderr, flush=True)
        with closing(open_store(store_url, create=False)) as ledger:
            real = as_of_report(ledger, END_OF_TIME)
        if _books(real) != _books(before):
            raise CliError(
                f"--events {events} is not the history of the store: re-ingested, its books"
                " differ from the store's (a file of another store, or only part of it?)")
        after = _scratch_books(proposed, directory, "proposed")
    refused = _refused_proposal(after, proposal)
    if refused is not None:
        raise CliError(f"--config: the ledger does not take the proposal: {refused}")
    return Rebilled(periods, proposal, bill_differences(before, after, periods))
