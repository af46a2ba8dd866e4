"""The audit of a store filled through the Kafka path, on PostgreSQL and on SQLite.

`ledger consume`, `ledger relay`, `ledger project` and `ledger psp-simulator` run as real
processes (the stack of tests/e2e/conftest.py) while the test publishes a small network's
day: a post-paid card charged through the PSP, a declined card, a wallet session stopped
near its balance, a pre-authorization hold, and an open-access session. Then, while the
processes still run, `ledger audit replay` and `ledger audit verify` run as processes too:
the replay equals the live read models and the chain is intact.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import closing
from typing import Any

import pytest

from ledger.application import Ledger
from projections.database import open_read_model
from projections.runner import stored_position
from projections.sql import TABLE_NAMES
from tests.builders import session_events, top_up
from tests.e2e.test_billing_models import (
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
def stack_database(
    request: pytest.FixtureRequest, stack_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The stack of tests/e2e/conftest.py on PostgreSQL (its own database), then SQLite."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('audit-e2e') / 'store.db'}"
    return stack_database


def audit(stack: Stack, check: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "audit", check, "--store", stack.database],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=AUDIT_DEADLINE_S, check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_replay_of_a_store_filled_through_kafka_equals_the_live_read_models(
    stack: Stack, producer: Any, ledger: Ledger
) -> None:
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
    assert f"VERDICT: EQUAL: {len(TABLE_NAMES)} read-model tables" in out
    code, out = audit(stack, "verify")
    assert code == 0, out
    assert "VERDICT: INTACT" in out
