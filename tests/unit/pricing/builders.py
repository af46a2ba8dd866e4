"""Small builders for pricing tests: a tariff from elements, a session from periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ledger.domain.pricing import ChargingPeriod, PeriodKind, SessionPrice, price_session
from ledger.domain.tariff import Tariff, parse_tariff

BERLIN = ZoneInfo("Europe/Berlin")


def tariff(*elements: dict[str, Any], **fields: Any) -> Tariff:
    return parse_tariff({"id": "T1", "currency": "EUR", "elements": list(elements), **fields})


def element(*components: dict[str, Any], **restrictions: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"price_components": list(components)}
    if restrictions:
        out["restrictions"] = restrictions
    return out


def component(
    kind: str, price: object, step_size: object = 1, vat: object = None
) -> dict[str, Any]:
    """A price component as JSON; values may be any JSON number or text (to test parsing)."""
    out: dict[str, Any] = {"type": kind, "price": price, "step_size": step_size}
    if vat is not None:
        out["vat"] = vat
    return out


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: ZoneInfo = BERLIN, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold).astimezone(UTC)


def period(
    start: datetime,
    kind: PeriodKind = PeriodKind.CHARGING,
    energy_kwh: str = "0",
    **measured: str,
) -> ChargingPeriod:
    return ChargingPeriod(
        start=start,
        kind=kind,
        energy_kwh=Decimal(energy_kwh),
        **{k: Decimal(v) for k, v in measured.items()},
    )


def price(
    t: Tariff,
    periods: list[ChargingPeriod],
    end: datetime,
    zone: ZoneInfo = BERLIN,
    start: datetime | None = None,
) -> SessionPrice:
    return price_session(t, periods, zone, start or periods[0].start, end)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
