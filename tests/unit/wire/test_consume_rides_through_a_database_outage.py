"""`ledger consume` rides through a lost database (consumers/consumer_loop.py): a batch that
fails on a lost or refused connection stored nothing (or its COMMIT's answer was lost), so
every assigned partition is sought again from its stored position, the records fetched past
it are read again, and each failed attempt is logged; no record is lost or applied twice.

The server's side is tests/integration/test_postgres_stopped.py and
tests/faults/test_postgres_restart.py; here a ledger that fails on cue shows the rule.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from kafka import TopicPartition

from consumers import reconnect
from consumers.avro_codec import encode, headers_for, key_for
from consumers.consumer_loop import ConsumerLoop, source_name
from consumers.kafka_topics import topic_of
from consumers.observability import Metrics
from consumers.settings import settings_from
from ledger.application import BatchResult, Inbound, Ledger
from tests.builders import driver, location, tariff, tenant


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class OnePartitionConsumer:
    """A partition's records, fetched from a position that moves on at each poll."""

    def __init__(self, partition: TopicPartition, records: list[Record]) -> None:
        self.partition = partition
        self.records = records
        self.fetch = 0
        self.paused = False
        self.seeks: list[int] = []
        self.listener: Any = None

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener
        listener.on_partitions_assigned([self.partition])

    def pause(self, *partitions: Any) -> None:
        self.paused = True

    def resume(self, *partitions: Any) -> None:
        self.paused = False

    def seek(self, partition: Any, offset: int) -> None:
        self.seeks.append(offset)
        self.fetch = offset

    def seek_to_beginning(self, *partitions: Any) -> None:
        self.seek(self.partition, 0)

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Record]]:
        if self.paused:
            return {}
        batch = self.records[self.fetch:self.fetch + max_records]
        self.fetch += len(batch)
        return {self.partition: batch} if batch else {}

    def assignment(self) -> set[Any]:
        return {self.partition}

    def commit(self, offsets: Any, timeout_ms: int) -> None:
        pass

    def highwater(self, partition: Any) -> int:
        return len(self.records)

    def position(self, partition: Any, timeout_ms: int = 0) -> int:
        return self.fetch  # the event-time merge compares it with the highwater


class LedgerLosingItsDatabase(Ledger):
    """Fails its first `failures` batches as a lost connection does, storing nothing."""

    failures = 2

    def apply_batch(self, items: Sequence[Inbound]) -> BatchResult:
        if self.failures:
            self.failures -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return super().apply_batch(items)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconnect, "backoff_ms", lambda attempt: 0)


def test_a_batch_lost_with_the_database_is_read_again_from_the_stored_position(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_from(argparse.Namespace(bootstrap_servers="127.0.0.1:1"), environ={})
    messages = [tenant("t1"), tariff(), location(), driver("t1-d1", "wallet")]
    topic = settings.topic(topic_of(messages[0]))
    partition = TopicPartition(topic, 0)
    consumer = OnePartitionConsumer(partition, [
        Record(topic, 0, offset, key_for(m), encode(m), headers_for(m))
        for offset, m in enumerate(messages)])
    ledger = LedgerLosingItsDatabase(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    caplog.set_level(logging.INFO)
    loop = ConsumerLoop(ledger, consumer, settings, Metrics(), logging.getLogger("test.consume"))

    source = source_name(topic, 0)
    loop.run(threading.Event(), until=lambda: ledger.position(source) == len(messages) - 1)

    # Sought from the beginning at the assignment and after each of the two failures.
    assert consumer.seeks == [0, 0, 0]
    events = [r.getMessage() for r in caplog.records]
    assert sum("database_unavailable" in e for e in events) == 2
    assert sum("database_reconnected" in e for e in events) == 2
    result = ledger.apply_batch([Inbound(source, len(messages) - 1, messages[-1])])
    assert result.skipped_before_position == 1, "the last record was applied once already"
