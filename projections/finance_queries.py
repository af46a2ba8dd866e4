"""What the finance desk reads: one tenant's documents, sessions, balances and journal.

Every function takes a `Query` already scoped to the tenant (`tenant_isolation.reader_scope`)
and the tenant id, and filters by that id itself as well. Amounts are decimal text in major
units, as in the report. Lists are sorted in Python by code point, then paged with an
opaque cursor (`paginate`).

Journal entries carry no booking date or document of their own. Each entry is linked to
what caused it through its id, which the ledger builds from natural keys
(`session:<tenant>:<session>`, `charge:<tenant>:top_up:<reference>`,
`capture:<tenant>:terminal:<reference>`, `voucher_batch:<tenant>:<batch>`,
`charge:<tenant>:partner_settlement:<number>` ...): the session (its receipt number and
end) or the document whose number, reference or customer the id names (its number and
issue time). An entry linked to neither (a balance voucher redeemed into a
wallet) has no date: it is in the undated part of the journal, never in a period's.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from ledger.domain.money import Money
from projections import finance_sql as q_sql
from projections.einvoice import (
    CREDIT_NOTE_KIND,
    EINVOICE_KINDS,
    EInvoiceError,
    EInvoiceSource,
)
from projections.invoice_parties import party_as_of
from projections.tenant_isolation import Query
from projections.values import amount_from_minor

# A page holds at most this many items: one page of the densest list (journal postings of a
# busy day) stays well under a megabyte of JSON and a fraction of a second to render.
PAGE_ITEMS_MAX = 500
PAGE_ITEMS_DEFAULT = 50
# A cursor is the last item's sort key; a longer one is not one we issued.
CURSOR_CHARS_MAX = 400
assert 0 < PAGE_ITEMS_DEFAULT <= PAGE_ITEMS_MAX

REVENUE_EXCLUDED_MODELS = frozenset({"open_access"})  # the operator's cost, not revenue
VAT_ACCOUNT_PREFIX = "vat_payable:"

T = TypeVar("T")


class FinanceQueryError(ValueError):
    """A request the finance queries cannot answer as asked (bad period, cursor, filter)."""


# ---------------------------------------------------------------------------- periods
@dataclass(frozen=True, slots=True)
class Period:
    """Days from `start` (inclusive) to `end` (exclusive), UTC; either side may be open."""

    start: date | None = None
    end: date | None = None

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> Period:
        period = cls(_day(start, "from"), _day(end, "to"))
        if period.start and period.end and period.start >= period.end:
            raise FinanceQueryError(f"empty period: from {start} is not before to {end}")
        return period

    @property
    def is_open(self) -> bool:
        return self.start is None and self.end is None

    def contains(self, instant: str | None) -> bool:
        if self.is_open:
            return True
        if not instant:
            return False  # undated: in no period
        day = date.fromisoformat(instant[:10])
        return (self.start is None or day >= self.start) and (self.end is None or day < self.end)


def _day(text: str | None, name: str) -> date | None:
    if text is None or text == "":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise FinanceQueryError(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from exc


# ---------------------------------------------------------------------------- pages
@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(key: Sequence[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[str]:
    if len(cursor) > CURSOR_CHARS_MAX:
        raise FinanceQueryError("cursor too long: use the next_cursor of a previous page")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise FinanceQueryError("malformed cursor: use the next_cursor of a previous page"
                                ) from exc
    if not isinstance(key, list) or not all(isinstance(part, str) for part in key):
        raise FinanceQueryError("malformed cursor: use the next_cursor of a previous page")
    return key


def paginate(items: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], list[str]],
             cursor: str | None, limit: int) -> Page:
    """Items after `cursor` in `key` order, at most `limit`; the cursor of the next page."""
    if not 1 <= limit <= PAGE_ITEMS_MAX:
        raise FinanceQueryError(f"limit must be between 1 and {PAGE_ITEMS_MAX}")
    ordered = sorted(items, key=key)
    if cursor is not None:
        after = decode_cursor(cursor)
        ordered = [item for item in ordered if key(item) > after]
    page = ordered[:limit]
    more = len(ordered) > limit
    return Page(page, encode_cursor(key(page[-1])) if more else None)


# ---------------------------------------------------------------------------- documents
DOCUMENT_COLUMNS = ("number", "kind", "reference", "bill_to", "currency", "total_excl_vat",
                    "total_vat", "total_incl_vat", "issued_at")


def documents(query: Query, tenant_id: str, period: Period = Period(),
              kind: str | None = None, customer: str | None = None) -> list[dict[str, Any]]:
    """Receipts, invoices (and credit notes, once issued) of the tenant, by number."""
    found = []
    for row in query(q_sql.TENANT_DOCUMENTS.text, {"tenant_id": tenant_id}):
        document = dict(zip(DOCUMENT_COLUMNS, row, strict=True))
        if kind and document["kind"] != kind:
            continue
        if customer and document["bill_to"] != customer:
            continue
        if period.contains(document["issued_at"]):
            found.append(document)
    return sorted(found, key=lambda d: d["number"])


def document(query: Query, tenant_id: str, number: str) -> dict[str, Any] | None:
    """One document with its lines; None when the tenant has no such number."""
    rows = query(q_sql.TENANT_DOCUMENT_LINES.text, {"tenant_id": tenant_id, "number": number})
    if not rows:
        return None
    head = next(d for d in documents(query, tenant_id) if d["number"] == number)
    head["lines"] = json.loads(rows[0][0])
    return head


# ---------------------------------------------------------------------------- e-invoices
SETTLEMENT_REFERENCE_PREFIX = "corporate:"  # corporate:<partner>:<period start>


def einvoice_source(query: Query, tenant_id: str, number: str) -> EInvoiceSource | None:
    """What the e-invoice of document `number` shows (projections/einvoice.py): the
    document, the tenant as seller and the customer as buyer as configured when it was
    issued, its dates in the tenant's time zone; None when the tenant has no such number."""
    found = document(query, tenant_id, number)
    if found is None:
        return None
    issued_at = datetime.fromisoformat(found["issued_at"])
    seller = _invoice_party(query, tenant_id, "tenant", tenant_id, issued_at)
    zone = ZoneInfo((seller or {}).get("time_zone") or "UTC")
    buyer = _invoice_party(query, tenant_id, "partner", found["bill_to"], issued_at)
    corrected = _corrected_invoice(query, tenant_id, found)
    return EInvoiceSource(
        document=found, seller_id=tenant_id, seller=seller, buyer_id=found["bill_to"],
        buyer=buyer, issue_date=issued_at.astimezone(zone).date(),
        period=_settled_period(query, tenant_id, corrected or found, zone),
        payment_terms=(buyer or {}).get("payment_terms"),
        corrects=None if corrected is None else (
            corrected["number"],
            datetime.fromisoformat(corrected["issued_at"]).astimezone(zone).date()),
    )


def _corrected_invoice(query: Query, tenant_id: str, found: dict[str, Any]
                       ) -> dict[str, Any] | None:
    """The C- or V- invoice a credit note corrects (its reference), or None."""
    if found["kind"] != CREDIT_NOTE_KIND:
        return None
    corrected = next((d for d in documents(query, tenant_id)
                      if d["number"] == found["reference"]), None)
    if corrected is None or corrected["kind"] not in EINVOICE_KINDS:
        return None
    return corrected


def _invoice_party(query: Query, tenant_id: str, kind: str, party_id: str,
                   at: datetime) -> dict[str, str | None] | None:
    rows = query(q_sql.TENANT_INVOICE_PARTY.text,
                 {"tenant_id": tenant_id, "party_kind": kind, "party_id": party_id})
    return party_as_of(rows, at)


def _settled_period(query: Query, tenant_id: str, found: dict[str, Any],
                    zone: ZoneInfo) -> tuple[date, date] | None:
    """A partner settlement's billing period, first and last day in the tenant's zone (its
    reference names the partner's period start; the corporate account has its end)."""
    if found["kind"] != "corporate_settlement":
        return None
    prefix = f"{SETTLEMENT_REFERENCE_PREFIX}{found['bill_to']}:"
    reference = str(found["reference"])
    if not reference.startswith(prefix):
        raise EInvoiceError(f"{found['number']}: reference {reference!r} names no period")
    start = datetime.fromisoformat(reference[len(prefix):])
    for partner_id, period_start, period_end, *_ in query(
        q_sql.TENANT_CORPORATE_ACCOUNTS.text, {"tenant_id": tenant_id}
    ):
        if partner_id == found["bill_to"] and datetime.fromisoformat(period_start) == start:
            # The end is the next period's first instant: the last day is the one before.
            last = datetime.fromisoformat(period_end) - timedelta(microseconds=1)
            return start.astimezone(zone).date(), last.astimezone(zone).date()
    raise EInvoiceError(f"{found['number']}: no corporate account of {found['bill_to']!r} "
                        f"for the period starting {start.isoformat()}")


# ---------------------------------------------------------------------------- sessions
SESSION_COLUMNS = ("session_id", "status", "billing_model", "driver_id", "location_id",
                   "charge_point_id", "currency", "total_excl_vat", "total_vat",
                   "total_incl_vat", "receipt_number", "ended_at", "stop_reason")


def sessions(query: Query, tenant_id: str, period: Period = Period(),
             billing_model: str | None = None) -> list[dict[str, Any]]:
    """Sessions with their payer split (`charged_to`, in the order the payers pay)."""
    payers: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
    for session_id, seq, payer, payer_id, amount in query(
        q_sql.TENANT_SESSION_PAYERS.text, {"tenant_id": tenant_id}
    ):
        payers[session_id].append(
            (int(seq), {"payer": payer, "id": payer_id, "amount_incl_vat": amount}))
    found = []
    for row in query(q_sql.TENANT_SESSIONS.text, {"tenant_id": tenant_id}):
        session = dict(zip(SESSION_COLUMNS, row, strict=True))
        if billing_model and session["billing_model"] != billing_model:
            continue
        if not period.contains(session["ended_at"]):
            continue
        session["charged_to"] = [share for _, share in sorted(payers[session["session_id"]],
                                                               key=lambda s: s[0])]
        found.append(session)
    return sorted(found, key=lambda s: s["session_id"])


def session(query: Query, tenant_id: str, session_id: str) -> dict[str, Any] | None:
    """One session, its payer split and the journal entries linked to it."""
    match = [s for s in sessions(query, tenant_id) if s["session_id"] == session_id]
    if not match:
        return None
    found = match[0]
    found["journal_entries"] = [e for e in journal(query, tenant_id)
                                if e["session_id"] == session_id]
    return found


def revenue_by_day(query: Query, tenant_id: str, period: Period = Period()
                   ) -> dict[str, dict[str, Decimal]]:
    """Net revenue (excl. VAT) of settled sessions per day (UTC) and billing model.

    Open access is left out: its priced cost is the operator's, not revenue."""
    days: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for s in sessions(query, tenant_id, period):
        if s["status"] != "settled" or s["billing_model"] in REVENUE_EXCLUDED_MODELS:
            continue
        if s["ended_at"] and s["total_excl_vat"] is not None:
            days[s["ended_at"][:10]][s["billing_model"]] += Decimal(s["total_excl_vat"])
    return {day: dict(models) for day, models in sorted(days.items())}


# ---------------------------------------------------------------------------- journal
@dataclass(frozen=True, slots=True)
class _Links:
    sessions: dict[str, tuple[str | None, str | None]]  # id -> (receipt number, ended at)
    references: dict[str, tuple[str, str | None]]  # reference or customer -> (number, issued)
    credit_notes: dict[str, str | None]  # number -> issued at


def _links(query: Query, tenant_id: str) -> _Links:
    by_session = {
        str(row[0]): (row[10], row[11])
        for row in query(q_sql.TENANT_SESSIONS.text, {"tenant_id": tenant_id})
    }
    references: dict[str, tuple[str, str | None]] = {}
    credit_notes: dict[str, str | None] = {}
    for d in documents(query, tenant_id):
        found = (d["number"], d["issued_at"])
        if d["kind"] == "credit_note":
            credit_notes[d["number"]] = d["issued_at"]
        references.setdefault(d["number"], found)  # a charge of a document names its number
        references.setdefault(d["reference"], found)
        if d["bill_to"].startswith("terminal:"):
            references.setdefault(d["bill_to"], found)
    # Weaker: the reference without its kind (`subscription:<plan>:<cycle>` for an entry
    # `charge:<tenant>:subscription_fee:<plan>:<cycle>`), only where nothing above matched.
    for d in documents(query, tenant_id):
        _, _, untyped = d["reference"].partition(":")
        if untyped and untyped not in references:
            references.setdefault("~" + untyped, (d["number"], d["issued_at"]))
    return _Links(by_session, references, credit_notes)


def _link(entry_id: str, links: _Links) -> tuple[str | None, str | None, str | None]:
    """(session id, document number, booking instant) of an entry, from its id's parts."""
    parts = entry_id.split(":")
    for part in parts:
        if part in links.sessions:
            receipt, ended_at = links.sessions[part]
            # A refund names its credit note too: booked when the credit note was issued.
            for other in parts:
                if other in links.credit_notes:
                    return part, other, links.credit_notes[other]
            return part, receipt, ended_at
    tails = [":".join(parts[i:]) for i in range(len(parts))]
    # `<kind>:<tenant>:<rest>` names the document's reference `<kind>:<rest>`.
    untenanted = [parts[0] + ":" + ":".join(parts[2:])] if len(parts) > 2 else []
    candidates = [*parts, *tails, *untenanted]
    for candidate in [*candidates, *("~" + c for c in candidates)]:
        if candidate in links.references:
            number, issued_at = links.references[candidate]
            return None, number, issued_at
    return None, None, None


def journal(query: Query, tenant_id: str, period: Period = Period()) -> list[dict[str, Any]]:
    """Entries with their postings, date, document and session, by (date, entry id)."""
    links = _links(query, tenant_id)
    postings: dict[str, list[tuple[int, str, str, int]]] = defaultdict(list)
    for entry_id, seq, account, currency, minor in query(
        q_sql.TENANT_JOURNAL_POSTINGS.text, {"tenant_id": tenant_id}
    ):
        postings[entry_id].append((int(seq), account, currency, int(minor)))
    entries = []
    for entry_id, currency, description, booked_by in query(
        q_sql.TENANT_JOURNAL_ENTRIES.text, {"tenant_id": tenant_id}
    ):
        session_id, document_number, booked_at = _link(entry_id, links)
        if not period.contains(booked_at):
            continue
        entries.append({
            "entry_id": entry_id,
            "date": booked_at[:10] if booked_at else None,
            "currency": currency,
            "description": description,
            "booked_by": booked_by,
            "session_id": session_id,
            "document_number": document_number,
            "postings": [_posting(account, cur, minor)
                         for _, account, cur, minor in sorted(postings[entry_id])],
        })
    return sorted(entries, key=lambda e: (e["date"] or "", e["entry_id"]))


def _posting(account: str, currency: str, minor: int) -> dict[str, Any]:
    """Signed minor units (debit > 0) as debit and credit columns, with the VAT rate of a
    VAT account (`vat_payable:<rate>`)."""
    vat_rate = account[len(VAT_ACCOUNT_PREFIX):] if account.startswith(VAT_ACCOUNT_PREFIX) \
        else None
    return {
        "account": account,
        "debit": amount_from_minor(minor, currency) if minor > 0 else None,
        "credit": amount_from_minor(-minor, currency) if minor < 0 else None,
        "amount_minor": minor,
        "vat_rate": None if vat_rate == "none" else vat_rate,
    }


def trial_balance(query: Query, tenant_id: str, period: Period = Period()
                  ) -> list[dict[str, Any]]:
    """Per account and currency: debits, credits and the balance (debits - credits)."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for entry in journal(query, tenant_id, period):
        for p in entry["postings"]:
            totals = sums[(p["account"], entry["currency"])]
            totals[0 if p["amount_minor"] > 0 else 1] += abs(p["amount_minor"])
    return [
        {"account": account, "currency": currency,
         "debit": amount_from_minor(debit, currency),
         "credit": amount_from_minor(credit, currency),
         "balance": amount_from_minor(debit - credit, currency)}
        for (account, currency), (debit, credit) in sorted(sums.items())
    ]


# ---------------------------------------------------------------------------- balances
RECEIVABLE_KINDS = ("driver_receivable", "partner_receivable")


def balances(query: Query, tenant_id: str) -> dict[str, Any]:
    """Wallets (what we owe drivers), receivables (what drivers and partners owe us) and
    partner pools (`rm_corporate_accounts`: empty until corporate billing is built)."""
    wallets = sorted(
        ({"driver_id": driver_id, "currency": currency,
          "balance": amount_from_minor(-int(minor), currency)}
         for driver_id, currency, minor in query(q_sql.TENANT_WALLETS.text,
                                                  {"tenant_id": tenant_id})),
        key=lambda w: w["driver_id"])
    receivables = []
    for account, currency, minor in query(q_sql.TENANT_ACCOUNT_BALANCES.text,
                                          {"tenant_id": tenant_id}):
        kind, _, owner = str(account).partition(":")
        if kind in RECEIVABLE_KINDS and int(minor) != 0:
            receivables.append({"kind": kind, "owner": owner, "currency": currency,
                                "outstanding": amount_from_minor(int(minor), currency)})
    receivables.sort(key=lambda r: (r["kind"], r["owner"]))
    names = ("partner_id", "period_start", "period_end", "currency", "pool_cap", "pool_used")
    pools = sorted(
        (dict(zip(names, row, strict=True))
         for row in query(q_sql.TENANT_CORPORATE_ACCOUNTS.text, {"tenant_id": tenant_id})),
        key=lambda p: (p["partner_id"], p["period_start"]))
    return {"wallets": wallets, "receivables": receivables, "partner_pools": pools}


def partner_ids(query: Query, tenant_id: str) -> set[str]:
    """Partners the journal has ever booked a receivable for."""
    return {
        str(account).partition(":")[2]
        for account, _, _ in query(q_sql.TENANT_ACCOUNT_BALANCES.text, {"tenant_id": tenant_id})
        if str(account).startswith("partner_receivable:")
    }


def total(amounts: Iterable[str], currency: str) -> str:
    return Money(sum((Decimal(a) for a in amounts), Decimal(0)), currency).to_str()


# ---------------------------------------------------------------------------- operations
def dead_letters(query: Query, tenant_id: str) -> list[dict[str, Any]]:
    names = ("source", "position", "event_id", "type", "key", "reason", "received_at")
    return sorted(
        (dict(zip(names, row, strict=True))
         for row in query(q_sql.TENANT_DEAD_LETTERS.text, {"tenant_id": tenant_id})),
        key=lambda d: (d["source"], d["position"]))


def refusals(query: Query, tenant_id: str) -> list[dict[str, Any]]:
    names = ("event_id", "type", "subject", "reason", "refused_at")
    return sorted(
        (dict(zip(names, row, strict=True))
         for row in query(q_sql.TENANT_REFUSALS.text, {"tenant_id": tenant_id})),
        key=lambda r: r["event_id"])
