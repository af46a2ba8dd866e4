"""OCPI 2.2.1 CDRs: read the session out of one, write one for a priced session, credit one.

- `parse_cdr(obj)` reads what pricing needs (currency, start/end, charging periods) and
  ignores the CDR's own `total_*` fields; bad input raises `InvalidCdr`.
- `build_cdr(...)` turns a finished, priced session into an OCPI CDR as a JSON-able dict.
- `credit_cdr(original, ...)` issues the Credit CDR that cancels a CDR (CDRs are immutable);
  `credit_cost_fields` turns the priced cost fields into a credit's (only `total_cost`
  and the amount to charge negated, as OCPI 2.2.1 says).

Numbers in the dicts written here are decimal strings, never floats: the ledger stores them
as they are and the OCPI adapter writes them as JSON numbers. Precision: `total_cost` is the
amount charged (rounded half up to the currency's minor unit, so the CDR agrees with the
receipt); the other cost fields and all volumes carry OCPI's 4 decimals (half up).

How a CDR charging period maps to a `ChargingPeriod` (its duration runs to the next period's
start, or the CDR's end; volumes of TIME-like dimensions are informative, the timestamps
are authoritative):
- RESERVATION_TIME: reservation time.
- PARKING_TIME without TIME: parking. TIME, or neither (e.g. only ENERGY): charging.
- TIME and PARKING_TIME together: charging first for the TIME volume, parking after it.
- MIN_/MAX_ CURRENT and POWER feed the restrictions; Session-only dimensions (CURRENT, POWER,
  ENERGY_EXPORT, ENERGY_IMPORT, STATE_OF_CHARGE) are ignored.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ledger.domain.errors import InvalidCdr
from ledger.domain.pricing import (
    PERIODS_MAX,
    ChargingPeriod,
    Cost,
    PeriodKind,
    SessionPrice,
    from_micros,
    to_micros,
)
from ledger.domain.tariff import (
    Tariff,
    format_utc,
    parse_utc_datetime,
    tariff_to_dict,
    to_decimal,
)

CDR_ID_LENGTH_MAX = 39  # OCPI CiString(39)
CREDIT_SUFFIX = "-C"
# An original CDR id must leave room for the credit suffix within the OCPI limit.
ORIGINAL_CDR_ID_LENGTH_MAX = CDR_ID_LENGTH_MAX - len(CREDIT_SUFFIX)
CHARGING_PERIODS_MAX = 10_000  # one a minute for a week; more is not a real session
# A CDR period with both TIME and PARKING_TIME becomes two: all of them must still fit.
assert 2 * CHARGING_PERIODS_MAX <= PERIODS_MAX
_CURRENCY = re.compile(r"[A-Z]{3}")
_MICROS_PER_HOUR = 3_600_000_000
_OCPI_PLACES = Decimal("0.0001")
_IGNORED_DIMENSIONS = frozenset(
    {"CURRENT", "POWER", "ENERGY_EXPORT", "ENERGY_IMPORT", "STATE_OF_CHARGE"}
)
_KNOWN_DIMENSIONS = (
    frozenset(
        {
            "ENERGY",
            "TIME",
            "PARKING_TIME",
            "RESERVATION_TIME",
            "MAX_CURRENT",
            "MIN_CURRENT",
            "MAX_POWER",
            "MIN_POWER",
        }
    )
    | _IGNORED_DIMENSIONS
)
# OCPI 2.2.1 mod_cdrs, "Credit CDRs": the credit "will contain all the data of the original
# CDR. Only the values in the total_cost field SHALL contain the negative amounts". The
# dimension totals (total_energy_cost ...) keep the original's positive values.
CREDIT_NEGATED_FIELDS: tuple[str, ...] = ("total_cost",)


@dataclass(frozen=True, slots=True)
class CdrSession:
    """The part of an OCPI CDR that pricing reads."""

    id: str | None
    currency: str
    start: datetime
    end: datetime
    periods: tuple[ChargingPeriod, ...]
    credit: bool = False  # a Credit CDR: its total_cost is the negated original's


@dataclass(frozen=True, slots=True)
class CdrToken:
    country_code: str
    party_id: str
    uid: str
    type: str  # OCPI TokenType: AD_HOC_USER, APP_USER, OTHER, RFID
    contract_id: str


@dataclass(frozen=True, slots=True)
class CdrLocation:
    """OCPI CdrLocation; the address and connector details are optional here."""

    id: str
    country: str  # ISO 3166-1 alpha-3
    evse_uid: str
    evse_id: str
    connector_id: str
    name: str | None = None
    address: str | None = None
    city: str | None = None
    postal_code: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    connector_standard: str | None = None
    connector_format: str | None = None
    connector_power_type: str | None = None


# ------------------------------------------------------------------------------ reading
def parse_cdr(obj: object) -> CdrSession:
    """The session part of an OCPI CDR, or `InvalidCdr` saying what is wrong."""
    if not isinstance(obj, Mapping):
        raise InvalidCdr("CDR: expected a JSON object")
    cdr_id = obj.get("id")
    if cdr_id is not None and not isinstance(cdr_id, str):
        raise InvalidCdr("CDR id must be a string")
    where = "CDR" if cdr_id is None else f"CDR {cdr_id!r}"
    currency = obj.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise InvalidCdr(f"{where}: currency must be an ISO 4217 code, got {currency!r}")
    start = _instant(obj.get("start_date_time"), f"{where}: start_date_time")
    end = _instant(obj.get("end_date_time"), f"{where}: end_date_time")
    credit = _credit(obj, where)
    if end < start:
        raise InvalidCdr(f"{where}: end_date_time is before start_date_time")
    raw_periods = obj.get("charging_periods")
    if not isinstance(raw_periods, list) or not raw_periods:
        raise InvalidCdr(f"{where}: charging_periods must be a non-empty array")
    if len(raw_periods) > CHARGING_PERIODS_MAX:
        raise InvalidCdr(f"{where}: more than {CHARGING_PERIODS_MAX} charging periods")
    parsed = [_period(p, f"{where}: charging_periods[{i}]") for i, p in enumerate(raw_periods)]
    periods: list[ChargingPeriod] = []
    for i, (period, time_h, parking_h) in enumerate(parsed):
        next_start = parsed[i + 1][0].start if i + 1 < len(parsed) else end
        periods.extend(_split_time_and_parking(period, time_h, parking_h, next_start))
    return CdrSession(
        id=cdr_id, currency=currency, start=start, end=end, periods=tuple(periods), credit=credit
    )


def _credit(obj: Mapping[str, Any], where: str) -> bool:
    """Whether the CDR is a Credit CDR; OCPI requires its credit_reference_id with it."""
    credit = obj.get("credit")
    if credit is None:
        return False
    if not isinstance(credit, bool):
        raise InvalidCdr(f"{where}: credit must be true or false, got {credit!r}")
    reference = obj.get("credit_reference_id")
    if credit and (not isinstance(reference, str) or not reference):
        raise InvalidCdr(f"{where}: a credit CDR needs its credit_reference_id")
    return credit


def _period(obj: object, where: str) -> tuple[ChargingPeriod, Decimal | None, Decimal | None]:
    if not isinstance(obj, Mapping):
        raise InvalidCdr(f"{where}: expected a JSON object")
    start = _instant(obj.get("start_date_time"), f"{where}.start_date_time")
    dimensions = obj.get("dimensions")
    if not isinstance(dimensions, list):
        raise InvalidCdr(f"{where}.dimensions must be an array")
    volumes: dict[str, Decimal] = {}
    for j, dimension in enumerate(dimensions):
        if not isinstance(dimension, Mapping):
            raise InvalidCdr(f"{where}.dimensions[{j}]: expected a JSON object")
        kind = dimension.get("type")
        if kind not in _KNOWN_DIMENSIONS:
            raise InvalidCdr(f"{where}.dimensions[{j}]: unknown dimension type {kind!r}")
        assert isinstance(kind, str)  # it is one of the known names
        if kind in _IGNORED_DIMENSIONS:
            continue
        volume = to_decimal(dimension.get("volume"))
        if volume is None or volume < 0:
            raise InvalidCdr(f"{where}.dimensions[{j}] ({kind}): volume must be a number >= 0")
        if kind in volumes:
            raise InvalidCdr(f"{where}: dimension {kind} given twice")
        volumes[kind] = volume
    time_h = volumes.get("TIME")
    parking_h = volumes.get("PARKING_TIME")
    if "RESERVATION_TIME" in volumes:
        if time_h or parking_h or volumes.get("ENERGY"):
            raise InvalidCdr(f"{where}: a reservation period cannot also charge or park")
        kind_of_period = PeriodKind.RESERVATION
    elif parking_h is not None and not time_h:
        kind_of_period = PeriodKind.PARKING
    else:
        kind_of_period = PeriodKind.CHARGING
    period = ChargingPeriod(
        start=start,
        kind=kind_of_period,
        energy_kwh=volumes.get("ENERGY", Decimal(0)),
        max_power_kw=volumes.get("MAX_POWER"),
        min_power_kw=volumes.get("MIN_POWER"),
        max_current_a=volumes.get("MAX_CURRENT"),
        min_current_a=volumes.get("MIN_CURRENT"),
    )
    return period, time_h, parking_h


def _split_time_and_parking(
    period: ChargingPeriod, time_h: Decimal | None, parking_h: Decimal | None, end: datetime
) -> list[ChargingPeriod]:
    """A period reporting both TIME and PARKING_TIME: charging first, then parking."""
    if period.kind is not PeriodKind.CHARGING or not time_h or not parking_h:
        return [period]
    start_us = to_micros(period.start)
    parking_start_us = start_us + int(
        (time_h * _MICROS_PER_HOUR).to_integral_value(rounding=ROUND_HALF_UP)
    )
    if parking_start_us >= to_micros(end):
        return [period]
    parking = ChargingPeriod(start=from_micros(parking_start_us), kind=PeriodKind.PARKING)
    return [period, parking]


def _instant(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidCdr(f"{where}: expected an RFC 3339 date-time string")
    result = parse_utc_datetime(value)
    if result is None:
        raise InvalidCdr(f"{where}: expected an RFC 3339 date-time, got {value!r}")
    return result


# ------------------------------------------------------------------------------ writing
def build_cdr(
    *,
    cdr_id: str,
    country_code: str,
    party_id: str,
    session_id: str | None,
    cdr_token: CdrToken,
    cdr_location: CdrLocation,
    auth_method: str,
    tariff: Tariff,
    price: SessionPrice,
    last_updated: datetime,
) -> dict[str, Any]:
    """The OCPI 2.2.1 CDR of a finished, priced session (JSON-able; numbers as strings)."""
    if not cdr_id or len(cdr_id) > ORIGINAL_CDR_ID_LENGTH_MAX:
        raise InvalidCdr(
            f"CDR id must be 1 to {ORIGINAL_CDR_ID_LENGTH_MAX} characters (room for"
            f" {CREDIT_SUFFIX!r} on a credit), got {cdr_id!r}"
        )
    if tariff.currency != price.currency:
        raise InvalidCdr(f"tariff currency {tariff.currency} differs from {price.currency}")
    cdr: dict[str, Any] = {
        "country_code": country_code,
        "party_id": party_id,
        "id": cdr_id,
        "start_date_time": format_utc(price.session_start),
        "end_date_time": format_utc(price.session_end),
    }
    if session_id is not None:
        cdr["session_id"] = session_id
    cdr["cdr_token"] = {
        "country_code": cdr_token.country_code,
        "party_id": cdr_token.party_id,
        "uid": cdr_token.uid,
        "type": cdr_token.type,
        "contract_id": cdr_token.contract_id,
    }
    cdr["auth_method"] = auth_method
    cdr["cdr_location"] = _location_to_dict(cdr_location)
    cdr["currency"] = price.currency
    cdr["tariffs"] = [tariff_to_dict(tariff)]
    cdr["charging_periods"] = _periods_to_dicts(price, tariff.id)
    cdr["total_cost"] = _cost(price.amount_to_charge, places=None)
    cdr["total_fixed_cost"] = _cost(price.total_fixed_cost)
    cdr["total_energy"] = _number(price.total_energy_kwh)
    cdr["total_energy_cost"] = _cost(price.total_energy_cost)
    cdr["total_time"] = _number(price.total_time_h)
    cdr["total_time_cost"] = _cost(price.total_time_cost)
    cdr["total_parking_time"] = _number(price.total_parking_time_h)
    cdr["total_parking_cost"] = _cost(price.total_parking_cost)
    cdr["total_reservation_cost"] = _cost(price.total_reservation_cost)
    cdr["last_updated"] = format_utc(last_updated)
    return cdr


def _location_to_dict(location: CdrLocation) -> dict[str, Any]:
    out: dict[str, Any] = {"id": location.id}
    optional_text = (
        ("name", location.name),
        ("address", location.address),
        ("city", location.city),
        ("postal_code", location.postal_code),
    )
    out.update({key: value for key, value in optional_text if value is not None})
    out["country"] = location.country
    if location.latitude is not None and location.longitude is not None:
        out["coordinates"] = {"latitude": location.latitude, "longitude": location.longitude}
    out["evse_uid"] = location.evse_uid
    out["evse_id"] = location.evse_id
    out["connector_id"] = location.connector_id
    connector = (
        ("connector_standard", location.connector_standard),
        ("connector_format", location.connector_format),
        ("connector_power_type", location.connector_power_type),
    )
    out.update({key: value for key, value in connector if value is not None})
    return out


def _periods_to_dicts(price: SessionPrice, tariff_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    periods = price.periods
    for i, period in enumerate(periods):
        end = periods[i + 1].start if i + 1 < len(periods) else price.session_end
        hours = Decimal(to_micros(end) - to_micros(period.start)) / _MICROS_PER_HOUR
        dimensions: list[dict[str, str]] = []
        if period.kind is PeriodKind.RESERVATION:
            dimensions.append(_dimension("RESERVATION_TIME", hours))
        else:
            if period.kind is PeriodKind.CHARGING or period.energy_kwh:
                dimensions.append(_dimension("ENERGY", period.energy_kwh))
            time_kind = "TIME" if period.kind is PeriodKind.CHARGING else "PARKING_TIME"
            dimensions.append(_dimension(time_kind, hours))
            measured = (
                ("MAX_POWER", period.max_power_kw),
                ("MIN_POWER", period.min_power_kw),
                ("MAX_CURRENT", period.max_current_a),
                ("MIN_CURRENT", period.min_current_a),
            )
            dimensions.extend(_dimension(k, v) for k, v in measured if v is not None)
        out.append(
            {
                "start_date_time": format_utc(period.start),
                "dimensions": dimensions,
                "tariff_id": tariff_id,
            }
        )
    return out


def _dimension(kind: str, volume: Decimal) -> dict[str, str]:
    return {"type": kind, "volume": _number(volume)}


def _number(value: Decimal, places: Decimal | None = _OCPI_PLACES) -> str:
    """Decimal text without exponent; OCPI's 4 decimals unless `places` is None (as is)."""
    if places is not None:
        value = value.quantize(places, rounding=ROUND_HALF_UP)
        value = value.normalize() if value else Decimal(0)
    return format(value, "f")


def _cost(cost: Cost, places: Decimal | None = _OCPI_PLACES) -> dict[str, str]:
    return {
        "excl_vat": _number(cost.excl_vat, places),
        "incl_vat": _number(cost.incl_vat, places),
    }


# ----------------------------------------------------------------------------- crediting
def credit_cdr(original: Mapping[str, Any], *, last_updated: datetime) -> dict[str, Any]:
    """The Credit CDR cancelling `original`: same data, negated total_cost, id + "-C".

    Per OCPI 2.2.1 only `total_cost` is negated; the dimension totals and the volumes stay
    as they were: they describe the session being credited.
    """
    original_id = original.get("id")
    if not isinstance(original_id, str) or not original_id:
        raise InvalidCdr("cannot credit a CDR without an id")
    if original.get("credit") is True:
        raise InvalidCdr(f"CDR {original_id!r} is itself a credit; it cannot be credited")
    credit_id = original_id + CREDIT_SUFFIX
    if len(credit_id) > CDR_ID_LENGTH_MAX:
        raise InvalidCdr(f"credit id {credit_id!r} would exceed {CDR_ID_LENGTH_MAX} characters")
    credit = copy.deepcopy(dict(original))
    credit["id"] = credit_id
    credit["credit"] = True
    credit["credit_reference_id"] = original_id
    for field in CREDIT_NEGATED_FIELDS:
        if field in credit and credit[field] is not None:
            credit[field] = _negated(credit[field], f"CDR {original_id!r}: {field}")
    credit["last_updated"] = format_utc(last_updated)
    return credit


def credit_cost_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`pricing.cost_fields` of a Credit CDR's session: what credit_cdr negates, negated,
    and the amount to charge with it (a refund is a negative charge); `credit` set."""
    out = dict(fields)
    for field in (*CREDIT_NEGATED_FIELDS, "amount_to_charge"):
        out[field] = _negated(fields[field], f"credit {field}")
    out["credit"] = True
    return out


def _negated(price: object, where: str) -> dict[str, str]:
    if not isinstance(price, Mapping):
        raise InvalidCdr(f"{where}: expected an OCPI Price object")
    out: dict[str, str] = {}
    for part in ("excl_vat", "incl_vat"):
        if price.get(part) is None:
            continue
        amount = to_decimal(price[part])
        if amount is None:
            raise InvalidCdr(f"{where}.{part}: expected a number")
        # 0 - x rather than -x: a zero stays "0.00", never "-0.00".
        out[part] = format(Decimal(0) - amount, "f")
    return out
