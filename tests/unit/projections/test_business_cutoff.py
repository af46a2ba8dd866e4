"""The cut-off of the business-time views (projections/business_as_of.py, rule 1)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from projections.business_as_of import BusinessCutoff, tenant_cutoff

ZONES = ("Europe/Berlin", "America/New_York", "America/Santiago", "Australia/Lord_Howe",
         "Asia/Kolkata", "Pacific/Chatham", "UTC")
ONE_MICROSECOND = timedelta(microseconds=1)


@given(day=st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31)),
       zone=st.sampled_from(ZONES))
def test_a_date_ends_a_microsecond_before_the_next_local_day_begins(day: date, zone: str
                                                                    ) -> None:
    until = BusinessCutoff.parse(day.isoformat()).until(zone)
    assert until.tzinfo is UTC
    assert until.astimezone(ZoneInfo(zone)).date() == day
    assert (until + ONE_MICROSECOND).astimezone(ZoneInfo(zone)).date() == day + timedelta(1)


def test_the_day_the_clocks_go_forward_is_23_hours_and_back_25() -> None:
    berlin = "Europe/Berlin"
    ends = [BusinessCutoff.parse(d).until(berlin) for d in
            ("2026-03-28", "2026-03-29", "2026-10-24", "2026-10-25")]
    assert ends[0] == datetime(2026, 3, 28, 22, 59, 59, 999999, tzinfo=UTC)
    assert ends[1] - ends[0] == timedelta(hours=23)
    assert ends[3] - ends[2] == timedelta(hours=25)


def test_a_wall_time_is_local_and_an_instant_is_the_same_for_every_zone() -> None:
    local = BusinessCutoff.parse("2026-03-29T12:00")
    assert local.until("Europe/Berlin") == datetime(2026, 3, 29, 10, 0, tzinfo=UTC)
    assert local.until("UTC") == datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    instant = BusinessCutoff.parse("2026-03-29T12:00+02:00")
    assert {instant.until(z) for z in ZONES} == {datetime(2026, 3, 29, 10, 0, tzinfo=UTC)}


def test_the_zone_is_the_tenants_in_force_at_the_cutoff() -> None:
    moved = datetime.combine(date(2026, 6, 1), time(0), UTC)
    settings = [(datetime(2026, 1, 1, tzinfo=UTC), "a", "Europe/Berlin", "EUR"),
                (moved, "b", "America/New_York", "USD")]
    assert tenant_cutoff(BusinessCutoff.parse("2026-03-31"), settings).time_zone == (
        "Europe/Berlin")
    june = tenant_cutoff(BusinessCutoff.parse("2026-06-30"), settings)
    assert (june.time_zone, june.currency) == ("America/New_York", "USD")
    assert june.until == datetime(2026, 7, 1, 3, 59, 59, 999999, tzinfo=UTC)
    # Configured only after the cut-off: its first zone (nothing of it is in the view).
    assert tenant_cutoff(BusinessCutoff.parse("2025-12-31"), settings).time_zone == (
        "Europe/Berlin")
