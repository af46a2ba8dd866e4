"""A partner period's settlement invoice: its lines, and the VAT rounding it books.

Each session booked the VAT of what it billed the partner, rounded per session. The invoice
instead applies each rate once to its taxable amount at that rate (the partner's lines less
the discount lines), rounded half up, as EN 16931 requires (BR-CO-17); that VAT is spread
over the rate's driver lines in proportion to the VAT their sessions booked. The difference
per rate, a few minor units at most per session, is booked at settlement between the
partner's receivable and VAT payable, so the receivable ends at the invoice's total
(docs/billing-decisions.md, "Corporate billing").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.domain.journal import JournalEntry, account, sale
from ledger.domain.money import round_to_minor_unit
from ledger.domain.settlement import VatRate, rate_key, spread, vat_on


@dataclass(frozen=True, slots=True)
class PartnerInvoice:
    """The settlement invoice's lines (document form) and its VAT against what was booked."""

    currency: str
    lines: list[dict[str, Any]]
    vat_booked: dict[VatRate, Decimal]  # per rate, the sum of the sessions' VAT
    vat_invoiced: dict[VatRate, Decimal]  # per rate, the rate applied once to its basis

    @property
    def total_incl_vat(self) -> Decimal:
        return sum((Decimal(line["net"]) + Decimal(line["vat"]) for line in self.lines),
                   Decimal(0))

    def vat_rounding(self) -> dict[VatRate, Decimal]:
        """Per rate where they differ, the invoice's VAT less the VAT the sessions booked."""
        return {
            rate: self.vat_invoiced[rate] - self.vat_booked.get(rate, Decimal(0))
            for rate in sorted(self.vat_invoiced, key=rate_key)
            if self.vat_invoiced[rate] != self.vat_booked.get(rate, Decimal(0))
        }

    def vat_rounding_entry(
        self, entry_id: str, partner_id: str, invoice_number: str
    ) -> JournalEntry | None:
        """The partner owes the rounding and VAT payable takes it, per rate (a VAT-only sale:
        no revenue moves); None when the invoice's VAT is what was booked."""
        rounding = self.vat_rounding()
        if not rounding:
            return None
        return sale(
            entry_id, self.currency, f"VAT of {invoice_number} per rate on its basis",
            account("partner_receivable", partner_id),
            {rate: Decimal(0) for rate in rounding}, rounding,
        )


def partner_invoice(covered: Sequence[Mapping[str, Any]], currency: str) -> PartnerInvoice:
    """Per driver and VAT rate: the covered net at full price and its part of the rate's VAT;
    per rate, the discount as a negative net (no VAT: the rate's VAT is on its basis)."""
    share_net: dict[tuple[str, VatRate], Decimal] = defaultdict(Decimal)
    booked_vat: dict[tuple[str, VatRate], Decimal] = defaultdict(Decimal)
    billed_net: dict[VatRate, Decimal] = defaultdict(Decimal)
    discount_net: dict[VatRate, Decimal] = defaultdict(Decimal)
    sessions: dict[str, list[str]] = defaultdict(list)
    for record in covered:
        driver = record["driver_id"]
        sessions[driver].append(record["transaction_id"])
        for line in record["share_lines"]:
            rate = _rate(line)
            share_net[(driver, rate)] += Decimal(line["net"])
            discount_net[rate] += Decimal(line["net"])
        for line in record["billed_lines"]:
            rate = _rate(line)
            booked_vat[(driver, rate)] += Decimal(line["vat"])
            billed_net[rate] += Decimal(line["net"])
            discount_net[rate] -= Decimal(line["net"])
    keys = sorted(share_net, key=lambda k: (k[0], rate_key(k[1])))
    vat_invoiced = {rate: vat_on(billed_net[rate], rate, currency)
                    for rate in sorted({rate for _, rate in keys}, key=rate_key)}
    line_vat: dict[tuple[str, VatRate], Decimal] = {}
    for rate, vat in vat_invoiced.items():
        at_rate = [k for k in keys if k[1] == rate]
        parts = spread(vat, [abs(booked_vat[k]) for k in at_rate], currency)
        line_vat.update(zip(at_rate, parts, strict=True))
    lines: list[dict[str, Any]] = [
        {
            "description": f"Charging by driver {driver}",
            "driver_id": driver, "sessions": sorted(sessions[driver]),
            "vat_rate": _rate_text(rate), "net": str(share_net[(driver, rate)]),
            "vat": str(round_to_minor_unit(line_vat[(driver, rate)], currency)),
        }
        for driver, rate in keys
    ]
    lines.extend(
        {"description": "Discount", "vat_rate": _rate_text(rate),
         "net": str(-discount_net[rate]), "vat": "0"}
        for rate in sorted(discount_net, key=rate_key) if discount_net[rate]
    )
    vat_booked: dict[VatRate, Decimal] = defaultdict(Decimal)
    for (_, rate), vat in booked_vat.items():
        vat_booked[rate] += vat
    return PartnerInvoice(currency, lines, dict(vat_booked), vat_invoiced)


def _rate(line: Mapping[str, Any]) -> VatRate:
    return None if line["vat_rate"] is None else Decimal(line["vat_rate"])


def _rate_text(rate: VatRate) -> str | None:
    return None if rate is None else str(rate)
