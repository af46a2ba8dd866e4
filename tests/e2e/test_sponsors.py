"""Partners and plans through the real broker and database, with two consumers of one group.

One partner pool, many drivers charging at once, on several partitions: the pool's cap
holds (issue 7: "a pool exhausted by concurrent sessions of many drivers"). A pre-paid plan
subscribed on the 31st: its fees go through the PSP simulator, its allowance pays sessions
pro rata by energy, and its next cycle starts on the last day of February.

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
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from consumers.avro_codec import encode, headers_for, key_for
from consumers.kafka_topics import topic_of
from ledger.application import Ledger
from ledger.domain.payment import Charge
from ledger.messages import EnrolmentChanged, PartnerConfigured, PlanPublished, SubscriptionChanged
from tests.builders import T0, driver, envelope, location, session_events, tariff, tenant, tick
from tests.e2e.test_billing_models import (
    ROOT,
    Stack,
    account_balances,
    eventually,
    publish,
    settled,
    wait_for_commands,
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
            producer.send(stack.settings.topic(topic_of(message)), key=key_for(message),
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



def test_a_prepaid_plan_fee_goes_through_the_psp_and_its_allowance_pays_sessions(
    stack: Stack, second_consumer: None, producer: Any, ledger: Ledger,
) -> None:
    """Subscribed on the 31st (Berlin): the fee is charged through the PSP simulator, the
    allowance of 15 kWh pays the first session and two thirds of the second by energy."""
    t = "e2e-plan"
    published = T0 - timedelta(days=30)  # with the tenant (builders.tenant)
    subscribed = datetime.fromisoformat("2026-01-31T10:00:00+01:00")
    publish(
        stack, producer, ledger,
        tenant(t, time_zone="Europe/Berlin"), tariff(tenant_id=t), location(tenant_id=t),
        driver("sub", "post_paid", tenant_id=t),
        PlanPublished(**envelope(t, published), effective_at=published, plan_id="P15",
                      payment="prepaid", fee_net=Decimal("10.00"),
                      fee_vat_rate_percent=Decimal(19), allowance_kwh=Decimal(15)),
        SubscriptionChanged(**envelope(t, subscribed), effective_at=subscribed,
                            driver_id="sub", plan_id="P15", action="subscribe"),
    )
    fee = wait_for_commands(stack, t, lambda found: any(
        c.get("action") == "charge" for c in found))[0]
    assert (fee["amount"], fee["reference"]) == ("11.90", "subscription_fee:sub-1:0")
    fee_id = Charge.create_id(t, "subscription_fee", "sub-1:0")
    eventually(stack, "the fee paid", lambda: True if (
        fee_id in ledger.repository
        and ledger.repository.get(fee_id).status == "succeeded") else None)
    start = datetime.fromisoformat("2026-02-10T09:00:00+01:00")
    publish(stack, producer, ledger, *session_events("tx-a", "sub", "10", start=start,
                                                     tenant_id=t))
    publish(stack, producer, ledger, *session_events(
        "tx-b", "sub", "7.5", start=start + timedelta(hours=2), tenant_id=t))
    a = settled(stack, ledger, t, "tx-a")
    b = settled(stack, ledger, t, "tx-b")
    assert a["billing_model"] == "subscription_prepaid"
    assert a["charged_to"] == [
        {"payer": "subscription", "id": "sub-1", "amount_incl_vat": "4.76"}]
    # 7.5 kWh = 3.57; 5 of 7.5 kWh left in the allowance: 2.38 covered, 1.19 by card.
    assert [(r["payer"], r["amount_incl_vat"]) for r in b["charged_to"]] == [
        ("subscription", "2.38"), ("driver", "1.19")]
    # The next cycle starts on Feb 28 (a 31st anchor clamps) with the next fee.
    publish(stack, producer, ledger,
            tick(datetime.fromisoformat("2026-02-28T00:00:00+01:00"), tenant_id=t))
    charges = wait_for_commands(stack, t, lambda found: any(
        c.get("reference") == "subscription_fee:sub-1:1" for c in found))
    assert [c["amount"] for c in charges if c.get("reference", "").startswith(
        "subscription_fee")] == ["11.90", "11.90"]
