"""`ledger demo [--json] [--out DIR]`: a day of one operator, end to end, with no servers.

1. simulate a day with every billing model the ledger runs (DEMO_SESSIONS sessions, a fixed
   seed, faults on so deduplication and dead-lettering show), vouchers included (a
   campaign of session credit, a partner's balance codes, redemptions, three refused), and
   write it to DIR/day.jsonl;
2. ingest it into an embedded SQLite store, DIR/evledger.db, exactly as `ledger ingest`
   does (same functions);
3. print what finance looks at: `ledger report`'s summary (sessions by billing model,
   invoices and receipts by series, wallet balances, journal check, dead letters with their
   reasons), preceded by what was simulated and followed by vouchers (sessions paid with
   session credit, the partner's invoice, refusals with their reasons) and drivers'
   outstanding and overdue debt; with `--json`, exactly what `ledger report --json` prints
   for that store.

DIR defaults to a fresh temporary directory, so two runs never mix; it is kept, and named
on stderr, so `ledger report --store sqlite:///DIR/evledger.db` can look again. Re-running
with the same --out gives the same state (the file is the same bytes; ingest is idempotent).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from consumers.cli import CliError
from consumers.commands.ingest import ingest_file, source_for
from consumers.event_file import write_event_file
from consumers.simulation.scenario import SimulationOptions, simulate
from consumers.simulation.vouchers import VoucherPlan
from consumers.store import open_store
from ledger.application import BatchResult, Ledger
from ledger.domain.driver_account import DriverAccount
from ledger.domain.money import Money
from projections import sql
from projections.database import open_read_model
from projections.report import (
    SUMMARY_LINES_MAX,
    Report,
    current_report,
    render_json,
    render_summary,
)
from projections.values import amount_from_minor

DEMO_SESSIONS = 200
DEMO_SEED = 20260310
EVENT_FILE_NAME = "day.jsonl"
STORE_FILE_NAME = "evledger.db"
RECEIVABLE_PREFIX = "driver_receivable:"
# Driver accounts read for the overdue list; a demo day has a few dozen drivers.
DRIVER_ACCOUNTS_MAX = 100_000

_DEBT_TOPIC = get_topic(vars(DriverAccount)["DebtBecameOverdue"])


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="simulate a day under every billing model, ingest it, print the finance view",
        description="The main job on the embedded default, with no servers: simulate a day"
        " of one operator's network where every billing model runs side by side, ingest it"
        " into SQLite, and print what finance would look at.",
    )
    parser.add_argument("--json", action="store_true",
                        help="print exactly `ledger report --json` for the demo's store")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="keep the event file and the store here (default: a fresh"
                        " temporary directory)")
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class DemoRun:
    directory: Path
    event_file: Path
    store_url: str
    events: int
    simulate_s: float
    ingest_s: float
    ingested: BatchResult
    report: Report
    owed: list[tuple[str, str, str, str]]  # tenant, driver, amount, currency
    overdue: dict[tuple[str, str], str]  # (tenant, driver) -> overdue amount
    vouchers: list[VoucherPlan]  # what was simulated; what the ledger did is in `report`


def run(args: argparse.Namespace) -> int:
    directory = _directory(args.out)
    demo = run_demo(directory)
    if args.json:
        sys.stdout.write(render_json(demo.report))
    else:
        sys.stdout.write(render_text(demo))
    sys.stdout.flush()
    print(f"ledger demo: event file {demo.event_file}; store {demo.store_url}", file=sys.stderr)
    return 0


def _directory(out: Path | None) -> Path:
    if out is None:
        return Path(tempfile.mkdtemp(prefix="evledger-demo-"))
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create {out}: {exc}") from exc
    return out


def run_demo(directory: Path) -> DemoRun:
    event_file = directory / EVENT_FILE_NAME
    store_url = f"sqlite:///{(directory / STORE_FILE_NAME).resolve()}"
    started_s = time.monotonic()
    simulated = simulate(SimulationOptions(sessions=DEMO_SESSIONS, seed=DEMO_SEED, faults=True))
    write_event_file(event_file, simulated.lines)
    simulate_s = time.monotonic() - started_s
    started_s = time.monotonic()
    with closing(open_store(store_url)) as ledger:
        ingested = ingest_file(ledger, event_file, source_for(event_file))
        report = current_report(ledger)
        owed = outstanding_receivables(ledger)
        overdue = overdue_debts(ledger)
    return DemoRun(
        directory=directory, event_file=event_file, store_url=store_url,
        events=len(simulated.lines), simulate_s=simulate_s,
        ingest_s=time.monotonic() - started_s, ingested=ingested, report=report,
        owed=owed, overdue=overdue, vouchers=simulated.vouchers,
    )


def overdue_debts(ledger: Ledger) -> dict[tuple[str, str], str]:
    """(tenant, driver) -> amount, for every driver whose debt is overdue (sessions refused)."""
    notifications = ledger.recorder.select_notifications(
        start=1, limit=DRIVER_ACCOUNTS_MAX, topics=[_DEBT_TOPIC]
    )
    found: dict[tuple[str, str], str] = {}
    for account_id in sorted({UUID(str(n.originator_id)) for n in notifications}, key=str):
        account: DriverAccount = ledger.repository.get(account_id)
        assert isinstance(account, DriverAccount)
        if account.has_overdue_debt:
            total = sum(account.overdue.values())
            found[(account.tenant_id, account.driver_id)] = str(total)
    return found


def outstanding_receivables(ledger: Ledger) -> list[tuple[str, str, str, str]]:
    """(tenant, driver, amount, currency) each driver owes: their receivable's balance."""
    with closing(open_read_model(ledger)) as db:
        rows = db.query(sql.SELECT_ACCOUNT_BALANCES.text)
    owed = [
        (str(tenant), str(account)[len(RECEIVABLE_PREFIX):],
         amount_from_minor(int(minor), str(currency)), str(currency))
        for tenant, account, currency, minor in rows
        if str(account).startswith(RECEIVABLE_PREFIX) and int(minor) != 0
    ]
    return sorted(owed)


def render_text(demo: DemoRun) -> str:
    ingested = demo.ingested
    lines = [
        "evledger demo: one simulated operator day, every billing model side by side,"
        " partners, plans and vouchers included",
        f"  simulated {DEMO_SESSIONS} sessions (seed {DEMO_SEED}, with faults):"
        f" {demo.events} events in {demo.simulate_s:.1f} s -> {demo.event_file}",
        f"  ingested into {demo.store_url} in {demo.ingest_s:.1f} s: applied"
        f" {ingested.applied}, duplicates skipped {ingested.duplicates}, dead-lettered"
        f" {ingested.dead_lettered}, refused {ingested.refused}, commands issued"
        f" {ingested.commands_issued}",
        "",
        render_summary(demo.report).rstrip("\n"),
        *render_sponsors(demo.report),
        *render_tariffs(demo.report),
        *render_vouchers(demo),
        *render_refunds(demo.report),
    ]
    lines.append(
        f"Outstanding driver debt: {len(demo.owed)} drivers (sessions billed, card payment"
        " not collected yet; overdue = every retry failed, new sessions refused)"
    )
    for tenant, driver, amount, currency in demo.owed:
        overdue = demo.overdue.get((tenant, driver))
        status = f"overdue {overdue}" if overdue else "retrying"
        lines.append(f"  {tenant:<16} {driver:<22} {amount:>12} {currency}  {status}")
    return "\n".join(lines) + "\n"


def render_sponsors(report: dict[str, Any]) -> list[str]:
    """Partners and plans: each partner period's pool, sessions split between a sponsor and
    the driver, and the settlement and subscription invoices."""
    lines = [f"Corporate accounts: {len(report['corporate_accounts'])} partner periods"]
    for a in report["corporate_accounts"]:
        lines.append(
            f"  {a['tenant_id']:<16} {a['partner_id']:<20} {a['period_start']} .."
            f" {a['period_end']}  pool {a['pool_used']} of {a['pool_cap']} {a['currency']}"
        )
    sponsored = [s for s in report["sessions"]
                 if s["billing_model"] in SPONSORED_MODELS]
    lines.append(f"Sessions under a partner or a plan: {len(sponsored)}")
    for s in sponsored[:SUMMARY_LINES_MAX]:
        shares = " + ".join(f"{share['payer']} {share['amount_incl_vat']}"
                            for share in s["charged_to"])
        lines.append(f"  {s['tenant_id']:<16} {s['billing_model']:<22}"
                     f" {s['total_incl_vat']:>8} {s['currency']} = {shares}")
    documents = [i for i in report["invoices"]
                 if i["kind"] in ("corporate_settlement", "subscription_invoice")]
    lines.append(f"Settlement and subscription invoices: {len(documents)}")
    for i in documents:
        lines.append(
            f"  {i['tenant_id']:<16} {i['number']:<10} {i['bill_to']:<20}"
            f" {i['total_excl_vat']:>8} + VAT {i['total_vat']} = {i['total_incl_vat']}"
            f" {i['currency']} ({i['kind']})"
        )
    return lines


def render_refunds(report: dict[str, Any]) -> list[str]:
    """Each refund: the session, who got what back, its credit notes, the reason."""
    lines = [f"Refunded sessions: {len(report['refunds'])} (credit notes reference the receipt they"
             " correct)"]
    for r in report["refunds"]:
        to = " + ".join(f"{share['payer']} {share['id']} {share['amount_incl_vat']}"
                        for share in r["refunded_to"])
        lines.append(f"  {r['tenant_id']:<16} {r['session_id']:<24} {r['amount']:>8}"
                     f" {r['currency']} to {to}: {', '.join(r['credit_notes'])}"
                     f" ({r['reason']})")
    return lines


def render_tariffs(report: dict[str, Any]) -> list[str]:
    """Each published tariff in plain words, as drivers and operations are shown it."""
    lines = [f"Tariffs published: {len(report['tariffs'])} (in plain words; warnings if any)"]
    for t in report["tariffs"]:
        lines.append(f"  {t['tenant_id']:<16} {t['tariff_id']} from {t['effective_at']}")
        lines.extend(f"      {line}" for line in t["explanation"])
        lines.extend(f"      ! {warning}" for warning in t["warnings"])
    return lines


SPONSORED_MODELS = frozenset({"corporate", "subscription_prepaid", "subscription_postpaid"})


def render_vouchers(demo: DemoRun) -> list[str]:
    """Vouchers: what was issued and asked, sessions paid with credit, the partner's
    invoices, and every refusal with its reason."""
    report = demo.report
    batches = [b for plan in demo.vouchers for b in plan.batches]
    campaign = [b for b in batches if b.partner_id is None]
    bought = [b for b in batches if b.partner_id is not None]
    asked = sum(len(plan.redemptions) for plan in demo.vouchers)
    refused = [r for r in report["refusals"]["items"]
               if r["type"] == "VoucherRedemptionRequested"]
    lines = [
        f"Vouchers: {len(batches)} batches ({len(campaign)} campaign, {len(bought)} bought by"
        f" a partner), {sum(len(b.codes) for b in batches)} codes; {asked} redemptions"
        f" asked, {asked - len(refused)} redeemed, {len(refused)} refused",
    ]
    for b in batches:
        where = f" at {', '.join(b.site_location_ids)}" if b.site_location_ids else ""
        buyer = f", bought by {b.partner_id}" if b.partner_id else ", campaign"
        lines.append(
            f"  {b.batch_id:<24} {len(b.codes):>3} x {b.amount_per_code} {b.kind}{where},"
            f" expires {b.expires_at.isoformat().replace('+00:00', 'Z')}{buyer}"
        )
    paid = [s for s in report["sessions"]
            if any(share["payer"] == "voucher" for share in s["charged_to"])]
    by_voucher = sum((Decimal(share["amount_incl_vat"]) for s in paid
                      for share in s["charged_to"] if share["payer"] == "voucher"), Decimal(0))
    total = sum((Decimal(s["total_incl_vat"]) for s in paid), Decimal(0))
    currency = paid[0]["currency"] if paid else "EUR"
    lines.append(
        f"Sessions paid with session credit: {len(paid)}, vouchers paid"
        f" {Money(by_voucher, currency).to_str()} of {Money(total, currency).to_str()}"
        f" {currency} incl. VAT"
    )
    for s in paid[:SUMMARY_LINES_MAX]:
        shares = " + ".join(f"{share['payer']} {share['id']} {share['amount_incl_vat']}"
                            for share in s["charged_to"])
        lines.append(f"  {s['tenant_id']:<16} {s['billing_model']:<18}"
                     f" {s['total_incl_vat']:>8} {s['currency']} = {shares}")
    partner_invoices = [i for i in report["invoices"] if i["kind"] == "voucher_batch"]
    lines.append(f"Voucher batches invoiced to partners: {len(partner_invoices)}")
    for i in partner_invoices:
        lines.append(
            f"  {i['tenant_id']:<16} {i['number']:<10} {i['bill_to']:<20}"
            f" {i['total_excl_vat']:>8} + VAT {i['total_vat']} = {i['total_incl_vat']}"
            f" {i['currency']} ({i['reference']})"
        )
    refusals = report["refusals"]["items"]
    lines.append(f"Refused, with reasons: {len(refusals)}")
    for r in refusals[:SUMMARY_LINES_MAX]:
        lines.append(f"  {r['tenant_id']:<16} {r['type']:<28} {r['reason']}")
    return lines
