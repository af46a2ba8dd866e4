"""Outbound commands read model: every command the ledger issued to the PSP or the CSMS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.outbox import OutboundCommand
from projections.changes import RowChange, event_class
from projections.identities import Identities
from projections.sql import COMMAND_ISSUED
from projections.values import canonical_json


def command_issued(event: Any, identities: Identities) -> list[RowChange]:
    return [
        RowChange(
            COMMAND_ISSUED,
            {
                "tenant_id": str(event.tenant_id),
                "command_id": str(event.command_id),
                "topic": str(event.topic),
                "message_key": str(event.key),
                "type_name": str(event.type_name),
                "payload_json": canonical_json(event.payload),
                "subject_json": canonical_json(event.subject),
            },
        )
    ]


HANDLERS: dict[type, Callable[[Any, Identities], list[RowChange]]] = {
    event_class(OutboundCommand, "Issued"): command_issued,
}
