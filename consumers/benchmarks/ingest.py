"""`ledger bench ingest`: how close does the ledger consumer come to merely reading Kafka?

In one run, against the real broker and store given, over the same N messages:
1. raw: a kafka-python consumer outside any group reads the N records of the topic, bytes
   only, no decoding (the ceiling: what the client library alone costs);
2. ledger: the `ledger consume` loop (`ConsumerLoop`) reads the same records and decodes,
   applies and records each partition's batch with its position in one transaction, until
   the database positions reach the topic's end offsets.
The workload is wallet bank top-ups (each one credits a wallet, books a journal entry and
issues a receipt) for drivers configured beforehand (configuration is applied first and not
timed). The figure of merit is ledger_msgs_per_s / raw_msgs_per_s.

The functions below are also the Kafka helpers of the integration and end-to-end tests:
publishing wire messages, end offsets, stored positions, waiting until caught up.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from consumers import kafka_clients
from consumers.avro_codec import encode, headers_for, key_for
from consumers.cli import CliError
from consumers.commands.topics import create_topics
from consumers.consumer_loop import ConsumerLoop, TopicPartition, source_name
from consumers.kafka_limits import (
    POLL_RECORDS_MAX,
    RELAY_FLUSH_TIMEOUT_MS,
    TOPIC_PARTITIONS_DEFAULT,
)
from consumers.kafka_topics import topic_of
from consumers.observability import Metrics
from consumers.settings import Settings, add_arguments, settings_from
from consumers.store import open_ledger
from ledger.application import Ledger
from ledger.messages import DriverConfigured, Envelope, TenantConfigured, WalletTopUpRequested

MESSAGES_DEFAULT = 5_000
MESSAGES_MAX = 1_000_000  # keeps a typo from running for hours
# Top-ups spread over this many drivers per tenant, and tenants: enough keys for every
# partition, few enough that the aggregate cache holds all wallets (as in production).
DRIVERS_PER_TENANT = 10
TENANTS_MAX = 20
# A phase that does not finish in this long is stuck (broker or database down), not slow.
PHASE_DEADLINE_S = 600
# Raw reads poll with this timeout; the broker answers in milliseconds when data is there.
RAW_POLL_TIMEOUT_MS = 200
BENCH_EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class IngestBench:
    messages: int
    partitions: int
    raw_seconds: float
    ledger_seconds: float
    raw_msgs_per_s: float
    ledger_msgs_per_s: float
    ledger_to_raw_ratio: float
    applied: int
    dead_lettered: int


# ---------------------------------------------------------------- workload
def _envelope(tenant_id: str, event_id: str, at: datetime) -> dict[str, Any]:
    return {"event_id": event_id, "tenant_id": tenant_id, "occurred_at": at,
            "producer": "bench"}


def configuration(tenant_id: str, drivers: int) -> list[Envelope]:
    """A tenant and its wallet drivers, effective a month before the bench epoch."""
    at = BENCH_EPOCH - timedelta(days=30)
    messages: list[Envelope] = [TenantConfigured(
        **_envelope(tenant_id, f"{tenant_id}-tenant", at), effective_at=at, currency="EUR",
        preauth_hold_amount=Decimal("25.00"),
    )]
    messages.extend(
        DriverConfigured(
            **_envelope(tenant_id, f"{tenant_id}-driver-{n}", at), effective_at=at,
            driver_id=f"d{n}", id_tokens=[f"rfid-{tenant_id}-{n}"], billing_model="wallet",
            payment_method_token=f"tok-{n}",
        )
        for n in range(drivers)
    )
    return messages


def bank_top_ups(tenant_ids: Sequence[str], drivers: int, count: int) -> list[Envelope]:
    """`count` bank-transfer top-ups, round-robin over tenants and their drivers."""
    top_ups: list[Envelope] = []
    for n in range(count):
        tenant_id = tenant_ids[n % len(tenant_ids)]
        driver = (n // len(tenant_ids)) % drivers
        top_ups.append(WalletTopUpRequested(
            **_envelope(tenant_id, f"{tenant_id}-top-up-{n}", BENCH_EPOCH + timedelta(seconds=n)),
            driver_id=f"d{driver}", amount=Decimal("10.00"), method="bank_transfer",
            reference=f"bank-{n}",
        ))
    return top_ups


# ---------------------------------------------------------------- Kafka helpers
def publish(producer: Any, settings: Settings, messages: Iterable[Envelope]) -> int:
    """Send wire messages to their topics (Avro, `type` header, natural key); flush; check."""
    futures = [
        producer.send(settings.topic(topic_of(m)), value=encode(m), key=key_for(m),
                      headers=headers_for(m))
        for m in messages
    ]
    return _flushed(producer, futures)


def publish_raw(
    producer: Any, topic: str, value: bytes | None, key: bytes | None,
    headers: list[tuple[str, bytes]],
) -> None:
    """Send one record as given (for malformed-message tests)."""
    _flushed(producer, [producer.send(topic, value=value, key=key, headers=headers)])


def _flushed(producer: Any, futures: Sequence[Any]) -> int:
    producer.flush(timeout=RELAY_FLUSH_TIMEOUT_MS / 1_000)
    failed = [f.exception for f in futures if not f.succeeded()]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(futures)} records not acknowledged: "
                           f"{failed[0]!r}")
    return len(futures)


def end_offsets(settings: Settings, topics: Sequence[str]) -> dict[str, int]:
    """Per source (`kafka:topic:partition`), the offset the next record will get."""
    consumer = kafka_clients.raw_consumer(settings)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics for p in sorted(consumer.partitions_for_topic(topic))
        ]
        ends: Mapping[Any, int] = consumer.end_offsets(partitions)
    finally:
        consumer.close()
    return {source_name(tp.topic, tp.partition): offset for tp, offset in ends.items()}


def behind(ledger: Ledger, ends: Mapping[str, int]) -> dict[str, int]:
    """Sources whose stored position is short of the end offset, with how many are left."""
    left: dict[str, int] = {}
    for source, end in ends.items():
        stored = ledger.position(source)
        done = 0 if stored is None else stored + 1
        if done < end:
            left[source] = end - done
    return left


def wait_until(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {deadline_s} s")
        time.sleep(0.05)


def raw_consume_seconds(settings: Settings, topics: Sequence[str], expected: int) -> float:
    """Seconds for a group-less consumer to read `expected` records of `topics`, bytes only."""
    consumer = kafka_clients.raw_consumer(settings)
    try:
        partitions = [TopicPartition(topic, p) for topic in topics
                      for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        started = time.perf_counter()
        deadline = time.monotonic() + PHASE_DEADLINE_S
        read = 0
        while read < expected:
            batch = consumer.poll(timeout_ms=RAW_POLL_TIMEOUT_MS, max_records=POLL_RECORDS_MAX)
            read += sum(len(records) for records in batch.values())
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw consume read {read} of {expected}")
        return time.perf_counter() - started
    finally:
        consumer.close()


def run_loop_until_caught_up(
    loop: ConsumerLoop, ledger: Ledger, ends: Mapping[str, int]
) -> float:
    """Run the consumer loop until every source in `ends` is applied; the seconds it took."""
    started = time.perf_counter()
    deadline = time.monotonic() + PHASE_DEADLINE_S

    def done() -> bool:
        if time.monotonic() > deadline:
            raise TimeoutError(f"consumer still behind: {behind(ledger, ends)}")
        return not behind(ledger, ends)

    loop.run(threading.Event(), until=done)
    return time.perf_counter() - started


# ---------------------------------------------------------------- the measurement
def measure_ingest(
    settings: Settings, ledger: Ledger, messages: int,
    partitions: int = TOPIC_PARTITIONS_DEFAULT,
) -> IngestBench:
    """Raw consume vs ledger consume of the same `messages` top-ups, in this run.

    `settings.topic_prefix` should be unused (the topics are created here) and the ledger's
    store may hold other data (tenant ids are unique to the run)."""
    run_id = uuid.uuid4().hex[:8]
    tenant_ids = [f"bench-{run_id}-{n}" for n in range(min(TENANTS_MAX, max(1, messages)))]
    admin = kafka_clients.admin(settings)
    try:
        create_topics(admin, settings.all_topics(), partitions, 1)
    finally:
        admin.close()
    producer = kafka_clients.producer(settings)
    consumer = kafka_clients.consumer(settings)
    metrics = Metrics()
    try:
        loop = ConsumerLoop(ledger, consumer, settings, metrics)
        # Untimed: the drivers must exist before their top-ups are applied.
        publish(producer, settings,
                [m for t in tenant_ids for m in configuration(t, DRIVERS_PER_TENANT)])
        config_topic = settings.topic(topic_of(TenantConfigured))
        run_loop_until_caught_up(loop, ledger, end_offsets(settings, [config_topic]))
        # Timed, over the same records: raw, then the ledger.
        wallets_topic = settings.topic(topic_of(WalletTopUpRequested))
        publish(producer, settings, bank_top_ups(tenant_ids, DRIVERS_PER_TENANT, messages))
        raw_seconds = raw_consume_seconds(settings, [wallets_topic], messages)
        before_applied = _counter_total(metrics.applied)
        before_dead = _counter_total(metrics.dead_lettered)
        ledger_seconds = run_loop_until_caught_up(
            loop, ledger, end_offsets(settings, [wallets_topic])
        )
        applied = _counter_total(metrics.applied) - before_applied
        dead_lettered = _counter_total(metrics.dead_lettered) - before_dead
    finally:
        consumer.close(autocommit=False)
        producer.close()
        metrics.close()
    raw_rate = messages / raw_seconds
    ledger_rate = messages / ledger_seconds
    return IngestBench(
        messages=messages, partitions=partitions,
        raw_seconds=round(raw_seconds, 3), ledger_seconds=round(ledger_seconds, 3),
        raw_msgs_per_s=round(raw_rate, 1), ledger_msgs_per_s=round(ledger_rate, 1),
        ledger_to_raw_ratio=round(ledger_rate / raw_rate, 4),
        applied=int(applied), dead_lettered=int(dead_lettered),
    )


def _counter_total(counter: Any) -> float:
    return float(sum(
        sample.value
        for metric in counter.collect() for sample in metric.samples
        if sample.name.endswith("_total")
    ))


# ---------------------------------------------------------------- `ledger bench ingest`
def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="ledger consume throughput vs a raw kafka-python consume of the same topic",
        description="Publish N wallet top-ups to fresh topics, then time a raw read of them"
        " and the ledger consumer applying them; prints both rates and their ratio.",
    )
    add_arguments(parser, metrics=False)
    parser.add_argument("--messages", type=int, default=MESSAGES_DEFAULT, metavar="N")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    messages: int = args.messages
    if not 1 <= messages <= MESSAGES_MAX:
        raise CliError(f"--messages must be 1..{MESSAGES_MAX}, got {messages}")
    if not args.topic_prefix:
        # Fresh topics every run: the bench must never read an earlier run's records.
        args.topic_prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    if not args.group_id:
        args.group_id = f"{args.topic_prefix}group"
    settings = settings_from(args)
    ledger = open_ledger(settings.store_url)
    try:
        result = measure_ingest(settings, ledger, messages)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(asdict(result), sort_keys=True))
    else:
        print(f"messages           {result.messages} over {result.partitions} partitions")
        print(f"raw kafka-python   {result.raw_msgs_per_s:>10.1f} msg/s ({result.raw_seconds} s)")
        print(f"ledger consume     {result.ledger_msgs_per_s:>10.1f} msg/s "
              f"({result.ledger_seconds} s; {result.applied} applied, "
              f"{result.dead_lettered} dead-lettered)")
        print(f"ledger / raw       {result.ledger_to_raw_ratio:.4f}")
    return 0
