"""The per-session billing models end to end with `ledger psp-stripe` in place of the
simulator: `consume`, `relay`, `project` and `psp-stripe` as real processes, the real broker
and database, and stripe-mock (Stripe's official API mock) as Stripe.

What stripe-mock can show: every command the ledger sends reaches Stripe as a request the
mock validates against Stripe's OpenAPI spec, with the command id as the idempotency key,
and Stripe's answer comes back through `psp.results` into the ledger, which acts on it
(a declined charge starts the retry schedule and ends in debt that stops the next session;
a declined hold stops the session). Open access and wallets need no PSP and are covered by
tests/e2e/test_billing_models.py.

What it cannot show: stripe-mock answers every PaymentIntent with the same fixed object,
status `requires_payment_method`, whatever the card, so
- no hold is ever authorized and no charge succeeds: holds being captured and released,
  receivables clearing, auto-top-ups crediting the wallet need Stripe's test mode
  (docs/psp.md), where test cards decline, need 3-D Secure or pay as asked;
- declines are the mock's fixed one, not the card's (insufficient funds, expired card,
  authentication required are unit-tested from constructed errors);
- it keeps no state: a second request with the same idempotency key is answered again, not
  replayed, and a capture of an unknown PaymentIntent succeeds;
- it sends no webhooks (the endpoint is tested with signed events we build).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.application import Ledger
from tests.builders import T0, driver, location, session_events, tariff, tenant, tick
from tests.e2e.conftest import running, stack_settings
from tests.e2e.test_billing_models import (  # the same stack helpers
    ROOT,
    Stack,
    _charge_failed_count,
    _hold,
    eventually,
    projected,
    publish,
    wait_for_commands,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PROCESSES = ("consume", "relay", "project", "psp-stripe")
TENANTS = tuple(f"e2e-stripe-{uuid.uuid4().hex[:6]}-{n}" for n in range(2))
CARD = "cus_e2e/pm_card_visa"  # a saved card as Stripe knows it: customer/payment method
MOCK_DECLINE = "stripe: requires_payment_method"


class StripeStack(Stack):
    stripe_mock_url: str = ""
    accounts: Path = Path()

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        common = ["--bootstrap-servers", ",".join(self.settings.bootstrap_servers),
                  "--topic-prefix", self.settings.topic_prefix]
        arguments = {
            "consume": ["consume", *common, "--store", self.database,
                        "--group-id", self.settings.group_id],
            "relay": ["relay", *common, "--store", self.database],
            "project": ["project", "--store", self.database],
            "psp-stripe": ["psp-stripe", *common, "--group-id", f"{self.settings.group_id}-psp",
                           "--stripe-accounts", str(self.accounts),
                           "--stripe-api-base", self.stripe_mock_url],
        }
        for name in PROCESSES:
            with (self.logs / f"{name}.log").open("wb") as log:  # the child keeps its copy
                self.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "consumers.cli", *arguments[name]], cwd=ROOT,
                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                )

    def psp_log(self) -> list[dict[str, Any]]:
        lines = (self.logs / "psp-stripe.log").read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stripe_requests(self) -> list[dict[str, Any]]:
        return [entry for entry in self.psp_log() if entry.get("event") == "stripe_request"]


# Replaces tests/e2e/conftest.py's `stack` in this module (its `ledger` and `producer` then
# use this one): psp-stripe instead of psp-simulator.
@pytest.fixture(scope="module")
def stack(
    stack_database: str, kafka_bootstrap_servers: str, stripe_mock_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StripeStack]:
    settings = stack_settings(kafka_bootstrap_servers, stack_database,
                              f"e2e-stripe-{uuid.uuid4().hex[:8]}-")
    logs = tmp_path_factory.mktemp("stripe-stack-logs")
    stripe_stack = StripeStack(settings, stack_database, logs)
    stripe_stack.stripe_mock_url = stripe_mock_url
    stripe_stack.accounts = logs / "stripe-accounts.json"
    stripe_stack.accounts.write_text(json.dumps(
        {t: {"secret_key": "sk_test_e2e", "webhook_secret": "whsec_e2e"} for t in TENANTS}))
    yield from running(stripe_stack)


def stripe_network(stack: Stack, producer: Any, ledger: Ledger, tenant_id: str,
                   **tenant_settings: Any) -> str:
    publish(
        stack, producer, ledger,
        tenant(tenant_id, **tenant_settings), tariff(tenant_id=tenant_id),
        location(tenant_id=tenant_id),
        driver("post", "post_paid", token=CARD, tenant_id=tenant_id),
        driver("pre", "pre_authorization", token=CARD, tenant_id=tenant_id),
    )
    return tenant_id


def test_a_post_paid_charge_declined_by_stripe_is_retried_on_schedule_then_debt_stops_the_driver(
    stack: StripeStack, producer: Any, ledger: Ledger
) -> None:
    t = stripe_network(stack, producer, ledger, TENANTS[0], retry_schedule_hours=[1, 6])
    publish(stack, producer, ledger, *session_events("tx-post", "post", "10", tenant_id=t))
    end = T0 + timedelta(minutes=60)
    [first] = wait_for_commands(stack, t, lambda c: len(c) == 1)
    assert (first["action"], first["amount"], first["payment_method_token"]) == (
        "charge", "4.76", CARD)
    eventually(stack, "Stripe's decline applied",
               lambda: True if _charge_failed_count(ledger, t, "tx-post") == 1 else None)
    for hours, attempts in ((1, 2), (6, 3)):
        publish(stack, producer, ledger, tick(end + timedelta(hours=hours, minutes=1),
                                              tenant_id=t))
        wait_for_commands(stack, t, lambda c, n=attempts: len(c) == n)
        eventually(stack, f"decline {attempts} applied",
                   lambda n=attempts: True if _charge_failed_count(ledger, t, "tx-post") == n
                   else None)
    publish(stack, producer, ledger,
            *session_events("tx-post-2", "post", "1", start=end + timedelta(days=1),
                            tenant_id=t)[:1])
    found = wait_for_commands(stack, t, lambda c: len(c) == 4)
    assert (found[-1]["_type"], found[-1]["reason"]) == (
        "StopSessionRequested", "driver has overdue debt")
    projected(stack, ledger, t, {"driver_receivable:post": Decimal("4.76"),
                                 "revenue": Decimal("-4.00"), "vat_payable:19": Decimal("-0.76")})

    # Each attempt went to Stripe once, under its own command id as the idempotency key.
    charge_ids = {c["event_id"] for c in found[:3]}
    requests = [r for r in stack.stripe_requests() if r["tenant_id"] == t]
    assert {r["command_id"] for r in requests} == charge_ids and len(requests) == 3
    assert all(r["idempotency_key"] == r["command_id"] and r["result"] == "refused"
               for r in requests)


def test_a_hold_declined_by_stripe_stops_the_session(
    stack: StripeStack, producer: Any, ledger: Ledger
) -> None:
    t = stripe_network(stack, producer, ledger, TENANTS[1])
    events = session_events("tx-pre", "pre", "10", tenant_id=t)
    publish(stack, producer, ledger, events[0])
    found = wait_for_commands(stack, t, lambda c: len(c) == 2)
    authorize, stop = found
    assert (authorize["action"], authorize["amount"]) == ("authorize", "25.00")
    assert (stop["_type"], stop["transaction_id"], stop["reason"]) == (
        "StopSessionRequested", "tx-pre", "pre-authorization declined")
    eventually(stack, "hold declined",
               lambda: True if _hold(ledger, t, "tx-pre").authorization == "declined" else None)
    [request] = [r for r in stack.stripe_requests() if r["tenant_id"] == t]
    assert (request["call"], request["idempotency_key"], request["result"]) == (
        "create_payment_intent", authorize["event_id"], "refused")
    assert any(line.get("event") == "refused" and line.get("reason") == MOCK_DECLINE
               and line.get("command_id") == authorize["event_id"]
               for line in stack.psp_log())
