"""price_session: the OCPI 2.2.1 pricing rules and the spec's worked examples in prose."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from ledger.domain.errors import InvalidCdr, InvalidTariff
from ledger.domain.pricing import Cost, PeriodKind, SessionPrice
from ledger.domain.tariff import Tariff
from tests.unit.pricing.builders import (
    BERLIN,
    component,
    element,
    local,
    minutes,
    period,
    price,
    tariff,
    utc,
)

CHARGING, PARKING, RESERVATION = PeriodKind.CHARGING, PeriodKind.PARKING, PeriodKind.RESERVATION


def _cost(excl: str, incl: str | None = None) -> Cost:
    return Cost(Decimal(excl), Decimal(incl if incl is not None else excl))


# ------------------------------------------------------------------ spec examples in prose
STEP_SIZE_TARIFF = tariff(  # examples/tariff_14_step_size.json
    element(
        component("TIME", "1.20", 1800),
        component("PARKING_TIME", "1.00", 900),
        start_time="00:00",
        end_time="17:00",
    ),
    element(
        component("TIME", "2.40", 900),
        component("PARKING_TIME", "1.00", 900),
        start_time="17:00",
        end_time="20:00",
    ),
    element(component("TIME", "2.40", 900), start_time="20:00", end_time="00:00"),
)


def test_charging_followed_by_parking_rounds_only_the_parking_total() -> None:
    # Tariff step_size example #1 under the edition rule (d2): 16:55 charge 10 min, park
    # 2 min. Charging is not rounded (5 min x 1.20 + 5 min x 2.40 = 0.30), the 2 min of
    # parking round up to 15 (0.25). The 2.2.1 text's 0.50 rounded the combined time.
    start = local("2019-06-04T16:55")
    result = price(
        STEP_SIZE_TARIFF,
        [period(start), period(start + minutes(10), PARKING)],
        start + minutes(12),
    )
    assert result.total_time_cost == _cost("0.30")
    assert result.total_parking_cost == _cost("0.25")
    assert result.total_cost == _cost("0.55")


def test_parking_that_became_free_is_neither_billed_nor_rounded() -> None:
    # "Switching to Free-of-Charge Tariff Element": 19:55 charge 10 min, park 2 min after
    # 20:00 where no PARKING_TIME applies. Only charging time is billable, so it is the
    # total that is rounded: 10 -> 15 min with the last TIME step (900 s): 0.20 + 0.40.
    start = local("2019-06-04T19:55")
    result = price(
        STEP_SIZE_TARIFF,
        [period(start), period(start + minutes(10), PARKING)],
        start + minutes(12),
    )
    assert result.total_parking_cost == _cost("0")
    assert result.billed_time_h * 60 == 15
    assert result.total_cost == _cost("0.60")


def test_cdr_example_21_min_charging_16_min_parking_bills_21_plus_20() -> None:
    # mod_cdrs step_size: 10 min steps, charging followed by parking.
    t = tariff(element(component("TIME", "1.00", 600), component("PARKING_TIME", "2.00", 600)))
    start = utc("2024-01-10T10:00")
    result = price(t, [period(start), period(start + minutes(21), PARKING)], start + minutes(37))
    assert result.billed_time_h * 60 == 21
    assert result.billed_parking_time_h * 60 == 20


def test_energy_total_is_rounded_once_with_the_last_components_step() -> None:
    # mod_cdrs: 4.3 + 1.1 kWh with a 500 Wh step bills 5.5 kWh in total, not 4.3 + 1.5.
    t = tariff(
        element(component("ENERGY", "1", 100), start_time="00:00", end_time="12:00"),
        element(component("ENERGY", "2", 500)),
    )
    start = local("2024-01-10T11:00")
    result = price(
        t,
        [period(start, energy_kwh="4.3"), period(local("2024-01-10T12:00"), energy_kwh="1.1")],
        local("2024-01-10T13:00"),
    )
    assert result.billed_energy_kwh == Decimal("5.5")
    assert result.total_energy_cost == _cost("6.7")  # 4.3 x 1 + (1.1 + 0.1) x 2


@pytest.mark.parametrize(("step_wh", "expected"), [(1, "0.029"), (25, "0.03125"), (500, "0.125")])
def test_energy_step_size_examples_of_the_price_component(step_wh: int, expected: str) -> None:
    # PriceComponent note: 115.2 Wh at 0.25/kWh bills 116 Wh, 125 Wh or 500 Wh.
    t = tariff(element(component("ENERGY", "0.25", step_wh)))
    start = utc("2024-01-10T10:00")
    result = price(t, [period(start, energy_kwh="0.1152")], start + minutes(1))
    assert result.total_energy_cost.excl_vat == Decimal(expected)


def test_alt_url_example_bills_20_5_kwh_for_20_45() -> None:
    # examples/tariff_3_alt_url.json: 0.50 start fee + 0.25/kWh per 100 Wh. The tariff's own
    # prices win over the example's misprinted total: 0.50 + 20.5 x 0.25 = 5.625 (5.63).
    t = tariff(element(component("FLAT", "0.50", 1, "20"), component("ENERGY", "0.25", 100, "10")))
    start = utc("2024-01-10T10:00")
    result = price(t, [period(start, energy_kwh="20.45")], start + timedelta(hours=2))
    assert result.total_cost == _cost("5.625", "6.2375")
    assert result.amount_to_charge == _cost("5.63", "6.24")


COMPLEX_TARIFF = tariff(  # examples/tariff_4_complex.json
    element(component("FLAT", "2.50", 1, "15")),
    element(component("TIME", "1.00", 900, "20"), max_current=32),
    element(
        component("TIME", "2.00", 600, "20"),
        min_current=32,
        day_of_week=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
    ),
    element(
        component("TIME", "1.25", 600, "20"), min_current=32, day_of_week=["SATURDAY", "SUNDAY"]
    ),
    element(
        component("PARKING_TIME", "5.00", 300, "10"),
        start_time="09:00",
        end_time="18:00",
        day_of_week=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
    ),
    element(
        component("PARKING_TIME", "6.00", 300, "10"),
        start_time="10:00",
        end_time="17:00",
        day_of_week=["SATURDAY"],
    ),
)


def test_complex_example_saturday_with_the_tariffs_own_prices() -> None:
    # Saturday 13:30, 114 min at >= 43 A, then 71 min parking. The tariff says 1.25/h for
    # weekend charging over 32 A (d2 printed 1.20/h; issue #579): charging is not rounded
    # (followed by parking), parking 71 -> 75 min at 6.00/h. 2.50 + 2.375 + 7.50.
    start = local("2019-06-08T13:30")
    result = price(
        COMPLEX_TARIFF,
        [period(start, min_current_a="43"), period(start + minutes(114), PARKING)],
        start + minutes(114 + 71),
    )
    assert result.total_cost == _cost("12.375", "13.975")


def test_complex_example_parking_after_weekday_hours_is_free() -> None:
    start = local("2019-06-03T17:00")
    result = price(
        COMPLEX_TARIFF,
        [period(start, max_current_a="16"), period(local("2019-06-03T18:10"), PARKING)],
        local("2019-06-03T19:00"),
    )
    assert result.total_parking_cost == _cost("0")
    # Charging is then the only billable time, so it is the total that rounds: 70 min ->
    # 75 min with its 900 s step, at 1.00/h (16 A < 32 A).
    assert result.total_time_cost == _cost("1.25", "1.500")


RESERVATION_FEE_TARIFF = tariff(  # examples/tariff_16_reservation_2_euro_fee_5_euro_per_hour
    element(
        component("FLAT", "2.00", 1, "20"),
        component("TIME", "5.00", 300, "20"),
        reservation="RESERVATION",
    ),
    element(component("FLAT", "0.50", 1, "20"), component("ENERGY", "0.25", 1, "10")),
)
EXPIRE_FEE_TARIFF = tariff(  # examples/tariff_17_reservation_with_expire_fee
    element(component("FLAT", "4.00", 1, "20"), reservation="RESERVATION_EXPIRES"),
    element(component("TIME", "2.00", 600, "20"), reservation="RESERVATION"),
    element(component("FLAT", "0.50", 1, "20"), component("ENERGY", "0.25", 1, "10")),
)
EXPIRE_TIME_TARIFF = tariff(  # examples/tariff_18_reservation_with_expire_time
    element(component("TIME", "6.00", 600, "20"), reservation="RESERVATION_EXPIRES"),
    element(component("TIME", "3.00", 600, "20"), reservation="RESERVATION"),
    element(component("FLAT", "0.50", 1, "20"), component("ENERGY", "0.25", 1, "10")),
)


def _reserved_then_charged(t: Tariff, reserved_minutes: int) -> SessionPrice:
    start = utc("2024-01-10T10:00")
    charging = start + minutes(reserved_minutes)
    return price(
        t,
        [period(start, RESERVATION), period(charging, energy_kwh="20")],
        charging + timedelta(hours=2),
    )


def _reservation_expired(t: Tariff, reserved_minutes: int) -> SessionPrice:
    start = utc("2024-01-10T10:00")
    return price(t, [period(start, RESERVATION)], start + minutes(reserved_minutes))


@pytest.mark.parametrize(
    ("t", "reserved_minutes", "excl", "incl"),
    [
        (RESERVATION_FEE_TARIFF, 13, "8.75", "10.00"),  # 2.00 fee + 15 min x 5.00 + 0.50 + 5.00
        (EXPIRE_FEE_TARIFF, 22, "6.50", "7.30"),  # 30 min x 2.00 + 0.50 + 5.00
        (EXPIRE_TIME_TARIFF, 22, "7.00", "7.90"),  # 30 min x 3.00 + 0.50 + 5.00
    ],
)
def test_reservation_followed_by_charging_prices_as_the_spec_examples(
    t: Tariff, reserved_minutes: int, excl: str, incl: str
) -> None:
    result = _reserved_then_charged(t, reserved_minutes)
    assert result.total_cost == _cost(excl, incl)
    assert result.total_time_h == 2  # reservation time is not session time


def test_reservation_fee_and_time_are_reservation_costs() -> None:
    result = _reserved_then_charged(RESERVATION_FEE_TARIFF, 13)
    assert result.total_reservation_cost == _cost("3.25", "3.90")
    assert result.total_fixed_cost == _cost("0.50", "0.60")
    assert result.total_time_cost == _cost("0")


@pytest.mark.parametrize(
    ("t", "reserved_minutes", "excl", "incl"),
    [
        (EXPIRE_FEE_TARIFF, 60, "6.00", "7.20"),  # 1 h x 2.00 + 4.00 expiry fee
        (EXPIRE_TIME_TARIFF, 90, "9.00", "10.80"),  # 1.5 h x 6.00 (the expiry rate)
    ],
)
def test_expired_reservation_prices_as_the_spec_examples(
    t: Tariff, reserved_minutes: int, excl: str, incl: str
) -> None:
    result = _reservation_expired(t, reserved_minutes)
    assert result.total_cost == _cost(excl, incl)
    assert result.total_reservation_cost == result.total_cost


# ------------------------------------------------------------------ element selection
def test_first_matching_element_in_list_order_prices_each_dimension() -> None:
    t = tariff(
        element(component("ENERGY", "0.50"), min_power=50),
        element(component("ENERGY", "0.30"), component("TIME", "1.00")),
        element(component("TIME", "9.00")),
    )
    start = utc("2024-01-10T10:00")
    result = price(
        t,
        [
            period(start, energy_kwh="10", max_power_kw="11"),
            period(start + minutes(30), energy_kwh="10", min_power_kw="60", max_power_kw="80"),
        ],
        start + minutes(60),
    )
    assert result.total_energy_cost == _cost("8.0")  # 10 x 0.30 + 10 x 0.50
    assert result.total_time_cost == _cost("1.00")  # the second element's TIME, both halves


def test_a_dimension_no_element_matches_costs_nothing() -> None:
    t = tariff(element(component("ENERGY", "0.30"), start_time="08:00", end_time="09:00"))
    start = local("2024-01-10T10:00")
    result = price(t, [period(start, energy_kwh="10")], start + minutes(30))
    assert result.total_cost == _cost("0")


def test_unknown_power_fails_a_power_restriction_and_falls_through() -> None:
    t = tariff(
        element(component("ENERGY", "0.20"), max_power=16), element(component("ENERGY", "0.50"))
    )
    start = utc("2024-01-10T10:00")
    result = price(t, [period(start, energy_kwh="1")], start + minutes(10))
    assert result.total_energy_cost == _cost("0.50")


def test_min_restrictions_read_the_periods_minimum_and_max_its_maximum() -> None:
    t = tariff(
        element(component("TIME", "2"), min_current=16, max_current=32),
        element(component("TIME", "1")),
    )
    start = utc("2024-01-10T10:00")
    inside = price(
        t, [period(start, min_current_a="16", max_current_a="31.9")], start + minutes(60)
    )
    peak_above = price(
        t, [period(start, min_current_a="16", max_current_a="32")], start + minutes(60)
    )
    dip_below = price(
        t, [period(start, min_current_a="15", max_current_a="20")], start + minutes(60)
    )
    assert inside.total_time_cost == _cost("2")
    assert peak_above.total_time_cost == _cost("1")
    assert dip_below.total_time_cost == _cost("1")


# ------------------------------------------------------------------ time and date in local time
NIGHT = tariff(
    element(component("ENERGY", "0.10"), start_time="22:00", end_time="06:00"),
    element(component("ENERGY", "0.40")),
)


def test_time_window_wrapping_past_midnight_applies_on_both_sides() -> None:
    start = local("2024-01-10T21:00")
    result = price(NIGHT, [period(start, energy_kwh="10")], local("2024-01-11T07:00"))
    # 10 h at a constant rate: 1 h day, 8 h night, 1 h day.
    assert result.total_energy_cost == _cost("1.6")  # 2 x 0.40 + 8 x 0.10
    assert len(result.periods) == 3


def test_end_time_midnight_means_end_of_day() -> None:
    t = tariff(
        element(component("TIME", "3"), start_time="20:00", end_time="00:00"),
        element(component("TIME", "1")),
    )
    start = local("2024-01-10T23:00")
    result = price(t, [period(start)], local("2024-01-11T01:00"))
    assert result.total_time_cost == _cost("4")  # 1 h at 3, then 1 h at 1 after midnight


# Issue 13: a one-sided window is start_time..24:00 or 00:00..end_time, every day.
def test_a_window_with_only_end_time_starts_at_local_midnight() -> None:
    t = tariff(
        element(component("ENERGY", "1.00"), end_time="06:00"),
        element(component("ENERGY", "0.10")),
    )
    start = utc("2024-01-10T23:00")
    result = price(t, [period(start, energy_kwh="2")], utc("2024-01-11T01:00"), ZoneInfo("UTC"))
    assert result.total_energy_cost == _cost("1.10")  # 1 kWh at 0.10, then 1 kWh at 1.00
    assert [p.start for p in result.periods] == [start, utc("2024-01-11T00:00")]


def test_a_window_with_only_start_time_ends_at_local_midnight() -> None:
    t = tariff(
        element(component("ENERGY", "1.00"), start_time="22:00"),
        element(component("ENERGY", "0.10")),
    )
    start = utc("2024-01-10T21:00")
    result = price(t, [period(start, energy_kwh="4")], utc("2024-01-11T01:00"), ZoneInfo("UTC"))
    assert result.total_energy_cost == _cost("2.20")  # 0.10 + 2 x 1.00 + 0.10


def test_start_date_is_inclusive_and_end_date_exclusive_in_local_time() -> None:
    t = tariff(
        element(component("TIME", "5"), start_date="2024-01-11", end_date="2024-01-12"),
        element(component("TIME", "1")),
    )
    # 2024-01-10T23:30Z is already 00:30 on the 11th in Berlin.
    start = utc("2024-01-10T22:00")
    result = price(t, [period(start)], utc("2024-01-11T23:30"))
    # Berlin 23:00 on the 10th .. 00:30 on the 12th: 1 h at 1, 24 h at 5, 0.5 h at 1.
    assert result.total_time_cost == _cost("121.5")


def test_day_of_week_is_the_local_weekday() -> None:
    t = tariff(
        element(component("TIME", "2"), day_of_week=["SATURDAY"]), element(component("TIME", "1"))
    )
    # Friday 23:30 UTC is Saturday 00:30 in Berlin (winter time).
    start = utc("2024-01-12T23:30")
    result = price(t, [period(start)], start + minutes(60))
    assert result.total_time_cost == _cost("2")


def test_spring_forward_switches_at_the_transition_when_the_boundary_is_skipped() -> None:
    # 2024-03-31 Berlin: 02:00 CET jumps to 03:00 CEST (01:00 UTC). A window starting at
    # 02:30 local time never sees 02:30; it applies from the jump on.
    t = tariff(
        element(component("TIME", "6"), start_time="02:30", end_time="05:00"),
        element(component("TIME", "1")),
    )
    start = utc("2024-03-31T00:00")  # 01:00 CET
    result = price(t, [period(start)], utc("2024-03-31T02:00"))  # 04:00 CEST
    assert result.total_time_cost == _cost("7")  # 1 h at 1 before the jump, 1 h at 6 after


def test_fall_back_repeats_a_boundary_in_the_repeated_hour() -> None:
    # 2024-10-27 Berlin: 03:00 CEST falls back to 02:00 CET (01:00 UTC). "From 02:30" holds
    # 00:30-01:00 UTC (02:30-03:00 CEST), not 01:00-01:30 UTC (02:00-02:30 CET again), then
    # holds from 01:30 UTC (02:30 CET) on.
    t = tariff(
        element(component("TIME", "6"), start_time="02:30", end_time="04:00"),
        element(component("TIME", "0")),
    )
    start = utc("2024-10-27T00:00")  # 02:00 CEST
    result = price(t, [period(start)], utc("2024-10-27T03:00"))  # 04:00 CET
    # at 6/h: 00:30-01:00 and 01:30-03:00 UTC = 2 h
    assert result.total_time_cost == _cost("12")


def test_a_period_crossing_a_price_change_is_cut_there_with_energy_interpolated() -> None:
    start = local("2024-01-10T05:00")
    result = price(NIGHT, [period(start, energy_kwh="20")], local("2024-01-10T09:00"))
    assert [p.energy_kwh for p in result.periods] == [Decimal(5), Decimal(15)]
    assert result.total_energy_cost == _cost("6.5")


# ------------------------------------------------------------------ energy and duration
FIRST_KWH_FREE = tariff(
    element(component("ENERGY", "0"), max_kwh=1), element(component("ENERGY", "0.20"), min_kwh=1)
)


def test_kwh_threshold_inside_a_period_switches_at_the_exact_energy() -> None:
    start = utc("2024-01-10T10:00")
    result = price(FIRST_KWH_FREE, [period(start, energy_kwh="3")], start + minutes(30))
    assert [p.energy_kwh for p in result.periods] == [Decimal(1), Decimal(2)]
    assert result.periods[1].start == start + minutes(10)
    assert result.total_energy_cost == _cost("0.40")


def test_durations_count_from_session_start_not_from_parking_start() -> None:
    grace = tariff(
        element(component("PARKING_TIME", "0"), max_duration=3600),
        element(component("PARKING_TIME", "6")),
    )
    start = utc("2024-01-10T10:00")
    result = price(
        grace, [period(start), period(start + minutes(50), PARKING)], start + minutes(80)
    )
    assert result.total_parking_cost == _cost("2")  # only the 20 min after the first hour


# ------------------------------------------------------------------ FLAT, VAT, min/max
def test_flat_fee_is_charged_once_per_session_however_many_periods() -> None:
    t = tariff(element(component("FLAT", "1.00"), component("TIME", "0")))
    start = utc("2024-01-10T10:00")
    periods = [period(start + minutes(10 * i)) for i in range(5)]
    assert price(t, periods, start + minutes(60)).total_fixed_cost == _cost("1.00")


def test_flat_fee_is_the_first_one_active_even_if_another_activates_later() -> None:
    t = tariff(
        element(component("FLAT", "1.00"), start_time="08:00", end_time="17:00"),
        element(component("FLAT", "3.00")),
    )
    start = local("2024-01-10T16:00")
    result = price(t, [period(start)], local("2024-01-10T18:00"))
    assert result.total_fixed_cost == _cost("1.00")


def test_flat_fee_first_active_while_parking_is_a_parking_cost() -> None:
    overstay = tariff(
        element(component("ENERGY", "0.30")), element(component("FLAT", "5"), min_duration=7200)
    )
    start = utc("2024-01-10T10:00")
    result = price(
        overstay,
        [period(start, energy_kwh="10"), period(start + minutes(60), PARKING)],
        start + minutes(150),
    )
    assert result.total_parking_cost == _cost("5")
    assert result.total_fixed_cost == _cost("0")


def test_vat_applies_per_component_at_its_own_rate() -> None:
    t = tariff(
        element(
            component("FLAT", "1", vat="20"),
            component("ENERGY", "1", vat="5.5"),
            component("TIME", "1"),
        )
    )
    start = utc("2024-01-10T10:00")
    result = price(t, [period(start, energy_kwh="2")], start + minutes(60))
    assert result.total_cost == _cost("4", "4.31")  # 1.20 + 2.11 + 1 (no VAT)
    assert dict(result.cost_by_vat_rate) == {
        None: _cost("1"),
        Decimal("5.5"): _cost("2", "2.110"),
        Decimal("20"): _cost("1", "1.20"),
    }


def test_min_price_without_incl_vat_lifts_incl_by_the_sessions_vat_factor() -> None:
    t = tariff(element(component("ENERGY", "0.25", vat="10")), min_price={"excl_vat": "1.00"})
    start = utc("2024-01-10T10:00")
    result = price(t, [period(start, energy_kwh="2")], start + minutes(60))
    assert result.total_cost == _cost("1.00", "1.10")


def test_max_price_clamps_excl_and_incl_separately() -> None:
    t = tariff(
        element(component("ENERGY", "1", vat="20"), component("TIME", "1")),
        max_price={"excl_vat": "10", "incl_vat": "11"},
    )
    start = utc("2024-01-10T10:00")
    result = price(t, [period(start, energy_kwh="5")], start + timedelta(hours=4))
    # unclamped 9 excl (< 10), 10 incl (< 11)? 5 x 1.2 + 4 = 10.0 incl: no clamp
    assert result.total_cost == _cost("9", "10.0")
    bigger = price(t, [period(start, energy_kwh="6")], start + timedelta(hours=4))
    # unclamped 10 excl (= max, kept), 11.2 incl -> 11
    assert bigger.total_cost == _cost("10", "11")


# ------------------------------------------------------------------ refusals
def test_tariff_not_yet_valid_at_session_start_is_refused() -> None:
    t = tariff(element(component("TIME", "1")), start_date_time="2024-02-01T00:00:00Z")
    start = utc("2024-01-10T10:00")
    with pytest.raises(InvalidTariff, match="not valid at session start"):
        price(t, [period(start)], start + minutes(10))


def test_tariff_ending_mid_session_still_prices_the_whole_session() -> None:
    t = tariff(element(component("TIME", "1")), end_date_time="2024-01-10T10:30:00Z")
    start = utc("2024-01-10T10:00")
    assert price(t, [period(start)], start + minutes(60)).total_cost == _cost("1")


@pytest.mark.parametrize(
    ("offsets", "message"),
    [
        ([0, 20, 10], "before the session start or the previous period"),
        ([0, 90], "after the session end"),
        ([-5], "before the session start"),
    ],
)
def test_inconsistent_periods_are_refused(offsets: list[int], message: str) -> None:
    start = utc("2024-01-10T10:00")
    periods = [period(start + minutes(m)) for m in offsets]
    with pytest.raises(InvalidCdr, match=message):
        price(tariff(element(component("TIME", "1"))), periods, start + minutes(60), start=start)


def test_a_session_without_periods_owes_its_flat_fee() -> None:
    t = tariff(element(component("FLAT", "0.50"), component("TIME", "1")))
    start = utc("2024-01-10T10:00")
    result = price(t, [], start, start=start)
    assert result.total_cost == _cost("0.50")
    assert BERLIN  # the default zone is used for restrictions
