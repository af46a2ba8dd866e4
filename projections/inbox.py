"""What came in and was not applied: dead letters (with their reason and the raw payload)
and refusals (well-formed requests the billing rules refused, with the reason)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.inbox import DeadLetter, Refusal
from projections.changes import RowChange, event_class
from projections.identities import Identities
from projections.sql import DEAD_LETTER_RECORDED, REFUSAL_RECORDED
from projections.values import instant_text, optional_text


def dead_letter_recorded(event: Any, identities: Identities) -> list[RowChange]:
    return [
        RowChange(
            DEAD_LETTER_RECORDED,
            {
                "source": str(event.source),
                "source_position": str(event.position),
                "tenant_id": optional_text(event.tenant_id),
                "event_id": optional_text(event.event_id),
                "type_name": optional_text(event.type_name),
                "message_key": optional_text(event.key),
                "reason": str(event.reason),
                "payload": str(event.payload),
                "received_at": instant_text(event.received_at),
            },
        )
    ]


def refusal_recorded(event: Any, identities: Identities) -> list[RowChange]:
    return [
        RowChange(
            REFUSAL_RECORDED,
            {
                "tenant_id": str(event.tenant_id),
                "event_id": str(event.event_id),
                "type_name": str(event.type_name),
                "subject": str(event.subject),
                "reason": str(event.reason),
                "refused_at": instant_text(event.at),
            },
        )
    ]


HANDLERS: dict[type, Callable[[Any, Identities], list[RowChange]]] = {
    event_class(DeadLetter, "Recorded"): dead_letter_recorded,
    event_class(Refusal, "Refused"): refusal_recorded,
}
