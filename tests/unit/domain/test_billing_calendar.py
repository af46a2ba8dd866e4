"""Billing calendar: partner periods and subscription cycles, pinned by hand and by property.

Expected instants are computed by hand from the zone's rules: Europe/Berlin is UTC+1 in
winter and UTC+2 from the last Sunday of March (2026-03-29, 2027-03-28, 2028-03-26) to the
last Sunday of October (2026-10-25), so local midnight is 23:00 or 22:00 UTC the day before.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.billing_calendar import (
    BILLING_PERIOD_MONTHS,
    CALENDAR_CYCLE_MONTHS,
    SUBSCRIPTION_CYCLE_MONTHS_MAX,
    BillingPeriod,
    CycleAnchor,
    PartnerPeriod,
    SubscriptionCycle,
    partner_period_containing,
    subscription_cycle_containing,
)
from ledger.domain.errors import InvalidInput
from ledger.domain.money import Money

BERLIN = "Europe/Berlin"
HOUR = timedelta(hours=1)
TICK = timedelta(microseconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


def monthly(at: datetime, first_start: datetime | None = None) -> PartnerPeriod:
    return partner_period_containing(at, "monthly", BERLIN, first_start)


def anniversary(at: datetime, subscribed_at: datetime, months: int = 1) -> SubscriptionCycle:
    return subscription_cycle_containing(at, "anniversary", subscribed_at, months, BERLIN)


def calendar(at: datetime, subscribed_at: datetime, months: int = 1) -> SubscriptionCycle:
    return subscription_cycle_containing(at, "calendar", subscribed_at, months, BERLIN)


def cycles(first: SubscriptionCycle, count: int, **kwargs: Any) -> list[SubscriptionCycle]:
    """`count` consecutive cycles from `first`, each found from the previous one's end."""
    found = [first]
    while len(found) < count:
        found.append(subscription_cycle_containing(at=found[-1].end, **kwargs))
    return found


# ------------------------------------------------------------------ partner periods


def test_a_monthly_period_holding_the_spring_clock_change_lasts_743_hours() -> None:
    period = monthly(utc(2026, 3, 15, 12))
    assert period == PartnerPeriod(start=utc(2026, 2, 28, 23), end=utc(2026, 3, 31, 22))
    assert period.end - period.start == 743 * HOUR


def test_a_monthly_period_holding_the_autumn_clock_change_lasts_745_hours() -> None:
    period = monthly(utc(2026, 10, 15, 12))
    assert period == PartnerPeriod(start=utc(2026, 9, 30, 22), end=utc(2026, 10, 31, 23))
    assert period.end - period.start == 745 * HOUR


def test_february_is_29_local_days_in_a_leap_year_and_28_in_a_common_one() -> None:
    leap = monthly(utc(2028, 2, 29, 12))
    assert leap == PartnerPeriod(start=utc(2028, 1, 31, 23), end=utc(2028, 2, 29, 23))
    common = monthly(utc(2027, 2, 28, 12))
    assert common == PartnerPeriod(start=utc(2027, 1, 31, 23), end=utc(2027, 2, 28, 23))


def test_a_quarter_ends_at_local_midnight_not_utc_midnight() -> None:
    q1 = PartnerPeriod(start=utc(2025, 12, 31, 23), end=utc(2026, 3, 31, 22))
    q2 = PartnerPeriod(start=utc(2026, 3, 31, 22), end=utc(2026, 6, 30, 22))
    assert partner_period_containing(utc(2026, 3, 31, 22) - TICK, "quarterly", BERLIN) == q1
    assert partner_period_containing(utc(2026, 3, 31, 22), "quarterly", BERLIN) == q2
    q4 = partner_period_containing(utc(2026, 11, 1), "quarterly", BERLIN)
    assert q4 == PartnerPeriod(start=utc(2026, 9, 30, 22), end=utc(2026, 12, 31, 23))


def test_quarters_start_in_january_april_july_and_october() -> None:
    starts = [
        partner_period_containing(utc(2026, month, 15), "quarterly", BERLIN).start
        for month in range(1, 13)
    ]
    assert sorted(set(starts)) == [
        utc(2025, 12, 31, 23), utc(2026, 3, 31, 22), utc(2026, 6, 30, 22), utc(2026, 9, 30, 22)
    ]


def test_halves_start_in_january_and_july() -> None:
    h1 = PartnerPeriod(start=utc(2025, 12, 31, 23), end=utc(2026, 6, 30, 22))
    h2 = PartnerPeriod(start=utc(2026, 6, 30, 22), end=utc(2026, 12, 31, 23))
    assert partner_period_containing(utc(2026, 6, 30, 21), "semi_annual", BERLIN) == h1
    assert partner_period_containing(utc(2026, 6, 30, 22), "semi_annual", BERLIN) == h2


def test_the_new_year_starts_an_hour_before_utc_midnight_in_berlin() -> None:
    year_2026 = PartnerPeriod(start=utc(2025, 12, 31, 23), end=utc(2026, 12, 31, 23))
    year_2027 = PartnerPeriod(start=utc(2026, 12, 31, 23), end=utc(2027, 12, 31, 23))
    assert partner_period_containing(utc(2026, 12, 31, 23) - TICK, "annual", BERLIN) == year_2026
    assert partner_period_containing(utc(2026, 12, 31, 23, 30), "annual", BERLIN) == year_2027


def test_periods_follow_the_tenants_zone() -> None:
    # New York: EST (UTC-5) until 2026-03-08, then EDT (UTC-4).
    q1 = partner_period_containing(utc(2026, 2, 1), "quarterly", "America/New_York")
    assert q1 == PartnerPeriod(start=utc(2026, 1, 1, 5), end=utc(2026, 4, 1, 4))


def test_the_first_period_starts_when_the_partner_configuration_takes_effect() -> None:
    effective = utc(2026, 5, 14, 9, 30)
    assert monthly(utc(2026, 5, 20), effective) == PartnerPeriod(effective, utc(2026, 5, 31, 22))
    quarter = partner_period_containing(effective, "quarterly", BERLIN, effective)
    assert quarter == PartnerPeriod(start=effective, end=utc(2026, 6, 30, 22))


def test_periods_after_the_first_are_whole() -> None:
    effective = utc(2026, 5, 14, 9, 30)
    june = monthly(utc(2026, 6, 2), effective)
    assert june == PartnerPeriod(start=utc(2026, 5, 31, 22), end=utc(2026, 6, 30, 22))


def test_a_configuration_effective_at_a_period_start_has_a_whole_first_period() -> None:
    assert monthly(utc(2026, 6, 2), utc(2026, 5, 31, 22)) == monthly(utc(2026, 6, 2))


def test_settlements_fall_due_at_each_period_end() -> None:
    effective = utc(2026, 11, 20, 8)
    period = monthly(effective, effective)
    due: list[datetime] = []
    for _ in range(4):
        due.append(period.end)
        period = monthly(period.end, effective)
    assert due == [utc(2026, 11, 30, 23), utc(2026, 12, 31, 23), utc(2027, 1, 31, 23),
                   utc(2027, 2, 28, 23)]


def test_an_instant_before_the_first_period_belongs_to_no_period() -> None:
    with pytest.raises(InvalidInput, match="before the partner's first period"):
        monthly(utc(2026, 5, 14, 9, 29), utc(2026, 5, 14, 9, 30))


@pytest.mark.parametrize(
    ("at", "period", "time_zone", "message"),
    [
        (utc(2026, 1, 1), "weekly", BERLIN, "unknown billing period 'weekly'"),
        (utc(2026, 1, 1), "monthly", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        (utc(2026, 1, 1), "monthly", "", "unknown time zone ''"),
        (datetime(2026, 1, 1), "monthly", BERLIN, "at must be timezone-aware"),
    ],
)
def test_bad_partner_period_input_is_refused_with_a_reason(
    at: datetime, period: Any, time_zone: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        partner_period_containing(at, period, time_zone)


# ------------------------------------------------------------------ anniversary cycles


def test_a_31st_anchor_clamps_to_february_29_in_a_leap_year_and_returns_to_the_31st() -> None:
    subscribed = utc(2028, 1, 31, 10)  # 11:00 in Berlin
    found = cycles(anniversary(subscribed, subscribed), 4, anchor="anniversary",
                   subscribed_at=subscribed, cycle_months=1, time_zone=BERLIN)
    assert [(c.index, c.start, c.end, c.days_in_cycle) for c in found] == [
        (0, subscribed, utc(2028, 2, 28, 23), 29),  # Jan 31 -> Feb 29
        (1, utc(2028, 2, 28, 23), utc(2028, 3, 30, 22), 31),  # Feb 29 -> Mar 31 (CEST)
        (2, utc(2028, 3, 30, 22), utc(2028, 4, 29, 22), 30),  # Mar 31 -> Apr 30
        (3, utc(2028, 4, 29, 22), utc(2028, 5, 30, 22), 31),  # Apr 30 -> May 31
    ]
    assert all(c.proration == 1 for c in found)


def test_a_31st_anchor_clamps_to_february_28_in_a_common_year() -> None:
    subscribed = utc(2027, 1, 31, 10)
    first = anniversary(subscribed, subscribed)
    assert first.end == utc(2027, 2, 27, 23)  # Feb 28 00:00 CET
    assert anniversary(first.end, subscribed).end == utc(2027, 3, 30, 22)  # Mar 31 00:00 CEST


def test_a_february_29_anchor_renews_on_february_28_until_the_next_leap_year() -> None:
    subscribed = utc(2028, 2, 29, 12)
    found = cycles(anniversary(subscribed, subscribed, 12), 4, anchor="anniversary",
                   subscribed_at=subscribed, cycle_months=12, time_zone=BERLIN)
    assert [c.end for c in found] == [
        utc(2029, 2, 27, 23), utc(2030, 2, 27, 23), utc(2031, 2, 27, 23), utc(2032, 2, 28, 23)
    ]
    assert [c.days_in_cycle for c in found] == [365, 365, 365, 366]


def test_a_quarterly_anchor_clamped_in_february_returns_to_its_day() -> None:
    subscribed = utc(2027, 11, 30, 12)
    found = cycles(anniversary(subscribed, subscribed, 3), 3, anchor="anniversary",
                   subscribed_at=subscribed, cycle_months=3, time_zone=BERLIN)
    assert [c.end for c in found] == [
        utc(2028, 2, 28, 23),  # Feb 29 00:00 CET
        utc(2028, 5, 29, 22),  # May 30 00:00 CEST
        utc(2028, 8, 29, 22),  # Aug 30 00:00 CEST
    ]


def test_an_anniversary_cycle_across_the_spring_clock_change_lasts_743_hours() -> None:
    subscribed = utc(2026, 2, 15, 8)
    cycle = anniversary(utc(2026, 3, 20), subscribed)
    assert (cycle.index, cycle.start, cycle.end) == (1, utc(2026, 3, 14, 23), utc(2026, 4, 14, 22))
    assert cycle.end - cycle.start == 743 * HOUR
    autumn = anniversary(utc(2026, 10, 20), subscribed)
    assert (autumn.index, autumn.start, autumn.end) == (
        8, utc(2026, 10, 14, 22), utc(2026, 11, 14, 23)
    )
    assert autumn.end - autumn.start == 745 * HOUR


def test_the_last_instant_before_an_anniversary_belongs_to_the_previous_cycle() -> None:
    subscribed = utc(2026, 2, 15, 8)
    assert anniversary(utc(2026, 3, 14, 23) - TICK, subscribed).index == 0
    assert anniversary(utc(2026, 3, 14, 23), subscribed).index == 1


def test_the_anchor_is_the_local_day_of_subscribing() -> None:
    subscribed = utc(2026, 3, 31, 22, 30)  # April 1, 00:30 in Berlin
    assert anniversary(subscribed, subscribed).end == utc(2026, 4, 30, 22)  # May 1, not May 31


def test_a_cycle_starting_on_a_day_whose_midnight_is_skipped_starts_when_the_day_does() -> None:
    # Santiago skipped from 2024-09-08 00:00 (UTC-4) to 01:00 (UTC-3): the day starts at 04:00Z.
    subscribed = utc(2024, 8, 8, 12)
    cycle = subscription_cycle_containing(
        utc(2024, 9, 10), "anniversary", subscribed, 1, "America/Santiago"
    )
    assert (cycle.start, cycle.end) == (utc(2024, 9, 8, 4), utc(2024, 10, 8, 3))


def test_a_cycle_due_on_a_day_the_zone_skipped_starts_on_the_next_day() -> None:
    # Samoa moved across the date line: 2011-12-29 was followed by 2011-12-31 (UTC+14).
    subscribed = utc(2011, 11, 30, 12)
    cycle = subscription_cycle_containing(subscribed, "anniversary", subscribed, 1, "Pacific/Apia")
    assert cycle.end == utc(2011, 12, 30, 10)  # 2011-12-31 00:00 +14:00


# ------------------------------------------------------------------ calendar cycles


def test_the_first_calendar_month_is_prorated_by_local_days_in_a_leap_february() -> None:
    subscribed = utc(2028, 2, 10, 15)  # Feb 10, 16:00 in Berlin: days 10..29 of 29
    first = calendar(subscribed, subscribed)
    assert (first.index, first.start, first.end) == (0, subscribed, utc(2028, 2, 29, 23))
    assert (first.days_used, first.days_in_cycle) == (20, 29)
    assert first.prorated(Money.of("29.00", "EUR")) == Money.of("20", "EUR")
    march = calendar(first.end, subscribed)
    assert (march.index, march.start, march.end) == (1, utc(2028, 2, 29, 23), utc(2028, 3, 31, 22))
    assert march.proration == 1


def test_the_first_calendar_month_is_prorated_by_local_days_in_a_common_february() -> None:
    first = calendar(utc(2027, 2, 10, 15), utc(2027, 2, 10, 15))
    assert (first.days_used, first.days_in_cycle) == (19, 28)
    assert first.prorated(Money.of("28.00", "EUR")) == Money.of("19", "EUR")


def test_the_day_of_subscribing_counts_whole_whatever_the_hour() -> None:
    last_second = calendar(utc(2026, 1, 31, 22, 59, 59), utc(2026, 1, 31, 22, 59, 59))
    assert (last_second.days_used, last_second.days_in_cycle) == (1, 31)
    assert last_second.end == utc(2026, 1, 31, 23)
    morning_of_the_1st = calendar(utc(2026, 2, 1, 9), utc(2026, 2, 1, 9))
    assert morning_of_the_1st.proration == 1
    assert morning_of_the_1st.start == utc(2026, 2, 1, 9)


def test_subscribing_at_local_midnight_on_the_1st_is_a_whole_first_cycle() -> None:
    subscribed = utc(2026, 1, 31, 23)  # Feb 1, 00:00 in Berlin
    first = calendar(subscribed, subscribed)
    assert (first.start, first.end) == (subscribed, utc(2026, 2, 28, 23))
    assert first.proration == 1


def test_a_quarterly_calendar_cycle_is_prorated_over_the_whole_quarter() -> None:
    subscribed = utc(2026, 2, 15, 12)  # Feb 15..Mar 31 = 14 + 31 days of 31 + 28 + 31
    first = subscription_cycle_containing(subscribed, "calendar", subscribed, 3, BERLIN)
    assert (first.days_used, first.days_in_cycle, first.proration) == (45, 90, Decimal("0.5"))
    assert first.end == utc(2026, 3, 31, 22)
    second = subscription_cycle_containing(first.end, "calendar", subscribed, 3, BERLIN)
    assert (second.index, second.end) == (1, utc(2026, 6, 30, 22))


def test_an_annual_calendar_cycle_crosses_the_year_end_at_local_midnight() -> None:
    subscribed = utc(2027, 12, 31, 12)
    first = subscription_cycle_containing(subscribed, "calendar", subscribed, 12, BERLIN)
    assert (first.days_used, first.days_in_cycle, first.end) == (1, 365, utc(2027, 12, 31, 23))
    year_2028 = subscription_cycle_containing(first.end, "calendar", subscribed, 12, BERLIN)
    assert (year_2028.start, year_2028.end) == (utc(2027, 12, 31, 23), utc(2028, 12, 31, 23))
    assert year_2028.days_in_cycle == 366
    assert year_2028.proration == 1


def test_a_calendar_cycle_across_the_autumn_clock_change_lasts_745_hours() -> None:
    october = calendar(utc(2026, 10, 10), utc(2026, 6, 3, 12))
    assert (october.index, october.start, october.end) == (
        4, utc(2026, 9, 30, 22), utc(2026, 10, 31, 23)
    )
    assert october.end - october.start == 745 * HOUR


def test_a_prorated_fee_is_exact_until_the_caller_rounds_it() -> None:
    # A July-August block is 62 days; 1 day of a 0.31 fee is exactly half a cent.
    subscribed = utc(2026, 8, 31, 12)
    first = subscription_cycle_containing(subscribed, "calendar", subscribed, 2, BERLIN)
    assert (first.days_used, first.days_in_cycle) == (1, 62)
    fee = first.prorated(Money.of("0.31", "EUR"))
    assert fee.amount == Decimal("0.005")
    assert fee.rounded() == Money.of("0.01", "EUR")
    assert first.proration * Decimal("0.31") < Decimal("0.005")  # why prorated() exists


@pytest.mark.parametrize(
    ("anchor", "cycle_months", "message"),
    [
        ("anniversary", 0, "cycle_months must be 1..12, got 0"),
        ("anniversary", 13, "cycle_months must be 1..12, got 13"),
        ("anniversary", True, "cycle_months must be a whole number"),
        ("calendar", 5, "must divide the year"),
        ("weekly", 1, "unknown cycle anchor 'weekly'"),
    ],
)
def test_bad_cycle_settings_are_refused_with_a_reason(
    anchor: Any, cycle_months: Any, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        subscription_cycle_containing(
            utc(2026, 1, 1), anchor, utc(2026, 1, 1), cycle_months, BERLIN
        )


def test_an_instant_before_the_subscription_is_in_no_cycle() -> None:
    with pytest.raises(InvalidInput, match="before the subscription starts"):
        anniversary(utc(2026, 1, 1), utc(2026, 1, 2))


def test_a_naive_subscription_time_is_refused() -> None:
    with pytest.raises(InvalidInput, match="subscribed_at must be timezone-aware"):
        anniversary(utc(2026, 1, 2), datetime(2026, 1, 1))


# ------------------------------------------------------------------ properties

# Zones with one-hour, half-hour and no clock changes, a midnight gap (Santiago), southern
# hemisphere summers, quarter-hour offsets and a day skipped entirely (Apia, 2011).
ZONES = [
    "UTC", "Europe/Berlin", "America/New_York", "America/Santiago", "Australia/Lord_Howe",
    "Asia/Kathmandu", "Pacific/Chatham", "America/Sao_Paulo", "Pacific/Apia",
]
PROPERTY = settings(deadline=None, max_examples=200)  # a busy machine must not fail a test

zones = st.sampled_from(ZONES)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)
billing_periods = st.sampled_from(sorted(BILLING_PERIOD_MONTHS))
spans = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=5 * 366))


def starts_local_day(instant: datetime, time_zone: str, day: date) -> bool:
    """`instant` is the first instant at or after local `day` begins (a skipped day begins
    where the next one does)."""
    zone = ZoneInfo(time_zone)
    return instant.astimezone(zone).date() >= day > (instant - TICK).astimezone(zone).date()


def month_number(day: date) -> int:
    return day.year * 12 + day.month - 1


@PROPERTY
@given(at=instants, period=billing_periods, time_zone=zones)
def test_partner_periods_tile_time(at: datetime, period: BillingPeriod, time_zone: str) -> None:
    found = partner_period_containing(at, period, time_zone)
    assert at in found
    # Every instant of the period maps to this same period, and its neighbours abut it.
    assert partner_period_containing(found.start, period, time_zone) == found
    assert partner_period_containing(found.end - TICK, period, time_zone) == found
    assert partner_period_containing(found.end, period, time_zone).start == found.end
    assert partner_period_containing(found.start - TICK, period, time_zone).end == found.start


@PROPERTY
@given(at=instants, period=billing_periods, time_zone=zones)
def test_partner_periods_start_at_local_midnight_of_a_calendar_block(
    at: datetime, period: BillingPeriod, time_zone: str
) -> None:
    found = partner_period_containing(at, period, time_zone)
    first_day = (found.start + 12 * HOUR).astimezone(ZoneInfo(time_zone)).date().replace(day=1)
    assert starts_local_day(found.start, time_zone, first_day)
    assert (first_day.month - 1) % BILLING_PERIOD_MONTHS[period] == 0


@PROPERTY
@given(first_start=instants, span=spans, period=billing_periods, time_zone=zones)
def test_only_the_first_partner_period_is_partial(
    first_start: datetime, span: timedelta, period: BillingPeriod, time_zone: str
) -> None:
    at = first_start + span
    found = partner_period_containing(at, period, time_zone, first_start)
    calendar_aligned = partner_period_containing(at, period, time_zone)
    assert found.end == calendar_aligned.end
    assert found.start == max(first_start, calendar_aligned.start)


anchors: st.SearchStrategy[CycleAnchor] = st.sampled_from(["anniversary", "calendar"])


@st.composite
def cycle_settings(draw: st.DrawFn) -> tuple[CycleAnchor, int]:
    anchor: CycleAnchor = draw(anchors)
    if anchor == "calendar":
        return anchor, draw(st.sampled_from(sorted(CALENDAR_CYCLE_MONTHS)))
    return anchor, draw(st.integers(min_value=1, max_value=SUBSCRIPTION_CYCLE_MONTHS_MAX))


@PROPERTY
@given(subscribed=instants, span=spans, settings_=cycle_settings(), time_zone=zones)
def test_subscription_cycles_tile_time_from_the_subscription(
    subscribed: datetime, span: timedelta, settings_: tuple[CycleAnchor, int], time_zone: str
) -> None:
    anchor, months = settings_
    at = subscribed + span

    def containing(instant: datetime) -> SubscriptionCycle:
        return subscription_cycle_containing(instant, anchor, subscribed, months, time_zone)

    found = containing(at)
    assert at in found
    assert containing(found.start) == found
    assert containing(found.end - TICK) == found
    following = containing(found.end)
    assert (following.start, following.index) == (found.end, found.index + 1)
    if found.index == 0:
        assert found.start == subscribed
    else:
        assert containing(found.start - TICK).end == found.start


@PROPERTY
@given(subscribed=instants, span=spans, months=st.integers(1, 12), time_zone=zones)
def test_anniversary_cycles_start_on_the_remembered_day_without_drift(
    subscribed: datetime, span: timedelta, months: int, time_zone: str
) -> None:
    found = subscription_cycle_containing(
        subscribed + span, "anniversary", subscribed, months, time_zone
    )
    assert found.proration == 1
    if found.index == 0:
        return
    anchor_day = subscribed.astimezone(ZoneInfo(time_zone)).date()
    target = month_number(anchor_day) + found.index * months
    year, month_index = divmod(target, 12)
    next_first = date(year + (month_index + 1) // 12, (month_index + 1) % 12 + 1, 1)
    last_day = (next_first - timedelta(days=1)).day
    expected = date(year, month_index + 1, min(anchor_day.day, last_day))
    assert starts_local_day(found.start, time_zone, expected)


@PROPERTY
@given(subscribed=instants, span=spans, months=st.sampled_from(sorted(CALENDAR_CYCLE_MONTHS)),
       time_zone=zones)
def test_calendar_proration_is_a_share_of_the_first_cycle_only(
    subscribed: datetime, span: timedelta, months: int, time_zone: str
) -> None:
    found = subscription_cycle_containing(
        subscribed + span, "calendar", subscribed, months, time_zone
    )
    assert 0 < found.proration <= 1
    assert 0 < found.days_used <= found.days_in_cycle
    if found.index > 0:
        assert found.proration == 1
        first_day = (found.start + 12 * HOUR).astimezone(ZoneInfo(time_zone)).date()
        assert first_day.day == 1 and (first_day.month - 1) % months == 0
        assert starts_local_day(found.start, time_zone, first_day)
