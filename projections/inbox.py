"""What came in and was not applied: dead letters (with their reason and the raw payload),
refusals (well-formed requests the billing rules refused, with the reason), and messages
parked until what they need arrives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.inbox import DeadLetter, Refusal
from ledger.domain.parking import ParkingLot
from ledger.domain.text import printable, storable
from ledger.limits import BIGINT_MAX, DEAD_LETTER_FIELD_CHARS_MAX
from projections.changes import RowChange, event_class
from projections.identities import Identities
from projections.sql import (
    DEAD_LETTER_RECORDED,
    MESSAGE_PARKED,
    PARKED_RELEASED,
    REFUSAL_RECORDED,
)
from projections.values import ProjectionError, SqlValue, instant_text, optional_text

# Dead-letter rows for events of the log the read models could not hold carry this source.
UNPROJECTABLE_SOURCE = "projection:read_models"


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


def message_parked(event: Any, identities: Identities) -> list[RowChange]:
    entry = event.entry
    return [
        RowChange(
            MESSAGE_PARKED,
            {
                "source": str(entry["source"]),
                "source_position": str(entry["position"]),
                "tenant_id": str(entry["tenant_id"]),
                "event_id": str(entry["event_id"]),
                "type_name": str(entry["type_name"]),
                "message_key": optional_text(entry["key"]),
                "awaits": str(entry["awaits"]),
                "reason": str(entry["reason"]),
                "occurred_at": str(entry["occurred_at"]),
            },
        )
    ]


def parked_released(event: Any, identities: Identities) -> list[RowChange]:
    return [
        RowChange(PARKED_RELEASED, {"source": str(source), "source_position": str(position)})
        for source, position in event.positions
    ]


def unprojectable(notification_id: int, event: Any, error: Exception) -> RowChange:
    """The dead-letter row of an event no read model could hold, with why."""
    tenant_id = getattr(event, "tenant_id", None)
    return RowChange(
        DEAD_LETTER_RECORDED,
        {
            "source": UNPROJECTABLE_SOURCE,
            "source_position": str(notification_id),
            "tenant_id": None if tenant_id is None else printable(
                str(tenant_id), DEAD_LETTER_FIELD_CHARS_MAX),
            "event_id": None,
            "type_name": type(event).__qualname__,
            "message_key": None,
            "reason": printable(f"not projected: {type(error).__name__}: {error}",
                                DEAD_LETTER_FIELD_CHARS_MAX),
            "payload": "",
            "received_at": None,
        },
    )


def storable_change(change: RowChange) -> RowChange:
    """`change` with every text storable (NUL and lone surrogates escaped); an integer
    beyond a BIGINT column raises ProjectionError (the event cannot be projected)."""
    values: dict[str, SqlValue] = {}
    for name, value in change.values.items():
        if isinstance(value, str):
            value = storable(value)
        elif isinstance(value, int) and not -BIGINT_MAX - 1 <= value <= BIGINT_MAX:
            raise ProjectionError(f"{name} = {value} is beyond a BIGINT column")
        values[name] = value
    return RowChange(change.statement, values)


HANDLERS: dict[type, Callable[[Any, Identities], list[RowChange]]] = {
    event_class(DeadLetter, "Recorded"): dead_letter_recorded,
    event_class(Refusal, "Refused"): refusal_recorded,
    event_class(ParkingLot, "Parked"): message_parked,
    event_class(ParkingLot, "Released"): parked_released,
}
