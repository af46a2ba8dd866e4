"""Exactly once in effect, end to end: a `ledger consume` process killed mid-stream and
restarted leaves the ledger exactly as one clean pass over the same records does.

The workload, a few hundred messages over 3 partitions per topic, comes in three phases,
each published only once the previous one is applied (configuration must be in force before
the money that depends on it; Kafka orders nothing across partitions):
  A. configuration: per tenant its tenant, tariff, location, a wallet and a post-paid driver;
  B. wallet top-ups by bank transfer (plus re-published duplicates);
  C. one charging session per tenant (wallet or post-paid), plus duplicates and three
     malformed records (garbage bytes, no type header, a message on the wrong topic).
Within a phase no two partitions touch the same aggregate, so the end state does not depend
on how the consumer interleaves partitions.

Crash run: `ledger consume` as a subprocess; during phase C it is SIGKILLed once the
database shows some, but not all, of the phase applied; restarted; run until every
partition's stored position is its end offset.
Clean pass: the same records, read back from Kafka phase by phase, applied once through the
same decoding and `Ledger.apply_batch` into another fresh database.
Compared: every stored event (aggregate id, version, type, state without its wall-clock
timestamp) and the `ledger report --json` of both stores, byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest
from eventsourcing.utils import get_topic
from kafka import TopicPartition

from consumers import kafka_clients
from consumers.avro_codec import encode, headers_for, key_for
from consumers.benchmarks.ingest import behind, end_offsets, publish, publish_raw, wait_until
from consumers.commands.topics import create_topics
from consumers.consumer_loop import inbound_from_record, source_name
from consumers.kafka_limits import POLL_RECORDS_MAX
from consumers.kafka_topics import topic_of
from consumers.scratch_database import drop_database
from consumers.settings import Settings, settings_from
from consumers.store import open_ledger
from ledger.domain.inbox import PROCESSED_BATCH_TOPIC, DeadLetter
from ledger.messages import Envelope
from tests.builders import T0, driver, location, session_events, tariff, tenant, top_up

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TENANTS = 40
TOP_UPS_PER_WALLET = 2
# The broker's floor: after the SIGKILL the dead member's partitions move within ~6 s.
SESSION_TIMEOUT_MS = 6_000
# Joining the group and applying a phase takes seconds; these bound a hang.
PHASE_DEADLINE_S = 60
PROCESS_EXIT_DEADLINE_S = 30
# How often the kill watcher reads the positions: a partition batch takes tens of ms.
KILL_WATCH_INTERVAL_S = 0.002
RAW_POLL_TIMEOUT_MS = 200


def tenants() -> list[str]:
    return [f"t{n:02d}" for n in range(TENANTS)]


def phase_a() -> list[Envelope]:
    return [
        m for t in tenants() for m in (
            tenant(t), tariff(tenant_id=t), location("L1", tenant_id=t),
            driver("w", "wallet", tenant_id=t), driver("p", "post_paid", tenant_id=t),
        )
    ]


def phase_b() -> tuple[list[Envelope], list[Envelope]]:
    """Top-ups, and copies of three of them re-published later (same event ids)."""
    top_ups: list[Envelope] = [
        top_up("w", "20.00", tenant_id=t, at=T0 - timedelta(days=1, minutes=n))
        for t in tenants() for n in range(TOP_UPS_PER_WALLET)
    ]
    return top_ups, top_ups[:3]


def phase_c() -> tuple[list[Envelope], list[Envelope]]:
    """One session per tenant, and copies of three session events re-published later."""
    sessions: list[Envelope] = []
    for n, t in enumerate(tenants()):
        payer = "w" if n % 2 == 0 else "p"
        sessions.extend(session_events(
            f"tx-{t}", payer, kwh=str(5 + n % 7), start=T0 + timedelta(minutes=n), tenant_id=t,
        ))
    return sessions, [sessions[1], sessions[6], sessions[11]]


# ---------------------------------------------------------------- fixtures and helpers
def make_settings(database: str, bootstrap: str, prefix: str) -> Settings:
    return settings_from(argparse.Namespace(
        bootstrap_servers=bootstrap, topic_prefix=prefix, store=database,
        group_id=f"{prefix}group", metrics_port=0, session_timeout_ms=SESSION_TIMEOUT_MS,
    ), environ={})


@pytest.fixture
def clean_database(database_url: str) -> Iterator[str]:
    """A second fresh database (the `fresh_database` fixture gives one per test)."""
    name = f"t_clean_{os.urandom(8).hex()}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        drop_database(database_url, name)


class ConsumeProcess:
    """`ledger consume` as a subprocess, its JSON-lines log in a file (a pipe could fill)."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[str] = log_path.open("a", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "consumers.cli", "consume", "--store", settings.store_url,
             "--bootstrap-servers", ",".join(settings.bootstrap_servers),
             "--topic-prefix", settings.topic_prefix, "--group-id", settings.group_id,
             "--session-timeout-ms", str(SESSION_TIMEOUT_MS)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(PROCESS_EXIT_DEADLINE_S)
        self._log.close()

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(PROCESS_EXIT_DEADLINE_S)
        self._log.close()
        return code

    def close(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait()
        self._log.close()


def positions(database: str, topic: str) -> dict[str, int]:
    with psycopg.connect(database) as connection:
        rows = connection.execute(
            "SELECT application_name, notification_id FROM ledger_tracking"
            " WHERE application_name LIKE %s", (f"kafka:{topic}:%",),
        ).fetchall()
    return {str(name): int(offset) for name, offset in rows}


def caught_up_check(settings: Settings, database: str, topics: Sequence[str], process:
                    ConsumeProcess) -> None:
    ends = end_offsets(settings, topics)
    with closing(open_ledger(database)) as ledger:
        def done() -> bool:
            assert process.alive(), process.log_path.read_text()
            return not behind(ledger, ends)
        wait_until(done, PHASE_DEADLINE_S, f"consuming {topics}")


def publish_malformed(producer: Any, settings: Settings, example: Envelope,
                      wrong: Envelope) -> None:
    topic = settings.topic(topic_of(example))
    publish_raw(producer, topic, b"\x02\x04garbage", key_for(example), headers_for(example))
    publish_raw(producer, topic, encode(example), key_for(example), [])
    publish_raw(producer, topic, encode(wrong), key_for(wrong), headers_for(wrong))


def replay_in_phase_order(settings: Settings, database: str, topics: Sequence[str]) -> None:
    """The clean pass: every record of `topics`, phase by phase, partition by partition, in
    offset order, through the consumer's decoding and Ledger.apply_batch."""
    consumer = kafka_clients.raw_consumer(settings)
    ledger = open_ledger(database)
    try:
        for topic in topics:
            for partition in sorted(consumer.partitions_for_topic(topic)):
                tp = TopicPartition(topic, partition)
                end = consumer.end_offsets([tp])[tp]
                consumer.assign([tp])
                consumer.seek_to_beginning(tp)
                records: list[Any] = []
                deadline = time.monotonic() + PHASE_DEADLINE_S
                while (not records or records[-1].offset < end - 1) and end > 0:
                    assert time.monotonic() < deadline, f"reading {tp}"
                    for batch in consumer.poll(timeout_ms=RAW_POLL_TIMEOUT_MS).values():
                        records.extend(batch)
                for start in range(0, len(records), POLL_RECORDS_MAX):
                    chunk = records[start:start + POLL_RECORDS_MAX]
                    ledger.apply_batch([inbound_from_record(r, settings) for r in chunk])
    finally:
        ledger.close()
        consumer.close()


def event_digest(database: str) -> tuple[int, str]:
    """How many events are stored, and a digest of all of them ordered by aggregate and
    version; the wall-clock `timestamp` each event carries is left out, and a
    `ProcessedBatch` counts as its entries (how records fell into batches is the
    transport's: a restarted consumer polls them otherwise)."""
    with psycopg.connect(database) as connection:
        rows = connection.execute(
            "SELECT originator_id, originator_version, topic, state FROM ledger_events"
            " ORDER BY originator_id, originator_version"
        ).fetchall()
    digest = hashlib.sha256()
    applied: list[list[str]] = []
    events = 0
    for originator_id, version, topic, state in rows:
        payload = json.loads(bytes(state))
        if topic == PROCESSED_BATCH_TOPIC:
            applied.extend(payload["entries"])
            continue
        events += 1
        payload.pop("timestamp", None)
        digest.update(json.dumps([str(originator_id), version, topic, payload],
                                 sort_keys=True).encode())
    digest.update(json.dumps(sorted(applied)).encode())
    return events + len(applied), digest.hexdigest()


def report_json(database: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "report", "--store", database, "--json"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=PHASE_DEADLINE_S, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def dead_letters(database: str) -> list[Any]:
    with closing(open_ledger(database)) as ledger:
        topic = get_topic(vars(DeadLetter)["Recorded"])
        return [ledger.mapper.to_domain_event(n) for n in
                ledger.recorder.select_notifications(start=1, limit=10_000, topics=[topic])]


# ---------------------------------------------------------------- the test
def test_consumer_killed_mid_stream_and_restarted_equals_one_clean_pass(
    fresh_database: str, clean_database: str, kafka_bootstrap_servers: str,
    fresh_topic_prefix: str, tmp_path: Path,
) -> None:
    settings = make_settings(fresh_database, kafka_bootstrap_servers, fresh_topic_prefix)
    with closing(kafka_clients.admin(settings)) as admin:
        create_topics(admin, settings.all_topics(), partitions=3, replication_factor=1)
    config_topic, wallets_topic, sessions_topic = (
        settings.topic(name) for name in ("config", "wallets", "csms.transaction-events")
    )
    top_ups, top_up_copies = phase_b()
    sessions, session_copies = phase_c()
    producer = kafka_clients.producer(settings)
    first = ConsumeProcess(settings, tmp_path / "consume-1.log")
    second: ConsumeProcess | None = None
    try:
        publish(producer, settings, phase_a())
        caught_up_check(settings, fresh_database, [config_topic], first)
        publish(producer, settings, top_ups)
        publish(producer, settings, top_up_copies)
        caught_up_check(settings, fresh_database, [wallets_topic], first)

        # Phase C, and the kill: once some of its partitions' batches are committed, and
        # before all of them are. Its first half is published first and the second only
        # after the kill, so a consumer fast enough to apply a whole half between two looks
        # of the watcher still dies with records left (a kill that comes too late proves
        # nothing).
        half = len(sessions) // 2
        publish(producer, settings, sessions[:half])
        deadline = time.monotonic() + PHASE_DEADLINE_S
        while True:
            assert time.monotonic() < deadline, "phase C never started"
            applied = sum(p + 1 for p in positions(fresh_database, sessions_topic).values())
            if applied > 0:
                break
            time.sleep(KILL_WATCH_INTERVAL_S)
        first.kill()
        at_kill = sum(p + 1 for p in positions(fresh_database, sessions_topic).values())
        publish(producer, settings, sessions[half:])
        publish(producer, settings, session_copies)
        publish_malformed(producer, settings, sessions[0], top_ups[0])
        ends = end_offsets(settings, [sessions_topic])
        total = sum(ends.values())
        assert 0 < at_kill < total, (
            f"the kill came too late to test a crash: {at_kill} of {total} applied"
        )

        started = time.monotonic()
        second = ConsumeProcess(settings, tmp_path / "consume-2.log")
        caught_up_check(settings, fresh_database,
                        [config_topic, wallets_topic, sessions_topic], second)
        recovery_s = time.monotonic() - started
        assert second.terminate() == 0, second.log_path.read_text()
    finally:
        producer.close()
        first.close()
        if second is not None:
            second.close()
    print(f"killed after {at_kill} of {total} phase C records; caught up {recovery_s:.1f} s "
          "after the restart")
    # The restarted process began exactly where the database said: it read every record the
    # killed one had not committed, and none that it had.
    batches = [json.loads(line) for line in second.log_path.read_text().splitlines()
               if line.startswith("{") and '"event":"batch_applied"' in line]
    assert sum(b["records"] for b in batches) == total - at_kill
    assert sum(b["skipped"] for b in batches) == 0

    replay_in_phase_order(settings, clean_database,
                          [config_topic, wallets_topic, sessions_topic])

    crashed_events, crashed_digest = event_digest(fresh_database)
    clean_events, clean_digest = event_digest(clean_database)
    assert (crashed_events, crashed_digest) == (clean_events, clean_digest)

    crashed_report = report_json(fresh_database)
    assert crashed_report == report_json(clean_database)
    report = json.loads(crashed_report)
    assert len(report["sessions"]) == TENANTS
    assert len(report["wallets"]) == TENANTS
    wallet_sessions = {s["tenant_id"]: s for s in report["sessions"]
                       if s["billing_model"] == "wallet"}
    for wallet in report["wallets"]:
        # Two top-ups of 20.00 each, the duplicate not counted, minus a wallet session.
        session = wallet_sessions.get(wallet["tenant_id"])
        spent = Decimal(session["total_incl_vat"]) if session else Decimal(0)
        assert Decimal(wallet["balance"]) == Decimal("40.00") - spent
    assert len(wallet_sessions) == TENANTS // 2

    letters = sorted(dead_letters(fresh_database), key=lambda d: (d.source, int(d.position)))
    assert len(letters) == 3
    assert all(letter.source in {source_name(sessions_topic, p) for p in range(3)}
               for letter in letters)
    reasons = " | ".join(letter.reason for letter in letters)
    assert "not a TransactionEvent record" in reasons
    assert "no 'type' header" in reasons
    assert f"WalletTopUpRequested belongs on {wallets_topic}" in reasons
