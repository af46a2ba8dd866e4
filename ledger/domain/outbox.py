"""Outbound commands, recorded in the same transaction as the state change that caused them.

The relay publishes each recorded command in notification order and keeps its own position,
so a crash re-sends a command under the same id (the PSP and the CSMS deduplicate by it) and
can never lose one.

A command is recorded by one of two events:
- `OutboundCommand.Issued`, an aggregate of its own (payment commands, stop requests, the
  cost updates not caused by a meter update);
- `ChargingSession.ReadingRecorded` whose `cost_update` carries a `command`: the running
  cost a meter update moved, sent to the CSMS. Riding on the reading's own event, such an
  update stores nothing of its own (ledger/handlers/cost_updates.py). Readings stored before
  this carried no `command` (their update was an `Issued` event) and record none.
`command_recorded_by` is the one reader of both; everything that reads the outbox uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from ledger.domain.ids import natural_id
from ledger.domain.session import ChargingSession


class OutboundCommand(Aggregate):
    @staticmethod
    def create_id(tenant_id: str, command_id: str) -> UUID:
        return natural_id("outbound", tenant_id, command_id)

    @event("Issued")
    def __init__(
        self, tenant_id: str, command_id: str, topic: str, key: str, type_name: str,
        payload: dict[str, Any],
        subject: dict[str, str],
    ) -> None:
        """`subject` names the aggregate waiting for the answer: {"kind", "id"}."""
        self.tenant_id = tenant_id
        self.command_id = command_id
        self.topic = topic
        self.key = key
        self.type_name = type_name
        self.payload = payload
        self.subject = subject


@dataclass(frozen=True, slots=True)
class RecordedCommand:
    """One outbound command as the outbox holds it (the payload as JSON values)."""

    tenant_id: str
    command_id: str
    recipient: str  # who it is for ("psp", "csms"; older `Issued` events named a topic)
    key: str  # the Kafka key
    type_name: str
    payload: dict[str, Any]
    subject: dict[str, str]  # the aggregate the command is about: {"kind", "id"}


_ISSUED: type[Any] = vars(OutboundCommand)["Issued"]
_READING_RECORDED: type[Any] = vars(ChargingSession)["ReadingRecorded"]
# The stored events that may record a command, as topics of the ledger's log.
COMMAND_EVENT_TOPICS: tuple[str, ...] = (get_topic(_ISSUED), get_topic(_READING_RECORDED))


def carried_command(
    type_name: str, recipient: str, key: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """What a reading's `cost_update` holds of the command it carries."""
    return {"type_name": type_name, "recipient": recipient, "key": key, "payload": payload}


def command_recorded_by(stored: Any) -> RecordedCommand | None:
    """The outbound command this stored event records, if any."""
    if isinstance(stored, _ISSUED):
        return RecordedCommand(
            tenant_id=stored.tenant_id, command_id=stored.command_id, recipient=stored.topic,
            key=stored.key,
            type_name=stored.type_name, payload=stored.payload, subject=stored.subject,
        )
    if isinstance(stored, _READING_RECORDED):
        told = stored.cost_update
        carried = None if told is None else told.get("command")
        if carried is None:
            return None
        payload = carried["payload"]
        return RecordedCommand(
            tenant_id=payload["tenant_id"], command_id=told["command_id"],
            recipient=carried["recipient"], key=carried["key"],
            type_name=carried["type_name"], payload=payload,
            subject={"kind": "session", "id": stored.originator_id.hex},
        )
    return None
