"""`ledger tick` publishes event time on the real broker; `ledger receipt` finds an ad hoc
terminal's receipt by its reference."""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from pathlib import Path

import pytest
from kafka import TopicPartition

from consumers import kafka_clients
from consumers.avro_codec import decode, type_from_headers
from consumers.cli import main
from consumers.commands.topics import create_topics
from consumers.settings import settings_from
from consumers.store import open_ledger
from tests.builders import (
    LedgerDriver,
    location,
    session_events,
    tariff,
    tenant,
    terminal_authorized,
)

pytestmark = pytest.mark.integration


TICKS_READ_DEADLINE_S = 60

def test_ledger_tick_publishes_a_clock_tick_per_tenant(
    kafka_bootstrap_servers: str, fresh_topic_prefix: str
) -> None:
    settings = settings_from(argparse.Namespace(
        bootstrap_servers=kafka_bootstrap_servers, topic_prefix=fresh_topic_prefix,
    ), environ={})
    with closing(kafka_clients.admin(settings)) as admin:
        create_topics(admin, settings.all_topics(), partitions=1, replication_factor=1)
    assert main(["tick", "--bootstrap-servers", kafka_bootstrap_servers, "--topic-prefix",
                 fresh_topic_prefix, "--tenant", "cpo-a", "--tenant", "cpo-b",
                 "--now", "2026-03-02T10:00:00Z"]) == 0
    topic = settings.topic("clock")
    with closing(kafka_clients.raw_consumer(settings)) as consumer:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        records = []
        # Bounded for a busy machine (a first fetch there can take seconds), ends on the ticks.
        deadline = time.monotonic() + TICKS_READ_DEADLINE_S
        while len(records) < 2 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    ticks = [decode(type_from_headers(r.headers), r.value) for r in records]
    assert sorted(t.tenant_id for t in ticks) == ["cpo-a", "cpo-b"]
    assert {t.model_dump(mode="json")["now"] for t in ticks} == {"2026-03-02T10:00:00Z"}


def test_ledger_tick_refuses_a_time_without_offset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tick", "--bootstrap-servers", "127.0.0.1:1", "--tenant", "t",
                 "--now", "2026-03-02T10:00:00"]) == 2
    assert "needs a UTC offset" in capsys.readouterr().err


def test_a_terminal_receipt_is_found_by_its_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_ledger(store)
    try:
        d = LedgerDriver(ledger)
        d.apply(tenant(), tariff(), location(), terminal_authorized("TR-7", "30.00"))
        d.apply_each(session_events("tx1", None, "10", terminal_reference="TR-7"))
    finally:
        ledger.close()
    assert main(["receipt", "--store", store, "--tenant", "t1",
                 "--terminal-reference", "TR-7"]) == 0
    out = capsys.readouterr().out
    assert '"bill_to": "terminal:TR-7"' in out and '"total_incl_vat": "4.76"' in out
    assert main(["receipt", "--store", store, "--tenant", "t1",
                 "--terminal-reference", "nope"]) == 2
    assert "no receipt for terminal reference 'nope'" in capsys.readouterr().err
