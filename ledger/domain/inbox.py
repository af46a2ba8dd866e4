"""What came in and could not, or need not, be applied: processed ids, dead letters, refusals."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from ledger.domain.ids import natural_id


def processed_key(tenant_id: str, event_id: str) -> UUID:
    """The key under which an applied inbound event id is found again: the id a
    `ProcessedMessage` marker had, so one lookup finds both schemes."""
    return natural_id("processed", tenant_id, event_id)


class ProcessedMessage(Aggregate):
    """Marks one inbound event id as applied. Written before `ProcessedBatch` replaced it:
    no longer written, still found by the duplicate check (stores keep their markers)."""

    @staticmethod
    def create_id(tenant_id: str, event_id: str) -> UUID:
        return processed_key(tenant_id, event_id)

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


# One entry of a `ProcessedBatch`: tenant id, event id, sha256 of the payload's JSON.
ProcessedEntry = list[str]


class ProcessedBatch(Aggregate):
    """The inbound event ids one batch applied (or refused), with their payload digests: a
    re-published copy at a new offset is a duplicate, or a conflict if its payload differs.

    One event per batch instead of a marker aggregate per message (a quarter of all stored
    events). The store indexes its entries by `processed_key` in the same transaction
    (consumers/processed_index.py), so a batch asks for its ids in one query.
    """

    @staticmethod
    def create_id(entries: list[ProcessedEntry]) -> UUID:
        # An event id is applied once per tenant, ever, so the first entry names the batch.
        tenant_id, event_id = entries[0][0], entries[0][1]
        return natural_id("processed-batch", tenant_id, event_id)

    @event("Processed")
    def __init__(self, entries: list[ProcessedEntry]) -> None:
        assert entries, "a batch that applied nothing records nothing"
        self.entries = entries


# The stored topics of applied event ids: newest scheme first. Event classes made by @event
# are attributes mypy cannot see.
PROCESSED_BATCH_TOPIC = get_topic(vars(ProcessedBatch)["Processed"])
PROCESSED_TOPICS = (PROCESSED_BATCH_TOPIC, get_topic(vars(ProcessedMessage)["Processed"]))

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
