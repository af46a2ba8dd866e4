"""Messages that arrive before what they need, through the real broker: `ledger consume`
parks them and applies them once it comes, and ends where `ledger ingest` of the same
messages in their published order ends.

The day of tests/application/test_parking.py (configuration, two drivers' sessions, a
payment terminal's session, the PSP's answers) plus one malformed record, published one
whole topic at a time, each only once the consumer has read the previous one: the PSP's
answers first (they answer commands not issued yet, of a tenant not configured yet), then
the sessions (their tenant, location and drivers unknown), then the configuration.
Compared: `ledger report --json` of both stores, byte for byte apart from where the
malformed record came from (a Kafka offset, a file line); nothing left parked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from consumers import kafka_clients
from consumers.avro_codec import headers_for, key_for
from consumers.benchmarks.ingest import publish, publish_raw
from consumers.commands.topics import create_topics
from consumers.event_file import write_event_file
from consumers.kafka_topics import topic_of
from tests.application.test_parking import day
from tests.e2e import test_exactly_once
from tests.e2e.test_exactly_once import (
    ROOT,
    ConsumeProcess,
    caught_up_check,
    make_settings,
    report_json,
)

pytestmark = pytest.mark.e2e
clean_database = test_exactly_once.clean_database  # the fixture: a second fresh database

# Everything that needs something first, first.
TOPIC_ORDER = ("psp.results", "csms.transaction-events", "config")
DAY = day(terminal_first=True)
MALFORMED_LINE = "{not json"


def without_dead_letter_sources(report: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(report)
    for letter in found["dead_letters"]["items"]:
        for where in ("source", "position", "key", "received_at", "type"):
            letter.pop(where, None)
        letter.pop("reason")  # the file's "not JSON", the broker's "not Avro"
    return found


def test_a_day_published_topic_by_topic_ends_as_ledger_ingest_of_it(
    fresh_database: str, clean_database: str, kafka_bootstrap_servers: str,
    fresh_topic_prefix: str, tmp_path: Path,
) -> None:
    assert {topic_of(m) for m in DAY} == set(TOPIC_ORDER)
    day_file = tmp_path / "day.jsonl"
    write_event_file(day_file, [*DAY, MALFORMED_LINE])
    ingest = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "ingest", "--events", str(day_file),
         "--store", clean_database],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert ingest.returncode == 3, ingest.stderr  # the malformed line is dead-lettered
    assert "parked 0" in ingest.stderr, "in order, nothing waits"

    # One partition per topic: the file's order within a topic is Kafka's order too, so
    # documents are numbered alike (each topic's own order is all Kafka keeps).
    settings = make_settings(fresh_database, kafka_bootstrap_servers, fresh_topic_prefix)
    with closing(kafka_clients.admin(settings)) as admin:
        create_topics(admin, settings.all_topics(), partitions=1, replication_factor=1)
    consume = ConsumeProcess(settings, tmp_path / "consume.log")
    producer = kafka_clients.producer(settings)
    try:
        for name in TOPIC_ORDER:
            topic = settings.topic(name)
            publish(producer, settings, [m for m in DAY if topic_of(m) == name])
            if name == "csms.transaction-events":
                example = next(m for m in DAY if topic_of(m) == name)
                publish_raw(producer, topic, b"\x02\x04garbage", key_for(example),
                            headers_for(example))
            caught_up_check(settings, fresh_database, [topic], consume)
        assert consume.terminate() == 0
    finally:
        producer.close()
        consume.close()
    log = (tmp_path / "consume.log").read_text()
    batches = [json.loads(line) for line in log.splitlines()
               if line.startswith("{") and '"batch_applied"' in line]
    assert sum(b["parked"] for b in batches) > 0, "the answers and sessions waited"
    assert sum(b["unparked"] for b in batches) == sum(b["parked"] for b in batches)
    assert sum(b["expired"] for b in batches) == 0

    consumed = json.loads(report_json(fresh_database))
    assert consumed["parked"] == {"count": 0, "items": []}
    assert consumed["dead_letters"]["count"] == 1
    assert without_dead_letter_sources(report_json(fresh_database)) == (
        without_dead_letter_sources(report_json(clean_database)))
    assert len(consumed["sessions"]) == 3 and consumed["sessions_open"] == 0
