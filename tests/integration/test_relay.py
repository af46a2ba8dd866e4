"""The outbox relay against a real broker and a real PostgreSQL (and the embedded SQLite)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.utils import get_topic
from kafka import TopicPartition

from consumers import kafka_clients
from consumers.avro_codec import decode, decode_dead_letter, type_from_headers
from consumers.benchmarks.ingest import wait_until
from consumers.commands.topics import create_topics
from consumers.consumer_loop import raw_from_bytes, source_name
from consumers.kafka_topics import DEAD_LETTER_TOPIC
from consumers.observability import Metrics
from consumers.relay import RELAY_TRACKING_NAME, Relay, open_relay_tracking
from consumers.settings import Settings, settings_from
from consumers.store import open_ledger
from ledger.application import Inbound, Ledger
from ledger.domain.outbox import OutboundCommand
from ledger.messages import PaymentCommand
from tests.builders import LedgerDriver, driver, tenant, top_up

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = ("d1", "d2", "d3", "d4", "d5")
TOP_UPS_PER_DRIVER = 3
# Reading back a few dozen records from a local broker takes well under a second.
READ_DEADLINE_S = 30
READ_POLL_TIMEOUT_MS = 200


def make_settings(store_url: str, bootstrap: str, prefix: str) -> Settings:
    args = argparse.Namespace(bootstrap_servers=bootstrap, topic_prefix=prefix,
                              store=store_url, metrics_port=0)
    return settings_from(args, environ={})


@pytest.fixture
def settings(fresh_database: str, kafka_bootstrap_servers: str, fresh_topic_prefix: str
             ) -> Settings:
    found = make_settings(fresh_database, kafka_bootstrap_servers, fresh_topic_prefix)
    with closing(kafka_clients.admin(found)) as admin:
        create_topics(admin, found.all_topics(), partitions=3, replication_factor=1)
    return found


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    with closing(open_ledger(settings.store_url)) as opened:
        yield opened


def issue_commands_and_a_dead_letter(ledger: Ledger, dead_letter_source: str) -> list[str]:
    """Card top-ups (one PaymentCommand each) and one undecodable message; the command ids
    in the order the ledger recorded them."""
    feed = LedgerDriver(ledger, source="test:relay")
    feed.apply(tenant("t1"), *[driver(d, "wallet", tenant_id="t1") for d in DRIVERS])
    for _round in range(TOP_UPS_PER_DRIVER):
        feed.apply(*[top_up(d, "20.00", method="card", tenant_id="t1") for d in DRIVERS])
    ledger.apply_batch([Inbound(
        dead_letter_source, 7, None, key="t1:d9", raw=raw_from_bytes(b"\x00garbage"),
        error="bytes are not a WalletTopUpRequested record", type_name="WalletTopUpRequested",
    )])
    return [c["event_id"] for c in feed.commands()]


def command_keys(ledger: Ledger) -> dict[str, bytes]:
    """Each command id with the key the ledger recorded for it (the relay must use it)."""
    topic = get_topic(vars(OutboundCommand)["Issued"])
    issued = [ledger.mapper.to_domain_event(n) for n in
              ledger.recorder.select_notifications(start=1, limit=10_000, topics=[topic])]
    return {e.command_id: e.key.encode() for e in issued}  # type: ignore[attr-defined]


def relay_for(settings: Settings, ledger: Ledger, stack: list[Any]) -> Relay:
    factory, tracking = open_relay_tracking(settings.store_url)
    producer = kafka_clients.producer(settings)
    metrics = Metrics()
    stack.extend([factory, producer, metrics])
    return Relay(ledger, tracking, producer, settings, metrics)


def close_all(stack: list[Any]) -> None:
    for resource in reversed(stack):
        resource.close()
    stack.clear()


def read_topic(settings: Settings, topic: str, expected: int) -> dict[int, list[Any]]:
    """Every record of `topic`, per partition in offset order (waits for `expected`)."""
    consumer = kafka_clients.raw_consumer(settings)
    found: dict[int, list[Any]] = {}
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + READ_DEADLINE_S
        while sum(map(len, found.values())) < expected and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=READ_POLL_TIMEOUT_MS).items():
                found.setdefault(tp.partition, []).extend(records)
        # Anything beyond `expected` would be a bug too: one more poll to see it.
        for tp, records in consumer.poll(timeout_ms=READ_POLL_TIMEOUT_MS).items():
            found.setdefault(tp.partition, []).extend(records)
    finally:
        consumer.close()
    return found


def command_ids(records: list[Any], keys: dict[str, bytes]) -> list[str]:
    ids = []
    for record in records:
        message = decode(type_from_headers(record.headers), record.value)
        assert isinstance(message, PaymentCommand)
        assert record.key == keys[message.event_id]
        ids.append(message.event_id)
    return ids


def test_relay_republishes_the_same_ids_in_order_after_a_crash_before_storing_its_position(
    settings: Settings, ledger: Ledger
) -> None:
    dead_letter_source = source_name(settings.topic("wallets"), 1)
    outbox = issue_commands_and_a_dead_letter(ledger, dead_letter_source)
    assert len(outbox) == len(DRIVERS) * TOP_UPS_PER_DRIVER
    stack: list[Any] = []
    try:
        crashed = relay_for(settings, ledger, stack)
        page = crashed.read_page(crashed.position())
        assert page is not None
        crashed.publish(page.records)  # sent and acknowledged ...
        # ... and the process dies before `store_position`.
        assert crashed.position() == 0
        close_all(stack)

        restarted = relay_for(settings, ledger, stack)
        assert restarted.run_once() == len(outbox) + 1
        assert restarted.run_once() == 0  # nothing more, nothing twice
        position = restarted.position()
    finally:
        close_all(stack)

    per_partition = read_topic(settings, settings.topic("psp.commands"), 2 * len(outbox))
    keys = command_keys(ledger)
    sent_twice = [command_ids(records, keys) for records in per_partition.values()]
    assert sorted(i for ids in sent_twice for i in ids) == sorted(outbox * 2)
    for ids in sent_twice:
        # Each partition saw its commands in outbox order, then the same again: the same
        # ids, never a new one, and per-key order kept within each sending.
        in_order = [i for i in outbox if i in ids]
        assert ids == in_order + in_order
    # A consumer deduplicating by id sees every command exactly once.
    assert len({i for ids in sent_twice for i in ids}) == len(outbox)

    letters = [
        decode_dead_letter(r.value)
        for records in read_topic(settings, settings.topic(DEAD_LETTER_TOPIC), 2).values()
        for r in records
    ]
    assert len(letters) == 2 and letters[0] == letters[1]  # re-sent, identical, same id
    assert (letters[0].source_topic, letters[0].source_partition, letters[0].source_offset) == (
        settings.topic("wallets"), 1, 7)
    assert letters[0].payload == b"\x00garbage"
    assert letters[0].key == "t1:d9"

    # The relay keeps its position in a table of its own, not among the ledger's sources.
    with psycopg.connect(settings.store_url) as connection:
        rows = connection.execute(
            "SELECT application_name, notification_id FROM relay_tracking"
            " WHERE application_name <> '__migration__'"  # eventsourcing's own row
        ).fetchall()
        ledger_rows = connection.execute(
            "SELECT count(*) FROM ledger_tracking WHERE application_name LIKE 'relay%'"
        ).fetchone()
    assert rows == [(RELAY_TRACKING_NAME, position)]
    assert ledger_rows == (0,)


def test_relay_works_on_the_embedded_sqlite_store(
    tmp_path: Path, kafka_bootstrap_servers: str, fresh_topic_prefix: str
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'ledger.db'}", kafka_bootstrap_servers,
                             fresh_topic_prefix)
    with closing(kafka_clients.admin(settings)) as admin:
        create_topics(admin, settings.all_topics(), partitions=3, replication_factor=1)
    stack: list[Any] = []
    with closing(open_ledger(settings.store_url)) as ledger:
        outbox = issue_commands_and_a_dead_letter(ledger, "file:day.jsonl")
        keys = command_keys(ledger)
        try:
            relay = relay_for(settings, ledger, stack)
            assert relay.run_once() == len(outbox) + 1
            assert relay.run_once() == 0
        finally:
            close_all(stack)
    per_partition = read_topic(settings, settings.topic("psp.commands"), len(outbox))
    assert sorted(i for records in per_partition.values() for i in command_ids(records, keys)) == (
        sorted(outbox))
    (letter,) = [
        decode_dead_letter(r.value)
        for records in read_topic(settings, settings.topic(DEAD_LETTER_TOPIC), 1).values()
        for r in records
    ]
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "file:day.jsonl", None, 7)


def test_ledger_relay_publishes_and_stops_on_sigterm_with_exit_zero(
    settings: Settings, ledger: Ledger
) -> None:
    outbox = issue_commands_and_a_dead_letter(ledger, source_name(settings.topic("wallets"), 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "relay", "--store", settings.store_url,
         "--bootstrap-servers", ",".join(settings.bootstrap_servers),
         "--topic-prefix", settings.topic_prefix],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        factory, tracking = open_relay_tracking(settings.store_url)
        with closing(factory):
            wait_until(
                lambda: (tracking.max_tracking_id(RELAY_TRACKING_NAME) or 0) > 0
                or process.poll() is not None,
                READ_DEADLINE_S, "ledger relay publishing the outbox",
            )
        process.send_signal(signal.SIGTERM)
        _stdout, stderr = process.communicate(timeout=READ_DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert '"event":"page_published"' in stderr
    keys = command_keys(ledger)
    per_partition = read_topic(settings, settings.topic("psp.commands"), len(outbox))
    assert sorted(i for records in per_partition.values() for i in command_ids(records, keys)) == (
        sorted(outbox))
