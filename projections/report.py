"""The finance report of CONTRACT.md, read from the read models, and its two renderings.

Deterministic: the same events give byte-identical JSON. Nothing in it depends on when or
how the events were recorded (no wall-clock times, no notification ids), lists are sorted
in Python by code point (databases sort text by locale), and the JSON is canonical
(`sort_keys=True, indent=2`, trailing newline).

Beyond the contract's minimum (additions are allowed): per session its currency, VAT,
driver, receipt, end and stop reason; per invoice its reference and issue time; the count
of sessions not settled yet; dead letters and refusals with their reasons; messages parked
until what they need arrives (`parked`, with what each waits for); outbound
commands counted by type; the journal's posting count and any unbalanced entry; refunds
with who got what back and their credit notes (which are also among the invoices, kind
`credit_note`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from eventsourcing.application import Application

from ledger.domain.inbox import CONFLICT_REASON_PREFIX
from ledger.domain.money import Money, currency_exponent
from projections import sql
from projections.database import ReadModelDatabase, open_read_model
from projections.runner import catch_up, ensure_schema
from projections.values import amount_from_minor

Report = dict[str, Any]

# The journal's sum when it has no postings at all: "0.00", as in the contract.
EMPTY_JOURNAL_SUM = "0.00"
# The human summary lists at most this many wallets and dead letters; the JSON lists all.
SUMMARY_LINES_MAX = 20


def _rows(db: ReadModelDatabase, statement: sql.Statement) -> list[tuple[Any, ...]]:
    return db.query(statement.text)


def _position_key(position: str) -> tuple[int, int | str]:
    """Line numbers and offsets sort as numbers; anything else after them, as text."""
    return (0, int(position)) if position.isdigit() else (1, position)


def build_report(db: ReadModelDatabase, tenant: str | None = None) -> Report:
    """The report of every tenant, or of `tenant` alone (its rows, counts and sums only;
    dead letters that no tenant could be read from belong to none and are left out)."""
    mine = _of_tenant(tenant)
    sessions, sessions_open = _sessions(db, mine)
    return {
        "sessions": sessions,
        "sessions_open": sessions_open,
        "invoices": _invoices(db, mine),
        "wallets": _wallets(db, mine),
        "corporate_accounts": _corporate_accounts(db, mine),
        "tariffs": _tariffs(db, mine),
        "journal": _journal(db, mine),
        "dead_letters": _dead_letters(db, mine),
        "refusals": _refusals(db, mine),
        "parked": _parked(db, mine),
        "refunds": _refunds(db, mine),
        "outbound_commands": _outbound_commands(db, mine),
    }


def current_report(ledger: Application[Any], tenant: str | None = None) -> Report:
    """The report of everything `ledger`'s store holds now (catches the read models up)."""
    db = open_read_model(ledger)
    try:
        ensure_schema(db)
        catch_up(ledger, db)
        return build_report(db, tenant)
    finally:
        db.close()


TenantFilter = Callable[[Any], bool]


def _of_tenant(tenant: str | None) -> TenantFilter:
    if tenant is None:
        return lambda _tenant_id: True
    return lambda tenant_id: tenant_id == tenant


def render_json(report: Report) -> str:
    return json.dumps(report, sort_keys=True, indent=2) + "\n"


# ---------------------------------------------------------------------------- sections
def _sessions(db: ReadModelDatabase, mine: TenantFilter) -> tuple[list[dict[str, Any]], int]:
    payers: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = defaultdict(list)
    for tenant_id, session_id, seq, payer, payer_id, amount in _rows(
        db, sql.SELECT_SESSION_PAYERS
    ):
        payers[(tenant_id, session_id)].append(
            (int(seq), {"payer": payer, "id": payer_id, "amount_incl_vat": amount})
        )
    settled: list[dict[str, Any]] = []
    open_count = 0
    for row in _rows(db, sql.SELECT_SESSIONS):
        (tenant_id, session_id, status, billing_model, driver_id, currency, total_excl_vat,
         total_vat, total_incl_vat, receipt_number, ended_at, stop_reason) = row
        if not mine(tenant_id):
            continue
        if status != "settled":
            open_count += 1
            continue
        settled.append(
            {
                "tenant_id": tenant_id,
                "session_id": session_id,
                "billing_model": billing_model,
                "currency": currency,
                "total_excl_vat": total_excl_vat,
                "total_vat": total_vat,
                "total_incl_vat": total_incl_vat,
                "charged_to": [
                    share for _, share in sorted(payers[(tenant_id, session_id)],
                                                 key=lambda item: item[0])
                ],
                "driver_id": driver_id,
                "receipt_number": receipt_number,
                "ended_at": ended_at,
                "stop_reason": stop_reason,
            }
        )
    settled.sort(key=lambda s: (s["tenant_id"], s["session_id"]))
    return settled, open_count


def _invoices(db: ReadModelDatabase, mine: TenantFilter) -> list[dict[str, Any]]:
    names = ("tenant_id", "number", "kind", "reference", "bill_to", "currency",
             "total_excl_vat", "total_vat", "total_incl_vat", "issued_at")
    invoices = [dict(zip(names, row, strict=True)) for row in _rows(db, sql.SELECT_INVOICES)
                if mine(row[0])]
    return sorted(invoices, key=lambda i: (i["tenant_id"], i["number"]))


def _wallets(db: ReadModelDatabase, mine: TenantFilter) -> list[dict[str, Any]]:
    wallets = [
        {
            "tenant_id": tenant_id,
            "driver_id": driver_id,
            "currency": currency,
            # Minus the postings: the wallet is our liability, credited when money comes in.
            "balance": amount_from_minor(-int(postings_minor), currency),
        }
        for tenant_id, driver_id, currency, postings_minor in _rows(
            db, sql.SELECT_WALLET_BALANCES
        )
        if mine(tenant_id)
    ]
    return sorted(wallets, key=lambda w: (w["tenant_id"], w["driver_id"]))


def _tariffs(db: ReadModelDatabase, mine: TenantFilter) -> list[dict[str, Any]]:
    """Each published tariff in plain words (issue 13), with its lint warnings."""
    found = [
        {"tenant_id": tenant, "tariff_id": tariff, "effective_at": effective_at,
         "language": language, "explanation": json.loads(explanation),
         "warnings": json.loads(warnings)}
        for tenant, tariff, effective_at, language, explanation, warnings
        in _rows(db, sql.SELECT_TARIFFS) if mine(tenant)
    ]
    return sorted(found, key=lambda t: (t["tenant_id"], t["tariff_id"], t["effective_at"]))


def _corporate_accounts(db: ReadModelDatabase, mine: TenantFilter) -> list[dict[str, Any]]:
    names = ("tenant_id", "partner_id", "period_start", "period_end", "currency",
             "pool_cap", "pool_used")
    accounts = [
        dict(zip(names, row, strict=True)) for row in _rows(db, sql.SELECT_CORPORATE_ACCOUNTS)
        if mine(row[0])
    ]
    return sorted(accounts, key=lambda a: (a["tenant_id"], a["partner_id"], a["period_start"]))


def _journal(db: ReadModelDatabase, mine: TenantFilter) -> dict[str, Any]:
    entries = sum(int(n) for t, n in _rows(db, sql.SELECT_JOURNAL_ENTRY_COUNT) if mine(t))
    sums = [(str(c), int(minor), int(n))
            for t, c, minor, n in _rows(db, sql.SELECT_POSTING_SUMS) if mine(t)]
    unbalanced = sorted(
        ({"tenant_id": t, "entry_id": e}
         for t, e in _rows(db, sql.SELECT_UNBALANCED_ENTRIES) if mine(t)),
        key=lambda u: (u["tenant_id"], u["entry_id"]),
    )
    return {
        "entries": entries,
        "postings": sum(n for _, _, n in sums),
        "sum_of_postings": sum_of_postings((currency, minor) for currency, minor, _ in sums),
        "unbalanced_entries": unbalanced,
    }


def sum_of_postings(minor_by_currency: Iterable[tuple[str, int]]) -> str:
    """The exact sum of every posting, shown at the finest exponent among the currencies.

    Each entry balances in its own currency, so the sum is zero however many currencies the
    tenants bill in; anything else is a broken journal and shows as such.
    """
    total = Decimal(0)
    finest: str | None = None
    for currency, minor in minor_by_currency:
        total += Decimal(minor).scaleb(-currency_exponent(currency))
        if finest is None or currency_exponent(currency) > currency_exponent(finest):
            finest = currency
    if finest is None:
        return EMPTY_JOURNAL_SUM
    return Money(total, finest).to_str()


def _dead_letters(db: ReadModelDatabase, mine: TenantFilter) -> dict[str, Any]:
    names = ("source", "position", "tenant_id", "event_id", "type", "key", "reason",
             "received_at")
    items = [dict(zip(names, row, strict=True)) for row in _rows(db, sql.SELECT_DEAD_LETTERS)
             if mine(row[2])]
    items.sort(key=lambda d: (d["source"], _position_key(d["position"])))
    # Of them, event ids that came again with another payload (reason: both digests).
    conflicts = sum(1 for d in items if str(d["reason"]).startswith(CONFLICT_REASON_PREFIX))
    return {"count": len(items), "conflicts": conflicts, "items": items}


def _refusals(db: ReadModelDatabase, mine: TenantFilter) -> dict[str, Any]:
    names = ("tenant_id", "event_id", "type", "subject", "reason", "refused_at")
    items = [dict(zip(names, row, strict=True)) for row in _rows(db, sql.SELECT_REFUSALS)
             if mine(row[0])]
    items.sort(key=lambda r: (r["tenant_id"], r["event_id"]))
    return {"count": len(items), "items": items}


def _parked(db: ReadModelDatabase, mine: TenantFilter) -> dict[str, Any]:
    """Messages waiting for what they need (ledger/parking.py), with what that is."""
    names = ("source", "position", "tenant_id", "event_id", "type", "key", "awaits",
             "reason", "occurred_at")
    items = [dict(zip(names, row, strict=True)) for row in _rows(db, sql.SELECT_PARKED)
             if mine(row[2])]
    items.sort(key=lambda d: (d["source"], _position_key(d["position"])))
    return {"count": len(items), "items": items}


def _refunds(db: ReadModelDatabase, mine: TenantFilter) -> list[dict[str, Any]]:
    """Each refund: the session, what went back to whom, the credit notes it issued."""
    found = [
        {"tenant_id": tenant_id, "refund_id": refund_id, "session_id": session_id,
         "currency": currency, "amount": amount, "reason": reason, "refunded_at": refunded_at,
         "refunded_to": json.loads(shares), "credit_notes": json.loads(credit_notes),
         "credit_cdr_id": credit_cdr_id}
        for (tenant_id, refund_id, session_id, currency, amount, reason, refunded_at, shares,
             credit_notes, credit_cdr_id) in _rows(db, sql.SELECT_REFUNDS)
        if mine(tenant_id)
    ]
    return sorted(found, key=lambda r: (r["tenant_id"], r["session_id"], r["refunded_at"] or "",
                                        r["refund_id"]))


def _outbound_commands(db: ReadModelDatabase, mine: TenantFilter) -> dict[str, Any]:
    by_type: dict[str, int] = defaultdict(int)
    for tenant_id, name, count in _rows(db, sql.SELECT_COMMAND_COUNTS):
        if mine(tenant_id):
            by_type[str(name)] += int(count)
    by_type = dict(by_type)
    return {"count": sum(by_type.values()), "by_type": by_type}


# ---------------------------------------------------------------------------- summary
def render_summary(report: Report) -> str:
    """What finance looks at first: sessions by billing model, invoices, balances, checks."""
    lines: list[str] = []
    sessions = report["sessions"]
    lines.append(f"Sessions settled: {len(sessions)} (not settled yet: {report['sessions_open']})")
    by_model: dict[tuple[str, str, str], list[Decimal]] = defaultdict(list)
    for s in sessions:
        by_model[(s["tenant_id"], s["billing_model"], s["currency"])].append(
            Decimal(s["total_incl_vat"])
        )
    for (tenant_id, model, currency), totals in sorted(by_model.items()):
        lines.append(
            f"  {tenant_id:<16} {model:<22} {len(totals):>6} sessions "
            f"{Money(sum(totals, Decimal(0)), currency).to_str():>12} {currency} incl. VAT"
        )
    invoices = report["invoices"]
    lines.append(f"Invoices and receipts: {len(invoices)}")
    by_kind: dict[tuple[str, str, str], list[Decimal]] = defaultdict(list)
    for i in invoices:
        by_kind[(i["tenant_id"], i["kind"], i["currency"])].append(Decimal(i["total_incl_vat"]))
    for (tenant_id, kind, currency), totals in sorted(by_kind.items()):
        lines.append(
            f"  {tenant_id:<16} {kind:<22} {len(totals):>6} documents "
            f"{Money(sum(totals, Decimal(0)), currency).to_str():>11} {currency} incl. VAT"
        )
    wallets = report["wallets"]
    lines.append(f"Wallets: {len(wallets)} (balance = minus the postings on wallet:<driver>)")
    for w in wallets[:SUMMARY_LINES_MAX]:
        lines.append(
            f"  {w['tenant_id']:<16} {w['driver_id']:<22} {w['balance']:>12} {w['currency']}"
        )
    if len(wallets) > SUMMARY_LINES_MAX:
        lines.append(f"  ... and {len(wallets) - SUMMARY_LINES_MAX} more (see --json)")
    journal = report["journal"]
    verdict = "balanced" if not journal["unbalanced_entries"] else "NOT BALANCED"
    lines.append(
        f"Journal: {journal['entries']} entries, {journal['postings']} postings, "
        f"sum of postings {journal['sum_of_postings']} ({verdict})"
    )
    dead = report["dead_letters"]
    lines.append(f"Dead letters: {dead['count']} (conflicting duplicates: {dead['conflicts']})")
    for d in dead["items"][:SUMMARY_LINES_MAX]:
        lines.append(f"  {d['source']}@{d['position']}: {d['reason']}")
    lines.append(f"Refusals: {report['refusals']['count']}")
    lines.append(f"Parked (waiting for what they need): {report['parked']['count']}")
    refunds = report["refunds"]
    if refunds:  # a day without refunds prints as before
        lines.append(f"Refunds: {len(refunds)} (credit notes: "
                     f"{sum(len(r['credit_notes']) for r in refunds)})")
    commands = report["outbound_commands"]["by_type"]
    listed = ", ".join(f"{name} {count}" for name, count in sorted(commands.items()))
    lines.append(f"Outbound commands: {report['outbound_commands']['count']}"
                 + (f" ({listed})" if listed else ""))
    return "\n".join(lines) + "\n"
