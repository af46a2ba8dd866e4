"""The audit of a store filled through the Kafka path, on PostgreSQL and on SQLite.

`ledger consume`, `ledger relay`, `ledger project` and `ledger psp-simulator` run as real
processes (the stack of test_billing_models.py) while the test publishes a small network's
day: a post-paid card charged through the PSP, a declined card, a wallet session stopped
near its balance, a pre-authorization hold, and an open-access session. Then, while the
processes still run, `ledger audit replay` and `ledger audit verify` run as processes too:
the replay equals the live read models and the chain is intact.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import psycopg
import pytest

from consumers import kafka_clients
from consumers.commands.topics import create_topics
from consumers.settings import settings_from
from consumers.store import open_ledger
from ledger.application import Ledger
from projections.database import open_read_model
from projections.runner import stored_position
from tests.builders import session_events, top_up
from tests.e2e.test_billing_models import (
    PROCESSES,
    ROOT,
    Stack,
    eventually,
    network,
    publish,
    settled,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# The audit commands on a busy 2-core machine: seconds normally, bounded to catch a hang.
AUDIT_DEADLINE_S = 300


@pytest.fixture(scope="module", params=("postgresql", "sqlite"))
def audit_store(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('audit-e2e') / 'store.db'}"
        return
    name = f"e2e_audit_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture(scope="module")
def audit_stack(
    audit_store: str, kafka_bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    prefix = f"e2e-audit-{uuid.uuid4().hex[:8]}-"
    settings = settings_from(argparse.Namespace(
        bootstrap_servers=kafka_bootstrap_servers, topic_prefix=prefix, store=audit_store,
        group_id=f"{prefix}ledger", metrics_port=0, session_timeout_ms=10_000,
    ), environ={})
    with closing(kafka_clients.admin(settings)) as admin:
        create_topics(admin, settings.all_topics(), partitions=3, replication_factor=1)
    running = Stack(settings, audit_store, tmp_path_factory.mktemp("audit-stack-logs"))
    running.start()
    try:
        yield running
    finally:
        codes = running.stop()
    assert codes == dict.fromkeys(PROCESSES, 0), f"processes did not stop cleanly: {codes}"


@pytest.fixture(scope="module")
def audit_ledger(audit_stack: Stack) -> Iterator[Ledger]:
    app = open_ledger(audit_stack.database)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture(scope="module")
def audit_producer(audit_stack: Stack) -> Iterator[Any]:
    client = kafka_clients.producer(audit_stack.settings)
    try:
        yield client
    finally:
        client.close()


def audit(stack: Stack, check: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "audit", check, "--store", stack.database],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=AUDIT_DEADLINE_S, check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_replay_of_a_store_filled_through_kafka_equals_the_live_read_models(
    audit_stack: Stack, audit_producer: Any, audit_ledger: Ledger
) -> None:
    stack, producer, ledger = audit_stack, audit_producer, audit_ledger
    t = network(stack, producer, ledger)
    publish(stack, producer, ledger, top_up("w", "5.00", tenant_id=t))
    sessions = {
        "tx-post": ("post", {}), "tx-bad": ("bad", {}), "tx-pre": ("pre", {}),
        "tx-w": ("w", {"updates": 3}), "tx-free": ("post", {"location_id": "FREE"}),
    }
    for tx, (driver_id, options) in sessions.items():
        publish(stack, producer, ledger, *session_events(tx, driver_id, "10", tenant_id=t,
                                                          **options))
    for tx in sessions:
        settled(stack, ledger, t, tx)
    # The projector has applied something of this tenant's day (the replay compares at
    # whatever position it stands: it need not be at the log's end).
    with closing(open_read_model(ledger)) as db:
        eventually(stack, "read models projected", lambda: stored_position(db))

    code, out = audit(stack, "replay")
    assert code == 0, out
    assert "VERDICT: EQUAL: 12 read-model tables" in out
    code, out = audit(stack, "verify")
    assert code == 0, out
    assert "VERDICT: INTACT" in out
