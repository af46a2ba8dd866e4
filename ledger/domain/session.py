"""A charging session: what the CSMS reported, who pays, and what it cost.

Readings are kept as they arrived (append-only facts) and folded in seqNo order whenever a
price is needed, so a late or out-of-order meter update changes the result exactly as if it
had arrived on time. The payer is decided once, at start, from the configuration in force.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id
from ledger.domain.payer import Payer


class ChargingSession(Aggregate):
    @staticmethod
    def create_id(tenant_id: str, transaction_id: str) -> UUID:
        return natural_id("session", tenant_id, transaction_id)

    @event("Opened")
    def __init__(
        self, tenant_id: str, transaction_id: str, location_id: str, charge_point_id: str
    ) -> None:
        self.tenant_id = tenant_id
        self.transaction_id = transaction_id
        self.location_id = location_id
        self.charge_point_id = charge_point_id
        self.readings: list[dict[str, Any]] = []
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.start_seq_no: int | None = None
        self.end_seq_no: int | None = None
        self.id_token: str | None = None
        self.evse_id: str | None = None
        self.terminal_reference: str | None = None
        self.tariff_id_hint: str | None = None
        self.payer: Payer | None = None
        self.stop_requested = False
        self.settlement: dict[str, Any] | None = None
        # The last cost the CSMS was told: {"total", "at", "sequence"} (None: not yet).
        self.last_cost_update: dict[str, Any] | None = None

    # ------------------------------------------------------------------ facts
    @event("ReadingRecorded")
    def record_reading(
        self, reading: dict[str, Any], cost_update: dict[str, Any] | None = None
    ) -> None:
        """`cost_update`: what the CSMS was told because of this reading, if anything
        (`tell_cost`); events stored before it existed have none."""
        self.readings.append(reading)
        if cost_update is not None:
            self._remember_cost_told(cost_update)
        kind = reading["event_type"]
        if kind == "Started":
            self.started_at = reading["timestamp"]
            self.start_seq_no = reading["seq_no"]
        elif kind == "Ended":
            self.ended_at = reading["timestamp"]
            self.end_seq_no = reading["seq_no"]
        if reading.get("id_token") and self.id_token is None:
            self.id_token = reading["id_token"]
        if reading.get("evse_id") and self.evse_id is None:
            self.evse_id = reading["evse_id"]
        if reading.get("terminal_reference") and self.terminal_reference is None:
            self.terminal_reference = reading["terminal_reference"]
        if reading.get("tariff_id") and self.tariff_id_hint is None:
            self.tariff_id_hint = reading["tariff_id"]

    @event("PayerResolved")
    def resolve_payer(self, payer: dict[str, Any]) -> None:
        """`payer`: the record of a `Payer` (who pays, the tariff, time zone, hold, sponsors)."""
        self.payer = Payer.from_record(payer)

    @event("StopRequested")
    def request_stop(self, reason: str, command_id: str) -> None:
        self.stop_requested = True

    def tell_cost(
        self, total: Decimal, at: datetime, sequence: int, command_id: str,
        command: dict[str, Any],
    ) -> bool:
        """The CSMS is told what the driver pays so far (or in the end); True when this
        session's reading carries `command` (ledger/domain/outbox.py's `carried_command`),
        False when the caller must issue it as an outbound command of its own.

        A meter update that moved the cost is the common cause: the update is then carried
        by that reading's own event, still pending and the session's last, so a sent update
        stores nothing of its own. Otherwise (an update at start, after the payer was
        decided; the final one, after settlement) it is an event of its own, and the command
        an `OutboundCommand`."""
        pending = self.pending_events
        last: Any = pending[-1] if pending else None  # the class is made by @event
        if type(last).__name__ == "ReadingRecorded" and last.cost_update is None:
            told = {"total": total, "at": at, "sequence": sequence, "command_id": command_id,
                    "command": command}
            # Events are frozen dataclasses: set the field underneath, as business_time.py
            # does, before the event is stored; replay applies it through record_reading.
            object.__setattr__(last, "cost_update", told)
            self._remember_cost_told(told)
            return True
        self.send_cost_update(total, at, sequence, command_id)
        return False

    @event("CostUpdateSent")
    def send_cost_update(
        self, total: Decimal, at: datetime, sequence: int, command_id: str
    ) -> None:
        """An update the reading just recorded did not carry (`tell_cost`)."""
        self._remember_cost_told(
            {"total": total, "at": at, "sequence": sequence, "command_id": command_id}
        )

    def _remember_cost_told(self, told: dict[str, Any]) -> None:
        self.last_cost_update = {"total": told["total"], "at": told["at"],
                                 "sequence": told["sequence"]}

    @event("Settled")
    def settle(
        self, settlement: dict[str, Any], journal_entries: list[dict[str, Any]]
    ) -> None:
        """`settlement`: billing model, exact and rounded totals, CDR, charged_to."""
        self.settlement = settlement

    # ------------------------------------------------------------------ questions
    def has_seq_no(self, seq_no: int) -> bool:
        return any(r["seq_no"] == seq_no for r in self.readings)

    @property
    def is_started(self) -> bool:
        return self.started_at is not None

    @property
    def is_complete(self) -> bool:
        """Started and Ended held, and every seqNo between them (OCPP 2.0.1 E.x)."""
        if self.start_seq_no is None or self.end_seq_no is None:
            return False
        held = {r["seq_no"] for r in self.readings}
        return all(n in held for n in range(self.start_seq_no, self.end_seq_no + 1))

    @property
    def is_settled(self) -> bool:
        return self.settlement is not None

    def ordered_readings(self) -> list[dict[str, Any]]:
        return sorted(self.readings, key=lambda r: r["seq_no"])
