"""Properties of the pricer and the fold, checked on generated sessions (Hypothesis)."""

from __future__ import annotations

import json
import os
from dataclasses import fields, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.domain.cdr import CdrLocation, CdrToken, build_cdr
from ledger.domain.charging_periods import (
    ChargingState,
    EventType,
    MeterReading,
    MeterSample,
    SessionMeter,
    fold_charging_periods,
    running_cost,
)
from ledger.domain.errors import InvalidCdr, InvalidTariff
from ledger.domain.pricing import (
    ZERO_COST,
    ChargingPeriod,
    Cost,
    PeriodKind,
    SessionPrice,
    price_session,
)
from ledger.domain.session import ChargingSession
from ledger.domain.session_cost import full_meter, session_meter
from ledger.domain.tariff import Tariff, parse_tariff
from tests.unit.pricing.builders import BERLIN, component, element, tariff, utc
from tests.unit.pricing.ocpi_data import peer_tariff_files, spec_vectors

settings.register_profile(
    "pricing",
    max_examples=int(os.environ.get("PRICING_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("pricing")

# Every tariff of the OCPI test data (all valid in the first half of 2019, where sessions fall).
TARIFFS: list[Tariff] = [
    parse_tariff(json.loads(p.read_text(encoding="utf-8"))) for p in peer_tariff_files()
] + [parse_tariff(v["tariff"]) for v in spec_vectors()]
FIRST_START = utc("2019-01-01T00:00")
# kWh per minute whose reciprocals terminate in decimal: interpolation stays exact, so a
# cut changes nothing at all, not even the 34th digit.
RATES_KWH_PER_MIN = [Decimal(r) for r in ("0", "0.05", "0.1", "0.125", "0.2", "0.25", "0.5", "2.5")]
ULPS = Decimal("1e-28")  # far below any currency's minor unit, far above 34-digit rounding
MEASURED = st.sampled_from(
    [None, Decimal("3.7"), Decimal(11), Decimal(16), Decimal(22), Decimal(32), Decimal(50)]
)


@st.composite
def sessions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Coarse periods: minutes, kind, energy rate, power and current (whole minutes)."""
    count = draw(st.integers(1, 5))
    reserved = draw(st.booleans())
    out = []
    for i in range(count):
        kind = (
            PeriodKind.RESERVATION
            if reserved and i == 0
            else draw(
                st.sampled_from([PeriodKind.CHARGING, PeriodKind.CHARGING, PeriodKind.PARKING])
            )
        )
        out.append(
            {
                "minutes": draw(st.integers(1, 240)),
                "kind": kind,
                "rate": Decimal(0)
                if kind is not PeriodKind.CHARGING
                else draw(st.sampled_from(RATES_KWH_PER_MIN)),
                "max_power_kw": draw(MEASURED),
                "max_current_a": draw(MEASURED),
            }
        )
    return out


def _periods(
    start: datetime, coarse: list[dict[str, Any]], cuts: list[list[int]]
) -> tuple[list[ChargingPeriod], datetime]:
    periods: list[ChargingPeriod] = []
    at = start
    for spec, extra in zip(coarse, cuts, strict=True):
        offsets = sorted({0, *(m for m in extra if 0 < m < spec["minutes"])}, reverse=False)
        for j, offset in enumerate(offsets):
            length = (offsets[j + 1] if j + 1 < len(offsets) else spec["minutes"]) - offset
            periods.append(
                ChargingPeriod(
                    start=at + timedelta(minutes=offset),
                    kind=spec["kind"],
                    energy_kwh=spec["rate"] * length,
                    max_power_kw=spec["max_power_kw"],
                    max_current_a=spec["max_current_a"],
                )
            )
        at += timedelta(minutes=spec["minutes"])
    return periods, at


def _comparable(price: SessionPrice) -> dict[str, Any]:
    return {f.name: getattr(price, f.name) for f in fields(price) if f.name != "periods"}


@st.composite
def clock_window_tariffs(draw: st.DrawFn) -> Tariff:
    """One dimension priced by clock windows, mostly one-sided ones (only start_time or only
    end_time: the window runs to or from local midnight, issue 13), then a fallback."""
    kind = draw(st.sampled_from(["TIME", "TIME", "ENERGY", "PARKING_TIME"]))
    prices = st.sampled_from(["0.10", "0.25", "1.00", "3.60"])
    elements = []
    for _ in range(draw(st.integers(1, 2))):
        window = draw(st.sampled_from(["start", "end", "start", "end", "both"]))
        restriction: dict[str, Any] = {}
        if window in ("start", "both"):
            restriction["start_time"] = draw(st.sampled_from(["06:00", "17:30", "22:00"]))
        if window in ("end", "both"):
            restriction["end_time"] = draw(st.sampled_from(["02:00", "06:00", "17:30"]))
        elements.append(element(component(kind, draw(prices), 1), **restriction))
    elements.append(element(component(kind, draw(prices), 1)))
    return tariff(*elements)


@given(
    t=st.one_of(st.sampled_from(TARIFFS), clock_window_tariffs()),
    start_minute=st.integers(0, 180 * 24 * 60),
    coarse=sessions(),
    data=st.data(),
)
def test_cutting_periods_where_no_price_changes_leaves_the_price_unchanged(
    t: Tariff, start_minute: int, coarse: list[dict[str, Any]], data: st.DataObject
) -> None:
    start = FIRST_START + timedelta(minutes=start_minute)
    _assert_extra_cuts_change_nothing(t, start, coarse, data)


@given(
    t=clock_window_tariffs(),
    day=st.integers(0, 180),
    evening_minute=st.integers(20 * 60, 24 * 60),
    coarse=sessions(),
    data=st.data(),
)
def test_cutting_periods_across_local_midnight_in_clock_windows_leaves_the_price_unchanged(
    t: Tariff, day: int, evening_minute: int, coarse: list[dict[str, Any]], data: st.DataObject
) -> None:
    # Sessions from the evening on cross local midnight, where one-sided windows switch.
    start = FIRST_START + timedelta(days=day, minutes=evening_minute)
    _assert_extra_cuts_change_nothing(t, start, coarse, data)


def _assert_extra_cuts_change_nothing(
    t: Tariff, start: datetime, coarse: list[dict[str, Any]], data: st.DataObject
) -> None:
    uncut, end = _periods(start, coarse, [[] for _ in coarse])
    extra = [data.draw(st.lists(st.integers(1, 239), max_size=3)) for _ in coarse]
    cut, _ = _periods(start, coarse, extra)
    whole = price_session(t, uncut, BERLIN, start, end)
    pieces = price_session(t, cut, BERLIN, start, end)
    assert _comparable(pieces) == _comparable(whole)


@st.composite
def energy_only_tariffs(draw: st.DrawFn) -> Tariff:
    """Energy-only tariffs for which "more energy never costs less" is true at all.

    Two families: prices that depend only on the energy consumed (kWh tiers), or only on
    the moment (clock, weekday, power), with step_size 1 Wh and whole-Wh sessions. Outside
    them the claim is false under OCPI's own rules, for example:
    - evening price 1.00 for the first 10 kWh, else 0.10: moving the 10 kWh mark before
      the evening by charging more in the morning makes the evening cheaper;
    - a large step_size priced at the last component: 1 kWh at 1.00 rounded to a 10 kWh
      step costs 10.00, while 6 kWh crossing into a free tier costs 5.00;
    - min_price without incl_vat follows the session's blended VAT rate, which more
      energy at a lower rate can lower.
    """
    prices = st.decimals(min_value=0, max_value=2, places=2)
    vat = st.sampled_from([None, "0", "10", "20"])
    by_energy = draw(st.booleans())
    elements = []
    for _ in range(draw(st.integers(1, 4))):
        restriction: dict[str, Any] = {}
        if by_energy:
            tier = draw(st.integers(0, 30))
            restriction = draw(
                st.sampled_from(
                    [
                        {},
                        {"min_kwh": tier},
                        {"max_kwh": tier + 1},
                        {"min_kwh": tier, "max_kwh": tier + 5},
                    ]
                )
            )
        else:
            restriction = draw(
                st.sampled_from(
                    [
                        {},
                        {"start_time": "22:00", "end_time": "06:00"},
                        {"day_of_week": ["SATURDAY"]},
                        {"max_power": 22},
                        {"min_power": 11},
                        {"start_time": "17:00"},
                    ]
                )
            )
        elements.append(
            element(component("ENERGY", str(draw(prices)), 1, draw(vat)), **restriction)
        )
    limits: dict[str, Any] = {}
    if draw(st.booleans()):
        low = draw(st.decimals(min_value=0, max_value=5, places=2))
        limits["min_price"] = {"excl_vat": str(low), "incl_vat": str(low * Decimal("1.2"))}
    if draw(st.booleans()):
        high = draw(st.decimals(min_value=5, max_value=50, places=2))
        limits["max_price"] = {"excl_vat": str(high), "incl_vat": str(high * Decimal("1.2"))}
    return tariff(*elements, **limits)


@given(
    t=energy_only_tariffs(),
    start_minute=st.integers(0, 180 * 24 * 60),
    energies_wh=st.lists(st.integers(0, 30_000), min_size=1, max_size=5),
    powers=st.lists(MEASURED, min_size=5, max_size=5),
    which=st.integers(0, 4),
    more_wh=st.integers(0, 20_000),
)
def test_for_energy_only_tariffs_price_never_falls_when_energy_rises(
    t: Tariff,
    start_minute: int,
    energies_wh: list[int],
    powers: list[Decimal | None],
    which: int,
    more_wh: int,
) -> None:
    start = FIRST_START + timedelta(minutes=start_minute)
    periods = [
        ChargingPeriod(
            start=start + timedelta(minutes=45 * i),
            energy_kwh=Decimal(wh) / 1000,
            max_power_kw=powers[i],
        )
        for i, wh in enumerate(energies_wh)
    ]
    end = start + timedelta(minutes=45 * len(periods))
    before = price_session(t, periods, BERLIN, start, end).total_cost
    i = which % len(periods)
    periods[i] = replace(periods[i], energy_kwh=periods[i].energy_kwh + Decimal(more_wh) / 1000)
    after = price_session(t, periods, BERLIN, start, end).total_cost
    assert after.excl_vat >= before.excl_vat
    assert after.incl_vat >= before.incl_vat


@given(t=st.sampled_from(TARIFFS), start_minute=st.integers(0, 180 * 24 * 60), coarse=sessions())
def test_totals_equal_the_sum_of_dimension_costs_before_min_max_clamping(
    t: Tariff, start_minute: int, coarse: list[dict[str, Any]]
) -> None:
    start = FIRST_START + timedelta(minutes=start_minute)
    periods, end = _periods(start, coarse, [[] for _ in coarse])
    p = price_session(t, periods, BERLIN, start, end)
    dimensions = (
        p.total_fixed_cost
        + p.total_energy_cost
        + p.total_time_cost
        + p.total_parking_cost
        + p.total_reservation_cost
    )
    assert p.unclamped_total_cost == dimensions
    if t.min_price is None and t.max_price is None:
        assert p.total_cost == dimensions
        assert p.price_limit_adjustment == ZERO_COST
    # Regrouped by VAT rate the same costs add up to the same total, up to the rounding of
    # 34-digit sums taken in another order (time costs like 1/3600 have no finite decimal).
    by_rate = sum((cost for _, cost in p.cost_by_vat_rate), ZERO_COST) - dimensions
    assert abs(by_rate.excl_vat) <= ULPS and abs(by_rate.incl_vat) <= ULPS


STATES = st.sampled_from([None, None, *ChargingState])


@st.composite
def ocpp_sessions(draw: st.DrawFn) -> list[MeterReading]:
    """Started, Updated..., Ended, with registers, power and current samples."""
    count = draw(st.integers(2, 25))
    at = FIRST_START + timedelta(minutes=draw(st.integers(0, 180 * 24 * 60)))
    register = Decimal(draw(st.integers(0, 10**7)))
    readings = []
    for seq_no in range(count):
        event = (
            EventType.STARTED
            if seq_no == 0
            else EventType.ENDED
            if seq_no == count - 1
            else EventType.UPDATED
        )
        state = ChargingState.CHARGING if seq_no == 0 else draw(STATES)
        samples = []
        for _ in range(draw(st.integers(0, 2))):
            register += draw(st.integers(0, 3000))
            samples.append(
                MeterSample(
                    timestamp=at + timedelta(seconds=draw(st.integers(-30, 30))),
                    energy_register_wh=draw(st.sampled_from([register, None])),
                    power_w=draw(
                        st.sampled_from([None, Decimal(3700), Decimal(11000), Decimal(50000)])
                    ),
                    current_a=draw(st.sampled_from([None, Decimal(16), Decimal(48)])),
                )
            )
        readings.append(MeterReading(seq_no, at, event, state, tuple(samples)))
        at += timedelta(seconds=draw(st.integers(0, 3600)))
    return readings


def _cdr(meter: SessionMeter, t: Tariff) -> dict[str, Any]:
    folded = fold_charging_periods(meter, t, BERLIN)
    p = price_session(t, folded.periods, BERLIN, folded.session_start, folded.session_end)
    return build_cdr(
        cdr_id="C1",
        country_code="DE",
        party_id="EVL",
        session_id="tx",
        cdr_token=CdrToken("DE", "EVL", "UID", "RFID", "DE-EVL-1"),
        cdr_location=CdrLocation("L", "DEU", "E", "DE*EVL*E1", "1"),
        auth_method="WHITELIST",
        tariff=t,
        price=p,
        last_updated=folded.session_end,
    )


@given(t=st.sampled_from(TARIFFS), readings=ocpp_sessions(), data=st.data())
def test_folding_the_same_readings_in_any_arrival_order_gives_the_same_cdr(
    t: Tariff, readings: list[MeterReading], data: st.DataObject
) -> None:
    in_order = SessionMeter().record_all(readings)
    arrival = data.draw(
        st.permutations(readings + data.draw(st.lists(st.sampled_from(readings), max_size=3)))
    )  # retries: exact duplicates
    incremental = SessionMeter()
    for reading in arrival:
        incremental = incremental.record(reading)
        incremental.timeline()  # as running_cost would: extend where it can
    assert incremental == in_order
    assert _cdr(incremental, t) == _cdr(in_order, t)


def _reading_record(reading: MeterReading) -> dict[str, Any]:
    """A reading as ChargingSession records it (ledger/handlers/sessions.py reading_of)."""
    return {
        "seq_no": reading.seq_no, "event_type": reading.event_type.value,
        "timestamp": reading.timestamp,
        "charging_state": None if reading.charging_state is None else reading.charging_state.value,
        "samples": [{"timestamp": s.timestamp, "energy_wh": s.energy_register_wh,
                     "power_w": s.power_w, "current_a": s.current_a} for s in reading.samples],
    }


def _outcome(t: Tariff, meter: SessionMeter, now: datetime) -> Cost | str:
    try:
        return running_cost(t, meter, BERLIN, now)
    except (InvalidCdr, InvalidTariff) as exc:  # both ways must refuse alike
        return f"{type(exc).__name__}: {exc}"


@given(t=st.sampled_from(TARIFFS), readings=ocpp_sessions(), data=st.data())
def test_the_running_cost_kept_per_session_equals_a_full_repricing_after_every_update(
    t: Tariff, readings: list[MeterReading], data: st.DataObject
) -> None:
    """The meter a live session keeps between its updates (session_cost.session_meter) gives
    the running cost of a meter built from every reading at once, after each update, for every
    tariff of the OCPI test data, readings arriving in any order, retries included."""
    arrival = data.draw(
        st.permutations(readings + data.draw(st.lists(st.sampled_from(readings), max_size=3)))
    )
    session = ChargingSession(tenant_id="t1", transaction_id="tx", location_id="L1",
                              charge_point_id="CP1")
    for reading in arrival:
        if session.has_seq_no(reading.seq_no):
            continue  # the handler ignores a retry before it reaches the meter
        session.record_reading(_reading_record(reading))
        now = max(r.timestamp for r in readings) + timedelta(minutes=data.draw(st.integers(0, 90)))
        kept = session_meter(session)
        assert kept == full_meter(session)
        assert _outcome(t, kept, now) == _outcome(t, full_meter(session), now)
