"""Answering the ledger's payment commands on Kafka: the loop every PSP adapter shares.

`ledger psp-simulator` and `ledger psp-stripe` differ only in how they answer one command
(an `Answerer`); reading `psp.commands`, sending the answers and committing are done here.
The commit protocol, per poll (the numbers appear in the code):
  1. poll at most `records_max` records;
  2. answer each record in order (a record that is not a PaymentCommand is logged and
     skipped: a real PSP answers garbage with an HTTP 400, not with a payment); when asked
     to stop, finish the current record and answer no further one;
  3. send every answer (results to `psp.results`, dead letters to `ledger.dead-letters`) with
     the idempotent producer (acks=all) and flush: all acknowledged;
  4. only then commit the offsets of the records answered (auto-commit is off); records
     polled but not answered are sought back, so nothing is skipped.
A crash before 4 re-reads the records after restart and answers them again; every answer
to one command carries the same event id (consumers/psp_results.py), which the ledger
deduplicates, and a PSP call carries the command id as its idempotency key.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from consumers.avro_codec import (
    DeadLetter,
    dead_letter_for,
    decode,
    encode,
    encode_dead_letter,
    headers_for,
    key_for,
    type_from_headers,
)
from consumers.kafka_limits import POLL_RECORDS_MAX, POLL_TIMEOUT_MS, PRODUCER_DELIVERY_TIMEOUT_MS
from consumers.kafka_topics import DEAD_LETTER_TOPIC, topic_of
from consumers.observability import PspMetrics, log_event
from consumers.settings import Settings
from ledger.domain.errors import InvalidMessage
from ledger.messages import PaymentCommand, PaymentResult

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"(read_text|open_text) is deprecated", category=DeprecationWarning
    )
    from kafka import TopicPartition
    from kafka.errors import CommitFailedError
    from kafka.structs import OffsetAndMetadata

# Waiting for every answer of one poll to be acknowledged: the producer's own delivery
# timeout, plus a margin for the flush call itself.
FLUSH_TIMEOUT_S = (PRODUCER_DELIVERY_TIMEOUT_MS + 10_000) / 1_000

assert FLUSH_TIMEOUT_S * 1_000 > PRODUCER_DELIVERY_TIMEOUT_MS


@dataclasses.dataclass(frozen=True, slots=True)
class CommandRecord:
    """Where a command came from, for a dead letter that must quote it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes


Answer = PaymentResult | DeadLetter
# One command in, its answers out (none when the answer comes later, e.g. by webhook).
Answerer = Callable[[PaymentCommand, CommandRecord], Sequence[Answer]]


def dead_letter(record: CommandRecord, reason: str, producer: str) -> DeadLetter:
    """A command no result can answer (e.g. a capture Stripe refused), kept with its reason."""
    return dead_letter_for(
        source_topic=record.topic, source_partition=record.partition,
        source_offset=record.offset, key=record.key, reason=reason, payload=record.value,
        received_at=datetime.now(UTC), producer=producer,
    )


class Publisher:
    """Sends answers where they belong, keyed like every other message of the ledger."""

    def __init__(self, producer: Any, settings: Settings) -> None:
        self._producer = producer
        self.results_topic = settings.topic(topic_of(PaymentResult))
        self.dead_letters_topic = settings.topic(DEAD_LETTER_TOPIC)

    def send(self, answer: Answer) -> None:
        if isinstance(answer, DeadLetter):
            key = answer.key.encode() if answer.key is not None else None
            self._producer.send(self.dead_letters_topic, key=key,
                                value=encode_dead_letter(answer), headers=headers_for(answer))
            return
        self._producer.send(self.results_topic, key=key_for(answer), value=encode(answer),
                            headers=headers_for(answer))

    def flush(self) -> None:
        self._producer.flush(timeout=FLUSH_TIMEOUT_S)


class PaymentCommandLoop:
    def __init__(
        self, answerer: Answerer, consumer: Any, publisher: Publisher, settings: Settings,
        log: logging.Logger, *, records_max: int = POLL_RECORDS_MAX,
        metrics: PspMetrics | None = None,
    ) -> None:
        assert 0 < records_max <= POLL_RECORDS_MAX
        self._answerer = answerer
        self._consumer = consumer
        self._publisher = publisher
        self._log = log
        self._records_max = records_max
        self._metrics = metrics
        self.commands_topic = settings.topic(topic_of(PaymentCommand))
        self.answered = 0

    def subscribe(self) -> None:
        self._consumer.subscribe(topics=[self.commands_topic])

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once(stop)

    def run_once(self, stop: threading.Event | None = None) -> int:
        """One poll: answer, send, flush, then commit. Returns the answers sent."""
        # 1. poll
        polled = self._consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=self._records_max)
        records = [record for batch in polled.values() for record in batch]
        if not records:
            return 0
        # 2. answer, one record at a time; a stop request waits for the current one only
        answers: list[Answer] = []
        done: dict[TopicPartition, int] = {}
        unanswered: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if stop is not None and stop.is_set():
                unanswered.setdefault(tp, record.offset)
                continue
            answers.extend(self._answer(record))
            done[tp] = record.offset + 1
        # 3. send and flush: every answer acknowledged by all in-sync replicas
        for answer in answers:
            self._publisher.send(answer)
        self._publisher.flush()
        # 4. only then commit what was answered; a commit lost to a rebalance only means the
        # next owner answers those commands again, identically
        if done:
            try:
                self._consumer.commit({tp: OffsetAndMetadata(offset, "", -1)
                                       for tp, offset in done.items()})
            except CommitFailedError as exc:
                log_event(self._log, "commit_failed", level=logging.WARNING, reason=str(exc))
        for tp, offset in unanswered.items():
            self._consumer.seek(tp, offset)
        self.answered += len(answers)
        log_event(self._log, "answered", records=len(records) - len(unanswered),
                  results=len(answers))
        return len(answers)

    def _answer(self, record: Any) -> Sequence[Answer]:
        try:
            type_name = type_from_headers(record.headers)
            message = decode(type_name, record.value)
        except InvalidMessage as exc:
            return self._skip(record, str(exc))
        if not isinstance(message, PaymentCommand):
            return self._skip(record, f"{type_name} is not a payment command")
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        source = CommandRecord(topic=record.topic, partition=record.partition,
                               offset=record.offset, key=key, value=record.value)
        answers = self._answerer(message, source)
        if self._metrics is not None:
            for answer in answers:
                if isinstance(answer, DeadLetter):
                    self._metrics.dead_lettered.labels(action=message.action).inc()
                else:
                    self._metrics.answers.labels(outcome=answer.outcome).inc()
        return answers

    def _skip(self, record: Any, reason: str) -> Sequence[Answer]:
        log_event(self._log, "skipped", level=logging.WARNING, partition=record.partition,
                  offset=record.offset, reason=reason)
        if self._metrics is not None:
            self._metrics.skipped.inc()
        return ()
