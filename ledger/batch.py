"""One batch of inbound messages: the items, what became of them, and the aggregates it changes.

Handlers import this module (never the application), so the dependency points one way:
`ledger.application` -> `ledger.handlers` -> `ledger.batch` -> `ledger.domain`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger.domain.business_time import stamp_business_time
from ledger.domain.outbox import OutboundCommand
from ledger.messages import Envelope

A = TypeVar("A", bound=Aggregate)
# Reads one stored aggregate, or None when the store holds none under that id.
StoredAggregate = Callable[[UUID], Aggregate | None]


@dataclass(frozen=True, slots=True)
class Inbound:
    """One item of a batch: a decoded message, or the reason it could not be decoded."""

    source: str  # e.g. "kafka:csms.transaction-events:2" or "file:day.jsonl"
    position: int  # offset or line number within the source; grows along the source
    message: Envelope | None
    key: str | None = None
    raw: str = ""
    error: str | None = None
    type_name: str | None = None

    def __post_init__(self) -> None:
        assert (self.message is None) != (self.error is None), "message xor error"


@dataclass(slots=True)
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    refused: int = 0
    skipped_before_position: int = 0
    commands_issued: int = 0
    new_events: int = 0
    # Of dead_lettered: a handler raised something unexpected (a bug: see the log), or the
    # event id was applied before with a different payload (a conflict).
    handler_failures: int = 0
    conflicts: int = 0


class Batch:
    """The aggregates one batch reads and changes, collected into one transaction."""

    def __init__(
        self, stored: StoredAggregate, known_absent: frozenset[UUID] = frozenset()
    ) -> None:
        self._stored = stored
        # Ids the store was asked about in bulk and does not hold: no read needed for them.
        self._known_absent = known_absent
        # Ids this batch already asked the store about and found absent: a session's meter
        # updates ask for the same missing aggregates (held session credit, a pool not yet
        # opened) again and again; one read per batch is enough.
        self._found_absent: set[UUID] = set()
        self._touched: dict[UUID, Aggregate] = {}
        self._order: list[UUID] = []
        self.commands_issued = 0
        # Business-time stamping: aggregates handed out since the last stamp, and how many
        # of each aggregate's pending events are stamped already.
        self._since_stamp: set[UUID] = set()
        self._stamped: dict[UUID, int] = {}

    def get(self, cls: type[A], aggregate_id: UUID) -> A | None:
        found = self._touched.get(aggregate_id)
        if found is None:
            if aggregate_id in self._known_absent or aggregate_id in self._found_absent:
                return None
            found = self._stored(aggregate_id)
            if found is None:
                self._found_absent.add(aggregate_id)  # an add() later is found first
                return None
            self._remember(found)
        assert isinstance(found, cls), f"{aggregate_id} is a {type(found).__name__}"
        self._since_stamp.add(aggregate_id)
        return found

    def add(self, aggregate: Aggregate) -> None:
        """Track a newly created aggregate so its events are saved with the batch."""
        self._remember(aggregate)

    def issue(self, command: Envelope, key: str, subject: dict[str, str], *,
              new: bool = False) -> None:
        """Record an outbound command in this transaction (the outbox).

        `new`: the caller's own aggregate vouches that this id was never issued (it records
        each id it issues in this same transaction, e.g. a session's cost-update sequence),
        so the store need not be asked; one read per command was a third of their cost."""
        command_aggregate_id = OutboundCommand.create_id(command.tenant_id, command.event_id)
        if not new and self.get(OutboundCommand, command_aggregate_id) is not None:
            return  # the same cause issued it already: never twice, never under a new id
        self.add(
            OutboundCommand(
                tenant_id=command.tenant_id,
                command_id=command.event_id,
                topic=command.RECIPIENT,  # who it is for; the relay picks the topic
                key=key,
                type_name=command.type_name(),
                payload=command.model_dump(mode="json"),
                subject=subject,
            )
        )
        self.commands_issued += 1

    def stamp_business_time(self, at: datetime | None) -> None:
        """Stamp every event raised since the last stamp with `at`, the business time of
        the item just handled (ledger/domain/business_time.py; None: an undecodable item,
        whose dead letter keeps no business time). Handlers reach every aggregate through
        `get` or `add`, so the aggregates handed out since the last stamp hold all of the
        item's events; each event is visited once per batch."""
        for aggregate_id in self._since_stamp:
            pending = self._touched[aggregate_id].pending_events
            done = self._stamped.get(aggregate_id, 0)
            if at is not None:
                for pending_event in pending[done:]:
                    stamp_business_time(pending_event, at)
            self._stamped[aggregate_id] = len(pending)
        self._since_stamp.clear()

    def _remember(self, aggregate: Aggregate) -> None:
        self._since_stamp.add(aggregate.id)
        if aggregate.id not in self._touched:
            self._touched[aggregate.id] = aggregate
            self._order.append(aggregate.id)

    def aggregates(self) -> Iterator[Aggregate]:
        for aggregate_id in self._order:
            yield self._touched[aggregate_id]



__all__ = ["Batch", "BatchResult", "Inbound", "StoredAggregate"]
