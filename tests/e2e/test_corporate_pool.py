"""One partner pool, many drivers charging at once, two consumers on several partitions:
the pool's cap holds through the real broker and database (issue 7: "a pool exhausted by
concurrent sessions of many drivers").

The stack is the one of test_billing_models.py plus a second `ledger consume` in the same
group, so sessions (keyed by transaction id over three partitions) settle in two processes
at once and their batches race for the one `CorporatePool` aggregate: the loser's write
conflicts on the pool's version and its batch is re-read and applied again.

Tariff: 0.40 EUR/kWh excl. VAT, 19 % VAT: 10 kWh = 4.76. Twelve drivers charge 10 kWh each
(57.12) against a pool of 20.00: the partner pays exactly 20.00 (four sessions in full,
one in part: 0.96), the drivers' cards the rest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from consumers.avro_codec import encode, headers_for, key_for
from ledger.application import Ledger
from ledger.messages import EnrolmentChanged, PartnerConfigured
from tests.builders import T0, driver, envelope, location, session_events, tariff, tenant, tick
from tests.e2e.test_billing_models import (
    ROOT,
    Stack,
    account_balances,
    eventually,
    publish,
    settled,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

STOP_TIMEOUT_S = 30  # SIGTERM finishes the current batch, then the member leaves the group
DRIVERS = 12
POOL = Decimal("20.00")


@pytest.fixture(scope="module")
def second_consumer(stack: Stack) -> Iterator[None]:
    """Another member of the ledger's consumer group: the partitions are shared."""
    settings = stack.settings
    with (stack.logs / "consume-2.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "consumers.cli", "consume",
             "--bootstrap-servers", ",".join(settings.bootstrap_servers),
             "--topic-prefix", settings.topic_prefix, "--store", stack.database,
             "--group-id", settings.group_id],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    yield
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STOP_TIMEOUT_S) == 0, (stack.logs / "consume-2.log").read_text()


def test_concurrent_sessions_of_many_drivers_never_exceed_the_pool(
    stack: Stack, second_consumer: None, producer: Any, ledger: Ledger,
) -> None:
    t = "e2e-pool"
    configured = T0 - timedelta(days=3)
    common = {**envelope(t, configured), "effective_at": configured}
    drivers = [f"d{n}" for n in range(DRIVERS)]
    publish(
        stack, producer, ledger,
        tenant(t, time_zone="Europe/Berlin"), tariff(tenant_id=t), location(tenant_id=t),
        *(driver(d, "post_paid", tenant_id=t) for d in drivers),
        PartnerConfigured(**common, partner_id="FLEET", billing_period="monthly",
                          pool_limit=POOL),
        *(EnrolmentChanged(**{**common, **envelope(t, configured)}, partner_id="FLEET",
                           driver_id=d, action="enrol") for d in drivers),
    )
    sessions = [session_events(f"tx-{d}", d, "10", tenant_id=t) for d in drivers]
    # Every session starts before any ends: all are covered at start, and their ends race.
    for step in range(len(sessions[0])):
        for events in sessions:
            message = events[step]
            producer.send(stack.settings.topic(message.TOPIC), key=key_for(message),
                          value=encode(message), headers=headers_for(message))
    producer.flush()

    shares = {d: settled(stack, ledger, t, f"tx-{d}")["charged_to"] for d in drivers}
    partner = sum((Decimal(r["amount_incl_vat"]) for rows in shares.values() for r in rows
                   if r["payer"] == "partner"), Decimal(0))
    assert partner == POOL, shares
    for rows in shares.values():
        assert sum(Decimal(r["amount_incl_vat"]) for r in rows) == Decimal("4.76")

    publish(stack, producer, ledger, tick(T0.replace(day=31, hour=22) + timedelta(hours=48),
                                          tenant_id=t))
    eventually(stack, "the partner's receivable projected", lambda: (
        True if account_balances(stack.database, t).get("partner_receivable:FLEET") == POOL
        else None))

