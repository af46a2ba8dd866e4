"""Invoices and receipts: numbered without gaps per tenant and series, immutable once issued.

A series is one aggregate, so two documents can never take the same number, and a number is
only taken in the transaction that records the document.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id

SERIES_PREFIXES: dict[str, str] = {
    "session_receipt": "R",
    "subscription_invoice": "S",
    "corporate_settlement": "C",
    "voucher_batch": "V",
    "wallet_top_up": "T",
    "credit_note": "CN",
}


class InvoiceSeries(Aggregate):
    @staticmethod
    def create_id(tenant_id: str, series: str) -> UUID:
        return natural_id("invoice_series", tenant_id, series)

    @event("Opened")
    def __init__(self, tenant_id: str, series: str) -> None:
        self.tenant_id = tenant_id
        self.series = series
        # Only the counter: a series outlives millions of documents, and each document's
        # cause (a settled session, a confirmed top-up) already happens once.
        self.last_number = 0

    @event("Issued")
    def issue(self, number: str, document: dict[str, Any]) -> None:
        self.last_number += 1

    def next_number(self) -> str:
        return f"{SERIES_PREFIXES[self.series]}-{self.last_number + 1:06d}"


def document(
    *,
    kind: str,
    reference: str,
    bill_to: str,
    currency: str,
    issued_at: Any,
    lines: list[dict[str, Any]],
) -> dict[str, Any]:
    """An invoice body: lines with net, VAT rate and VAT; totals are their exact sums."""
    total_excl = sum((Decimal(line["net"]) for line in lines), Decimal(0))
    total_vat = sum((Decimal(line["vat"]) for line in lines), Decimal(0))
    return {
        "kind": kind,
        "reference": reference,
        "bill_to": bill_to,
        "currency": currency,
        "issued_at": issued_at,
        "lines": lines,
        "total_excl_vat": total_excl,
        "total_vat": total_vat,
        "total_incl_vat": total_excl + total_vat,
    }
