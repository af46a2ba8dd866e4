"""The Kafka consumer loop: inbound topics into the ledger, exactly once in effect.

The DATABASE owns the position. Each partition is a source named `kafka:{topic}:{partition}`
whose position is the offset of the last record applied; it is written in the same
transaction as the record's effects (`Ledger.apply_batch`). Kafka's committed offsets are
written afterwards as a hint for tools (lag dashboards) and are never read back.

Rebalances. kafka-python 3 runs rebalance listeners on its IO loop, the loop that also sends
heartbeats, so a listener must not wait on the database. `PartitionGate` (the listener)
only pauses each newly assigned partition and remembers it; the loop, on its own thread
and before it touches that partition, reads the stored position, seeks to the next offset
(or the beginning), and resumes it. Records of a partition that is still waiting for its
seek are dropped, never applied.

The commit protocol, per poll (the numbers appear in the code):
  0. seek every newly assigned partition to its stored position + 1, then resume it;
  1. poll at most POLL_RECORDS_MAX records (one transaction's worth);
  2. per partition, decode every record into an `Inbound`: a record that cannot be decoded
     becomes an `Inbound` with the reason and its bytes, so it is dead-lettered with its
     provenance instead of stopping the partition;
  3. add them to the event-time merge of the partitions (`EventTimeMerge`), which releases
     what can be applied now, smallest `occurred_at` first, each partition in its order;
  4. apply everything released, several partitions interleaved, with every partition's
     position, in ONE transaction (`Ledger.apply_batch`; offsets asserted to grow);
  5. only then commit the offsets to Kafka (advisory: a failed commit is logged and ignored).
A crash anywhere before 4 commits writes nothing; after it, the seek in step 0 and the
position check in `apply_batch` skip what was applied. Buffered records not applied yet are
only in memory: after a crash or a revoke they are read again from the stored position.

Losing the database (a restart, a stopped server, terminated backends) is ridden through
without a restart: every assigned partition is queued for step 0 again (the records fetched
past its stored position are read again), and the loop waits for a probe connection to
open (consumers/reconnect.py: bounded backoff, one JSON line per attempt).

The merge (docs/reliability.md, "Event-time merge"). A partition with nothing buffered
blocks the merge while the client reports lag on it (`position(tp) < highwater(tp)`: the
data is on the broker, the next fetch brings it). kafka-python sets `highwater` from every
fetch response it parses for the partition, one without records too (`Fetcher.
_parse_fetched_data`), and `position` moves only as records are handed to `poll`; so
position == highwater means every record the broker had at the last answer was returned.
`highwater` is None on a new assignment until the first answer: that counts as lag. An
empty partition holds the others back for MERGE_FETCH_WAIT_MS at most (logged). A
partition's buffer holds MERGE_BUFFER_RECORDS_MAX records at most: what a poll returns past
that is read again later (the partition is sought back to it), so memory stays bounded.
"""

from __future__ import annotations

import base64
import itertools
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.avro_codec import decode, type_from_headers
from consumers.event_time_merge import EventTimeMerge, Fetch
from consumers.kafka_limits import (
    CONSUMER_COMMIT_TIMEOUT_MS,
    KAFKA_UNAVAILABLE_DELAY_MS_MAX,
    KAFKA_UNAVAILABLE_DELAY_MS_MIN,
    KAFKA_UNAVAILABLE_POLLS_MAX,
    MERGE_BUFFER_RECORDS_MAX,
    MERGE_FETCH_WAIT_MS,
    MERGE_WAIT_LOGGED_AFTER_MS,
    POLL_RECORDS_MAX,
    POLL_TIMEOUT_MS,
)
from consumers.kafka_topics import MERGE_TOPIC_RANK, merge_rank, topic_of
from consumers.observability import Metrics, get_logger, log_event
from consumers.reconnect import DATABASE_UNAVAILABLE, backoff_ms, wait_for_database
from consumers.settings import Settings
from consumers.signals import interruptible
from ledger.application import BatchResult, Inbound, Ledger
from ledger.domain.errors import InvalidMessage
from projections.database import ledger_conninfo

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"(read_text|open_text) is deprecated", category=DeprecationWarning
    )
    from kafka import ConsumerRebalanceListener, OffsetAndMetadata, TopicPartition
    from kafka.errors import IllegalStateError, KafkaError

SOURCE_PREFIX = "kafka:"
# Dead letters keep the record's bytes; base64 because the payload may be any bytes at all.
RAW_BASE64_PREFIX = "base64:"


def source_name(topic: str, partition: int) -> str:
    """The ledger source of one partition (topic names never contain ':')."""
    assert ":" not in topic, "Kafka topic names are [A-Za-z0-9._-]"
    return f"{SOURCE_PREFIX}{topic}:{partition}"


def parse_source(source: str) -> tuple[str, int] | None:
    """(topic, partition) of a Kafka source name, or None for any other source."""
    if not source.startswith(SOURCE_PREFIX):
        return None
    topic, _, partition = source[len(SOURCE_PREFIX):].rpartition(":")
    if not topic or not partition.isdigit():
        return None
    return topic, int(partition)


def raw_from_bytes(value: bytes) -> str:
    return RAW_BASE64_PREFIX + base64.b64encode(value).decode("ascii")


def bytes_from_raw(raw: str) -> bytes:
    """The bytes `raw_from_bytes` kept; any other raw text (an event file line) as UTF-8."""
    if raw.startswith(RAW_BASE64_PREFIX):
        return base64.b64decode(raw[len(RAW_BASE64_PREFIX):], validate=True)
    return raw.encode("utf-8")


def inbound_from_record(record: Any, settings: Settings) -> Inbound:
    """One consumer record as an `Inbound`: decoded, or carrying the reason it is not."""
    value: bytes = record.value if record.value is not None else b""
    key = None if record.key is None else record.key.decode("utf-8", errors="replace")
    source = source_name(record.topic, record.partition)
    raw = raw_from_bytes(value)

    def refused(reason: str, type_name: str | None) -> Inbound:
        return Inbound(source, record.offset, None, key=key, raw=raw, error=reason,
                       type_name=type_name)

    try:
        type_name = type_from_headers(record.headers)
    except InvalidMessage as exc:
        return refused(str(exc), None)
    if record.value is None:
        return refused("empty record (tombstone): no message", type_name)
    try:
        message = decode(type_name, value)
    except InvalidMessage as exc:
        return refused(str(exc), type_name)
    expected_topic = settings.topic(topic_of(message))
    if record.topic != expected_topic:
        return refused(f"{type_name} belongs on {expected_topic}, not {record.topic}", type_name)
    tenant_refusal = tenant_mismatch(message.tenant_id, key, settings)
    if tenant_refusal is not None:
        return refused(tenant_refusal, type_name)
    return Inbound(source, record.offset, message, key=key, raw=raw, type_name=type_name)


def tenant_mismatch(tenant_id: str, key: str | None, settings: Settings) -> str | None:
    """Why a record may not speak for `tenant_id`, or None.

    The transport vouches for a tenant twice: the record key starts with it (every producer
    keys `tenant:...`, `key_for`), and, where a deployment gives each tenant its own topic
    prefix with ACLs, the consumer of that prefix accepts only the tenants it is told
    (`--tenants`). A payload claiming another tenant is a misrouted or hostile record."""
    if key is None or not key.startswith(f"{tenant_id}:"):
        return (f"tenant {tenant_id!r} in the payload does not match the record key {key!r}"
                " (keys are TENANT:...)")
    if settings.tenants is not None and tenant_id not in settings.tenants:
        return (f"tenant {tenant_id!r} is not served by these topics (accepted:"
                f" {', '.join(sorted(settings.tenants))})")
    return None


class PartitionGate(ConsumerRebalanceListener):  # type: ignore[misc]
    """Rebalance listener. Runs on kafka-python's IO loop: in-memory work only, no I/O.

    A newly assigned partition is paused (so no record is fetched from wherever Kafka's
    committed offset points) and queued for the consumer loop to seek from the database.
    Each assignment gets a new ticket, so the loop's `done` for an earlier assignment never
    clears a later one (the IO thread may revoke and re-assign while the loop is seeking).
    """

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self._lock = threading.Lock()
        self._to_seek: dict[Any, int] = {}
        self._tickets = itertools.count(1)

    def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        partitions = set(assigned)
        if partitions:
            self._consumer.pause(*partitions)
        with self._lock:
            for partition in partitions:
                self._to_seek[partition] = next(self._tickets)

    def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        with self._lock:
            for partition in revoked:
                self._to_seek.pop(partition, None)

    def on_partitions_lost(self, lost: Iterable[Any]) -> None:
        self.on_partitions_revoked(lost)

    def waiting(self) -> dict[Any, int]:
        """Partitions waiting for their seek, with their assignment's ticket."""
        with self._lock:
            return dict(self._to_seek)

    def done(self, partition: Any, ticket: int) -> None:
        with self._lock:
            if self._to_seek.get(partition) == ticket:
                del self._to_seek[partition]

    def seek_again(self, partitions: Iterable[Any]) -> None:
        """Pause and queue `partitions` for a seek from the database, as if just assigned
        (called by the loop, on its own thread)."""
        for partition in partitions:
            try:
                self._consumer.pause(partition)
            except KeyError:
                continue  # revoked since the caller listed it: its next owner seeks it
            with self._lock:
                self._to_seek[partition] = next(self._tickets)


@dataclass(slots=True)
class PollOutcome:
    records: int = 0
    dropped_waiting_for_seek: int = 0
    batches: list[tuple[str, BatchResult]] = field(default_factory=list)
    buffered: int = 0  # records held by the merge after this poll
    deferred: int = 0  # records past a full buffer, left to be read again


def merge_tie_break(settings: Settings) -> Callable[[Any], tuple[int, str, int]]:
    """Equal event times: by topic rank (`MERGE_TOPIC_RANK`), then topic and partition."""
    def rank(partition: Any) -> tuple[int, str, int]:
        name = settings.unprefixed(partition.topic)
        topic_rank = merge_rank(name) if name in MERGE_TOPIC_RANK else len(MERGE_TOPIC_RANK)
        return topic_rank, partition.topic, partition.partition

    return rank


class ConsumerLoop:
    """Polls the inbound topics, merges the partitions in event time and applies each run of
    one partition's records in one transaction."""

    def __init__(
        self, ledger: Ledger, consumer: Any, settings: Settings, metrics: Metrics,
        logger: logging.Logger | None = None,
    ) -> None:
        self._ledger = ledger
        self._consumer = consumer
        self._settings = settings
        self._metrics = metrics
        self._log = logger or get_logger("consume")
        self._gate = PartitionGate(consumer)
        # Per partition: the offset of the last record applied or found applied (for the
        # increasing-offset check and for lag), as of this process.
        self._last_offset: dict[Any, int] = {}
        self._subscribed = False
        self._merge: EventTimeMerge[Any, Inbound] = EventTimeMerge(
            merge_tie_break(settings), idle_ms=settings.merge_idle_ms,
            fetch_wait_ms=MERGE_FETCH_WAIT_MS)
        # The partition the merge waits for, since when, and whether that was logged.
        self._waiting: tuple[Any, float, bool] = (None, 0.0, False)

    def subscribe(self) -> None:
        topics = self._settings.inbound_topics()
        self._consumer.subscribe(topics=topics, listener=self._gate)
        self._subscribed = True
        log_event(self._log, "subscribed", topics=topics, group_id=self._settings.group_id)

    def run(self, stop: threading.Event, until: Callable[[], bool] | None = None) -> None:
        """Poll and apply until `stop` is set (SIGTERM) or `until()` is true; the batch in
        progress always finishes first."""
        if not self._subscribed:
            self.subscribe()
        conninfo = ledger_conninfo(self._ledger)
        failed_polls = 0
        while not stop.is_set():
            try:
                self.poll_once()
            except DATABASE_UNAVAILABLE as exc:
                # The batch's transaction did not commit, or its COMMIT's answer was lost:
                # the records this consumer fetched past the stored positions are read
                # again from there (a batch found applied is skipped by its position).
                self._gate.seek_again(self._consumer.assignment())
                with interruptible(stop):
                    wait_for_database(conninfo, exc, stop, self._log)
                continue
            except KafkaError as exc:
                # A poll that failed returned no record: polling again loses nothing (and
                # the database holds the position anyway).
                failed_polls += 1
                if not exc.retriable or failed_polls > KAFKA_UNAVAILABLE_POLLS_MAX:
                    raise
                delay_ms = backoff_ms(failed_polls, KAFKA_UNAVAILABLE_DELAY_MS_MIN,
                                      KAFKA_UNAVAILABLE_DELAY_MS_MAX)
                log_event(self._log, "kafka_unavailable", logging.WARNING,
                          attempt=failed_polls, retry_in_ms=delay_ms, error=repr(exc))
                stop.wait(delay_ms / 1000)
                continue
            if failed_polls:
                log_event(self._log, "kafka_reconnected", attempts=failed_polls)
                failed_polls = 0
            if until is not None and until():
                return

    def poll_once(self, timeout_ms: int = POLL_TIMEOUT_MS) -> PollOutcome:
        outcome = PollOutcome()
        # 0. Newly assigned partitions start from the database's position, not Kafka's.
        self._seek_waiting_partitions()
        # 1. At most one transaction's worth of records.
        polled: Mapping[Any, Sequence[Any]] = self._consumer.poll(
            timeout_ms=timeout_ms, max_records=POLL_RECORDS_MAX
        )
        waiting = self._gate.waiting()
        self._follow_assignment()
        for partition in sorted(polled, key=lambda tp: (tp.topic, tp.partition)):
            records = polled[partition]
            outcome.records += len(records)
            if partition in waiting or partition not in self._merge.partitions():
                # Assigned during this poll: fetched from Kafka's idea of the position.
                outcome.dropped_waiting_for_seek += len(records)
                continue
            room = max(0, MERGE_BUFFER_RECORDS_MAX - self._merge.buffered(partition))
            if len(records) > room:
                # What does not fit is read again later: the partition is sought back to it
                # (the client drops what it had fetched past that offset). Not paused:
                # kafka-python 3.0.12 keeps a paused partition's parsed records aside and,
                # once the fetcher's current slot is an emptied batch instead of None, never
                # hands them back, nor fetches that partition again (measured: the merge then
                # waited 30 s for each such partition, a day took minutes).
                self._consumer.seek(partition, records[room].offset)
                outcome.deferred += len(records) - room
                records = records[:room]
            # 2. Decode; 3. into the merge, each with its event time (none: undecodable).
            items = [inbound_from_record(record, self._settings) for record in records]
            self._merge.add(partition, [
                (None if i.message is None else i.message.occurred_at, i) for i in items])
        states = self._fetch_states(waiting)
        released = self._merge.release(states)
        self._log_waiting(states)
        applied_up_to: dict[Any, int] = {}
        # 4. Everything released, with every partition's position, in one transaction (the
        # merge interleaves partitions: a transaction per run of one partition was ~3,700
        # transactions for a day of 5,500 records).
        if released:
            result, applied_up_to = self._apply_released(released)
            outcome.batches.extend(result.by_source.items())
        outcome.buffered = sum(self._merge.buffered(p) for p in self._merge.partitions())
        # 5. Only now tell Kafka (advisory).
        self._commit_advisory(applied_up_to)
        self._update_lag()
        return outcome

    # ------------------------------------------------------------------ steps
    def _seek_waiting_partitions(self) -> None:
        for partition, ticket in self._gate.waiting().items():
            source = source_name(partition.topic, partition.partition)
            stored = self._ledger.position(source)  # database I/O: on our thread, not Kafka's
            try:
                if stored is None:
                    self._consumer.seek_to_beginning(partition)
                else:
                    self._consumer.seek(partition, stored + 1)
                self._consumer.resume(partition)
            except ValueError:
                # Revoked again since it was assigned: nothing to seek.
                log_event(self._log, "seek_skipped_revoked", source=source)
            else:
                # Whatever was buffered came from before this assignment: read it again.
                self._merge.assign(partition)
                if stored is None:
                    self._last_offset.pop(partition, None)
                else:
                    self._last_offset[partition] = stored
                log_event(self._log, "partition_assigned", source=source,
                          stored_position=stored,
                          next_offset=0 if stored is None else stored + 1)
            self._gate.done(partition, ticket)

    def _follow_assignment(self) -> None:
        """The merge holds exactly the assigned partitions: a revoked one's buffer is dropped
        (the next owner reads it again from the stored position); a new one blocks the merge
        until it is sought and fetched (`_seek_waiting_partitions` starts it afresh)."""
        assigned = set(self._consumer.assignment())
        for partition in self._merge.partitions() - assigned:
            self._merge.revoke(partition)
        for partition in assigned - self._merge.partitions():
            self._merge.assign(partition)

    def _fetch_states(self, waiting: Mapping[Any, int]) -> dict[Any, Fetch]:
        states: dict[Any, Fetch] = {}
        for partition in self._merge.partitions():
            if partition in waiting:
                states[partition] = Fetch.LAGGING  # sought at the next poll, then fetched
                continue
            try:
                highwater = self._consumer.highwater(partition)
                position = self._consumer.position(partition, timeout_ms=0)
            except IllegalStateError:
                continue  # revoked on the IO thread meanwhile: unknown, dropped next poll
            if highwater is None or position is None:
                continue  # no fetch answered since the seek: unknown (bounded)
            states[partition] = Fetch.CAUGHT_UP if position >= highwater else Fetch.LAGGING
        return states

    def _log_waiting(self, states: Mapping[Any, Fetch]) -> None:
        """Say which partition the merge waits for, once a wait on it passes
        MERGE_WAIT_LOGGED_AFTER_MS (a wait of milliseconds is every poll's)."""
        partition = self._merge.waiting_for
        now = time.monotonic()
        if partition is None or partition != self._waiting[0]:
            self._waiting = (partition, now, False)
            return
        _p, since, logged = self._waiting
        if logged or (now - since) * 1000 < MERGE_WAIT_LOGGED_AFTER_MS:
            return
        self._waiting = (partition, since, True)
        log_event(self._log, "merge_waiting", logging.WARNING,
                  source=source_name(partition.topic, partition.partition),
                  fetch=states.get(partition, Fetch.UNKNOWN).value,
                  waited_s=round(now - since, 1), gives_up_after_s=MERGE_FETCH_WAIT_MS / 1000,
                  buffered=sum(self._merge.buffered(p) for p in self._merge.partitions()))

    def _apply_released(
        self, released: Sequence[tuple[Any, Inbound]]
    ) -> tuple[BatchResult, dict[Any, int]]:
        """Apply what the merge released in one transaction; returns the result and each
        partition's last offset applied."""
        started = time.perf_counter()
        spans: dict[Any, tuple[int, int, int]] = {}  # partition: first, last offset, records
        for partition, item in released:
            previous = spans[partition][1] if partition in spans else self._last_offset.get(
                partition)
            assert previous is None or item.position > previous, (
                f"{partition}: offset {item.position} after {previous}: positions must grow"
            )
            first, _last, records = spans.get(partition, (item.position, item.position, 0))
            spans[partition] = (first, item.position, records + 1)
        result = self._ledger.apply_batch([item for _partition, item in released])
        last = {partition: span[1] for partition, span in spans.items()}
        self._last_offset.update(last)
        seconds = time.perf_counter() - started
        for source, share in result.by_source.items():
            parsed = parse_source(source)
            self._count(parsed[0] if parsed else source, share)
        self._metrics.batch_seconds.observe(seconds)
        log_event(
            self._log, "batch_applied",
            sources={source_name(p.topic, p.partition): {
                "first_offset": first, "last_offset": last_offset, "records": records}
                for p, (first, last_offset, records) in spans.items()},
            records=len(released), applied=result.applied, duplicates=result.duplicates,
            dead_lettered=result.dead_lettered, handler_failures=result.handler_failures,
            conflicts=result.conflicts, refused=result.refused, parked=result.parked,
            unparked=result.unparked, expired=result.expired,
            skipped=result.skipped_before_position, commands_issued=result.commands_issued,
            new_events=result.new_events, seconds=round(seconds, 4),
        )
        return result, last

    def _count(self, topic: str, result: BatchResult) -> None:
        m = self._metrics
        m.applied.labels(topic).inc(result.applied)
        m.dead_lettered.labels(topic).inc(result.dead_lettered)
        m.duplicates.labels(topic).inc(result.duplicates)
        m.handler_failed.labels(topic).inc(result.handler_failures)
        m.conflicting.labels(topic).inc(result.conflicts)
        m.refused.labels(topic).inc(result.refused)
        m.skipped.labels(topic).inc(result.skipped_before_position)
        m.parked.labels(topic).inc(result.parked)
        m.unparked.labels(topic).inc(result.unparked)
        m.expired.labels(topic).inc(result.expired)

    def _commit_advisory(self, applied_up_to: Mapping[Any, int]) -> None:
        if not applied_up_to:
            return
        offsets = {
            tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in applied_up_to.items()
        }
        try:
            self._consumer.commit(offsets=offsets, timeout_ms=CONSUMER_COMMIT_TIMEOUT_MS)
        except KafkaError as exc:
            # Harmless: the database already holds the position; the next commit catches up.
            log_event(self._log, "offset_commit_failed", logging.WARNING, error=repr(exc))

    def _update_lag(self) -> None:
        for partition in self._consumer.assignment():
            highwater = self._consumer.highwater(partition)
            if highwater is None:
                continue
            last = self._last_offset.get(partition)
            next_offset = 0 if last is None else last + 1
            self._metrics.lag.labels(partition.topic, str(partition.partition)).set(
                max(0, highwater - next_offset)
            )


__all__ = [
    "ConsumerLoop",
    "PartitionGate",
    "PollOutcome",
    "TopicPartition",
    "bytes_from_raw",
    "inbound_from_record",
    "merge_tie_break",
    "parse_source",
    "raw_from_bytes",
    "source_name",
    "tenant_mismatch",
]
