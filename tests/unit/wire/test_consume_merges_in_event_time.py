"""`ledger consume`'s loop around the event-time merge (consumers/consumer_loop.py): what a
poll brings waits while a partition with lag has nothing buffered, a partition whose buffer
is full leaves the rest to be read again, and a revoked partition's buffer is dropped.

The broker's side is tests/faults/test_shuffled_topics.py (a real broker, a shuffled day);
here a scripted consumer shows the loop's rules exactly (which fetch state, which pause).
"""

from __future__ import annotations

import argparse
import logging
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from consumers.avro_codec import encode, headers_for, key_for
from consumers.consumer_loop import ConsumerLoop
from consumers.kafka_limits import MERGE_BUFFER_RECORDS_MAX
from consumers.observability import Metrics
from consumers.settings import settings_from
from ledger.application import Ledger
from tests.wire_samples import sample

T0 = datetime(2026, 3, 10, tzinfo=UTC)
SETTINGS = settings_from(argparse.Namespace(bootstrap_servers="127.0.0.1:1"), environ={})
CLOCK = TopicPartition(SETTINGS.topic("clock"), 0)
WALLETS = TopicPartition(SETTINGS.topic("wallets"), 0)


def record(partition: TopicPartition, offset: int, type_name: str, at: datetime) -> Any:
    message = sample(type_name, event_id=f"{partition.topic}-{offset}", occurred_at=at)
    value = encode(message)
    return ConsumerRecord(partition.topic, partition.partition, -1, offset, 0, 0,
                          key_for(message), value, headers_for(message), None,
                          len(key_for(message)), len(value), -1)


class ScriptedConsumer:
    """A partition holds its records on the 'broker'; poll hands out at most max_records of
    unpaused partitions; highwater is the end of what the broker holds, once fetched."""

    def __init__(self, broker: dict[TopicPartition, list[Any]]) -> None:
        self.broker = broker
        self.fetched: dict[TopicPartition, deque[Any]] = {}
        self.positions: dict[TopicPartition, int] = {}
        self.highwaters: dict[TopicPartition, int | None] = {}
        self.paused: set[TopicPartition] = set()
        self.pauses: list[TopicPartition] = []
        self.late: set[TopicPartition] = set()  # fetched, but its records not handed out yet
        self.listener: Any = None

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    def assign(self, *partitions: TopicPartition) -> None:
        self.listener.on_partitions_assigned(set(partitions))

    def revoke(self, *partitions: TopicPartition) -> None:
        self.listener.on_partitions_revoked(set(partitions))
        for partition in partitions:
            self.positions.pop(partition, None)
            self.highwaters.pop(partition, None)

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions) | set(self.listener.waiting())

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)
        self.pauses.extend(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)

    def seek_to_beginning(self, partition: TopicPartition) -> None:
        self.seek(partition, 0)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.positions[partition] = offset
        self.highwaters[partition] = None

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        out: dict[TopicPartition, list[Any]] = {}
        for partition in sorted(self.positions):
            if partition in self.paused:
                continue
            self.highwaters[partition] = len(self.broker.get(partition, []))
            if partition in self.late:
                continue
            position = self.positions[partition]
            records = self.broker.get(partition, [])[position:position + max_records]
            if records:
                out[partition] = records
                self.positions[partition] = records[-1].offset + 1
                max_records -= len(records)
        return out

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.highwaters.get(partition)

    def position(self, partition: TopicPartition, timeout_ms: int = 0) -> int:
        return self.positions[partition]

    def commit(self, offsets: Any, timeout_ms: int) -> None:
        pass


def loop_over(consumer: ScriptedConsumer) -> ConsumerLoop:
    loop = ConsumerLoop(Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}), consumer,
                        SETTINGS, Metrics(), logging.getLogger("test.consume"))
    loop.subscribe()
    return loop


def applied(outcome: Any) -> list[str]:
    return [source for source, _result in outcome.batches]


def handled(outcome: Any) -> int:
    return sum(r.applied + r.dead_lettered + r.parked + r.refused for _s, r in outcome.batches)


def test_a_full_buffer_leaves_the_rest_to_be_read_again_while_a_lagging_partition_blocks(
) -> None:
    ticks = [record(CLOCK, n, "ClockTicked", T0 + timedelta(minutes=n + 1))
             for n in range(MERGE_BUFFER_RECORDS_MAX + 20)]
    top_up = record(WALLETS, 0, "WalletTopUpRequested", T0)
    consumer = ScriptedConsumer({CLOCK: ticks, WALLETS: [top_up]})
    consumer.late.add(WALLETS)
    loop = loop_over(consumer)
    consumer.assign(CLOCK, WALLETS)
    outcome = loop.poll_once()
    assert outcome.batches == [], "nothing applied while the wallets lag with nothing buffered"
    assert outcome.buffered == MERGE_BUFFER_RECORDS_MAX
    outcome = loop.poll_once()
    assert outcome.batches == [], "still waiting for the wallets' fetch"
    # Not paused (kafka-python 3.0.12 may never hand a paused partition's records back):
    # what does not fit is sought back to, and read again once there is room.
    assert outcome.deferred == 20 and consumer.positions[CLOCK] == MERGE_BUFFER_RECORDS_MAX
    assert consumer.pauses.count(CLOCK) == 1, "the gate's pause only"
    consumer.late.discard(WALLETS)
    outcome = loop.poll_once()
    sources = applied(outcome)
    assert sources == [f"kafka:{WALLETS.topic}:0", f"kafka:{CLOCK.topic}:0"], (
        "the earlier top-up first, then the clock's buffer, in one transaction")
    assert handled(outcome) == 1 + MERGE_BUFFER_RECORDS_MAX
    outcome = loop.poll_once()
    assert handled(outcome) == 20, "the rest, read again"


def test_a_revoked_partition_loses_its_buffer_and_blocks_nothing() -> None:
    wallets = [record(WALLETS, 0, "WalletTopUpRequested", T0 + timedelta(minutes=5))]
    tick = record(CLOCK, 0, "ClockTicked", T0)
    consumer = ScriptedConsumer({CLOCK: [tick], WALLETS: wallets})
    consumer.late.add(CLOCK)  # lags, its record not handed out yet
    loop = loop_over(consumer)
    consumer.assign(CLOCK, WALLETS)
    outcome = loop.poll_once()
    assert outcome.batches == [] and outcome.buffered == 1
    consumer.revoke(WALLETS)
    assert loop.poll_once().buffered == 0
    consumer.revoke(CLOCK)
    consumer.assign(WALLETS)
    outcome = loop.poll_once()  # sought again from the store: read again, and applied
    assert applied(outcome) == [f"kafka:{WALLETS.topic}:0"]
