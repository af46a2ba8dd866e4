"""The Kafka consumer loop against a real broker and a real PostgreSQL.

Each test gets fresh topics (`fresh_topic_prefix`), its own consumer group and an empty
database, so tests never see each other's records or positions.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.utils import get_topic
from kafka import OffsetAndMetadata, TopicPartition

from consumers import kafka_clients
from consumers.avro_codec import TYPE_HEADER, encode, headers_for, key_for
from consumers.benchmarks.ingest import behind, end_offsets, publish, publish_raw, wait_until
from consumers.commands.topics import create_topics
from consumers.consumer_loop import (
    ConsumerLoop,
    PartitionGate,
    PollOutcome,
    bytes_from_raw,
    source_name,
)
from consumers.kafka_topics import topic_of
from consumers.observability import Metrics
from consumers.settings import Settings, settings_from
from consumers.store import open_ledger
from ledger.application import Ledger
from ledger.domain.configuration import config_id
from ledger.domain.inbox import DeadLetter
from ledger.domain.wallet import Wallet
from projections.database import open_read_model
from projections.report import build_report
from projections.runner import catch_up, ensure_schema
from tests.builders import T0, driver, location, tenant, top_up
from tests.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# The broker's floor (group.min.session.timeout.ms): a closed or killed member's partitions
# move to the next member quickly.
TEST_SESSION_TIMEOUT_MS = 6_000
# Joining a group and applying a handful of messages takes a few seconds; this bounds a hang.
CONSUME_DEADLINE_S = 60
# A stopped `ledger consume` leaves the group and exits within its close timeout (10 s).
PROCESS_EXIT_DEADLINE_S = 30
METRICS_SCRAPE_TIMEOUT_S = 10
# Between waves of top-ups: long enough for both members to poll and apply in between.
WAVE_PAUSE_S = 0.1


def make_settings(database: str, bootstrap: str, prefix: str, **extra: Any) -> Settings:
    args = argparse.Namespace(
        bootstrap_servers=bootstrap, topic_prefix=prefix, store=database,
        group_id=f"{prefix}group", metrics_port=0, session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
        **extra,
    )
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


@pytest.fixture
def producer(settings: Settings) -> Iterator[Any]:
    opened = kafka_clients.producer(settings)
    try:
        yield opened
    finally:
        opened.close()


def consume_until_caught_up(settings: Settings, ledger: Ledger) -> list[PollOutcome]:
    """Run one consumer-group member until every inbound partition is applied to its end."""
    ends = end_offsets(settings, settings.inbound_topics())
    outcomes: list[PollOutcome] = []
    consumer = kafka_clients.consumer(settings)
    metrics = Metrics()
    try:
        loop = ConsumerLoop(ledger, consumer, settings, metrics)
        loop.subscribe()
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        while behind(ledger, ends):
            assert time.monotonic() < deadline, f"still behind: {behind(ledger, ends)}"
            outcomes.append(loop.poll_once())
    finally:
        consumer.close(autocommit=False)
        metrics.close()
    return outcomes


def know_every_partition(consumer: Any, settings: Settings, partitions: int = 3) -> None:
    """Wait until this client's metadata holds every partition of every inbound topic.

    A group leader whose metadata lacks a topic (just created, its leaders not elected yet on
    a busy broker) assigns none of its partitions ("No partition metadata for topic") and
    looks again only at the next metadata refresh (metadata.max.age.ms, minutes): members
    then wait without partitions. So members start with the metadata in hand.
    """
    wait_until(
        lambda: all(len(consumer.partitions_for_topic(topic) or ()) == partitions
                    for topic in settings.inbound_topics()),
        CONSUME_DEADLINE_S, "partition metadata of every inbound topic",
    )


def totals(outcomes: list[PollOutcome]) -> dict[str, int]:
    found = {"applied": 0, "duplicates": 0, "dead_lettered": 0, "refused": 0, "skipped": 0}
    for outcome in outcomes:
        for _source, result in outcome.batches:
            found["applied"] += result.applied
            found["duplicates"] += result.duplicates
            found["dead_lettered"] += result.dead_lettered
            found["refused"] += result.refused
            found["skipped"] += result.skipped_before_position
    return found


def dead_letters(ledger: Ledger) -> list[Any]:
    topic = get_topic(vars(DeadLetter)["Recorded"])
    notifications = ledger.recorder.select_notifications(start=1, limit=10_000, topics=[topic])
    return [ledger.mapper.to_domain_event(n) for n in notifications]


def test_each_message_is_applied_once_and_undecodable_ones_are_dead_lettered_with_provenance(
    settings: Settings, ledger: Ledger, producer: Any
) -> None:
    deposit = top_up("d1", "25.00", tenant_id="t1")
    # Configuration first: Kafka orders nothing across topics, and a top-up for a driver
    # the ledger does not know yet is invalid input.
    publish(producer, settings, [tenant("t1"), driver("d1", "wallet", tenant_id="t1")])
    consume_until_caught_up(settings, ledger)
    publish(producer, settings, [deposit])
    wallets_topic = settings.topic(topic_of(deposit))
    # The same event id again, at a new offset: a re-publish by the producer.
    publish(producer, settings, [deposit])
    # Bytes that are no WalletTopUpRequested, on the same key (so the same partition).
    garbage = b"\x00\xffnot avro at all"
    publish_raw(producer, wallets_topic, garbage, key_for(deposit), headers_for(deposit))
    # A record without the `type` header.
    publish_raw(producer, wallets_topic, encode(deposit), key_for(deposit), [])

    outcomes = consume_until_caught_up(settings, ledger)

    assert totals(outcomes) == {
        "applied": 1, "duplicates": 1, "dead_lettered": 2, "refused": 0, "skipped": 0,
    }
    wallet: Wallet = ledger.repository.get(Wallet.create_id("t1", "d1"))
    assert wallet.balance == Decimal("25.00")  # credited once, not twice

    partition = next(
        p for p in range(3)
        if ledger.position(source_name(wallets_topic, p)) is not None
    )
    source = source_name(wallets_topic, partition)
    found = sorted(dead_letters(ledger), key=lambda d: int(d.position))
    assert [(d.source, d.position) for d in found] == [(source, "2"), (source, "3")]
    undecodable, headerless = found
    assert undecodable.type_name == "WalletTopUpRequested"
    assert "not a WalletTopUpRequested record" in undecodable.reason
    assert bytes_from_raw(undecodable.payload) == garbage
    assert undecodable.key == key_for(deposit).decode()
    assert TYPE_HEADER in headerless.reason and headerless.type_name is None
    assert bytes_from_raw(headerless.payload) == encode(deposit)
    assert ledger.position(source) == 3


def _v1_location_bytes(location_id: str) -> bytes:
    """A LocationConfigured as a v1 producer wrote it before the single-object framing."""
    import io
    import json

    import fastavro

    v1 = json.loads((ROOT / "schemas/history/LocationConfigured/v1.avsc").read_text())
    record = location(location_id, tenant_id="t1").model_dump(mode="json")
    del record["country_code"]
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(v1, {}), {**record,
                                                                       "schema_version": 1})
    return buffer.getvalue()


def test_v1_and_v2_locations_are_both_applied_and_an_unknown_schema_is_dead_lettered(
    settings: Settings, ledger: Ledger, producer: Any
) -> None:
    publish(producer, settings, [tenant("t1")])
    consume_until_caught_up(settings, ledger)
    config_topic = settings.topic("config")
    v2 = location("L2", tenant_id="t1", country_code="AUT")
    unknown = encode(location("L3", tenant_id="t1"))
    unknown = unknown[:2] + bytes(8) + unknown[10:]  # a fingerprint no version has
    for data in (_v1_location_bytes("L1"), encode(v2), unknown):
        publish_raw(producer, config_topic, data, key_for(v2), headers_for(v2))

    outcomes = consume_until_caught_up(settings, ledger)

    assert totals(outcomes)["applied"] == 2 and totals(outcomes)["dead_lettered"] == 1
    moment = T0 + timedelta(days=1)
    found = {
        loc: ledger.repository.get(config_id("location", "t1", loc)).as_of(moment)
        for loc in ("L1", "L2")
    }
    assert found["L1"]["time_zone"] == found["L2"]["time_zone"] == "Europe/Berlin"
    assert (found["L1"]["country_code"], found["L2"]["country_code"]) == (None, "AUT")
    (letter,) = dead_letters(ledger)
    assert "written with an unknown schema (fingerprint 0000000000000000)" in letter.reason


def test_a_message_on_the_wrong_topic_is_dead_lettered_not_applied(
    settings: Settings, ledger: Ledger, producer: Any
) -> None:
    deposit = top_up("d1", "5.00", tenant_id="t1")
    publish(producer, settings, [tenant("t1"), driver("d1", "wallet", tenant_id="t1")])
    config_topic = settings.topic("config")
    publish_raw(producer, config_topic, encode(deposit), key_for(deposit), headers_for(deposit))

    outcomes = consume_until_caught_up(settings, ledger)

    assert totals(outcomes)["dead_lettered"] == 1
    (letter,) = dead_letters(ledger)
    assert letter.reason == (
        f"WalletTopUpRequested belongs on {settings.topic('wallets')}, not {config_topic}"
    )


def test_a_restarted_consumer_resumes_from_the_database_position_not_kafkas_offset(
    settings: Settings, ledger: Ledger, producer: Any
) -> None:
    # Every message of tenant t1's driver d1 shares one key, hence one partition.
    publish(producer, settings, [tenant("t1"), driver("d1", "wallet", tenant_id="t1")])
    consume_until_caught_up(settings, ledger)
    first = [top_up("d1", "1.00", tenant_id="t1", at=T0 + timedelta(minutes=n))
             for n in range(3)]
    publish(producer, settings, first)
    consume_until_caught_up(settings, ledger)
    wallets_topic = settings.topic("wallets")
    (partition,) = [
        p for p in range(3) if ledger.position(source_name(wallets_topic, p)) is not None
    ]
    source = source_name(wallets_topic, partition)
    assert ledger.position(source) == 2

    later = [top_up("d1", "10.00", tenant_id="t1", at=T0 + timedelta(hours=1, minutes=n))
             for n in range(3)]
    publish(producer, settings, later)
    # Kafka now claims the group consumed the later messages too (offset 6 = after 3, 4, 5).
    tp = TopicPartition(wallets_topic, partition)
    liar = kafka_clients.consumer(settings)
    try:
        liar.assign([tp])
        liar.commit({tp: OffsetAndMetadata(6, "", -1)})
        assert liar.committed(tp) == 6
    finally:
        liar.close(autocommit=False)

    outcomes = consume_until_caught_up(settings, ledger)

    batches = [r for o in outcomes for s, r in o.batches if s == source]
    assert sum(r.applied for r in batches) == 3  # the offset Kafka held is ignored
    assert sum(r.skipped_before_position for r in batches) == 0  # and nothing re-read
    assert ledger.position(source) == 5
    wallet: Wallet = ledger.repository.get(Wallet.create_id("t1", "d1"))
    assert wallet.balance == Decimal("33.00")


def test_ledger_consume_stops_on_sigterm_after_its_batch_and_exits_zero(
    settings: Settings, ledger: Ledger, producer: Any
) -> None:
    publish(producer, settings, [tenant("t1"), driver("d1", "wallet", tenant_id="t1")])
    ends = end_offsets(settings, settings.inbound_topics())
    metrics_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "consume", "--store", settings.store_url,
         "--bootstrap-servers", ",".join(settings.bootstrap_servers),
         "--topic-prefix", settings.topic_prefix, "--group-id", settings.group_id,
         "--session-timeout-ms", str(TEST_SESSION_TIMEOUT_MS),
         "--metrics-port", str(metrics_port)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: not behind(ledger, ends) or process.poll() is not None,
                   CONSUME_DEADLINE_S, "ledger consume applying two messages")
        scraped: list[str] = []
        applied_line = f'evledger_messages_applied_total{{topic="{settings.topic("config")}"}} 2.0'

        def scrape() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                        timeout=METRICS_SCRAPE_TIMEOUT_S) as response:
                scraped.append(response.read().decode())
            # Lag is set after the advisory commit, a moment after the counters move.
            return applied_line in scraped[-1] and "evledger_consumer_lag_messages{" in (
                scraped[-1])

        # The counters move just after the transaction commits: scrape until they show it.
        wait_until(scrape, CONSUME_DEADLINE_S, "metrics showing two applied messages")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=PROCESS_EXIT_DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert stdout == ""
    log_events = [line for line in stderr.splitlines() if line.startswith("{")]
    assert any('"event":"batch_applied"' in line for line in log_events), stderr
    assert '"event":"stopped"' in log_events[-1]
    assert "evledger_consumer_lag_messages{" in scraped[-1]
    assert "evledger_batch_seconds_bucket{" in scraped[-1]


def test_two_consumers_in_one_group_share_the_partitions_and_apply_everything_once(
    settings: Settings, ledger: Ledger, producer: Any
) -> None:
    drivers = [f"d{n}" for n in range(12)]
    publish(producer, settings, [tenant("t1"), *[driver(d, "wallet", tenant_id="t1")
                                                 for d in drivers]])
    consume_until_caught_up(settings, ledger)
    stop = threading.Event()
    errors: list[BaseException] = []
    # Opened one after the other: eventsourcing's table creation (CREATE OR REPLACE FUNCTION)
    # run by two processes at the same instant fails with "tuple concurrently updated".
    ledgers = [open_ledger(settings.store_url) for _ in range(2)]
    consumers = [kafka_clients.consumer(settings) for _ in range(2)]
    for consumer in consumers:
        know_every_partition(consumer, settings)
    metrics = [Metrics() for _ in range(2)]

    def member(n: int) -> None:
        try:
            ConsumerLoop(ledgers[n], consumers[n], settings, metrics[n]).run(stop)
        except BaseException as exc:
            errors.append(exc)

    def wallets_partitions(n: int) -> set[int]:
        return {tp.partition for tp in consumers[n].assignment()
                if tp.topic == settings.topic("wallets")}

    threads = [threading.Thread(target=member, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    try:
        # Both members own part of the wallets topic before anything is published to it.
        wait_until(lambda: all(wallets_partitions(n) for n in range(2)) or bool(errors),
                   CONSUME_DEADLINE_S, "two members sharing the wallets partitions")
        assert not wallets_partitions(0) & wallets_partitions(1)
        # Different drivers' top-ups land on different partitions, hence members, but share
        # the tenant's receipt series: both write one aggregate and retry on conflicts.
        # In waves, so both members keep applying small batches at the same time.
        for n in range(10):
            publish(producer, settings, [
                top_up(d, "2.00", tenant_id="t1", at=T0 + timedelta(minutes=n)) for d in drivers
            ])
            time.sleep(WAVE_PAUSE_S)
        ends = end_offsets(settings, settings.inbound_topics())
        wait_until(lambda: not behind(ledger, ends) or bool(errors), CONSUME_DEADLINE_S,
                   "two consumers applying 120 top-ups")
    finally:
        stop.set()
        for thread in threads:
            thread.join(PROCESS_EXIT_DEADLINE_S)
        for n in range(2):
            consumers[n].close(autocommit=False)
            metrics[n].close()
            ledgers[n].close()
    assert errors == []
    applied = [
        metrics[n].registry.get_sample_value(
            "evledger_messages_applied_total", {"topic": settings.topic("wallets")}) or 0
        for n in range(2)
    ]
    assert all(applied) and sum(applied) == 120  # each member applied its share
    for d in drivers:
        wallet: Wallet = ledger.repository.get(Wallet.create_id("t1", d))
        assert wallet.balance == Decimal("20.00")
    assert dead_letters(ledger) == []


class _PausingConsumer:
    def __init__(self) -> None:
        self.paused: set[Any] = set()

    def pause(self, *partitions: Any) -> None:
        self.paused.update(partitions)


def test_the_rebalance_listener_only_pauses_and_a_late_done_never_clears_a_new_assignment(
) -> None:
    consumer = _PausingConsumer()
    gate = PartitionGate(consumer)
    p0, p1 = TopicPartition("wallets", 0), TopicPartition("wallets", 1)
    gate.on_partitions_assigned({p0, p1})
    assert consumer.paused == {p0, p1}
    first = gate.waiting()
    # The IO thread revokes and re-assigns p0 while the loop is still seeking the first time.
    gate.on_partitions_revoked({p0})
    gate.on_partitions_assigned({p0})
    gate.done(p0, first[p0])
    gate.done(p1, first[p1])
    assert set(gate.waiting()) == {p0}  # the re-assignment still gets its own seek
    gate.on_partitions_lost({p0})
    assert gate.waiting() == {}


def test_hostile_records_are_dead_lettered_and_neither_consume_nor_the_read_models_stop(
    settings: Settings, ledger: Ledger, producer: Any
) -> None:
    # Issue 10: a top-up of 10^30 made `consume` exit 1 on every restart; a NUL in a key or
    # a type header reached the dead-letter read model and stopped `project`.
    publish(producer, settings, [tenant("t1"), driver("d1", "wallet", tenant_id="t1")])
    consume_until_caught_up(settings, ledger)
    wallets_topic = settings.topic("wallets")
    healthy = top_up("d1", "5.00", tenant_id="t1")
    huge = top_up("d1", "1.00", tenant_id="t1").model_copy(update={"amount": Decimal(10**30)})
    key = key_for(healthy)
    publish_raw(producer, wallets_topic, encode(huge), key, headers_for(huge))
    publish_raw(producer, wallets_topic, encode(healthy), key + b"\x00",
                [(TYPE_HEADER, b"WalletTopUp\x00Requested")])
    publish(producer, settings, [healthy])

    outcomes = consume_until_caught_up(settings, ledger)

    assert totals(outcomes)["applied"] == 1 and totals(outcomes)["dead_lettered"] == 2
    wallet: Wallet = ledger.repository.get(Wallet.create_id("t1", "d1"))
    assert wallet.balance == Decimal("5.00")
    with closing(open_read_model(ledger)) as db:
        ensure_schema(db)
        catch_up(ledger, db)
        items = build_report(db)["dead_letters"]["items"]
    assert len(items) == 2
    assert any("amount" in item["reason"] for item in items)
    assert any(item["type"] == "WalletTopUp\\u0000Requested"
               and str(item["key"]).endswith("\\u0000") for item in items)


def test_a_record_speaking_for_another_tenant_is_dead_lettered(
    settings: Settings, ledger: Ledger, producer: Any
) -> None:
    # Issue 10: the payload's tenant_id was trusted whatever the transport said.
    publish(producer, settings, [tenant("t1"), driver("d1", "wallet", tenant_id="t1"),
                                 tenant("t2"), driver("d1", "wallet", tenant_id="t2")])
    consume_until_caught_up(settings, ledger)
    wallets_topic = settings.topic("wallets")
    claims_t2 = top_up("d1", "7.00", tenant_id="t2")
    publish_raw(producer, wallets_topic, encode(claims_t2), b"t1:d1", headers_for(claims_t2))
    published_by_t2 = top_up("d1", "9.00", tenant_id="t2")
    publish(producer, settings, [published_by_t2, top_up("d1", "5.00", tenant_id="t1")])

    # This consumer serves t1's topics only (a topic prefix per tenant, under ACLs).
    outcomes = consume_until_caught_up(replace(settings, tenants=frozenset({"t1"})), ledger)

    assert totals(outcomes)["applied"] == 1 and totals(outcomes)["dead_lettered"] == 2
    assert ledger.repository.get(Wallet.create_id("t1", "d1")).balance == Decimal("5.00")
    t2_wallet = Wallet.create_id("t2", "d1")
    assert (t2_wallet not in ledger.repository
            or ledger.repository.get(t2_wallet).balance == Decimal("0"))
    with closing(open_read_model(ledger)) as db:
        ensure_schema(db)
        catch_up(ledger, db)
        reasons = sorted(item["reason"] for item in build_report(db)["dead_letters"]["items"])
    assert "does not match the record key 't1:d1'" in reasons[0] + reasons[1]
    assert "'t2' is not served by these topics (accepted: t1)" in reasons[0] + reasons[1]


def test_sigterm_while_kafka_is_still_being_reached_is_a_clean_stop(tmp_path: Path) -> None:
    # It exited -15 here: the handler was installed only once Kafka had answered.
    store = tmp_path / "store.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "consume", "--store", f"sqlite:///{store}",
         "--bootstrap-servers", f"127.0.0.1:{free_port()}"],  # nothing listens there
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # The store is opened after the handler is in place, and Kafka is reached after it.
        wait_until(lambda: store.exists() or process.poll() is not None, CONSUME_DEADLINE_S,
                   "the consumer opening its store")
        process.send_signal(signal.SIGTERM)
        _stdout, stderr = process.communicate(timeout=PROCESS_EXIT_DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert '"event":"stopped"' in stderr
