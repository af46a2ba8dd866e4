"""One batch of inbound messages: the items, what became of them, and the aggregates it changes.

Handlers import this module (never the application), so the dependency points one way:
`ledger.application` -> `ledger.handlers` -> `ledger.batch` -> `ledger.domain`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger.domain.business_time import stamp_business_time
from ledger.domain.inbox import ProcessedBatch, ProcessedEntry, processed_key
from ledger.domain.outbox import OutboundCommand
from ledger.held_aggregates import Held, HeldAggregates
from ledger.messages import Envelope

A = TypeVar("A", bound=Aggregate)
# Reads one stored aggregate, or None when the store holds none under that id.
StoredAggregate = Callable[[UUID], Aggregate | None]
# The payload digest of each of some processed keys the store holds ("" for a marker written
# before digests were kept); keys never processed are left out. One query for them all.
ProcessedDigests = Callable[[Sequence[UUID]], dict[UUID, str]]


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
    # Parking (ledger/parking.py): parked on arrival; parked messages that left the lot
    # because what they needed arrived (unparked) or their bounded wait ran out (expired);
    # what became of those is counted in applied, refused, dead_lettered.
    parked: int = 0
    unparked: int = 0
    expired: int = 0
    # Each source's share of the message counts above, for a batch of several sources (the
    # consumer's metrics are per topic). Unparked and expired go to the source of the
    # message whose arrival released them; commands and events are the batch's alone.
    by_source: dict[str, BatchResult] = field(default_factory=dict)

    def of(self, source: str) -> BatchResult:
        """`source`'s share."""
        share = self.by_source.get(source)
        if share is None:
            share = self.by_source[source] = BatchResult()
        return share

    def count(self, source: str, name: str, n: int = 1) -> None:
        """`n` more of `name`, in the total and in `source`'s share."""
        for result in (self, self.of(source)):
            setattr(result, name, getattr(result, name) + n)

    def add(self, other: BatchResult) -> None:
        """Count `other` in too (a batch applied in parts, a file of batches)."""
        for counter in fields(BatchResult):
            if counter.name == "by_source":
                for source, share in other.by_source.items():
                    self.of(source).add(share)
            else:
                setattr(self, counter.name,
                        getattr(self, counter.name) + getattr(other, counter.name))


class StaleRead(Exception):
    """What the batch took from the process's memory was changed in the store meanwhile
    (another process wrote it): the batch is applied again from the store."""


class Batch:
    """The aggregates one batch reads and changes, collected into one transaction."""

    def __init__(
        self,
        stored: StoredAggregate,
        processed: ProcessedDigests,
        held: HeldAggregates | None = None,
        *,
        assume_new_commands: bool = False,
    ) -> None:
        self._stored = stored
        # Event ids applied before this batch: asked in one query for the batch's messages
        # (`look_up_processed`), one by one for any other (a parked message released).
        self._processed = processed
        self._processed_before: dict[UUID, str] = {}
        self._processed_asked: set[UUID] = set()
        # The event ids this batch applies or refuses, in order: its `ProcessedBatch`.
        self._processed_now: dict[UUID, ProcessedEntry] = {}
        # Ids this batch already asked the store about and found absent: a session's meter
        # updates ask for the same missing aggregates (held session credit, a pool not yet
        # opened) again and again; one read per batch is enough.
        self._found_absent: set[UUID] = set()
        # What this process held from earlier batches, and what of it this batch took (the
        # version it had, 0 for "absent"): checked against the store before the write.
        self._held = held
        self.held_versions: dict[UUID, int] = {}
        # An outbound command's id comes from its cause, which this batch is applying for
        # the first time: it is not read, and if the store holds it after all, the insert
        # conflicts and the batch is applied again with this off.
        self._assume_new_commands = assume_new_commands
        self._touched: dict[UUID, Aggregate] = {}
        self._order: list[UUID] = []
        self.commands_issued = 0
        # (tenant id, command id) of each command issued, in order: what a parked PSP
        # result may be waiting for (ledger/parking.py).
        self.issued_commands: list[tuple[str, str]] = []
        # Business-time stamping: aggregates handed out since the last stamp, and how many
        # of each aggregate's pending events are stamped already.
        self._since_stamp: set[UUID] = set()
        self._stamped: dict[UUID, int] = {}
        # Undo marks of the message being applied: see begin_message / undo_message.
        self._mark_order = 0
        self._mark_commands = 0
        self._mark_pending: dict[UUID, int] = {}
        self._mark_processed = 0

    def get(self, cls: type[A], aggregate_id: UUID) -> A | None:
        found: Held | None = self._touched.get(aggregate_id)
        if found is None:
            if aggregate_id in self._found_absent:
                return None
            held = self._take_held(aggregate_id)
            found = self._stored(aggregate_id) if held is None else held
            if not isinstance(found, Aggregate):  # None, or held as ABSENT
                self._found_absent.add(aggregate_id)  # an add() later is found first
                return None
            self._remember(found)
        assert isinstance(found, cls), f"{aggregate_id} is a {type(found).__name__}"
        self._since_stamp.add(aggregate_id)
        if aggregate_id not in self._mark_pending:
            self._mark_pending[aggregate_id] = len(found.pending_events)
        return found

    def _take_held(self, aggregate_id: UUID) -> Held | None:
        """What this process holds (ABSENT included), noting the version it had."""
        if self._held is None:
            return None
        held = self._held.take(aggregate_id)
        if held is not None:
            self.held_versions[aggregate_id] = (
                held.version if isinstance(held, Aggregate) else 0
            )
        return held

    def add(self, aggregate: Aggregate) -> None:
        """Track a newly created aggregate so its events are saved with the batch."""
        self._remember(aggregate)

    def issue(self, command: Envelope, key: str, subject: dict[str, str]) -> None:
        """Record an outbound command in this transaction (the outbox)."""
        command_aggregate_id = OutboundCommand.create_id(command.tenant_id, command.event_id)
        if self._assume_new_commands:
            issued_before = command_aggregate_id in self._touched
        else:
            issued_before = self.get(OutboundCommand, command_aggregate_id) is not None
        if issued_before:
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
        self.count_issued(command.tenant_id, command.event_id)

    def count_issued(self, tenant_id: str, command_id: str) -> None:
        """Count a command as issued by this message: by `issue`, or carried by an event of
        the aggregate that caused it (ledger/domain/outbox.py)."""
        self.commands_issued += 1
        self.issued_commands.append((tenant_id, command_id))

    # ------------------------------------------------------------------ event ids
    def look_up_processed(self, keys: Iterable[UUID]) -> None:
        """Ask the store, in one query, which of these processed keys it holds."""
        wanted = [k for k in dict.fromkeys(keys) if k not in self._processed_asked]
        if wanted:
            self._processed_before.update(self._processed(wanted))
            self._processed_asked.update(wanted)

    def processed_digest(self, tenant_id: str, event_id: str) -> str | None:
        """The payload digest under which this event id was applied (or refused), by this
        batch or before it; None if never."""
        key = processed_key(tenant_id, event_id)
        entry = self._processed_now.get(key)
        if entry is not None:
            return entry[2]
        self.look_up_processed([key])
        return self._processed_before.get(key)

    def mark_processed(self, tenant_id: str, event_id: str, payload_digest: str) -> None:
        """Record that this event id is applied (or refused): it never applies again."""
        self._processed_now[processed_key(tenant_id, event_id)] = [
            tenant_id, event_id, payload_digest]

    def processed_batch(self) -> ProcessedBatch | None:
        """The one event recording every event id this batch applied, if it applied any."""
        entries = list(self._processed_now.values())
        return ProcessedBatch(entries) if entries else None

    def stamp_business_time(self, at: datetime | None) -> None:
        """Stamp every event raised since the last stamp with `at`, the business time of
        the item just handled (ledger/domain/business_time.py; None: an undecodable item,
        whose dead letter keeps no business time). Handlers reach every aggregate through
        `get` or `add`, so the aggregates handed out since the last stamp hold all of the
        item's events; each event is visited once per batch."""
        for aggregate_id in self._since_stamp:
            aggregate = self._touched.get(aggregate_id)
            if aggregate is None:
                continue  # created by a message that was undone: nothing of it is written
            pending = aggregate.pending_events
            done = self._stamped.get(aggregate_id, 0)
            if at is not None:
                for pending_event in pending[done:]:
                    stamp_business_time(pending_event, at)
            self._stamped[aggregate_id] = len(pending)
        self._since_stamp.clear()

    # ------------------------------------------------------------------ one message
    def begin_message(self) -> None:
        """Mark where the next message starts, so `undo_message` can take it back."""
        self._mark_order = len(self._order)
        self._mark_commands = self.commands_issued
        self._mark_pending = {}
        self._mark_processed = len(self._processed_now)

    def undo_message(self) -> None:
        """Take back every change of the message since `begin_message` (it was refused or
        failed half-way): what it created or first read is dropped from the batch (read
        again if a later message needs it), and an aggregate that earlier messages had and
        this one changed is read from the store again and given back the events the earlier
        messages added to it. Rare, so a read per changed aggregate is fine."""
        created = self._order[self._mark_order:]
        del self._order[self._mark_order:]
        for aggregate_id in created:
            del self._touched[aggregate_id]
        for aggregate_id, pending_before in self._mark_pending.items():
            aggregate = self._touched.get(aggregate_id)
            if aggregate is None or len(aggregate.pending_events) == pending_before:
                continue
            self._touched[aggregate_id] = self._rebuilt(
                aggregate, aggregate.pending_events[:pending_before]
            )
        self.commands_issued = self._mark_commands
        del self.issued_commands[self._mark_commands:]
        for key in list(self._processed_now)[self._mark_processed:]:
            del self._processed_now[key]
        self.begin_message()

    def _rebuilt(self, changed: Aggregate, kept: list[Any]) -> Aggregate:
        aggregate: Aggregate | None = self._stored(changed.id)
        taken_at = changed.version - len(changed.pending_events)  # 0: created by the batch
        if (aggregate.version if aggregate else 0) != taken_at:
            raise StaleRead(f"{changed.id} changed in the store during the batch")
        for pending in kept:
            aggregate = pending.mutate(aggregate)
        assert aggregate is not None
        aggregate._pending_events = list(kept)  # eventsourcing keeps them in this list
        return aggregate

    # ------------------------------------------------------------------ after the write
    def _remember(self, aggregate: Aggregate) -> None:
        self._since_stamp.add(aggregate.id)
        if aggregate.id not in self._touched:
            self._touched[aggregate.id] = aggregate
            self._order.append(aggregate.id)

    def aggregates(self) -> Iterator[Aggregate]:
        for aggregate_id in self._order:
            yield self._touched[aggregate_id]

    def found_absent(self) -> set[UUID]:
        """Ids found absent that the batch did not create either: still absent once written."""
        return self._found_absent - self._touched.keys()


__all__ = [
    "Batch", "BatchResult", "Inbound", "ProcessedDigests", "StaleRead", "StoredAggregate",
]
