"""One simulated charging session, as its charging station reports it over OCPP 2.0.1.

A `SessionPlan` is what the car and driver intend (when, where, how much energy, whether the
car stays parked after it is full); a `SessionRun` plays it out one meter interval at a time
and emits OCPP TransactionEvents (research notes section 8):
- Started: triggerReason Authorized, idToken, evse, chargingState Charging, the register
  at Transaction.Begin;
- Updated every TxUpdatedInterval (5-15 min) with Energy.Active.Import.Register and
  Power.Active.Import (Sample.Periodic); when the car is full and stays plugged in, an
  Updated with triggerReason ChargingStateChanged and chargingState SuspendedEV (parking);
- Ended with stoppedReason (EVDisconnected, Local, or Remote when the CSMS asked to stop),
  timeSpentCharging and the register at Transaction.End.
chargingState is sent only when it changes, as OCPP says. Energy is the register's rise,
never reset: registers only grow, per EVSE, across sessions.

A stop request from the ledger (StopSessionRequested) is honoured at the next meter interval:
the station ends the transaction with stoppedReason Remote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from ledger.messages import OcppTransactionEvent, TransactionEvent

CSMS_PRODUCER = "csms"
ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
# A DC charge tapers: past this share of the energy wanted, the car draws this share of
# its power.
DC_TAPER_FROM = Decimal("0.8")
DC_TAPER_POWER = Decimal("0.6")
# Events one session may emit: a 14-hour hotel night at 5-minute intervals is ~170.
SESSION_EVENTS_MAX = 400
SECONDS_PER_HOUR = Decimal(3600)

SessionKind = Literal[
    "driver", "open_access", "ad_hoc_terminal", "unknown_token", "blocked_by_debt",
]
EndReason = Literal["EVDisconnected", "Local"]


@dataclass(frozen=True, slots=True)
class SessionPlan:
    tenant_id: str
    kind: SessionKind
    transaction_id: str
    location_id: str
    charge_point_id: str
    evse_id: int
    meter_interval_s: int
    start_at: datetime  # UTC
    power_kw: Decimal  # what the car draws while charging
    dc: bool
    energy_wanted_wh: int
    parking_s: int  # plugged in after full; 0: leaves at once
    end_reason: EndReason
    register_begin_wh: int
    # Power factor of each interval (small variations around power_kw), by interval number.
    power_wobble: tuple[Decimal, ...]
    driver_id: str | None = None
    id_token: str | None = None
    id_token_type: Literal["ISO14443", "eMAID", "Central"] = "ISO14443"
    terminal_reference: str | None = None
    tariff_hint: str | None = None

    def planned_end_at(self) -> datetime:
        """A generous estimate of the end (taper included), for the EVSE's calendar."""
        hours = Decimal(self.energy_wanted_wh) / 1000 / self.power_kw
        seconds = int(hours * SECONDS_PER_HOUR * Decimal("1.4")) + self.parking_s
        return self.start_at + timedelta(seconds=seconds + 2 * self.meter_interval_s)


@dataclass(slots=True)
class SessionRun:
    """A session under way: call `step(at)` at each time it asks for, until it is done."""

    plan: SessionPlan
    event_id: Callable[[str], str]  # the CSMS's event ids
    seq_no: int = 0
    register_wh: int = 0
    last_at: datetime | None = None
    state: Literal["new", "charging", "parking", "ended"] = "new"
    charging_s: int = 0
    parking_until: datetime | None = None
    stop_requested: bool = False
    interval_no: int = 0
    emitted: int = 0
    stopped_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.state == "ended"

    def step(self, at: datetime) -> tuple[list[TransactionEvent], datetime | None]:
        """What the station sends at `at`, and when it next acts (None: the session ended)."""
        assert not self.done, "a finished session does not step"
        assert self.emitted < SESSION_EVENTS_MAX, "a session that never ends is a bug"
        if self.state == "new":
            return [self._started()], self._next_periodic(self.plan.start_at)
        assert self.last_at is not None and at >= self.last_at
        if self.stop_requested:
            self._charge_until(at)
            return [self._ended(at, "Remote")], None
        if self.state == "charging":
            return self._charging_step(at)
        return self._parking_step(at)

    # ------------------------------------------------------------------ states
    def _charging_step(self, at: datetime) -> tuple[list[TransactionEvent], datetime | None]:
        assert self.last_at is not None
        full_at = self._charge_until(at)
        if full_at is None:
            return [self._updated(at, "MeterValuePeriodic", None)], self._next_periodic(at)
        if self.plan.parking_s <= 0:
            return [self._ended(full_at, self.plan.end_reason)], None
        self.state = "parking"
        self.parking_until = full_at + timedelta(seconds=self.plan.parking_s)
        event = self._updated(full_at, "ChargingStateChanged", "SuspendedEV")
        return [event], min(self._next_periodic(full_at), self.parking_until)

    def _parking_step(self, at: datetime) -> tuple[list[TransactionEvent], datetime | None]:
        assert self.parking_until is not None
        if at >= self.parking_until:
            return [self._ended(self.parking_until, "EVDisconnected")], None
        event = self._updated(at, "MeterValuePeriodic", None)
        return [event], min(self._next_periodic(at), self.parking_until)

    def _charge_until(self, at: datetime) -> datetime | None:
        """Deliver energy from the last event to `at`; returns when the car got full, if so."""
        assert self.last_at is not None
        if self.state != "charging":
            return None
        start = self.last_at
        seconds = int((at - start).total_seconds())
        power_w = self._power_w()
        wanted_left = self.plan.register_begin_wh + self.plan.energy_wanted_wh - self.register_wh
        deliverable = int(power_w * seconds / SECONDS_PER_HOUR)
        self.interval_no += 1
        if deliverable < wanted_left:
            self.register_wh += deliverable
            self.charging_s += seconds
            return None
        seconds_to_full = int(
            (Decimal(wanted_left) * SECONDS_PER_HOUR / power_w).to_integral_value(ROUND_HALF_UP)
        ) if power_w > 0 else seconds
        seconds_to_full = max(1, min(seconds, seconds_to_full))
        self.register_wh += wanted_left
        self.charging_s += seconds_to_full
        return start + timedelta(seconds=seconds_to_full)

    def _power_w(self) -> Decimal:
        plan = self.plan
        wobble = plan.power_wobble[self.interval_no % len(plan.power_wobble)]
        power = plan.power_kw * 1000 * wobble
        delivered = self.register_wh - plan.register_begin_wh
        if plan.dc and delivered >= plan.energy_wanted_wh * DC_TAPER_FROM:
            power *= DC_TAPER_POWER
        return power.to_integral_value(ROUND_HALF_UP)

    def _next_periodic(self, at: datetime) -> datetime:
        return at + timedelta(seconds=self.plan.meter_interval_s)

    # ------------------------------------------------------------------ messages
    def _started(self) -> TransactionEvent:
        plan = self.plan
        self.register_wh = plan.register_begin_wh
        self.state = "charging"
        ocpp: dict[str, Any] = {
            "eventType": "Started",
            "timestamp": plan.start_at,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": plan.transaction_id,
                                "chargingState": "Charging"},
            "evse": {"id": plan.evse_id, "connectorId": 1},
            "meterValue": [self._meter(plan.start_at, "Transaction.Begin", with_power=False)],
        }
        if plan.id_token is not None:
            ocpp["idToken"] = {"idToken": plan.id_token, "type": plan.id_token_type}
        return self._event(plan.start_at, ocpp)

    def _updated(
        self, at: datetime, trigger: str, charging_state: str | None
    ) -> TransactionEvent:
        info: dict[str, Any] = {"transactionId": self.plan.transaction_id}
        if charging_state is not None:
            info["chargingState"] = charging_state
        ocpp = {
            "eventType": "Updated",
            "timestamp": at,
            "triggerReason": trigger,
            "seqNo": self.seq_no,
            "transactionInfo": info,
            "meterValue": [self._meter(at, "Sample.Periodic", with_power=True)],
        }
        return self._event(at, ocpp)

    def _ended(self, at: datetime, reason: str) -> TransactionEvent:
        plan = self.plan
        self.state = "ended"
        self.stopped_reason = reason
        trigger = {"Remote": "RemoteStop", "Local": "StopAuthorized"}.get(reason, "EVDeparted")
        info: dict[str, Any] = {
            "transactionId": plan.transaction_id,
            "chargingState": "Idle" if reason == "EVDisconnected" else "EVConnected",
            "stoppedReason": reason,
            "timeSpentCharging": self.charging_s,
        }
        ocpp: dict[str, Any] = {
            "eventType": "Ended",
            "timestamp": at,
            "triggerReason": trigger,
            "seqNo": self.seq_no,
            "transactionInfo": info,
            "meterValue": [self._meter(at, "Transaction.End", with_power=False)],
        }
        if reason == "Local" and plan.id_token is not None:
            ocpp["idToken"] = {"idToken": plan.id_token, "type": plan.id_token_type}
        return self._event(at, ocpp)

    def _meter(self, at: datetime, context: str, *, with_power: bool) -> dict[str, Any]:
        samples: list[dict[str, Any]] = [{
            "value": Decimal(self.register_wh), "context": context, "measurand": ENERGY,
            "unitOfMeasure": {"unit": "Wh", "multiplier": 0},
        }]
        if with_power:
            power = self._power_w() if self.state == "charging" else Decimal(0)
            samples.append({
                "value": power, "context": context, "measurand": POWER,
                "unitOfMeasure": {"unit": "W", "multiplier": 0},
            })
        return {"timestamp": at, "sampledValue": samples}

    def _event(self, at: datetime, ocpp: dict[str, Any]) -> TransactionEvent:
        plan = self.plan
        self.seq_no += 1
        self.emitted += 1
        self.last_at = at
        return TransactionEvent(
            event_id=self.event_id("tx"),
            tenant_id=plan.tenant_id,
            occurred_at=at,
            producer=CSMS_PRODUCER,
            location_id=plan.location_id,
            charge_point_id=plan.charge_point_id,
            tariff_id=plan.tariff_hint,
            terminal_reference=plan.terminal_reference,
            transaction=OcppTransactionEvent.model_validate(ocpp),
        )
