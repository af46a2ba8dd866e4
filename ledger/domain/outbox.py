"""Outbound commands, recorded in the same transaction as the state change that caused them.

The relay publishes each `OutboundCommand.Issued` in notification order and keeps its own
position, so a crash re-sends a command under the same id (the PSP and the CSMS deduplicate
by it) and can never lose one.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id


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
