"""Invoices read model: every document a series issued (receipts, invoices, credit notes).

Documents are immutable once issued, so a row is written once and never updated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.invoice import InvoiceSeries
from projections.changes import RowChange, event_class
from projections.identities import Identities, identity_for
from projections.sql import INVOICE_ISSUED
from projections.values import amount_text, canonical_json, instant_text


def invoice_issued(event: Any, identities: Identities) -> list[RowChange]:
    identity = identity_for(identities, event)
    document: dict[str, Any] = event.document
    currency = str(document["currency"])
    return [
        RowChange(
            INVOICE_ISSUED,
            {
                "tenant_id": identity.tenant_id,
                "number": str(event.number),
                "kind": str(document["kind"]),
                "reference": str(document["reference"]),
                "bill_to": str(document["bill_to"]),
                "currency": currency,
                "total_excl_vat": amount_text(document["total_excl_vat"], currency),
                "total_vat": amount_text(document["total_vat"], currency),
                "total_incl_vat": amount_text(document["total_incl_vat"], currency),
                "issued_at": instant_text(document.get("issued_at")),
                "lines_json": canonical_json(document.get("lines") or []),
            },
        )
    ]


HANDLERS: dict[type, Callable[[Any, Identities], list[RowChange]]] = {
    event_class(InvoiceSeries, "Issued"): invoice_issued,
}
