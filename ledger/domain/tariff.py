"""OCPI 2.2.1 Tariff: the model, its parser, and the restriction rules the pricer evaluates.

`parse_tariff(obj)` turns a decoded JSON object into an immutable `Tariff` or raises
`InvalidTariff` naming the offending field. Numbers may arrive as JSON floats; they are
converted through their decimal text (`Decimal(str(x))`), so 0.1 stays 0.1.

Fields OCPI requires but pricing does not need (`country_code`, `party_id`, `last_updated`)
are accepted when missing: partner data in the wild omits them and the price does not depend
on them. Everything that changes a price is validated strictly.

Each `Tariff` carries a compiled `TariffIndex` (built once, when the tariff is constructed):
per dimension, the elements holding a component of that dimension in list order, plus every
threshold at which a restriction can switch (clock times, durations, kWh, kW, A). Pricing
and the OCPP fold read only the index, so a tariff is parsed once and priced many times.

Restriction semantics (OCPI 2.2.1 mod_tariffs, TariffRestrictions):
- start_time/end_time are local wall-clock times; end < start wraps past midnight, end
  "00:00" means the end of the day, start == end means the whole day. A one-sided window
  is cut at local midnight: start_time alone is start..24:00, end_time alone 00:00..end,
  every day.
- start_date is inclusive, end_date exclusive, both local dates.
- min_* bounds are inclusive, max_* bounds exclusive (kWh, A, kW, seconds).
- min/max_duration count from the start of the charging session, not from parking start.
- an element without a `reservation` restriction never prices reservation time, and an
  element with one prices only reservation time (RESERVATION_EXPIRES: only when the
  reservation expired without a charging session).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import Enum, StrEnum
from typing import Any, TypeVar

from ledger.domain.errors import InvalidTariff, UnknownCurrency
from ledger.domain.money import currency_exponent

MICROS_PER_SECOND = 1_000_000
SECONDS_PER_DAY = 86_400
# OCPI field limits (CiString lengths) that a receiving party relies on.
TARIFF_ID_LENGTH_MAX = 36
ELEMENTS_MAX = 200  # a hand-written tariff has a handful; this bounds a hostile one
PRICE_COMPONENTS_MAX = 8  # at most one per dimension is used; allow some repetition

_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)

_HHMM = re.compile(r"([0-1][0-9]|2[0-3]):[0-5][0-9]\Z")
_YYYY_MM_DD = re.compile(r"[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])\Z")
_CURRENCY = re.compile(r"[A-Z]{3}\Z")


class TariffDimension(StrEnum):
    ENERGY = "ENERGY"  # per kWh, step_size in Wh
    FLAT = "FLAT"  # per session, no step
    PARKING_TIME = "PARKING_TIME"  # per hour not charging, step_size in seconds
    TIME = "TIME"  # per hour charging (or reserved), step_size in seconds


class TariffType(StrEnum):
    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


class DayOfWeek(StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @property
    def weekday(self) -> int:
        """Monday 0 ... Sunday 6, as `date.weekday()` counts."""
        return _WEEKDAY_INDEX[self]


_WEEKDAY_INDEX: dict[str, int] = {name: i for i, name in enumerate(DayOfWeek.__members__)}


class ReservationRestriction(StrEnum):
    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class ReservationState(Enum):
    """Where a moment of the session stands with respect to a reservation."""

    NONE = "none"  # charging or parking: the charging session proper
    RESERVED = "reserved"  # reservation time followed by a charging session
    EXPIRED = "expired"  # reservation time of a reservation that expired unused


@dataclass(frozen=True, slots=True)
class Price:
    """OCPI Price: an amount excl. VAT and, optionally, incl. VAT."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceComponent:
    dimension: TariffDimension
    price: Decimal  # excl. VAT, per kWh / per hour / per session (FLAT)
    vat_percent: Decimal | None  # None: no VAT applicable (incl == excl), unlike 0 %
    step_size: int  # Wh for ENERGY, seconds for TIME and PARKING_TIME; 0 = no rounding

    @property
    def vat_factor(self) -> Decimal:
        """Multiplier from excl. to incl. VAT at this component's own rate."""
        if self.vat_percent is None:
            return Decimal(1)
        return 1 + self.vat_percent / 100


@dataclass(frozen=True, slots=True)
class TariffRestrictions:
    start_time: time | None = None
    end_time: time | None = None
    start_date: date | None = None
    end_date: date | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None
    min_power_kw: Decimal | None = None
    max_power_kw: Decimal | None = None
    min_duration_s: int | None = None
    max_duration_s: int | None = None
    day_of_week: frozenset[DayOfWeek] | None = None
    reservation: ReservationRestriction | None = None


@dataclass(frozen=True, slots=True)
class TariffElement:
    price_components: tuple[PriceComponent, ...]
    restrictions: TariffRestrictions | None = None


@dataclass(frozen=True, slots=True)
class DisplayText:
    language: str
    text: str


@dataclass(frozen=True, slots=True)
class Moment:
    """What the restrictions look at, at the start of one (sub-)period of a session.

    `local_second` is the wall-clock second of the day in the location's time zone; it is
    None only when the tariff has no clock restriction (then it is never read).
    Power and current are the period's MIN_/MAX_ values; None means not measured.
    """

    local_second: int | None
    local_date: date | None
    weekday: int | None
    energy_kwh: Decimal  # consumed since session start
    duration_us: int  # since the start of the charging session
    min_power_kw: Decimal | None
    max_power_kw: Decimal | None
    min_current_a: Decimal | None
    max_current_a: Decimal | None
    reservation: ReservationState


class Rule:
    """A TariffRestrictions compiled for fast evaluation (integers, no optional lookups)."""

    __slots__ = (
        "current_max",
        "current_min",
        "date_end",
        "date_start",
        "duration_max_us",
        "duration_min_us",
        "kwh_max",
        "kwh_min",
        "power_max",
        "power_min",
        "reservation",
        "time_end_s",
        "time_start_s",
        "uses_clock",
        "uses_current",
        "uses_power",
        "weekdays",
    )

    def __init__(self, restrictions: TariffRestrictions | None) -> None:
        r = restrictions or TariffRestrictions()
        self.time_start_s = None if r.start_time is None else _second_of_day(r.start_time)
        # "00:00" as an end time is the end of the day, not its start.
        self.time_end_s = (
            None if r.end_time is None else (_second_of_day(r.end_time) or SECONDS_PER_DAY)
        )
        self.date_start = r.start_date
        self.date_end = r.end_date
        self.weekdays = (
            None if r.day_of_week is None else frozenset(d.weekday for d in r.day_of_week)
        )
        self.kwh_min = r.min_kwh
        self.kwh_max = r.max_kwh
        self.power_min = r.min_power_kw
        self.power_max = r.max_power_kw
        self.current_min = r.min_current_a
        self.current_max = r.max_current_a
        self.duration_min_us = (
            None if r.min_duration_s is None else r.min_duration_s * MICROS_PER_SECOND
        )
        self.duration_max_us = (
            None if r.max_duration_s is None else r.max_duration_s * MICROS_PER_SECOND
        )
        self.reservation = r.reservation
        self.uses_power = self.power_min is not None or self.power_max is not None
        self.uses_current = self.current_min is not None or self.current_max is not None
        self.uses_clock = (
            self.time_start_s is not None
            or self.time_end_s is not None
            or self.date_start is not None
            or self.date_end is not None
            or self.weekdays is not None
        )

    def holds(self, m: Moment) -> bool:
        # Reservation first: it partitions the session, so most elements fail here cheaply.
        if self.reservation is None:
            if m.reservation is not ReservationState.NONE:
                return False
        elif self.reservation is ReservationRestriction.RESERVATION:
            if m.reservation is ReservationState.NONE:
                return False
        elif m.reservation is not ReservationState.EXPIRED:
            return False
        if self.uses_clock and not self._clock_holds(m):
            return False
        if self.kwh_min is not None and m.energy_kwh < self.kwh_min:
            return False
        if self.kwh_max is not None and m.energy_kwh >= self.kwh_max:
            return False
        if self.duration_min_us is not None and m.duration_us < self.duration_min_us:
            return False
        if self.duration_max_us is not None and m.duration_us >= self.duration_max_us:
            return False
        if self.uses_power and not _within(
            self.power_min, self.power_max, m.min_power_kw, m.max_power_kw
        ):
            return False
        return not self.uses_current or _within(
            self.current_min, self.current_max, m.min_current_a, m.max_current_a
        )

    def _clock_holds(self, m: Moment) -> bool:
        assert m.local_second is not None and m.local_date is not None  # index.uses_clock
        if self.weekdays is not None and m.weekday not in self.weekdays:
            return False
        if self.date_start is not None and m.local_date < self.date_start:
            return False
        if self.date_end is not None and m.local_date >= self.date_end:
            return False
        return window_holds(self.time_start_s, self.time_end_s, m.local_second)


def window_holds(start_s: int | None, end_s: int | None, now_s: int) -> bool:
    """Whether the local second of the day `now_s` lies in a start/end_time window.

    Seconds of the day as `Rule` holds them (an end "00:00" is 86 400, the end of the day).
    One-sided: start alone runs to midnight, end alone from midnight.
    """
    if start_s is None:
        return end_s is None or now_s < end_s
    if end_s is None:
        return now_s >= start_s
    if start_s < end_s:
        return start_s <= now_s < end_s
    # Wraps past midnight (or start == end: the whole day).
    return now_s >= start_s or now_s < end_s


def _within(
    bound_min: Decimal | None,
    bound_max: Decimal | None,
    period_min: Decimal | None,
    period_max: Decimal | None,
) -> bool:
    """min_* compares with the period's MIN_ value, max_* with its MAX_ value.

    So an element applies only when the whole period satisfies it. A period that reports
    only one of the two values is described by that one. A period that reports neither
    cannot satisfy a power or current restriction (the CPO did not measure it).
    """
    low = period_min if period_min is not None else period_max
    high = period_max if period_max is not None else period_min
    if low is None or high is None:
        return False
    if bound_min is not None and low < bound_min:
        return False
    return bound_max is None or high < bound_max


def _second_of_day(value: time) -> int:
    return value.hour * 3600 + value.minute * 60


@dataclass(frozen=True, slots=True)
class Candidate:
    """One element's component of one dimension, in tariff order, with its compiled rule."""

    element_index: int
    component: PriceComponent
    rule: Rule
    vat_factor: Decimal  # component.vat_factor, computed once

    def __hash__(self) -> int:
        return hash((self.element_index, self.component.dimension))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Candidate)
            and other.element_index == self.element_index
            and other.component.dimension == self.component.dimension
        )


class TariffIndex:
    """Per dimension, the candidates in list order; and every threshold that can flip one."""

    __slots__ = (
        "by_dimension",
        "clock_seconds",
        "current_thresholds_a",
        "duration_cuts_us",
        "kwh_cuts",
        "power_thresholds_kw",
        "uses_clock",
    )

    def __init__(self, elements: Sequence[TariffElement]) -> None:
        by_dimension: dict[TariffDimension, list[Candidate]] = {d: [] for d in TariffDimension}
        clock: set[int] = set()
        durations: set[int] = set()
        kwh: set[Decimal] = set()
        power: set[Decimal] = set()
        current: set[Decimal] = set()
        for index, element in enumerate(elements):
            rule = Rule(element.restrictions)
            seen: set[TariffDimension] = set()
            for component in element.price_components:
                # Only one component per dimension is active: the element's first one.
                if component.dimension not in seen:
                    seen.add(component.dimension)
                    by_dimension[component.dimension].append(
                        Candidate(index, component, rule, component.vat_factor)
                    )
            r = element.restrictions
            if r is None:
                continue
            for t in (rule.time_start_s, rule.time_end_s):
                if t is not None:
                    clock.add(t % SECONDS_PER_DAY)
            if (rule.time_start_s is None) != (rule.time_end_s is None):
                # A one-sided window (start..24:00 or 00:00..end) switches at local midnight.
                clock.add(0)
            if rule.date_start or rule.date_end or rule.weekdays is not None:
                clock.add(0)  # the local midnight, where date and weekday change
            for d in (rule.duration_min_us, rule.duration_max_us):
                if d is not None and d > 0:
                    durations.add(d)
            for k in (r.min_kwh, r.max_kwh):
                if k is not None and k > 0:
                    kwh.add(k)
            power.update(p for p in (r.min_power_kw, r.max_power_kw) if p is not None)
            current.update(a for a in (r.min_current_a, r.max_current_a) if a is not None)
        self.by_dimension: dict[TariffDimension, tuple[Candidate, ...]] = {
            d: tuple(c) for d, c in by_dimension.items()
        }
        self.clock_seconds: tuple[int, ...] = tuple(sorted(clock))
        self.uses_clock = bool(clock)
        self.duration_cuts_us: tuple[int, ...] = tuple(sorted(durations))
        self.kwh_cuts: tuple[Decimal, ...] = tuple(sorted(kwh))
        self.power_thresholds_kw: tuple[Decimal, ...] = tuple(sorted(power))
        self.current_thresholds_a: tuple[Decimal, ...] = tuple(sorted(current))

    def select(self, dimension: TariffDimension, moment: Moment) -> Candidate | None:
        """The first element in list order with a `dimension` component whose rule holds."""
        for candidate in self.by_dimension[dimension]:
            if candidate.rule.holds(moment):
                return candidate
        return None


@dataclass(frozen=True)
class Tariff:
    """An OCPI 2.2.1 Tariff. Immutable; `index` is derived from `elements` at construction."""

    id: str
    currency: str
    elements: tuple[TariffElement, ...]
    country_code: str | None = None
    party_id: str | None = None
    type: TariffType | None = None
    tariff_alt_text: tuple[DisplayText, ...] = ()
    tariff_alt_url: str | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    # Informational only (never priced); kept as the decoded JSON it arrived as.
    energy_mix: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    last_updated: datetime | None = None
    index: TariffIndex = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", TariffIndex(self.elements))

    def is_valid_at(self, instant: datetime) -> bool:
        """Within [start_date_time, end_date_time): the window a session must start in."""
        if self.start_date_time is not None and instant < self.start_date_time:
            return False
        return self.end_date_time is None or instant < self.end_date_time


# ----------------------------------------------------------------------------- parsing
def parse_tariff(obj: object) -> Tariff:
    """An OCPI 2.2.1 Tariff from its decoded JSON, or `InvalidTariff` saying what is wrong."""
    tariff_obj = _mapping(obj, "tariff")
    tariff_id = _string(_required(tariff_obj, "id", "tariff"), "tariff.id", TARIFF_ID_LENGTH_MAX)
    where = f"tariff {tariff_id!r}"
    currency = _string(_required(tariff_obj, "currency", where), f"{where}: currency", 3)
    if not _CURRENCY.match(currency):
        raise InvalidTariff(f"{where}: currency {currency!r} is not an ISO 4217 code")
    try:
        currency_exponent(currency)
    except UnknownCurrency as exc:
        raise InvalidTariff(f"{where}: {exc}") from exc
    elements_raw = _list(_required(tariff_obj, "elements", where), f"{where}: elements")
    if not elements_raw:
        raise InvalidTariff(f"{where}: elements must hold at least one tariff element")
    if len(elements_raw) > ELEMENTS_MAX:
        raise InvalidTariff(f"{where}: more than {ELEMENTS_MAX} elements")
    elements = tuple(_element(e, f"{where}: elements[{i}]") for i, e in enumerate(elements_raw))
    min_price = _optional(tariff_obj, "min_price", lambda v: _price(v, f"{where}: min_price"))
    max_price = _optional(tariff_obj, "max_price", lambda v: _price(v, f"{where}: max_price"))
    if min_price is not None and max_price is not None:
        if min_price.excl_vat > max_price.excl_vat:
            raise InvalidTariff(f"{where}: min_price.excl_vat exceeds max_price.excl_vat")
        if (
            min_price.incl_vat is not None
            and max_price.incl_vat is not None
            and min_price.incl_vat > max_price.incl_vat
        ):
            raise InvalidTariff(f"{where}: min_price.incl_vat exceeds max_price.incl_vat")
    start = _optional(
        tariff_obj, "start_date_time", lambda v: _datetime(v, f"{where}: start_date_time")
    )
    end = _optional(tariff_obj, "end_date_time", lambda v: _datetime(v, f"{where}: end_date_time"))
    if start is not None and end is not None and end <= start:
        raise InvalidTariff(f"{where}: end_date_time must be after start_date_time")
    return Tariff(
        id=tariff_id,
        currency=currency,
        elements=elements,
        country_code=_optional(
            tariff_obj, "country_code", lambda v: _string(v, f"{where}: country_code", 2)
        ),
        party_id=_optional(tariff_obj, "party_id", lambda v: _string(v, f"{where}: party_id", 3)),
        type=_optional(tariff_obj, "type", lambda v: _enum(TariffType, v, f"{where}: type")),
        tariff_alt_text=tuple(
            _display_text(t, f"{where}: tariff_alt_text[{i}]")
            for i, t in enumerate(
                _list(tariff_obj.get("tariff_alt_text") or [], f"{where}: tariff_alt_text")
            )
        ),
        tariff_alt_url=_optional(
            tariff_obj, "tariff_alt_url", lambda v: _string(v, f"{where}: tariff_alt_url")
        ),
        min_price=min_price,
        max_price=max_price,
        start_date_time=start,
        end_date_time=end,
        energy_mix=_optional(
            tariff_obj, "energy_mix", lambda v: _mapping(v, f"{where}: energy_mix")
        ),
        last_updated=_optional(
            tariff_obj, "last_updated", lambda v: _datetime(v, f"{where}: last_updated")
        ),
    )


def _element(obj: object, where: str) -> TariffElement:
    element = _mapping(obj, where)
    raw = _list(_required(element, "price_components", where), f"{where}.price_components")
    if not raw:
        raise InvalidTariff(f"{where}.price_components must hold at least one component")
    if len(raw) > PRICE_COMPONENTS_MAX:
        raise InvalidTariff(f"{where}.price_components: more than {PRICE_COMPONENTS_MAX}")
    components = tuple(_component(c, f"{where}.price_components[{i}]") for i, c in enumerate(raw))
    restrictions = _optional(
        element, "restrictions", lambda v: _restrictions(v, f"{where}.restrictions")
    )
    if restrictions is not None and restrictions.reservation is not None:
        for component in components:
            # OCPI: a reservation element may only price FLAT (fee) and TIME (reserved time).
            if component.dimension not in (TariffDimension.FLAT, TariffDimension.TIME):
                raise InvalidTariff(
                    f"{where}: a reservation element may hold only FLAT and TIME components,"
                    f" not {component.dimension}"
                )
    return TariffElement(price_components=components, restrictions=restrictions)


def _component(obj: object, where: str) -> PriceComponent:
    component = _mapping(obj, where)
    dimension = _enum(TariffDimension, _required(component, "type", where), f"{where}.type")
    price = _decimal(_required(component, "price", where), f"{where}.price")
    if price < 0:
        raise InvalidTariff(f"{where}.price must not be negative")
    vat = _optional(component, "vat", lambda v: _decimal(v, f"{where}.vat"))
    if vat is not None and not 0 <= vat <= 100:
        raise InvalidTariff(f"{where}.vat must be a percentage between 0 and 100")
    step_size = _integer(_required(component, "step_size", where), f"{where}.step_size")
    if step_size < 0:
        raise InvalidTariff(f"{where}.step_size must not be negative")
    return PriceComponent(dimension=dimension, price=price, vat_percent=vat, step_size=step_size)


def _restrictions(obj: object, where: str) -> TariffRestrictions:
    r = _mapping(obj, where)

    def dec(key: str) -> Decimal | None:
        value = _optional(r, key, lambda v: _decimal(v, f"{where}.{key}"))
        if value is not None and value < 0:
            raise InvalidTariff(f"{where}.{key} must not be negative")
        return value

    def seconds(key: str) -> int | None:
        value = _optional(r, key, lambda v: _integer(v, f"{where}.{key}"))
        if value is not None and value < 0:
            raise InvalidTariff(f"{where}.{key} must not be negative")
        return value

    days_raw = r.get("day_of_week")
    days = None
    if days_raw is not None:
        days_list = _list(days_raw, f"{where}.day_of_week")
        # An empty list restricts nothing, the same as an absent field.
        if days_list:
            days = frozenset(
                _enum(DayOfWeek, d, f"{where}.day_of_week[{i}]") for i, d in enumerate(days_list)
            )
    restrictions = TariffRestrictions(
        start_time=_optional(r, "start_time", lambda v: _hhmm(v, f"{where}.start_time")),
        end_time=_optional(r, "end_time", lambda v: _hhmm(v, f"{where}.end_time")),
        start_date=_optional(r, "start_date", lambda v: _day(v, f"{where}.start_date")),
        end_date=_optional(r, "end_date", lambda v: _day(v, f"{where}.end_date")),
        min_kwh=dec("min_kwh"),
        max_kwh=dec("max_kwh"),
        min_current_a=dec("min_current"),
        max_current_a=dec("max_current"),
        min_power_kw=dec("min_power"),
        max_power_kw=dec("max_power"),
        min_duration_s=seconds("min_duration"),
        max_duration_s=seconds("max_duration"),
        day_of_week=days,
        reservation=_optional(
            r,
            "reservation",
            lambda v: _enum(ReservationRestriction, v, f"{where}.reservation"),
        ),
    )
    _check_bounds(restrictions, where)
    return restrictions


def _check_bounds(r: TariffRestrictions, where: str) -> None:
    """A lower bound at or above its upper bound makes the element dead: surely a typo."""
    pairs: tuple[tuple[str, Decimal | int | date | None, Decimal | int | date | None], ...] = (
        ("kwh", r.min_kwh, r.max_kwh),
        ("current", r.min_current_a, r.max_current_a),
        ("power", r.min_power_kw, r.max_power_kw),
        ("duration", r.min_duration_s, r.max_duration_s),
        ("date", r.start_date, r.end_date),
    )
    for name, low, high in pairs:
        if low is not None and high is not None and low >= high:  # type: ignore[operator]
            lower = "start_date" if name == "date" else f"min_{name}"
            upper = "end_date" if name == "date" else f"max_{name}"
            raise InvalidTariff(f"{where}: {lower} must be below {upper}")


def _price(obj: object, where: str) -> Price:
    p = _mapping(obj, where)
    excl = _decimal(_required(p, "excl_vat", where), f"{where}.excl_vat")
    incl = _optional(p, "incl_vat", lambda v: _decimal(v, f"{where}.incl_vat"))
    if excl < 0 or (incl is not None and incl < 0):
        raise InvalidTariff(f"{where} must not be negative")
    if incl is not None and incl < excl:
        raise InvalidTariff(f"{where}.incl_vat is below excl_vat")
    return Price(excl_vat=excl, incl_vat=incl)


def _display_text(obj: object, where: str) -> DisplayText:
    t = _mapping(obj, where)
    return DisplayText(
        language=_string(_required(t, "language", where), f"{where}.language", 2),
        text=_string(_required(t, "text", where), f"{where}.text", 512),
    )


# ------------------------------------------------------------------- JSON value helpers
def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidTariff(f"{where}: expected a JSON object, got {_kind(value)}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidTariff(f"{where}: expected a JSON array, got {_kind(value)}")
    return value


def _required(obj: Mapping[str, Any], key: str, where: str) -> object:
    value = obj.get(key)
    if value is None:
        raise InvalidTariff(f"{where}: missing required field {key!r}")
    return value


def _optional(obj: Mapping[str, Any], key: str, convert: Callable[[object], _T]) -> _T | None:
    value = obj.get(key)
    return None if value is None else convert(value)


def _string(value: object, where: str, length_max: int | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidTariff(f"{where}: expected a string, got {_kind(value)}")
    if length_max is not None and len(value) > length_max:
        raise InvalidTariff(f"{where}: longer than {length_max} characters")
    return value


def to_decimal(value: object) -> Decimal | None:
    """A finite Decimal from a JSON number (int, float via its text), Decimal or numeric text.

    Returns None when `value` is not a number; callers raise their own typed error.
    Booleans are refused although Python counts them as ints.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(str(value))  # the shortest text that round-trips: 0.1 -> 0.1
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return result if result.is_finite() else None


def _decimal(value: object, where: str) -> Decimal:
    result = to_decimal(value)
    if result is None:
        raise InvalidTariff(f"{where}: expected a finite number, got {_kind(value)}")
    return result


def _integer(value: object, where: str) -> int:
    number = _decimal(value, where)
    if number != number.to_integral_value():
        raise InvalidTariff(f"{where}: expected a whole number, got {number}")
    return int(number)


def _enum(kind: type[_E], value: object, where: str) -> _E:
    try:
        return kind(_string(value, where))
    except ValueError:
        allowed = ", ".join(kind.__members__)
        raise InvalidTariff(f"{where}: {value!r} is not one of {allowed}") from None


def _hhmm(value: object, where: str) -> time:
    text = _string(value, where)
    if not _HHMM.match(text):
        raise InvalidTariff(f"{where}: expected HH:MM (24 h, leading zeros), got {text!r}")
    return time(int(text[:2]), int(text[3:]))


def _day(value: object, where: str) -> date:
    text = _string(value, where)
    if not _YYYY_MM_DD.match(text):
        raise InvalidTariff(f"{where}: expected YYYY-MM-DD, got {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidTariff(f"{where}: no such date {text!r}") from None


def parse_utc_datetime(text: str) -> datetime | None:
    """An OCPI DateTime (RFC 3339; no offset means UTC) as an aware UTC datetime, or None."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _datetime(value: object, where: str) -> datetime:
    text = _string(value, where)
    result = parse_utc_datetime(text)
    if result is None:
        raise InvalidTariff(f"{where}: expected an RFC 3339 date-time, got {text!r}")
    return result


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, int | float | Decimal):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


# ------------------------------------------------------------------------ serializing
def tariff_to_dict(tariff: Tariff) -> dict[str, Any]:
    """The OCPI JSON form, numbers as decimal strings (see docs/pricing.md, "Numbers")."""
    out: dict[str, Any] = {}
    if tariff.country_code is not None:
        out["country_code"] = tariff.country_code
    if tariff.party_id is not None:
        out["party_id"] = tariff.party_id
    out["id"] = tariff.id
    out["currency"] = tariff.currency
    if tariff.type is not None:
        out["type"] = tariff.type.value
    if tariff.tariff_alt_text:
        out["tariff_alt_text"] = [
            {"language": t.language, "text": t.text} for t in tariff.tariff_alt_text
        ]
    if tariff.tariff_alt_url is not None:
        out["tariff_alt_url"] = tariff.tariff_alt_url
    for key, price in (("min_price", tariff.min_price), ("max_price", tariff.max_price)):
        if price is not None:
            out[key] = _price_to_dict(price)
    out["elements"] = [_element_to_dict(e) for e in tariff.elements]
    for key, instant in (
        ("start_date_time", tariff.start_date_time),
        ("end_date_time", tariff.end_date_time),
    ):
        if instant is not None:
            out[key] = format_utc(instant)
    if tariff.energy_mix is not None:
        out["energy_mix"] = dict(tariff.energy_mix)
    if tariff.last_updated is not None:
        out["last_updated"] = format_utc(tariff.last_updated)
    return out


def format_utc(instant: datetime) -> str:
    """OCPI DateTime text: UTC with a Z, seconds, and fractions only when present."""
    text = instant.astimezone(UTC).replace(tzinfo=None).isoformat()
    return f"{text}Z"


def _price_to_dict(price: Price) -> dict[str, str]:
    out = {"excl_vat": str(price.excl_vat)}
    if price.incl_vat is not None:
        out["incl_vat"] = str(price.incl_vat)
    return out


def _element_to_dict(element: TariffElement) -> dict[str, Any]:
    components = []
    for c in element.price_components:
        component: dict[str, Any] = {"type": c.dimension.value, "price": str(c.price)}
        if c.vat_percent is not None:
            component["vat"] = str(c.vat_percent)
        component["step_size"] = c.step_size
        components.append(component)
    out: dict[str, Any] = {"price_components": components}
    if element.restrictions is not None:
        out["restrictions"] = _restrictions_to_dict(element.restrictions)
    return out


def _restrictions_to_dict(r: TariffRestrictions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, clock in (("start_time", r.start_time), ("end_time", r.end_time)):
        if clock is not None:
            out[key] = clock.strftime("%H:%M")
    for key, day in (("start_date", r.start_date), ("end_date", r.end_date)):
        if day is not None:
            out[key] = day.isoformat()
    numbers: tuple[tuple[str, Decimal | None], ...] = (
        ("min_kwh", r.min_kwh),
        ("max_kwh", r.max_kwh),
        ("min_current", r.min_current_a),
        ("max_current", r.max_current_a),
        ("min_power", r.min_power_kw),
        ("max_power", r.max_power_kw),
    )
    for key, number in numbers:
        if number is not None:
            out[key] = str(number)
    for key, seconds in (("min_duration", r.min_duration_s), ("max_duration", r.max_duration_s)):
        if seconds is not None:
            out[key] = seconds
    if r.day_of_week is not None:
        out["day_of_week"] = [d.value for d in DayOfWeek if d in r.day_of_week]
    if r.reservation is not None:
        out["reservation"] = r.reservation.value
    return out
