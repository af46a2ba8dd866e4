"""One simulated session over OCPP 2.0.1: its events, energy, parking and remote stops."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from consumers.simulation.charge_point import SessionPlan, SessionRun
from ledger.messages import TransactionEvent

START = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
PLAN = SessionPlan(
    tenant_id="t1", kind="driver", transaction_id="tx-1", location_id="L1",
    charge_point_id="L1-CP001", evse_id=2, meter_interval_s=600, start_at=START,
    power_kw=Decimal("12"), dc=False, energy_wanted_wh=12_000, parking_s=0,
    end_reason="EVDisconnected", register_begin_wh=5_000_000,
    power_wobble=(Decimal(1),), driver_id="d1", id_token="04AABBCCDDEE11",
)


def play(plan: SessionPlan, stop_at: datetime | None = None) -> list[TransactionEvent]:
    ids = (f"ev-{n}" for n in itertools.count(1))
    run = SessionRun(plan, lambda kind: next(ids))
    events: list[TransactionEvent] = []
    at: datetime | None = plan.start_at
    while at is not None:
        if stop_at is not None and at > stop_at:
            run.stop_requested = True
        step, at = run.step(at)
        events.extend(step)
    assert run.done
    return events


def register_wh(event: TransactionEvent) -> Decimal:
    sample = event.transaction.meterValue[0].sampledValue[0]
    assert sample.measurand == "Energy.Active.Import.Register"
    return sample.value


def test_a_session_starts_updates_every_interval_and_ends_with_its_energy() -> None:
    events = play(PLAN)
    kinds = [e.transaction.eventType for e in events]
    assert kinds == ["Started", "Updated", "Updated", "Updated", "Updated", "Updated", "Ended"]
    assert [e.transaction.seqNo for e in events] == list(range(len(events)))
    started, ended = events[0].transaction, events[-1].transaction
    assert started.idToken is not None and started.idToken.idToken == "04AABBCCDDEE11"
    assert started.evse is not None and started.evse.id == 2
    assert started.transactionInfo.chargingState == "Charging"
    assert started.meterValue[0].sampledValue[0].context == "Transaction.Begin"
    assert ended.transactionInfo.stoppedReason == "EVDisconnected"
    assert ended.meterValue[0].sampledValue[0].context == "Transaction.End"
    assert register_wh(events[-1]) - register_wh(events[0]) == 12_000
    # 12 kWh at 12 kW: one hour of charging, updates every 10 minutes.
    assert ended.timestamp == START + timedelta(hours=1)
    assert ended.transactionInfo.timeSpentCharging == 3600
    gaps = {(b.occurred_at - a.occurred_at) for a, b in itertools.pairwise(events[:-1])}
    assert gaps == {timedelta(minutes=10)}
    registers = [register_wh(e) for e in events]
    assert registers == sorted(registers)


def test_a_car_that_stays_plugged_in_parks_after_it_is_full() -> None:
    events = play(replace(PLAN, parking_s=45 * 60))
    states = [e.transaction.transactionInfo.chargingState for e in events]
    assert "SuspendedEV" in states
    suspended = events[states.index("SuspendedEV")]
    assert suspended.transaction.triggerReason == "ChargingStateChanged"
    assert suspended.occurred_at == START + timedelta(hours=1)
    assert events[-1].occurred_at == START + timedelta(hours=1, minutes=45)
    assert register_wh(events[-1]) - register_wh(events[0]) == 12_000
    assert events[-1].transaction.transactionInfo.timeSpentCharging == 3600


def test_a_stop_request_ends_the_session_remotely_at_the_next_interval() -> None:
    events = play(PLAN, stop_at=START + timedelta(minutes=5))
    assert [e.transaction.eventType for e in events] == ["Started", "Ended"]
    ended = events[-1].transaction
    assert ended.transactionInfo.stoppedReason == "Remote"
    assert ended.triggerReason == "RemoteStop"
    assert ended.timestamp == START + timedelta(minutes=10)
    assert register_wh(events[-1]) - register_wh(events[0]) < 12_000


def test_a_dc_charge_tapers_near_the_end() -> None:
    dc = replace(PLAN, dc=True, power_kw=Decimal("100"), energy_wanted_wh=50_000,
                 meter_interval_s=300)
    events = play(dc)
    powers = [e.transaction.meterValue[0].sampledValue[1].value for e in events[1:-1]]
    assert max(powers) == 100_000
    assert min(powers) == 60_000
    assert register_wh(events[-1]) - register_wh(events[0]) == 50_000
