"""From an exact session cost to rounded charge lines, payer shares and journal entries.

Rounding happens here, once: the gross and the net are rounded half up to the minor unit,
VAT is their difference, and both are spread over the VAT rates that applied by largest
remainder, so the lines add up to the rounded OCPI totals to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.domain.money import Money, round_to_minor_unit

VatRate = Decimal | None  # None: "no VAT applicable" (OCPI), which is not a 0 % rate


@dataclass(frozen=True, slots=True)
class SessionCost:
    """What the pricer says a session costs, exact (not yet rounded)."""

    currency: str
    total_excl_vat: Decimal
    total_incl_vat: Decimal
    # Per VAT rate, the exact net and VAT before any min/max clamp (used as weights).
    by_vat_rate: dict[VatRate, tuple[Decimal, Decimal]]
    # OCPI CDR cost fields, exact, as decimal strings (for the CDR and the report).
    ocpi: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChargeLine:
    vat_rate: VatRate
    net: Decimal
    vat: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.vat

    def to_dict(self, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "vat_rate": None if self.vat_rate is None else str(self.vat_rate),
            "net": str(self.net),
            "vat": str(self.vat),
        }


@dataclass(frozen=True, slots=True)
class ChargeLines:
    currency: str
    lines: tuple[ChargeLine, ...]

    @property
    def net(self) -> Decimal:
        return sum((line.net for line in self.lines), Decimal(0))

    @property
    def vat(self) -> Decimal:
        return sum((line.vat for line in self.lines), Decimal(0))

    @property
    def gross(self) -> Decimal:
        return self.net + self.vat

    def net_by_rate(self) -> dict[VatRate, Decimal]:
        return {line.vat_rate: line.net for line in self.lines}

    def vat_by_rate(self) -> dict[VatRate, Decimal]:
        return {line.vat_rate: line.vat for line in self.lines}


def rate_key(rate: VatRate) -> Decimal:
    """Rates in order, no rate first."""
    return Decimal(-1) if rate is None else rate


def charge_lines(cost: SessionCost) -> ChargeLines:
    currency = cost.currency
    gross = round_to_minor_unit(cost.total_incl_vat, currency)
    net = round_to_minor_unit(cost.total_excl_vat, currency)
    vat = gross - net
    rates = sorted(cost.by_vat_rate, key=rate_key) or [None]
    net_weights = [abs(cost.by_vat_rate.get(r, (Decimal(0), Decimal(0)))[0]) for r in rates]
    vat_weights = [abs(cost.by_vat_rate.get(r, (Decimal(0), Decimal(0)))[1]) for r in rates]
    nets = spread(net, net_weights, currency)
    vats = spread(vat, vat_weights if any(vat_weights) else net_weights, currency)
    lines = tuple(
        ChargeLine(rate, n, v) for rate, n, v in zip(rates, nets, vats, strict=True)
    )
    return ChargeLines(currency, tuple(line for line in lines if line.net or line.vat))


def spread(amount: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    """A rounded `amount` split by `weights` (largest remainder; all zero: the first takes
    it), so the parts add up to it exactly."""
    if amount == 0:
        return [Decimal(0)] * len(weights)
    if not any(weights):
        weights = [Decimal(1)] + [Decimal(0)] * (len(weights) - 1)
    sign = Decimal(1) if amount > 0 else Decimal(-1)
    shares = Money(abs(amount), currency).allocate(weights)
    return [sign * share.amount for share in shares]


def vat_on(net: Decimal, rate: VatRate, currency: str) -> Decimal:
    """VAT at `rate` (percent) on a rounded net, rounded half up; no VAT rate: none."""
    return Decimal(0) if rate is None else round_to_minor_unit(net * rate / 100, currency)


def split_gross(
    gross: Decimal, first_share_max: Decimal
) -> tuple[Decimal, Decimal]:
    """Split a rounded gross into (covered up to `first_share_max`, the rest)."""
    covered = min(gross, max(first_share_max, Decimal(0)))
    return covered, gross - covered


def charge_lines_of_gross(gross: Decimal, currency: str) -> ChargeLines:
    """A running cost as one line with no VAT split: what the limits watched while a session
    runs need (its shares, not its tax)."""
    rounded = round_to_minor_unit(gross, currency)
    return ChargeLines(currency, (ChargeLine(None, rounded, Decimal(0)),) if rounded else ())
