"""The outbox relay: publishes what the ledger recorded for the outside world, in order.

The ledger records each outbound command (`OutboundCommand.Issued`, or a running cost update
carried by its meter reading's event: ledger/domain/outbox.py) and each dead letter
(`DeadLetter.Recorded`) in the same transaction as the change that caused it. The relay reads
those notifications from the ledger's log after its own stored position and publishes them:
commands to their topic (Avro, `type` header, keyed by the command's key so one payment's
authorize, capture and release share a partition and stay in order), dead letters to
`ledger.dead-letters` as `DeadLetter` records, keyed by the source message's key.

The relay's position is a tracking row of its own (`relay_tracking` on PostgreSQL, the
shared `tracking` table on SQLite), never the ledger's.

The commit protocol, per page (the numbers appear in the code):
  1. read at most RELAY_BATCH_COMMANDS_MAX notifications after the stored position (a
     reading that carries no command is passed over);
  2. send them all with the idempotent producer, in notification order, and flush: every
     record acknowledged by all in-sync replicas, or the page fails and nothing is stored;
  3. only then store the page's last notification id as the position (asserted to grow;
     also for a page of readings that carried nothing, so they are not read again).
A crash between 2 and 3 re-sends the page after restart under the SAME ids (the command id
is the message's `event_id`; a dead letter's id derives from its source position and bytes):
at least once, with stable ids that the PSP, the CSMS and dead-letter readers deduplicate.
Nothing is ever skipped and no new id is ever minted.

Waking: when idle, the relay waits for PostgreSQL's NOTIFY of newly committed events (the
projector's mechanism, projections/new_events.py) and polls every RELAY_IDLE_POLL_MS anyway;
on SQLite it polls. Losing the database (restart, too many connections) is ridden through:
the page is retried from the stored position once a probe connection opens again
(consumers/reconnect.py: bounded backoff, one JSON line per attempt). A stop request ends a
read, a wait or step 3 at once (nothing half done: an unstored page is re-sent under the
same ids), and lets step 2 finish.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, Tracking, TrackingRecorder
from eventsourcing.utils import Environment, get_topic

from consumers.avro_codec import dead_letter_for, encode, encode_dead_letter, headers_for
from consumers.consumer_loop import bytes_from_raw, parse_source
from consumers.kafka_limits import (
    RELAY_BATCH_COMMANDS_MAX,
    RELAY_FLUSH_TIMEOUT_MS,
    RELAY_IDLE_POLL_MS,
)
from consumers.kafka_topics import DEAD_LETTER_TOPIC, topic_of
from consumers.observability import Metrics, get_logger, log_event
from consumers.reconnect import (
    DATABASE_UNAVAILABLE,
    wait_for_database,
    without_library_retries,
)
from consumers.settings import Settings
from consumers.signals import interruptible
from consumers.store import STORE_CONNECT_TIMEOUT_S, ledger_env
from ledger.application import Ledger
from ledger.domain.inbox import DeadLetter
from ledger.domain.outbox import COMMAND_EVENT_TOPICS, RecordedCommand, command_recorded_by
from ledger.messages import MESSAGE_TYPES
from projections.database import ledger_conninfo
from projections.new_events import new_events_signal

# The relay's tracking row: "the relay's position in the ledger's notification log".
RELAY_TRACKING_NAME = "relay:ledger"
# Table prefix of the relay's tracking recorder (PostgreSQL: relay_tracking).
RELAY_RECORDER_NAME = "relay"
# `producer` of every dead letter: the process that decided the message is dead.
DEAD_LETTER_PRODUCER = "evledger-ledger"

_RECORDED: type[Any] = vars(DeadLetter)["Recorded"]
DEAD_LETTER_RECORDED_TOPIC = get_topic(_RECORDED)
RELAYED_TOPICS = (*COMMAND_EVENT_TOPICS, DEAD_LETTER_RECORDED_TOPIC)


def _interruptible_by(stop: threading.Event | None) -> AbstractContextManager[None]:
    return nullcontext() if stop is None else interruptible(stop)


class RelayError(Exception):
    """A page could not be published; its position was not stored, so it will be re-sent."""


@dataclass(frozen=True, slots=True)
class Page:
    """What one read of the log found: the records to publish, and the position after it."""

    last_notification_id: int
    records: list[Outgoing]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to publish, built from one ledger notification."""

    notification_id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    message_id: str  # the command id, or the dead letter's id: stable across re-sends


def open_relay_tracking(
    store_url: str, connect_timeout_s: int = STORE_CONNECT_TIMEOUT_S
) -> tuple[InfrastructureFactory[Any], TrackingRecorder]:
    """The relay's own tracking recorder in the ledger's database (caller closes the factory)."""
    factory: InfrastructureFactory[Any] = InfrastructureFactory.construct(
        Environment(
            name=RELAY_RECORDER_NAME,
            env=ledger_env(store_url, connect_timeout_s=connect_timeout_s),
        )
    )
    recorder = factory.tracking_recorder()
    return factory, recorder


class Relay:
    def __init__(
        self, ledger: Ledger, tracking: TrackingRecorder, producer: Any, settings: Settings,
        metrics: Metrics, logger: logging.Logger | None = None,
    ) -> None:
        self._ledger = ledger
        self._tracking = tracking
        self._producer = producer
        self._settings = settings
        self._metrics = metrics
        self._log = logger or get_logger("relay")
        self._select_notifications = without_library_retries(
            ledger.recorder.select_notifications
        )
        self._max_tracking_id = without_library_retries(tracking.max_tracking_id)
        self._insert_tracking = without_library_retries(tracking.insert_tracking)

    def position(self) -> int:
        """The last ledger notification id published (0: none yet)."""
        return self._max_tracking_id(RELAY_TRACKING_NAME) or 0

    def run(self, stop: threading.Event) -> None:
        """Publish pages until `stop` is set (or StopRequested: see consumers/signals.py)."""
        conninfo = ledger_conninfo(self._ledger)
        with new_events_signal(self._ledger, stop) as wait_for_new_events:
            while not stop.is_set():
                try:
                    page = self.publish_next_page(stop)
                except DATABASE_UNAVAILABLE as exc:
                    with interruptible(stop):
                        wait_for_database(conninfo, exc, stop, self._log)
                    continue
                if page is None:
                    with interruptible(stop):
                        wait_for_new_events(RELAY_IDLE_POLL_MS / 1_000)

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Publish one page; the number of records published."""
        page = self.publish_next_page(stop)
        return 0 if page is None else len(page.records)

    def publish_next_page(self, stop: threading.Event | None = None) -> Page | None:
        """Publish one page (None: the log held nothing more). With `stop`, a stop signal
        ends steps 1 and 3 at once (StopRequested), never step 2."""
        started = time.perf_counter()
        with _interruptible_by(stop):
            position = self.position()
            # 1. The next page of the outbox, after our own position.
            page = self.read_page(position)
        if page is None:
            return None
        # 2. Send in order and flush: all acknowledged, or RelayError and nothing stored.
        if page.records:
            self.publish(page.records)
        # 3. Only then move our position.
        with _interruptible_by(stop):
            self.store_position(position, page.last_notification_id)
        if page.records:  # a page of bare readings is not news
            log_event(
                self._log, "page_published", from_position=position,
                to_position=page.last_notification_id, records=len(page.records),
                seconds=round(time.perf_counter() - started, 4),
            )
        return page

    def read_page(self, position: int) -> Page | None:
        """The next page after `position`; None when the log holds nothing more to read."""
        notifications = self._select_notifications(
            start=position, limit=RELAY_BATCH_COMMANDS_MAX, topics=RELAYED_TOPICS,
            inclusive_of_start=False,
        )
        if not notifications:
            return None
        records = [o for o in map(self._outgoing, notifications) if o is not None]
        return Page(notifications[-1].id, records)

    def publish(self, page: Sequence[Outgoing]) -> None:
        futures = [
            self._producer.send(o.topic, value=o.value, key=o.key, headers=o.headers)
            for o in page
        ]
        self._producer.flush(timeout=RELAY_FLUSH_TIMEOUT_MS / 1_000)
        failed = [
            (o, f.exception) for o, f in zip(page, futures, strict=True) if not f.succeeded()
        ]
        if failed:
            first, error = failed[0]
            raise RelayError(
                f"{len(failed)} of {len(page)} records not acknowledged, first "
                f"{first.message_id} (notification {first.notification_id}) to {first.topic}: "
                f"{error!r}; position stays, the page will be re-sent"
            )
        for o in page:
            self._metrics.relay_published.labels(o.topic).inc()

    def store_position(self, previous: int, new_position: int) -> None:
        assert new_position > previous, f"relay position must grow: {previous} -> {new_position}"
        # Raises IntegrityError if another relay stored this position or a later one first.
        self._insert_tracking(Tracking(RELAY_TRACKING_NAME, new_position))
        self._metrics.relay_position.set(new_position)

    # ------------------------------------------------------------------ records
    def _outgoing(self, notification: Any) -> Outgoing | None:
        """The record a notification asks to publish; None for a reading without a command."""
        event: Any = self._ledger.mapper.to_domain_event(notification)
        if isinstance(event, _RECORDED):
            return self._dead_letter(notification.id, event)
        command = command_recorded_by(event)
        return None if command is None else self._command(notification.id, command)

    def _command(self, notification_id: int, command: RecordedCommand) -> Outgoing:
        model = MESSAGE_TYPES[command.type_name]
        message = model.model_validate(command.payload)
        assert message.event_id == command.command_id, "a command is published under its id"
        return Outgoing(
            notification_id=notification_id,
            # By its type: the outbox names who a command is for (older entries named the
            # topic), the Kafka side knows which topic carries it.
            topic=self._settings.topic(topic_of(model)),
            key=command.key.encode("utf-8"),
            value=encode(message),
            headers=headers_for(message),
            message_id=command.command_id,
        )

    def _dead_letter(self, notification_id: int, event: Any) -> Outgoing:
        kafka_source = parse_source(event.source)
        position: str = event.position
        if kafka_source is None:
            source_topic, partition = event.source, None
            offset = int(position) if position.isdigit() else None
        else:
            (source_topic, partition), offset = kafka_source, int(position)
        dead_letter = dead_letter_for(
            source_topic=source_topic,
            source_partition=partition,
            source_offset=offset,
            key=event.key,
            reason=event.reason,
            payload=bytes_from_raw(event.payload),
            # When the ledger recorded it: stored, so a re-send carries the same value.
            received_at=event.timestamp,
            producer=DEAD_LETTER_PRODUCER,
        )
        return Outgoing(
            notification_id=notification_id,
            topic=self._settings.topic(DEAD_LETTER_TOPIC),
            key=None if event.key is None else event.key.encode("utf-8"),
            value=encode_dead_letter(dead_letter),
            headers=headers_for(dead_letter),
            message_id=dead_letter.event_id,
        )
