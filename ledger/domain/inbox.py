"""What came in and could not, or need not, be applied: processed ids, dead letters, refusals."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id


class ProcessedMessage(Aggregate):
    """Marks an inbound event id as applied: a re-published copy at a new offset is ignored."""

    @staticmethod
    def create_id(tenant_id: str, event_id: str) -> UUID:
        return natural_id("processed", tenant_id, event_id)

    @event("Processed")
    def __init__(
        self, tenant_id: str, event_id: str, source: str, payload_digest: str = ""
    ) -> None:
        self.tenant_id = tenant_id
        self.event_id = event_id
        self.source = source
        # sha256 of the first payload's canonical JSON: a later copy with another payload
        # is a conflict, not a duplicate ("" for markers recorded before digests were kept).
        self.payload_digest = payload_digest


# The reason of a dead letter whose event id was applied before with another payload.
CONFLICT_REASON_PREFIX = "conflict: "


class DeadLetter(Aggregate):
    """An inbound message that cannot be applied, kept with its reason and provenance.

    Keyed by where it came from, so the same bad message met again is recorded once.
    """

    @staticmethod
    def create_id(source: str, position: str) -> UUID:
        return natural_id("dead_letter", "-", source, position)

    @event("Recorded")
    def __init__(
        self,
        source: str,
        position: str,
        tenant_id: str | None,
        event_id: str | None,
        type_name: str | None,
        key: str | None,
        reason: str,
        payload: str,
        received_at: datetime | None,
    ) -> None:
        self.source = source
        self.position = position
        self.tenant_id = tenant_id
        self.event_id = event_id
        self.type_name = type_name
        self.key = key
        self.reason = reason
        self.payload = payload
        self.received_at = received_at
        self.redrive_outcome: str | None = None

    @event("Redriven")
    def record_redrive(self, outcome: str, at: datetime) -> None:
        """An operator applied it again after fixing its cause; `outcome` says how it went."""
        self.redrive_outcome = outcome

    @property
    def is_resolved(self) -> bool:
        return self.redrive_outcome in ("applied", "duplicate", "refused")


class Refusal(Aggregate):
    """A well-formed request the billing rules refused (a reason event); nothing else changed."""

    @staticmethod
    def create_id(tenant_id: str, event_id: str) -> UUID:
        return natural_id("refusal", tenant_id, event_id)

    @event("Refused")
    def __init__(
        self, tenant_id: str, event_id: str, type_name: str, subject: str, reason: str,
        at: datetime,
    ) -> None:
        self.tenant_id = tenant_id
        self.event_id = event_id
        self.type_name = type_name
        self.subject = subject
        self.reason = reason
        self.at = at
