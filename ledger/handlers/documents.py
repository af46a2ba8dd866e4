"""Issuing receipts and invoices: the next number of a gapless series, in this batch."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger.batch import Batch
from ledger.domain.invoice import InvoiceSeries, document
from ledger.domain.settlement import ChargeLines


def issue_document(
    batch: Batch,
    tenant_id: str,
    series: str,
    *,
    reference: str,
    bill_to: str,
    currency: str,
    issued_at: datetime,
    lines: ChargeLines,
    description: str,
    extra_lines: list[dict[str, Any]] | None = None,
) -> str:
    """Issue the next document of `series` for `reference`; the caller issues it once.

    `extra_lines` are lines already in their document form (a settlement's per-driver and
    discount lines); otherwise each charge line becomes one line with `description`."""
    series_aggregate = batch.get(InvoiceSeries, InvoiceSeries.create_id(tenant_id, series))
    if series_aggregate is None:
        series_aggregate = InvoiceSeries(tenant_id=tenant_id, series=series)
        batch.add(series_aggregate)
    number = series_aggregate.next_number()
    body_lines = (
        extra_lines if extra_lines is not None
        else [line.to_dict(description) for line in lines.lines]
    )
    series_aggregate.issue(
        number,
        document(
            kind=series, reference=reference, bill_to=bill_to, currency=currency,
            issued_at=issued_at, lines=body_lines,
        ),
    )
    return number
