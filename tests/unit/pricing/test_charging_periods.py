"""The OCPP 2.0.1 fold: TransactionEvent readings to OCPI charging periods, and running cost."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from ledger.domain.charging_periods import (
    ChargingState,
    EventType,
    MeterReading,
    MeterSample,
    SessionMeter,
    fold_charging_periods,
    running_cost,
)
from ledger.domain.errors import InvalidCdr, InvalidMessage
from ledger.domain.pricing import Cost, PeriodKind, price_session
from ledger.domain.tariff import Tariff
from tests.unit.pricing.builders import BERLIN, component, element, local, minutes, tariff, utc

START = utc("2024-01-10T10:00")
PER_MINUTE = tariff(element(component("TIME", "6"), component("PARKING_TIME", "60")))


def reading(
    seq_no: int,
    at: datetime,
    state: ChargingState | None = None,
    event: EventType = EventType.UPDATED,
    register_wh: int | None = None,
    power_w: int | None = None,
    current_a: int | None = None,
) -> MeterReading:
    sample = MeterSample(
        timestamp=at,
        energy_register_wh=None if register_wh is None else Decimal(register_wh),
        power_w=None if power_w is None else Decimal(power_w),
        current_a=None if current_a is None else Decimal(current_a),
    )
    has_sample = register_wh is not None or power_w is not None or current_a is not None
    return MeterReading(seq_no, at, event, state, (sample,) if has_sample else ())


def session(
    *states: tuple[int, ChargingState],
    end_minute: int,
    register_wh_per_min: int = 0,
    seq_offset: int = 0,
) -> list[MeterReading]:
    """Started at START, a state change at each given minute, Ended at `end_minute`."""
    readings = [reading(seq_offset, START, ChargingState.CHARGING, EventType.STARTED, 1_000_000)]
    for i, (minute, state) in enumerate(states, start=1):
        readings.append(reading(seq_offset + i, START + minutes(minute), state))
    readings.append(
        reading(
            seq_offset + len(states) + 1,
            START + minutes(end_minute),
            ChargingState.IDLE,
            EventType.ENDED,
            1_000_000 + register_wh_per_min * end_minute,
        )
    )
    return readings


def fold(
    readings: list[MeterReading], t: Tariff = PER_MINUTE, until: datetime | None = None
) -> list[tuple[int, PeriodKind, Decimal]]:
    folded = fold_charging_periods(SessionMeter().record_all(readings), t, BERLIN, until)
    return [
        ((p.start - folded.session_start) // timedelta(seconds=1), p.kind, p.energy_kwh)
        for p in folded.periods
    ]


def test_charging_then_suspended_ev_is_charging_then_parking() -> None:
    readings = session((40, ChargingState.SUSPENDED_EV), end_minute=60, register_wh_per_min=0)
    assert [(s, k) for s, k, _ in fold(readings)] == [
        (0, PeriodKind.CHARGING),
        (2400, PeriodKind.PARKING),
    ]


def test_suspended_evse_counts_as_charging_time_not_parking() -> None:
    readings = session(
        (20, ChargingState.SUSPENDED_EVSE), (30, ChargingState.CHARGING), end_minute=60
    )
    assert [k for _, k, _ in fold(readings)] == [PeriodKind.CHARGING]


def test_connected_before_charging_counts_as_charging_time() -> None:
    readings = [
        reading(0, START, ChargingState.EV_CONNECTED, EventType.STARTED),
        reading(1, START + minutes(2), ChargingState.CHARGING),
        reading(2, START + minutes(30), ChargingState.EV_CONNECTED),
        reading(3, START + minutes(45), None, EventType.ENDED),
    ]
    assert [(s, k) for s, k, _ in fold(readings)] == [
        (0, PeriodKind.CHARGING),
        (1800, PeriodKind.PARKING),
    ]


def test_energy_is_the_register_delta_interpolated_at_period_boundaries() -> None:
    readings = session((30, ChargingState.SUSPENDED_EV), end_minute=60, register_wh_per_min=200)
    # One register sample at each end: 12 kWh over the hour, linear in between.
    assert [e for _, _, e in fold(readings)] == [Decimal(6), Decimal(6)]


def test_a_register_going_back_restarts_the_count() -> None:
    readings = [
        reading(0, START, ChargingState.CHARGING, EventType.STARTED, register_wh=5_000),
        reading(1, START + minutes(10), register_wh=6_000),
        reading(2, START + minutes(20), register_wh=100),  # meter replaced
        reading(3, START + minutes(30), None, EventType.ENDED, register_wh=600),
    ]
    assert sum(e for _, _, e in fold(readings)) == Decimal("1.5")


def test_a_kwh_threshold_starts_a_period_with_exactly_that_energy() -> None:
    first_kwh_free = tariff(
        element(component("ENERGY", "0"), max_kwh=1),
        element(component("ENERGY", "0.20"), min_kwh=1),
    )
    readings = [
        reading(0, START, ChargingState.CHARGING, EventType.STARTED, register_wh=0),
        reading(1, START + minutes(10), register_wh=700),
        reading(2, START + minutes(20), register_wh=1_300),  # 1 kWh reached at minute 15
        reading(3, START + minutes(30), None, EventType.ENDED, register_wh=2_000),
    ]
    assert fold(readings, first_kwh_free) == [
        (0, PeriodKind.CHARGING, Decimal(1)),
        (900, PeriodKind.CHARGING, Decimal(1)),
    ]


def test_a_power_sample_across_a_threshold_starts_a_period() -> None:
    by_power = tariff(
        element(component("TIME", "1"), max_power=11), element(component("TIME", "3"))
    )
    readings = [
        reading(0, START, ChargingState.CHARGING, EventType.STARTED, power_w=7_000),
        reading(1, START + minutes(10), power_w=9_000),  # same side: no cut
        reading(2, START + minutes(20), power_w=22_000),
        reading(3, START + minutes(30), power_w=10_000),
        reading(4, START + minutes(60), None, EventType.ENDED),
    ]
    folded = fold_charging_periods(SessionMeter().record_all(readings), by_power, BERLIN)
    assert [(p.start, p.min_power_kw, p.max_power_kw) for p in folded.periods] == [
        (START, Decimal(7), Decimal(9)),
        (START + minutes(20), Decimal(22), Decimal(22)),
        (START + minutes(30), Decimal(10), Decimal(10)),
    ]
    result = price_session(
        by_power, folded.periods, BERLIN, folded.session_start, folded.session_end
    )
    assert result.total_time_cost == Cost(
        Decimal("1.333333333333333333333333333333333"),
        Decimal("1.333333333333333333333333333333333"),
    )


def test_a_local_clock_boundary_starts_a_period_even_across_dst() -> None:
    night = tariff(
        element(component("TIME", "1"), start_time="02:30", end_time="06:00"),
        element(component("TIME", "2")),
    )
    start = utc("2024-03-31T00:00")  # 01:00 CET; at 01:00 UTC the clock jumps to 03:00 CEST
    readings = [
        reading(0, start, ChargingState.CHARGING, EventType.STARTED),
        reading(1, start + minutes(120), None, EventType.ENDED),
    ]
    folded = fold_charging_periods(SessionMeter().record_all(readings), night, BERLIN)
    assert [p.start for p in folded.periods] == [start, utc("2024-03-31T01:00")]


def test_a_one_sided_time_window_starts_a_period_at_local_midnight() -> None:
    evening = tariff(
        element(component("TIME", "3"), start_time="22:00"),
        element(component("TIME", "1")),
    )
    start = utc("2024-01-10T20:00")  # 21:00 CET
    readings = [
        reading(0, start, ChargingState.CHARGING, EventType.STARTED),
        reading(1, start + minutes(240), None, EventType.ENDED),
    ]
    folded = fold_charging_periods(SessionMeter().record_all(readings), evening, BERLIN)
    # 22:00 CET the window opens, at local midnight (23:00 UTC) it closes again.
    assert [p.start for p in folded.periods] == [
        start,
        utc("2024-01-10T21:00"),
        utc("2024-01-10T23:00"),
    ]


def test_readings_apply_in_seqno_order_whatever_the_arrival_order() -> None:
    readings = session(
        (20, ChargingState.SUSPENDED_EV),
        (25, ChargingState.CHARGING),
        (50, ChargingState.EV_CONNECTED),
        end_minute=70,
        register_wh_per_min=100,
    )
    in_order = SessionMeter().record_all(readings)
    shuffled = SessionMeter().record_all(
        [readings[3], readings[0], readings[4], readings[2], readings[1]]
    )
    assert shuffled == in_order
    assert fold_charging_periods(shuffled, PER_MINUTE, BERLIN) == fold_charging_periods(
        in_order, PER_MINUTE, BERLIN
    )


def test_a_duplicate_seqno_is_ignored_and_the_first_arrival_wins() -> None:
    first = reading(1, START + minutes(10), ChargingState.SUSPENDED_EV)
    retry_with_other_content = reading(1, START + minutes(12), ChargingState.CHARGING)
    meter = SessionMeter().record(reading(0, START, ChargingState.CHARGING, EventType.STARTED))
    meter = meter.record(first)
    assert meter.record(retry_with_other_content) is meter
    assert meter.readings[1] == first


def test_an_event_stamped_before_its_predecessor_is_taken_at_the_predecessors_time() -> None:
    readings = [
        reading(0, START, ChargingState.CHARGING, EventType.STARTED),
        reading(1, START + minutes(30), ChargingState.SUSPENDED_EV),
        reading(2, START + minutes(20), ChargingState.CHARGING),  # clock skew
        reading(3, START + minutes(60), None, EventType.ENDED),
    ]
    # Suspended and resumed at the same instant (minute 30): no parking at all.
    assert [(s, k) for s, k, _ in fold(readings)] == [(0, PeriodKind.CHARGING)]


def test_is_complete_needs_every_seqno_from_started_to_ended() -> None:
    readings = session((20, ChargingState.SUSPENDED_EV), end_minute=30)
    assert SessionMeter().record_all(readings).is_complete
    assert not SessionMeter().record_all([readings[0], readings[2]]).is_complete


def test_meter_survives_a_json_round_trip() -> None:
    readings = [
        reading(0, START, ChargingState.CHARGING, EventType.STARTED, 1000, 11000, 48),
        reading(1, START + minutes(5), None, register_wh=1900),
    ]
    meter = SessionMeter().record_all(readings)
    assert SessionMeter.from_dict(meter.to_dict()) == meter
    assert meter.to_dict()["readings"][0]["samples"][0]["energy_register_wh"] == "1000"


def test_a_malformed_stored_meter_is_refused() -> None:
    with pytest.raises(InvalidMessage):
        SessionMeter.from_dict({"readings": [{"seq_no": 0, "event_type": "Begun"}]})


def test_readings_need_aware_timestamps() -> None:
    with pytest.raises(InvalidMessage, match="UTC offset"):
        SessionMeter().record(MeterReading(0, datetime(2024, 1, 1), EventType.STARTED))


def test_a_live_session_is_folded_up_to_until() -> None:
    readings = session((20, ChargingState.SUSPENDED_EV), end_minute=60)[:-1]
    meter = SessionMeter().record_all(readings)
    with pytest.raises(InvalidCdr, match="pass `until`"):
        fold_charging_periods(meter, PER_MINUTE, BERLIN)
    folded = fold_charging_periods(meter, PER_MINUTE, BERLIN, until=START + minutes(30))
    assert not folded.ended and folded.session_end == START + minutes(30)


def test_running_cost_grows_with_time_and_ends_at_the_final_price() -> None:
    readings = session((20, ChargingState.SUSPENDED_EV), end_minute=30)
    meter = SessionMeter().record_all(readings[:2])
    assert running_cost(PER_MINUTE, meter, BERLIN, START + minutes(20)) == Cost(
        Decimal(2), Decimal(2)
    )
    assert running_cost(PER_MINUTE, meter, BERLIN, START + minutes(25)) == Cost(
        Decimal(7), Decimal(7)
    )
    finished = meter.record(readings[2])
    assert running_cost(PER_MINUTE, finished, BERLIN, START + minutes(99)) == Cost(
        Decimal(12), Decimal(12)
    )


def test_a_timeline_extended_reading_by_reading_equals_one_built_at_once() -> None:
    t = tariff(
        element(component("ENERGY", "0.3"), max_power=11, start_time="10:30", end_time="12:00"),
        element(component("ENERGY", "0.5"), component("PARKING_TIME", "2")),
    )
    readings = [
        reading(0, local("2024-01-10T10:00"), ChargingState.CHARGING, EventType.STARTED, 0, 7400)
    ]
    for i in range(1, 90):
        power = 22_000 if 30 <= i < 45 else 7_400
        readings.append(
            reading(
                i,
                local("2024-01-10T10:00") + minutes(i),
                ChargingState.SUSPENDED_EV if i == 80 else None,
                register_wh=123 * i,
                power_w=power,
            )
        )
    incremental = SessionMeter()
    for r in readings:
        incremental = incremental.record(r)
        incremental.timeline()  # built after every reading, as running_cost does
    at_once = SessionMeter(incremental.readings)
    until = local("2024-01-10T11:30")
    assert fold_charging_periods(incremental, t, BERLIN, until) == fold_charging_periods(
        at_once, t, BERLIN, until
    )


def test_recording_a_batch_keeps_the_first_arrival_of_a_seqno_too() -> None:
    first = reading(1, START + minutes(10), ChargingState.SUSPENDED_EV)
    retry = reading(1, START + minutes(12), ChargingState.CHARGING)
    started = reading(0, START, ChargingState.CHARGING, EventType.STARTED)
    batch = SessionMeter().record_all([first, started, retry])
    one_by_one = SessionMeter().record(first).record(started).record(retry)
    assert batch == one_by_one
    assert batch.readings == (started, first)
