"""What a session costs: the session's recorded readings folded and priced by the pricer.

The session aggregate keeps OCPP readings as plain dicts (JSON-able event state); this module
turns them into the pricer's `MeterReading`s and returns exact costs. Parsed tariffs and
time zones are cached by their text, since every meter update of every live session asks.

A live session's meter is kept between its meter updates (`session_meter`): each update
records only the readings that arrived since, so the meter's timeline is extended, not
rebuilt from every reading (which made a session's work grow with the square of its
updates). The fold and the pricing still run over the whole session, so the running cost
is exactly the full repricing's, for every tariff shape (step sizes, min/max price, time
restrictions: nothing of the price itself is carried from one update to the next); tests/
unit/pricing/test_running_cost.py checks it against a meter built from scratch.
"""

from __future__ import annotations

import json
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from ledger.domain.charging_periods import (
    ChargingState,
    EventType,
    MeterReading,
    MeterSample,
    SessionMeter,
    fold_charging_periods,
    running_cost,
)
from ledger.domain.pricing import SessionPrice, cost_fields, price_session
from ledger.domain.session import ChargingSession
from ledger.domain.settlement import SessionCost
from ledger.domain.tariff import Tariff, parse_tariff

TARIFF_CACHE_ENTRIES_MAX = 1_024  # distinct tariff versions live at once, per process
# Live sessions whose meter is kept between updates, per process (a few kB each).
SESSION_METERS_MAX = 10_000


@lru_cache(maxsize=TARIFF_CACHE_ENTRIES_MAX)
def tariff_from_json(ocpi_tariff_json: str) -> Tariff:
    return parse_tariff(json.loads(ocpi_tariff_json))


@lru_cache(maxsize=TARIFF_CACHE_ENTRIES_MAX)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def meter_reading(reading: dict[str, Any]) -> MeterReading:
    state = reading.get("charging_state")
    return MeterReading(
        seq_no=reading["seq_no"],
        timestamp=reading["timestamp"],
        event_type=EventType(reading["event_type"]),
        charging_state=None if state is None else ChargingState(state),
        samples=tuple(
            MeterSample(
                timestamp=s["timestamp"],
                energy_register_wh=_decimal(s.get("energy_wh")),
                power_w=_decimal(s.get("power_w")),
                current_a=_decimal(s.get("current_a")),
            )
            for s in reading.get("samples") or []
        ),
    )


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


@dataclass(frozen=True, slots=True)
class _KeptMeter:
    session: weakref.ref[ChargingSession]  # this very object: a re-read session starts over
    readings: int  # how many of its readings (in arrival order) the meter holds
    meter: SessionMeter


_kept_meters: OrderedDict[UUID, _KeptMeter] = OrderedDict()


def session_meter(session: ChargingSession) -> SessionMeter:
    """The session's meter, equal to one built from all its readings at once.

    A session's readings only ever grow, in arrival order, on one object; so the meter kept
    for that object needs only the readings after the ones it holds. Any other object (the
    session read again from the store, or rebuilt after an undone message) starts over.
    """
    kept = _kept_meters.pop(session.id, None)
    readings = session.readings
    if kept is not None and kept.session() is session and kept.readings <= len(readings):
        meter = kept.meter
        for reading in readings[kept.readings:]:
            meter = meter.record(meter_reading(reading))
    else:
        meter = SessionMeter().record_all([meter_reading(r) for r in readings])
    _kept_meters[session.id] = _KeptMeter(weakref.ref(session), len(readings), meter)
    while len(_kept_meters) > SESSION_METERS_MAX:
        _kept_meters.popitem(last=False)
    return meter


def full_meter(session: ChargingSession) -> SessionMeter:
    """The session's meter built from all its readings at once (what `session_meter` equals)."""
    return SessionMeter().record_all([meter_reading(r) for r in session.ordered_readings()])


def running_cost_incl_vat(session: ChargingSession, now: datetime) -> Decimal:
    """The cost so far, incl. VAT, exact: what holds and wallet limits watch."""
    payer = session.payer
    assert payer is not None
    cost = running_cost(
        tariff_from_json(payer.tariff_json), session_meter(session), _zone(payer.time_zone), now
    )
    return cost.incl_vat


def final_price(session: ChargingSession) -> SessionPrice:
    payer = session.payer
    assert payer is not None
    tariff = tariff_from_json(payer.tariff_json)
    zone = _zone(payer.time_zone)
    meter = session_meter(session)
    last = session.ordered_readings()[-1]["timestamp"]
    folded = fold_charging_periods(meter, tariff, zone, until=session.ended_at or last)
    return price_session(tariff, folded.periods, zone, folded.session_start, folded.session_end)


def final_cost(session: ChargingSession) -> SessionCost:
    price = final_price(session)
    return SessionCost(
        currency=price.currency,
        total_excl_vat=price.total_cost.excl_vat,
        total_incl_vat=price.total_cost.incl_vat,
        by_vat_rate={rate: (c.excl_vat, c.incl_vat - c.excl_vat)
                     for rate, c in price.cost_by_vat_rate},
        ocpi=cost_fields(price),
    )
