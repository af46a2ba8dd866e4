"""The ledger application: applies inbound messages in batches, exactly once.

One code path, two transports: the Kafka consumer and `ledger ingest` both hand batches of
`Inbound` items to `Ledger.apply_batch` with the position the batch ends at. The commit
protocol, per batch:
  1. skip items at or before the stored position of their source (a resumed run);
  2. apply each message through its handler; a message whose event id was applied before
     is skipped (the batch asks for its event ids in one query: `ProcessedDigests`); a
     message the rules or the schema refuse is undone in place and recorded with its
     reason, and changes nothing else; every event a message caused is stamped
     with the message's business time (ledger/domain/business_time.py);
  3. write every new aggregate event, the outbound commands they caused, one
     `ProcessedBatch` event with the event ids applied, and the source's new position in ONE
     transaction (eventsourcing's process recorder; the store indexes the event ids in it);
  4. only then may the transport acknowledge (Kafka offsets are advisory: the database owns
     the position).
Between batches the process keeps the aggregates it wrote (ledger/held_aggregates.py); what
a batch took from them is checked against the store in one query before step 3, and a
batch that meets another writer (a stale aggregate, or a version conflict at the insert) is
applied again from the store.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, PersistenceError, Tracking
from eventsourcing.projection import EventSourcedProjection

from ledger.batch import Batch, BatchResult, Inbound, ProcessedDigests, StaleRead
from ledger.domain.configuration import EffectiveDated
from ledger.domain.driver_account import DriverAccount
from ledger.domain.errors import (
    HandlerFailed,
    InvalidInput,
    LedgerError,
    PrerequisiteMissing,
    RuleViolation,
)
from ledger.domain.inbox import (
    CONFLICT_REASON_PREFIX,
    PROCESSED_TOPICS,
    DeadLetter,
    ProcessedBatch,
    ProcessedEntry,
    Refusal,
    processed_key,
)
from ledger.domain.invoice import InvoiceSeries
from ledger.domain.outbox import (
    COMMAND_EVENT_TOPICS,
    OutboundCommand,
    RecordedCommand,
    command_recorded_by,
)
from ledger.domain.parking import ParkingLot
from ledger.domain.schedule import Schedule
from ledger.domain.text import printable, storable
from ledger.domain.wallet import Wallet
from ledger.handlers import HANDLERS
from ledger.handlers.prerequisites import deciding_now
from ledger.held_aggregates import HeldAggregates
from ledger.limits import (
    BATCH_CONFLICT_RETRIES_MAX,
    DEAD_LETTER_FIELD_CHARS_MAX,
    HELD_AGGREGATES_MAX,
    PARKED_WAIT_MINUTES,
)
from ledger.messages import Envelope
from ledger.parking import IssuedCommands, Parking, Release

log = logging.getLogger(__name__)

Handler = Callable[[Any, Batch], None]
# The stored version of each of some aggregate ids (absent ids left out), in one query.
StoredVersions = Callable[[Sequence[UUID]], dict[UUID, int]]
# Markers written once and read again only for a duplicate: not worth a place in memory.
WRITTEN_ONCE = (OutboundCommand, DeadLetter, Refusal)
# A batch of several sources records each one's position in its one transaction: the first
# (the last item's source) as eventsourcing's `tracking`, the others under this keyword,
# which a recorder that sets RECORDS_SEVERAL_SOURCES inserts too. Another recorder gets a
# transaction per run of one source instead.
OTHER_TRACKINGS = "other_trackings"
RECORDS_SEVERAL_SOURCES = "records_several_sources"
# Notifications read per query when the ledger scans its own log.
LOG_SCAN_PAGE = 1_000


class Ledger(EventSourcedProjection[UUID]):
    """All billing aggregates of every tenant, and the use cases that change them."""

    name = "ledger"
    # Long-lived aggregates are snapshotted so a cold start never replays years of events.
    # The parking lot seldom: its snapshot holds every parked message (a full lot's is
    # megabytes, taken by reading and writing it whole), while replaying its events is cheap
    # (each parks or releases through its indexes).
    snapshotting_intervals = {
        Schedule: 200, InvoiceSeries: 200, Wallet: 200, EffectiveDated: 100, DriverAccount: 100,
        ParkingLot: 1000,
    }

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self._handlers: dict[type[Envelope], Handler] = dict(HANDLERS)
        # Sessions, wallets, configuration and absent ids between batches: a batch reads
        # from the store only what this process does not hold (ledger/held_aggregates.py).
        self._held = HeldAggregates(HELD_AGGREGATES_MAX)
        self._stored_versions: StoredVersions = self.stored_versions_one_by_one
        # Which event ids were applied: the store's index in one query per batch
        # (`use_processed_index`), else an index this process keeps by reading the store's
        # processed events once (the in-memory store of the tests and the simulator).
        self._processed_index: ProcessedDigests | None = None
        self._processed_in_memory: dict[UUID, str] | None = None
        # Batches applied again because another writer got there first (`ledger bench`).
        self.batches_retried = 0

    def use_stored_versions(self, probe: StoredVersions) -> None:
        """Answer "which version of these aggregates does the store hold?" in one query per
        batch (the store's adapter knows how); without it, one read per id."""
        self._stored_versions = probe

    def use_processed_index(self, lookup: ProcessedDigests) -> None:
        """Answer "which of these event ids were applied, with which payload digest?" from
        the store's index, kept in each batch's transaction (consumers/processed_index.py)."""
        self._processed_index = lookup

    def processed_digests(self, keys: Sequence[UUID]) -> dict[UUID, str]:
        if self._processed_index is not None:
            return self._processed_index(keys)
        known = self._processed_kept_in_memory()
        return {k: known[k] for k in keys if k in known}

    def _processed_kept_in_memory(self) -> dict[UUID, str]:
        if self._processed_in_memory is None:
            known: dict[UUID, str] = {}
            for _, event in self._stored_events(PROCESSED_TOPICS):
                _remember(known, _processed_entries(event))
            self._processed_in_memory = known
        return self._processed_in_memory

    def stored_versions_one_by_one(self, ids: Sequence[UUID]) -> dict[UUID, int]:
        versions: dict[UUID, int] = {}
        for aggregate_id in ids:
            last = self.recorder.select_events(aggregate_id, desc=True, limit=1)
            if last:
                versions[aggregate_id] = last[0].originator_version
        return versions

    def recorded_commands(
        self, after: int = 0, up_to: int | None = None
    ) -> Iterator[tuple[int, RecordedCommand]]:
        """Every outbound command the log records after notification `after` (up to `up_to`),
        with its notification id, in log order (ledger/domain/outbox.py)."""
        for notification_id, event in self._stored_events(COMMAND_EVENT_TOPICS, after, up_to):
            command = command_recorded_by(event)
            if command is not None:
                yield notification_id, command

    def _stored_events(
        self, topics: Iterable[str], after: int = 0, up_to: int | None = None
    ) -> Iterator[tuple[int, Any]]:
        """The stored events of `topics` after notification `after` (up to `up_to`), with
        their notification ids, in log order, a page at a time."""
        start, wanted = after + 1, list(topics)
        while up_to is None or start <= up_to:
            page = self.recorder.select_notifications(
                start=start, limit=LOG_SCAN_PAGE, stop=up_to, topics=wanted)
            for notification in page:
                yield notification.id, self.mapper.to_domain_event(notification)
            if len(page) < LOG_SCAN_PAGE:
                return
            start = page[-1].id + 1

    # ------------------------------------------------------------------ ingestion
    def position(self, source: str) -> int | None:
        """The last position of `source` already applied, or None."""
        return self.recorder.max_tracking_id(source)

    def apply_batch(self, items: Sequence[Inbound]) -> BatchResult:
        """Apply items in the order given, each source's in position order, with every
        source's new position, in one transaction (the consumer's event-time merge hands
        over several partitions' records interleaved); while another writer keeps changing
        what they read first, in smaller transactions (halved at each conflict down to one
        message), each with its own positions."""
        if not items:
            return BatchResult()
        last: dict[str, int] = {}
        for item in items:
            assert item.source not in last or last[item.source] < item.position, (
                f"positions grow within a batch: {item.source} {item.position}"
            )
            last[item.source] = item.position
        if len(last) > 1 and not getattr(self.recorder, RECORDS_SEVERAL_SOURCES, False):
            # A store that records one position per transaction: a transaction per run.
            total = BatchResult()
            for _source, run in itertools.groupby(items, key=lambda item: item.source):
                total.add(self.apply_batch(list(run)))
            return total
        total = BatchResult()
        pending = list(items)
        size = len(pending)
        conflicts = 0  # in a row
        lost_alone = 0  # in a row, by a part of one message
        while pending:
            part = pending[:size]
            stored = {source: self.position(source) for source in _last_positions(part)}
            fresh = [i for i in part
                     if (at := stored[i.source]) is None or i.position > at]
            try:
                # The first attempt trusts what this process holds and assumes new commands
                # are new; a retry reads everything from the store, as the first attempt
                # would have had it nothing in memory.
                result = (self._apply_once(fresh, optimistic=conflicts == 0) if fresh
                          else BatchResult())
            except (IntegrityError, StaleRead):
                # Either another run recorded this position first (then this part is done),
                # or another writer changed an aggregate we read: re-read and apply again.
                if not all(self.recorder.has_tracking_id(source, position)
                           for source, position in _last_positions(part).items()):
                    self.batches_retried += 1
                    conflicts += 1
                    lost_alone = lost_alone + 1 if len(part) == 1 else 0
                    if lost_alone >= BATCH_CONFLICT_RETRIES_MAX:
                        raise RuntimeError(
                            f"batch of {part[0].source} at {part[0].position} kept"
                            " conflicting with other writers") from None
                    # A writer that keeps committing first (a hot partner pool, a tenant's
                    # receipt series) wins every race of equal batches: a smaller
                    # transaction of ours gets in between its commits.
                    size = max(1, len(part) // 2)
                    continue
                fresh = []
                result = BatchResult()
            conflicts = lost_alone = 0
            applying = {id(i) for i in fresh}
            for item in part:
                if id(item) not in applying:
                    result.count(item.source, "skipped_before_position")
            total.add(result)
            del pending[:len(part)]
        return total

    def release_parked(self) -> BatchResult:
        """Apply every parked message without waiting any longer, in one transaction: for the
        end of an event file, after which nothing it waits for can come."""
        for _attempt in range(BATCH_CONFLICT_RETRIES_MAX):
            try:
                return self._apply_once([], optimistic=False)
            except (IntegrityError, StaleRead):
                self.batches_retried += 1
        raise RuntimeError("releasing the parked messages kept conflicting with other writers")

    def _apply_once(self, items: Sequence[Inbound], *, optimistic: bool) -> BatchResult:
        """Apply each message in turn; one the rules refuse, or whose handler fails, is undone
        in place (`Batch.undo_message`) and recorded with its reason, so a refused message
        never leaves a trace beyond its reason and its neighbours are applied once."""
        result = BatchResult()
        batch = Batch(
            self._stored, self.processed_digests,
            self._held if optimistic else None, assume_new_commands=optimistic,
        )
        batch.look_up_processed(
            processed_key(i.message.tenant_id, i.message.event_id)
            for i in items if i.message is not None
        )
        parking = Parking(batch)

        def apply_released(release: Release) -> tuple[str, IssuedCommands]:
            return self._apply_counted(release.inbound, batch, parking, result, release)

        for item in items:
            outcome, issued = self._apply_counted(item, batch, parking, result, None)
            if item.message is not None:
                # What it brings (applied, or refused) may release parked messages, and its
                # event time may end waits, whatever became of it.
                released, expired = parking.settle(
                    item.message, issued, apply_released,
                    applied=outcome in ("applied", "refused"), arrived=True)
                result.count(item.source, "unparked", released)
                result.count(item.source, "expired", expired)
        if not items:
            result.expired += parking.expire_all(apply_released)
        self._check_held(batch)
        trackings = [Tracking(source, position)
                     for source, position in _last_positions(items).items()]
        processing_event: ProcessingEvent[UUID] = ProcessingEvent(
            trackings.pop() if trackings else None)
        processed = batch.processed_batch()
        # What ProcessingEvent.collect_events does, without its two runtime-protocol
        # isinstance checks per aggregate (11-25 us each; every command issued is one).
        for aggregate in batch.aggregates():
            processing_event.events.extend(aggregate.collect_events())
            processing_event.aggregates[aggregate.id] = aggregate
        if processed is not None:
            processing_event.collect_events(processed)  # one event, after the aggregates'
        # The other sources' positions go in the same transaction (the recorder's
        # RECORDS_SEVERAL_SOURCES: consumers/chained_store.py).
        if trackings:
            processing_event.saved_kwargs[OTHER_TRACKINGS] = trackings
        result.new_events = len(processing_event.events)
        result.commands_issued = batch.commands_issued
        self._record(processing_event)
        if processed is not None and self._processed_in_memory is not None:
            _remember(self._processed_in_memory, processed.entries)
        self._take_snapshots(processing_event)
        self._held.hold(
            a for a in batch.aggregates() if not isinstance(a, WRITTEN_ONCE)
        )
        self._held.hold_absent(batch.found_absent())
        return result

    def _apply_counted(
        self, item: Inbound, batch: Batch, parking: Parking, result: BatchResult,
        release: Release | None,
    ) -> tuple[str, IssuedCommands]:
        """Apply one message (an item, or a parked one released) and count its outcome;
        returns the outcome and the commands it issued."""
        batch.begin_message()
        issued_before = batch.commands_issued
        refusal: LedgerError | None = None
        try:
            outcome = self._apply_item(item, batch, None, parking, release)
        except PersistenceError:
            raise  # the store, not the message: the batch is retried
        except _Refused as refused:
            refusal = refused.error
        except Exception as exc:
            # A bug or an unforeseen value: this one message is dead-lettered with the
            # error, without its effects, and the partition moves on.
            log.exception("applying %s:%s failed", item.source, item.position)
            refusal = HandlerFailed(f"handler failed: {type(exc).__name__}: {exc}")
        if refusal is not None:
            batch.undo_message()
            outcome = self._apply_item(item, batch, refusal, parking, release)
        # Every event this item caused carries the business time of its message.
        batch.stamp_business_time(
            item.message.business_time() if item.message is not None else None
        )
        if outcome == "conflicts":
            result.count(item.source, "conflicts")
            outcome = "dead_lettered"
        if isinstance(refusal, HandlerFailed):
            result.count(item.source, "handler_failures")
        if outcome != "parked" or release is None:  # parked again: counted when it came
            result.count(item.source, outcome)
        return outcome, batch.issued_commands[issued_before:]

    def _check_held(self, batch: Batch) -> None:
        """What the batch took from memory must still be what the store holds."""
        if not batch.held_versions:
            return
        ids = list(batch.held_versions)
        stored = self._stored_versions(ids)
        stale = [i for i in ids if stored.get(i, 0) != batch.held_versions[i]]
        if stale:
            self._held.forget(stale)
            raise StaleRead(f"{len(stale)} aggregate(s) changed in the store by another writer")

    def _stored(self, aggregate_id: UUID) -> Aggregate | None:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _apply_item(
        self, item: Inbound, batch: Batch, refusal: LedgerError | None, parking: Parking,
        release: Release | None,
    ) -> str:
        message = item.message
        if message is None:
            self._dead_letter(item, item.error or "undecodable", batch)
            return "dead_lettered"
        if isinstance(refusal, HandlerFailed):  # failed and undone: not again
            self._dead_letter(item, str(refusal), batch)
            return "dead_lettered"
        processed = batch.processed_digest(message.tenant_id, message.event_id)
        digest = message.payload_digest()
        if processed is not None:
            if processed in ("", digest):
                return "duplicates"
            self._dead_letter(item, (
                f"{CONFLICT_REASON_PREFIX}event id {message.event_id} was applied with"
                f" payload sha256 {processed}; this copy has sha256 {digest}"
            ), batch)
            return "conflicts"  # dead-lettered, and counted as a conflict
        if release is None and parking.holds(message):
            return "duplicates"  # a copy of a message that is parked
        handler = self._handlers.get(type(message))
        if handler is None:
            refusal = InvalidInput(f"no handler for {message.type_name()}")
        if refusal is None and parking.lane_waiting(item):
            parking.park(item, None)  # behind its key's earlier messages: order is kept
            return "parked"
        waited = release.expired_waiting_for if release is not None else None
        if refusal is None:
            try:
                assert handler is not None
                if waited is None:
                    handler(message, batch)
                else:
                    with deciding_now():
                        handler(message, batch)
            except LedgerError as exc:
                raise _Refused(item.position, exc) from exc
            outcome = "applied"
        elif isinstance(refusal, PrerequisiteMissing):
            parking.park(item, refusal)
            return "parked"
        elif isinstance(refusal, RuleViolation):
            batch.add(
                Refusal(
                    tenant_id=message.tenant_id, event_id=message.event_id,
                    type_name=message.type_name(), subject=item.key or "",
                    reason=_after_waiting(str(refusal), waited), at=message.occurred_at,
                )
            )
            outcome = "refused"
        else:
            self._dead_letter(item, _after_waiting(str(refusal), waited), batch)
            # Not marked processed: once its cause is fixed (say, configuration that arrived
            # late), `ledger dead-letters redrive` can still apply it, exactly once.
            return "dead_lettered"
        batch.mark_processed(message.tenant_id, message.event_id, digest)
        return outcome

    def _dead_letter(self, item: Inbound, reason: str, batch: Batch) -> None:
        message = item.message
        dead_letter_id = DeadLetter.create_id(item.source, str(item.position))
        if batch.get(DeadLetter, dead_letter_id) is not None:
            return
        received_at: datetime | None = message.occurred_at if message is not None else None
        type_name = item.type_name or (message.type_name() if message else None)
        # What came from outside without a model around it is kept storable and bounded:
        # a NUL in a Kafka key must not stop the read models.
        batch.add(
            DeadLetter(
                source=item.source, position=str(item.position),
                tenant_id=_bounded_text(message.tenant_id if message else None),
                event_id=_bounded_text(message.event_id if message else None),
                type_name=_bounded_text(type_name), key=_bounded_text(item.key),
                reason=printable(reason, DEAD_LETTER_FIELD_CHARS_MAX),
                payload=storable(item.raw), received_at=received_at,
            )
        )


def _processed_entries(event: Any) -> list[ProcessedEntry]:
    """The event ids a stored processed event records: a `ProcessedBatch`'s entries, or
    the one of a `ProcessedMessage` marker (no digest if written before digests were kept)."""
    if isinstance(event, vars(ProcessedBatch)["Processed"]):
        entries: list[ProcessedEntry] = event.entries
        return entries
    return [[event.tenant_id, event.event_id, getattr(event, "payload_digest", "")]]


def _remember(known: dict[UUID, str], entries: list[ProcessedEntry]) -> None:
    for tenant_id, event_id, digest in entries:
        known[processed_key(tenant_id, event_id)] = digest


def _after_waiting(reason: str, waited: str | None) -> str:
    if waited is None:
        return reason
    return f"{reason} (parked {PARKED_WAIT_MINUTES} min of event time waiting for {waited})"


def _bounded_text(text: str | None) -> str | None:
    return None if text is None else printable(text, DEAD_LETTER_FIELD_CHARS_MAX)


class _Refused(Exception):
    """Internal: the handler refused the message at `position`; it is undone and recorded."""

    def __init__(self, position: int, error: LedgerError) -> None:
        super().__init__(str(error))
        self.position = position
        self.error = error


def _last_positions(items: Sequence[Inbound]) -> dict[str, int]:
    """Each source's last position among `items`."""
    return {item.source: item.position for item in items}


__all__ = ["OTHER_TRACKINGS", "RECORDS_SEVERAL_SOURCES", "Batch", "BatchResult", "Inbound",
           "Ledger"]
