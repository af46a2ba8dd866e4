"""Outbound commands read model: every command the ledger issued to the PSP or the CSMS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.outbox import OutboundCommand, command_recorded_by
from ledger.domain.session import ChargingSession
from projections.changes import RowChange, event_class
from projections.identities import Identities
from projections.sql import COMMAND_ISSUED
from projections.values import canonical_json


def command_recorded(event: Any, identities: Identities) -> list[RowChange]:
    """The command an event records: an `OutboundCommand.Issued`, or a running cost update
    carried by its meter reading (ledger/domain/outbox.py); a reading without one, none."""
    command = command_recorded_by(event)
    if command is None:
        return []
    return [
        RowChange(
            COMMAND_ISSUED,
            {
                "tenant_id": command.tenant_id,
                "command_id": command.command_id,
                "topic": command.recipient,
                "message_key": command.key,
                "type_name": command.type_name,
                "payload_json": canonical_json(command.payload),
                "subject_json": canonical_json(command.subject),
            },
        )
    ]


HANDLERS: dict[type, Callable[[Any, Identities], list[RowChange]]] = {
    event_class(OutboundCommand, "Issued"): command_recorded,
    event_class(ChargingSession, "ReadingRecorded"): command_recorded,
}
