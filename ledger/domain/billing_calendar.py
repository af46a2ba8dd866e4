"""Billing calendar: partner settlement periods and subscription cycles in the tenant's zone.

Pure arithmetic on instants: timezone-aware datetimes in, UTC datetimes out, every interval
half-open [start, end). Boundaries are computed on local dates in the tenant's IANA time
zone and fall on the first instant of a local day (local midnight, or the end of a
daylight-saving gap that swallows midnight), so they never move with the clocks: a Berlin
month holding a clock change lasts 743 h or 745 h in UTC, not 744 h.

- Partner periods (BILLING_RULES "Corporate billing"): calendar months, quarters (Jan, Apr,
  Jul, Oct), halves (Jan, Jul) or years; the period holding the partner configuration's
  effective time starts at that time (a partial first period). A period closes at its
  `end` (settlement runs a grace after it, `PARTNER_SETTLEMENT_GRACE_HOURS`); the next
  period is `partner_period_containing(period.end, ...)`.
- Subscription cycles (BILLING_RULES "Subscriptions"): anniversary cycles start on the
  subscription's local day every `cycle_months`, the day clamped to the month's last day
  but remembered (a 31st anchor gives Feb 28/29, Mar 31, Apr 30, May 31); calendar cycles
  are blocks of calendar months, the first one partial and prorated by local days.

The decisions the rules leave open are in docs/billing-decisions.md, "Billing calendar".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.domain.errors import InvalidInput
from ledger.domain.money import Money

BillingPeriod = Literal["monthly", "quarterly", "semi_annual", "annual"]
CycleAnchor = Literal["anniversary", "calendar"]

MONTHS_PER_YEAR: Final = 12

BILLING_PERIOD_MONTHS: Final[dict[BillingPeriod, int]] = {
    "monthly": 1,
    "quarterly": 3,
    "semi_annual": 6,
    "annual": 12,
}

# A plan bills at least once a year: the rules' longest period is annual, and a longer
# pre-paid cycle would hold a subscriber's money (and an allowance) for more than a year.
SUBSCRIPTION_CYCLE_MONTHS_MAX: Final = 12
# Calendar-anchored cycles are blocks of the calendar year (like partner periods), which
# exist only for lengths that divide the year: a 5-month "calendar" block has no calendar.
CALENDAR_CYCLE_MONTHS: Final = frozenset(
    m for m in range(1, MONTHS_PER_YEAR + 1) if MONTHS_PER_YEAR % m == 0
)

assert set(BILLING_PERIOD_MONTHS) == set(get_args(BillingPeriod))
assert set(BILLING_PERIOD_MONTHS.values()) <= CALENDAR_CYCLE_MONTHS, "periods tile the year"
assert max(CALENDAR_CYCLE_MONTHS) <= SUBSCRIPTION_CYCLE_MONTHS_MAX


@dataclass(frozen=True, slots=True)
class PartnerPeriod:
    """One billing period of a partner, [start, end) in UTC."""

    start: datetime
    end: datetime

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class SubscriptionCycle:
    """One cycle of a subscription, [start, end) in UTC.

    `index` counts cycles from 0, the cycle the subscription starts in. The fee share due is
    `days_used / days_in_cycle` (local days): below 1 only for a calendar-anchored first cycle.
    """

    start: datetime
    end: datetime
    index: int
    days_used: int
    days_in_cycle: int

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end

    @property
    def proration(self) -> Decimal:
        """The share of the fee due, in (0, 1]; to the context's precision (28 digits).

        For money use `prorated`, which is exact whenever the result has a finite decimal
        expansion (1 day of 62 of 0.31 is exactly 0.005, not 0.00499...).
        """
        return Decimal(self.days_used) / Decimal(self.days_in_cycle)

    def prorated(self, fee: Money) -> Money:
        """The fee for this cycle, unrounded: rounding is the caller's, once, on the line."""
        if self.days_used == self.days_in_cycle:
            return fee
        # Multiply before dividing: the only inexact step is then the one division.
        return Money(fee.amount * self.days_used / self.days_in_cycle, fee.currency)


def partner_period_containing(
    at: datetime,
    period: BillingPeriod,
    time_zone: str,
    first_start: datetime | None = None,
) -> PartnerPeriod:
    """The partner's billing period holding `at`.

    `first_start` is when the partner's configuration took effect: the period holding it
    starts there (partial), and an instant before it belongs to no period.
    """
    zone = _zone(time_zone)
    months = _billing_period_months(period)
    _require_aware(at, "at")
    if first_start is not None:
        _require_aware(first_start, "first_start")
        if at < first_start:
            raise InvalidInput(
                f"{at.isoformat()} is before the partner's first period starts at "
                f"{first_start.isoformat()}"
            )
    block = _calendar_block(_month_number(at, zone), months)
    start = _day_start(_first_of_month(block), zone)
    end = _day_start(_first_of_month(block + months), zone)
    if first_start is not None and start < first_start:
        start = first_start.astimezone(UTC)
    return PartnerPeriod(start=start, end=end)


def subscription_cycle_containing(
    at: datetime,
    anchor: CycleAnchor,
    subscribed_at: datetime,
    cycle_months: int,
    time_zone: str,
) -> SubscriptionCycle:
    """The subscription's cycle holding `at` (at or after `subscribed_at`).

    The first cycle starts at `subscribed_at` with either anchor; later cycles start on the
    first instant of their local day. The cycle after `cycle` is the one holding `cycle.end`.
    """
    zone = _zone(time_zone)
    _require_aware(at, "at")
    _require_aware(subscribed_at, "subscribed_at")
    _check_cycle_months(anchor, cycle_months)
    if at < subscribed_at:
        raise InvalidInput(
            f"{at.isoformat()} is before the subscription starts at {subscribed_at.isoformat()}"
        )
    if anchor == "anniversary":
        return _anniversary_cycle(at, subscribed_at, cycle_months, zone)
    return _calendar_cycle(at, subscribed_at, cycle_months, zone)


def _anniversary_cycle(
    at: datetime, subscribed_at: datetime, cycle_months: int, zone: ZoneInfo
) -> SubscriptionCycle:
    anchor_day = subscribed_at.astimezone(zone).date()
    months_since = _month_number(at, zone) - _date_month_number(anchor_day)
    # `at` lies in the month of anniversary `index` or after it; before that anniversary's
    # day within its month, it still belongs to the previous cycle.
    index = months_since // cycle_months
    if index > 0 and at < _day_start(_anniversary(anchor_day, index * cycle_months), zone):
        index -= 1
    start_day = _anniversary(anchor_day, index * cycle_months)
    end_day = _anniversary(anchor_day, (index + 1) * cycle_months)
    start = subscribed_at.astimezone(UTC) if index == 0 else _day_start(start_day, zone)
    days = (end_day - start_day).days
    return SubscriptionCycle(
        start=start,
        end=_day_start(end_day, zone),
        index=index,
        days_used=days,
        days_in_cycle=days,
    )


def _calendar_cycle(
    at: datetime, subscribed_at: datetime, cycle_months: int, zone: ZoneInfo
) -> SubscriptionCycle:
    first_block = _calendar_block(_month_number(subscribed_at, zone), cycle_months)
    block = _calendar_block(_month_number(at, zone), cycle_months)
    start_day = _first_of_month(block)
    end_day = _first_of_month(block + cycle_months)
    days_in_cycle = (end_day - start_day).days
    index = (block - first_block) // cycle_months
    if index > 0:
        return SubscriptionCycle(
            start=_day_start(start_day, zone),
            end=_day_start(end_day, zone),
            index=index,
            days_used=days_in_cycle,
            days_in_cycle=days_in_cycle,
        )
    # The subscription day counts whole, whatever the hour: proration counts local dates,
    # so a 23-hour or 25-hour day is one day like any other.
    days_used = (end_day - subscribed_at.astimezone(zone).date()).days
    return SubscriptionCycle(
        start=subscribed_at.astimezone(UTC),
        end=_day_start(end_day, zone),
        index=0,
        days_used=days_used,
        days_in_cycle=days_in_cycle,
    )


def local_day_end(day: date, time_zone: str) -> datetime:
    """The end of the local `day`, exclusive: the first instant of the next local day, in
    UTC (a day holding a clock change lasts 23 h or 25 h)."""
    return _day_start(day + timedelta(days=1), _zone(time_zone))


def local_instant(wall_time: datetime, time_zone: str) -> datetime:
    """A naive local wall time in `time_zone`, in UTC. A wall time that occurs twice (the
    hour the clocks go back) is its first occurrence; one the clocks skip is read with the
    offset before the change (zoneinfo's fold=0)."""
    assert wall_time.tzinfo is None, "a wall time is naive"
    return wall_time.replace(tzinfo=_zone(time_zone), fold=0).astimezone(UTC)


def _zone(time_zone: str) -> ZoneInfo:
    # ZoneInfo caches instances by key itself; no cache of ours needed.
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {time_zone!r} (IANA name expected)") from exc


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} must be timezone-aware, got {value.isoformat()}")


def _billing_period_months(period: BillingPeriod) -> int:
    try:
        return BILLING_PERIOD_MONTHS[period]
    except KeyError:
        expected = ", ".join(BILLING_PERIOD_MONTHS)
        raise InvalidInput(f"unknown billing period {period!r} (one of {expected})") from None


def _check_cycle_months(anchor: CycleAnchor, cycle_months: int) -> None:
    if isinstance(cycle_months, bool) or not isinstance(cycle_months, int):
        raise InvalidInput(f"cycle_months must be a whole number, got {cycle_months!r}")
    if anchor == "anniversary":
        if not 1 <= cycle_months <= SUBSCRIPTION_CYCLE_MONTHS_MAX:
            raise InvalidInput(
                f"cycle_months must be 1..{SUBSCRIPTION_CYCLE_MONTHS_MAX}, got {cycle_months}"
            )
    elif anchor == "calendar":
        if cycle_months not in CALENDAR_CYCLE_MONTHS:
            allowed = ", ".join(str(m) for m in sorted(CALENDAR_CYCLE_MONTHS))
            raise InvalidInput(
                f"a calendar-anchored cycle_months must divide the year ({allowed}), "
                f"got {cycle_months}"
            )
    else:
        raise InvalidInput(f"unknown cycle anchor {anchor!r} (anniversary or calendar)")


def _month_number(at: datetime, zone: ZoneInfo) -> int:
    """Months since year 0 of the local month holding `at`: month arithmetic is integer."""
    return _date_month_number(at.astimezone(zone).date())


def _date_month_number(day: date) -> int:
    return day.year * MONTHS_PER_YEAR + day.month - 1


def _calendar_block(month_number: int, months: int) -> int:
    """The first month of the calendar block of `months` holding the month (Jan-aligned)."""
    return month_number - month_number % months


def _first_of_month(month_number: int) -> date:
    year, month_index = divmod(month_number, MONTHS_PER_YEAR)
    return date(year, month_index + 1, 1)


def _anniversary(anchor_day: date, months_later: int) -> date:
    """The anchor's day `months_later`, clamped to that month's last day (never drifting)."""
    month_number = _date_month_number(anchor_day) + months_later
    first = _first_of_month(month_number)
    days_in_month = (_first_of_month(month_number + 1) - first).days
    return first.replace(day=min(anchor_day.day, days_in_month))


def _day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of the local `day`, in UTC.

    fold=0 gives the earlier of a repeated midnight, and for a midnight skipped by a
    daylight-saving gap (America/Santiago, 2024-09-08) the instant the gap ends.
    """
    return datetime.combine(day, time(0), zone).astimezone(UTC)
