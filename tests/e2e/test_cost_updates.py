"""Cost updates to the CSMS through the real broker (issue 13, done-when): a long session's
updates on the CSMS commands topic are spaced as configured, never decrease, end at the
settled total, and a relay killed with SIGKILL mid-session re-sends the same ids, never new
ones. Tariff 0.40 EUR/kWh + 19 % VAT; 30 kWh = 14.28."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.domain.outbox import RecordedCommand
from tests.builders import driver, location, session_events, tariff, tenant
from tests.e2e.test_billing_models import (
    ROOT,
    Stack,
    commands,
    eventually,
    publish,
    settled,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

STEP = Decimal("2.00")
KILL_WAIT_S = 10


def test_a_long_sessions_updates_are_spaced_rising_and_survive_a_relay_sigkill(
    stack: Stack, producer: Any, ledger: Ledger,
) -> None:
    t = "e2e-cost"
    publish(stack, producer, ledger,
            tenant(t, cost_update_step=STEP, cost_update_interval_s=3600),
            tariff(tenant_id=t), location(tenant_id=t), driver("d", "post_paid", tenant_id=t))
    events = session_events("tx-long", "d", "30", minutes=180, updates=17, tenant_id=t)
    half = len(events) // 2
    publish(stack, producer, ledger, *events[:half])
    _kill_relay_and_restart(stack)
    publish(stack, producer, ledger, *events[half:])
    total = settled(stack, ledger, t, "tx-long")["total_incl_vat"]

    def all_updates() -> list[dict[str, Any]] | None:
        found = [c for c in commands(stack, t) if c["_type"] == "SessionCostUpdated"]
        return found if any(c["final"] for c in found) else None

    on_topic = eventually(stack, "the final cost update on Kafka", all_updates)
    outbox = {c.command_id for c in _outbox(ledger, t)}
    assert {c["event_id"] for c in on_topic} == outbox, "re-sent, never re-made"
    unique = {c["event_id"]: c for c in on_topic}.values()
    ordered = sorted(unique, key=lambda c: c["sequence"])
    totals = [Decimal(c["total_cost"]) for c in ordered]
    assert totals == sorted(totals), "never decreasing"
    running = [Decimal(c["total_cost"]) for c in ordered if not c["final"]]
    assert all(b - a >= STEP for a, b in itertools.pairwise(running))
    assert (ordered[-1]["final"], Decimal(ordered[-1]["total_cost"])) == (True, total)


def _kill_relay_and_restart(stack: Stack) -> None:
    relay = stack.processes["relay"]
    relay.send_signal(signal.SIGKILL)
    relay.wait(timeout=KILL_WAIT_S)
    settings = stack.settings
    with (stack.logs / "relay-2.log").open("wb") as log:
        stack.processes["relay"] = subprocess.Popen(
            [sys.executable, "-m", "consumers.cli", "relay",
             "--bootstrap-servers", ",".join(settings.bootstrap_servers),
             "--topic-prefix", settings.topic_prefix, "--store", stack.database],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )


def _outbox(ledger: Ledger, tenant_id: str) -> list[RecordedCommand]:
    return [c for _, c in ledger.recorded_commands()
            if c.tenant_id == tenant_id and c.type_name == "SessionCostUpdated"]
