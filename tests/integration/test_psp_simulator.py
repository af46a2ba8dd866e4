"""`ledger psp-simulator` against the real broker: it answers payment commands on Kafka.

It stands in for the PSP only: the commands go in through the real `psp.commands` topic as
Avro, the answers come back on the real `psp.results`, and the process is a real process
stopped with SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from consumers import kafka_clients
from consumers.avro_codec import decode, encode, headers_for, key_for, type_from_headers
from consumers.benchmarks.ingest import wait_until
from consumers.commands.topics import create_topics
from consumers.kafka_topics import topic_of
from consumers.settings import Settings, settings_from
from consumers.simulation.psp import result_event_id
from ledger.messages import PaymentCommand, PaymentResult

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
# A local broker answers within a second; group joins take a few.
ANSWERS_DEADLINE_S = 60
PROCESS_EXIT_DEADLINE_S = 30
READ_POLL_TIMEOUT_MS = 200
# A restarted simulator joins its group in ~3 s; a loaded machine may take much longer.
GROUP_JOIN_DEADLINE_S = 60


@pytest.fixture
def settings(kafka_bootstrap_servers: str, fresh_topic_prefix: str) -> Settings:
    args = argparse.Namespace(bootstrap_servers=kafka_bootstrap_servers,
                              topic_prefix=fresh_topic_prefix,
                              group_id=f"{fresh_topic_prefix}psp")
    found = settings_from(args, environ={})
    with closing(kafka_clients.admin(found)) as admin:
        create_topics(admin, found.all_topics(), partitions=3, replication_factor=1)
    return found


@pytest.fixture
def producer(settings: Settings) -> Iterator[Any]:
    made = kafka_clients.producer(settings)
    yield made
    made.close()


def command(event_id: str, action: str, token: str | None, reference: str,
            amount: str = "20.00", psp_reference: str | None = None) -> PaymentCommand:
    return PaymentCommand(
        event_id=event_id, tenant_id="t1", occurred_at=AT, producer="evledger",
        action=action, idempotency_key=event_id, amount=Decimal(amount), currency="EUR",
        payment_method_token=token, reference=reference, psp_reference=psp_reference,
    )


def send(producer: Any, settings: Settings, commands: list[PaymentCommand]) -> None:
    topic = settings.topic(topic_of(PaymentCommand))
    for c in commands:
        producer.send(topic, key=key_for(c), value=encode(c), headers=headers_for(c))
    producer.flush(timeout=30)


def start_simulator(settings: Settings, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "psp-simulator",
         "--bootstrap-servers", ",".join(settings.bootstrap_servers),
         "--topic-prefix", settings.topic_prefix, "--group-id", settings.group_id,
         "--session-timeout-ms", "6000", *extra],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        process.send_signal(signal.SIGTERM)
        return process.communicate(timeout=PROCESS_EXIT_DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def read_results(settings: Settings, expected: int,
                 alive: Callable[[], bool]) -> list[tuple[bytes, PaymentResult]]:
    """Every (key, result) on psp.results, once `expected` arrived (or the deadline)."""
    topic = settings.topic(topic_of(PaymentResult))
    consumer = kafka_clients.raw_consumer(settings)
    found: list[tuple[bytes, PaymentResult]] = []
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + ANSWERS_DEADLINE_S
        while len(found) < expected and time.monotonic() < deadline and alive():
            found.extend(_results(consumer.poll(timeout_ms=READ_POLL_TIMEOUT_MS)))
        # Anything beyond `expected` would be a bug too: one more poll to see it.
        found.extend(_results(consumer.poll(timeout_ms=READ_POLL_TIMEOUT_MS)))
    finally:
        consumer.close()
    return found


def _results(polled: dict[Any, list[Any]]) -> list[tuple[bytes, PaymentResult]]:
    found = []
    for records in polled.values():
        for record in records:
            message = decode(type_from_headers(record.headers), record.value)
            assert isinstance(message, PaymentResult)
            found.append((record.key, message))
    return found


def committed_and_end_offsets(settings: Settings) -> tuple[int, int]:
    """Offsets the PSP's group committed on psp.commands, and the records there, summed."""
    topic = settings.topic(topic_of(PaymentCommand))
    consumer = kafka_clients.consumer(settings)
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic))]
        committed = sum(consumer.committed(tp) or 0 for tp in partitions)
        ends = sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close(autocommit=False)
    return committed, ends


def test_the_psp_simulator_answers_each_command_by_its_id_and_stops_on_sigterm(
    settings: Settings, producer: Any
) -> None:
    hold = command("cmd-hold", "authorize", "pm_card_good", "tx-1", amount="50.00")
    commands = [
        hold,
        command("cmd-declined", "charge", "pm_card_decline_d2", "session:tx-2"),
        command("cmd-flaky-1", "charge", "pm_card_flaky_d3", "session:tx-3"),
        command("cmd-capture", "capture", "pm_card_good", "tx-1", amount="12.34",
                psp_reference="psp_hold_1"),
    ]
    send(producer, settings, commands)
    # Not a payment command at all: skipped, and the process carries on.
    producer.send(settings.topic(topic_of(PaymentCommand)), key=b"t1:junk", value=b"\x00junk",
                  headers=[("type", b"PaymentCommand")])
    # The relay re-sends after a crash, and the ledger retries the flaky card.
    send(producer, settings, [hold, command("cmd-flaky-2", "charge", "pm_card_flaky_d3",
                                            "session:tx-3")])
    process = start_simulator(settings, "--flaky-failures", "1")
    try:
        answers = read_results(settings, expected=6, alive=lambda: process.poll() is None)
    finally:
        _stdout, stderr = stop(process)
    assert process.returncode == 0, stderr
    assert '"event":"stopped"' in stderr.splitlines()[-1]
    assert '"event":"skipped"' in stderr

    by_request: dict[str, list[PaymentResult]] = {}
    for key, result in answers:
        assert key == key_for(result)
        by_request.setdefault(result.request_id, []).append(result)
    assert sorted(by_request) == ["cmd-capture", "cmd-declined", "cmd-flaky-1", "cmd-flaky-2",
                                  "cmd-hold"]
    outcome = {request: results[0].outcome for request, results in by_request.items()}
    assert outcome == {
        "cmd-hold": "hold_authorized", "cmd-declined": "charge_failed",
        "cmd-flaky-1": "charge_failed", "cmd-flaky-2": "charge_succeeded",
        "cmd-capture": "captured",
    }
    # The re-sent hold got the very same answer, under the same event id.
    first, again = by_request["cmd-hold"]
    assert first == again
    assert first.event_id == result_event_id(hold)
    assert first.amount == Decimal("50.00") and first.tenant_id == "t1"
    assert by_request["cmd-capture"][0].psp_reference == "psp_hold_1"
    assert by_request["cmd-declined"][0].reason == "card declined"


def test_offsets_are_committed_only_after_the_answers_were_sent(
    settings: Settings, producer: Any
) -> None:
    send(producer, settings, [command(f"cmd-{n}", "charge", "pm_card_good", f"session:{n}")
                              for n in range(5)])
    process = start_simulator(settings)
    try:
        answers = read_results(settings, expected=5, alive=lambda: process.poll() is None)
    finally:
        _stdout, stderr = stop(process)
    assert process.returncode == 0, stderr
    assert len(answers) == 5
    assert committed_and_end_offsets(settings) == (5, 5)

    # A restart in the same group reads nothing again: every record answered was committed.
    # Once it holds the partitions it has fetched from the committed offsets; what it read
    # it answers before a SIGTERM lets it go.
    process = start_simulator(settings)
    with closing(kafka_clients.admin(settings)) as admin:
        wait_until(lambda: _group_is_stable(admin, settings.group_id)
                   or process.poll() is not None,
                   GROUP_JOIN_DEADLINE_S, "the restarted simulator holding its partitions")
    _stdout, stderr = stop(process)
    assert process.returncode == 0, stderr
    assert '"event":"started"' in stderr
    assert '"event":"answered"' not in stderr


def _group_is_stable(admin: Any, group_id: str) -> bool:
    group = admin.describe_groups([group_id]).get(group_id) or {}
    return bool(group.get("group_state") == "Stable" and group.get("members"))
