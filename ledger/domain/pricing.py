"""Pricing one charging session under an OCPI 2.2.1 tariff, exactly.

`price_session(tariff, periods, time_zone, session_start, session_end)` returns a
`SessionPrice` with every OCPI CDR cost field exact (Decimal, never rounded) and the amounts
to charge rounded once, half up, to the currency's minor unit.

How a price is found (OCPI 2.2.1 with its d2 errata; docs/pricing.md has the examples):
1. Periods are cut wherever a restriction could switch inside them: local clock boundaries
   (start/end_time, local midnight for dates and weekdays, DST transitions), duration
   thresholds from session start, and kWh thresholds (energy interpolated linearly within
   the period). A CPO SHALL already cut there; cutting again changes nothing, and a CDR
   that did not cut is still priced by the rules in force at each instant.
2. For each (sub-)period and dimension the first element in list order with a component of
   that dimension whose restrictions all hold at the period's start prices it. No match: that
   dimension is free there.
3. Quantities are summed per component, then step_size is applied once per session (the
   "edition rule", tests/data/ocpi/README.md):
   - ENERGY: the billable energy total is rounded up with the step of the last ENERGY
     component that priced energy; the extra is priced at that component.
   - TIME and PARKING_TIME: rounded once together, with the step of the last component that
     priced time, except when billable parking follows charging: then charging time is not
     rounded and the billable parking total is rounded on its own with the step of the last
     PARKING_TIME component that applied. Time where no component applies (parking that
     became free) is neither billed nor rounded.
   - Reservation time (TIME under a reservation restriction) is rounded on its own.
4. Cost per component = billed quantity x price, then x (1 + vat/100) at that component's own
   rate (no vat: incl == excl). Dimension totals and the session total are their sums.
5. min_price / max_price clamp the total, separately excl. and incl. VAT.

Decisions where OCPI leaves a choice open (also in docs/pricing.md):
- FLAT is charged once per session: the first FLAT component that becomes active (at the
  earliest period whose restrictions hold). A reservation is its own phase with its own one
  FLAT (the reservation fee). A FLAT that first became active in a parking period is a fixed
  part of parking (total_parking_cost); in a reservation, of the reservation.
- Power/current restrictions: min_* compares with the period's MIN_ value, max_* with its
  MAX_ value (so an element applies only if the whole period satisfies it); a period that
  reports only one of them is described by it; a period reporting neither fails the
  restriction (falls through to later elements).
- min_price/max_price without incl_vat: the incl. VAT total moves by the same factor as the
  excl. total did (the session's own blended VAT rate); for a free session, incl == excl.
- The clamp is not spread over the dimension totals: those stay as priced and
  `price_limit_adjustment` (min_price top-up > 0, max_price cut < 0) carries the difference
  between `total_cost` and `unclamped_total_cost` (the dimension costs summed in CDR field
  order). "Exact" means 34 significant digits: a time cost such as 1 s at 1.00/h has no
  finite decimal, so sums in another order may differ in the 34th digit.
- A reservation expired when the session holds reservation periods and nothing else.
- Durations (min/max_duration) count from the first charging or parking period, so time
  spent reserved does not count.
- The tariff must be valid (start/end_date_time) at session start; the driver accepted the
  tariff in force then, so a tariff ending mid-session still prices the whole session.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import (
    ROUND_CEILING,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from enum import StrEnum
from functools import lru_cache
from typing import Any

from ledger.domain.errors import InvalidCdr, InvalidTariff
from ledger.domain.money import round_to_minor_unit
from ledger.domain.tariff import (
    Candidate,
    Moment,
    Price,
    ReservationState,
    Tariff,
    TariffDimension,
    TariffIndex,
)

# Decimal arithmetic never depends on the caller's thread context: 34 digits (IEEE decimal128)
# keeps per-hour prices of microsecond durations far beyond any currency's minor unit, and
# anything that would silently lose meaning raises instead.
PRICING_CONTEXT = Context(
    prec=34, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)

MICROS_PER_SECOND = 1_000_000
MICROS_PER_HOUR = 3_600 * MICROS_PER_SECOND
MICROS_PER_DAY = 24 * 3_600 * MICROS_PER_SECOND
# A session longer than this is a data error (a lost Ended event), not a charge to bill.
SESSION_DURATION_MAX = timedelta(days=31)
# Bounds the work one session can cause (periods in, cut points per period).
PERIODS_MAX = 20_000
# Offset changes are cached per (zone, year): a few zones times the years sessions span.
TRANSITION_YEARS_CACHED_MAX = 256
_WH_PER_KWH = Decimal(1000)
_HOURS_PER_MICRO = Decimal(MICROS_PER_HOUR)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICRO = timedelta(microseconds=1)
_ZERO = Decimal(0)


class PeriodKind(StrEnum):
    CHARGING = "CHARGING"  # OCPI TIME: the EV is charging (or about to)
    PARKING = "PARKING"  # OCPI PARKING_TIME: plugged in, not charging
    RESERVATION = "RESERVATION"  # OCPI RESERVATION_TIME: reserved, before charging


@dataclass(frozen=True, slots=True)
class ChargingPeriod:
    """One OCPI charging period: it starts at `start` and ends where the next one starts.

    Produced from an OCPI CDR's charging_periods (cdr.parse_cdr) or by folding OCPP
    TransactionEvents (charging_periods.fold_charging_periods). `energy_kwh` is the energy
    delivered within the period; power and current are the period's extremes, None when
    not measured.
    """

    start: datetime  # UTC, aware
    kind: PeriodKind = PeriodKind.CHARGING
    energy_kwh: Decimal = _ZERO
    max_power_kw: Decimal | None = None
    min_power_kw: Decimal | None = None
    max_current_a: Decimal | None = None
    min_current_a: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Cost:
    """An exact cost, excl. and incl. VAT (an OCPI Price with both parts)."""

    excl_vat: Decimal
    incl_vat: Decimal

    # Arithmetic in PRICING_CONTEXT whatever the caller's context: summing costs outside
    # the pricer must not round away digits the pricer kept.
    def __add__(self, other: Cost) -> Cost:
        add = PRICING_CONTEXT.add
        return Cost(add(self.excl_vat, other.excl_vat), add(self.incl_vat, other.incl_vat))

    def __sub__(self, other: Cost) -> Cost:
        sub = PRICING_CONTEXT.subtract
        return Cost(sub(self.excl_vat, other.excl_vat), sub(self.incl_vat, other.incl_vat))

    def __neg__(self) -> Cost:
        return Cost(PRICING_CONTEXT.minus(self.excl_vat), PRICING_CONTEXT.minus(self.incl_vat))

    def rounded(self, currency: str) -> Cost:
        """Both parts half up to the currency's minor unit (the one rounding allowed)."""
        return Cost(
            round_to_minor_unit(self.excl_vat, currency),
            round_to_minor_unit(self.incl_vat, currency),
        )


ZERO_COST = Cost(_ZERO, _ZERO)


@dataclass(frozen=True, slots=True)
class SessionPrice:
    """Every OCPI CDR cost and volume field of one session, exact, plus what to charge."""

    currency: str
    total_cost: Cost  # after the min/max clamp
    total_fixed_cost: Cost
    total_energy_cost: Cost
    total_time_cost: Cost
    total_parking_cost: Cost
    total_reservation_cost: Cost
    # fixed + energy + time + parking + reservation, summed in that order, before the clamp.
    unclamped_total_cost: Cost
    # min_price top-up (> 0) or max_price cut (< 0): total_cost - unclamped_total_cost.
    price_limit_adjustment: Cost
    total_energy_kwh: Decimal
    total_time_h: Decimal  # charging + parking (the whole session, reservation excluded)
    total_parking_time_h: Decimal
    total_reservation_time_h: Decimal
    billed_energy_kwh: Decimal  # after step_size; what the ENERGY cost is for
    billed_time_h: Decimal
    billed_parking_time_h: Decimal
    billed_reservation_time_h: Decimal
    # Net and gross per VAT rate before the clamp (None: no VAT applicable), rate order.
    cost_by_vat_rate: tuple[tuple[Decimal | None, Cost], ...]
    # total_cost rounded half up to the minor unit: the amounts actually charged.
    amount_to_charge: Cost
    session_start: datetime
    session_end: datetime
    # The input periods cut at every price change (what a CDR's charging_periods list).
    periods: tuple[ChargingPeriod, ...]


def price_session(
    tariff: Tariff,
    periods: Sequence[ChargingPeriod],
    time_zone: tzinfo,
    session_start: datetime,
    session_end: datetime,
) -> SessionPrice:
    """Price a session; raises InvalidCdr for inconsistent periods, InvalidTariff if the
    tariff is not valid at session start. `time_zone` is the location's (for restrictions)."""
    with localcontext(PRICING_CONTEXT):
        return _Pricing(tariff, time_zone, session_start, session_end).run(periods)


# --------------------------------------------------------------------- time helpers
def to_micros(instant: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    return (instant - _EPOCH) // _ONE_MICRO


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _check_aware(instant: datetime, what: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidCdr(f"{what} must carry a time zone (UTC), got {instant.isoformat()}")


def clock_cuts(
    clock_seconds: Sequence[int], time_zone: tzinfo, start_us: int, end_us: int
) -> list[int]:
    """Instants strictly inside (start, end) where a local clock restriction may switch.

    `clock_seconds` are local wall-clock seconds of the day (restriction start/end times,
    0 for midnight). Between two UTC offset changes (DST) wall time is UTC plus a constant,
    so the cuts are plain arithmetic. At an offset change the wall clock jumps forward (a
    boundary in the skipped range switches right then) or back (a boundary in the repeated
    range switches back then, and again at its second occurrence).
    """
    cuts: list[int] = []
    if not clock_seconds or end_us <= start_us:
        return cuts
    piece_start, offset = start_us, _offset_us(time_zone, start_us)
    for transition, offset_before, offset_after in _transitions_between(
        time_zone, start_us, end_us
    ):
        _clock_cuts_fixed(clock_seconds, offset, piece_start, transition, cuts)
        if _jumps_over(clock_seconds, transition + offset_before, transition + offset_after):
            cuts.append(transition)
        piece_start, offset = transition, offset_after
    _clock_cuts_fixed(clock_seconds, offset, piece_start, end_us, cuts)
    return cuts


def _clock_cuts_fixed(
    clock_seconds: Sequence[int], offset_us: int, start_us: int, end_us: int, out: list[int]
) -> None:
    """Cuts in (start, end) where the UTC offset is constant: wall = UTC + offset."""
    wall_start, wall_end = start_us + offset_us, end_us + offset_us
    for day in range(wall_start // MICROS_PER_DAY, wall_end // MICROS_PER_DAY + 1):
        midnight = day * MICROS_PER_DAY
        for second in clock_seconds:
            wall = midnight + second * MICROS_PER_SECOND
            if wall_start < wall < wall_end:
                out.append(wall - offset_us)


def _jumps_over(clock_seconds: Sequence[int], wall_before: int, wall_after: int) -> bool:
    """Whether a wall-clock boundary lies in the range an offset change skips or repeats."""
    low, high = min(wall_before, wall_after), max(wall_before, wall_after)
    for day in range(low // MICROS_PER_DAY, high // MICROS_PER_DAY + 1):
        for second in clock_seconds:
            if low <= day * MICROS_PER_DAY + second * MICROS_PER_SECOND < high:
                return True
    return False


def _offset_us(time_zone: tzinfo, micros: int) -> int:
    offset = from_micros(micros).astimezone(time_zone).utcoffset()
    assert offset is not None  # astimezone always yields an offset
    return offset // _ONE_MICRO


def _transitions_between(
    time_zone: tzinfo, start_us: int, end_us: int
) -> list[tuple[int, int, int]]:
    """(instant, offset before, offset after) of each offset change in (start, end)."""
    if isinstance(time_zone, timezone):
        return []  # a fixed offset never changes
    first_year = from_micros(start_us).year
    last_year = from_micros(end_us).year
    found: list[tuple[int, int, int]] = []
    for year in range(first_year, last_year + 1):
        found.extend(t for t in _transitions_in_year(time_zone, year) if start_us < t[0] < end_us)
    return found


@lru_cache(maxsize=TRANSITION_YEARS_CACHED_MAX)
def _transitions_in_year(time_zone: tzinfo, year: int) -> tuple[tuple[int, int, int], ...]:
    """Every UTC offset change in a (UTC) year: an hourly scan, refined to the second.

    Done once per zone and year (a few milliseconds) instead of searching per period. No
    zone changes its offset twice within an hour, so the hourly scan misses none.
    """
    start_us = to_micros(datetime(year, 1, 1, tzinfo=UTC))
    end_us = to_micros(datetime(year + 1, 1, 1, tzinfo=UTC))
    found: list[tuple[int, int, int]] = []
    low_us, low_offset = start_us, _offset_us(time_zone, start_us)
    while low_us < end_us:
        high_us = min(low_us + MICROS_PER_HOUR, end_us)
        high_offset = _offset_us(time_zone, high_us)
        if high_offset != low_offset:
            found.append(
                (_offset_change(time_zone, low_us, high_us, low_offset), low_offset, high_offset)
            )
        low_us, low_offset = high_us, high_offset
    return tuple(found)


def _offset_change(time_zone: tzinfo, low_us: int, high_us: int, offset_low: int) -> int:
    """First whole second in (low, high] whose UTC offset differs from `offset_low`."""
    low_s = low_us // MICROS_PER_SECOND
    high_s = -(-high_us // MICROS_PER_SECOND)
    while high_s - low_s > 1:
        middle_s = (low_s + high_s) // 2
        if _offset_us(time_zone, middle_s * MICROS_PER_SECOND) == offset_low:
            low_s = middle_s
        else:
            high_s = middle_s
    return high_s * MICROS_PER_SECOND


# ------------------------------------------------------------------------- the pricer
@dataclass(slots=True)
class _Span:
    """A (sub-)period in microseconds, with the cumulative energy at its start."""

    start_us: int
    end_us: int
    energy_kwh: Decimal
    energy_before_kwh: Decimal
    period: ChargingPeriod


class _Pricing:
    """One pricing run: accumulates quantities per component, then rounds and costs them."""

    def __init__(
        self, tariff: Tariff, time_zone: tzinfo, session_start: datetime, session_end: datetime
    ) -> None:
        _check_aware(session_start, "session start")
        _check_aware(session_end, "session end")
        if session_end < session_start:
            raise InvalidCdr("session ends before it starts")
        if session_end - session_start > SESSION_DURATION_MAX:
            raise InvalidCdr(f"session longer than {SESSION_DURATION_MAX.days} days")
        if not tariff.is_valid_at(session_start):
            raise InvalidTariff(
                f"tariff {tariff.id!r} is not valid at session start {session_start.isoformat()}"
            )
        self.tariff = tariff
        self.index: TariffIndex = tariff.index
        self.time_zone = time_zone
        self.session_start = session_start
        self.session_end = session_end
        self.start_us = to_micros(session_start)
        self.end_us = to_micros(session_end)
        # Quantities per component: kWh for ENERGY, microseconds for the time dimensions.
        self.energy_kwh: dict[Candidate, Decimal] = {}
        self.charging_us: dict[Candidate, int] = {}
        self.parking_us: dict[Candidate, int] = {}
        self.reservation_us: dict[Candidate, int] = {}
        self.last_energy: Candidate | None = None
        self.last_time: Candidate | None = None  # last TIME or PARKING_TIME that priced time
        self.last_parking: Candidate | None = None
        self.last_reservation: Candidate | None = None
        self.seen_charging = False
        self.parking_after_charging = False
        self.flat_session: Candidate | None = None
        self.flat_session_is_parking = False
        self.flat_reservation: Candidate | None = None
        self.total_energy_kwh = _ZERO
        self.total_charging_us = 0
        self.total_parking_us = 0
        self.total_reservation_us = 0
        self.reservation_state = ReservationState.RESERVED
        self.origin_us = self.start_us

    # 1. Periods to spans, cut at every instant a restriction may switch.
    def run(self, periods: Sequence[ChargingPeriod]) -> SessionPrice:
        if len(periods) > PERIODS_MAX:
            raise InvalidCdr(f"more than {PERIODS_MAX} charging periods")
        spans = self._spans(periods)
        has_reservation = any(s.period.kind is PeriodKind.RESERVATION for s in spans)
        expired = has_reservation and all(s.period.kind is PeriodKind.RESERVATION for s in spans)
        self.reservation_state = ReservationState.EXPIRED if expired else ReservationState.RESERVED
        self.origin_us = next(
            (s.start_us for s in spans if s.period.kind is not PeriodKind.RESERVATION),
            self.start_us,
        )
        refined: list[_Span] = []
        for span in spans:
            if span.end_us > span.start_us or span.energy_kwh:
                refined.extend(self._cut(span))
        for span in refined:
            self._accumulate(span)
        if not refined:
            self._flat_without_periods()
        return self._result(refined, periods, cut=len(refined) != len(spans))

    def _spans(self, periods: Sequence[ChargingPeriod]) -> list[_Span]:
        spans: list[_Span] = []
        energy_before = _ZERO
        previous_us = self.start_us
        for i, period in enumerate(periods):
            _check_aware(period.start, f"charging period {i} start")
            start_us = to_micros(period.start)
            if start_us < previous_us:
                raise InvalidCdr(
                    f"charging period {i} starts at {period.start.isoformat()}, before the"
                    " session start or the previous period"
                )
            if start_us > self.end_us:
                raise InvalidCdr(f"charging period {i} starts after the session end")
            if period.energy_kwh < 0:
                raise InvalidCdr(f"charging period {i} has negative energy")
            end_us = to_micros(periods[i + 1].start) if i + 1 < len(periods) else self.end_us
            end_us = max(start_us, min(end_us, self.end_us))
            spans.append(_Span(start_us, end_us, period.energy_kwh, energy_before, period))
            energy_before += period.energy_kwh
            previous_us = start_us
        return spans

    def _cut(self, span: _Span) -> list[_Span]:
        ix = self.index
        start_us, end_us = span.start_us, span.end_us
        duration_us = end_us - start_us
        cuts: list[tuple[int, Decimal | None]] = []
        if ix.uses_clock and duration_us > 1:
            cuts.extend(
                (t, None) for t in clock_cuts(ix.clock_seconds, self.time_zone, start_us, end_us)
            )
        for threshold_us in ix.duration_cuts_us:
            t = self.origin_us + threshold_us
            if start_us < t < end_us:
                cuts.append((t, None))
        energy, before = span.energy_kwh, span.energy_before_kwh
        if energy > 0:
            after = before + energy
            for threshold in ix.kwh_cuts:
                if before < threshold < after:
                    # The instant the threshold is reached, rounded up to the microsecond, so
                    # the next sub-period starts with at least `threshold` consumed.
                    offset_us = duration_us * (threshold - before) / energy
                    t = start_us + int(offset_us.to_integral_value(rounding=ROUND_CEILING))
                    cuts.append((min(t, end_us), threshold))
        if not cuts:
            return [span]
        return self._split(span, cuts)

    def _split(self, span: _Span, cuts: list[tuple[int, Decimal | None]]) -> list[_Span]:
        start_us, duration_us = span.start_us, span.end_us - span.start_us
        before, energy = span.energy_before_kwh, span.energy_kwh
        points: list[tuple[int, Decimal]] = []
        for t, at in cuts:
            if at is None:  # a clock or duration cut: energy interpolated linearly in time
                at = before + energy * (t - start_us) / duration_us if duration_us else before
            points.append((t, at))
        points.sort()
        pieces: list[_Span] = []
        t_prev, e_prev = start_us, before
        for t, at in [*points, (span.end_us, before + energy)]:
            at = min(max(at, e_prev), before + energy)  # monotonic, whatever the rounding
            if t == t_prev and at == e_prev:
                continue
            period = span.period
            if t_prev != start_us:
                period = replace(period, start=from_micros(t_prev))
            pieces.append(
                _Span(t_prev, t, at - e_prev, e_prev, replace(period, energy_kwh=at - e_prev))
            )
            t_prev, e_prev = t, at
        return pieces

    # 2. Select per dimension and accumulate quantities.
    def _moment(self, span: _Span) -> Moment:
        period = span.period
        local_second = local_date = weekday = None
        if self.index.uses_clock:
            local = from_micros(span.start_us).astimezone(self.time_zone)
            local_second = local.hour * 3600 + local.minute * 60 + local.second
            local_date = local.date()
            weekday = local_date.weekday()
        reservation = (
            self.reservation_state
            if period.kind is PeriodKind.RESERVATION
            else ReservationState.NONE
        )
        return Moment(
            local_second=local_second,
            local_date=local_date,
            weekday=weekday,
            energy_kwh=span.energy_before_kwh,
            duration_us=span.start_us - self.origin_us,
            min_power_kw=period.min_power_kw,
            max_power_kw=period.max_power_kw,
            min_current_a=period.min_current_a,
            max_current_a=period.max_current_a,
            reservation=reservation,
        )

    def _accumulate(self, span: _Span) -> None:
        ix = self.index
        kind = span.period.kind
        duration_us = span.end_us - span.start_us
        moment = self._moment(span)
        self.total_energy_kwh += span.energy_kwh
        if kind is PeriodKind.RESERVATION:
            self.total_reservation_us += duration_us
            if self.flat_reservation is None:
                self.flat_reservation = ix.select(TariffDimension.FLAT, moment)
            time = ix.select(TariffDimension.TIME, moment)
            if time is not None and duration_us:
                self.reservation_us[time] = self.reservation_us.get(time, 0) + duration_us
                self.last_reservation = time
            return
        if self.flat_session is None:
            self.flat_session = ix.select(TariffDimension.FLAT, moment)
            self.flat_session_is_parking = kind is PeriodKind.PARKING
        if span.energy_kwh:
            energy = ix.select(TariffDimension.ENERGY, moment)
            if energy is not None:
                self.energy_kwh[energy] = self.energy_kwh.get(energy, _ZERO) + span.energy_kwh
                self.last_energy = energy
        if kind is PeriodKind.CHARGING:
            self.seen_charging = True
            self.total_charging_us += duration_us
            time = ix.select(TariffDimension.TIME, moment) if duration_us else None
            if time is not None:
                self.charging_us[time] = self.charging_us.get(time, 0) + duration_us
                self.last_time = time
        else:
            self.total_parking_us += duration_us
            parking = ix.select(TariffDimension.PARKING_TIME, moment) if duration_us else None
            if parking is not None:
                self.parking_us[parking] = self.parking_us.get(parking, 0) + duration_us
                self.last_time = self.last_parking = parking
                self.parking_after_charging |= self.seen_charging

    def _flat_without_periods(self) -> None:
        """A session without any period still owes its FLAT fee, as at its start."""
        moment = Moment(
            local_second=None,
            local_date=None,
            weekday=None,
            energy_kwh=_ZERO,
            duration_us=0,
            min_power_kw=None,
            max_power_kw=None,
            min_current_a=None,
            max_current_a=None,
            reservation=ReservationState.NONE,
        )
        if self.index.uses_clock:
            local = self.session_start.astimezone(self.time_zone)
            moment = replace(
                moment,
                local_second=local.hour * 3600 + local.minute * 60 + local.second,
                local_date=local.date(),
                weekday=local.weekday(),
            )
        self.flat_session = self.index.select(TariffDimension.FLAT, moment)

    # 3. step_size, once per session per the edition rule.
    def _round_steps(self) -> None:
        if self.last_energy is not None:
            step_wh = self.last_energy.component.step_size
            billable_wh = sum(self.energy_kwh.values(), _ZERO) * _WH_PER_KWH
            extra_wh = _round_up(billable_wh, step_wh) - billable_wh
            if extra_wh:
                self.energy_kwh[self.last_energy] += extra_wh / _WH_PER_KWH
        if self.parking_after_charging and self.last_parking is not None:
            # Charging followed by parking: charging time exact, parking rounded on its own.
            _round_time_group(self.parking_us, self.last_parking)
        elif self.last_time is not None:
            # Otherwise charging and parking time are one total, rounded once.
            target = self.parking_us if self.last_time in self.parking_us else self.charging_us
            billable_us = sum(self.charging_us.values()) + sum(self.parking_us.values())
            extra_us = _round_up_int(billable_us, self.last_time.component.step_size) - billable_us
            target[self.last_time] += extra_us
        if self.last_reservation is not None:
            _round_time_group(self.reservation_us, self.last_reservation)

    # 4. and 5. Costs, VAT, totals, clamp.
    def _result(
        self, spans: list[_Span], periods: Sequence[ChargingPeriod], *, cut: bool
    ) -> SessionPrice:
        self._round_steps()
        by_rate: dict[Decimal | None, Cost] = {}

        def cost(candidate: Candidate, excl: Decimal) -> Cost:
            result = Cost(excl, excl * candidate.vat_factor)
            rate = candidate.component.vat_percent
            by_rate[rate] = by_rate.get(rate, ZERO_COST) + result
            return result

        energy_cost = _sum(cost(c, kwh * c.component.price) for c, kwh in self.energy_kwh.items())
        time_cost = _sum(
            cost(c, us * c.component.price / _HOURS_PER_MICRO) for c, us in self.charging_us.items()
        )
        parking_cost = _sum(
            cost(c, us * c.component.price / _HOURS_PER_MICRO) for c, us in self.parking_us.items()
        )
        reservation_cost = _sum(
            cost(c, us * c.component.price / _HOURS_PER_MICRO)
            for c, us in self.reservation_us.items()
        )
        fixed_cost = ZERO_COST
        if self.flat_session is not None:
            flat = cost(self.flat_session, self.flat_session.component.price)
            if self.flat_session_is_parking:
                parking_cost += flat
            else:
                fixed_cost = flat
        if self.flat_reservation is not None:
            reservation_cost += cost(self.flat_reservation, self.flat_reservation.component.price)
        # One fixed order, the order of the CDR fields: with time costs like 1/3600 that no
        # decimal holds exactly, 34-digit sums in another order may differ in the last digit.
        unclamped = fixed_cost + energy_cost + time_cost + parking_cost + reservation_cost
        total = _clamp(unclamped, self.tariff.min_price, self.tariff.max_price)
        currency = self.tariff.currency
        return SessionPrice(
            currency=currency,
            total_cost=total,
            total_fixed_cost=fixed_cost,
            total_energy_cost=energy_cost,
            total_time_cost=time_cost,
            total_parking_cost=parking_cost,
            total_reservation_cost=reservation_cost,
            unclamped_total_cost=unclamped,
            price_limit_adjustment=total - unclamped,
            total_energy_kwh=self.total_energy_kwh,
            total_time_h=_hours(self.total_charging_us + self.total_parking_us),
            total_parking_time_h=_hours(self.total_parking_us),
            total_reservation_time_h=_hours(self.total_reservation_us),
            billed_energy_kwh=sum(self.energy_kwh.values(), _ZERO),
            billed_time_h=_hours(sum(self.charging_us.values())),
            billed_parking_time_h=_hours(sum(self.parking_us.values())),
            billed_reservation_time_h=_hours(sum(self.reservation_us.values())),
            cost_by_vat_rate=tuple(
                sorted(by_rate.items(), key=lambda item: -1 if item[0] is None else item[0])
            ),
            amount_to_charge=total.rounded(currency),
            session_start=self.session_start,
            session_end=self.session_end,
            periods=tuple(s.period for s in spans) if cut else tuple(periods),
        )


def _round_time_group(quantities: dict[Candidate, int], last: Candidate) -> None:
    billable_us = sum(quantities.values())
    quantities[last] += _round_up_int(billable_us, last.component.step_size) - billable_us


def _round_up_int(micros: int, step_s: int) -> int:
    """`micros` rounded up to whole steps of `step_s` seconds (step 0: no rounding)."""
    if step_s <= 0:
        return micros
    step_us = step_s * MICROS_PER_SECOND
    return -(-micros // step_us) * step_us


def _round_up(quantity: Decimal, step: int) -> Decimal:
    """`quantity` rounded up to whole steps (step 0: no rounding). Exact: divmod, no division."""
    if step <= 0:
        return quantity
    whole, rest = divmod(quantity, step)
    return (whole + (1 if rest else 0)) * step


def _hours(micros: int) -> Decimal:
    return micros / _HOURS_PER_MICRO


def _sum(costs: Iterable[Cost]) -> Cost:
    total = ZERO_COST
    for c in costs:
        total += c
    return total


def _clamp(total: Cost, min_price: Price | None, max_price: Price | None) -> Cost:
    """Apply min_price then max_price, separately to excl. and incl. VAT (OCPI notes)."""
    excl, incl = total.excl_vat, total.incl_vat
    if min_price is not None:
        excl, incl = _bound(excl, incl, min_price, total, raise_to=True)
    if max_price is not None:
        excl, incl = _bound(excl, incl, max_price, total, raise_to=False)
    return Cost(excl, incl)


def _bound(
    excl: Decimal, incl: Decimal, limit: Price, unclamped: Cost, *, raise_to: bool
) -> tuple[Decimal, Decimal]:
    def beyond(value: Decimal, bound: Decimal) -> bool:
        return value < bound if raise_to else value > bound

    new_excl = limit.excl_vat if beyond(excl, limit.excl_vat) else excl
    if limit.incl_vat is not None:
        new_incl = limit.incl_vat if beyond(incl, limit.incl_vat) else incl
    elif new_excl != excl:
        # No incl_vat given: incl moves by the factor excl moved (the blended VAT rate).
        if unclamped.excl_vat:
            new_incl = new_excl * unclamped.incl_vat / unclamped.excl_vat
        else:
            new_incl = new_excl
    else:
        new_incl = incl
    return new_excl, new_incl


def decimal_text(value: Decimal) -> str:
    """Plain decimal text, no exponent, no trailing fractional zeros ("4.997", "5", "0.3")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def cost_fields(price: SessionPrice) -> dict[str, Any]:
    """The OCPI CDR cost and volume fields of a price, exact, as decimal strings."""

    def cost(c: Cost) -> dict[str, str]:
        return {"excl_vat": decimal_text(c.excl_vat), "incl_vat": decimal_text(c.incl_vat)}

    return {
        "currency": price.currency,
        "total_cost": cost(price.total_cost),
        "total_fixed_cost": cost(price.total_fixed_cost),
        "total_energy_cost": cost(price.total_energy_cost),
        "total_time_cost": cost(price.total_time_cost),
        "total_parking_cost": cost(price.total_parking_cost),
        "total_reservation_cost": cost(price.total_reservation_cost),
        "total_energy": decimal_text(price.total_energy_kwh),
        "total_time": decimal_text(price.total_time_h),
        "total_parking_time": decimal_text(price.total_parking_time_h),
        "price_limit_adjustment": cost(price.price_limit_adjustment),
        "amount_to_charge": {
            "excl_vat": str(price.amount_to_charge.excl_vat),
            "incl_vat": str(price.amount_to_charge.incl_vat),
        },
    }
